"""Large item sets: the chunked full-softmax CE, the sampled softmax, ranking in item chunks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model.next_item import (
    all_position_ce_loss,
    loss_chunk,
    rank_items,
    sampled_softmax_ce,
    softmax_ce,
    tied_item_logits,
)
from recbole_lsrm.pipeline import run


def _leaves(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g).requires_grad_() for s in shapes]


def _assert_chunked_ce_is_plain_ce(hidden, weight, targets, chunk) -> tuple[torch.Tensor, ...]:
    """Value and gradients of softmax_ce against F.cross_entropy (padding targets ignored)."""
    plain = F.cross_entropy(tied_item_logits(hidden, weight), targets, ignore_index=0)
    plain_grads = torch.autograd.grad(plain, (hidden, weight))
    chunked = softmax_ce(hidden, targets, weight, chunk=chunk)
    chunked_grads = torch.autograd.grad(chunked, (hidden, weight))
    torch.testing.assert_close(chunked, plain)
    for got, want in zip(chunked_grads, plain_grads):
        torch.testing.assert_close(got, want)
    return chunked_grads


@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_chunked_ce_equals_plain_ce_in_value_and_gradients(chunk):
    hidden, weight = _leaves((50, 8), (300, 8))
    targets = torch.randint(1, 300, (50,), generator=torch.Generator().manual_seed(1))
    _, weight_grad = _assert_chunked_ce_is_plain_ce(hidden, weight, targets, chunk)
    assert weight_grad[0].abs().max() == 0  # the padding item gets no gradient


def test_the_default_loss_chunk_stays_in_cache_on_a_cpu_and_within_memory_elsewhere():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert loss_chunk(3706, None, cpu) == 2**21 // 3706 == 565  # ML-1M: 8 MB of scores a chunk
    assert loss_chunk(1_000_000, None, cpu) == 512  # at least 512 rows ...
    assert loss_chunk(2_000_000, None, cpu) == 2**29 // 2_000_000 == 268  # ... but never over the 2 GiB bound
    assert loss_chunk(3706, None, gpu) == 2**29 // 3706
    assert loss_chunk(3706, 64, cpu) == loss_chunk(3706, 64, gpu) == 64  # a given size is kept
    assert loss_chunk(3706, None, cpu, low_precision=True) == 2**22 // 3706 == 1131  # bf16: 8 MB of bf16 scores
    # several default chunks on a CPU: still the plain CE
    hidden, weight = _leaves((1300, 8), (3000, 8))
    targets = torch.randint(0, 3000, (1300,), generator=torch.Generator().manual_seed(3))
    assert loss_chunk(3000, None, cpu) < 1300
    _assert_chunked_ce_is_plain_ce(hidden, weight, targets, None)


def test_a_target_whose_probability_underflows_still_gets_its_exact_loss():
    # Scores 150-300 nats apart: exp() of the targets' shifted scores is 0 in fp32, so a loss
    # read off the softmax alone would be infinite.
    hidden = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    weight = torch.tensor([[0.0, 0.0], [150.0, 0.0], [-150.0, 0.0], [0.0, 2.0]], requires_grad=True)
    targets = torch.tensor([2, 1, 3])  # far below the best, the best, near the best
    _assert_chunked_ce_is_plain_ce(hidden, weight, targets, None)
    assert softmax_ce(hidden, targets, weight).item() == pytest.approx((300 + 0 + math.log1p(2 * math.exp(-2))) / 3, rel=1e-5)


def test_chunked_ce_keeps_no_logits_for_backward():
    hidden, weight = _leaves((40, 8), (500, 8))
    loss = softmax_ce(hidden, torch.randint(1, 500, (40,)), weight, chunk=8)
    saved = [t for t in loss.grad_fn.saved_tensors if t is not None]
    assert max(t.numel() for t in saved) == 500 * 8  # the item table; no (40, 500) logits


@pytest.mark.parametrize("chunk", [4, 10_000])
def test_padding_targets_count_for_nothing(chunk):
    """The GPU path scores every position and weights padding (target 0) by 0."""
    hidden, weight = _leaves((30, 8), (200, 8))
    targets = torch.randint(1, 200, (30,), generator=torch.Generator().manual_seed(2))
    targets[::3] = 0
    _assert_chunked_ce_is_plain_ce(hidden, weight, targets, chunk)
    torch.manual_seed(0)
    sampled_all = sampled_softmax_ce(hidden, targets, weight, 20)
    torch.manual_seed(0)
    sampled_valid = sampled_softmax_ce(hidden[targets > 0], targets[targets > 0], weight, 20)
    torch.testing.assert_close(sampled_all, sampled_valid)


def test_all_position_loss_skips_padding_positions():
    hidden, weight = _leaves((3, 5, 8), (40, 8))
    targets = torch.tensor([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0], [1, 2, 3, 4, 5]])
    loss = all_position_ce_loss(hidden, targets, weight, chunk=3)
    mask = targets > 0
    want = F.cross_entropy(tied_item_logits(hidden[mask], weight), targets[mask])
    torch.testing.assert_close(loss, want)


def test_sampled_softmax_masks_negatives_equal_to_the_target():
    hidden, weight = _leaves((6, 4), (3, 4))
    targets = torch.tensor([1, 2, 1, 2, 1, 2])
    torch.manual_seed(0)
    loss = sampled_softmax_ce(hidden, targets, weight, num_negatives=200)  # draws items 1 and 2 only
    torch.manual_seed(0)
    drawn = torch.randint(1, 3, (200,))
    # Each row's negatives are the draws of the other item: m copies of one score.
    other = 3 - targets
    copies = (drawn[None, :] == other[:, None]).sum(1)
    pos = (hidden * weight[targets]).sum(1)
    neg = (hidden * weight[other]).sum(1)
    want = F.softplus(neg + copies.log() - pos).mean()
    torch.testing.assert_close(loss, want)


@pytest.mark.parametrize("n_items,d", [(20, 8), (100, 4)])  # all-item scores (n <= N d) and gathered rows
def test_per_position_negatives_in_value_and_gradients(n_items, d):
    """A draw per position (HSTU's reference): CE of each target against its own negatives,
    a drawn target masked, padding ignored; both ways of computing it."""
    N = 4
    hidden, weight = _leaves((7, d), (n_items, d), seed=1)
    targets = torch.tensor([3, 5, 0, 7, 3, 1, 9])
    negatives = torch.randint(1, n_items, (7, N), generator=torch.Generator().manual_seed(2))
    negatives[1, 2] = 5  # a drawn target
    loss = sampled_softmax_ce(hidden, targets, weight, N, per_position=True, negatives=negatives)
    grads = torch.autograd.grad(loss, (hidden, weight))
    losses = []
    for p in range(7):
        if targets[p] == 0:
            continue
        scores = torch.cat([(hidden[p] * weight[targets[p]]).sum()[None], weight[negatives[p]] @ hidden[p]])
        scores = torch.where(torch.cat([torch.tensor([False]), negatives[p] == targets[p]]), float("-inf"), scores)
        losses.append(-torch.log_softmax(scores, dim=0)[0])
    want = torch.stack(losses).mean()
    torch.testing.assert_close(loss, want)
    for got, expected in zip(grads, torch.autograd.grad(want, (hidden, weight))):
        torch.testing.assert_close(got, expected)


def test_sampled_softmax_trains_and_refuses_too_many_negatives(tiny_dataset, run_options):
    options = {**run_options, **tiny_dataset, "epochs": 1}
    summary = run("LSRM", "cyclic", options={**options, "sampled_softmax": 8})
    assert summary["history"][0]["train_loss"] < 3.0  # log(9) = 2.2 at the start; finite and sampled
    with pytest.raises(ConfigError, match="sampled_softmax"):
        run("LSRM", "cyclic", options={**options, "sampled_softmax": 500})


@pytest.mark.parametrize("chunk", [3, 50, 1000])
def test_ranking_in_item_chunks_equals_topk_over_all_scores(chunk):
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(9, 6, generator=g), torch.randn(200, 6, generator=g)
    targets = torch.randint(1, 200, (9,), generator=g)
    exclude = torch.randint(0, 200, (9, 12), generator=g)

    scores, ids, ce = rank_items(hidden, weight, 20, targets=targets, exclude=exclude, chunk=chunk)

    full = tied_item_logits(hidden, weight)
    want_ce = torch.logsumexp(full, 1) - full.gather(1, targets[:, None]).squeeze(1)
    full.scatter_(1, exclude, float("-inf"))
    want = torch.topk(full, 20, dim=1)
    assert torch.equal(ids, want.indices)
    torch.testing.assert_close(scores, want.values)
    torch.testing.assert_close(ce, want_ce)
    assert not (ids[:, :, None] == exclude[:, None, :]).any() and (ids != 0).all()


def test_chunked_evaluation_gives_recboles_metrics(tiny_dataset, run_options, monkeypatch):
    """Ranking in item chunks and RecBole's (users x items) score matrix agree on every metric."""
    from recbole_lsrm.trainer.evaluation import FullSortEvaluation

    options = {**run_options, **tiny_dataset, "epochs": 1, "eval_item_chunk": 7, "eval_mask_history": True,
               "topk": [5, 10]}
    chunked = run("LSRM", "cyclic", options=options)
    monkeypatch.setattr(FullSortEvaluation, "_ranks_in_chunks", lambda self, batch: False)
    matrix = run("LSRM", "cyclic", options=options)
    assert chunked["test"].keys() == matrix["test"].keys()
    for key, value in matrix["test"].items():
        assert chunked["test"][key] == pytest.approx(value, abs=2e-4), key
