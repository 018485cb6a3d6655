"""HSTU with --recipe=reference against HSTU's reference code (generative-recommenders).

The reference is not a dependency: ``fixtures/hstu_reference/parity.npz`` holds a small weight
set, inputs, and the encoder output and loss the reference computed from them (README.md
there says how). Our model, built with the reference recipe's settings and those weights,
must agree within 1e-5; and each difference between the recipes, undone on its own, must
break that agreement (or, for the initialisation, the reference's distributions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import Items, build_model
from recbole_lsrm.config import PROPERTIES_DIR, read_yaml
from recbole_lsrm.model import HSTU
from recbole_lsrm.model.next_item import l2_normalize

FIXTURE = Path(__file__).parent / "fixtures" / "hstu_reference" / "parity.npz"
TOLERANCE = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


def _fixture() -> dict[str, np.ndarray]:
    with np.load(FIXTURE, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


DATA = _fixture()
L, OUT, D, H, BLOCKS, ITEMS, NEG = (int(v) for v in DATA["config/sizes"])
TEMPERATURE = float(DATA["config/temperature"])
RECIPE = read_yaml(PROPERTIES_DIR / "recipe" / "HSTU" / "reference.yaml")

# The reference recipe's model settings (the fixture's sizes are small: L = 8, d = 8, 2 heads).
REFERENCE = {key: RECIPE[key] for key in (
    "attn_activation", "rab", "gating", "num_time_buckets", "input_scale", "hstu_init", "layer_norm",
    "uvqk_bias", "final_layer_norm", "time_query", "rab_per_block", "similarity", "sampled_negatives",
)}
REFERENCE.update(attention_divisor=L + OUT, temperature=TEMPERATURE, sampled_softmax=NEG)

# Each difference between the recipes, undone: the plugin recipe's value (properties/model/HSTU.yaml
# and overall.yaml).
UNDONE = {
    "input_scale": False,
    "layer_norm": "affine",
    "final_layer_norm": True,
    "attention_divisor": None,
    "time_query": "input",
    "rab_per_block": False,
    "similarity": "dot",
    "temperature": 1.0,
    "sampled_negatives": "batch",
}


def make_model(**overrides) -> HSTU:
    config = {
        "MAX_ITEM_LIST_LENGTH": L, "n_layers": BLOCKS, "d_model": D, "n_heads": H, "layer_dropout": 0.0,
        "initializer_range": 0.02, "normalize_all": False, "normalize_field": None, **REFERENCE, **overrides,
    }
    return build_model(HSTU, config, Items(ITEMS + 1))


def load_reference_weights(model: HSTU, strict: bool = True) -> None:
    weights = {key[len("weight/"):]: torch.from_numpy(value) for key, value in DATA.items() if key.startswith("weight/")}
    if not strict and model.rab is not None:  # one shared table: the first block's
        weights["rab.position_bias"] = weights["blocks.0.rab.position_bias"]
        weights["rab.time_bias"] = weights["blocks.0.rab.time_bias"]
    model.load_state_dict(weights, strict=strict)


def training_rows() -> dict[str, torch.Tensor]:
    """Training windows: inputs, targets, and the targets' times."""
    keys = ("item_id_list", "timestamp_list", "item_length", "target_item_id_list", "target_timestamp_list")
    return {key: torch.from_numpy(DATA["input/" + key]) for key in keys}


def evaluation_rows() -> dict[str, torch.Tensor]:
    """Evaluation rows: inputs and the row's own (the held-out item's) time."""
    keys = ("item_id_list", "timestamp_list", "item_length", "timestamp")
    return {key: torch.from_numpy(DATA["input/" + key]) for key in keys}


def valid_positions() -> torch.Tensor:
    lengths = torch.from_numpy(DATA["input/item_length"])
    return torch.arange(L)[None, :] < lengths[:, None]  # (B, L)


def encoder_output(model: HSTU, rows: dict) -> torch.Tensor:
    """The reference's user embeddings: the L2-normalised hidden states at the valid positions."""
    with torch.no_grad():
        return l2_normalize(model.eval().hidden_states(rows))[valid_positions()]


def reference_encoded(key: str = "expected/encoded") -> torch.Tensor:
    return torch.from_numpy(DATA[key])[valid_positions()]


def loss_with_fixture_negatives(model: HSTU, monkeypatch) -> torch.Tensor:
    """The training loss with the reference's drawn negatives: (P, N) per position, or (N,) shared."""
    negatives = torch.from_numpy(DATA["input/negatives"])
    randint = torch.randint

    def fixed(low, high, size, **kwargs):
        if tuple(size) == tuple(negatives.shape):
            return negatives.clone()
        if tuple(size) == (NEG,):
            return negatives[0].clone()
        return randint(low, high, size, **kwargs)

    monkeypatch.setattr(torch, "randint", fixed)
    with torch.no_grad():
        return model.train().calculate_loss(training_rows())


# --- agreement with the reference -------------------------------------------------------
def test_the_reference_recipe_has_exactly_the_reference_parameters():
    model = make_model()
    load_reference_weights(model)  # strict: no parameter more or less than the reference's
    assert model.final_norm is None and model.rab is None
    assert all(block.uvqk.bias is None and block.rab is not None for block in model.blocks)


def test_encoder_output_matches_the_reference_in_training_and_evaluation_rows():
    model = make_model()
    load_reference_weights(model)
    expected = reference_encoded()
    torch.testing.assert_close(encoder_output(model, training_rows()), expected, atol=TOLERANCE, rtol=0)
    # Evaluation rows have no target times: the query time comes from the row's own timestamp.
    torch.testing.assert_close(encoder_output(model, evaluation_rows()), reference_encoded("expected/encoded_eval"),
                               atol=TOLERANCE, rtol=0)


def test_sampled_softmax_loss_matches_the_reference(monkeypatch):
    model = make_model()
    load_reference_weights(model)
    loss = loss_with_fixture_negatives(model, monkeypatch)
    assert abs(float(loss) - float(DATA["expected/loss"])) < TOLERANCE


def test_full_sort_scores_are_the_reference_cosine_over_the_temperature():
    model = make_model()
    load_reference_weights(model)
    rows = evaluation_rows()
    with torch.no_grad():
        scores = model.eval().full_sort_predict(rows)  # (B, n_items)
    lengths = rows["item_length"]
    user = torch.from_numpy(DATA["expected/encoded_eval"])[torch.arange(len(lengths)), lengths - 1]  # (B, d)
    items = l2_normalize(torch.from_numpy(DATA["weight/item_embedding.weight"]))
    expected = user @ items.T / TEMPERATURE
    torch.testing.assert_close(scores[:, 1:], expected[:, 1:], atol=TOLERANCE / TEMPERATURE, rtol=0)
    assert torch.isneginf(scores[:, 0]).all()


# --- each difference, undone, breaks the agreement ---------------------------------------
@pytest.mark.parametrize("key", sorted(UNDONE))
def test_undoing_one_difference_breaks_the_agreement(key, monkeypatch):
    model = make_model(**{key: UNDONE[key]})
    load_reference_weights(model, strict=False)
    encoded = encoder_output(model, training_rows())
    loss = float(loss_with_fixture_negatives(model, monkeypatch))
    encoder_gap = float((encoded - reference_encoded()).abs().max())
    loss_gap = abs(loss - float(DATA["expected/loss"]))
    assert max(encoder_gap, loss_gap) > 10 * TOLERANCE, f"undoing {key} keeps the agreement"


def test_uvqk_bias_is_a_parameter_the_reference_does_not_have():
    model = make_model(uvqk_bias=True)
    with pytest.raises(RuntimeError, match="uvqk.bias"):
        load_reference_weights(model)


def test_reference_initialisation():
    std = 0.02
    model = make_model(MAX_ITEM_LIST_LENGTH=L, d_model=64, n_heads=1, attention_divisor=211).requires_grad_(False)
    items = model.item_embedding.weight[1:]
    assert float(items.abs().max()) <= 2 * std + 1e-7  # truncated at two standard deviations
    assert float(items.std()) == pytest.approx(std * 0.88, rel=0.1)  # a normal truncated at 2 std keeps 88% of it
    assert float(model.position_embedding.weight.std()) == pytest.approx((2 / (211 + 64)) ** 0.5, rel=0.15)
    for block in model.blocks:
        assert float(block.uvqk.weight.std()) == pytest.approx(std, rel=0.1)
        bound = 64**-0.5
        assert 0 < float(block.proj.bias.abs().max()) <= bound  # PyTorch's default Linear bias
        assert float(block.proj.weight.abs().max()) <= (6 / 128) ** 0.5  # Xavier-uniform
    plugin = make_model(hstu_init="plugin", d_model=64, n_heads=1).requires_grad_(False)
    assert float(plugin.item_embedding.weight.abs().max()) > 2 * std  # untruncated normal
    assert all(float(block.proj.bias.abs().max()) == 0 for block in plugin.blocks)
