"""Property tests: the chunked CE and the chunked ranking (model/next_item.py) against the plain
computations, over random sizes, chunk sizes, padding shares and dtypes (float32, bf16 on CPU)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from recbole_lsrm.model.next_item import rank_items, softmax_ce, tied_item_logits

DTYPES = st.sampled_from([torch.float32, torch.bfloat16])
# bf16 keeps 8 bits of mantissa: a score or gradient is good to about 1 part in 128.
TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.bfloat16: dict(rtol=3e-2, atol=3e-2)}


@st.composite
def ce_cases(draw):
    positions = draw(st.integers(1, 40))
    n_items = draw(st.integers(2, 60))
    d = draw(st.integers(1, 12))
    padding_share = draw(st.floats(0.0, 0.9))
    chunk = draw(st.one_of(st.none(), st.integers(1, 50)))
    seed = draw(st.integers(0, 2**31 - 1))
    # The loss's weight in the objective (a micro-batch's share of the batch): its gradient is scaled.
    loss_weight = draw(st.floats(0.1, 3.0))
    return positions, n_items, d, padding_share, chunk, draw(DTYPES), seed, loss_weight


@settings(max_examples=80, deadline=None)
@given(ce_cases())
def test_chunked_ce_equals_the_plain_ce_in_value_and_gradients(case):
    positions, n_items, d, padding_share, chunk, dtype, seed, loss_weight = case
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(positions, d, generator=g).to(dtype).requires_grad_()
    weight = torch.randn(n_items, d, generator=g).to(dtype).requires_grad_()
    targets = torch.randint(1, n_items, (positions,), generator=g)
    targets[torch.rand(positions, generator=g) < padding_share] = 0
    targets[0] = max(int(targets[0]), 1)  # at least one target: the mean over none is undefined

    loss = softmax_ce(hidden, targets, weight, chunk)
    (loss_weight * loss).backward()
    chunked = (loss.detach(), hidden.grad.clone(), weight.grad.clone())
    hidden.grad = weight.grad = None
    plain = F.cross_entropy(tied_item_logits(hidden, weight).float(), targets, ignore_index=0)
    (loss_weight * plain).backward()
    with torch.no_grad():
        without_gradients = softmax_ce(hidden, targets, weight, chunk)

    tol = TOLERANCE[dtype]
    torch.testing.assert_close(chunked[0], plain.detach(), **tol)
    torch.testing.assert_close(without_gradients, chunked[0], rtol=0, atol=0)
    torch.testing.assert_close(chunked[1].float(), hidden.grad.float(), **tol)
    torch.testing.assert_close(chunked[2].float(), weight.grad.float(), **tol)
    assert chunked[1].dtype == hidden.dtype and chunked[2].dtype == weight.dtype
    assert chunked[2][0].abs().max() == 0  # the padding item gets no gradient


@st.composite
def ranking_cases(draw):
    users = draw(st.integers(1, 12))
    n_items = draw(st.integers(3, 80))
    d = draw(st.integers(1, 12))
    k = draw(st.integers(1, n_items - 1))
    chunk = draw(st.one_of(st.none(), st.integers(1, 90)))
    excluded = draw(st.integers(0, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    return users, n_items, d, k, chunk, excluded, draw(DTYPES), seed


@settings(max_examples=80, deadline=None)
@given(ranking_cases())
def test_chunked_ranking_equals_the_plain_top_k_and_ce(case):
    users, n_items, d, k, chunk, excluded, dtype, seed = case
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(users, d, generator=g).to(dtype)
    weight = torch.randn(n_items, d, generator=g).to(dtype)
    targets = torch.randint(1, n_items, (users,), generator=g)
    exclude = torch.randint(0, n_items, (users, excluded), generator=g)  # 0 entries exclude nothing new

    top_scores, top_ids, ce = rank_items(hidden, weight, k, targets=targets, exclude=exclude, chunk=chunk)

    scores = tied_item_logits(hidden, weight).float()  # (users, n_items), padding at -inf
    plain_ce = torch.logsumexp(scores, dim=1) - scores[torch.arange(users), targets]
    masked = scores.scatter(1, exclude, float("-inf"))
    plain_top = torch.topk(masked, k, dim=1).values

    tol = TOLERANCE[dtype]
    torch.testing.assert_close(top_scores, plain_top, **tol)  # ties may swap ids, never scores
    torch.testing.assert_close(masked.gather(1, top_ids), top_scores, **tol)  # each id carries its score
    assert (top_scores[:, :-1] >= top_scores[:, 1:]).all()  # in descending order
    for row in range(users):
        finite = torch.isfinite(top_scores[row])
        ids = top_ids[row][finite].tolist()
        assert len(set(ids)) == len(ids)  # an item appears once
        assert not set(ids) & (set(exclude[row].tolist()) | {0})  # neither excluded items nor padding
    torch.testing.assert_close(ce, plain_ce, **tol)
