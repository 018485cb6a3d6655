"""One relative-position choice for every attention model (``rab``): each is causal, has the
shapes it should, and equals a plain computation."""

from __future__ import annotations

import pytest
import torch

from conftest import Items, build_model
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model import HSTU, LSRM, Llama
from recbole_lsrm.model.cpu_dropout import causal_attention
from recbole_lsrm.model.relative import RelativeAttentionBias, Rotary, relative_modules

T, N_ITEMS = 10, 40
MODELS = {"LSRM": LSRM, "HSTU": HSTU, "Llama": Llama}


def make(model: str, rab: str):
    config = {"MAX_ITEM_LIST_LENGTH": T, "n_layers": 2, "d_model": 16, "n_heads": 2, "layer_dropout": 0.0,
              "initializer_range": 0.2, "rab": rab, "num_time_buckets": 64, "normalize_all": False,
              "normalize_field": None, "attn_activation": "silu", "gating": True}
    return build_model(MODELS[model], config, Items(N_ITEMS)).eval()


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, N_ITEMS, (3, T), generator=g)
    times = 1.0e6 + torch.exp(torch.rand(3, T, generator=g) * 12).round().cumsum(dim=1)
    return items, times.double()


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("rab", ["none", "position", "position_time", "rope"])
def test_every_choice_is_causal_with_the_models_shapes(model, rab):
    net = make(model, rab)
    items, times = batch()
    changed_items, changed_times = items.clone(), times.clone()
    changed_items[:, 6] = items[:, 6] % (N_ITEMS - 1) + 1
    changed_times[:, 6:] += 3600.0  # a later future, too
    with torch.no_grad():
        before, after = net(items, times), net(changed_items, changed_times)
    assert before.shape == (3, T, 16)
    assert torch.equal(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])
    has_table = net.rab is not None or any(getattr(b, "rab", None) is not None for b in net.blocks)
    assert has_table == (rab in ("position", "position_time"))
    assert (net.rotary is not None) == (rab == "rope")


@pytest.mark.parametrize("model", list(MODELS))
def test_the_time_bias_reads_the_times(model):
    net = make(model, "position_time")
    items, times = batch()
    with torch.no_grad():
        net.rab.time_bias.normal_(0.0, 1.0)
        assert not torch.allclose(net(items, times), net(items, times * 3.0))
        position_only = make(model, "position")
        position_only.load_state_dict({k: v for k, v in net.state_dict().items() if "time_bias" not in k})
        assert torch.allclose(position_only(items, times), position_only(items, times * 3.0))


def test_rotary_turns_each_pair_by_its_angle_and_keeps_only_distances():
    rotary = Rotary(head_dim=8, max_len=T)
    x = torch.randn(2, 1, T, 8)
    turned = rotary(x)
    # As complex numbers: (x_i + j x_{i+4}) e^{j t theta_i}, theta_i = 10000^(-2i/8).
    theta = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    z = torch.complex(x[..., :4].double(), x[..., 4:].double()) * torch.exp(
        1j * torch.arange(T, dtype=torch.float64)[:, None] * theta)
    torch.testing.assert_close(turned, torch.cat([z.real, z.imag], dim=-1).float(), atol=1e-5, rtol=1e-5)
    q, k = torch.randn(8), torch.randn(8)
    at = lambda v, t: rotary(v.expand(1, 1, T, 8))[0, 0, t]  # noqa: E731
    assert torch.allclose(at(q, 5) @ at(k, 2), at(q, 8) @ at(k, 5), atol=1e-5)  # depends on 5 - 2 only


def test_attention_with_a_bias_equals_the_plain_softmax():
    q, k, v = (torch.randn(2, 2, T, 4) for _ in range(3))
    bias = torch.randn(2, T, T)
    ours = causal_attention(q, k, v, 0.0, False, bias)
    scores = q @ k.transpose(-2, -1) / 2.0 + bias[:, None]
    scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    torch.testing.assert_close(ours, scores.softmax(-1) @ v, atol=1e-5, rtol=1e-5)


def test_the_bias_table_reads_one_weight_per_distance_and_bucket():
    table = RelativeAttentionBias(T, 5)
    with torch.no_grad():
        table.position_bias.copy_(torch.arange(T, dtype=torch.float32))
        table.time_bias.copy_(100 * torch.arange(6, dtype=torch.float32))
    buckets = torch.randint(0, 6, (1, T, T))
    bias = table(buckets, T)[0]
    i, j = 7, 3
    assert bias[i, j] == (i - j) + 100 * buckets[0, i, j]
    assert relative_modules("none", T, 8) == (None, None)


@pytest.mark.parametrize("options,message", [
    ({"rab": "time"}, "rab must be one of none, position, position_time, rope, got 'time'"),
    ({"rab": "rope", "d_model": 18, "n_heads": 6}, "rab: rope turns pairs of a head's features"),
    ({"rab": "position_time", "load_col": {"inter": ["user_id", "item_id"]}}, "rab: position_time needs the timestamps"),
    ({"ffn_dim": 0}, "ffn_dim must be positive"),
    ({"rms_norm_eps": -1e-6}, "rms_norm_eps must be positive"),
])
def test_bad_choices_are_refused_when_the_config_is_built(options, message):
    from recbole_lsrm.config import LSRMConfig

    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)")):
        LSRMConfig(Llama, "ml-100k", None, options)


@pytest.mark.parametrize("model,rab", [("Llama", "rope"), ("LSRM", "position_time"), ("HSTU", "rope")])
def test_each_model_trains_with_its_choice_through_the_command_line(model, rab, tmp_path, tiny_dataset, one_thread):
    import json

    from recbole_lsrm.cli import main
    from conftest import TINY

    args = [f"--model={model}", "--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}",
            f"--checkpoint_dir={tmp_path / 'saved'}", f"--rab={rab}", "--topk=[5,10]", "--tasks=trajectory",
            *[f"--{k}={v}" for k, v in TINY.items()]]
    assert main(args) == 0
    summary = json.loads(next((tmp_path / "saved").glob("*/summary.json")).read_text())
    assert summary["model"] == model and summary["test"]["ndcg@10"] > 0
    assert summary["non_embedding_params"] > 0 and (tmp_path / "saved").glob("*/tasks.json")
