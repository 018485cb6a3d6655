"""Cold-start users (paper V-C): users never seen in training, evaluated with short inputs.

``cold_start_users`` (default 0.2 with this task) holds a seeded fraction of users out of
training, validation and test. Each of them is evaluated on their last interaction with only
the k interactions before it as input, k in 5, 10, 20, 30, 40, 50 (up to
MAX_ITEM_LIST_LENGTH). Users with fewer than k earlier interactions use all they have;
``users_with_k_inputs`` says how many had k.
"""

from __future__ import annotations

import numpy as np

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.tasks.context import Sequences, TaskContext

INPUT_LENGTHS = (5, 10, 20, 30, 40, 50)


def run(ctx: TaskContext, input_lengths: tuple[int, ...] = INPUT_LENGTHS) -> dict:
    cold = ctx.dataset.cold_start_users
    if len(cold) == 0:
        raise ConfigError("the coldstart task needs users held out of training: set cold_start_users > 0")
    seq = Sequences(ctx.dataset)
    pos = seq.of_users(cold)
    pos = pos[seq.lengths[pos] >= 2]
    target = seq.starts[pos] + seq.lengths[pos] - 1
    result = {"users": int(len(pos)), "by_input_length": {}}
    for k in input_lengths:
        if k > seq.max_len:
            continue
        first = np.maximum(seq.starts[pos], target - k)
        metrics = ctx.evaluate(seq.rows(target, first))
        metrics["users_with_k_inputs"] = int((target - seq.starts[pos] >= k).sum())
        result["by_input_length"][str(k)] = metrics
    shortest = result["by_input_length"][str(min(int(k) for k in result["by_input_length"]))]
    result["coverage@10_shortest"] = shortest.get("coverage@10")
    return result


def table(result: dict) -> list[list]:
    rows = [["input length k", "users with k", "HR@10", "NDCG@10", "Coverage@10"]]
    for k, m in result["by_input_length"].items():
        rows.append([k, m["users_with_k_inputs"], m.get("hit@10"), m.get("ndcg@10"), m.get("coverage@10")])
    return rows


def plot(result: dict, ax) -> None:
    ks = [int(k) for k in result["by_input_length"]]
    ax.plot(ks, [m.get("ndcg@10") for m in result["by_input_length"].values()], marker="o", label="NDCG@10")
    ax.plot(ks, [m.get("hit@10") for m in result["by_input_length"].values()], marker="s", label="HR@10")
    ax.set_xlabel("input length k (last k interactions)")
    ax.set_title(f"Cold-start users ({result['users']} unseen users)")
    ax.legend()
