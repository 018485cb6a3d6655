"""TrainingState: everything a training checkpoint holds, declared once.

A checkpoint (format ``recbole_lsrm.checkpoint/1``) is a plain dict: the bookkeeping fields of
:class:`TrainingState` under the names below, plus the states of the model, optimizer,
learning-rate schedule and random generators (:data:`STATE_PARTS`). The trainer writes and
reads it only through :func:`training_checkpoint` and :func:`read_training_checkpoint`, so a
field added here is saved and resumed everywhere, and a checkpoint that lacks one is refused
by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from recbole_lsrm.errors import CheckpointError
from recbole_lsrm.trainer import checkpoint

# The states of the objects training owns, stored beside the bookkeeping.
STATE_PARTS = ("model", "optimizer", "scheduler", "rng")

# Field -> checkpoint key, where the key predates the field's name (format 1 keeps its keys).
_STORED_AS = {"last_epoch": "epoch", "evals_since_best": "cur_step"}


@dataclass
class TrainingState:
    """Where training stands after an epoch: phase, best result so far, history and totals.

    ``evals_since_best`` counts validations without improvement since the best one (RecBole's
    ``cur_step``). The Adam phase compares it with ``switch_patience`` to decide the switch; the
    switch resets it, and the SGD phase (or a run without switching) compares it with
    ``stopping_step`` to stop early.
    """

    bigger_is_better: bool = True
    last_epoch: int = -1  # the last finished epoch; training goes on from last_epoch + 1
    finished: bool = False
    phase: str = "adam"  # "adam", then "sgd" after the switch
    switch_epoch: int | None = None  # the first epoch trained with SGD
    evals_since_best: int = 0
    best_valid_score: float = math.nan
    best_valid_result: dict | None = None
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)  # one record per finished epoch
    train_time: float = 0.0
    train_positions: int = 0

    def __post_init__(self) -> None:
        if math.isnan(self.best_valid_score):
            self.best_valid_score = -math.inf if self.bigger_is_better else math.inf

    @property
    def next_epoch(self) -> int:
        return self.last_epoch + 1

    def state_dict(self) -> dict[str, Any]:
        stored = {_STORED_AS.get(f.name, f.name): getattr(self, f.name) for f in _stored_fields()}
        stored["best_valid_score"] = float(self.best_valid_score)
        stored["history"] = list(self.history)
        return stored

    def load_state_dict(self, stored: dict[str, Any], source: str = "the checkpoint") -> None:
        missing = [key for key in (_STORED_AS.get(f.name, f.name) for f in _stored_fields()) if key not in stored]
        if missing:
            raise CheckpointError(f"{source} lacks {', '.join(missing)}: it was not written by LSRMTrainer")
        for f in _stored_fields():
            setattr(self, f.name, stored[_STORED_AS.get(f.name, f.name)])
        self.history = list(self.history)

    def summary(self) -> dict[str, Any]:
        return {
            "epochs_run": len(self.history),
            "best_epoch": self.best_epoch,
            "switch_epoch": self.switch_epoch,
            "final_phase": self.phase,
            "train_time_s": round(self.train_time, 3),
            "train_positions": self.train_positions,
            "train_tokens_per_s": round(self.train_positions / self.train_time, 1) if self.train_time > 0 else math.nan,
        }


def _stored_fields():
    return [f for f in fields(TrainingState) if f.name != "bigger_is_better"]


def training_checkpoint(state: TrainingState, run_info: dict, **parts: Any) -> dict[str, Any]:
    """The checkpoint dict of ``state`` with the states of :data:`STATE_PARTS` (all of them)."""
    if set(parts) != set(STATE_PARTS):
        raise ValueError(f"a training checkpoint needs exactly {STATE_PARTS}, got {sorted(parts)}")
    return {"format": checkpoint.FORMAT, "kind": "training_state", "run": run_info, **state.state_dict(), **parts}


def read_training_checkpoint(path: str | Path, state: TrainingState) -> dict[str, Any]:
    """Load ``path`` into ``state``; returns the parts (model, optimizer, scheduler, rng)."""
    stored = checkpoint.load(path)
    if not isinstance(stored, dict) or stored.get("format") != checkpoint.FORMAT or stored.get("kind") != "training_state":
        raise CheckpointError(f"{path} is not a recbole_lsrm training checkpoint")
    missing = [key for key in STATE_PARTS if key not in stored]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}: it was not written by LSRMTrainer")
    state.load_state_dict(stored, source=str(path))
    return {key: stored[key] for key in STATE_PARTS}
