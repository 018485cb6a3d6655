"""Evaluation: the CE metric, coverage, and the history-masked protocol."""

from __future__ import annotations

import numpy as np
import torch

from recbole_lsrm.model import get_model_class
from recbole_lsrm.config import LSRMConfig
from recbole_lsrm.data import create_dataset, prepare_dataloaders
from recbole_lsrm.evaluation.metrics import cross_entropy_of_targets
from recbole_lsrm.trainer import LSRMTrainer


def _trainer(tmp_path, tiny_dataset, **options):
    model_class = get_model_class("LSRM")
    config = LSRMConfig(model_class, "cyclic", [], {**tiny_dataset, "n_layers": 1, "d_model": 16, "n_heads": 2,
                                                     "show_progress": False, "state": "WARNING", **options})
    data = create_dataset(config, model_class)
    train, valid, test = prepare_dataloaders(config, data, model_class)
    model = model_class(config, train.dataset)
    trainer = LSRMTrainer(config, model, tmp_path / "run", run_info={})
    trainer.eval_collector.data_collect(train)
    return trainer, test


def test_history_masking_removes_input_items_from_the_ranking(tmp_path, tiny_dataset):
    trainer, test = _trainer(tmp_path, tiny_dataset, eval_mask_history=True)
    batch = next(iter(test))
    interaction, scores, _, targets = trainer.full_sort.score_matrix_batch(batch, test.dataset.item_num)
    seq = interaction["item_id_list"]
    assert torch.isneginf(scores.gather(1, seq)).all()
    unmasked = torch.isfinite(scores).sum(dim=1)
    distinct_inputs = torch.tensor([len(set(row.tolist()) - {0}) for row in seq])
    assert torch.equal(unmasked, scores.shape[1] - 1 - distinct_inputs)
    # The CE is taken before masking: finite even where the target was among the inputs.
    ce = trainer.eval_collector.data_struct.get("rec.ce")
    assert torch.isfinite(ce).all() and len(ce) == len(targets)


def test_recboles_protocol_masks_only_padding(tmp_path, tiny_dataset):
    trainer, test = _trainer(tmp_path, tiny_dataset)
    _, scores, _, _ = trainer.full_sort.score_matrix_batch(next(iter(test)), test.dataset.item_num)
    assert torch.isneginf(scores[:, 0]).all() and torch.isfinite(scores[:, 1:]).all()


def test_cross_entropy_of_targets_matches_torch():
    scores = torch.randn(5, 9)
    scores[:, 0] = -np.inf
    targets = torch.tensor([1, 4, 8, 2, 2])
    expected = torch.nn.functional.cross_entropy(scores, targets, reduction="none")
    torch.testing.assert_close(cross_entropy_of_targets(scores, targets), expected)


def test_importing_recbole_models_leaves_anomaly_detection_off():
    get_model_class("SASRec")  # imports recbole.model, whose sine.py turns detection on
    assert not torch.is_anomaly_enabled()


def test_coverage_counts_distinct_recommended_items_over_the_catalogue():
    from recbole.evaluator.collector import DataStruct

    from recbole_lsrm.evaluation.metrics import Coverage

    struct = DataStruct()
    struct.set("rec.items", torch.tensor([[1, 2, 3], [1, 4, 5], [2, 1, 6]]))
    struct.set("data.num_items", 11)  # ten items plus padding id 0
    result = Coverage({"metric_decimal_place": 4, "topk": [1, 3]}).calculate_metric(struct)
    assert result == {"coverage@1": 0.2, "coverage@3": 0.6}


def test_bootstrap_resamples_drawn_in_chunks_give_the_intervals_of_one_draw(monkeypatch):
    """The intervals do not depend on how many resamples are held at once (the memory bound)."""
    from recbole_lsrm.evaluation import intervals

    rng = np.random.default_rng(3)
    a = {"ndcg@10": rng.random(501), "hit@10": (rng.random(501) > 0.5).astype(float)}
    b = {k: v + rng.normal(0, 0.05, 501) for k, v in a.items()}
    index = np.random.default_rng(intervals.SEED).integers(0, 501, size=(intervals.N_RESAMPLES, 501))
    one_draw = {k: np.percentile(v[index].mean(axis=1), [2.5, 97.5]) for k, v in a.items()}
    for chunk in (1 << 22, 501 * 7, 500):  # all at once, 7 resamples, one (fewer elements than a row)
        monkeypatch.setattr(intervals, "_CHUNK_ELEMENTS", chunk)
        got = intervals.bootstrap_intervals(a)
        for name in a:
            np.testing.assert_allclose(got[name], one_draw[name], rtol=0, atol=1e-15)
        diff = intervals.paired_difference(a, b, "ndcg@10")
        expected = np.percentile((b["ndcg@10"] - a["ndcg@10"])[index].mean(axis=1), [2.5, 97.5])
        np.testing.assert_allclose([diff["lo"], diff["hi"]], expected, rtol=0, atol=1e-15)
