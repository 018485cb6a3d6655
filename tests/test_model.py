"""LSRM's forward pass: causality, tied scores, parameter counts, layer-wise dropout."""

from __future__ import annotations

import pytest
import torch

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model import LSRM
from recbole_lsrm.trainer.policies import rates_for_epoch
from recbole_lsrm.options import resolve_layer_dropout
from recbole_lsrm.model.lsrm import non_embedding_params
from recbole_lsrm.scaling.scales import scales

from conftest import Items, make_lsrm


def test_future_items_cannot_change_past_outputs():
    model = make_lsrm().eval()
    seq = torch.randint(1, 50, (3, 12))
    changed = seq.clone()
    t = 7
    changed[:, t] = (seq[:, t] % 49) + 1  # a different item at position t
    with torch.no_grad():
        before, after = model(seq), model(changed)
    assert torch.equal(before[:, :t], after[:, :t])
    assert not torch.allclose(before[:, t], after[:, t])


def test_full_sort_scores_match_pointwise_scores_and_exclude_padding():
    model = make_lsrm().eval()
    seq = torch.randint(1, 50, (4, 12))
    lengths = torch.tensor([12, 5, 1, 9])
    inter = {"item_id_list": seq, "item_length": lengths}
    with torch.no_grad():
        full = model.full_sort_predict(inter)
        items = torch.tensor([3, 17, 42, 8])
        point = model.predict({**inter, "item_id": items})
    assert full.shape == (4, 50)
    assert torch.isneginf(full[:, 0]).all()
    torch.testing.assert_close(full[torch.arange(4), items], point)


def test_loss_ignores_padding_positions():
    model = make_lsrm().eval()
    seq = torch.randint(1, 50, (2, 12))
    targets = torch.randint(1, 50, (2, 12))
    padded_targets = targets.clone()
    padded_targets[:, 6:] = 0
    loss_short = model.calculate_loss({"item_id_list": seq, "target_item_id_list": padded_targets})
    logits = model(seq)[:, :6] @ model.item_embedding.weight.T
    logits[..., 0] = float("-inf")
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, 50), targets[:, :6].reshape(-1))
    torch.testing.assert_close(loss_short, expected)


def test_table_iv_parameter_counts():
    table = {s.name: s for s in scales()}
    assert [s.name for s in scales()] == ["l2", "l4", "l8", "l12", "l24", "l48"]
    expected = {"l2": 98_304, "l4": 786_432, "l8": 1_572_864, "l12": 9_437_184,
                "l24": 75_497_472, "l48": 829_440_000}
    assert {name: s.non_embedding_params for name, s in table.items()} == expected
    assert (table["l48"].n_layers, table["l48"].d_model, table["l48"].n_heads) == (48, 1200, 24)
    assert [table[n].epochs for n in expected] == [30, 30, 30, 27, 12, 12]


def test_model_has_the_papers_non_embedding_size():
    model = make_lsrm(n_layers=2, d_model=64, n_heads=2)
    counted = sum(p.numel() for n, p in model.named_parameters() if "embedding" not in n)
    # The paper's N counts the matrices; biases and LayerNorms add well under 1%.
    assert non_embedding_params(2, 64) == 98_304
    assert 98_304 <= counted < 98_304 * 1.02


def test_layer_dropout_forms():
    assert resolve_layer_dropout({"start": 0.3, "end": 0.1}, 3) == pytest.approx([0.3, 0.2, 0.1])
    assert resolve_layer_dropout([0.5, 0.2], 2) == [0.5, 0.2]
    assert resolve_layer_dropout(0.15, 4) == [0.15] * 4
    with pytest.raises(ConfigError, match="3 rates but the model has n_layers=4"):
        resolve_layer_dropout([0.1, 0.2, 0.3], 4)
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        resolve_layer_dropout(1.5, 2)
    with pytest.raises(ConfigError, match="start and end"):
        resolve_layer_dropout({"begin": 0.1}, 2)


def test_each_layer_gets_its_configured_rate():
    model = make_lsrm(n_layers=3, layer_dropout={"start": 0.4, "end": 0.0})
    assert model.layer_dropout_rates() == pytest.approx([0.4, 0.2, 0.0])
    assert [b.attn.dropout for b in model.blocks] == pytest.approx([0.4, 0.2, 0.0])
    assert model.embedding_dropout.p == pytest.approx(0.4)


def test_dropout_schedule():
    rates = [0.3, 0.1]
    assert rates_for_epoch(rates, "constant", 9, 0) == rates
    assert rates_for_epoch(rates, "early", 1, 2) == rates
    assert rates_for_epoch(rates, "early", 2, 2) == [0.0, 0.0]
    assert rates_for_epoch(rates, "late", 1, 2) == [0.0, 0.0]
    assert rates_for_epoch(rates, "late", 2, 2) == rates



def test_the_model_states_its_size_and_flops():
    from recbole_lsrm.model.contract import counted_non_embedding_params, papers_non_embedding_params, parameter_counts

    model = make_lsrm(n_items=50, n_layers=2, d_model=16, n_heads=2)
    assert model.non_embedding_params() == LSRM.non_embedding_params_for({"n_layers": 2, "d_model": 16}) == 12 * 2 * 16**2
    # 6 FLOPs per weight per position (forward and backward), the tied scores, the attention.
    assert model.flops_per_position() == 6 * (12 * 2 * 16**2 + 50 * 16) + 6 * 2 * 12 * 16
    counts = parameter_counts(model, {"n_layers": 2, "d_model": 16})
    assert counts["non_embedding_params"] == 6144
    assert counts["non_embedding_params_counted"] == counted_non_embedding_params(model) > 6144  # biases, norms
    assert counts["total_params"] == sum(p.numel() for p in model.parameters())
    from recbole.model.sequential_recommender import SASRec

    assert papers_non_embedding_params(SASRec, {"n_layers": 2, "hidden_size": 16}) is None  # RecBole's models: counted


def _interaction(seq: torch.Tensor, lengths: torch.Tensor):
    from recbole.data.interaction import Interaction

    return Interaction({"item_id_list": seq.clone(), "item_length": lengths.clone()})


@pytest.mark.parametrize("chunk", [None, 3, 7])
def test_generate_ranks_in_item_chunks_like_the_score_matrix(chunk):
    model = make_lsrm(n_items=40).eval()
    torch.manual_seed(1)
    seq = torch.randint(1, 40, (5, 12))
    lengths = torch.tensor([12, 5, 1, 9, 11])
    seq[torch.arange(12)[None, :] >= lengths[:, None]] = 0
    exclude = seq[:, :4]
    generated = model.generate(_interaction(seq, lengths), steps=6, exclude=exclude, chunk=chunk)
    # The same greedy decoding from the (users, n_items) score matrix.
    inter, expected = _interaction(seq, lengths), []
    banned = torch.zeros(5, 40, dtype=torch.bool)
    banned.scatter_(1, exclude, True)
    for _ in range(6):
        with torch.no_grad():
            scores = model.full_sort_predict(inter).masked_fill(banned, float("-inf"))
        nxt = scores.argmax(dim=1)
        banned[torch.arange(5), nxt] = True
        expected.append(nxt)
        width = inter["item_length"].clamp(max=11)
        full = inter["item_length"] >= 12
        inter["item_id_list"][full] = torch.roll(inter["item_id_list"][full], -1, dims=1)
        inter["item_id_list"][torch.arange(5), width] = nxt
        inter["item_length"] = (inter["item_length"] + 1).clamp(max=12)
    assert torch.equal(generated, torch.stack(expected, dim=1))
    assert (generated > 0).all()
    for row in range(5):  # never an excluded item, never one item twice
        assert not set(generated[row].tolist()) & set(exclude[row].tolist())
        assert len(set(generated[row].tolist())) == 6


def test_a_model_without_the_contracts_scores_cannot_be_built():
    from recbole_lsrm.model.decoder import AllPositionDecoder

    with pytest.raises(TypeError, match="hidden_states"):
        AllPositionDecoder({}, Items(50))  # blocks and hidden states are each model's own
