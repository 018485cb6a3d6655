"""What every ``python -m recbole_lsrm...`` command does with a failure: one line, one exit status.

0 done, 1 some work failed (a sweep's trials), 2 bad input (an :class:`LSRMError`: a missing
file, an unknown option, an impossible setting), 130 interrupted (Ctrl-C), 143 terminated
(SIGTERM, what schedulers such as Slurm send before a kill). A bad input is printed as
``error: <message>`` without a traceback. SIGTERM is handled like Ctrl-C: the work stops where
it is, what was written stays valid (every write is atomic), and the line says how to resume.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Callable

from recbole_lsrm.errors import LSRMError

DONE, FAILED, BAD_INPUT, INTERRUPTED, TERMINATED = 0, 1, 2, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that every Ctrl-C handler also handles it."""


# Set by SIGTERM: code that catches the Terminated exception and raises a plain
# KeyboardInterrupt in its place (Ray's and Tune's loops can) still ends as terminated.
_sigterm = threading.Event()


def _raise_terminated(signum, frame) -> None:
    _sigterm.set()
    raise Terminated()


def sigterm_received() -> bool:
    """Whether SIGTERM arrived during the current command (see :func:`run_command`)."""
    return _sigterm.is_set()


def run_command(body: Callable[[], int], interrupted: str = "interrupted") -> int:
    """``body()``'s exit status; an LSRMError, Ctrl-C or SIGTERM becomes its line on stderr and its status.

    ``interrupted`` is the line for Ctrl-C ("terminated" replaces its first word for SIGTERM);
    an interruption that knows how its work resumes (``resume_hint``) adds that.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main else None
    _sigterm.clear()
    try:
        return body()
    except LSRMError as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated) or _sigterm.is_set()
        line = ("terminated" + interrupted[len("interrupted"):]) if terminated and interrupted.startswith(
            "interrupted") else interrupted
        hint = getattr(stop, "resume_hint", None)
        print(line + (f"; {hint}" if hint else ""), file=sys.stderr)
        return TERMINATED if terminated else INTERRUPTED
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
