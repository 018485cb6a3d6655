"""LSRM's all-position training vs RecBole's SASRec on ml-100k, side by side.

Both models: 2 layers, d = 64, 2 heads, FFN 4d, max length 50, full cross-entropy. Each runs
in its own process (so peak memory is its own) under the same wall-clock training budget,
then is tested on the same leave-one-out test rows. LSRM runs twice, in fp32 (``bf16: False``)
and in bf16 (``bf16: True``, on a GPU or a CPU with AMX or AVX-512 BF16; skipped elsewhere);
SASRec runs once, in fp32 as RecBole's models do on a CPU. Prints, for each: training rows per
epoch, seconds per epoch, peak memory, epochs done and test NDCG@10 at the budget; last, the
ratio of SASRec's epoch time to each LSRM's as ``speed-up: N.Nx``.

    python benchmarks/epoch_speed.py [--budget=240]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

MODELS = {
    # LSRM at the paper's l2 (Table IV: batch 256, 30 epochs) with its recipe: windows,
    # AdamW + cosine, optimizer switch; in fp32 and in bf16.
    "LSRM fp32": ("LSRM", {"scale": "l2", "bf16": False}),
    "LSRM bf16": ("LSRM", {"scale": "l2", "bf16": True}),
    # RecBole's SASRec with RecBole's recipe (prefix rows, Adam, constant lr), same size.
    "SASRec": ("SASRec", {"n_layers": 2, "hidden_size": 64, "inner_size": 256, "n_heads": 2, "loss_type": "CE"}),
}


def worker(name: str, budget: float) -> None:
    from recbole_lsrm.pipeline import run

    start = time.time()

    def within_budget(epoch: int, record: dict) -> bool:
        # Stop when the next epoch (as long as the last one) would end past the budget.
        elapsed = time.time() - start
        return elapsed + record["train_time_s"] > budget

    model, own = MODELS[name]
    options = {**own, "MAX_ITEM_LIST_LENGTH": 50, "show_progress": False, "state": "WARNING",
               "checkpoint_dir": "saved/benchmarks"}
    if model == "SASRec":
        options["epochs"] = 300  # RecBole's default: the time budget ends it
    summary = run(model, "ml-100k", options=options, epoch_callback=within_budget)
    epoch_times = [r["train_time_s"] for r in summary["history"]]
    print(json.dumps({
        "model": name, "precision": summary["precision"],
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

    from timing import cpu_name
    from recbole_lsrm.precision import resolve

    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"ml-100k, 2 layers, d=64, max length 50; training budget {args.budget:.0f}s per model; "
          f"{torch.cuda.get_device_name() if device == 'cuda' else cpu_name()}\n", flush=True)
    results = {}
    for name in MODELS:
        if "bf16" in name and not resolve("auto", device).bf16:
            print(f"{name}: skipped ({resolve('auto', device).reason})")
            continue
        out = subprocess.run(
            [sys.executable, __file__, f"--worker={name}", f"--budget={args.budget}"],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[name]
        print(f"{name:9s} rows/epoch {r['train_rows']:>7,}  s/epoch {r['epoch_s']:7.2f}  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB  epochs {r['epochs']:>3}  "
              f"positions/s {r['tokens_per_s']:>9,.0f}  test NDCG@10 {r['ndcg10']:.4f}  "
              f"HR@10 {r['hit10']:.4f}  CE {r['test_ce']:.4f}", flush=True)
    for name in (n for n in results if n.startswith("LSRM")):
        better = results[name]["ndcg10"] > results["SASRec"]["ndcg10"]
        print(f"\n{name}: NDCG@10 at equal budget {'higher' if better else 'NOT higher'} than SASRec's; "
              f"speed-up: {results['SASRec']['epoch_s'] / results[name]['epoch_s']:.1f}x")


if __name__ == "__main__":
    main()
