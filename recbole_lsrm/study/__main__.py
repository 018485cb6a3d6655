"""``python -m recbole_lsrm.study STUDY.yaml [--only=a,b] [--data=PATH] [--dry-run]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recbole_lsrm.commands import DONE, FAILED, INTERRUPTED, TERMINATED, run_command
from recbole_lsrm.study.runner import run_study, write_table_and_report
from recbole_lsrm.study.spec import load_study
from recbole_lsrm.sweep.plan import _number, _typed

RESUME = "run the same command again to continue (finished trials are skipped)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_lsrm.study",
        description="Run a study file's sweeps (their trials in one Ray Tune run, in the file's order), save results.csv "
                    "as trials finish, write the report.",
    )
    parser.add_argument("study", help="the study's YAML file (studies/ml-1m.yaml)")
    parser.add_argument("--only", default="", help="run only these sweeps (comma-separated names); the report covers all")
    parser.add_argument("--data", default=None, help="the data instead of the file's data: (an .inter[.xz|.gz] or a folder)")
    parser.add_argument("--work", default=None, help="the folder of the trials instead of the file's work:")
    parser.add_argument("--report", default=None, help="the folder of the table and report instead of the file's report:")
    parser.add_argument("--max-concurrent", type=_typed(lambda t: _number(t, "max-concurrent", integer=True, minimum=1)), default=None,
                        help="at most this many trials at a time, instead of the file's max_concurrent: (beside other work, or to bound memory)")
    parser.add_argument("--dry-run", action="store_true", help="prepare the data, print every sweep's trials and their status, train nothing")
    parser.add_argument("--report-only", action="store_true", help="rewrite the table (from the trials finished here and the committed table) and the report; train nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 1 some trials failed, 2 bad input, 130 interrupted, 143 terminated."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    return run_command(lambda: _run(args), f"interrupted: {RESUME}")


def _run(args: argparse.Namespace) -> int:
    study = load_study(args.study)
    for name in ("data", "work", "report"):
        if getattr(args, name):
            setattr(study, name, Path(getattr(args, name)).resolve())
    if args.max_concurrent is not None:
        study.max_concurrent = args.max_concurrent
    if args.report_only:
        table, report = write_table_and_report(study)
        print(f"wrote {table}\nwrote {report}")
        return DONE
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    outcome = run_study(study, only=only, dry_run=args.dry_run)
    if outcome["interrupted"]:
        word = "terminated" if outcome["terminated"] else "interrupted"
        print(f"{word}: {RESUME}", file=sys.stderr)
        return TERMINATED if outcome["terminated"] else INTERRUPTED
    if outcome["failed"]:
        for sweep, keys in outcome["failed"].items():
            print(f"error: sweep {sweep}: {len(keys)} trial(s) failed ({', '.join(keys)}); {RESUME}", file=sys.stderr)
        return FAILED
    return DONE


if __name__ == "__main__":
    sys.exit(main())
