"""Sampled negatives for ranking: items drawn uniformly from those a user never had.

The plugin's rankers draw them at every training position and at evaluation, RecBole's rankers
(DIN) beside their training rows (:mod:`recbole_lsrm.data.labelled_loader`): one sampler for all.
"""

from __future__ import annotations

import torch

from recbole_lsrm.errors import ConfigError


def user_item_keys(users: torch.Tensor, items: torch.Tensor, n_items: int) -> torch.Tensor:
    """Sorted ``user * n_items + item`` of every interaction: who had what, for the negatives."""
    return torch.unique(users.long() * n_items + items.long())


def check_negative_ratio(keys: torch.Tensor, n_items: int, ratio: float, key: str = "neg_ratio") -> None:
    """Refuse a ratio above the fewest items any user never had: its negatives would repeat
    within a position's draw (and a huge ratio would allocate far more than the data holds)."""
    if len(keys) == 0:
        return
    had = torch.bincount(torch.div(keys, n_items, rounding_mode="floor"))
    fewest = (n_items - 1) - int(had[had > 0].max())
    if ratio > fewest:
        raise ConfigError(
            f"{key}: {ratio:g} negatives per position, but one user never had only {fewest:,} of the "
            f"{n_items - 1:,} items: the draws would repeat. Set {key} to at most {fewest:,}")


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
