"""The paper's training procedure: the optimizer switch, the dropout schedule, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from recbole_lsrm.pipeline import run
from recbole_lsrm.trainer import checkpoint


def _capture(into: list):
    def callback(epoch: int, record: dict) -> None:
        into.append(record)

    return callback


def test_optimizer_switches_to_sgd(tiny_dataset, run_options):
    records = []
    summary = run(
        "LSRM", "cyclic",
        options={**run_options, **tiny_dataset, "epochs": 4, "switch_epoch": 2, "stopping_step": 10,
                 "sgd_lr": 0.01, "learning_rate": 0.001},
        epoch_callback=_capture(records),
    )
    assert summary["switch_epoch"] == 2
    assert [r["phase"] for r in records] == ["adam", "adam", "sgd", "sgd"]
    state = checkpoint.load(summary["checkpoint"])
    assert state["phase"] == "sgd"
    assert "momentum_buffer" in next(iter(state["optimizer"]["state"].values()))  # SGD's state
    assert records[1]["lr"] <= 0.001 < records[2]["lr"] <= 0.01  # SGD's own rate, cosine from sgd_lr


def test_switch_after_patience_restores_the_best_weights(tiny_dataset, run_options, monkeypatch):
    from recbole_lsrm.trainer.lsrm_trainer import LSRMTrainer

    scores = iter([5.0, 4.0, 4.5, 4.4, 4.6, 4.7])  # CE: best at epoch 1, worse at epoch 2

    def scripted_valid(self, valid_data, show_progress=False):
        score = next(scores)
        return score, {"celoss": score}

    monkeypatch.setattr(LSRMTrainer, "_valid_epoch", scripted_valid)
    restored = {}

    def after_epoch(epoch, record):
        if epoch == 2:
            run_dir = next(Path(run_options["checkpoint_dir"]).iterdir())
            best = checkpoint.load(run_dir / "best_model.pth")
            current = checkpoint.load(run_dir / "checkpoint.pth")
            restored["epoch"] = best["epoch"]
            restored["same"] = all(torch.equal(best["model"][k], current["model"][k]) for k in best["model"])

    summary = run(
        "LSRM", "cyclic",
        options={**run_options, **tiny_dataset, "epochs": 6, "switch_patience": 1, "stopping_step": 2},
        epoch_callback=after_epoch,
    )
    assert summary["switch_epoch"] == 3  # Adam converged after epoch 2; SGD from epoch 3
    assert restored == {"epoch": 1, "same": True}
    assert summary["epochs_run"] == 6  # SGD ran until the end (stopping_step not exceeded)


def test_no_switch_when_turned_off(tiny_dataset, run_options):
    records = []
    summary = run(
        "LSRM", "cyclic",
        options={**run_options, **tiny_dataset, "epochs": 3, "optimizer_switch": False},
        epoch_callback=_capture(records),
    )
    assert summary["switch_epoch"] is None
    assert {r["phase"] for r in records} == {"adam"}
    state = checkpoint.load(summary["checkpoint"])
    assert "exp_avg" in next(iter(state["optimizer"]["state"].values()))  # still Adam's state


def test_dropout_schedule_sets_rates_per_epoch(tiny_dataset, run_options, monkeypatch):
    from recbole_lsrm.model.lsrm import LSRM

    seen = []
    original = LSRM.set_layer_dropout

    def spy(self, rates):
        seen.append(list(rates))
        return original(self, rates)

    monkeypatch.setattr(LSRM, "set_layer_dropout", spy)
    run(
        "LSRM", "cyclic",
        options={**run_options, **tiny_dataset, "epochs": 3, "n_layers": 2,
                 "layer_dropout": [0.4, 0.2], "dropout_schedule": "early", "dropout_schedule_epochs": 2},
    )
    assert seen[-3:] == [[0.4, 0.2], [0.4, 0.2], [0.0, 0.0]]


def test_checkpoints_hold_plain_state_only(tiny_dataset, run_options):
    summary = run("LSRM", "cyclic", options={**run_options, **tiny_dataset})
    for path in (summary["checkpoint"], summary["best_model"]):
        state = torch.load(path, weights_only=True)  # no pickled objects inside
        assert state["format"] == checkpoint.FORMAT
    on_disk = json.loads(open(summary["run_dir"] + "/summary.json").read())
    assert on_disk["epochs_run"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("steps", [3, 4])
def test_gradient_accumulation_gives_the_weights_of_one_batch(run_options, one_thread, steps):
    """K micro-batches and one step equal one batch K times the size; ml-100k's windows have
    different numbers of targets, so the micro-batches must be weighted by their positions."""

    # fp32: the sums of micro-batches must equal the whole batch's to 2e-5, below bf16's rounding.
    options = {**run_options, "epochs": 1, "layer_dropout": 0.0, "train_batch_size": 96, "topk": [10], "bf16": False}
    whole = run("LSRM", "ml-100k", options=options)
    accumulated = run("LSRM", "ml-100k", options={**options, "gradient_accumulation_steps": steps})
    a = checkpoint.load(whole["checkpoint"])["model"]
    b = checkpoint.load(accumulated["checkpoint"])["model"]
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=2e-5, msg=name)
    assert accumulated["history"][0]["train_loss"] == pytest.approx(whole["history"][0]["train_loss"], rel=1e-5)


def test_a_long_cpu_epoch_is_announced_with_its_projected_length(caplog):
    """RecBole's SASRec on ml-100k takes minutes an epoch on a CPU: the run says so at once."""
    import logging
    from types import SimpleNamespace

    from recbole_lsrm.trainer.lsrm_trainer import LSRMTrainer

    trainer = SimpleNamespace(epochs=300, state=SimpleNamespace(next_epoch=0), logger=logging.getLogger("t"))
    with caplog.at_level(logging.INFO, logger="t"):
        LSRMTrainer._say_epoch_time(trainer, 30.0)
        assert not caplog.records  # under a minute: nothing to say
        LSRMTrainer._say_epoch_time(trainer, 140.0)
    message = caplog.records[-1].getMessage()
    assert "about 2.3 min an epoch" in message and "300 epochs (about 11.7 h" in message and "--epochs=N" in message


def test_the_projected_epoch_time_is_said_once_a_run(tiny_dataset, run_options, monkeypatch):
    from recbole_lsrm.trainer import lsrm_trainer

    said = []
    monkeypatch.setattr(lsrm_trainer, "ESTIMATE_AFTER_STEPS", 2)
    monkeypatch.setattr(lsrm_trainer.LSRMTrainer, "_say_epoch_time", lambda self, seconds: said.append(seconds))
    run("LSRM", "cyclic", options={**run_options, **tiny_dataset, "epochs": 4, "train_batch_size": 12})
    assert len(said) == 1  # in the first epoch, not again in each later one
