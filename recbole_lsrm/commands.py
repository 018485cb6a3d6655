"""What every ``python -m recbole_lsrm...`` command does with a failure: one line, one exit status.

0 done, 1 some work failed (a sweep's trials), 2 bad input (an :class:`LSRMError`: a missing
file, an unknown option, an impossible setting), 130 interrupted. A bad input is printed as
``error: <message>`` without a traceback.
"""

from __future__ import annotations

import sys
from typing import Callable

from recbole_lsrm.errors import LSRMError

DONE, FAILED, BAD_INPUT, INTERRUPTED = 0, 1, 2, 130


def run_command(body: Callable[[], int], interrupted: str = "interrupted") -> int:
    """``body()``'s exit status; an LSRMError or Ctrl-C becomes its line on stderr and its status."""
    try:
        return body()
    except LSRMError as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return INTERRUPTED
