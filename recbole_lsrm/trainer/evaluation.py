"""Full-sort evaluation for LSRMTrainer: ranking in item chunks, split between processes.

The plugin's models (:class:`~recbole_lsrm.model.contract.NextItemModel`: the user's state
``full_sort_hidden`` times the tied ``item_table``) are ranked by ``rank_items``: items are scored in chunks with a running top-k and
log-sum-exp, in fp32, so no (users, n_items) matrix exists and bf16 ties do not reorder
items. Other models (RecBole's) get RecBole's score matrix. Both fill the same collector
entries, so the metrics cannot tell them apart.

Under torchrun each process takes its part of every batch of users and the collected rows are
gathered before the metrics are computed: every process gets the same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from recbole.utils import set_color

from recbole_lsrm.distributed import ProcessGroup
from recbole_lsrm.evaluation.intervals import per_user_metrics
from recbole_lsrm.model.contract import is_plugin_model
from recbole_lsrm.options import setting
from recbole_lsrm.precision import Precision
from recbole_lsrm.model.next_item import rank_items


@dataclass(frozen=True)
class EvalSettings:
    """What full-sort evaluation reads from the config."""

    item_seq_field: str
    topk: tuple[int, ...]
    mask_history: bool  # eval_mask_history: the input items are masked out of the ranking (HSTU's protocol)
    item_chunk: int | None  # eval_item_chunk: items scored per chunk (None: chosen from the memory bound)
    precision: Precision  # bf16 autocast for the hidden states (the scores and CE stay fp32), or fp32

    @classmethod
    def from_config(cls, config, precision: Precision | None = None) -> "EvalSettings":
        return cls(
            item_seq_field=config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"],
            topk=tuple(config["topk"]),
            mask_history=bool(config["eval_mask_history"]),
            item_chunk=setting(config, "eval_item_chunk"),
            precision=precision or config["precision"],
        )

    @property
    def max_topk(self) -> int:
        return max(self.topk)


class FullSortEvaluation:
    """Ranks every user's held-out item against all items and computes the configured metrics.

    Inputs, all given here: the model, the collector (LSRMCollector, which already holds the
    training data's item counts), RecBole's Evaluator, the settings and the process group.
    ``evaluate`` returns the metrics (the same in every process) and keeps the per-user figures
    of the last call in ``last_per_user`` (for bootstrap intervals).
    """

    def __init__(self, model, collector, evaluator, settings: EvalSettings, group: ProcessGroup, device) -> None:
        self.model = model
        self.collector = collector
        self.evaluator = evaluator
        self.settings = settings
        self.group = group
        self.device = torch.device(device)
        self.last_per_user: dict | None = None

    def _autocast(self):
        return self.settings.precision.autocast()

    def score_matrix_batch(self, batched_data, n_items: int):
        """RecBole's way: the (users, n_items) score matrix, for RecBole's models."""
        interaction, history_index, positive_u, positive_i = batched_data
        interaction = interaction.to(self.device)
        with self._autocast():
            scores = self.model.full_sort_predict(interaction)
        scores = scores.view(-1, n_items).float()
        scores[:, 0] = -np.inf
        # The scaling-law measure: CE of the held-out item over all items, before masking.
        self.collector.ce_collect(scores, positive_i.to(self.device))
        if history_index is not None:
            scores[history_index] = -np.inf
        if self.settings.mask_history:
            scores.scatter_(1, interaction[self.settings.item_seq_field], -np.inf)  # HSTU/Dross protocol
        return interaction, scores, positive_u, positive_i

    @staticmethod
    def _one_target_per_row(batched_data) -> bool:
        """Sequential evaluation rows: row i's only positive is positive_i[i], nothing else masked."""
        interaction, history_index, positive_u, _ = batched_data
        return history_index is None and torch.equal(positive_u, torch.arange(len(interaction)))

    def _ranks_in_chunks(self, batched_data) -> bool:
        return (
            is_plugin_model(self.model)
            and self.collector.ranks_from_top_k()
            and self._one_target_per_row(batched_data)
        )

    def ranked_batch(self, batched_data) -> None:
        """Top-k lists and held-out CE by ``rank_items``: items scored in chunks, in fp32."""
        interaction, _, _, positive_i = batched_data
        interaction = interaction.to(self.device)
        with self._autocast():
            hidden = self.model.full_sort_hidden(interaction)  # (B, d)
        targets = positive_i.to(self.device)
        exclude = interaction[self.settings.item_seq_field] if self.settings.mask_history else None
        _, top_ids, ce = rank_items(
            hidden.float(), self.model.item_table().float(), self.settings.max_topk,
            targets=targets, exclude=exclude, chunk=self.settings.item_chunk,
        )
        self.collector.ranked_collect(top_ids, targets, ce)

    def _my_rows(self, batched_data):
        """This process's part of an evaluation batch (all of it in one process; None: no rows)."""
        if not self.group.enabled:
            return batched_data
        if not self._one_target_per_row(batched_data):
            return batched_data if self.group.is_main else None
        interaction, _, _, positive_i = batched_data
        part = torch.arange(len(interaction)).tensor_split(self.group.world_size)[self.group.rank]
        if len(part) == 0:
            return None
        rows = slice(int(part[0]), int(part[-1]) + 1)
        return interaction[rows], None, torch.arange(len(part)), positive_i[rows]

    @torch.no_grad()
    def evaluate(self, eval_data, show_progress: bool = False) -> dict:
        """The metrics over ``eval_data`` (a FullSortEvalDataLoader), gathered over all processes."""
        self.model.eval()
        n_items = eval_data._dataset.item_num
        show_progress = show_progress and self.group.is_main
        iter_data = (
            tqdm(eval_data, total=len(eval_data), ncols=100, desc=set_color("Evaluate   ", "pink"))
            if show_progress
            else eval_data
        )
        for batched_data in iter_data:
            batched_data = self._my_rows(batched_data)
            if batched_data is None:
                continue
            if self._ranks_in_chunks(batched_data):
                self.ranked_batch(batched_data)
            else:
                interaction, scores, positive_u, positive_i = self.score_matrix_batch(batched_data, n_items)
                self.collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        self.collector.model_collect(self.model)
        struct = self.collector.get_data_struct()
        self.collector.gather(struct)
        self.last_per_user = per_user_metrics(struct, list(self.settings.topk))
        return self.evaluator.evaluate(struct)
