"""RecBole's Collector, extended to gather the held-out item's cross-entropy."""

from __future__ import annotations

import copy

import torch

from recbole.evaluator import Collector

from recbole_lsrm.evaluation.metrics import CE_KEY, cross_entropy_of_targets

# Collected per evaluation and reset after it; the rest (data.num_items ...) is per run.
_PER_EVALUATION = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label", CE_KEY)


class LSRMCollector(Collector):
    def ce_collect(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """Collect the CE of each row's target from unmasked scores (B, n_items)."""
        if self.register.need(CE_KEY):
            self.data_struct.update_tensor(CE_KEY, cross_entropy_of_targets(scores, targets))

    def get_data_struct(self):
        # RecBole 1.2.1 calls .cpu() on every entry, so the integer data.num_items (needed by
        # item coverage) crashes it; and it only resets its own per-evaluation keys.
        data = self.data_struct._data_dict
        for key, value in data.items():
            if isinstance(value, torch.Tensor):
                data[key] = value.cpu()
        returned = copy.deepcopy(self.data_struct)
        for key in _PER_EVALUATION:
            if key in self.data_struct:
                del self.data_struct[key]
        return returned
