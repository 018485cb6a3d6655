"""Robustness to noisy input (paper V-E): the test inputs perturbed, the metric's % drop.

Each input item is perturbed with probability p (seeded by ``task_seed``): ``remove`` drops
it (the rest close up, as if it had never been seen), ``replace`` swaps it for an item drawn
uniformly from the catalogue. In the ``consecutive`` variant the perturbed items are one
block of round(p * length) neighbouring items at a random place. A sequence always keeps at
least one item. The drop is 100 * (clean - perturbed) / clean.
"""

from __future__ import annotations

import torch

from recbole.data.interaction import Interaction

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


def run(ctx: TaskContext, rates: tuple[float, ...] = RATES) -> dict:
    rows = ctx.test_dataset.inter_feat
    clean = ctx.evaluate(rows)
    gen = torch.Generator().manual_seed(ctx.config["task_seed"])
    results = []
    for consecutive in (False, True):
        for kind in KINDS:
            for p in rates:
                noisy = perturb(rows, kind, p, consecutive, ctx.dataset.iid_field, ctx.dataset.item_list_length_field,
                                ctx.n_items, gen, ctx.config["LIST_SUFFIX"])
                metrics = ctx.evaluate(noisy)
                drop = {m: 100.0 * (clean[m] - metrics[m]) / clean[m] if clean.get(m) else float("nan") for m in METRICS}
                results.append({"kind": kind, "consecutive": consecutive, "p": p, "metrics": metrics, "drop_percent": drop})
    return {"clean": clean, "perturbed": results}


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
