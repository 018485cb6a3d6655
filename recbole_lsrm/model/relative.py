"""Where a position is relative to another, one implementation for every attention model.

``rab`` chooses how attention sees it (the HSTU scaling study's second part):

- ``none``: nothing beyond the model's own absolute positions (LSRM's learned table);
- ``position``: a learned bias per distance i - j added to the attention logits;
- ``position_time``: plus a learned bias per log-bucket of the time gap (HSTU's rab);
- ``rope``: rotary position embeddings of the queries and keys (Su et al. 2021; Llama's).

:func:`relative_modules` builds them once, in the model's ``__init__``: a bias table whose
(B, T, T) or (T, T) output every block adds to its logits (gathered once per batch), or a
rotation every block applies to its queries and keys.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_lsrm.options import RAB_KINDS

# Time gaps in seconds are bucketed as floor(ln(gap) / 0.301), as HSTU's reference does.
TIME_BUCKET_LOG_WIDTH = 0.301


def time_buckets(timestamps: torch.Tensor, num_buckets: int, query_times: torch.Tensor | None = None) -> torch.Tensor:
    """Log bucket of every pairwise time gap: (B, T) seconds -> (B, T, T) int64 ids.

    Entry (b, i, j) buckets |q_i - t_j| (query i, key j) as floor(ln(max(|dt|, 1)) / 0.301),
    capped at ``num_buckets``; gaps under one second share bucket 0. The query times ``q`` are
    the keys' own times unless given (``time_query: target``: the time of the item predicted).
    """
    queries = timestamps if query_times is None else query_times
    dt = (queries.unsqueeze(2) - timestamps.unsqueeze(1)).abs().clamp(min=1.0)  # (B, T, T)
    return (torch.log(dt) / TIME_BUCKET_LOG_WIDTH).long().clamp(0, num_buckets)


class _TableLookup(torch.autograd.Function):
    """``table[index]`` for a small table and a large index, e.g. 129 time-bucket weights read
    at (B, T, T) places: its backward sums the gradient per entry with one bincount, where
    autograd's accumulating index_put takes about 0.1 s per block and batch on a CPU."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        ctx.size = table.size(0)
        return table[index]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (index,) = ctx.saved_tensors
        summed = torch.bincount(index.reshape(-1), weights=grad.reshape(-1).double(), minlength=ctx.size)
        return summed.to(grad.dtype), None


def lookup(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` (1-D table) with a fast backward on a CPU (see :class:`_TableLookup`)."""
    if table.is_cuda or not torch.is_grad_enabled() or not table.requires_grad:
        return table[index]
    return _TableLookup.apply(table, index)


class RelativeAttentionBias(nn.Module):
    """rab[i, j] = w_pos[i - j] (+ w_time[bucket(i, j)]) for keys j <= i.

    Only causal pairs are used, so one weight per distance 0 .. max_len - 1 suffices.
    """

    uses_time = False  # set from num_time_buckets

    def __init__(self, max_len: int, num_time_buckets: int | None) -> None:
        super().__init__()
        self.num_time_buckets = num_time_buckets
        self.uses_time = bool(num_time_buckets)
        self.position_bias = nn.Parameter(torch.zeros(max_len))
        self.time_bias = nn.Parameter(torch.zeros(num_time_buckets + 1)) if num_time_buckets else None
        index = torch.arange(max_len)
        self.register_buffer("distance", (index[:, None] - index[None, :]).clamp(min=0), persistent=False)

    def forward(self, buckets: torch.Tensor | None, seq_len: int) -> torch.Tensor:
        """(B, T, T) time buckets (or None) -> bias (B, T, T), or (T, T) without time."""
        bias = lookup(self.position_bias, self.distance[:seq_len, :seq_len])  # (T, T)
        if self.time_bias is not None:
            bias = bias + lookup(self.time_bias, buckets)  # (B, T, T)
        return bias


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last axis."""
    half = x.size(-1) // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Rotary(nn.Module):
    """Rotary position embeddings: position t turns each pair (i, i + dh/2) of a query or key by
    t * base^(-2i/dh). Their dot products then depend on positions only through i - j.

    The cos/sin tables are made once for the longest length (buffers, not recomputed per layer
    or per batch); every block shares this module.
    """

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head width, got {head_dim}")
        inverse = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inverse)  # (T, dh/2)
        angles = torch.cat((angles, angles), dim=-1)  # (T, dh)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, T, dh) queries or keys, rotated by their positions."""
        T = x.size(-2)
        cos, sin = self.cos[:T].to(x.dtype), self.sin[:T].to(x.dtype)
        return x * cos + rotate_half(x) * sin


def relative_modules(kind: str, max_len: int, head_dim: int,
                     num_time_buckets: int | None = None) -> tuple[RelativeAttentionBias | None, Rotary | None]:
    """The modules of one ``rab`` choice: a bias table (position, position_time), a rotation of
    queries and keys (rope), or neither (none). A model builds them once in ``__init__``."""
    if kind not in RAB_KINDS:
        raise ValueError(f"rab must be one of {', '.join(RAB_KINDS)}, got {kind!r}")
    if kind == "rope":
        return None, Rotary(head_dim, max_len)
    if kind == "none":
        return None, None
    return RelativeAttentionBias(max_len, num_time_buckets if kind == "position_time" else None), None
