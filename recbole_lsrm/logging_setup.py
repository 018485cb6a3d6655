"""RecBole-style console logs, and every line at INFO and above in the run folder's ``run.log``.

``state`` sets what the console shows, never what ``run.log`` keeps: with ``--state=WARNING``
the console is quiet but for warnings, errors and the lines logged with :data:`ESSENTIAL` (the
run folder, the test result, the summary's path), while ``run.log`` stays complete. Colour
codes reach the console only when it is a terminal (a redirected log is plain text).

Lines logged before the run folder exists (dataset statistics, say) are held in memory and
written to ``run.log`` once it does, so a run that fails early writes nothing to disk.
"""

from __future__ import annotations

import logging
import re
import sys
from logging.handlers import MemoryHandler
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FORMAT = "%(asctime)s %(levelname)s  %(message)s"
_DATEFMT = "%d %b %H:%M"
# ``logger.info(..., extra=ESSENTIAL)``: a line the console shows at every state.
ESSENTIAL = {"essential": True}


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _ANSI.sub("", super().format(record))


def _own(handler: logging.Handler) -> logging.Handler:
    """Mark a handler as this module's, so that the next run in this process replaces it."""
    handler._recbole_lsrm = True  # type: ignore[attr-defined]
    return handler


def init_logging(state: str = "INFO", essentials: bool = True) -> None:
    """Console logging for one run; earlier runs' handlers in this process are removed.
    ``essentials=False`` (the other processes of a torchrun) shows no :data:`ESSENTIAL` line
    below ``state`` either: process 0 says them once."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_recbole_lsrm", False):
            handler.close()
            root.removeHandler(handler)
    level = getattr(logging, str(state).upper(), logging.INFO)
    root.setLevel(min(level, logging.INFO))  # run.log keeps INFO lines whatever the console shows
    console = _own(logging.StreamHandler(sys.stdout))
    console.addFilter(lambda record: record.levelno >= level or (essentials and getattr(record, "essential", False)))
    terminal = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
    console.setFormatter(logging.Formatter(_FORMAT, _DATEFMT) if terminal else _PlainFormatter(_FORMAT, _DATEFMT))
    root.addHandler(console)
    root.addHandler(_own(MemoryHandler(capacity=100_000, flushLevel=logging.CRITICAL + 1)))


def to_run_log_only(text: str) -> None:
    """A line for ``run.log`` alone (the console does not show it): the whole config, say."""
    record = logging.LogRecord("recbole_lsrm", logging.INFO, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if getattr(handler, "_recbole_lsrm", False) and isinstance(handler, (logging.FileHandler, MemoryHandler)):
            handler.handle(record)


def attach_run_log(run_dir: Path) -> Path:
    """Send all lines so far, and every later one, to ``run_dir/run.log``."""
    path = Path(run_dir) / "run.log"
    file_handler = _own(logging.FileHandler(path, encoding="utf-8"))
    file_handler.setFormatter(_PlainFormatter(_FORMAT, _DATEFMT))
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, MemoryHandler) and getattr(handler, "_recbole_lsrm", False):
            handler.setTarget(file_handler)
            handler.flush()
            root.removeHandler(handler)
            handler.close()
    root.addHandler(file_handler)
    return path
