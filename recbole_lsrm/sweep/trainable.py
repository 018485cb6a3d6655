"""The Ray Tune trainable: one trial = one call of the training pipeline.

Tune calls :func:`train_trial` with the trial's config dict (its :class:`TrialSpec` and the
torch thread count). The pipeline runs in the trial's own absolute folder; every epoch's
losses go to Tune through :func:`recbole_lsrm.sweep.session.report`, so Tune (and its
callbacks, loggers and TensorBoard files) see the learning curve as it grows.

GPUs: Ray sets ``CUDA_VISIBLE_DEVICES`` for the trial to the GPU(s) it reserved, and the
plugin's config never overrides it, so the model lands on the trial's own GPU.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Any

import torch

from recbole_lsrm.errors import LSRMError
from recbole_lsrm.io import make_dir, read_json
from recbole_lsrm.pipeline import run
from recbole_lsrm.sweep.plan import TrialSpec
from recbole_lsrm.sweep.results import (
    ERROR_FILE,
    finished_summary,
    unfinished_checkpoint,
    write_error,
    write_trial_record,
)
from recbole_lsrm.sweep.session import report


def epoch_metrics(epoch: int, record: dict[str, Any]) -> dict[str, Any]:
    """The per-epoch result Tune sees: epochs counted from 1, losses as plain floats."""
    valid = record.get("valid") or {}
    metrics = {
        "epoch": epoch + 1,
        "train_loss": float(record["train_loss"]),
        "lr": float(record.get("lr", float("nan"))),
        "phase": str(record.get("phase", "")),
    }
    if "valid_score" in record:
        metrics["valid_score"] = float(record["valid_score"])
    for name in ("celoss", "auc"):  # a retriever's validation CE, a ranker's AUC
        if name in valid:
            metrics[f"valid_{name}"] = float(valid[name])
    return metrics


def train_trial(config: dict[str, Any]) -> None:
    """Train and test one trial; resumes the trial's interrupted run if there is one."""
    spec = TrialSpec.from_dict(config["trial"])
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    trial_dir = spec.trial_dir
    make_dir(trial_dir)
    (trial_dir / ERROR_FILE).unlink(missing_ok=True)  # an earlier attempt's error is not this one's

    def on_epoch(epoch: int, record: dict[str, Any]) -> None:
        report(epoch_metrics(epoch, record))

    summary_path = finished_summary(trial_dir)
    try:
        if summary_path is None:
            checkpoint = unfinished_checkpoint(trial_dir)
            if checkpoint is not None:
                summary = run(checkpoint_path=str(checkpoint), epoch_callback=on_epoch)
            else:
                summary = run(spec.model, spec.dataset, spec.config_files, spec.options, epoch_callback=on_epoch)
            summary_path = Path(summary["run_dir"]) / "summary.json"
    except LSRMError as err:
        write_error(trial_dir, f"{type(err).__name__}: {err}")
        raise
    except Exception:
        write_error(trial_dir, traceback.format_exc())
        raise
    write_trial_record(config["trial"], summary_path, os.environ.get("CUDA_VISIBLE_DEVICES"))

    summary = read_json(summary_path, "a run summary")
    test = summary.get("test") or {}
    final = {"trial_finished": True, "test_ce_loss": summary.get("test_ce_loss"), "run_dir": summary.get("run_dir")}
    final.update({f"test_{k}": v for k, v in test.items()})
    report(final)
