"""``python -m recbole_lsrm.prepare DATASET [options]``: convert a dataset into RecBole atomic files.

Bad input (a missing or malformed file, an unknown name, an impossible option) prints one
``error: ...`` line to stderr and exits with status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
import time

from recbole_lsrm.commands import DONE, run_command
from recbole_lsrm.config import DEFAULT_SEED
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.prepare.convert import DATASETS, prepare

EPILOG = """\
examples:
  python -m recbole_lsrm.prepare ml-20m --raw ml-20m/ratings.csv       # or the folder, or ml-20m.zip
  python -m recbole_lsrm.prepare ml-1m --raw ml-1m/ratings.dat
  python -m recbole_lsrm.prepare ml-20m --raw ml-20m.zip --fraction=0.1  # writes ml-20m-10
  python -m recbole_lsrm.prepare amazon-mix --raw amazon2018/ --k=30    # one file per category
  python -m recbole_lsrm.prepare synthetic --like ml-20m --scale=0.01   # synthetic-ml-20m-0.01
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors reported like every other bad input (``error: ...``, exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message} (see --help)")


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a seed is a whole number, got {text!r}") from None
    if not 0 <= seed < 2**32:
        raise argparse.ArgumentTypeError(f"a seed is in [0, 2^32), got {seed}")
    return seed


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m recbole_lsrm.prepare",
        description="Convert a dataset into RecBole atomic files: <out>/<name>/<name>.inter (and .item).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    names = "\n".join(f"{n}: {d}" for n, d in DATASETS.items())
    parser.add_argument("dataset", metavar="DATASET", help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--raw", metavar="PATH", help="the downloaded ratings file, its folder or zip; "
                        "for amazon-mix the folder of category files")
    parser.add_argument("--out", metavar="DIR", help="where dataset folders go (default: the project's dataset/)")
    parser.add_argument("--name", help="dataset name to write (default: DATASET, or synthetic-<like>[-<scale>])")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="keep this share of the users, whole sequences; writes <name>-<percent>")
    parser.add_argument("--seed", type=_seed, default=DEFAULT_SEED, help="seed of the user sample and of synthetic data")
    parser.add_argument("--k", type=int, help="amazon-mix: k-core of users and items (default 30, as the paper)")
    parser.add_argument("--like", help="synthetic: the dataset whose shape to copy (default ml-20m)")
    parser.add_argument("--scale", type=float, help="synthetic: scale users, items and interactions (default 1)")
    parser.description += "\n\n" + names
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv

    def convert() -> int:
        args = build_parser().parse_args(argv)
        start = time.perf_counter()
        prepared = prepare(
            args.dataset, args.raw, args.out, name=args.name, fraction=args.fraction, seed=args.seed,
            k=args.k, like=args.like, scale=args.scale,
        )
        print("\n".join(prepared.report))
        print(f"done in {time.perf_counter() - start:.1f} s")
        return DONE

    return run_command(convert)


if __name__ == "__main__":
    sys.exit(main())
