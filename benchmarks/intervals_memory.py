"""The bootstrap intervals over test users: memory and time of the chunked resampling against one
draw of all the resamples, side by side, at several numbers of test users.

    python benchmarks/intervals_memory.py [--users=6040,138493] [--resamples=1000]

Every run ends with 95% bootstrap intervals over its test users (``evaluation/intervals.py``),
and a study adds a paired difference per trial. Drawing all 1,000 resamples of n users at once
holds 1,000 x n indices and as many gathered values: over 2 GB at ML-20M's 138,493 users. The
plugin draws them a chunk at a time from the same generator stream, so the resamples are the
same. Each variant runs in its own process (peak RSS is per process); the script prints the
peak RSS and time of each and the largest difference between their interval ends (rounding
in the last bits of a mean, at most).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

METRICS = ("ndcg@10", "hit@10", "celoss")


def per_user(n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    a = {"ndcg@10": rng.random(n) * 0.3, "hit@10": (rng.random(n) > 0.7).astype(float), "celoss": rng.random(n) * 8}
    b = {k: v + rng.normal(0, 0.01, n) for k, v in a.items()}
    return a, b


def one_draw(columns: dict[str, np.ndarray], n_resamples: int, seed: int = 0) -> dict[str, list[float]]:
    """The textbook bootstrap: every resample's indices drawn at once."""
    n = len(next(iter(columns.values())))
    index = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    return {k: [float(x) for x in np.percentile(v[index].mean(axis=1), [2.5, 97.5])] for k, v in columns.items()}


def measure(variant: str, n: int, n_resamples: int) -> dict:
    from recbole_lsrm.evaluation.intervals import bootstrap_intervals, paired_difference

    a, b = per_user(n)
    start = time.perf_counter()
    if variant == "chunked":
        intervals = bootstrap_intervals(a, n_resamples=n_resamples)
        diff = paired_difference(a, b, "ndcg@10", n_resamples=n_resamples)
        paired = [diff["lo"], diff["hi"]]
    else:
        intervals = one_draw(a, n_resamples)
        paired = one_draw({"d": b["ndcg@10"] - a["ndcg@10"]}, n_resamples)["d"]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"intervals": intervals, "paired": paired, "seconds": seconds, "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="6040,138493", help="numbers of test users (ML-1M's, ML-20M's)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.resamples)))
        return
    print(f"{'users':>8}  {'variant':<9} {'peak RSS':>9} {'seconds':>8}  largest difference of an interval end")
    for n in (int(u) for u in args.users.split(",")):
        runs = {}
        for variant in ("one-draw", "chunked"):
            out = subprocess.run([sys.executable, __file__, "--child", variant, str(n), f"--resamples={args.resamples}"],
                                 capture_output=True, text=True, check=True).stdout
            runs[variant] = json.loads(out)
        ends = [(r["intervals"][m] + r["paired"]) for r in runs.values() for m in METRICS]
        half = len(ends) // 2
        largest = max(abs(x - y) for a, b in zip(ends[:half], ends[half:]) for x, y in zip(a, b))
        for variant, r in runs.items():
            print(f"{n:>8,}  {variant:<9} {r['peak_mb']:>6.0f} MB {r['seconds']:>8.2f}  {f'{largest:.1e}' if variant == 'chunked' else ''}")
        print(f"{'':>8}  peak RSS one-draw / chunked: {runs['one-draw']['peak_mb'] / runs['chunked']['peak_mb']:.1f}x")


if __name__ == "__main__":
    main()
