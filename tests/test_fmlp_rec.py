"""FMLP-Rec: the filter layer, right padding, scores, one epoch on ml-100k, runs on the small fixture."""

from __future__ import annotations

import pytest
import torch

from conftest import Items, build_model
from recbole_lsrm.cli import main
from recbole_lsrm.model import MODELS, FMLPRec
from recbole_lsrm.model.fmlp_rec import FilterLayer
from recbole_lsrm.pipeline import run

T = 12
N_ITEMS = 50


pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(**overrides) -> FMLPRec:
    config = {
        "MAX_ITEM_LIST_LENGTH": T, "n_layers": 2, "hidden_size": 16, "inner_size": 32, "hidden_dropout_prob": 0.5,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02, **overrides,
    }
    return build_model(FMLPRec, config, Items(N_ITEMS))


@pytest.mark.parametrize("seq_len", [12, 7])
def test_filter_layer_keeps_the_shape(seq_len):
    layer = FilterLayer(max_len=seq_len, hidden_size=16, dropout=0.0, layer_norm_eps=1e-12)
    assert layer.complex_weight.shape == (seq_len // 2 + 1, 16, 2)
    x = torch.randn(3, seq_len, 16)
    out = layer(x, torch.ones(3, seq_len, 1))
    assert out.shape == (3, seq_len, 16)


def test_filter_is_a_learnable_convolution_over_the_sequence():
    layer = FilterLayer(max_len=T, hidden_size=4, dropout=0.0, layer_norm_eps=1e-12)
    with torch.no_grad():
        layer.complex_weight.zero_()
        layer.complex_weight[..., 0] = 1.0  # all-pass filter: irfft(rfft(x)) = x
    x = torch.randn(2, T, 4)
    torch.testing.assert_close(layer(x, torch.ones(2, T, 1)), layer.norm(2 * x))


def test_padding_positions_do_not_matter():
    model = make_model().eval()
    items = torch.randint(1, N_ITEMS, (3, T))
    lengths = torch.tensor([4, 9, 12])
    padded = items.clone()
    padded[torch.arange(T)[None, :] >= lengths[:, None]] = 0  # RecBole's right padding
    with torch.no_grad():
        out = model(padded, lengths)
        # Whatever sits after item_length is not history: the same hidden state.
        torch.testing.assert_close(model(items, lengths), out)
        # And the last valid position is read: a different last item changes it.
        changed = padded.clone()
        changed[0, 3] = padded[0, 3] % (N_ITEMS - 1) + 1
        assert not torch.allclose(model(changed, lengths)[0], out[0])
    assert out.shape == (3, 16)


def test_scores_exclude_padding_and_match_pointwise_scores():
    model = make_model().eval()
    items = torch.randint(1, N_ITEMS, (4, T))
    inter = {"item_id_list": items, "item_length": torch.tensor([12, 5, 1, 9])}
    with torch.no_grad():
        full = model.full_sort_predict(inter)
        targets = torch.tensor([3, 17, 42, 8])
        point = model.predict({**inter, "item_id": targets})
    assert full.shape == (4, N_ITEMS) and torch.isneginf(full[:, 0]).all()
    torch.testing.assert_close(full[torch.arange(4), targets], point)
    loss = model.calculate_loss({**inter, "item_id": targets})
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(full, targets))


def _fmlp_options(run_options: dict, tiny_dataset: dict) -> dict:
    options = {k: v for k, v in {**run_options, **tiny_dataset}.items() if k not in ("d_model", "n_heads")}
    return {**options, "hidden_size": 16, "inner_size": 32, "MAX_ITEM_LIST_LENGTH": 10}


@pytest.mark.slow
def test_fmlp_rec_trains_one_epoch_on_ml100k(run_options):
    assert MODELS["FMLPRec"] is FMLPRec
    assert not getattr(FMLPRec, "all_position_training", False)  # RecBole's prefix rows
    options = {k: v for k, v in run_options.items() if k not in ("d_model", "n_heads")}
    options.update(epochs=1, n_layers=1, hidden_size=16, inner_size=32, MAX_ITEM_LIST_LENGTH=20, train_batch_size=2048)
    summary = run("FMLPRec", "ml-100k", options=options)
    assert summary["model"] == "FMLPRec" and summary["epochs_run"] == 1
    assert summary["train_rows"] == 100_000 - 3 * 943  # a prefix row per training target of 943 users
    assert {"hit@10", "ndcg@10", "celoss"} <= set(summary["test"])
    assert summary["test"]["celoss"] < 7.43  # log(1682): better than the uniform model after one epoch


def test_fmlp_rec_learns(tiny_dataset, run_options):
    options = {**_fmlp_options(run_options, tiny_dataset), "epochs": 3, "learning_rate": 0.01,
               "hidden_dropout_prob": 0.1, "train_batch_size": 128}
    summary = run("FMLPRec", "cyclic", options=options)
    losses = [r["train_loss"] for r in summary["history"]]
    assert losses[-1] < losses[0] - 0.3


def test_fmlp_rec_through_the_command_line(tiny_dataset, run_options, capsys):
    options = {k: v for k, v in _fmlp_options(run_options, tiny_dataset).items() if k not in ("topk", "epochs")}
    args = [f"--{k}={v}" for k, v in options.items()]
    code = main(["--model=FMLPRec", "--dataset=cyclic", "--epochs=1", "--topk=[5,10]", *args])
    assert code == 0, capsys.readouterr().err
    code = main(["--model=FMLPRec", "--dataset=cyclic", "--scale=l2", *args])
    assert code == 2 and "FMLPRec has its own size options" in capsys.readouterr().err
