"""What the CPU speed-ups must keep: dropout's rate and repeatability, attention and evaluation results."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F

import recbole_lsrm.model.decoder as decoder
from recbole_lsrm.cpu_allocator import keep_freed_memory
from recbole_lsrm.model.cpu_dropout import Dropout, causal_attention, dropout, keep_mask

from conftest import make_lsrm


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_keep_mask_has_the_rate_and_no_pattern(p):
    mask = keep_mask((400, 1000), p)
    assert abs(1 - mask.float().mean().item() - p) < 0.005  # 400k draws: sd 0.0007
    # Neighbouring elements (packed from one 64-bit word) are independent.
    both = (mask[:, :-1] & mask[:, 1:]).float().mean().item()
    assert abs(both - (1 - p) ** 2) < 0.005


def test_masks_repeat_under_torch_manual_seed_and_differ_between_calls():
    torch.manual_seed(7)
    first, second = keep_mask((64, 33), 0.2), keep_mask((64, 33), 0.2)
    torch.manual_seed(7)
    assert torch.equal(keep_mask((64, 33), 0.2), first)
    assert not torch.equal(first, second)


def test_dropout_scales_kept_elements_and_passes_gradients_through_them():
    x = torch.randn(50, 40, requires_grad=True)
    y = dropout(x, 0.25, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75)
    assert dropout(x, 0.25, training=False) is x
    torch.manual_seed(9)
    mask = keep_mask(x.shape, 0.25)
    torch.manual_seed(9)
    assert torch.equal(dropout(x, 0.25, training=True) != 0, mask & (x != 0))  # keep_mask's draws
    module = Dropout(0.25).eval()
    assert module(x) is x and module.p == 0.25


def test_residual_dropout_is_the_sum_with_the_same_mask_and_gradients():
    module = Dropout(0.3).train()
    x, y = torch.randn(6, 7, 16, requires_grad=True), torch.randn(6, 7, 16, requires_grad=True)
    torch.manual_seed(4)
    fused = module.residual(x, y)
    fused.sum().backward()
    grads = x.grad.clone(), y.grad.clone()
    x.grad = y.grad = None
    torch.manual_seed(4)
    plain = x + module(y)
    plain.sum().backward()
    torch.testing.assert_close(fused, plain)
    torch.testing.assert_close(grads, (x.grad, y.grad))
    assert torch.equal(grads[0], torch.ones_like(x)) and ((grads[1] == 0) | (grads[1] == 1 / 0.7)).all()
    assert module.eval().residual(x, y).equal(x + y)


def test_attention_without_dropout_is_pytorchs_and_with_dropout_keeps_the_mean():
    q, k, v = (torch.randn(2, 2, 9, 8) for _ in range(3))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(causal_attention(q, k, v, 0.0, training=True), expected)
    torch.testing.assert_close(causal_attention(q, k, v, 0.3, training=False), expected)
    torch.manual_seed(0)
    draws = torch.stack([causal_attention(q, k, v, 0.3, training=True) for _ in range(400)])
    # Unbiased: every element's mean over the draws is within 5 standard errors of no dropout.
    standard_error = draws.std(0) / 400**0.5
    assert ((draws.mean(0) - expected).abs() <= 5 * standard_error + 1e-6).all()
    assert (draws.std(0) > 0).all()  # and dropout did act on every element
    # Causal: with dropout too, a query never sees later keys.
    changed = v.clone()
    changed[:, :, 5:] += 10
    torch.manual_seed(1)
    a = causal_attention(q, k, v, 0.3, training=True)
    torch.manual_seed(1)
    b = causal_attention(q, k, changed, 0.3, training=True)
    torch.testing.assert_close(a[:, :, :5], b[:, :, :5])


def test_evaluation_in_length_groups_equals_the_padded_batch(monkeypatch):
    model = make_lsrm().eval()
    torch.manual_seed(3)
    lengths = torch.tensor([12, 1, 5, 12, 3, 9, 2, 7, 11])
    seq = torch.randint(1, 50, (9, 12)) * (torch.arange(12)[None] < lengths[:, None])
    inter = {"item_id_list": seq, "item_length": lengths}
    with torch.no_grad():
        padded = model.gather_indexes(model(seq), lengths - 1)
        monkeypatch.setattr(decoder, "EVAL_ROWS_PER_GROUP", 2)  # five groups of sorted rows
        grouped = model.full_sort_hidden(inter)
    torch.testing.assert_close(grouped, padded, atol=1e-6, rtol=1e-5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_freed_memory_setting_takes_effect_on_linux():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # once per process; again is harmless
