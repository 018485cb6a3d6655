"""Ranking (HSTU scaling study, part 4): the plugin's attention models score a candidate, trained
with BCE on labels (a threshold on the rating) plus sampled negatives, and report AUC, LogLoss
and GAUC with intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recbole_lsrm.config import LSRMConfig
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model import get_model_class
from recbole_lsrm.data.negatives import negative_counts, sample_negatives, user_item_keys
from recbole_lsrm.model.ranking import RankingHead
from recbole_lsrm.pipeline import run
from recbole_lsrm.evaluation.candidates import (auc, gauc, heldout_auc, load_candidates, logloss, ranking_metrics,
                                                scored_arrays)

from conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")
RANKING = {"objective": "ranking", "threshold": {"rating": 4}}


@pytest.mark.parametrize("model,head", [("LSRM", "dot"), ("HSTU", "mlp"), ("Llama", "ffn")])
def test_a_ranker_trains_and_reports_auc_logloss_and_gauc(model, head, tmp_path):
    summary = run(model, "ml-100k", options={**TINY, **RANKING, "ranking_head": head, "epochs": 1,
                                             "checkpoint_dir": str(tmp_path)})
    test = summary["test"]
    assert set(test) == {"auc", "logloss", "gauc", "heldout_auc"} and 0.5 < test["auc"] <= 1 and test["logloss"] > 0
    lo, hi = summary["test_intervals"]["auc"]
    assert lo <= test["auc"] <= hi
    scored = load_candidates(summary["run_dir"])  # kept for paired differences between runs
    assert ranking_metrics(*scored_arrays(scored)) == pytest.approx(test, abs=5e-5)  # the summary rounds to 4 decimals


def test_metrics_equal_their_definitions():
    labels = np.array([1, 0, 0, 1, 0, 1, 0, 0], float)
    scores = np.array([2.0, 1.0, -1.0, 0.5, 0.5, -2.0, 0.0, 3.0])
    pairs = [(p, n) for p in scores[labels == 1] for n in scores[labels == 0]]
    assert auc(labels, scores) == pytest.approx(np.mean([1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs]))
    probabilities = 1 / (1 + np.exp(-scores))
    assert logloss(labels, scores) == pytest.approx(
        -np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities)))
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2])  # group 1: one positive, one negative; group 2: one positive
    expected = (auc(labels[:3], scores[:3]) * 3 + auc(labels[3:5], scores[3:5]) * 2
                + auc(labels[5:], scores[5:]) * 3) / 8
    assert gauc(groups, labels, scores) == pytest.approx(expected)
    assert np.isnan(auc(np.zeros(3), np.arange(3.0)))
    # held-out AUC: each group's first candidate (the held-out interaction, real label) alone
    groups, labels, scores = np.array([0, 0, 1, 1, 2, 2]), np.array([1, 0, 0, 0, 1, 0.]), np.array([2, 5, 1, 0, 3, 9.])
    assert heldout_auc(groups, labels, scores) == 1.0 and auc(labels, scores) == 0.5


def test_negatives_are_items_the_user_never_had_at_the_ratio():
    users = torch.tensor([1, 1, 1, 2])
    items = torch.tensor([1, 2, 3, 4])
    keys = user_item_keys(users, items, 6)
    drawn = sample_negatives(torch.ones(200, dtype=torch.long), 6, keys, torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) <= {4, 5}
    counts = negative_counts(10_000, 0.3, torch.Generator().manual_seed(0))
    assert set(counts.tolist()) <= {0, 1} and abs(counts.float().mean().item() - 0.3) < 0.02
    assert set(negative_counts(100, 2.0).tolist()) == {2}


def test_heads_score_states_against_candidates():
    h, e = torch.randn(4, 8), torch.randn(4, 8)
    assert torch.allclose(RankingHead("dot", 8)(h, e), (h * e).sum(-1))
    for kind in ("mlp", "ffn"):
        assert RankingHead(kind, 8)(h, e).shape == (4,)


@pytest.mark.parametrize("options,message", [
    ({"objective": "ranking"}, "objective: ranking needs labels: a 'label' column"),
    ({**RANKING, "metrics": ["Hit", "NDCG"]}, "objective: ranking reports AUC and LogLoss"),
    ({"metrics": ["AUC", "LogLoss"], "valid_metric": "AUC"}, "set objective: ranking"),
    ({**RANKING, "neg_ratio": 0}, "neg_ratio must be positive"),
    ({**RANKING, "ranking_head": "bilinear"}, "ranking_head must be one of dot, mlp, ffn"),
    ({**RANKING, "valid_metric": "NDCG@10"}, "valid_metric NDCG@10 is not a ranking metric"),
])
def test_bad_ranking_settings_are_named(options, message):
    with pytest.raises(ConfigError) as caught:
        LSRMConfig(get_model_class("LSRM"), "ml-100k", None, options)
    assert message in str(caught.value)


@pytest.mark.parametrize("key", ["neg_ratio", "eval_neg_ratio"])
def test_a_negative_ratio_beyond_what_a_user_never_had_is_refused(key, tmp_path):
    # ml-100k: its busiest user rated 737 of the 1,682 movies, so 945 is the most a position can draw.
    options = {**TINY, **RANKING, key: 1000, "epochs": 1, "checkpoint_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match=f"{key}: 1000 negatives per position, but one user never had only 945 "):
        run("LSRM", "ml-100k", options=options)


def test_recboles_own_models_do_not_take_the_objective():
    with pytest.raises(ConfigError, match="SASRec reads item ids only"):
        LSRMConfig(get_model_class("SASRec"), "ml-100k", None, RANKING)


def test_a_ranker_may_name_its_metrics_and_validation():
    config = LSRMConfig(get_model_class("HSTU"), "ml-100k", None,
                        {**RANKING, "metrics": ["AUC", "LogLoss"], "valid_metric": "LogLoss"})
    assert config["metrics"] == ["AUC", "LogLoss"] and config["valid_metric_bigger"] is False
    assert "rating" in config["load_col"]["inter"]
    default = LSRMConfig(get_model_class("LSRM"), "ml-100k", None, RANKING)
    assert default["valid_metric"] == "AUC" and default["valid_metric_bigger"] is True


@pytest.mark.slow
def test_recboles_din_runs_through_the_same_command_as_the_baseline(tmp_path):
    summary = run("DIN", "ml-100k", options={
        "threshold": {"rating": 4}, "metrics": ["AUC", "LogLoss"], "valid_metric": "AUC", "train_neg_sample_args": None,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "labeled"},
        "epochs": 1, "show_progress": False, "state": "WARNING", "checkpoint_dir": str(tmp_path)})
    assert set(summary["test"]) == {"auc", "logloss"} and 0.5 < summary["test"]["auc"] <= 1


@pytest.mark.slow
def test_din_is_evaluated_on_the_rankers_candidates_with_objective_ranking(tmp_path):
    summary = run("DIN", "ml-100k", options={**RANKING, "epochs": 1,
                                             "show_progress": False, "state": "WARNING", "checkpoint_dir": str(tmp_path)})
    assert set(summary["test"]) == {"auc", "logloss", "gauc", "heldout_auc"} and 0.5 < summary["test"]["auc"] <= 1


def test_dins_sampled_negatives_are_added_to_the_real_labels_not_written_over_them():
    """RecBole labels every observed row 1 once negatives are sampled, and its sequential sampler
    may draw an item the user had: under objective: ranking DIN keeps its dislikes and its negatives
    are items the user never had, as the plugin's rankers train."""
    from recbole_lsrm.data import create_dataset, prepare_dataloaders

    model_class = get_model_class("DIN")
    config = LSRMConfig(model_class, "ml-100k", None, {**RANKING, "train_batch_size": 512, "state": "WARNING"})
    assert config["train_neg_sample_args"]["sample_num"] == 1
    train, _, _ = prepare_dataloaders(config, create_dataset(config, model_class), model_class)
    rows, everything = train.dataset.inter_feat, train.dataset.raw_inter_feat
    label_of = dict(zip(zip(rows["user_id"].tolist(), rows["item_id"].tolist()), rows["label"].tolist()))
    had = set(zip(everything["user_id"].tolist(), everything["item_id"].tolist()))
    batch = next(iter(train))
    observed, sampled = batch[: len(batch) // 2], batch[len(batch) // 2:]
    labels = observed["label"].tolist()
    assert labels == [label_of[key] for key in zip(observed["user_id"].tolist(), observed["item_id"].tolist())]
    assert 0 < sum(labels) < len(labels)  # liked and not liked, as the data says
    assert sampled["label"].sum() == 0 and not set(zip(sampled["user_id"].tolist(), sampled["item_id"].tolist())) & had
    assert sampled["user_id"].tolist() == observed["user_id"].tolist()  # one negative beside each row


def test_din_and_the_plugins_rankers_score_the_same_candidates_whatever_their_loaders_order():
    """DIN's test rows come in RecBole's order, HSTU's by user, in other batch sizes: the held-out
    interactions and the negatives drawn for each user are the same, kept in one layout."""
    from recbole_lsrm.data import create_dataset, prepare_dataloaders
    from recbole_lsrm.evaluation.candidates import same_candidates
    from recbole_lsrm.trainer.ranking import RankingEvaluation

    class ItemScores(torch.nn.Module):  # the scores tell which item and user were scored
        def score_candidates(self, interaction, candidates):
            return candidates.float() + 1e-4 * interaction["user_id"][:, None].float()

    scored, orders = {}, {}
    for model, batch in (("DIN", 4096), ("HSTU", 100)):
        model_class = get_model_class(model)
        config = LSRMConfig(model_class, "ml-100k", None, {**RANKING, "eval_batch_size": batch, "state": "WARNING"})
        _, _, test = prepare_dataloaders(config, create_dataset(config, model_class), model_class)
        orders[model] = test._dataset.inter_feat["user_id"][:5].tolist()
        evaluation = RankingEvaluation(ItemScores(), config, "cpu")
        evaluation.evaluate(test)
        scored[model] = evaluation.last_candidates
    assert orders["DIN"] != orders["HSTU"]  # the loaders' own orders differ
    assert same_candidates(scored["DIN"], scored["HSTU"])
    assert np.array_equal(scored["DIN"]["scores"], scored["HSTU"]["scores"])
    assert (scored["DIN"]["items"] == scored["DIN"]["scores"].astype(int)).all()


def test_din_refuses_a_negative_ratio_it_cannot_draw():
    with pytest.raises(ConfigError, match="DIN samples a whole number of negatives per interaction: neg_ratio: 0.5"):
        LSRMConfig(get_model_class("DIN"), "ml-100k", None, {**RANKING, "neg_ratio": 0.5})


def test_a_ranking_checkpoint_is_not_resumed_as_retrieval(tmp_path):
    from conftest import cyclic_sequences, write_inter

    rows = [(u, i, 5 if int(i[1:]) % 2 else 2, t) for u, i, t in cyclic_sequences(n_users=30, length=12)]
    write_inter(tmp_path / "data" / "rated" / "rated.inter", rows,
                header="user_id:token\titem_id:token\trating:float\ttimestamp:float")
    summary = run("LSRM", "rated", options={**TINY, **RANKING, "epochs": 1, "data_path": str(tmp_path / "data"),
                                            "checkpoint_dir": str(tmp_path / "saved")})
    with pytest.raises(ConfigError, match="--objective cannot change when resuming"):
        run(checkpoint_path=summary["checkpoint"], options={"objective": "retrieval"})


def test_rankers_trained_at_other_negative_ratios_are_tested_on_the_same_candidates(tmp_path):
    """eval_neg_ratio fixes the test's negatives whatever the training ratio, so runs trained at
    0.2 and 1.0 can be compared (and paired) on the same candidates; left at ~ it is neg_ratio."""
    from recbole_lsrm.evaluation.candidates import same_candidates

    def scored(**options):
        summary = run("LSRM", "ml-100k", options={**TINY, **RANKING, "epochs": 1, "checkpoint_dir": str(tmp_path),
                                                  **options})
        return load_candidates(summary["run_dir"])

    low, high = scored(neg_ratio=0.2, eval_neg_ratio=1.0), scored(neg_ratio=1.0)
    assert same_candidates(low, high) and len(high["labels"]) == 2 * len(np.unique(high["groups"]))
    own = scored(neg_ratio=0.2)
    assert not same_candidates(own, high) and len(own["labels"]) < 1.5 * len(np.unique(own["groups"]))
    with pytest.raises(ConfigError, match="eval_neg_ratio must be positive"):
        LSRMConfig(get_model_class("LSRM"), "ml-100k", None, {**RANKING, "eval_neg_ratio": 0})


def test_the_gauc_interval_reweights_the_users_own_aucs_as_recomputing_would():
    """Resampling users keeps each user's candidates, so their AUCs are reweighted, not
    recomputed: the interval equals the one from recomputing GAUC on every resample."""
    from recbole_lsrm.evaluation.candidates import candidate_intervals

    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(40), 3)
    labels = rng.integers(0, 2, len(groups)).astype(float)
    scores = rng.normal(size=len(groups)) + labels
    users = np.unique(groups)
    draws = []
    generator = np.random.default_rng(0)
    for _ in range(50):
        chosen = generator.integers(0, len(users), len(users))
        index = np.concatenate([np.flatnonzero(groups == users[c]) for c in chosen])
        draws.append(gauc(np.repeat(np.arange(len(chosen)), 3), labels[index], scores[index]))
    expected = [np.nanpercentile(draws, 2.5), np.nanpercentile(draws, 97.5)]
    assert candidate_intervals(groups, labels, scores, n_resamples=50)["gauc"] == pytest.approx(expected)
