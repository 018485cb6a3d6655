"""k-core filtering of users and items (paper III-C: 30-core on Amazon, following [61]).

Dropping the users with fewer than k interactions can push items below k and back, so the
filter is repeated until nothing changes. The result is the k-core: the largest set of
interactions in which every user and every item has at least k of them. It is unique, so
the order of the passes does not matter.
"""

from __future__ import annotations

import numpy as np


def k_core(users: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """A boolean mask of the interactions in the k-core, and the number of passes it took.

    ``users`` and ``items`` are integer codes (0..n-1), one per interaction.
    """
    keep = np.arange(len(users))
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = int(items.max()) + 1 if len(items) else 0
    passes = 0
    while True:
        passes += 1
        u, i = users[keep], items[keep]
        enough = (np.bincount(u, minlength=n_users)[u] >= k) & (np.bincount(i, minlength=n_items)[i] >= k)
        if enough.all():
            break
        keep = keep[enough]  # later passes only look at the survivors
    mask = np.zeros(len(users), dtype=bool)
    mask[keep] = True
    return mask, passes
