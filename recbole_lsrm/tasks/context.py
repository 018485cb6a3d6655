"""What every task needs: the trained model's trainer, the data, and rows to evaluate.

Tasks build RecBole-style evaluation rows (a target interaction plus the lists of the items
before it) from every user's full sequence, change them (shorter inputs, perturbed items,
subsets of test cases), and score them with the trainer's own full-sort evaluation: RecBole's
collector and metrics, the run's protocol (history masking included), no second metric code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.interaction import Interaction

from recbole_lsrm.data.task_split import user_spans
from recbole_lsrm.data.windowed_dataset import gather_padded
from recbole_lsrm.evaluation.intervals import bootstrap_intervals

CI_METRICS = ("hit@10", "ndcg@10")  # the figures the tasks report, with intervals

@dataclass
class TaskContext:
    config: Any  # the run's LSRMConfig
    trainer: Any  # LSRMTrainer with the best weights loaded
    dataset: Any  # the full dataset: raw_inter_feat, cold_start_users, item_feat
    train_dataset: Any  # the training split (its item_counter is the training popularity)
    test_dataset: Any  # the test split (its rows are the standard test cases)

    @property
    def model(self) -> torch.nn.Module:
        return self.trainer.model

    @property
    def n_items(self) -> int:
        return self.dataset.item_num

    def evaluate(self, rows: Interaction) -> dict[str, Any]:
        """RecBole's full-sort metrics of ``rows`` under the run's protocol, with ``ci95``: a
        95% bootstrap interval over the rows for Hit@10 and NDCG@10 (:meth:`per_user` has
        the per-row values)."""
        loader = FullSortEvalDataLoader(self.config, self.test_dataset.copy(rows), None, shuffle=False)
        result: dict[str, Any] = {key: float(value) for key, value in self.trainer.evaluate(loader, load_best_model=False).items()}
        per_user = self.per_user()
        if per_user:
            result["ci95"] = bootstrap_intervals({k: per_user[k] for k in CI_METRICS if k in per_user})
        return result

    def per_user(self) -> dict[str, np.ndarray] | None:
        """The last evaluation's per-row Hit@k, NDCG@k and CE (None where rows had several targets)."""
        return self.trainer.last_per_user


class Sequences:
    """Every user's interactions in time order, as offsets into ``raw_inter_feat``."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.inter = dataset.raw_inter_feat
        self.uid_field = dataset.uid_field
        self.iid_field = dataset.iid_field
        self.list_suffix = dataset.config["LIST_SUFFIX"]
        self.max_len = dataset.config["MAX_ITEM_LIST_LENGTH"]
        self.uids = self.inter[self.uid_field].numpy()
        self.starts, self.lengths = user_spans(self.uids)
        self.users = self.uids[self.starts]
        self.items = self.inter[self.iid_field].numpy()

    def of_users(self, users: np.ndarray) -> np.ndarray:
        """Positions (into ``self.users``) of the given user ids."""
        return np.searchsorted(self.users, users)

    def rows(self, target: np.ndarray, first: np.ndarray) -> Interaction:
        """Rows predicting interaction ``target`` from interactions ``first .. target - 1``.

        At most ``MAX_ITEM_LIST_LENGTH`` inputs (the latest); lists are left-aligned and
        zero-padded like RecBole's.
        """
        L = self.max_len
        first = np.maximum(first, target - L)
        index = first[:, None] + np.arange(L)[None, :]
        mask = index < target[:, None]
        rows = self.inter[torch.from_numpy(target)]
        lists = {self.dataset.item_list_length_field: torch.from_numpy((target - first).astype(np.int64))}
        for field in self.inter.columns:
            if field != self.uid_field:
                lists[field + self.list_suffix] = gather_padded(self.inter[field], index, mask)
        rows.update(Interaction(lists))
        return rows
