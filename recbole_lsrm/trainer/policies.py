"""The two schedules LSRMTrainer follows: the switching optimizer and the dropout schedule.

- :class:`OptimizerSwitch` is Algorithm 1 of the paper (III-B2): the Adam phase's optimizer and
  learning-rate schedule, the decision to switch (validation has not improved for
  ``switch_patience`` evaluations, or ``switch_epoch`` is reached), and the SGD phase's
  optimizer and schedule. ``optimizer_switch: False`` keeps the Adam phase to the end.
- :class:`DropoutSchedule` gives every epoch its layer-wise dropout rates (III-B1).

Both are built from a config whose values were checked when it was built (recbole_lsrm.options),
and hold no training state: that is :class:`~recbole_lsrm.trainer.state.TrainingState`, which they read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from recbole_lsrm.trainer.optim import WarmupCosine, build_adam, build_sgd
from recbole_lsrm.trainer.state import TrainingState


@dataclass(frozen=True)
class OptimizerSwitch:
    """Adam(W) until validation stops improving, then SGD from Adam's best weights."""

    enabled: bool
    epochs: int
    patience: int
    at_epoch: int | None  # switch_epoch: switch before this epoch instead of waiting for patience
    learner: str
    learning_rate: float
    adam_betas: tuple[float, float]
    weight_decay: float
    sgd_lr: float
    sgd_momentum: float
    lr_scheduler: str
    warmup_steps: int
    min_lr_ratio: float

    @classmethod
    def from_config(cls, config) -> "OptimizerSwitch":
        betas = config["adam_betas"] or (0.9, 0.999)
        return cls(
            enabled=bool(config["optimizer_switch"]),
            epochs=config["epochs"],
            patience=config["switch_patience"],
            at_epoch=config["switch_epoch"],
            learner=str(config["learner"]).lower(),
            learning_rate=config["learning_rate"],
            adam_betas=(float(betas[0]), float(betas[1])),
            weight_decay=config["weight_decay"],
            sgd_lr=config["sgd_lr"],
            sgd_momentum=config["sgd_momentum"],
            lr_scheduler=config["lr_scheduler"],
            warmup_steps=config["warmup_steps"],
            min_lr_ratio=config["min_lr_ratio"],
        )

    @property
    def needs_validation(self) -> bool:
        """Waiting for the validation metric needs a validation split."""
        return self.enabled and self.at_epoch is None

    def learning_rate_of(self, phase: str) -> tuple[str, float]:
        """The option that sets ``phase``'s learning rate, and its value."""
        return ("learning_rate", self.learning_rate) if phase == "adam" else ("sgd_lr", self.sgd_lr)

    def optimizer(self, model: nn.Module, phase: str) -> torch.optim.Optimizer:
        if phase == "adam":
            return build_adam(model, self.learner, self.learning_rate, self.weight_decay, self.adam_betas)
        return build_sgd(model, self.sgd_lr, self.sgd_momentum, self.weight_decay)

    def scheduler(self, optimizer, state: TrainingState, steps_per_epoch: int) -> WarmupCosine:
        """Warm-up and cosine over the Adam phase's epochs; the SGD phase decays from the switch, without warm-up."""
        if state.phase == "adam":
            total, warmup = self.epochs * steps_per_epoch, self.warmup_steps
        else:
            total, warmup = (self.epochs - state.switch_epoch) * steps_per_epoch, 0
        return WarmupCosine(optimizer, self.lr_scheduler, warmup, total, self.min_lr_ratio)

    def should_switch(self, state: TrainingState, epoch: int) -> bool:
        """After validating ``epoch``: does the SGD phase start with the next one?"""
        if not self.enabled or state.phase != "adam" or epoch + 1 >= self.epochs:
            return False
        if self.at_epoch is not None:
            return epoch + 1 >= self.at_epoch
        return state.evals_since_best >= self.patience


def rates_for_epoch(rates: list[float], schedule: str, epoch: int, schedule_epochs: int) -> list[float]:
    """The per-layer rates in force during ``epoch`` (0-based) under ``schedule``: ``constant``
    (always), ``early`` (the first ``schedule_epochs`` epochs, then 0) or ``late`` (0 for those
    epochs, then the rates), "Dropout reduces underfitting" (the LSRM paper's [16])."""
    if schedule == "early":
        return list(rates) if epoch < schedule_epochs else [0.0] * len(rates)
    if schedule == "late":
        return [0.0] * len(rates) if epoch < schedule_epochs else list(rates)
    return list(rates)


@dataclass(frozen=True)
class DropoutSchedule:
    """Each epoch's layer-wise dropout rates (``layer_dropout``, read once by
    :func:`recbole_lsrm.options.resolve_layer_dropout`) under ``dropout_schedule``."""

    kind: str
    epochs: int

    @classmethod
    def from_config(cls, config) -> "DropoutSchedule":
        return cls(config["dropout_schedule"], config["dropout_schedule_epochs"])

    def apply(self, model: nn.Module, epoch: int) -> None:
        """Set ``model``'s rates for ``epoch``; models without layer-wise dropout (RecBole's) are left alone."""
        if hasattr(model, "set_layer_dropout"):
            model.set_layer_dropout(rates_for_epoch(model.layer_dropout, self.kind, epoch, self.epochs))
