"""A ranker's test figures over its scored candidates, their intervals and paired differences.

A ranker's test (``objective: ranking``) scores each user's held-out interaction with its real
label plus sampled negatives; the scored candidates are three arrays of one length: ``groups``
(the test row, one per user), ``labels`` (1 or 0) and ``scores`` (logits). From them:

- ``auc``: the area under the ROC curve over all scored pairs (RecBole's AUC);
- ``logloss``: the mean binary cross-entropy of the scores' sigmoids (RecBole's LogLoss);
- ``gauc``: the users' own AUCs (their held-out item against their negatives), averaged with each
  user weighted by their candidates, over the users whose candidates hold both labels;
- ``heldout_auc``: the AUC over the held-out interactions alone (each user's first candidate, with
  its real label; no sampled negative): how well the liked are told from the not liked, apart
  from telling a user's items from items they never had.

None of them is a mean over users, so their 95% intervals resample the users, each with all of
their candidates, and recompute the figure. Two runs scored on the same candidates (same data,
seed and ``neg_ratio``: DIN and the plugin's rankers alike) are compared by resampling the same
users for both (a paired difference). A run keeps its candidates in ``test_candidates.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from recbole_lsrm.io import atomic_write

RESAMPLES = 200
LEVEL = 0.95
CANDIDATES_FILE = "test_candidates.npz"
FIELDS = ("groups", "labels", "scores")  # and, since runs keep them, the candidates' ``items``


def scored_arrays(scored: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(groups, labels, scores) of a run's scored candidates, as the figures take them."""
    return scored["groups"], scored["labels"], scored["scores"]


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


def group_aucs(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each group's AUC over its own candidates (nan without both labels) and its number of
    candidates, groups in sorted order: (groups, aucs, sizes)."""
    order = np.argsort(groups, kind="stable")
    groups, labels, scores = groups[order], labels[order], scores[order]
    bounds = np.flatnonzero(np.diff(groups)) + 1
    aucs = np.array([auc(part_labels, part_scores)
                     for part_labels, part_scores in zip(np.split(labels, bounds), np.split(scores, bounds))])
    return groups[np.r_[0, bounds]] if len(groups) else groups, aucs, np.diff(np.r_[0, bounds, len(groups)])


def _weighted(aucs: np.ndarray, sizes: np.ndarray) -> float:
    """The groups' AUCs weighted by their sizes, over the groups holding both labels."""
    both = ~np.isnan(aucs)
    weight = sizes[both].sum()
    return float((aucs[both] * sizes[both]).sum() / weight) if weight else float("nan")


def gauc(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Each group's AUC weighted by its size, over the groups holding both labels."""
    _, aucs, sizes = group_aucs(groups, labels, scores)
    return _weighted(aucs, sizes)


def held_out(groups: np.ndarray) -> np.ndarray:
    """Which candidates are the held-out interactions: the first of each group (a group's
    candidates are contiguous, the held-out interaction first, then its negatives)."""
    return np.r_[True, groups[1:] != groups[:-1]] if len(groups) else np.zeros(0, bool)


def heldout_auc(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """AUC over the held-out interactions alone (their real labels), nan without both labels."""
    first = held_out(groups)
    return auc(labels[first], scores[first])


METRICS = {"auc": lambda groups, labels, scores: auc(labels, scores),
           "logloss": lambda groups, labels, scores: logloss(labels, scores),
           "gauc": gauc,
           "heldout_auc": heldout_auc}


def ranking_metrics(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return {name: metric(groups, labels, scores) for name, metric in METRICS.items()}


def _resamples(groups: np.ndarray, n_resamples: int, seed: int):
    """Each resample of the users: (the users drawn, as positions in the sorted users; the index
    of their candidates; the resample's own group of each candidate)."""
    users = np.unique(groups)
    order = np.argsort(groups, kind="stable")
    starts = np.searchsorted(groups[order], users)
    ends = np.searchsorted(groups[order], users, side="right")
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        chosen = rng.integers(0, len(users), len(users))
        index = np.concatenate([order[starts[c]:ends[c]] for c in chosen])
        yield chosen, index, np.repeat(np.arange(len(chosen)), ends[chosen] - starts[chosen])


def candidate_intervals(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                        n_resamples: int = RESAMPLES, seed: int = 0) -> dict[str, list[float]]:
    """95% percentile intervals of each figure, resampling the users with all their candidates
    (a user drawn keeps their own AUC, so GAUC is reweighted, not recomputed)."""
    if len(np.unique(groups)) < 2:
        return {}
    _, aucs, sizes = group_aucs(groups, labels, scores)
    draws: dict[str, list[float]] = {name: [] for name in METRICS}
    for chosen, index, relabelled in _resamples(groups, n_resamples, seed):
        draws["auc"].append(auc(labels[index], scores[index]))
        draws["logloss"].append(logloss(labels[index], scores[index]))
        draws["gauc"].append(_weighted(aucs[chosen], sizes[chosen]))
        draws["heldout_auc"].append(heldout_auc(relabelled, labels[index], scores[index]))
    tail = 100 * (1 - LEVEL) / 2
    return {name: [float(np.nanpercentile(v, tail)), float(np.nanpercentile(v, 100 - tail))] for name, v in draws.items()}


def same_candidates(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Whether two runs scored the same candidates: the same users, labels and number of each, and
    the same items where both runs kept them."""
    same = (a["groups"].shape == b["groups"].shape and np.array_equal(a["groups"], b["groups"])
            and np.array_equal(a["labels"], b["labels"]))
    return same and ("items" not in a or "items" not in b or np.array_equal(a["items"], b["items"]))


def paired_candidate_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], metric: str,
                                n_resamples: int = RESAMPLES, seed: int = 0) -> dict[str, float]:
    """``metric`` of b minus a's on the same candidates, with a 95% interval from resampling the
    same users for both."""
    if not same_candidates(a, b):
        raise ValueError(f"{metric}: the two runs were not tested on the same candidates")
    groups = a["groups"]

    def figure(run: dict[str, np.ndarray], index: np.ndarray, relabelled: np.ndarray) -> float:
        return METRICS[metric](relabelled, run["labels"][index], run["scores"][index])

    everything = np.arange(len(groups))
    mean = figure(b, everything, groups) - figure(a, everything, groups)
    draws = [figure(b, index, relabelled) - figure(a, index, relabelled)
             for _, index, relabelled in _resamples(groups, n_resamples, seed)]
    tail = 100 * (1 - LEVEL) / 2
    lo, hi = np.nanpercentile(draws, [tail, 100 - tail])
    return {"mean": float(mean), "lo": float(lo), "hi": float(hi)}


def save_candidates(scored: dict[str, np.ndarray], run_dir: Path) -> Path:
    path = Path(run_dir) / CANDIDATES_FILE

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            items = {"items": scored["items"].astype(np.int64)} if "items" in scored else {}
            np.savez_compressed(f, groups=scored["groups"].astype(np.int64), labels=scored["labels"].astype(np.float32),
                                scores=scored["scores"].astype(np.float32), **items)

    atomic_write(path, write)
    return path


def load_candidates(run_dir: Path) -> dict[str, np.ndarray] | None:
    path = Path(run_dir) / CANDIDATES_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        if not set(FIELDS) <= set(data.files):
            return None
        return {"groups": data["groups"], "labels": data["labels"].astype(np.float64),
                "scores": data["scores"].astype(np.float64), **({"items": data["items"]} if "items" in data.files else {})}
