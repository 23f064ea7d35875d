"""Failures whose cause is known end a run in one line that says what to do.

A missing upstream artifact, a bad setting, an unknown model, a refused library version or a broken
library contract is the user's to fix, and the traceback (hundreds of lines of Kedro's and the
libraries' frames) hides the one line that says how. For these the command prints that line; the
traceback goes to the log file, and ``RETRACTION_KEDRO_TRACEBACK=1`` (or ``kedro run --traceback``)
prints it as well. Any other exception keeps its traceback on the console.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

import click

from retraction_kedro.logs import log_files, shown_path, write_to_log_files

logger = logging.getLogger(__name__)

TRACEBACK_ENV = "RETRACTION_KEDRO_TRACEBACK"


def _settings_remedy(error: BaseException) -> str:
    return "fix it in conf/base or conf/local, or with --params"


def _library_remedy(error: BaseException) -> str:
    from retraction_kedro.lm.contracts import SUPPORTED_TRANSFORMERS  # loaded: the error came from it

    return (
        f"this code is tested on transformers{SUPPORTED_TRANSFORMERS}: install a release in that range "
        f"(pip install 'transformers{SUPPORTED_TRANSFORMERS}'), or report it if yours is one"
    )


# Known failures by qualified class name, with the remedy their message lacks (None: the message has one).
# By name, so that recognizing a failure imports nothing: retraction_kedro.lm refuses to import at all
# under an unsupported transformers, which is one of these failures.
KNOWN: dict[str, Callable[[BaseException], str] | None] = {
    "retraction_kedro.upstream.MissingUpstreamError": None,
    "retraction_kedro.hooks.PreflightError": None,
    "retraction_kedro.config.parameters.ParameterError": _settings_remedy,
    "retraction_kedro.lm.loading.ModelNotFoundError": None,
    "retraction_kedro.lm.contracts.UnsupportedVersionError": None,
    "retraction_kedro.lm.contracts.LibraryContractError": _library_remedy,
    "retraction_kedro.datasets.jsonl.JSONLFormatError": None,
    "retraction_kedro.sources.paper.PaperDataUnavailable": None,
    "retraction_kedro.sources.paper.NoReleasedSets": None,
}


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the exceptions it was raised from (Kedro wraps a dataset's error in its own)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def known_cause(error: BaseException) -> tuple[BaseException, Callable[[BaseException], str] | None] | None:
    for cause in causes(error):
        for cls in type(cause).__mro__:
            name = f"{cls.__module__}.{cls.__qualname__}"
            if name in KNOWN:
                return cause, KNOWN[name]
    return None


def one_line(error: BaseException) -> str | None:
    """What to print for ``error``: its known cause's message and remedy on one line, or None (unknown)."""
    found = known_cause(error)
    if found is None:
        return None
    cause, remedy = found
    message = " ".join(str(cause).split())
    return f"{message}; {remedy(cause)}" if remedy else message


class KnownFailure(click.ClickException):
    """Printed by click as ``Error: <line>`` on stderr; the command exits with 1."""


def traceback_requested(flag: bool = False) -> bool:
    return flag or os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


def report(error: Exception, show_traceback: bool) -> KnownFailure | None:
    """Write ``error``'s traceback to the log files; the one line to raise instead of it, when its cause
    is known and no traceback was asked for (None: re-raise ``error``)."""
    in_files = write_to_log_files(logger, logging.ERROR, "The run failed", error)
    line = one_line(error)
    if line is None or show_traceback:
        return None
    where = f"traceback in {', '.join(shown_path(path) for path in log_files())}; " if in_files else ""
    return KnownFailure(f"{line} [{where}{TRACEBACK_ENV}=1 or --traceback prints it]")
