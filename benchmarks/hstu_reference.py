"""HSTU's reference recipe on ML-1M, next to the published HSTU figures.

    python benchmarks/hstu_reference.py [--epochs=101] [--budget=SECONDS] [--datasets=../shared/datasets]
                                        [--n_layers=2 --n_heads=1 --d_model=50] [--keep=DIR] [--out=FILE]

Reads ``ml-1m/ml-1m.inter.xz`` from the shared datasets folder (skips, saying so, when it is
absent; the file is never copied into the project) and trains HSTU with ``--recipe=reference``
(properties/recipe/HSTU/reference.yaml): the reference's small ML-1M model (2 blocks, d = 50,
1 head), sampled softmax with 128 negatives per position over cosine scores / 0.05, AdamW
(0.9, 0.98) at 1e-3 for 101 epochs, batch 128, one window of the most recent 201 training items
per user. It prints the epochs, wall time and the test HR@10, NDCG@10, HR@50 and NDCG@50 (95%
bootstrap intervals over the 6,040 test users) next to the published HSTU and HSTU-large.
HSTU-large is ``--n_layers=8 --n_heads=2``.

Protocol (the reference's split): each user's interactions sorted by their exact timestamp,
ties kept in file order (a stable sort; ``--time_order=recbole`` sorts by RecBole's float32
time instead, which merges times up to 64 s apart into ties); the last item is the test target
and every earlier item trains (no validation item, so training runs all its epochs and the last
weights are tested). Ranking is over all 3,706 items with the up to 200 input items masked out.
The reference sorts with an unstable sort, so where a user has several ratings in one second
its order, and sometimes its test target, differs: 2,544 of the 6,040 users have more than one
rating in their last second.

``--keep=DIR`` keeps the run folder there; run again with the same ``--keep`` and a killed run
resumes from its last finished epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ml1m_data import DEFAULT_DATASETS, BudgetStop, ml1m_source, unpacked_ml1m

# Published HR@10, NDCG@10, HR@50, NDCG@50 on ML-1M (HSTU repository README, history masked, length 200).
PUBLISHED = {
    "HSTU": (0.3097, 0.1720, 0.5754, 0.2307),
    "HSTU-large": (0.3294, 0.1893, 0.5935, 0.2481),
}
METRICS = ("hit@10", "ndcg@10", "hit@50", "ndcg@50")
TARGET_SHARE = 0.98  # the target: each figure within 2% of the published one, or above


def _resumable(keep: Path | None) -> str | None:
    """The newest unfinished-or-finished checkpoint of an earlier run kept in ``keep``."""
    if keep is None:
        return None
    found = sorted(keep.glob("HSTU-ml-1m-*/checkpoint.pth"), key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding ml-1m/")
    parser.add_argument("--epochs", type=int, default=101, help="epochs (the reference trains 101)")
    parser.add_argument("--budget", type=float, default=None, help="stop before an epoch would end past this many seconds")
    parser.add_argument("--n_layers", type=int, default=None, help="blocks (reference: 2; HSTU-large: 8)")
    parser.add_argument("--n_heads", type=int, default=None, help="heads (reference: 1; HSTU-large: 2)")
    parser.add_argument("--d_model", type=int, default=None, help="width (reference: 50)")
    parser.add_argument("--time_order", choices=("exact", "recbole"), default=None,
                        help="how each user's items are ordered (the recipe: exact seconds; recbole: RecBole's float32 time)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folder here (and resume from it)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    source = ml1m_source(args.datasets)
    if source is None:
        return 0

    import torch

    from recbole_lsrm.io import make_dir, write_json
    from recbole_lsrm.pipeline import run

    with unpacked_ml1m(source, "hstu-reference-") as (work, data_path):
        stop = BudgetStop(args.budget)
        options = {"recipe": "reference", "epochs": args.epochs, "topk": [10, 50], "show_progress": False, "state": "INFO"}
        for key in ("n_layers", "n_heads", "d_model", "time_order"):
            if getattr(args, key) is not None:
                options[key] = getattr(args, key)
        paths = {"data_path": str(data_path), "checkpoint_dir": str(args.keep or work / "saved")}
        resume = _resumable(args.keep)
        started = time.perf_counter()
        if resume:
            print(f"resuming {resume}")
            summary = run(options=paths, checkpoint_path=resume, epoch_callback=stop)
        else:
            summary = run("HSTU", "ml-1m", options={**options, **paths}, epoch_callback=stop)
        used = time.perf_counter() - started
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
        test, ci = summary["test"], summary.get("test_intervals") or {}
        print(f"\nHSTU, --recipe=reference: {summary['n_layers']} blocks, d={summary['d_model']}, {summary['n_heads']} "
              f"head(s), max length {summary['max_seq_length']}; N = {summary['non_embedding_params']:,}")
        print(f"device: {device}; epochs run {summary['epochs_run']} of {summary['epochs']}; training "
              f"{summary['train_time_s'] / 60:.1f} min (this call {used / 60:.1f} min); "
              f"{summary['train_tokens_per_s']:,.0f} positions/s")
        print(f"\n{'ML-1M test, history masked':30} " + " ".join(f"{m:>18}" for m in ("HR@10", "NDCG@10", "HR@50", "NDCG@50")))
        cells = [f"{test[m]:.4f} [{ci[m][0]:.3f},{ci[m][1]:.3f}]" if m in ci else f"{test[m]:.4f}" for m in METRICS]
        print(f"{'HSTU, this run [95%]':30} " + " ".join(f"{c:>18}" for c in cells))
        for name, figures in PUBLISHED.items():
            print(f"{name + ' (published)':30} " + " ".join(f"{v:>18.4f}" for v in figures))
        name = "HSTU-large" if (summary["n_layers"] or 0) >= 8 else "HSTU"
        shares = {m: test[m] / v for m, v in zip(METRICS, PUBLISHED[name])}
        print(f"\nthis run / published {name}: " + ", ".join(f"{m} {s:.3f}" for m, s in shares.items()))
        print(f"each within 2% of the published figure or above: {'yes' if min(shares.values()) >= TARGET_SHARE else 'no'}")
        record = {
            "device": device, "options": options, "epochs_run": summary["epochs_run"],
            "train_time_s": summary["train_time_s"], "positions_per_s": summary["train_tokens_per_s"],
            "non_embedding_params": summary["non_embedding_params"],
            "test": test, "test_intervals": ci, "compared_with": name, "share_of_published": shares,
            "history": [{k: r.get(k) for k in ("epoch", "train_loss", "train_time_s")} for r in summary["history"]],
        }
        if args.out:
            make_dir(args.out.parent)
            write_json({**record, "published": PUBLISHED}, args.out)
        print(json.dumps(record))  # last line: machine-readable
    return 0


if __name__ == "__main__":
    sys.exit(main())
