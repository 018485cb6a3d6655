"""Full-sort evaluation for LSRMTrainer: ranking in item chunks, split between processes.

Models that expose ``full_sort_hidden`` (the user's state) and ``item_table`` (the tied item
embedding) are ranked by ``rank_items``: items are scored in chunks with a running top-k and
log-sum-exp, in fp32, so no (users, n_items) matrix exists and bf16 ties do not reorder
items. Other models (RecBole's) get RecBole's score matrix. Both fill the same collector
entries, so the metrics cannot tell them apart.

Under torchrun each process takes its part of every batch of users and the collected rows are
gathered before the metrics are computed: every process gets the same result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.utils import set_color

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.evaluation.intervals import per_user_metrics
from recbole_lsrm.model.next_item import rank_items


class FullSortEvaluation:
    """Evaluation methods of LSRMTrainer (uses its model, device, process group and collector)."""

    def _full_sort_batch_eval(self, batched_data):
        """RecBole's way: the (users, n_items) score matrix, for models without full_sort_hidden."""
        interaction, history_index, positive_u, positive_i = batched_data
        interaction = interaction.to(self.device)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            scores = self.model.full_sort_predict(interaction)
        scores = scores.view(-1, self.tot_item_num).float()
        scores[:, 0] = -np.inf
        # The scaling-law measure: CE of the held-out item over all items, before masking.
        self.eval_collector.ce_collect(scores, positive_i.to(self.device))
        if history_index is not None:
            scores[history_index] = -np.inf
        if self.eval_mask_history:
            scores.scatter_(1, interaction[self.item_seq_field], -np.inf)  # HSTU/Dross protocol
        return interaction, scores, positive_u, positive_i

    @staticmethod
    def _one_target_per_row(batched_data) -> bool:
        """Sequential evaluation rows: row i's only positive is positive_i[i], nothing else masked."""
        interaction, history_index, positive_u, _ = batched_data
        return history_index is None and torch.equal(positive_u, torch.arange(len(interaction)))

    def _ranks_in_chunks(self, batched_data) -> bool:
        model = self.model
        return (
            hasattr(model, "full_sort_hidden")
            and hasattr(model, "item_table")
            and self.eval_collector.ranks_from_top_k()
            and self._one_target_per_row(batched_data)
        )

    def _ranked_batch_eval(self, batched_data) -> None:
        """Top-k lists and held-out CE by ``rank_items``: items scored in chunks, in fp32."""
        interaction, _, _, positive_i = batched_data
        interaction = interaction.to(self.device)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16):
            hidden = self.model.full_sort_hidden(interaction)  # (B, d)
        targets = positive_i.to(self.device)
        exclude = interaction[self.item_seq_field] if self.eval_mask_history else None
        _, top_ids, ce = rank_items(
            hidden.float(), self.model.item_table().float(), self.max_topk,
            targets=targets, exclude=exclude, chunk=self.eval_item_chunk,
        )
        self.eval_collector.ranked_collect(top_ids, targets, ce)

    def _my_rows(self, batched_data):
        """This process's part of an evaluation batch (all of it in one process; None: no rows)."""
        if not self.group.enabled:
            return batched_data
        if not self._one_target_per_row(batched_data):
            return batched_data if self.is_main else None
        interaction, _, _, positive_i = batched_data
        part = torch.arange(len(interaction)).tensor_split(self.group.world_size)[self.group.rank]
        if len(part) == 0:
            return None
        rows = slice(int(part[0]), int(part[-1]) + 1)
        return interaction[rows], None, torch.arange(len(part)), positive_i[rows]

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        if load_best_model:
            self._load_weights(Path(model_file) if model_file else self.best_model_file)
        if not isinstance(eval_data, FullSortEvalDataLoader):  # sampled ranking: RecBole's own loop
            if self.group.enabled:
                raise ConfigError("several processes evaluate with full ranking only: set eval_args mode: full")
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        self.model.eval()
        self.tot_item_num = eval_data._dataset.item_num
        show_progress = show_progress and self.is_main
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
                self._ranked_batch_eval(batched_data)
            else:
                interaction, scores, positive_u, positive_i = self._full_sort_batch_eval(batched_data)
                self.eval_collector.eval_batch_collect(scores, interaction, positive_u, positive_i)
        self.eval_collector.model_collect(self.model)
        struct = self.eval_collector.get_data_struct()
        self.eval_collector.gather(struct)
        self.last_per_user = per_user_metrics(struct, self.topk)
        result = self.evaluator.evaluate(struct)
        self.wandblogger.log_eval_metrics(result, head="eval")
        return result
