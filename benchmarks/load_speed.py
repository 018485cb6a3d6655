"""Atomic file -> training-ready dataloaders: LSRM's data path at ML-20M scale vs RecBole's.

1. Builds the synthetic ML-20M (138,493 users, 26,744 items, ~20M interactions) with
   ``python -m recbole_lsrm.prepare synthetic --like ml-20m``, or reads it if present.
2. Times LSRM's path on it (validated C-engine reading, RecBole's filtering and remapping,
   vectorised windowing) and reports peak memory. Targets: under 3 minutes, under 8 GB.
3. On a 1M-interaction slice, times RecBole's own SequentialDataset path (Python-engine
   reading, one row per prefix in a Python loop) and LSRM's path side by side, and prints
   the ratio. RecBole's path on all 20M needs about 16 GB and does not fit this machine.

Each measurement runs in its own process so that its peak memory is its own.

    python benchmarks/load_speed.py [--data=saved/benchmarks/data] [--slice=1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SYNTHETIC = "synthetic-ml-20m"


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))


def worker(path: str, data_path: str, name: str) -> None:
    """Load ``name`` through one path and print a JSON line with time, rows and peak memory."""
    import recbole_lsrm  # noqa: F401  (numpy aliases, metric registry)
    from recbole_lsrm.model import get_model_class
    from recbole_lsrm.config import LSRMConfig

    model = "LSRM" if path == "lsrm" else "SASRec"
    model_class = get_model_class(model)
    options = {"data_path": data_path, "state": "WARNING", "show_progress": False,
               "checkpoint_dir": str(Path(data_path) / "saved")}
    config = LSRMConfig(model_class, name, [], options)
    start = time.time()
    if path == "lsrm":
        from recbole_lsrm.data import create_dataset, prepare_dataloaders

        dataset = create_dataset(config, model_class)
        train, valid, test = prepare_dataloaders(config, dataset, model_class)
    else:  # RecBole 1.2.1's own classes, as run_recbole builds them
        from recbole.data import data_preparation
        from recbole.data.dataset import SequentialDataset

        dataset = SequentialDataset(config)
        train, valid, test = data_preparation(config, dataset)
    elapsed = time.time() - start
    print(json.dumps({
        "path": path, "dataset": name, "seconds": elapsed,
        "interactions": count_lines(Path(data_path) / name / f"{name}.inter") - 1,
        "train_rows": len(train.dataset), "valid_rows": len(valid.dataset), "test_rows": len(test.dataset),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }))


def measure(path: str, data_path: Path, name: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, f"--worker={path}", f"--data={data_path}", f"--name={name}"],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        sys.exit(f"{path} on {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_slice(source: Path, target: Path, interactions: int) -> None:
    """The first ``interactions`` rows (whole users: RecBole files are grouped by user)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i > interactions:
                break
            dst.write(line)


def report(r: dict) -> str:
    return (f"{r['path']:>7} {r['dataset']:<22} {r['interactions']:>12,} interactions  "
            f"{r['seconds']:8.1f} s  peak {r['peak_rss_gb']:5.2f} GB  train rows {r['train_rows']:>10,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="saved/benchmarks/data", help="folder for the synthetic datasets")
    parser.add_argument("--slice", type=int, default=1_000_000, help="interactions in the side-by-side slice")
    parser.add_argument("--worker", choices=("lsrm", "recbole"), help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data = Path(args.data).resolve()
    if args.worker:
        worker(args.worker, str(data), args.name)
        return

    inter = data / SYNTHETIC / f"{SYNTHETIC}.inter"
    if not inter.exists():
        print(f"building {inter} ...", flush=True)
        start = time.time()
        subprocess.run([sys.executable, "-m", "recbole_lsrm.prepare", "synthetic", "--like", "ml-20m",
                        f"--out={data}"], check=True)
        print(f"built in {time.time() - start:.0f} s\n", flush=True)

    full = measure("lsrm", data, SYNTHETIC)
    print(report(full), flush=True)
    verdict = "within" if full["seconds"] < 180 and full["peak_rss_gb"] < 8 else "OUTSIDE"
    print(f"        target: under 180 s and 8 GB -> {verdict}\n", flush=True)

    name = f"{SYNTHETIC}-slice"
    write_slice(inter, data / name / f"{name}.inter", args.slice)
    ours = measure("lsrm", data, name)
    theirs = measure("recbole", data, name)
    print(report(ours))
    print(report(theirs))
    print(f"\nRecBole's path / LSRM's path on {ours['interactions']:,} interactions: "
          f"{theirs['seconds'] / ours['seconds']:.1f}x time, "
          f"{theirs['peak_rss_gb'] / ours['peak_rss_gb']:.1f}x peak memory")


if __name__ == "__main__":
    main()
