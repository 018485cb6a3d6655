"""Evaluation of a ranker (``objective: ranking``): each user's held-out interaction with its real
label, plus sampled negatives (label 0) at the run's ``eval_neg_ratio`` (its ``neg_ratio`` unless
set), scored by the model; AUC, LogLoss and GAUC over the scored candidates with 95% intervals
over the users (:mod:`recbole_lsrm.evaluation.candidates`).

The negatives are drawn with the run's seed, so every evaluation scores the same candidates.
"""

from __future__ import annotations

import numpy as np
import torch

from recbole_lsrm.evaluation.candidates import candidate_intervals, ranking_metrics
from recbole_lsrm.model.ranking import negative_counts, sample_negatives, user_item_keys
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
        self.last_per_user = None
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def last_intervals(self) -> dict[str, list[float]]:
        """The last evaluation's 95% intervals (computed when asked: the test's, not every validation's)."""
        return candidate_intervals(*self._last) if self._last is not None else {}

    @property
    def last_candidates(self) -> dict[str, np.ndarray] | None:
        """The last evaluation's scored candidates: ``groups`` (one per test row), ``labels``, ``scores``."""
        return dict(zip(("groups", "labels", "scores"), self._last)) if self._last is not None else None

    @torch.no_grad()
    def evaluate(self, eval_data, show_progress: bool = False) -> dict[str, float]:
        model = self.model
        model.eval()
        generator = torch.Generator().manual_seed(self.seed)
        dataset = eval_data._dataset
        n_items = dataset.item_num
        if self._keys is None:  # who had what: every interaction of the data
            history = getattr(dataset, "raw_inter_feat", None)
            history = history if history is not None else dataset.inter_feat
            self._keys = user_item_keys(history[self.user_field], history[self.item_field], n_items)
        groups, labels, scores = [], [], []
        row = 0
        for batch in eval_data:
            interaction = batch[0].to(self.device)
            items = interaction[self.item_field]
            users = interaction[self.user_field]
            counts = negative_counts(len(items), self.neg_ratio, generator)
            width = int(counts.max()) if len(counts) else 0
            candidates = torch.zeros((len(items), 1 + width), dtype=torch.long)
            candidates[:, 0] = items.cpu()
            if width:
                rows = torch.repeat_interleave(torch.arange(len(items)), counts)
                negatives = sample_negatives(users.cpu()[rows], n_items, self._keys, generator)
                slot = torch.arange(len(rows)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
                candidates[rows, 1 + slot] = negatives
            logits = self._scores(interaction, candidates.to(self.device)).float().cpu()
            present = torch.ones_like(candidates, dtype=torch.bool)
            present[:, 1:] = torch.arange(width)[None, :] < counts[:, None]
            target = torch.zeros_like(logits)
            target[:, 0] = interaction[self.label_field].float().cpu()
            group = (row + torch.arange(len(items)))[:, None].expand_as(candidates)
            groups.append(group[present].numpy())
            labels.append(target[present].numpy())
            scores.append(logits[present].numpy())
            row += len(items)
        groups, labels, scores = np.concatenate(groups), np.concatenate(labels), np.concatenate(scores)
        self._last = (groups, labels, scores)
        return ranking_metrics(groups, labels, scores)

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
