"""LSRM's all-position training vs RecBole's SASRec on ml-100k, side by side.

Both models: 2 layers, d = 64, 2 heads, FFN 4d, max length 50, full cross-entropy. Each runs
in its own process (so peak memory is its own) under the same wall-clock training budget,
then is tested on the same leave-one-out test rows. Prints, for both: training rows per
epoch, seconds per epoch, peak memory, epochs done and test NDCG@10 at the budget; last, the
ratio of epoch times as ``speed-up: N.Nx``.

    python benchmarks/epoch_speed.py [--budget=240]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MODELS = {
    # LSRM at the paper's l2 (Table IV: batch 256, 30 epochs) with its recipe: windows,
    # AdamW + cosine, optimizer switch.
    "LSRM": {"scale": "l2"},
    # RecBole's SASRec with RecBole's recipe (prefix rows, Adam, constant lr), same size.
    "SASRec": {"n_layers": 2, "hidden_size": 64, "inner_size": 256, "n_heads": 2, "loss_type": "CE"},
}


def worker(model: str, budget: float) -> None:
    from recbole_lsrm.pipeline import run

    start = time.time()

    def within_budget(epoch: int, record: dict) -> bool:
        # Stop when the next epoch (as long as the last one) would end past the budget.
        elapsed = time.time() - start
        return elapsed + record["train_time_s"] > budget

    options = {**MODELS[model], "MAX_ITEM_LIST_LENGTH": 50, "show_progress": False, "state": "WARNING",
               "checkpoint_dir": "saved/benchmarks"}
    if model == "SASRec":
        options["epochs"] = 300  # RecBole's default: the time budget ends it
    summary = run(model, "ml-100k", options=options, epoch_callback=within_budget)
    epoch_times = [r["train_time_s"] for r in summary["history"]]
    print(json.dumps({
        "model": model,
        "train_rows": summary["train_rows"],
        "epoch_s": sum(epoch_times) / len(epoch_times),
        "first_epoch_s": epoch_times[0],
        "epochs": summary["epochs_run"],
        "wall_s": time.time() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ndcg10": summary["test"]["ndcg@10"],
        "hit10": summary["test"]["hit@10"],
        "test_ce": summary["test"]["celoss"],
        "tokens_per_s": summary["train_tokens_per_s"],
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=240.0, help="training seconds per model (default 240)")
    parser.add_argument("--worker", choices=sorted(MODELS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.budget)
        return

    print(f"ml-100k, 2 layers, d=64, max length 50; training budget {args.budget:.0f}s per model\n", flush=True)
    results = {}
    for model in MODELS:
        out = subprocess.run(
            [sys.executable, __file__, f"--worker={model}", f"--budget={args.budget}"],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            sys.exit(f"{model} failed:\n{out.stderr[-3000:]}")
        results[model] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[model]
        print(f"{model:7s} rows/epoch {r['train_rows']:>7,}  s/epoch {r['epoch_s']:7.2f}  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB  epochs {r['epochs']:>3}  "
              f"positions/s {r['tokens_per_s']:>9,.0f}  test NDCG@10 {r['ndcg10']:.4f}  "
              f"HR@10 {r['hit10']:.4f}  CE {r['test_ce']:.4f}", flush=True)
    speedup = results["SASRec"]["epoch_s"] / results["LSRM"]["epoch_s"]
    better = results["LSRM"]["ndcg10"] > results["SASRec"]["ndcg10"]
    print(f"\nNDCG@10 at equal budget: LSRM {'higher' if better else 'NOT higher'} than SASRec")
    print(f"speed-up: {speedup:.1f}x")


if __name__ == "__main__":
    main()
