"""Evaluation of a ranker (``objective: ranking``): each user's held-out interaction with its real
label, plus sampled negatives (label 0) at the run's ``eval_neg_ratio`` (its ``neg_ratio`` unless
set), scored by the model; AUC, LogLoss and GAUC over the scored candidates with 95% intervals
over the users (:mod:`recbole_lsrm.evaluation.candidates`).

The negatives are drawn with the run's seed, once, over the evaluation's users sorted by id, so
every evaluation and every model (whatever its loader's row order and batch size: DIN's and the
plugin's differ) scores the same candidates; they are kept in that order (``groups``: each
user's place among them, ``items``: the candidates' items).
"""

from __future__ import annotations

import numpy as np
import torch

from recbole_lsrm.data.negatives import check_negative_ratio, negative_counts, sample_negatives, user_item_keys
from recbole_lsrm.evaluation.candidates import candidate_intervals, ranking_metrics, scored_arrays
from recbole_lsrm.options import setting


class RankingEvaluation:
    """Scores every evaluation row's real interaction and its negatives; see the module docstring."""

    def __init__(self, model, config, device) -> None:
        self.model = model
        self.seed = int(config["seed"])
        self.neg_ratio = float(setting(config, "eval_neg_ratio", config["neg_ratio"]))  # ~: the training ratio
        self._keys: torch.Tensor | None = None
        self.user_field, self.item_field, self.label_field = (
            config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["LABEL_FIELD"])
        self.device = torch.device(device)
        self.decimals = int(setting(config, "metric_decimal_place", 4))  # as RecBole rounds a retriever's metrics
        self.last_per_user = None
        self._last: dict[str, np.ndarray] | None = None
        self._draws: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @property
    def last_intervals(self) -> dict[str, list[float]]:
        """The last evaluation's 95% intervals (computed when asked: the test's, not every validation's)."""
        return candidate_intervals(*scored_arrays(self._last)) if self._last is not None else {}

    @property
    def last_candidates(self) -> dict[str, np.ndarray] | None:
        """The last evaluation's scored candidates: ``groups`` (each user's place among the users
        sorted), ``labels``, ``scores`` and ``items``."""
        return dict(self._last) if self._last is not None else None

    def _negatives(self, eval_data) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The evaluation's sampled negatives, drawn once per evaluation set over its users sorted
        by id, so every model's loader (whatever its row order and batch size) scores the same
        candidates: (each row's place among the users sorted, each place's number of negatives,
        the (places, width) negatives)."""
        dataset = eval_data._dataset
        key = id(dataset)
        if key not in self._draws:
            n_items = dataset.item_num
            if self._keys is None:  # who had what: every interaction of the data
                history = getattr(dataset, "raw_inter_feat", None)
                history = history if history is not None else dataset.inter_feat
                self._keys = user_item_keys(history[self.user_field], history[self.item_field], n_items)
                check_negative_ratio(self._keys, n_items, self.neg_ratio, "eval_neg_ratio")
            users = dataset.inter_feat[self.user_field].cpu()
            order = torch.sort(users, stable=True).indices
            place = torch.empty_like(order)
            place[order] = torch.arange(len(order))
            generator = torch.Generator().manual_seed(self.seed)
            counts = negative_counts(len(order), self.neg_ratio, generator)
            negatives = torch.zeros((len(order), int(counts.max()) if len(counts) else 0), dtype=torch.long)
            if negatives.size(1):
                rows = torch.repeat_interleave(torch.arange(len(order)), counts)
                slot = torch.arange(len(rows)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
                negatives[rows, slot] = sample_negatives(users[order][rows], n_items, self._keys, generator)
            self._draws[key] = (place, counts, negatives)
        return self._draws[key]

    @torch.no_grad()
    def evaluate(self, eval_data, show_progress: bool = False) -> dict[str, float]:
        model = self.model
        model.eval()
        place, all_counts, all_negatives = self._negatives(eval_data)
        groups, labels, scores, kept = [], [], [], []
        row = 0
        for batch in eval_data:
            interaction = batch[0].to(self.device)
            items = interaction[self.item_field]
            where = place[row:row + len(items)]  # the rows' places among the users sorted
            counts, negatives = all_counts[where], all_negatives[where]
            width = int(counts.max()) if len(counts) else 0
            candidates = torch.cat([items.cpu()[:, None], negatives[:, :width]], dim=1)
            logits = self._scores(interaction, candidates.to(self.device)).float().cpu()
            present = torch.ones_like(candidates, dtype=torch.bool)
            present[:, 1:] = torch.arange(width)[None, :] < counts[:, None]
            target = torch.zeros_like(logits)
            target[:, 0] = interaction[self.label_field].float().cpu()
            group = where[:, None].expand_as(candidates)
            groups.append(group[present].numpy())
            labels.append(target[present].numpy())
            scores.append(logits[present].numpy())
            kept.append(candidates[present].numpy())
            row += len(items)
        order = np.argsort(np.concatenate(groups), kind="stable")  # by user: one layout from every loader
        self._last = {name: np.concatenate(parts)[order] for name, parts in
                      (("groups", groups), ("labels", labels), ("scores", scores), ("items", kept))}
        return {name: round(value, self.decimals) for name, value in ranking_metrics(*scored_arrays(self._last)).items()}

    def _scores(self, interaction, candidates: torch.Tensor) -> torch.Tensor:
        """(B, C) logits: the plugin's models score all candidates at once; RecBole's pointwise
        rankers (DIN) one candidate column at a time through ``predict`` (probabilities -> logits)."""
        if hasattr(self.model, "score_candidates"):
            return self.model.score_candidates(interaction, candidates)
        columns = []
        for column in candidates.T:
            interaction[self.item_field] = column
            p = self.model.predict(interaction).float().clamp(1e-7, 1 - 1e-7)
            columns.append(torch.log(p) - torch.log1p(-p))
        interaction[self.item_field] = candidates[:, 0]
        return torch.stack(columns, dim=1)
