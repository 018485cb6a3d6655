"""RecBole's Collector, extended with the held-out item's cross-entropy and ranked top-k lists.

RecBole's collector takes a (users, n_items) score matrix; :meth:`LSRMCollector.ranked_collect`
takes the top-k ids found by ``rank_items`` in item chunks instead, and fills the same entries
(``rec.topk`` for Hit/NDCG/MRR/Recall/Precision, ``rec.items`` for coverage), so metrics
cannot tell the two apart. :meth:`LSRMCollector.gather` merges the entries of data-parallel
processes that each evaluated a part of the users.
"""

from __future__ import annotations

import copy

import torch

from recbole.evaluator import Collector

from recbole_lsrm import distributed
from recbole_lsrm.evaluation.metrics import CE_KEY, cross_entropy_of_targets

# Collected per evaluation and reset after it; the rest (data.num_items ...) is per run.
_PER_EVALUATION = ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label", CE_KEY)
# Entries that need every score, not only the top-k lists.
NEEDS_ALL_SCORES = ("rec.meanrank", "rec.score", "data.label")


class LSRMCollector(Collector):
    def ce_collect(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """Collect the CE of each row's target from unmasked scores (B, n_items)."""
        if self.register.need(CE_KEY):
            self.data_struct.update_tensor(CE_KEY, cross_entropy_of_targets(scores, targets))

    def ranks_from_top_k(self) -> bool:
        """Whether the configured metrics can be computed from top-k lists alone."""
        return not any(self.register.need(key) for key in NEEDS_ALL_SCORES)

    def ranked_collect(self, top_ids: torch.Tensor, targets: torch.Tensor, ce: torch.Tensor | None) -> None:
        """Collect one batch ranked in chunks: top-k ids (B, k), one target per row (B,), its CE (B,)."""
        if self.register.need("rec.items"):
            self.data_struct.update_tensor("rec.items", top_ids)
        if self.register.need("rec.topk"):
            hits = (top_ids == targets[:, None]).int()  # (B, k)
            positives = torch.ones((len(targets), 1), dtype=torch.int, device=hits.device)
            self.data_struct.update_tensor("rec.topk", torch.cat([hits, positives], dim=1))
        if ce is not None and self.register.need(CE_KEY):
            self.data_struct.update_tensor(CE_KEY, ce)

    def gather(self, struct) -> None:
        """Put every process's per-evaluation rows into ``struct`` (a no-op in one process)."""
        parts = {key: struct[key] for key in _PER_EVALUATION if key in struct}
        for key, value in distributed.gather_rows(parts).items():
            struct[key] = value

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
