"""Per-user test figures and bootstrap intervals over test users.

ML-1M has 6,040 test users: a difference of 0.005 NDCG@10 between two sizes can be noise.
:func:`per_user_metrics` turns one evaluation's collected entries into one value per user
(Hit@k, NDCG@k, the held-out item's CE), and :func:`bootstrap_intervals` resamples users
with replacement to give each mean a percentile interval. The run writes both: the
intervals into ``summary.json`` (and from there ``results.csv``), the per-user values into
``test_per_user.npz`` for paired comparisons (:func:`paired_difference`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recbole_lsrm.evaluation.metrics import CE_KEY
from recbole_lsrm.io import atomic_write

N_RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
PER_USER_FILE = "test_per_user.npz"


def per_user_metrics(struct, topk: list[int]) -> dict[str, np.ndarray] | None:
    """``{"hit@10": (U,), "ndcg@10": (U,), "celoss": (U,)}`` from an evaluation's entries.

    Needs one held-out item per user (the sequential protocol): ``rec.topk`` rows are the
    hits of the top-k list followed by the number of positives. Returns None otherwise.
    """
    out: dict[str, np.ndarray] = {}
    if "rec.topk" in struct:
        rows = struct.get("rec.topk").numpy()
        hits, positives = rows[:, :-1].astype(np.float64), rows[:, -1]
        if not np.all(positives == 1):
            return None
        discount = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
        for k in topk:
            if k <= hits.shape[1]:
                out[f"hit@{k}"] = hits[:, :k].max(axis=1)
                out[f"ndcg@{k}"] = (hits[:, :k] * discount[:k]).sum(axis=1)
    if CE_KEY in struct:
        out["celoss"] = struct.get(CE_KEY).numpy().astype(np.float64)
    return out or None


def bootstrap_intervals(
    per_user: dict[str, np.ndarray], n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = SEED,
) -> dict[str, list[float]]:
    """A percentile interval of each metric's mean over users, the same resamples for all."""
    n_users = len(next(iter(per_user.values())))
    if n_users < 2:
        return {}
    tail = 100 * (1 - level) / 2
    out = {}
    for name, means in resampled_means(per_user, n_resamples, seed).items():
        lo, hi = np.percentile(means, [tail, 100 - tail])
        out[name] = [float(lo), float(hi)]
    return out


# Resampled user indices held at once (32 MiB of int64): a large test set (ML-20M's 138K users)
# would otherwise hold n_resamples x n_users of them, over a gigabyte, twice.
_CHUNK_ELEMENTS = 1 << 22


def resampled_means(columns: dict[str, np.ndarray], n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, np.ndarray]:
    """Each column's mean over ``n_resamples`` bootstrap resamples of the users, the same
    resamples for every column, drawn a chunk of resamples at a time (the generator's stream
    is the same as one draw of them all, so the figures do not depend on the chunk size)."""
    n_users = len(next(iter(columns.values())))
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_ELEMENTS // max(1, n_users))
    out = {name: np.empty(n_resamples) for name in columns}
    for start in range(0, n_resamples, step):
        count = min(step, n_resamples - start)
        index = rng.integers(0, n_users, size=(count, n_users))
        for name, values in columns.items():
            out[name][start:start + count] = np.asarray(values)[index].mean(axis=1)
    return out


def metrics_by_group(per_user: dict[str, np.ndarray], groups: np.ndarray, names: dict[int, str]) -> dict[str, dict]:
    """Each group's mean of every per-user metric (rows of ``per_user`` in the order of
    ``groups``), its number of users and its 95% bootstrap intervals."""
    out = {}
    for group in np.unique(groups):
        rows = groups == group
        part = {name: values[rows] for name, values in per_user.items()}
        out[names.get(int(group), str(group))] = {
            "users": int(rows.sum()), **{name: float(values.mean()) for name, values in part.items()},
            "ci95": bootstrap_intervals(part),
        }
    return out


def paired_difference(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], metric: str,
    n_resamples: int = N_RESAMPLES, level: float = LEVEL, seed: int = SEED,
) -> dict[str, float]:
    """Mean of b - a over the same users, with a paired bootstrap interval."""
    x, y = np.asarray(a[metric]), np.asarray(b[metric])
    if x.shape != y.shape:
        raise ValueError(f"{metric}: the two runs were tested on different users ({len(x)} and {len(y)})")
    diff = y - x
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(resampled_means({"diff": diff}, n_resamples, seed)["diff"], [tail, 100 - tail])
    return {"mean": float(diff.mean()), "lo": float(lo), "hi": float(hi)}


def save_per_user(per_user: dict[str, np.ndarray], run_dir: Path) -> Path:
    path = Path(run_dir) / PER_USER_FILE

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **{k.replace("@", "_at_"): v.astype(np.float32) for k, v in per_user.items()})

    atomic_write(path, write)
    return path


def load_per_user(run_dir: Path) -> dict[str, np.ndarray] | None:
    path = Path(run_dir) / PER_USER_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k.replace("_at_", "@"): data[k].astype(np.float64) for k in data.files}
