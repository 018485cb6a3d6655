"""Multi-domain transfer (paper V-D): test cases by whether the input shares the target's domain.

Needs an item field ``domain`` (the Amazon mix: ``amazon-mix.item``). A test case is
"mix-domain" when some input item has the target's domain and "diff-domain" when none has.
"""

from __future__ import annotations

import numpy as np

from recbole_lsrm.data.domains import item_domains
from recbole_lsrm.data.fields import DOMAIN_FIELD
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.tasks.context import TaskContext



def supported(dataset) -> bool:
    return item_domains(dataset) is not None


def run(ctx: TaskContext) -> dict:
    domains = item_domains(ctx.dataset)
    if domains is None:
        raise ConfigError(
            f"the crossdomain task needs each item's '{DOMAIN_FIELD}' (an .item file with item_id and domain, "
            f"loaded with load_col: {{item: [item_id, {DOMAIN_FIELD}]}}, or a {DOMAIN_FIELD} column in the .inter); "
            f"dataset {ctx.config['dataset']} has none"
        )
    rows = ctx.test_dataset.inter_feat
    iid = ctx.dataset.iid_field
    inputs = rows[iid + ctx.config["LIST_SUFFIX"]].numpy()
    target_domain = domains[rows[iid].numpy()]
    shares = ((domains[inputs] == target_domain[:, None]) & (inputs > 0)).any(axis=1)
    result = {"classes": {}}
    for name, cases in (("mix-domain", shares), ("diff-domain", ~shares)):
        entry = {"test_cases": int(cases.sum())}
        if cases.any():
            entry.update(ctx.evaluate(rows[np.flatnonzero(cases)]))
        result["classes"][name] = entry
    return result


def table(result: dict) -> list[list]:
    rows = [["class", "test cases", "HR@10", "NDCG@10"]]
    for name, m in result["classes"].items():
        rows.append([name, m["test_cases"], m.get("hit@10"), m.get("ndcg@10")])
    return rows


def plot(result: dict, ax) -> None:
    names = list(result["classes"])
    x = np.arange(len(names))
    ax.bar(x - 0.2, [result["classes"][n].get("hit@10", 0.0) for n in names], 0.4, label="HR@10")
    ax.bar(x + 0.2, [result["classes"][n].get("ndcg@10", 0.0) for n in names], 0.4, label="NDCG@10")
    ax.set_xticks(x, names)
    ax.set_title("Cross-domain: input shares the target's domain or not")
    ax.legend()
