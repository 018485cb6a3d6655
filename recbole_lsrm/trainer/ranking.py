"""Evaluation of a ranker (``objective: ranking``): each user's held-out interaction with its real
label, plus sampled negatives (label 0) at the run's ``neg_ratio``, scored by the model.

Reported, each with a 95% bootstrap interval over the users:

- ``auc``: the area under the ROC curve over all scored pairs (RecBole's AUC);
- ``logloss``: the mean binary cross-entropy of the scores' sigmoids (RecBole's LogLoss);
- ``gauc``: the users' own AUCs (their held-out item against their negatives), averaged with each
  user weighted by their candidates, over the users whose candidates hold both labels.

The negatives are drawn with the run's seed, so every evaluation scores the same candidates.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata

from recbole_lsrm.model.ranking import negative_counts, sample_negatives, user_item_keys

RESAMPLES = 200


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half); nan without both labels."""
    positives = labels > 0.5
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(labels: np.ndarray, scores: np.ndarray) -> float:
    p = 1.0 / (1.0 + np.exp(-scores))
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean())


def gauc(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Each group's AUC weighted by its size, over the groups holding both labels."""
    total, weight = 0.0, 0
    order = np.argsort(groups, kind="stable")
    groups, labels, scores = groups[order], labels[order], scores[order]
    bounds = np.flatnonzero(np.diff(groups)) + 1
    for part_labels, part_scores in zip(np.split(labels, bounds), np.split(scores, bounds)):
        value = auc(part_labels, part_scores)
        if not np.isnan(value):
            total += value * len(part_labels)
            weight += len(part_labels)
    return total / weight if weight else float("nan")


def ranking_metrics(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {"auc": auc(labels, scores), "logloss": logloss(labels, scores), "gauc": gauc(groups, labels, scores)}


class RankingEvaluation:
    """Scores every evaluation row's real interaction and its negatives; see the module docstring."""

    def __init__(self, model, config, device) -> None:
        self.model = model
        self.seed = int(config["seed"])
        self.neg_ratio = float(config["neg_ratio"])
        self._keys: torch.Tensor | None = None
        self.user_field, self.item_field, self.label_field = (
            config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["LABEL_FIELD"])
        self.device = torch.device(device)
        self.last_per_user = None
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def last_intervals(self) -> dict[str, list[float]]:
        """The last evaluation's 95% intervals (computed when asked: the test's, not every validation's)."""
        return self._intervals(*self._last) if self._last is not None else {}

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

    def _intervals(self, groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> dict[str, list[float]]:
        """95% percentile intervals from resampling the users (each with all of their candidates)."""
        users = np.unique(groups)
        if len(users) < 2:
            return {}
        order = np.argsort(groups, kind="stable")
        starts = np.searchsorted(groups[order], users)
        ends = np.searchsorted(groups[order], users, side="right")
        rng = np.random.default_rng(0)
        draws = {name: [] for name in ("auc", "logloss", "gauc")}
        for _ in range(RESAMPLES):
            chosen = rng.integers(0, len(users), len(users))
            index = np.concatenate([order[starts[c]:ends[c]] for c in chosen])
            relabelled = np.repeat(np.arange(len(chosen)), ends[chosen] - starts[chosen])
            for name, value in ranking_metrics(relabelled, labels[index], scores[index]).items():
                draws[name].append(value)
        return {name: [float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5))] for name, v in draws.items()}
