"""Several behaviours in one log (HSTU scaling study, part 3): every interaction is input, only
those of the target behaviour are predicted.

With ``behavior_field: behavior`` and ``target_behavior: buy``, each user's validation and test
targets are their last two target-behaviour interactions by time; everything before a target,
of any (input) behaviour, is its history; interactions after the test target are the user's
future and left out. Training windows hold all behaviours and put the loss only at positions
whose next interaction is of the target behaviour (``behavior_loss: target``; ``all``: at every
position), so training keeps the all-position speed::

    interactions  v1 v2 B3 c4 v5 B6 v7 B8 v9      (B: buy, the target behaviour)
    test          input v1 .. v7, target B8       (v9 is after the test: left out)
    validation    input v1 .. v5, target B6
    training      v1 v2 B3 c4 v5 -> loss at the position predicting B3 only
"""

from __future__ import annotations

import numpy as np


def behavior_split(starts: np.ndarray, lengths: np.ndarray, is_target: np.ndarray, held: int = 2
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per user (sorted interactions, ``starts``/``lengths`` per user, ``is_target`` per interaction).

    Returns ``(train_len, valid_at, test_at, has_valid, has_test)``: the training part is the first
    ``train_len`` interactions; the validation and test targets sit at offsets ``valid_at`` and
    ``test_at`` (absolute indices). At least one target interaction stays in the training part,
    as RecBole's leave-one-out keeps one training row.
    """
    n_users = len(starts)
    user = np.repeat(np.arange(n_users), lengths)
    target_index = np.flatnonzero(is_target)
    per_user = np.bincount(user[target_index], minlength=n_users)
    held_out = np.clip(per_user - 1, 0, held)
    # the k-th target from the end of each user: the last target_index entry of the user, minus k
    last = np.cumsum(per_user) - 1  # position in target_index of each user's last target
    test_at = np.where(held_out >= 1, target_index[np.clip(last, 0, None)] if len(target_index) else 0, -1)
    valid_at = np.where(held_out >= 2, target_index[np.clip(last - 1, 0, None)] if len(target_index) else 0, -1)
    first_held = np.where(held_out >= 2, valid_at, np.where(held_out >= 1, test_at, starts + lengths))
    train_len = first_held - starts
    return train_len, valid_at, test_at, held_out >= 2, held_out >= 1
