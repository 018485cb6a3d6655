"""Quality on the published ML-1M protocol: LSRM next to HSTU's and SASRec's published figures.

    python benchmarks/ml1m_quality.py [--epochs=50] [--budget=SECONDS] [--datasets=../shared/datasets]
                                      [--n_layers=2 --d_model=64 --max_len=200] [--bf16=auto|true|false]
                                      [--window_stride=100 --window_loss=new]

Reads ``ml-1m/ml-1m.inter.xz`` from the shared datasets folder (skips, saying so, when it is
absent; the file is never copied into the project), trains LSRM with the plugin's recipe
(AdamW then SGD at Adam's convergence, layer-wise dropout 0.3 -> 0.1) until the validation
CE stops improving (or ``--epochs`` / ``--budget`` ends it), and prints the test HR@10,
NDCG@10, HR@50 and NDCG@50 with 95% bootstrap intervals over the 6,040 test users next to
the published numbers.

Protocol (the plugin's leave-one-out, with HSTU's masking): users' interactions sorted by
timestamp, ties kept in file order (a stable sort); the last item of each user is the test
target, the one before it the validation target (used for early stopping only), all earlier
items train. Ranking is over all 3,706 items with the items of the user's input (the up to
``max_len`` items before the target) masked out, as HSTU's evaluation does. HSTU's own code
holds out no validation item and sorts timestamps with an unstable sort, so a few targets
differ; its numbers are therefore close to, not exactly on, this protocol.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ml1m_data import DEFAULT_DATASETS, BudgetStop, ml1m_source, unpacked_ml1m
from timing import cpu_name

# Published HR@10, NDCG@10, HR@50, NDCG@50 on ML-1M (HSTU repository README, history masked, length 200).
PUBLISHED = {
    "SASRec (HSTU paper)": (0.2853, 0.1603, 0.5474, 0.2185),
    "SASRec + full CE (Klenitskiy & Vasilev)": (0.3152, 0.1821, None, None),
    "HSTU": (0.3097, 0.1720, 0.5754, 0.2307),
    "HSTU-large": (0.3294, 0.1893, 0.5935, 0.2481),
}
METRICS = ("hit@10", "ndcg@10", "hit@50", "ndcg@50")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding ml-1m/")
    parser.add_argument("--epochs", type=int, default=50, help="most epochs (early stopping usually ends sooner)")
    parser.add_argument("--budget", type=float, default=None, help="stop before an epoch would end past this many seconds")
    parser.add_argument("--n_layers", type=int, default=2)
    parser.add_argument("--d_model", type=int, default=64)
    parser.add_argument("--n_heads", type=int, default=2)
    parser.add_argument("--max_len", type=int, default=200)
    parser.add_argument("--window_stride", type=int, default=None, help="items between training windows (default max_len)")
    parser.add_argument("--window_loss", default="all", choices=("all", "new"))
    parser.add_argument("--bf16", default="auto", choices=("auto", "true", "false"),
                        help="the bf16 option (auto: bf16 where the GPU or CPU multiplies it in hardware)")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    source = ml1m_source(args.datasets)
    if source is None:
        return 0

    import torch

    from recbole_lsrm.io import make_dir, write_json
    from recbole_lsrm.pipeline import run

    with unpacked_ml1m(source, "ml1m-quality-") as (work, data_path):
        stop = BudgetStop(args.budget)
        options = {
            "n_layers": args.n_layers, "d_model": args.d_model, "n_heads": args.n_heads,
            "MAX_ITEM_LIST_LENGTH": args.max_len, "window_stride": args.window_stride, "window_loss": args.window_loss,
            "eval_mask_history": True, "epochs": args.epochs, "topk": [10, 50],
            "show_progress": False, "state": "INFO",
            "bf16": {"auto": "auto", "true": True, "false": False}[args.bf16],
            "data_path": str(data_path), "checkpoint_dir": str(work / "saved"),
        }
        started = time.perf_counter()
        summary = run("LSRM", "ml-1m", options=options, epoch_callback=stop)
        used = time.perf_counter() - started
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name()
        test, ci = summary["test"], summary.get("test_intervals") or {}
        print(f"\nLSRM {args.n_layers} layers, d={args.d_model}, max length {args.max_len}, window stride "
              f"{args.window_stride or args.max_len}, window_loss {args.window_loss}; N = {summary['non_embedding_params']:,}")
        print(f"device: {device}, {summary['precision']}; epochs run {summary['epochs_run']} (best {summary['best_epoch']}, switch "
              f"{summary.get('switch_epoch')}); wall time {used / 60:.1f} min; {summary['train_tokens_per_s']:,.0f} positions/s")
        print(f"\n{'ML-1M test, history masked':42} " + " ".join(f"{m:>18}" for m in ("HR@10", "NDCG@10", "HR@50", "NDCG@50")))
        cells = [f"{test[m]:.4f} [{ci[m][0]:.3f},{ci[m][1]:.3f}]" if m in ci else f"{test[m]:.4f}" for m in METRICS]
        print(f"{'LSRM (this run) [95% interval]':42} " + " ".join(f"{c:>18}" for c in cells))
        for name, figures in PUBLISHED.items():
            print(f"{name:42} " + " ".join(f"{v:>18.4f}" if v is not None else f"{'-':>18}" for v in figures))
        for name in ("HSTU", "SASRec + full CE (Klenitskiy & Vasilev)"):
            ahead = [test[m] >= v for m, v in zip(METRICS[:2], PUBLISHED[name][:2])]
            print(f"beats {name} on HR@10 and NDCG@10: {'yes' if all(ahead) else 'no'}")
        record = {
            "device": device, "precision": summary["precision"], "options": {k: v for k, v in options.items() if k not in ("data_path", "checkpoint_dir")},
            "wall_s": used, "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
            "test": test, "test_intervals": ci,
            "history": [{k: r.get(k) for k in ("epoch", "train_loss", "valid_score", "phase", "train_time_s")}
                        for r in summary["history"]],
        }
        if args.out:
            make_dir(args.out.parent)
            write_json({**record, "published": PUBLISHED}, args.out)
        print(json.dumps(record))  # last line: read by benchmarks/gpu_suite.sh
    return 0


if __name__ == "__main__":
    sys.exit(main())
