"""Trajectory prediction (paper V-F): generate the next k items, score them with TR@k.

``trajectory_holdout`` (default 10 with this task) removes the last items of every user's
sequence before training, validation and test are split. For each (non-cold) user with at
least one earlier item, the model generates k = 1..10 items autoregressively from the items
before the held-out part (each prediction is fed back; an item already in the user's history
or already generated is never repeated), and the generation is compared with the held-out
items:

    TR@k = (1/Z) * sum_{j=1..k} (2^{I_j} - 1) / log2(j + 1),   Z = sum_{j=1..k} 1 / log2(j + 1),

with I_j = 1 if the j-th generated item is among the true next k items (LSRM paper V).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.evaluation.intervals import bootstrap_intervals
from recbole_lsrm.model.contract import append_items, is_plugin_model
from recbole_lsrm.options import TRAJECTORY_STEPS
from recbole_lsrm.tasks.context import Sequences, TaskContext

MAX_STEPS = TRAJECTORY_STEPS  # options.TRAJECTORY_STEPS: the held-out items the task needs


def trajectory_rank(generated: torch.Tensor, future: torch.Tensor, k: int) -> torch.Tensor:
    """TR@k per row: generated and future are (B, >= k) item ids -> (B,)."""
    gen, fut = generated[:, :k], future[:, :k]
    hits = (gen[:, :, None] == fut[:, None, :]).any(dim=2).double()  # I_j, (B, k)
    discount = 1.0 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64))
    return ((2.0**hits - 1.0) * discount).sum(dim=1) / discount.sum()


def _padded(values: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
    """Ragged runs of ``values`` (one per row, ``lengths`` long) as a zero-padded (rows, max) tensor."""
    out = torch.zeros((len(lengths), max(int(lengths.max(initial=0)), 1)), dtype=torch.long)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[torch.from_numpy(rows), torch.from_numpy(cols)] = torch.from_numpy(values).long()
    return out


@torch.no_grad()
def generate(ctx: TaskContext, seq: Sequences, pos: np.ndarray, end: np.ndarray, steps: int) -> torch.Tensor:
    """(B, steps) items generated after interaction ``end - 1`` of each user at ``pos``; an item
    of the user's history is never generated.

    The plugin's models generate with :meth:`NextItemModel.generate` (items ranked in chunks,
    so memory stays within the evaluation's bound); RecBole's models through their (users,
    n_items) score matrix.
    """
    model, device = ctx.model.eval(), ctx.trainer.device
    iid, length_field, suffix = ctx.dataset.iid_field, ctx.dataset.item_list_length_field, ctx.config["LIST_SUFFIX"]
    chunk = ctx.trainer.full_sort.settings.item_chunk  # eval_item_chunk
    out = []
    batch = ctx.config["eval_batch_size"]
    for lo in range(0, len(pos), batch):
        p, e = pos[lo:lo + batch], end[lo:lo + batch]
        inter = seq.rows(e, seq.starts[p]).to(device)
        n_hist = e - seq.starts[p]
        hist_idx = np.repeat(seq.starts[p], n_hist) + (np.arange(n_hist.sum()) - np.repeat(np.cumsum(n_hist) - n_hist, n_hist))
        history = _padded(seq.items[hist_idx], n_hist).to(device)  # (B, H), 0 = nothing
        if is_plugin_model(model):
            out.append(model.generate(inter, steps, exclude=history, chunk=chunk).cpu())
            continue
        banned = torch.zeros(len(p), ctx.n_items, dtype=torch.bool, device=device)
        banned.scatter_(1, history, True)
        banned[:, 0] = True
        generated = []
        for _ in range(steps):
            scores = model.full_sort_predict(inter).float().view(len(p), -1)
            scores[banned] = -math.inf
            nxt = scores.argmax(dim=1)
            banned[torch.arange(len(p), device=device), nxt] = True
            generated.append(nxt)
            append_items(inter, iid, suffix, length_field, nxt, seq.max_len)
        out.append(torch.stack(generated, dim=1).cpu())
    return torch.cat(out) if out else torch.zeros(0, steps, dtype=torch.long)


def run(ctx: TaskContext) -> dict:
    holdout = ctx.config["trajectory_holdout"] or 0
    if holdout < 1:
        raise ConfigError("the trajectory task needs held-out items: set trajectory_holdout (e.g. 10)")
    steps = min(MAX_STEPS, holdout)
    seq = Sequences(ctx.dataset)
    users = np.arange(len(seq.users))
    users = users[~np.isin(seq.users, ctx.dataset.cold_start_users) & (seq.lengths > holdout)]
    end = seq.starts[users] + seq.lengths[users] - holdout  # first held-out interaction
    future = torch.from_numpy(seq.items[end[:, None] + np.arange(steps)[None, :]])
    generated = generate(ctx, seq, users, end, steps)
    per_user = {str(k): trajectory_rank(generated, future, k).numpy() for k in range(1, steps + 1)}
    tr = {k: float(v.mean()) for k, v in per_user.items()}
    first = tr["1"]
    return {
        "users": int(len(users)),
        "tr": tr,
        "tr_ci95": bootstrap_intervals(per_user) if len(users) > 1 else {},
        "relative_to_length_1": {k: (v / first if first > 0 else float("nan")) for k, v in tr.items()},
    }


def table(result: dict) -> list[list]:
    rows = [["length k", "TR@k", "TR@k / TR@1"]]
    for k, v in result["tr"].items():
        rows.append([k, v, result["relative_to_length_1"][k]])
    return rows


def plot(result: dict, ax) -> None:
    ks = [int(k) for k in result["tr"]]
    ax.plot(ks, list(result["relative_to_length_1"].values()), marker="o")
    ax.set_xlabel("trajectory length k")
    ax.set_ylabel("TR@k / TR@1")
    ax.set_title(f"Trajectory prediction ({result['users']} users)")
