"""Data-size subsets for the data-scaling study (paper IV-B: 10%, 50% and 100% of ML-20M).

A subset keeps a random fraction of the USERS, each with their whole sequence, drawn with a
fixed seed. Interactions are not sampled one by one because that would cut holes in every
user's sequence: the model would learn transitions between items that were never consecutive,
sequences would get shorter everywhere (changing the sequential structure the model learns,
and how far back its 50-item context reaches), and the leave-one-out targets would change,
since a user's last and second-to-last items would often be dropped and replaced by earlier
ones. Sampling users keeps every remaining sequence, and its validation and test items, exactly
as in the full dataset; only the amount of data changes, which is what the study varies.

The subset is drawn from the finished dataset (after any k-core filtering) and is not
filtered again: re-filtering would cut sequences. Its name is ``<name>-<percent>``
(``ml-20m-10`` for 10%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recbole_lsrm.config import DEFAULT_SEED
from recbole_lsrm.errors import ConfigError


def check_fraction(fraction: float) -> float:
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ConfigError(f"--fraction must be a number in (0, 1], got {fraction!r}")
    return float(fraction)


def subset_name(name: str, fraction: float) -> str:
    """``ml-20m`` and 0.1 -> ``ml-20m-10``; the full dataset (1.0) keeps its name."""
    if check_fraction(fraction) == 1.0:
        return name
    return f"{name}-{fraction * 100:.6g}"


def sample_users(users: pd.Series, fraction: float, seed: int = DEFAULT_SEED) -> np.ndarray:
    """A boolean row mask keeping ``round(fraction * n_users)`` users (at least one) entirely.

    Users are drawn from their sorted ids, so the sample depends only on the set of users,
    the fraction and the seed, not on the order of the rows.
    """
    check_fraction(fraction)
    codes, uniques = pd.factorize(users, sort=True)
    n_users = len(uniques)
    n_kept = max(1, int(round(fraction * n_users)))
    chosen = np.zeros(n_users, dtype=bool)
    chosen[np.random.default_rng(seed).choice(n_users, size=n_kept, replace=False)] = True
    return chosen[codes]
