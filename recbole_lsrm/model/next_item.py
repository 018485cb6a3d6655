"""Next-item scoring shared by the plugin's models: tied scores, the training losses, ranking.

LSRM, HSTU and FMLP-Rec score every item by the dot product of a hidden state with the item
embedding table (tied input/output embedding) and never recommend the padding item 0. LSRM and
HSTU train on every position of a window (LSRM paper III-A); FMLP-Rec on the last position of a prefix.

Large catalogues (the 240k-item Amazon mix) are why most of this module exists. Scoring P
positions against n items makes a (P, n) matrix: at batch 256, length 50 and 240k items that is
12.3 GB in fp32, and autograd would keep it plus its gradient. So:

- :func:`softmax_ce` (training, full softmax) walks the P positions in chunks of ``C`` and
  makes each chunk's gradients in the forward pass, right after its scores (the loss is the
  graph's last node, so they are known there): no scores are kept for backward or computed
  twice, three (C, d) x (d, n)-sized products per chunk. Peak memory of the loss is about
  ``4 * min(P, C) * n_items`` bytes (fp32 scores; ``6 * ...`` with bf16 autocast, which adds a
  bf16 copy of the gradient chunk), whatever the batch, plus the (P, d) and (n_items, d)
  gradients it keeps for backward (the item table's gradient exists anyway). ``C`` defaults to
  ``2**29 / n_items`` (2 GiB: one batch of 256 x 50 positions over ML-20M's items fits one chunk).
  On a CPU it defaults to ``2**21 / n_items`` rows (8 MB: the chunk's softmax and its two
  gradient products find it in cache; ``2**22 / n_items`` under bf16, whose products run in
  bf16 against an fp32 softmax), at least 512 (the item table's gradient product has an
  inner size of ``C``, and runs slowly below that), and never more than the GPU's.
- :func:`sampled_softmax_ce` (training, the ``sampled_softmax: N`` option): the target against
  N items drawn uniformly, either one draw shared by the batch, (P, N + 1) scores from an (N, d)
  table, or a draw per position as HSTU's reference does (``sampled_negatives: position``):
  (P, N, d) gathered rows, ``4 * P * N * d`` bytes kept for backward.
- :func:`rank_items` (evaluation) walks the items in chunks, keeping a running top-k and a
  running log-sum-exp for the CE: ``4 * B * chunk`` bytes instead of ``4 * B * n_items``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Logits kept at once by the chunked loss and ranking when no chunk size is given: 2 GiB fp32.
LOGITS_PER_CHUNK = 2**29
# The training loss on a CPU: 8 MB of fp32 scores a chunk, in at least this many rows.
CPU_LOGITS_PER_CHUNK = 2**21
CPU_BF16_LOGITS_PER_CHUNK = 2**22  # under bf16: 8 MB of bf16 scores and 16 MB of their fp32 softmax
BF16_ROWS = 64  # under bf16 on a CPU the loss's positions are padded to a multiple of this
CPU_MIN_ROWS = 512


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / max(||x||, eps) along the last axis (HSTU's reference: eps 1e-6 on both sides of a score)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=eps)


def tied_item_logits(hidden: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
    """Scores over all items with the padding id 0 at -inf: (..., d) x (n_items, d) -> (..., n_items)."""
    logits = hidden @ item_weight.T
    logits[..., 0] = float("-inf")
    return logits


def full_sort_scores(hidden: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
    """fp32 scores over all items (padding at -inf) for ranking, even under bf16 autocast: the
    hidden states may come from bf16 blocks, but near-equal items keep their order."""
    with torch.autocast(hidden.device.type, enabled=False):
        return tied_item_logits(hidden.float(), item_weight.float())  # (..., n_items)


def default_chunk(n_columns: int, chunk: int | None) -> int:
    """Rows per chunk so that a chunk holds about LOGITS_PER_CHUNK scores (or the given size)."""
    return chunk if chunk else max(1, LOGITS_PER_CHUNK // max(n_columns, 1))


def bf16_autocast(device: torch.device) -> bool:
    """Whether bf16 autocast is on for ``device``'s kind (the trainer's ``bf16`` setting)."""
    kind = torch.device(device).type
    return torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.bfloat16


def loss_chunk(n_items: int, chunk: int | None, device: torch.device, low_precision: bool = False) -> int:
    """Positions per chunk of the training loss: the given size, or the default for the device.

    On a CPU, the largest chunk that stays in cache (``benchmarks/loss_speed.py`` measures the
    choice; its figures per CPU are in ``benchmarks/README.md``), twice as many scores under bf16
    (``low_precision``: a bf16 score and its fp32 softmax, fewer chunks to walk); elsewhere the
    memory bound of :func:`default_chunk`.
    """
    if chunk or device.type != "cpu":
        return default_chunk(n_items, chunk)
    per_chunk = CPU_BF16_LOGITS_PER_CHUNK if low_precision else CPU_LOGITS_PER_CHUNK
    return min(default_chunk(n_items, None), max(CPU_MIN_ROWS, per_chunk // max(n_items, 1)))


def _chunk_logits(hidden: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
    """fp32 scores of one chunk, padding at -inf; the product itself runs in the autocast dtype."""
    logits = (hidden @ item_weight.T).float()
    logits[:, 0] = float("-inf")
    return logits


# Below this, a probability read off the softmax has lost precision to underflow (fp32's
# smallest normal number is 1.2e-38): such targets' log-probabilities are computed from the logits.
_UNDERFLOW = 1e-30


def _target_log_probabilities(h, item_weight, probabilities, targets, valid):
    """log p(target) of each row from its softmax; rows whose p underflowed, from their logits (made again)."""
    picked = probabilities.gather(1, targets[:, None]).squeeze(1)
    log_p = picked.log()
    tiny = (picked < _UNDERFLOW) & valid
    if tiny.any():  # rare: a target scored ~70 nats below the row's best
        rows = tiny.nonzero().squeeze(1)
        logits = _chunk_logits(h[rows], item_weight)
        log_p[rows] = logits.gather(1, targets[rows, None]).squeeze(1) - torch.logsumexp(logits, dim=1)
    return log_p


def _cpu_chunks(hidden, item_weight, targets, valid, row_scale, chunk, with_grad):
    """The chunk loop on a CPU in fp32: (sum of -log p over valid rows, grad_hidden, grad_weight).

    One (C, n) buffer serves every chunk: its scores are made in it (``mm(out=)``), turned into
    the softmax in place and then into the gradient, so the loss touches 4 C n bytes however
    many chunks there are. The two gradient products write into their results (``mm(out=)``,
    ``addmm_``) instead of making temporaries to copy or add.
    """
    total = torch.zeros((), dtype=torch.float32)
    grad_hidden = torch.empty_like(hidden) if with_grad else None
    grad_weight = torch.zeros_like(item_weight) if with_grad else None
    buffer = hidden.new_empty((min(chunk, hidden.size(0)), item_weight.size(0)))
    rows = torch.arange(buffer.size(0))
    for start in range(0, hidden.size(0), chunk):
        h, t, v, r = (x[start : start + chunk] for x in (hidden, targets, valid, row_scale))
        probabilities = buffer[: len(t)]
        torch.mm(h, item_weight.T, out=probabilities)
        probabilities[:, 0] = float("-inf")
        torch.ops.aten._softmax.out(probabilities, 1, False, out=probabilities)  # in place, row by row
        total -= torch.where(v, _target_log_probabilities(h, item_weight, probabilities, t, v), 0.0).sum()
        if not with_grad:
            continue
        grad = probabilities
        grad[rows[: len(t)], t] -= 1.0
        # The row scale is applied to the (C, d) factors, not to the (C, n) gradient.
        scale = r[:, None]  # (C, 1)
        torch.mm(grad, item_weight, out=grad_hidden[start : start + chunk]).mul_(scale)
        grad_weight.addmm_(grad.T, h * scale)
    return total, grad_hidden, grad_weight


def _cpu_bf16_chunks(hidden, item_weight, targets, valid, row_scale, chunk, with_grad):
    """The chunk loop on a CPU under bf16: as :func:`_cpu_chunks`, the three products in bf16.

    The hidden states and the item table are cast to bf16 once for all chunks; each chunk's
    scores are made in a bf16 buffer, turned into an fp32 softmax (loss and gradient in fp32),
    and the gradient goes back to bf16 (into the scores' buffer) for its two products, whose
    results are added into the fp32 gradients. Two (C, n) buffers serve every chunk: 6 C n bytes.
    """
    low = torch.bfloat16
    total = torch.zeros((), dtype=torch.float32)
    positions = hidden.size(0)
    # oneDNN keeps a primitive for every product shape it meets (up to 1,024, each holding memory):
    # the positions are padded to a multiple of BF16_ROWS (rows that count for nothing), so the
    # last chunk's shape no longer changes with every batch's count of targets.
    pad = -positions % BF16_ROWS
    hidden_low = F.pad(hidden.to(low), (0, 0, 0, pad))
    weight_low = item_weight.to(low)
    targets, valid, row_scale = F.pad(targets, (0, pad)), F.pad(valid, (0, pad)), F.pad(row_scale, (0, pad))
    grad_hidden = hidden.new_empty((positions + pad, hidden.size(1))) if with_grad else None
    grad_weight = torch.zeros_like(item_weight, dtype=torch.float32) if with_grad else None
    rows_in_chunk = min(chunk, hidden_low.size(0))
    scores = hidden_low.new_empty((rows_in_chunk, item_weight.size(0)))  # bf16
    buffer = hidden.new_empty((rows_in_chunk, item_weight.size(0)), dtype=torch.float32)
    rows = torch.arange(rows_in_chunk)
    for start in range(0, hidden_low.size(0), chunk):
        h, t, v, r = (x[start : start + chunk] for x in (hidden_low, targets, valid, row_scale))
        probabilities = buffer[: len(t)]
        torch.mm(h, weight_low.T, out=scores[: len(t)])
        probabilities.copy_(scores[: len(t)])
        probabilities[:, 0] = float("-inf")
        torch.ops.aten._softmax.out(probabilities, 1, False, out=probabilities)  # fp32, in place
        # (the original rows: an underflowed target's log-probability is made again from them in fp32)
        log_p = _target_log_probabilities(hidden[start : start + chunk].float(), item_weight.float(), probabilities, t, v)
        total -= torch.where(v, log_p, 0.0).sum()
        if not with_grad:
            continue
        probabilities[rows[: len(t)], t] -= 1.0
        grad = scores[: len(t)].copy_(probabilities)  # bf16 gradient, in the scores' buffer
        scale = r[:, None]  # (C, 1) fp32
        torch.mul(grad @ weight_low, scale, out=grad_hidden[start : start + chunk])
        grad_weight += grad.T @ (h * scale).to(low)
    return total, grad_hidden[:positions] if with_grad else None, grad_weight


def _chunks(hidden, item_weight, targets, valid, row_scale, chunk, with_grad):
    """The chunk loop on a GPU (or in another dtype): as :func:`_cpu_chunks`, a log-softmax per chunk.

    One fused pass (max, sum of exp, subtract) instead of logsumexp's five, then its exp in
    place for the gradient; the scores' products run in the autocast dtype, the softmax in fp32.
    """
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    grad_hidden = torch.empty_like(hidden) if with_grad else None
    grad_weight = torch.zeros(item_weight.shape, dtype=torch.float32, device=item_weight.device) if with_grad else None
    rows = torch.arange(min(chunk, hidden.size(0)), device=hidden.device)
    for start in range(0, hidden.size(0), chunk):
        h, t, v, r = (x[start : start + chunk] for x in (hidden, targets, valid, row_scale))
        log_probabilities = torch.log_softmax(_chunk_logits(h, item_weight), dim=1)  # (C, n)
        total -= torch.where(v, log_probabilities.gather(1, t[:, None]).squeeze(1), 0.0).sum()
        if not with_grad:
            continue
        grad = log_probabilities.exp_()  # the softmax, in place
        grad[rows[: len(t)], t] -= 1.0
        grad = grad.to(torch.promote_types(h.dtype, item_weight.dtype))
        # The row scale is applied to the (C, d) factors, not to the (C, n) gradient: one
        # pass over the largest tensor of the step saved.
        scale = r[:, None]  # (C, 1) fp32
        grad_hidden[start : start + chunk] = ((grad @ item_weight).float() * scale).to(hidden.dtype)
        grad_weight += (grad.T @ (h.float() * scale).to(grad.dtype)).float()
    return total, grad_hidden, grad_weight


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Mean CE of ``targets`` over all items, one chunk of positions at a time; target 0 is ignored.

    The loss is the last node of the graph, so its gradients are known once a chunk's softmax
    is: d loss / d logits = (softmax - onehot) / count. Each chunk's two gradient products are
    therefore made in the forward pass, right after its scores, and only the (P, d) and (n, d)
    gradients are kept; backward scales them by the incoming gradient. No chunk's scores are
    kept or computed twice (with several chunks, recomputing them in backward cost a fourth
    product per chunk). Without ``with_grad`` (no_grad, or no input that needs a gradient) only
    the loss is computed. The count of targets stays a device tensor: nothing here waits for
    the GPU. On a CPU in fp32 (:func:`_cpu_chunks`) each chunk's softmax is made once, in one
    buffer reused by every chunk, and the targets' log-probabilities are read off it
    (:func:`_target_log_probabilities`, whose underflow check is a branch on the data); on a
    GPU (:func:`_chunks`) a log-softmax, then its exp, in place.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, hidden, item_weight, targets, chunk, with_grad, low_precision):  # (P, d), (n, d), (P,), int, bool, bool
        valid = targets > 0
        count = valid.sum().clamp(min=1).float()
        row_scale = valid.float() / count  # (P,): 0 for padding
        on_cpu = hidden.device.type == "cpu"
        if on_cpu and low_precision:
            with torch.autocast("cpu", enabled=False):  # the dtypes are chosen here, product by product
                total, grad_hidden, grad_weight = _cpu_bf16_chunks(hidden, item_weight, targets, valid, row_scale,
                                                                   chunk, with_grad)
        elif on_cpu and hidden.dtype == item_weight.dtype == torch.float32:
            total, grad_hidden, grad_weight = _cpu_chunks(hidden, item_weight, targets, valid, row_scale, chunk, with_grad)
        else:
            total, grad_hidden, grad_weight = _chunks(hidden, item_weight, targets, valid, row_scale, chunk, with_grad)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = item_weight.dtype
        return total / count

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_output.float()
        return (grad_hidden * scale).to(grad_hidden.dtype), (grad_weight * scale).to(ctx.weight_dtype), None, None, None, None


def softmax_ce(hidden: torch.Tensor, targets: torch.Tensor, item_weight: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """Mean full-softmax CE of ``targets`` (P,) given ``hidden`` (P, d), in chunks of positions.

    Positions whose target is 0 (padding) count for nothing. Equal to
    ``F.cross_entropy(tied_item_logits(hidden, item_weight), targets, ignore_index=0)`` in value
    and gradients; memory as in the module docstring.
    """
    if hidden.size(0) == 0:
        raise ValueError("no target positions in the batch")
    with_grad = torch.is_grad_enabled() and (hidden.requires_grad or item_weight.requires_grad)
    low_precision = hidden.dtype == torch.bfloat16 or bf16_autocast(hidden.device)
    chunk = loss_chunk(item_weight.size(0), chunk, hidden.device, low_precision)
    return _ChunkedSoftmaxCE.apply(hidden, item_weight, targets, chunk, with_grad, low_precision)


def sampled_softmax_ce(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    num_negatives: int,
    per_position: bool = False,
    negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean CE of each target against ``num_negatives`` items drawn uniformly from 1 .. n_items - 1.

    One draw is shared by the batch, or with ``per_position`` each position draws its own (as
    HSTU's reference does). A drawn item equal to a position's target is masked out for that
    position; target 0 (padding) counts for nothing. Uniform draws need no log-Q correction
    (every item has the same probability). ``negatives`` gives the draw instead: (N,) shared
    or (P, N) per position.
    """
    if negatives is None:
        shape = (hidden.size(0), num_negatives) if per_position else (num_negatives,)
        negatives = torch.randint(1, item_weight.size(0), shape, device=hidden.device)
    if negatives.dim() == 2 and item_weight.size(0) <= negatives.size(1) * item_weight.size(1):
        # Per position over a small catalogue: the (P, n) scores of every item take less memory
        # than (P, N, d) gathered rows, and their backward is two matrix products instead of an
        # accumulating scatter of P * N rows into the item table (the slow part on a CPU).
        scores = hidden @ item_weight.T  # (P, n)
        positive = scores.gather(1, targets[:, None])  # (P, 1)
        negative = scores.gather(1, negatives)  # (P, N)
        drawn_positive = negatives == targets[:, None]
    elif negatives.dim() == 2:  # per position, large catalogue: (P, N, d) rows
        positive = (hidden * item_weight[targets]).sum(dim=-1, keepdim=True)  # (P, 1)
        negative = torch.bmm(item_weight[negatives], hidden.unsqueeze(2)).squeeze(2)  # (P, N)
        drawn_positive = negatives == targets[:, None]
    else:
        positive = (hidden * item_weight[targets]).sum(dim=-1, keepdim=True)  # (P, 1)
        negative = hidden @ item_weight[negatives].T  # (P, N)
        drawn_positive = negatives[None, :] == targets[:, None]
    negative = negative.masked_fill(drawn_positive, float("-inf"))
    logits = torch.cat([positive, negative], dim=1).float()
    losses = F.cross_entropy(logits, torch.zeros_like(targets), reduction="none")  # (P,)
    valid = targets > 0
    return (losses * valid).sum() / valid.sum().clamp(min=1)


def all_position_ce_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    chunk: int | None = None,
    sampled_negatives: int | None = None,
    per_position: bool = False,
) -> torch.Tensor:
    """Mean cross-entropy of the next item over the non-padding positions.

    Args:
        hidden: (B, T, d) hidden state of every position.
        targets: (B, T) next-item ids, 0 where the position is padding.
        item_weight: (n_items, d) the item embedding table.
        chunk: positions per chunk of the full softmax (None: :data:`LOGITS_PER_CHUNK` / n_items).
        sampled_negatives: use the sampled softmax with this many negatives instead.
        per_position: the sampled softmax draws negatives for every position, not once per batch.
    """
    hidden, targets = hidden.reshape(-1, hidden.size(-1)), targets.reshape(-1)  # (B*T, d), (B*T,)
    if not hidden.is_cuda:
        # On a CPU, scoring only the positions with a target saves the padding's share of the
        # work. On a GPU that selection would make the host wait for the forward pass every
        # step (its size is data-dependent), so padding is scored and weighted 0 instead.
        mask = targets > 0
        hidden, targets = hidden[mask], targets[mask]  # (P, d), (P,)
    if sampled_negatives:
        return sampled_softmax_ce(hidden, targets, item_weight, sampled_negatives, per_position)
    return softmax_ce(hidden, targets, item_weight, chunk)


@torch.no_grad()
def rank_items(
    hidden: torch.Tensor,
    item_weight: torch.Tensor,
    k: int,
    targets: torch.Tensor | None = None,
    exclude: torch.Tensor | None = None,
    chunk: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Top-k items by tied score, without scoring all items at once.

    Args:
        hidden: (B, d) one hidden state per user.
        item_weight: (n_items, d) the item table; item 0 (padding) is never ranked.
        k: list length.
        targets: (B,) held-out items: their CE over all items is returned (before ``exclude``).
        exclude: (B, L) item ids removed from each ranking (0 entries exclude nothing new).
        chunk: items scored at once (None: :data:`LOGITS_PER_CHUNK` / B).

    Returns:
        (top scores (B, k), top item ids (B, k), CE (B,) or None), scores in descending order.
    """
    B, n_items = hidden.size(0), item_weight.size(0)
    chunk = max(k, default_chunk(B, chunk))
    top_scores = hidden.new_empty((B, 0), dtype=torch.float32)
    top_ids = torch.empty((B, 0), dtype=torch.long, device=hidden.device)
    log_norm = torch.full((B,), float("-inf"), device=hidden.device)
    for start in range(0, n_items, chunk):
        scores = (hidden @ item_weight[start : start + chunk].T).float()  # (B, c)
        if start == 0:
            scores[:, 0] = float("-inf")
        log_norm = torch.logaddexp(log_norm, torch.logsumexp(scores, dim=1))
        if exclude is not None:
            local = exclude - start
            inside = (local >= 0) & (local < scores.size(1))
            rows = torch.arange(B, device=hidden.device)[:, None].expand_as(local)
            scores[rows[inside], local[inside]] = float("-inf")
        best = torch.topk(scores, min(k, scores.size(1)), dim=1)
        top_scores = torch.cat([top_scores, best.values], dim=1)
        top_ids = torch.cat([top_ids, best.indices + start], dim=1)
        if top_scores.size(1) > k:
            top_scores, keep = torch.topk(top_scores, k, dim=1)
            top_ids = top_ids.gather(1, keep)
    ce = None
    if targets is not None:
        target_scores = (hidden.float() * item_weight[targets].float()).sum(dim=1)
        ce = log_norm - target_scores
    return top_scores, top_ids, ce
