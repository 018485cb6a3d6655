"""The trainer's parts on their own: the training state a checkpoint holds, and the two policies."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from recbole_lsrm.errors import CheckpointError
from recbole_lsrm.trainer.policies import DropoutSchedule, OptimizerSwitch
from recbole_lsrm.trainer.state import STATE_PARTS, TrainingState, read_training_checkpoint, training_checkpoint

V1 = Path(__file__).parent / "fixtures" / "checkpoint_v1" / "checkpoint.pth"

CONFIG = {
    "epochs": 10, "switch_patience": 2, "switch_epoch": None, "sgd_lr": 0.01, "sgd_momentum": 0.9,
    "optimizer_switch": True, "learner": "adamw", "learning_rate": 1e-3, "adam_betas": None, "weight_decay": 0.1,
    "lr_scheduler": "cosine", "warmup_steps": 0, "min_lr_ratio": 0.1,
}


def test_the_state_writes_exactly_the_keys_of_a_version_1_checkpoint():
    stored = torch.load(V1, weights_only=True)
    bookkeeping = set(stored) - set(STATE_PARTS) - {"format", "kind", "run"}
    assert set(TrainingState().state_dict()) == bookkeeping


def test_the_state_round_trips_through_a_checkpoint_file(tmp_path):
    state = TrainingState(bigger_is_better=False)
    assert state.best_valid_score == float("inf") and state.next_epoch == 0
    state.last_epoch, state.phase, state.switch_epoch, state.evals_since_best = 4, "sgd", 3, 1
    state.best_epoch, state.best_valid_result, state.history = 2, {"celoss": 3.1}, [{"epoch": 0}]
    parts = {key: {"x": torch.ones(2)} for key in STATE_PARTS}
    torch.save(training_checkpoint(state, {"model": "LSRM"}, **parts), tmp_path / "c.pth")
    again = TrainingState(bigger_is_better=False)
    read = read_training_checkpoint(tmp_path / "c.pth", again)
    assert again == state and again.next_epoch == 5
    assert set(read) == set(STATE_PARTS) and torch.equal(read["model"]["x"], torch.ones(2))
    with pytest.raises(ValueError, match="needs exactly"):
        training_checkpoint(state, {}, model={})


def test_a_file_that_is_not_a_training_checkpoint_is_refused(tmp_path):
    torch.save({"format": "recbole_lsrm.checkpoint/1", "kind": "best_model", "model": {}}, tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="not a recbole_lsrm training checkpoint"):
        read_training_checkpoint(tmp_path / "b.pth", TrainingState())


@pytest.mark.parametrize(
    "options, phase, stale, epoch, switches",
    [
        ({}, "adam", 1, 3, False),  # patience 2 not reached
        ({}, "adam", 2, 3, True),
        ({}, "sgd", 5, 3, False),  # already switched
        ({}, "adam", 2, 9, False),  # no epoch left for SGD
        ({"optimizer_switch": False}, "adam", 9, 3, False),
        ({"switch_epoch": 5}, "adam", 0, 3, False),  # a fixed epoch ignores patience
        ({"switch_epoch": 5}, "adam", 9, 3, False),
        ({"switch_epoch": 5}, "adam", 0, 4, True),
    ],
)
def test_the_switch_decision(options, phase, stale, epoch, switches):
    switch = OptimizerSwitch.from_config({**CONFIG, **options})
    state = TrainingState(phase=phase, evals_since_best=stale)
    assert switch.should_switch(state, epoch) is switches


def test_the_phases_optimizers_and_schedules():
    model = torch.nn.Linear(3, 2)
    switch = OptimizerSwitch.from_config(CONFIG)
    assert isinstance(switch.optimizer(model, "adam"), torch.optim.AdamW)
    sgd = switch.optimizer(model, "sgd")
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    # The SGD phase's cosine runs over the epochs left after the switch.
    schedule = switch.scheduler(sgd, TrainingState(phase="sgd", switch_epoch=6), steps_per_epoch=10)
    for _ in range(39):
        sgd.step()  # no gradients: nothing moves, but the schedule is stepped in order
        schedule.step()
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(39 / 40 * math.pi))))
    assert switch.learning_rate_of("sgd") == ("sgd_lr", 0.01)
    assert OptimizerSwitch.from_config(CONFIG).needs_validation
    assert not OptimizerSwitch.from_config({**CONFIG, "switch_epoch": 3}).needs_validation


class _Layered(torch.nn.Module):
    layer_dropout = [0.1, 0.3]

    def set_layer_dropout(self, rates):
        self.rates = rates


def test_the_dropout_schedule_sets_each_epochs_rates():
    model = _Layered()
    early = DropoutSchedule.from_config({"dropout_schedule": "early", "dropout_schedule_epochs": 2})
    early.apply(model, 1)
    assert model.rates == [0.1, 0.3]
    early.apply(model, 2)
    assert model.rates == [0.0, 0.0]
    DropoutSchedule("constant", 0).apply(torch.nn.Linear(2, 2), 0)  # a model without layer-wise dropout
