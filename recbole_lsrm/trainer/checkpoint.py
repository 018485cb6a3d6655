"""Checkpoints as plain state (tensors, numbers, strings, lists, dicts), written atomically
(:func:`recbole_lsrm.io.atomic_write`).

Nothing in them needs unpickling of code objects, so they always load with
``torch.load(..., weights_only=True)``. RNG states are stored as tensors so that a resumed
run draws the same dropout masks and batch order as an uninterrupted one.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from recbole_lsrm.compat import safe_torch_load
from recbole_lsrm.io import atomic_write

FORMAT = "recbole_lsrm.checkpoint/1"


def save(state: dict, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load(path: str | Path) -> dict:
    return safe_torch_load(str(path))


def rng_state(generator: torch.Generator | None) -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "loader": generator.get_state() if generator is not None else None,
    }


def restore_rng(state: dict, generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"], *state["numpy_gauss"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if generator is not None and state["loader"] is not None:
        generator.set_state(state["loader"])
