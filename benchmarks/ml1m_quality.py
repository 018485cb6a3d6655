"""Quality under a time budget: a 4-layer d=128 LSRM on ML-1M, max length 200, HSTU's protocol.

    python benchmarks/ml1m_quality.py [--budget=120] [--datasets=../shared/datasets]

Reads ``ml-1m/ml-1m.inter.xz`` from the shared datasets folder (skips, saying so, when it is
absent; the file is never copied into the project), trains LSRM (4 layers, d = 128, 4 heads,
MAX_ITEM_LIST_LENGTH 200) with the plugin's recipe, and stops before the next epoch would end
past ``--budget`` seconds of training plus validation. Evaluation masks the user's input items
out of the ranking (``eval_mask_history``), as HSTU's ML-1M results do. Prints the epochs run,
the time used and the test metrics of the best validation epoch.

Target on an H100-class GPU: test NDCG@10 >= 0.19 within 120 s.
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

OPTIONS = {
    "n_layers": 4, "d_model": 128, "n_heads": 4, "MAX_ITEM_LIST_LENGTH": 200,
    "eval_mask_history": True, "valid_metric": "NDCG@10", "epochs": 200,
    "show_progress": False, "state": "INFO",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=120.0, help="seconds of training and validation")
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding ml-1m/")
    args = parser.parse_args()
    source = args.datasets / "ml-1m" / "ml-1m.inter.xz"
    if not source.is_file():
        print(f"skipped: {source} not found (pass --datasets=FOLDER holding ml-1m/ml-1m.inter.xz)")
        return 0

    import torch

    from recbole_lsrm.pipeline import run

    work = Path(tempfile.mkdtemp(prefix="ml1m-quality-"))
    try:
        (work / "data" / "ml-1m").mkdir(parents=True)
        with lzma.open(source) as packed, open(work / "data" / "ml-1m" / "ml-1m.inter", "wb") as out:
            shutil.copyfileobj(packed, out)
        started = {}

        def within_budget(epoch: int, record: dict) -> bool:
            now = time.perf_counter()
            started.setdefault("t", now - record["train_time_s"])
            elapsed = now - started["t"]
            per_epoch = elapsed / (epoch + 1)
            return elapsed + per_epoch > args.budget

        options = {**OPTIONS, "data_path": str(work / "data"), "checkpoint_dir": str(work / "saved")}
        summary = run("LSRM", "ml-1m", options=options, epoch_callback=within_budget)
        used = time.perf_counter() - started["t"]
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
        test = summary["test"]
        print(f"device: {device}; epochs: {summary['epochs_run']} (best {summary['best_epoch']}); "
              f"training + validation: {used:.0f} s of {args.budget:.0f} s; "
              f"{summary['train_tokens_per_s']:,.0f} positions/s")
        print(f"test NDCG@10 {test['ndcg@10']:.4f}  HR@10 {test['hit@10']:.4f}  CE {test['celoss']:.3f}  "
              f"(target on a GPU: NDCG@10 >= 0.19 within 120 s)")
        print(json.dumps({"device": device, "used_s": used, "epochs": summary["epochs_run"],
                          "history": [{k: r.get(k) for k in ("epoch", "train_loss", "valid_score", "train_time_s")}
                                      for r in summary["history"]],
                          "test": test}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
