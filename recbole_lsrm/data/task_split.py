"""Interactions held out of training for the challenge tasks (LSRM paper V).

Two settings take data away from the model before any split, so that a task can test on
what the model never saw:

- ``cold_start_users`` (a fraction): these users (drawn with the run's seed) are removed
  from training, validation and test entirely; the cold-start task evaluates them.
- ``trajectory_holdout`` (a number of items): the last items of every user's sequence are
  removed; leave-one-out then applies to what remains, and the trajectory task compares
  generated continuations with these held-out items.

``raw_inter_feat`` keeps every interaction sorted by user and time: the tasks read their
sequences there.
"""

from __future__ import annotations

import numpy as np
import torch



def user_spans(uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets and lengths of each user's run in an array sorted by user."""
    if len(uids) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(uids)) + 1]).astype(np.int64)
    lengths = np.diff(np.concatenate([starts, [len(uids)]])).astype(np.int64)
    return starts, lengths


class TaskHoldOutMixin:
    """Sort by user and time, keep everything in ``raw_inter_feat``, train on the rest."""

    def _hold_out_for_tasks(self) -> None:
        fraction = self.config["cold_start_users"] or 0.0
        holdout = self.config["trajectory_holdout"] or 0
        self.sort(by=[self.uid_field, self.time_field], ascending=True)
        self.raw_inter_feat = self.inter_feat
        uids = self.inter_feat[self.uid_field].numpy()
        keep = np.ones(len(uids), dtype=bool)
        if holdout:
            starts, lengths = user_spans(uids)
            from_end = np.repeat(starts + lengths, lengths) - 1 - np.arange(len(uids))
            keep &= from_end >= holdout
        self.cold_start_users = np.zeros(0, dtype=np.int64)
        if fraction:
            users = np.unique(uids)
            rng = np.random.default_rng(self.config["seed"])
            self.cold_start_users = np.sort(rng.choice(users, size=round(fraction * len(users)), replace=False))
            keep &= ~np.isin(uids, self.cold_start_users)
        if not keep.all():
            self.inter_feat = self.inter_feat[torch.from_numpy(keep)]
