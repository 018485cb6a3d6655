"""``python -m recbole_lsrm.sweep ...``: run a scaling sweep (see ``--help``)."""

from __future__ import annotations

import sys

from recbole_lsrm.commands import DONE, FAILED, INTERRUPTED, TERMINATED, run_command
from recbole_lsrm.sweep.plan import build_parser, build_plan, request_from_argv
from recbole_lsrm.sweep.runner import run_sweep

INTERRUPTED_MESSAGE = "interrupted: run the same command again to continue (finished trials are skipped)"


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 all trials finished, 1 some failed, 2 bad input, 130 interrupted, 143 terminated."""
    argv = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in argv):
        build_parser().print_help()
        return 0

    def sweep() -> int:
        plan = build_plan(request_from_argv(argv))
        outcome = run_sweep(plan)
        if outcome.interrupted:
            if outcome.terminated:
                print("terminated" + INTERRUPTED_MESSAGE[len("interrupted"):], file=sys.stderr)
                return TERMINATED
            print(INTERRUPTED_MESSAGE, file=sys.stderr)
            return INTERRUPTED
        if outcome.failed:
            print(
                f"error: {len(outcome.failed)} trial(s) failed; run the same command again to retry them "
                "(finished trials are skipped)",
                file=sys.stderr,
            )
            return FAILED
        return DONE

    return run_command(sweep, INTERRUPTED_MESSAGE)


if __name__ == "__main__":
    sys.exit(main())
