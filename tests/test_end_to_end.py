"""Whole runs on ml-100k and small fixtures: learning, summaries, resume, RecBole baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recbole_lsrm.pipeline import run

SUMMARY_FIELDS = {
    "model", "dataset", "scale", "n_layers", "d_model", "non_embedding_params", "total_params",
    "epochs_run", "switch_epoch", "best_valid", "test", "test_ce_loss", "train_time_s",
    "train_tokens_per_s", "run_dir", "checkpoint", "history",
}


@pytest.fixture(scope="module")
def ml100k_run(tmp_path_factory):
    saved = tmp_path_factory.mktemp("ml100k") / "saved"
    options = {
        "n_layers": 1, "d_model": 32, "n_heads": 2, "epochs": 4, "train_batch_size": 128,
        "learning_rate": 0.003, "warmup_steps": 0, "show_progress": False, "state": "INFO",
        "checkpoint_dir": str(saved),
    }
    return run("LSRM", "ml-100k", options=options)


@pytest.mark.slow
def test_lsrm_learns_on_ml100k(ml100k_run):
    losses = [r["train_loss"] for r in ml100k_run["history"]]
    assert losses[-1] < losses[0] - 0.3
    test = ml100k_run["test"]
    n_items = 1682
    # A random ranking hits the held-out item in the top 10 with probability 10 / n_items.
    assert test["hit@10"] > 3 * 10 / n_items
    assert test["ndcg@10"] > 3 * (10 / n_items) / 4
    assert 0 < test["celoss"] < 7.43  # log(1682) = 7.43 is the uniform model's CE
    assert all(0 <= v <= 1 for k, v in test.items() if k != "celoss")


def test_summary_json_holds_the_run(ml100k_run):
    path = Path(ml100k_run["run_dir"]) / "summary.json"
    summary = json.loads(path.read_text())
    assert SUMMARY_FIELDS <= set(summary)
    assert summary["model"] == "LSRM" and summary["dataset"] == "ml-100k"
    assert summary["non_embedding_params"] == 12 * 1 * 32 * 32
    assert summary["epochs_run"] == 4 and summary["train_tokens_per_s"] > 0
    assert summary["test_ce_loss"] == summary["test"]["celoss"]
    assert (Path(ml100k_run["run_dir"]) / "run.log").read_text().count("epoch 3 training") == 1


class _Killed(Exception):
    pass


def test_kill_and_resume_gives_the_uninterrupted_result(tiny_dataset, run_options):
    options = {**run_options, **tiny_dataset, "epochs": 5, "switch_epoch": 3, "n_layers": 2,
               "layer_dropout": [0.3, 0.1], "stopping_step": 10}
    full = run("LSRM", "cyclic", options=options)

    def kill_after_epoch_1(epoch, record):
        if epoch == 1:
            raise _Killed

    with pytest.raises(_Killed):
        run("LSRM", "cyclic", options=options, epoch_callback=kill_after_epoch_1)
    killed_dir = max(Path(options["checkpoint_dir"]).iterdir(), key=lambda p: p.stat().st_mtime)
    assert not (killed_dir / "summary.json").exists()
    resumed = run(checkpoint_path=str(killed_dir / "checkpoint.pth"))
    assert resumed["run_dir"] == str(killed_dir)
    assert resumed["epochs_run"] == 5 and resumed["switch_epoch"] == 3
    assert resumed["test"] == full["test"]
    assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in full["history"]]

    # A finished run given again is only tested.
    again = run(checkpoint_path=str(killed_dir / "checkpoint.pth"))
    assert again["test"] == full["test"] and again["epochs_run"] == 5


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec", "Caser", "BERT4Rec"])
def test_recbole_baselines_run_through_the_same_pipeline(model, tiny_dataset, run_options):
    options = {**run_options, **tiny_dataset, "epochs": 1, "MAX_ITEM_LIST_LENGTH": 10}
    options = {k: v for k, v in options.items() if k not in ("n_layers", "d_model", "n_heads")}
    summary = run(model, "cyclic", options=options)
    assert summary["model"] == model
    assert summary["non_embedding_params"] is None and summary["total_params"] > 0
    assert {"hit@10", "ndcg@10", "celoss"} <= set(summary["test"])
