"""Long-tail items (paper V-B): test cases grouped by the training popularity of the target.

Items are sorted by their number of training interactions and split into four groups of
equal item count, G1 (most popular) to G4 (least popular); each test case belongs to its
target's group.
"""

from __future__ import annotations

import numpy as np

from recbole_lsrm.tasks.context import TaskContext

N_GROUPS = 4


def popularity_groups(counts: np.ndarray, n_groups: int = N_GROUPS) -> np.ndarray:
    """Group index per item id (0 = most popular); the padding id 0 gets -1.

    ``counts[i]`` is item i's training count. Ties keep item-id order, so groups are fixed.
    """
    items = np.arange(1, len(counts))
    ranked = items[np.argsort(-counts[1:], kind="stable")]
    groups = np.full(len(counts), -1, dtype=np.int64)
    for g, members in enumerate(np.array_split(ranked, n_groups)):
        groups[members] = g
    return groups


def run(ctx: TaskContext) -> dict:
    counter = ctx.train_dataset.item_counter
    counts = np.zeros(ctx.n_items, dtype=np.int64)
    counts[np.fromiter(counter.keys(), dtype=np.int64)] = np.fromiter(counter.values(), dtype=np.int64)
    groups = popularity_groups(counts)
    rows = ctx.test_dataset.inter_feat
    target_group = groups[rows[ctx.dataset.iid_field].numpy()]
    result = {}
    for g in range(N_GROUPS):
        members = groups == g
        cases = target_group == g
        entry = {
            "items": int(members.sum()),
            "train_interaction_share": float(counts[members].sum() / max(1, counts.sum())),
            "test_cases": int(cases.sum()),
        }
        if cases.any():
            entry.update(ctx.evaluate(rows[np.flatnonzero(cases)]))
        result[f"G{g + 1}"] = entry
    return {"groups": result}


def table(result: dict) -> list[list]:
    rows = [["group", "items", "train share", "test cases", "HR@10", "NDCG@10"]]
    for name, g in result["groups"].items():
        rows.append([name, g["items"], f"{g['train_interaction_share']:.1%}", g["test_cases"],
                     g.get("hit@10", float("nan")), g.get("ndcg@10", float("nan"))])
    return rows


def plot(result: dict, ax) -> None:
    names = list(result["groups"])
    ndcg = [result["groups"][n].get("ndcg@10", 0.0) for n in names]
    hit = [result["groups"][n].get("hit@10", 0.0) for n in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, hit, 0.4, label="HR@10")
    ax.bar(x + 0.2, ndcg, 0.4, label="NDCG@10")
    ax.set_xticks(x, [f"{n}\n{result['groups'][n]['test_cases']} cases" for n in names])
    ax.set_title("Long-tail items by target popularity (G1 most popular ... G4 least)")
    ax.legend()
