"""Next-item scoring shared by the plugin's models: tied item-embedding scores and the CE loss.

LSRM, HSTU and FMLP-Rec score every item by the dot product of a hidden state with the item
embedding table (tied input/output embedding) and never recommend the padding item 0. LSRM and
HSTU train on every position of a window (SPEC 2); FMLP-Rec on the last position of a prefix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def tied_item_logits(hidden: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
    """Scores over all items with the padding id 0 at -inf: (..., d) x (n_items, d) -> (..., n_items)."""
    logits = hidden @ item_weight.T
    logits[..., 0] = float("-inf")
    return logits


def all_position_ce_loss(hidden: torch.Tensor, targets: torch.Tensor, item_weight: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next item over the non-padding positions.

    Args:
        hidden: (B, T, d) hidden state of every position.
        targets: (B, T) next-item ids, 0 where the position is padding.
        item_weight: (n_items, d) the item embedding table.
    """
    mask = targets > 0
    # Scores only where there is a target: B*T*n_items would be mostly padding.
    logits = tied_item_logits(hidden[mask], item_weight).float()  # (P, n_items)
    return F.cross_entropy(logits, targets[mask])
