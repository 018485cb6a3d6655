"""Shared fixtures: tiny models, a small hand-made dataset, and run folders in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import recbole_lsrm  # noqa: F401  (registers the plugin's metrics)

# A model small enough for many runs in one test session.
TINY = {
    "n_layers": 1,
    "d_model": 16,
    "n_heads": 2,
    "train_batch_size": 64,
    "epochs": 2,
    "warmup_steps": 0,
    "show_progress": False,
    "state": "WARNING",
    "eval_batch_size": 512,
}


def write_inter(path: Path, rows: list[tuple], header: str = "user_id:token\titem_id:token\ttimestamp:float") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [header] + ["\t".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cyclic_sequences(n_users: int = 60, n_items: int = 30, length: int = 25, seed: int = 0) -> list[tuple]:
    """Users walk through items in a cycle (i -> i+1), so the next item is learnable."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        start = int(rng.integers(n_items))
        for t in range(length):
            rows.append((f"u{u}", f"i{(start + t) % n_items}", 1_000 + 10 * t))
    return rows


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> dict:
    """Options that point RecBole at a small learnable dataset named 'cyclic'."""
    write_inter(tmp_path / "data" / "cyclic" / "cyclic.inter", cyclic_sequences())
    return {"data_path": str(tmp_path / "data"), "checkpoint_dir": str(tmp_path / "saved"), "topk": [5, 10]}


@pytest.fixture
def run_options(tmp_path: Path) -> dict:
    """TINY plus a checkpoint_dir inside tmp_path."""
    return {**TINY, "checkpoint_dir": str(tmp_path / "saved")}


@pytest.fixture
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy shared machine every
    OpenMP barrier waits for a descheduled thread (100x slower steps): run on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def plan_from_argv(argv: list[str]):
    """A sweep's plan from its command line, as ``python -m recbole_lsrm.sweep`` builds it."""
    from recbole_lsrm.sweep.plan import build_plan, request_from_argv

    return build_plan(request_from_argv(argv))


# --- tiny models built without data -----------------------------------------------------------
class Items:
    """What SequentialRecommender and the plugin's models read from a dataset: the number of
    items and the types of the sequence fields (with the timestamps' unless ``timestamps=False``)."""

    def __init__(self, n_items: int, timestamps: bool = True) -> None:
        self.n_items = n_items
        self.field2type = {"item_id_list": "token_seq", "item_length": "token"}
        if timestamps:
            self.field2type["timestamp_list"] = "float_seq"

    def num(self, field: str) -> int:
        return self.n_items


# RecBole's field names, as its Config sets them.
RECBOLE_FIELDS = {
    "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp", "LIST_SUFFIX": "_list",
    "ITEM_LIST_LENGTH_FIELD": "item_length", "NEG_PREFIX": "neg_",
}


def build_model(model_class: type, config: dict, items: Items):
    """A model from a plain config dict (RecBole's field names added), seeded: the same weights each call."""
    torch.manual_seed(0)
    return model_class({**RECBOLE_FIELDS, "device": torch.device("cpu"), **config}, items)


def make_lsrm(n_items: int = 50, **overrides):
    """A two-layer LSRM of width 16 over ``n_items`` items, windows of 12."""
    from recbole_lsrm.model import LSRM

    config = {"MAX_ITEM_LIST_LENGTH": 12, "n_layers": 2, "d_model": 16, "n_heads": 2, "layer_dropout": 0.1,
              "initializer_range": 0.02, **overrides}
    return build_model(LSRM, config, Items(n_items))
