"""Several domains: every test metric per domain of the held-out item, training on one domain's
sequences alone, and an embedding of each input item's domain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.pipeline import run

from conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")
ITEM_DOMAINS = {"load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "domain"]}}


def write_mix(root: Path, n_users: int = 50, length: int = 16, seed: int = 0) -> Path:
    """Two domains: items a0..a14 and b0..b14; users walk a cycle, some switch domain halfway."""
    rng = np.random.default_rng(seed)
    inter = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(n_users):
        start, first = int(rng.integers(15)), "ab"[u % 2]
        for t in range(length):
            domain = first if t < length // 2 or u % 3 else "ba"["ab".index(first)]
            inter.append(f"u{u}\t{domain}{(start + t) % 15}\t{100 + t}")
    (root / "mix").mkdir(parents=True, exist_ok=True)
    (root / "mix" / "mix.inter").write_text("\n".join(inter) + "\n")
    items = ["item_id:token\tdomain:token"] + [f"{d}{i}\t{'Beauty' if d == 'a' else 'Sports'}" for d in "ab" for i in range(15)]
    (root / "mix" / "mix.item").write_text("\n".join(items) + "\n")
    return root


def train(root: Path, model: str = "LSRM", **options) -> dict:
    return run(model, "mix", options={**TINY, **ITEM_DOMAINS, "data_path": str(root), "topk": [5, 10],
                                      "checkpoint_dir": str(root / "saved"), **options})


def test_every_test_metric_per_target_domain(tmp_path):
    summary = train(write_mix(tmp_path))
    by_domain = summary["test_by_domain"]
    assert set(by_domain) == {"Beauty", "Sports"}
    users = sum(d["users"] for d in by_domain.values())
    assert users == 50
    for metric in ("hit@10", "ndcg@10", "celoss"):  # the groups' weighted mean is the whole test's
        whole = sum(d[metric] * d["users"] for d in by_domain.values()) / users
        assert whole == pytest.approx(summary["test"][metric], abs=6e-5)
        assert len(by_domain["Beauty"]["ci95"][metric]) == 2
    on_disk = json.loads((Path(summary["run_dir"]) / "summary.json").read_text())
    assert on_disk["test_by_domain"]["Sports"]["users"] == by_domain["Sports"]["users"]


@pytest.mark.parametrize("model", ["LSRM", "SASRec"])
def test_one_domains_own_sequences(model, tmp_path):
    extra = {"n_layers": 1, "hidden_size": 16, "inner_size": 32, "n_heads": 2, "loss_type": "CE",
             "train_neg_sample_args": None} if model == "SASRec" else {}
    summary = train(write_mix(tmp_path), model, domains=["Beauty"], **extra)
    assert set(summary["test_by_domain"]) == {"Beauty"}


def test_a_domain_embedding_joins_the_input(tmp_path):
    summary = train(write_mix(tmp_path), "HSTU", domain_embedding=True)
    from recbole_lsrm.recommend import load_run

    net = load_run(summary["run_dir"]).model
    assert net.domain_embedding.num_embeddings == 3 and net.item_domains.shape[0] == 31


@pytest.mark.parametrize("options,message", [
    ({"domains": ["Toys"]}, "domains: Toys not among mix's domains (Beauty, Sports)"),
    ({"domains": ["Beauty"], "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}, "needs each item's 'domain'"),
    ({"domain_embedding": True, "load_col": {"inter": ["user_id", "item_id", "timestamp"]}},
     "domain_embedding needs each item's 'domain'"),
])
def test_bad_domain_settings_are_named(options, message, tmp_path):
    with pytest.raises(ConfigError) as caught:
        train(write_mix(tmp_path), **options)
    assert message in str(caught.value)


def test_domains_named_in_the_inter_work_too(tmp_path):
    """The Amazon 2014 Beauty + Sports file names each interaction's domain in the .inter itself."""
    root = write_mix(tmp_path)
    inter = (root / "mix" / "mix.inter").read_text().splitlines()
    rows = [inter[0] + "\tdomain:token"] + [line + ("\tBeauty" if line.split("\t")[1].startswith("a") else "\tSports")
                                             for line in inter[1:]]
    (root / "mix" / "mix.inter").write_text("\n".join(rows) + "\n")
    (root / "mix" / "mix.item").unlink()
    summary = run("HSTU", "mix", options={**TINY, "data_path": str(root), "topk": [5, 10], "domain_embedding": True,
                                          "checkpoint_dir": str(root / "saved"), "tasks": "crossdomain",
                                          "load_col": {"inter": ["user_id", "item_id", "timestamp", "domain"]}})
    assert set(summary["test_by_domain"]) == {"Beauty", "Sports"}
    alone = run("LSRM", "mix", options={**TINY, "data_path": str(root), "topk": [5, 10], "domains": ["Sports"],
                                        "checkpoint_dir": str(root / "saved2"),
                                        "load_col": {"inter": ["user_id", "item_id", "timestamp", "domain"]}})
    assert set(alone["test_by_domain"]) == {"Sports"}
