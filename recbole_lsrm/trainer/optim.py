"""Optimizers and learning-rate schedules for the two phases of the switching optimizer."""

from __future__ import annotations

import math

import torch
from torch import nn

from recbole_lsrm.errors import ConfigError

ADAM_PHASE_LEARNERS = ("adam", "adamw")
LR_SCHEDULERS = ("constant", "cosine")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """2-D weights (matrices, embeddings) decay; biases and norms do not.

    Padding rows are zero and get no gradient, so decay leaves them at zero.
    """
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def check_betas(betas) -> tuple[float, float]:
    if (
        not isinstance(betas, (list, tuple)) or len(betas) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
    ):
        raise ConfigError(f"adam_betas must be two numbers in [0, 1), got {betas!r}")
    return float(betas[0]), float(betas[1])


def build_adam(
    model: nn.Module, learner: str, lr: float, weight_decay: float, betas=(0.9, 0.999)
) -> torch.optim.Optimizer:
    if learner not in ADAM_PHASE_LEARNERS:
        raise ConfigError(f"learner must be one of {', '.join(ADAM_PHASE_LEARNERS)}, got {learner!r}")
    cls = torch.optim.AdamW if learner == "adamw" else torch.optim.Adam
    return cls(param_groups(model, weight_decay), lr=lr, betas=check_betas(betas))


def build_sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(param_groups(model, weight_decay), lr=lr, momentum=momentum)


def lr_factor(step: int, kind: str, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then constant or cosine."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosine(torch.optim.lr_scheduler.LambdaLR):
    """Per-step schedule; its state is plain numbers, so checkpoints stay tensor-only."""

    def __init__(self, optimizer, kind: str, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> None:
        if kind not in LR_SCHEDULERS:
            raise ConfigError(f"lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}, got {kind!r}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        super().__init__(
            optimizer, lambda step: lr_factor(step, kind, warmup_steps, total_steps, min_lr_ratio)
        )
