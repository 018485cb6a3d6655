"""Dropout whose masks are cheap on a CPU.

PyTorch draws a CPU dropout mask one element at a time from a single-threaded Mersenne
Twister (``bernoulli_``): about 15 ns per element on this project's 2-core machine, which made
dropout a quarter of an LSRM training step at d = 128 (more than the attention). Here the mask
comes from numpy's PCG64 instead, four 16-bit draws per 64-bit word, about 40 times faster,
seeded from torch's own generator so that ``torch.manual_seed`` (RecBole's ``init_seed``)
still makes a run repeat exactly. An element is kept when its 16-bit draw is at least
``round(p * 65536)``: the rate is ``p`` to within 1/65536 (0.2 is 0.199997).

On a GPU (and any other device) both functions are the plain PyTorch ones.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_LEVELS = 1 << 16  # 16 random bits per element


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A bool tensor of ``shape``, each element True with probability 1 - p (to 1/65536)."""
    n = math.prod(shape)
    seed = int(torch.randint(0, 2**62, (1,)).item())  # one draw from torch's CPU generator
    words = np.random.PCG64(seed).random_raw((n + 3) // 4)  # (n/4,) uint64
    bits = torch.from_numpy(words.view(np.int16)[:n]).view(shape)  # uniform over [-32768, 32767]
    return bits >= round(p * _LEVELS) - _LEVELS // 2


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout(x, p, training)``, with the mask from :func:`keep_mask` on a CPU."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return torch.where(keep_mask(x.shape, p), x * (1.0 / (1.0 - p)), 0.0)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with :func:`dropout`: the same module, rate (``p``) and state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Causal softmax attention, ``F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)``.

    q, k, v: (B, h, T, dh). With dropout on a CPU the weights are formed here so that their
    mask comes from :func:`keep_mask`; otherwise PyTorch's fused attention runs.
    """
    if not training or p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p if training else 0.0)
    T = q.size(-2)
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))  # (B, h, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    weights = scores.masked_fill_(~causal, float("-inf")).softmax(dim=-1)
    return dropout(weights, p, True) @ v  # (B, h, T, dh)
