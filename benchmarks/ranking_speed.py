"""A ranking epoch of LSRM (2 x 64, all-position windows) against RecBole's DIN (one prefix per
interaction) on ML-1M, side by side, evaluated on the same candidates.

    python benchmarks/ranking_speed.py [--epochs=1] [--lsrm-epochs=10] [--datasets=../shared/datasets]

Both train with ``objective: ranking`` on ML-1M's ratings (``threshold: {rating: 4}``) plus one
sampled negative per interaction (an item the user never had), max length 50, DIN for
``--epochs`` epochs and LSRM for ``--lsrm-epochs``, each in a process of its own; both are tested
the plugin's way (each user's held-out interaction with its real label plus one negative the
user never had, the same candidates): AUC, LogLoss, GAUC and held-out AUC with 95% intervals.
Prints each model's seconds per epoch, its training time and test figures, the ratio of epoch
times (target: LSRM's at least 10x faster) and whether LSRM, trained in less time than DIN, is
at equal or better AUC. Skips, saying so, when ML-1M is absent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ml1m_data import DEFAULT_DATASETS, ml1m_source, unpacked_ml1m

MODELS = {
    "LSRM": {"n_layers": 2, "d_model": 64, "n_heads": 2, "optimizer_switch": False},
    "DIN": {},  # under objective: ranking, the real labels plus neg_ratio negatives, as LSRM trains
}


def worker(model: str, epochs: int, data_path: str, work: str) -> None:
    from recbole_lsrm.pipeline import run

    start = time.time()
    summary = run(model, "ml-1m", options={
        **MODELS[model], "objective": "ranking", "threshold": {"rating": 4}, "neg_ratio": 1.0, "epochs": epochs,
        "MAX_ITEM_LIST_LENGTH": 50, "data_path": data_path, "checkpoint_dir": work, "show_progress": False,
        "state": "WARNING", "log_tensorboard": False,
    })
    times = [r["train_time_s"] for r in summary["history"]]
    print(json.dumps({"model": model, "epoch_s": sum(times) / len(times), "epochs": len(times),
                      "train_rows": summary["train_rows"], "test": summary["test"],
                      "intervals": summary["test_intervals"], "wall_s": time.time() - start}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    parser.add_argument("--epochs", type=int, default=1, help="DIN's epochs")
    parser.add_argument("--lsrm-epochs", type=int, default=10, help="LSRM's epochs (its own default cap)")
    parser.add_argument("--worker", choices=sorted(MODELS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.epochs, args.data, args.work)
        return 0
    source = ml1m_source(args.datasets)
    if source is None:
        return 0
    results = {}
    with unpacked_ml1m(source, "ranking-speed-") as (work, data_path):
        print(f"ML-1M ranking (rating >= 4 is a like; one sampled negative per interaction), max length 50; "
              f"LSRM {args.lsrm_epochs} epoch(s), DIN {args.epochs}\n", flush=True)
        for model in MODELS:
            epochs = args.lsrm_epochs if model == "LSRM" else args.epochs
            out = subprocess.run([sys.executable, __file__, f"--worker={model}", f"--epochs={epochs}",
                                  f"--data={data_path}", f"--work={work / model}"], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{model} failed:\n{out.stderr[-3000:]}")
                return 1
            r = results[model] = json.loads(out.stdout.strip().splitlines()[-1])
            ci = r["intervals"].get("auc", [float("nan")] * 2)
            print(f"{model:5s} rows/epoch {r['train_rows']:>9,}  s/epoch {r['epoch_s']:8.1f}  "
                  f"{r['epochs']} epoch(s) {r['epoch_s'] * r['epochs']:7.1f} s  test AUC {r['test']['auc']:.4f} "
                  f"[{ci[0]:.4f}, {ci[1]:.4f}]  LogLoss {r['test']['logloss']:.4f}  GAUC {r['test']['gauc']:.4f}  "
                  f"held-out AUC {r['test']['heldout_auc']:.4f}", flush=True)
    lsrm, din = results["LSRM"], results["DIN"]
    speedup = din["epoch_s"] / lsrm["epoch_s"]
    less_time = lsrm["epoch_s"] * lsrm["epochs"] <= din["epoch_s"] * din["epochs"]
    better = lsrm["test"]["auc"] >= din["test"]["auc"]
    print(f"\nepoch speed-up: {speedup:.1f}x (target: at least 10x); LSRM's AUC after {lsrm['epochs']} epoch(s) "
          f"{'at or above' if better else 'BELOW'} DIN's after {din['epochs']}, in "
          f"{'less' if less_time else 'MORE'} training time")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
