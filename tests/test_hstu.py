"""HSTU: causality (with the time bias), the ablation switches, time buckets, whole runs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from conftest import Items, build_model
from recbole_lsrm.cli import main
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model import HSTU, MODELS
from recbole_lsrm.model.hstu import non_embedding_params
from recbole_lsrm.model.relative import lookup, time_buckets
from recbole_lsrm.pipeline import run

T = 12
N_ITEMS = 50


pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(dataset: Items | None = None, **overrides) -> HSTU:
    config = {
        "MAX_ITEM_LIST_LENGTH": T, "n_layers": 2, "d_model": 16, "n_heads": 2, "layer_dropout": 0.1,
        "initializer_range": 0.02, "attn_activation": "silu", "rab": "position_time", "gating": True,
        "num_time_buckets": 128, "normalize_all": False, "normalize_field": None, **overrides,
    }
    model = build_model(HSTU, config, dataset or Items(N_ITEMS))
    with torch.no_grad():  # larger QK^T than at initialisation, so the bias and SiLU shape matter
        for block in model.blocks:
            block.uvqk.weight.normal_(0.0, 0.5)
    return model


def batch(B: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Items (B, T) and increasing Unix-second timestamps (B, T) with gaps from seconds to weeks."""
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, N_ITEMS, (B, T), generator=g)
    gaps = torch.exp(torch.rand(B, T, generator=g) * 14).round()  # 1 s ... 14 days
    return items, 1.0e6 + gaps.cumsum(dim=1)


ABLATIONS = list(itertools.product(["silu", "softmax"], ["none", "position", "position_time"], [True, False]))


# --- causality ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "attn_activation,rab", [("silu", "position_time"), ("softmax", "position_time"), ("silu", "none")]
)
def test_future_items_and_times_cannot_change_past_outputs(attn_activation, rab):
    model = make_model(attn_activation=attn_activation, rab=rab).eval()
    items, times = batch()
    t = 7
    changed_items, changed_times = items.clone(), times.clone()
    changed_items[:, t:] = (items[:, t:] % (N_ITEMS - 1)) + 1  # different items from position t on
    changed_times[:, t:] += 5_000_000  # and much later times
    with torch.no_grad():
        before, after = model(items, times), model(changed_items, changed_times)
    assert torch.equal(before[:, :t], after[:, :t])
    assert not torch.allclose(before[:, t], after[:, t])


def test_only_a_later_time_changes_the_output_at_that_position():
    model = make_model().eval()
    items, times = batch()
    later = times.clone()
    later[:, 9] += 86_400.0 * 30  # item 9 a month later: time gaps to items 0..8 change
    with torch.no_grad():
        before, after = model(items, times), model(items, later)
    assert torch.equal(before[:, :9], after[:, :9])
    assert not torch.allclose(before[:, 9], after[:, 9])


# --- the switches ---------------------------------------------------------------------
def test_time_bias_uses_timestamps_only_with_position_time():
    items, times = batch()
    shifted = times * 3.0  # every time gap three times longer
    for rab, uses_time in (("position_time", True), ("position", False), ("none", False)):
        model = make_model(rab=rab).eval()
        with torch.no_grad():
            same = torch.allclose(model(items, times), model(items, shifted))
        assert same != uses_time, rab


def test_rab_none_has_no_bias_parameters():
    def bias_tables(rab: str) -> set[str]:
        return {name for name, _ in make_model(rab=rab).named_parameters() if name.startswith("rab.")}

    assert bias_tables("none") == set()
    assert make_model(rab="none").rab is None
    assert bias_tables("position") == {"rab.position_bias"}
    assert bias_tables("position_time") == {"rab.position_bias", "rab.time_bias"}
    assert make_model(rab="position_time", num_time_buckets=40).rab.time_bias.shape == (41,)


def test_softmax_rows_sum_to_one_and_silu_rows_do_not():
    q, k = torch.randn(2, 2, T, 8), torch.randn(2, 2, T, 8)
    bias = torch.randn(2, T, T)
    softmax = make_model(attn_activation="softmax").blocks[0].attention_weights(q, k, bias)  # (B, h, T, T)
    silu = make_model(attn_activation="silu").blocks[0].attention_weights(q, k, bias)
    upper = torch.ones(T, T, dtype=torch.bool).triu(diagonal=1)
    for weights in (softmax, silu):
        assert weights.shape == (2, 2, T, T)
        assert (weights[..., upper] == 0).all()  # causal: no weight on later items
    torch.testing.assert_close(softmax.sum(dim=-1), torch.ones(2, 2, T))
    assert not torch.allclose(silu.sum(dim=-1), torch.ones(2, 2, T))
    # Pointwise: SiLU(score + bias) / n, n = the maximum sequence length.
    expected = torch.nn.functional.silu(q @ k.transpose(-2, -1) + bias[:, None]) / T
    torch.testing.assert_close(silu, expected.masked_fill(upper, 0.0))


def test_without_gating_u_is_absent():
    d = 16
    gated, plain = make_model(gating=True), make_model(gating=False)
    assert gated.blocks[0].uvqk.weight.shape == (4 * d, d)
    assert plain.blocks[0].uvqk.weight.shape == (3 * d, d)  # V, Q, K only
    for model, gating in ((gated, True), (plain, False)):
        matrices = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embedding" not in n)
        config = {"n_layers": 2, "d_model": d, "gating": gating}
        assert matrices == non_embedding_params(2, d, gating) == HSTU.non_embedding_params_for(config)
    items, times = batch()
    plain(items, times).sum().backward()  # and the block still trains
    assert all(p.grad is not None for p in plain.blocks.parameters())


def test_time_bias_needs_raw_timestamps():
    with pytest.raises(ConfigError, match="rab: position_time needs the timestamp.*set rab: position"):
        make_model(Items(N_ITEMS, timestamps=False), rab="position_time")
    make_model(Items(N_ITEMS, timestamps=False), rab="position")  # no timestamps needed
    with pytest.raises(ConfigError, match="normalized"):
        make_model(normalize_all=True)
    with pytest.raises(ConfigError, match="normalized"):
        make_model(normalize_field=["timestamp"])


# --- time buckets ---------------------------------------------------------------------
def test_time_buckets_by_hand():
    # Gaps to the first item: 0 s, 1 s, 2 s, 1 min, 1 h, 1 day, 365 days.
    gaps = [0, 1, 2, 60, 3_600, 86_400, 31_536_000]
    times = torch.tensor([[1_000.0 + g for g in gaps]])
    buckets = time_buckets(times, num_buckets=128)  # (1, 7, 7)
    # floor(ln(max(dt, 1)) / 0.301): ln 2 / 0.301 = 2.30, ln 60 / 0.301 = 13.60, ln 3600 / 0.301 = 27.21,
    # ln 86400 / 0.301 = 37.76, ln 31536000 / 0.301 = 57.36.
    assert buckets[0, :, 0].tolist() == [0, 0, 2, 13, 27, 37, 57]
    assert torch.equal(buckets, buckets.transpose(1, 2))  # |t_i - t_j|
    assert [math.floor(math.log(max(g, 1)) / 0.301) for g in gaps] == [0, 0, 2, 13, 27, 37, 57]
    # Gaps beyond the last bucket share it.
    assert time_buckets(times, num_buckets=30)[0, :, 0].tolist() == [0, 0, 2, 13, 27, 30, 30]


def test_time_bias_is_computed_once_and_shared_by_all_blocks():
    model = make_model(n_layers=3, layer_dropout=0.0).eval()
    seen = []
    for block in model.blocks:
        block.register_forward_pre_hook(lambda module, args: seen.append(args[1]))
    calls = []
    model.rab.register_forward_hook(lambda module, args, out: calls.append(out))
    items, times = batch()
    with torch.no_grad():
        model(items, times)
    assert len(calls) == 1 and calls[0].shape == (3, T, T)
    assert all(bias is calls[0] for bias in seen)


# --- predictions, loss, dropout -------------------------------------------------------
def test_scores_loss_and_layer_dropout_like_lsrm():
    model = make_model(n_layers=3, layer_dropout={"start": 0.4, "end": 0.0}).eval()
    assert model.layer_dropout == pytest.approx([0.4, 0.2, 0.0])
    assert [b.dropout.p for b in model.blocks] == pytest.approx([0.4, 0.2, 0.0])
    model.set_layer_dropout([0.0, 0.0, 0.0])
    assert model.layer_dropout_rates() == [0.0, 0.0, 0.0] and model.embedding_dropout.p == 0.0

    items, times = batch(4)
    lengths = torch.tensor([12, 5, 1, 9])
    inter = {"item_id_list": items, "timestamp_list": times, "item_length": lengths}
    with torch.no_grad():
        full = model.full_sort_predict(inter)
        targets = torch.tensor([3, 17, 42, 8])
        point = model.predict({**inter, "item_id": targets})
        hidden = model(items, times)[torch.arange(4), lengths - 1]
    assert full.shape == (4, N_ITEMS) and torch.isneginf(full[:, 0]).all()
    torch.testing.assert_close(full[torch.arange(4), targets], point)
    torch.testing.assert_close(full[:, 1:], (hidden @ model.item_embedding.weight.T)[:, 1:])

    next_items = torch.randint(1, N_ITEMS, (4, T))
    padded = next_items.clone()
    padded[:, 6:] = 0
    loss = model.calculate_loss({**inter, "target_item_id_list": padded})
    logits = model(items, times)[:, :6] @ model.item_embedding.weight.T
    logits[..., 0] = float("-inf")
    expected = torch.nn.functional.cross_entropy(logits.reshape(-1, N_ITEMS), next_items[:, :6].reshape(-1))
    torch.testing.assert_close(loss, expected)


# --- whole runs -----------------------------------------------------------------------
def test_hstu_is_a_plugin_model():
    assert MODELS["HSTU"] is HSTU
    assert HSTU.all_position_training and HSTU.uses_scale_presets


@pytest.mark.parametrize("attn_activation,rab,gating", ABLATIONS)
def test_every_ablation_trains_one_epoch(attn_activation, rab, gating, tiny_dataset, run_options):
    options = {**run_options, **tiny_dataset, "epochs": 1, "MAX_ITEM_LIST_LENGTH": 10,
               "attn_activation": attn_activation, "rab": rab, "gating": gating}
    summary = run("HSTU", "cyclic", options=options)
    assert summary["model"] == "HSTU" and summary["epochs_run"] == 1
    assert math.isfinite(summary["history"][0]["train_loss"])
    assert {"hit@10", "ndcg@10", "celoss"} <= set(summary["test"])


def test_hstu_learns_with_the_plugin_trainer(tiny_dataset, run_options):
    options = {**run_options, **tiny_dataset, "epochs": 3, "n_layers": 2, "train_batch_size": 16,
               "learning_rate": 0.01, "MAX_ITEM_LIST_LENGTH": 10, "switch_epoch": 2, "layer_dropout": [0.2, 0.1]}
    summary = run("HSTU", "cyclic", options=options)
    losses = [r["train_loss"] for r in summary["history"]]
    assert losses[-1] < losses[0] - 0.5
    assert summary["switch_epoch"] == 2  # the switching optimizer applies to HSTU too
    assert summary["test"]["hit@5"] > 0.5  # 30 items: a random top 5 hits 1 in 6


def test_hstu_through_the_command_line(tiny_dataset, run_options, capsys):
    args = [f"--{k}={v}" for k, v in {**run_options, **tiny_dataset}.items() if k not in ("topk", "epochs")]
    code = main(["--model=HSTU", "--dataset=cyclic", "--epochs=1", "--topk=[5,10]", "--rab=position",
                 "--attn_activation=softmax", "--gating=false", *args])
    assert code == 0, capsys.readouterr().err
    code = main(["--model=HSTU", "--dataset=cyclic", "--epochs=1", "--topk=[5,10]", "--rab=time", *args])
    assert code == 2 and "rab must be one of none, position, position_time" in capsys.readouterr().err


def test_bias_table_lookup_has_autograds_gradient():


    table = torch.randn(129, requires_grad=True)
    index = torch.randint(0, 129, (3, 12, 12))
    grad = torch.randn(3, 12, 12)
    (fast,) = torch.autograd.grad((lookup(table, index) * grad).sum(), table)
    (plain,) = torch.autograd.grad((table[index] * grad).sum(), table)
    torch.testing.assert_close(fast, plain)


def test_target_time_queries_see_the_predicted_items_time_but_no_future_item():
    model = make_model(time_query="target").eval()
    items, times = batch()
    queries = torch.cat([times[:, 1:], times[:, -1:] + 60], dim=1)  # the time of each position's next item
    t = 7
    changed_items = items.clone()
    changed_items[:, t:] = (items[:, t:] % (N_ITEMS - 1)) + 1
    with torch.no_grad():
        before = model(items, times, queries)
        after = model(changed_items, times, queries)
        plain = model(items, times)  # query time = the input's own time
    assert torch.equal(before[:, :t], after[:, :t])  # later items never reach earlier positions
    assert not torch.allclose(before, plain)  # the query times matter
    # Evaluation rows: the next input's time, and the row's own time after the last input.
    lengths = torch.tensor([12, 5, 1])
    rows = {"item_id_list": items, "timestamp_list": times, "item_length": lengths, "timestamp": times[:, -1] + 60}
    derived = model.query_times(rows, times)
    assert torch.equal(derived[0], queries[0])
    assert torch.equal(derived[1, :4], times[1, 1:5]) and derived[1, 4] == times[1, -1] + 60
    with pytest.raises(ConfigError, match="time_query: target needs"):
        model.query_times({"item_id_list": items, "timestamp_list": times, "item_length": lengths}, times)
