"""``python -m recbole_lsrm.recommend RUN_DIR (--users=1,2 | --users-file=F | --history=I,J [--times=T,U] | --export=DIR)``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recbole_lsrm.commands import DONE, run_command
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.io import atomic_write
from recbole_lsrm.recommend.export import export_run
from recbole_lsrm.recommend.loading import load_run
from recbole_lsrm.recommend.ranking import item_titles, recommend
from recbole_lsrm.tables import format_table


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors reported like every other bad input (``error: ...``, exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m recbole_lsrm.recommend",
                     description="Top-k items from a finished run, or its vectors for serving.")
    parser.add_argument("run_dir", help="the run folder (saved/<model>-<dataset>-...)")
    parser.add_argument("--users", help="raw user ids, comma-separated: 1,2,3")
    parser.add_argument("--users-file", help="a file of raw user ids, one a line")
    parser.add_argument("--history", help="raw item ids of a new history, oldest first: 50,172,133")
    parser.add_argument("--times", help="with --history: each item's timestamp in seconds, oldest first (models "
                                        "with rab: position_time need them): 978300760,978302109,978301968")
    parser.add_argument("--k", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--include-history", action="store_true",
                        help="rank items already in the input too (default: leave them out)")
    parser.add_argument("--out", help="write the list as CSV (user, rank, item, score) instead of printing it")
    parser.add_argument("--export", metavar="DIR", help="write the item table and every user's state for serving")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument("--data_path", help="where the run's dataset folder is now (default: where it was read)")
    return parser


def _users(args: argparse.Namespace) -> list[str] | None:
    users = [u.strip() for u in (args.users or "").split(",") if u.strip()]
    if args.users_file:
        try:
            text = Path(args.users_file).read_text(encoding="utf-8-sig")  # a byte-order mark is not part of an id
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read --users-file {args.users_file}: {err}") from None
        users += [line.strip() for line in text.splitlines() if line.strip()]
    twice = sorted({u for u in users if users.count(u) > 1})
    if twice:
        shown = ", ".join(twice[:5]) + (f" and {len(twice) - 5} more" if len(twice) > 5 else "")
        raise ConfigError(f"--users names {shown} more than once (each user gets one list)")
    return users or None


def _times(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--times must be numbers (seconds), comma-separated, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    def run_it() -> int:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        users = _users(args)
        asked = [what for what, given in (("users", users), ("a history", args.history), ("--export", args.export))
                 if given]
        if len(asked) != 1:
            raise ConfigError("give one of --users (or --users-file), --history or --export"
                              + (f"; got {', '.join(asked)}" if asked else ""))
        run = load_run(args.run_dir, device=args.device, data_path=args.data_path)
        if args.export:
            paths = export_run(run, args.export)
            print("\n".join(f"wrote {p}" for p in paths.values()))
            return DONE
        histories = {"history": [i.strip() for i in args.history.split(",") if i.strip()]} if args.history else None
        times = {"history": _times(args.times)} if args.times else None
        if times and not histories:
            raise ConfigError("--times gives the times of a --history's items; users' own times come from the data")
        table = recommend(run, users=users, k=args.k, exclude_history=not args.include_history, histories=histories,
                          times=times)
        if args.out:
            atomic_write(args.out, lambda tmp: table.to_csv(tmp, index=False))
            print(f"wrote {args.out} ({len(table):,} rows)")
        else:
            titles = item_titles(run)
            if titles:  # the dataset names its items: show the name beside the id
                table = table.assign(title=table["item"].map(titles).fillna(""))
            print(format_table(list(table.columns), table.itertuples(index=False), align="left"))
        return DONE

    return run_command(run_it)


if __name__ == "__main__":
    sys.exit(main())
