"""Robustness to noisy input (paper V-E): the test inputs perturbed, the metric's % drop.

Each input item is perturbed with probability p (seeded by ``task_seed``): ``remove`` drops
it (the rest close up, as if it had never been seen), ``replace`` swaps it for an item drawn
uniformly from the catalogue. In the ``consecutive`` variant the perturbed items are one
block of round(p * length) neighbouring items at a random place. A sequence always keeps at
least one item. The drop is 100 * (clean - perturbed) / clean.

``robustness_draws`` (default 1) repeats every perturbation with seeds ``task_seed``,
``task_seed + 1``, ...; the figures are the means over the draws, ``drop_percent_draws`` the
draws' own drops, and ``drop_ci95`` a 95% interval from resampling the test users (the same
users clean and perturbed, every draw).
"""

from __future__ import annotations

import numpy as np
import torch

from recbole.data.interaction import Interaction

from recbole_lsrm.evaluation.intervals import N_RESAMPLES, SEED
from recbole_lsrm.tasks.context import TaskContext

RATES = (0.1, 0.2, 0.3)
KINDS = ("remove", "replace")
METRICS = ("ndcg@10", "hit@10")


def perturbation_mask(lengths: torch.Tensor, width: int, p: float, consecutive: bool, gen: torch.Generator) -> torch.Tensor:
    """(B, width) bool: which input positions to perturb."""
    positions = torch.arange(width)[None, :]
    valid = positions < lengths[:, None]
    if consecutive:
        block = torch.round(p * lengths.double()).long()
        start = (torch.rand(len(lengths), generator=gen, dtype=torch.float64) * (lengths - block + 1)).long()
        return valid & (positions >= start[:, None]) & (positions < (start + block)[:, None])
    return valid & (torch.rand(lengths.shape[0], width, generator=gen, dtype=torch.float64) < p)


def perturb(rows: Interaction, kind: str, p: float, consecutive: bool, item_field: str, length_field: str,
            n_items: int, gen: torch.Generator, list_suffix: str = "_list") -> Interaction:
    """A copy of ``rows`` with its input lists perturbed."""
    items = rows[item_field + list_suffix]
    lengths = rows[length_field]
    mask = perturbation_mask(lengths, items.shape[1], p, consecutive, gen)
    out = Interaction({k: v.clone() for k, v in rows.interaction.items()})
    if kind == "replace":
        random_items = torch.randint(1, n_items, items.shape, generator=gen)
        out[item_field + list_suffix] = torch.where(mask, random_items, items)
        return out
    keep = (torch.arange(items.shape[1])[None, :] < lengths[:, None]) & ~mask
    empty = keep.sum(dim=1) == 0
    keep[empty, (lengths[empty] - 1).clamp(min=0)] = True  # never an empty input
    order = torch.argsort((~keep).int(), dim=1, stable=True)  # kept items first, in order
    new_lengths = keep.sum(dim=1)
    valid = torch.arange(items.shape[1])[None, :] < new_lengths[:, None]
    for field in rows.columns:
        if field.endswith(list_suffix) and rows[field].dim() >= 2 and rows[field].shape[1] == items.shape[1]:
            moved = rows[field].gather(1, order.view(*order.shape, *([1] * (rows[field].dim() - 2))).expand_as(rows[field]))
            out[field] = torch.where(valid.view(*valid.shape, *([1] * (rows[field].dim() - 2))), moved, torch.zeros_like(moved))
    out[length_field] = new_lengths
    return out


def drop_interval(clean: np.ndarray, noisy: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> list[float]:
    """95% interval of 100 (mean clean - mean noisy) / mean clean over resampled users.

    ``clean`` is (U,), ``noisy`` (draws, U): a resample takes the same users in both.
    """
    index = np.random.default_rng(seed).integers(0, len(clean), size=(n_resamples, len(clean)))
    c = clean[index].mean(axis=1)
    n = noisy.mean(axis=0)[index].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        drops = 100.0 * (c - n) / c
    lo, hi = np.nanpercentile(drops, [2.5, 97.5]) if np.isfinite(drops).any() else (np.nan, np.nan)
    return [float(lo), float(hi)]


def run(ctx: TaskContext, rates: tuple[float, ...] = RATES) -> dict:
    rows = ctx.test_dataset.inter_feat
    clean = ctx.evaluate(rows)
    clean_users = ctx.per_user()
    draws = int(ctx.config["robustness_draws"] or 1)
    gens = [torch.Generator().manual_seed(ctx.config["task_seed"] + d) for d in range(draws)]
    results = []
    for consecutive in (False, True):
        for kind in KINDS:
            for p in rates:
                runs, users = [], []
                for gen in gens:
                    noisy = perturb(rows, kind, p, consecutive, ctx.dataset.iid_field,
                                    ctx.dataset.item_list_length_field, ctx.n_items, gen, ctx.config["LIST_SUFFIX"])
                    runs.append(ctx.evaluate(noisy))
                    users.append(ctx.per_user())
                metrics = {m: float(np.mean([r[m] for r in runs])) for m in runs[0] if m != "ci95"}
                drop_runs = {m: [100.0 * (clean[m] - r[m]) / clean[m] if clean.get(m) else float("nan") for r in runs]
                             for m in METRICS}
                entry = {
                    "kind": kind, "consecutive": consecutive, "p": p, "metrics": metrics,
                    "drop_percent": {m: float(np.mean(v)) for m, v in drop_runs.items()},
                    "drop_percent_draws": drop_runs,
                }
                if clean_users and all(users):
                    entry["drop_ci95"] = {m: drop_interval(clean_users[m], np.stack([u[m] for u in users]))
                                          for m in METRICS if m in clean_users}
                results.append(entry)
    return {"clean": clean, "draws": draws, "perturbed": results}


def table(result: dict) -> list[list]:
    rows = [["perturbation", "p", "NDCG@10", "drop %", "HR@10", "drop %"]]
    rows.append(["clean", 0.0, result["clean"].get("ndcg@10"), 0.0, result["clean"].get("hit@10"), 0.0])
    for r in result["perturbed"]:
        name = r["kind"] + (" (consecutive)" if r["consecutive"] else "")
        rows.append([name, r["p"], r["metrics"]["ndcg@10"], r["drop_percent"]["ndcg@10"],
                     r["metrics"]["hit@10"], r["drop_percent"]["hit@10"]])
    return rows


def plot(result: dict, ax) -> None:
    for consecutive in (False, True):
        for kind in KINDS:
            runs = [r for r in result["perturbed"] if r["kind"] == kind and r["consecutive"] == consecutive]
            label = kind + (" (consecutive)" if consecutive else "")
            ax.plot([r["p"] for r in runs], [r["drop_percent"]["ndcg@10"] for r in runs], marker="o", label=label)
    ax.set_xlabel("perturbation rate p")
    ax.set_ylabel("NDCG@10 drop (%)")
    ax.set_title("Robustness: NDCG@10 degradation under noisy input")
    ax.legend()
