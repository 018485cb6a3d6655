"""Side information (HSTU scaling study, part 3): item and user features fused into the tokens of
LSRM, HSTU and Llama; ``feature_fusion: none`` changes nothing; bad feature files are named."""

from __future__ import annotations

import logging

import pytest
import torch

from recbole_lsrm.config import LSRMConfig
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model import get_model_class
from recbole_lsrm.model.decoder import SideInputs
from recbole_lsrm.pipeline import run
from recbole_lsrm.recommend import load_run, recommend

from conftest import TINY, cyclic_sequences, write_inter

pytestmark = pytest.mark.usefixtures("one_thread")
FEATURES = {"item_features": ["class", "release_year"], "user_features": ["age", "gender", "occupation"],
            "feature_fusion": "mean"}


def test_none_is_the_default_and_changes_nothing():
    config = LSRMConfig(get_model_class("LSRM"), "ml-100k", None, {})
    assert config["feature_fusion"] == "none" and "item" not in (config["load_col"] or {})


@pytest.mark.parametrize("model", ["LSRM", "HSTU", "Llama"])
def test_features_join_the_item_tokens_and_the_scores_stay_tied(model, tmp_path):
    summary = run(model, "ml-100k", options={**TINY, **FEATURES, "epochs": 1, "checkpoint_dir": str(tmp_path)})
    assert summary["test"]["ndcg@10"] > 0
    trained = load_run(summary["run_dir"])
    net = trained.model
    features = net.item_features.rows()
    expected = net.item_embedding.weight + torch.cat([torch.zeros_like(features[:1]), features[1:]])
    torch.testing.assert_close(net.item_table(), expected)
    assert {"class", "release_year"} == set(net.item_features.fields)
    assert getattr(net.item_features, "ids_class").shape[0] == trained.dataset.item_num  # precomputed per item
    top = recommend(trained, users=["1", "2"], k=5)  # the users' own features enter the ranking
    assert len(top) == 10


def test_user_features_do_not_let_the_future_change_the_past(tmp_path):
    summary = run("LSRM", "ml-100k", options={**TINY, **FEATURES, "epochs": 1, "checkpoint_dir": str(tmp_path)})
    net = load_run(summary["run_dir"]).model
    items = torch.randint(1, 100, (2, 8))
    users = torch.tensor([1, 2])
    changed = items.clone()
    changed[:, 5] = items[:, 5] % 98 + 1
    with torch.no_grad():
        before, after = net(items, None, SideInputs(users)), net(changed, None, SideInputs(users))
        other_user = net(items, None, SideInputs(torch.tensor([3, 4])))
    assert torch.equal(before[:, :5], after[:, :5]) and not torch.allclose(before, other_user)


@pytest.mark.parametrize("options,message", [
    ({"item_features": ["genre"], "feature_fusion": "mean"}, "item_features: ml-100k.item: no column 'genre'"),
    ({"item_features": ["class"]}, "item_features ['class'] are used with feature_fusion: mean (it is none)"),
    ({"feature_fusion": "mean"}, "feature_fusion: mean needs item_features or user_features"),
    ({"feature_fusion": "concat", "item_features": ["class"]}, "feature_fusion must be one of none, mean"),
])
def test_bad_feature_settings_are_named(options, message, tmp_path):
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)").replace("[", "\\[")):
        run("LSRM", "ml-100k", options={**TINY, **options, "epochs": 1, "checkpoint_dir": str(tmp_path)})


def test_recboles_own_models_refuse_features():
    with pytest.raises(ConfigError, match="SASRec reads item ids only"):
        LSRMConfig(get_model_class("SASRec"), "ml-100k", None, FEATURES)


def test_item_rows_without_interactions_are_left_out_and_missing_items_counted(tmp_path, caplog):
    rows = cyclic_sequences(n_users=20, n_items=10, length=8)
    write_inter(tmp_path / "cyc" / "cyc.inter", rows)
    item_lines = ["item_id:token\tcolour:token"] + [f"i{i}\t{'red' if i % 2 else 'blue'}" for i in range(1, 10)]
    item_lines.append("i999\tgreen")  # an item no one chose
    (tmp_path / "cyc" / "cyc.item").write_text("\n".join(item_lines) + "\n")  # i0 has no row
    with caplog.at_level(logging.INFO):
        summary = run("LSRM", "cyc", options={**TINY, "item_features": ["colour"], "feature_fusion": "mean",
                                              "data_path": str(tmp_path), "checkpoint_dir": str(tmp_path / "saved"),
                                              "epochs": 1, "topk": [5], "metrics": ["Hit", "NDCG"],
                                              "valid_metric": "NDCG@5"})
    text = caplog.text
    assert "cyc.item: 1 of 10 rows have no interaction and are left out" in text
    assert "1 of 10 items have no row there" in text
    trained = load_run(summary["run_dir"])
    assert trained.dataset.item_num == 11  # 10 items and padding: i999 is not in the catalogue


@pytest.mark.parametrize("bad, rows", [("inf", {3}), ("nan", set(range(10)))], ids=["one-inf", "all-nan"])
def test_a_float_feature_that_is_not_finite_is_named_with_its_column(tmp_path, bad, rows):
    # (RecBole fills a NaN with its column's mean; a column of NaN has none.)
    write_inter(tmp_path / "cyc" / "cyc.inter", cyclic_sequences(n_users=20, n_items=10, length=8))
    item_lines = ["item_id:token\tprice:float"] + [f"i{i}\t{bad if i in rows else i}" for i in range(10)]
    (tmp_path / "cyc" / "cyc.item").write_text("\n".join(item_lines) + "\n")
    options = {**TINY, "item_features": ["price"], "feature_fusion": "mean", "data_path": str(tmp_path),
               "checkpoint_dir": str(tmp_path / "saved"), "epochs": 1, "topk": [5]}
    with pytest.raises(ConfigError, match="float feature 'price' holds [0-9]+ value\\(s\\) that are not finite"):
        run("LSRM", "cyc", options=options)
