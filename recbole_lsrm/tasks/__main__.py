"""``python -m recbole_lsrm.tasks compare RUN_DIR [RUN_DIR ...] [--out DIR]``"""

from __future__ import annotations

import argparse
import sys

from recbole_lsrm.commands import DONE, run_command
from recbole_lsrm.tasks.compare import compare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recbole_lsrm.tasks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cmp = sub.add_parser("compare", help="put several runs' task results side by side (table + PNG)")
    cmp.add_argument("run_dirs", nargs="+", help="run folders written with --tasks")
    cmp.add_argument("--out", help="folder for compare.json and compare.png (default saved/compare-<time>)")
    args = parser.parse_args(argv)

    def compare_runs() -> int:
        compare(args.run_dirs, args.out)
        return DONE

    return run_command(compare_runs)


if __name__ == "__main__":
    sys.exit(main())
