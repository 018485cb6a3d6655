"""Optimizers and learning-rate schedules for the two phases of the switching optimizer."""

from __future__ import annotations

import math

import torch
from torch import nn




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


def build_adam(
    model: nn.Module, learner: str, lr: float, weight_decay: float, betas=(0.9, 0.999)
) -> torch.optim.Optimizer:
    cls = torch.optim.AdamW if learner == "adamw" else torch.optim.Adam
    return cls(param_groups(model, weight_decay), lr=lr, betas=tuple(betas))


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
        super().__init__(
            optimizer, lambda step: lr_factor(step, kind, warmup_steps, total_steps, min_lr_ratio)
        )
