"""LSRM training epochs with side information or behaviours against the id-only epoch, side by side.

    python benchmarks/side_info_speed.py [--scale=l2] [--max-len=50] [--datasets=../shared/datasets]

Reads ``ml-1m/ml-1m.{inter,item,user}.xz`` from the shared datasets folder (skips, saying so,
when absent; nothing is copied into the project). Both runs build the plugin's own data path,
model and trainer at the same scale and time one whole training epoch each (after two untimed
warm-up steps): the id-only model, then ``feature_fusion: mean`` with the movies' genres and
release year as item features and the users' gender, age and occupation as user features.
Prints both epoch times and their ratio (the target: at most 1.3x). Then, where
``retailrocket-mb/retailrocket-mb.inter.xz`` is there too, the same for behaviours on that log
(target buy): ``behavior_mode: none`` against ``embed`` (the same rows with a behaviour
embedding) and ``token`` (twice the tokens, so about twice the time or more, as documented).
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import tempfile
import time
from pathlib import Path

import torch

from ml1m_data import DEFAULT_DATASETS, ml1m_source, unpacked_ml1m

FEATURES = {"item_features": ["genre", "release_year"], "user_features": ["gender", "age", "occupation"],
            "feature_fusion": "mean"}


def epoch_time(options: dict, data_path: Path, work: Path, dataset: str = "ml-1m") -> dict:
    from recbole.utils import init_seed

    from recbole_lsrm.config import LSRMConfig
    from recbole_lsrm.cpu_allocator import keep_freed_memory
    from recbole_lsrm.data import create_dataset, prepare_dataloaders
    from recbole_lsrm.model import get_model_class
    from recbole_lsrm.trainer import LSRMTrainer

    keep_freed_memory()
    model_class = get_model_class("LSRM")
    config = LSRMConfig(model_class, dataset, None, {
        **options, "state": "WARNING", "show_progress": False, "data_path": str(data_path),
        "checkpoint_dir": str(work / "saved"), "log_tensorboard": False,
    })
    init_seed(config["seed"], config["reproducibility"])
    train, _, _ = prepare_dataloaders(config, create_dataset(config, model_class), model_class)
    model = model_class(config, train.dataset).to(config["device"])
    trainer = LSRMTrainer(config, model, work / "run", run_info={})
    trainer.scheduler = trainer.build_scheduler(len(train))
    start = time.perf_counter()
    loss, positions = trainer._train_epoch(train, 0)
    seconds = time.perf_counter() - start
    return {"epoch_s": seconds, "positions": positions, "loss": loss, "batches": len(train),
            "params": sum(p.numel() for p in model.parameters())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding ml-1m/")
    parser.add_argument("--scale", default="l2")
    parser.add_argument("--max-len", type=int, default=50)
    args = parser.parse_args()
    source = ml1m_source(args.datasets)
    if source is None:
        return 0
    if not source.with_name("ml-1m.item.xz").is_file():
        print(f"skipped: {source.with_name('ml-1m.item.xz')} not found (the ML-1M side information)")
        return 0
    from recbole_lsrm.logging_setup import init_logging

    init_logging("WARNING")
    base = {"scale": args.scale, "MAX_ITEM_LIST_LENGTH": args.max_len}
    with unpacked_ml1m(source, "side-info-", side_information=True) as (work, data_path):
        print(f"ML-1M, LSRM {args.scale}, windows of {args.max_len}, {torch.get_num_threads()} threads, "
              f"torch {torch.__version__}")
        ids = epoch_time(base, data_path, work / "ids")
        fused = epoch_time({**base, **FEATURES}, data_path, work / "features")
    for name, r in (("item ids only", ids), ("with side information", fused)):
        print(f"{name:>22}: one epoch {r['epoch_s']:6.1f} s ({r['batches']} batches, {r['positions']:,} positions, "
              f"{r['params']:,} parameters, training loss {r['loss']:.4f})")
    print(f"ratio: {fused['epoch_s'] / ids['epoch_s']:.2f}x (target: at most 1.3x)")
    record = {"ids": ids, "features": fused, "ratio": fused["epoch_s"] / ids["epoch_s"]}
    log = args.datasets / "retailrocket-mb" / "retailrocket-mb.inter.xz"
    if log.is_file():
        with tempfile.TemporaryDirectory(prefix="behaviours-") as folder:
            data_path = Path(folder) / "data"
            (data_path / "retailrocket-mb").mkdir(parents=True)
            with lzma.open(log) as packed, open(data_path / "retailrocket-mb" / "retailrocket-mb.inter", "wb") as out:
                shutil.copyfileobj(packed, out)
            base = {"scale": args.scale, "MAX_ITEM_LIST_LENGTH": args.max_len, "behavior_field": "behavior",
                    "target_behavior": "buy"}
            times = {mode: epoch_time({**base, "behavior_mode": mode}, data_path, Path(folder) / mode, "retailrocket-mb")
                     for mode in ("none", "embed", "token")}
        print(f"\nRetailRocket (view / cart / buy, target buy), LSRM {args.scale}, windows of {args.max_len}:")
        for mode, r in times.items():
            print(f"{'behavior_mode: ' + mode:>22}: one epoch {r['epoch_s']:6.1f} s "
                  f"({r['epoch_s'] / times['none']['epoch_s']:.2f}x of none)")
        record["behaviours"] = times
    else:
        print(f"(behaviours skipped: {log} not found)")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
