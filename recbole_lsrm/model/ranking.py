"""Ranking (HSTU scaling study, part 4): a score of one candidate for the state after a history,
trained with binary cross-entropy on the interactions' labels plus sampled negatives.

``ranking_head`` chooses the scoring network between the state h and the candidate's vector e:
``dot`` (h . e), ``mlp`` (two layers on [h, e, h * e]) or ``ffn`` (a residual feed-forward on
h * e, then a linear score). Negatives are drawn uniformly from the items a user never had.
"""

from __future__ import annotations

import torch
from torch import nn


class RankingHead(nn.Module):
    """(..., d) states and (..., d) candidate vectors -> (...) logits."""

    def __init__(self, kind: str, d_model: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "mlp":
            self.net = nn.Sequential(nn.Linear(3 * d_model, d_model), nn.ReLU(), nn.Linear(d_model, 1))
        elif kind == "ffn":
            self.norm = nn.LayerNorm(d_model)
            self.ffn = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
            self.out = nn.Linear(d_model, 1)
        elif kind != "dot":
            raise ValueError(f"ranking_head must be dot, mlp or ffn, got {kind!r}")

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        if self.kind == "dot":
            return (h * e).sum(-1)
        if self.kind == "mlp":
            return self.net(torch.cat([h, e, h * e], dim=-1)).squeeze(-1)
        x = h * e
        return self.out(x + self.ffn(self.norm(x))).squeeze(-1)


def user_item_keys(users: torch.Tensor, items: torch.Tensor, n_items: int) -> torch.Tensor:
    """Sorted ``user * n_items + item`` of every interaction: who had what, for the negatives."""
    return torch.unique(users.long() * n_items + items.long())


def negative_counts(n: int, ratio: float, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """(n,) negatives per position: floor(ratio), plus one with probability ratio - floor(ratio)."""
    whole = int(ratio)
    extra = torch.rand(n, generator=generator, device=device) < (ratio - whole)
    return whole + extra.long()


def sample_negatives(users: torch.Tensor, n_items: int, keys: torch.Tensor, generator: torch.Generator | None = None,
                     tries: int = 20) -> torch.Tensor:
    """(n,) items drawn uniformly from 1 .. n_items - 1, redrawn where the user had the item
    (``keys``: :func:`user_item_keys`); after ``tries`` draws a rare collision is kept.

    Drawn where ``keys`` lives (the model's device in training: no copy of the keys per step;
    the CPU in evaluation, whose seeded generator makes the negatives the same on every device).
    """
    users = users.to(keys.device).long()
    items = torch.randint(1, n_items, (len(users),), generator=generator, device=keys.device)
    for _ in range(tries):
        wanted = users * n_items + items
        position = torch.searchsorted(keys, wanted).clamp(max=len(keys) - 1)
        seen = keys[position] == wanted
        if not seen.any():
            break
        items[seen] = torch.randint(1, n_items, (int(seen.sum()),), generator=generator, device=keys.device)
    return items
