"""Dropout whose masks are cheap on a CPU.

PyTorch draws a CPU dropout mask one element at a time from a single-threaded Mersenne
Twister (``bernoulli_``): about 15 ns per element on this project's 2-core machine, which made
dropout a quarter of an LSRM training step at d = 128 (more than the attention). Here the mask
comes from numpy's PCG64 instead, four 16-bit draws per 64-bit word, about 40 times faster,
seeded from torch's own generator so that ``torch.manual_seed`` (RecBole's ``init_seed``)
still makes a run repeat exactly. An element is kept when its 16-bit draw is at least
``round(p * 65536)``: the rate is ``p`` to within 1/65536 (0.2 is 0.199997).

Each dropout is one pass over its tensor each way: the mask is turned into a float tensor of
0 and ``1 / (1 - p)`` once, forward multiplies by it (fused with the residual addition where
there is one, :meth:`Dropout.residual`) and backward multiplies the gradient by it. The plain
formula ``where(mask, x / (1 - p), 0)`` costs two passes each way.

On a GPU (and any other device) all of these are the plain PyTorch operations, and so they are
inside ``torch.compile`` (``compile: True``): a compiled graph draws its masks in its own
kernels, and numpy cannot be traced into one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16  # 16 random bits per element


def _random_bits(shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """An int16 tensor of ``shape``, uniform over [-32768, 32767], seeded by one draw of torch's CPU generator."""
    n = math.prod(shape)
    seed = int(torch.randint(0, 2**62, (1,)).item())
    words = np.random.PCG64(seed).random_raw((n + 3) // 4)  # (n/4,) uint64
    return torch.from_numpy(words.view(np.int16)[:n]).view(shape)


def _threshold(p: float) -> int:
    return round(p * _LEVELS) - _LEVELS // 2


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A bool tensor of ``shape``, each element True with probability 1 - p (to 1/65536)."""
    return _random_bits(shape) >= _threshold(p)


def _scaled_keep(x: torch.Tensor, p: float) -> torch.Tensor:
    """A tensor like ``x``: ``1 / (1 - p)`` where :func:`keep_mask` keeps, else 0 (the same draws)."""
    mask = torch.empty(x.shape, dtype=x.dtype)
    torch.ge(_random_bits(x.shape), _threshold(p), out=mask)  # 1.0 / 0.0, written once: 4x faster than where()
    return mask.mul_(1.0 / (1.0 - p))


class _Masked(torch.autograd.Function):
    """x * m, gradient g * m: one pass each way."""

    @staticmethod
    def forward(ctx, x, m):
        ctx.save_for_backward(m)
        return x * m

    @staticmethod
    def backward(ctx, grad):
        (m,) = ctx.saved_tensors
        return grad * m, None


class _MaskedResidual(torch.autograd.Function):
    """x + y * m in one pass; gradients g and g * m."""

    @staticmethod
    def forward(ctx, x, y, m):
        ctx.save_for_backward(m)
        return torch.addcmul(x, y, m)

    @staticmethod
    def backward(ctx, grad):
        (m,) = ctx.saved_tensors
        return grad, grad * m, None


def _plain(x: torch.Tensor) -> bool:
    """Whether PyTorch's own dropout runs: off a CPU, or while torch.compile traces."""
    return x.device.type != "cpu" or torch.compiler.is_compiling()


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)``, with the mask from :func:`keep_mask` on a CPU."""
    if not training or p == 0.0:
        return x
    if _plain(x):
        return F.dropout(x, p, True)
    return _Masked.apply(x, _scaled_keep(x, p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` with :func:`dropout`: the same module, rate (``p``) and state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x + self(y)``: a residual connection around a dropped-out branch, one pass on a CPU."""
        if not self.training or self.p == 0.0 or _plain(y):
            return x + self(y)
        return _MaskedResidual.apply(x, y, _scaled_keep(y, self.p))


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float, training: bool, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Causal softmax attention, ``F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)``.

    q, k, v: (B, h, T, dh). ``bias`` ((B, T, T) or (T, T), one for all heads) is added to the
    scaled logits (a relative attention bias). With dropout on a CPU the weights are formed here
    so that their mask comes from :func:`keep_mask`; otherwise PyTorch's fused attention runs.
    """
    *batch, T, dh = q.shape
    mask = None
    if bias is not None:
        # Causal mask and bias in one additive mask: bias on and below the diagonal, -inf above.
        future = torch.full((T, T), float("-inf"), dtype=q.dtype, device=q.device).triu_(1)
        mask = (bias.to(q.dtype) + future).unsqueeze(-3)  # (B, 1, T, T) or (1, T, T): every head
    if not training or p == 0.0 or _plain(q):
        if mask is None:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p if training else 0.0)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p if training else 0.0)
    if mask is None:
        # Scale and causal mask inside the product: scale * q k^T + (0 on and below the diagonal, -inf above).
        future = torch.full((T, T), float("-inf"), dtype=q.dtype, device=q.device).triu_(1)
        scores = torch.baddbmm(future, q.reshape(-1, T, dh), k.reshape(-1, T, dh).transpose(1, 2),
                               alpha=1.0 / math.sqrt(dh))
        weights = scores.softmax(dim=-1).view(*batch, T, T)  # (B, h, T, T)
    else:
        weights = ((q @ k.transpose(-2, -1)) / math.sqrt(dh) + mask).softmax(dim=-1)  # (B, h, T, T)
    return dropout(weights, p, True) @ v  # (B, h, T, dh)
