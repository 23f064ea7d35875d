"""The project's commands: Kedro's ``run`` with one line for known failures and for interrupts.

Kedro loads this module as the project CLI (``kedro run``) and ``retraction-kedro`` runs its ``run``
(``__main__.py``). The options are Kedro's own, plus ``--traceback``.
"""

from __future__ import annotations

from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from retraction_kedro.failures import TRACEBACK_ENV, report, traceback_requested

TRACEBACK_HELP = (
    f"Print the traceback of a failure with a known cause too (or set {TRACEBACK_ENV}=1); it is always in the log file."
)
INTERRUPTED = 130  # the shell's code for a run stopped by Ctrl-C


@click.group(name="retraction_kedro")
def cli() -> None:
    """Commands of retraction_kedro; they replace Kedro's of the same name."""


def _stop_progress(how: str) -> None:
    """Name the nodes to resume from (the progress hook saw which ran)."""
    from kedro.framework.project import settings

    from retraction_kedro.progress import NodeProgressHooks

    for hooks in settings.HOOKS:
        if isinstance(hooks, NodeProgressHooks):
            hooks.report_stop(how)


@cli.command(
    name="run",
    params=[*kedro_run.params, click.Option(["--traceback", "show_traceback"], is_flag=True, help=TRACEBACK_HELP)],
    help=kedro_run.help,
    short_help=kedro_run.short_help,
)
def run(show_traceback: bool, **options: Any) -> Any:
    try:
        return kedro_run.callback(**options)
    except KeyboardInterrupt:
        _stop_progress("interrupted")
        click.echo("Interrupted.", err=True)
        raise click.exceptions.Exit(INTERRUPTED) from None
    except Exception as error:
        known = report(error, traceback_requested(show_traceback))
        if known is None:
            raise
        raise known from None


@cli.command(name="doctor", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def doctor(arguments: tuple[str, ...]) -> None:
    """The self-check: versions, then the model mechanics' oracle checks on this machine (``--help`` for its options)."""
    from retraction_kedro import doctor as self_check

    raise click.exceptions.Exit(self_check.main(list(arguments)))
