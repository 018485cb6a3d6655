"""Ranking (HSTU scaling study, part 4): a score of one candidate for the state after a history,
trained with binary cross-entropy on the interactions' labels plus sampled negatives.

``ranking_head`` chooses the scoring network between the state h and the candidate's vector e:
``dot`` (h . e), ``mlp`` (two layers on [h, e, h * e]) or ``ffn`` (a residual feed-forward on
h * e, then a linear score). Negatives (:mod:`recbole_lsrm.data.negatives`) are drawn uniformly
from the items a user never had.
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
