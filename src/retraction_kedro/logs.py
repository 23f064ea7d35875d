"""Where a run's log goes: library output brought under conf/logging.yml, and the log files it names.

conf/logging.yml decides what reaches the console and what only the log file (info.log). Two kinds of
output bypass logging unless told: Python warnings, printed to stderr, and MLflow's own stderr
handler. :func:`route_library_output` brings both in; settings.py calls it because Kedro imports
settings before its plugins import MLflow.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path


def route_library_output() -> None:
    """Warnings become records of the ``py.warnings`` logger, and MLflow leaves its loggers to the config."""
    logging.captureWarnings(True)
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # read once, when mlflow is imported


def _file_handlers() -> list[logging.FileHandler]:
    return [handler for handler in logging.getLogger().handlers if isinstance(handler, logging.FileHandler)]


def log_files() -> list[Path]:
    """The files the root logger writes to, as the logging config set them up."""
    return [Path(handler.baseFilename) for handler in _file_handlers()]


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_to_log_files(logger: logging.Logger, level: int, message: str, error: BaseException | None = None) -> bool:
    """Write one record to the log files only (a traceback, a long list the console does not need).

    Returns False when the logging config has no log file."""
    handlers = _file_handlers()
    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    record = logger.makeRecord(logger.name, level, "(log files)", 0, message, (), exc_info)
    for handler in handlers:
        if record.levelno >= handler.level:
            handler.handle(record)
    return bool(handlers)
