"""Paired differences between a study's trials, over the same test users.

Two trials of one study are tested on the same users, so the difference of their per-user
figures (``test_per_user.npz`` in each run folder) has a much narrower interval than the two
separate intervals suggest. Each row gets the difference against its reference trial:

- ``depth``: the same sweep's trial one depth below (same data fraction and seed);
- ``variants``: the ``depth`` trial of the same model and depth (the full model);
- a sweep with a ``baseline``: that sweep's trial of the same model and depth.

A retriever's figures are means over users (``test_per_user.npz``); a ranker's AUC and LogLoss
are recomputed on resamples of the users from both runs' scored candidates
(``test_candidates.npz``, :mod:`recbole_lsrm.evaluation.candidates`), where the two runs
scored the same candidates.

The columns (``paired_ref``, ``paired_<metric>``, ``paired_<metric>_lo``/``_hi``) are written
into the study's table, so the report (made from the table alone) can use them; a row whose
run folders are gone (a study continued elsewhere) keeps the values the table had.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from recbole_lsrm.evaluation.candidates import load_candidates, paired_candidate_difference, same_candidates
from recbole_lsrm.evaluation.intervals import load_per_user, paired_difference

PAIRED_METRICS = ("ndcg@10", "hit@10")
PAIRED_RANKING_METRICS = ("auc", "logloss", "heldout_auc")
_SAME_SIZE = ("model", "n_layers", "fraction", "seed")


def _same(a: dict[str, Any], b: dict[str, Any], columns: tuple[str, ...]) -> bool:
    return all(str(a.get(c)) == str(b.get(c)) for c in columns)


def _depth(row: dict[str, Any]) -> float:
    try:
        return float(row.get("n_layers"))
    except (TypeError, ValueError):
        return float("nan")


def reference(row: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The trial ``row`` is set against, or None (rows as the study writes them or as pandas
    reads the table back, an empty cell then being NaN)."""
    section, baseline = row.get("section"), row.get("baseline")
    if isinstance(baseline, float) and math.isnan(baseline):
        baseline = None
    if baseline:
        # its trial of the same model and size; a baseline of one trial (a reference such as
        # RecentItems, or another model at one size) is every trial's reference; "sweep/size"
        # names the trial (DIN, without a depth, against HSTU's 2 blocks)
        baseline, _, size = str(baseline).partition("/")
        candidates = [r for r in rows if r.get("sweep") == baseline and _same(r, row, ("fraction", "seed"))]
        if size:
            found = [r for r in candidates if str(r.get("size")) == size]
        else:
            found = [r for r in candidates if _same(r, row, _SAME_SIZE)] or (candidates if len(candidates) == 1 else [])
    elif section == "depth":
        below = [r for r in rows if r.get("sweep") == row.get("sweep") and _same(r, row, ("fraction", "seed"))
                 and _depth(r) < _depth(row)]
        found = sorted(below, key=_depth)[-1:]
    elif section == "variants":
        found = [r for r in rows if r.get("section") == "depth" and _same(r, row, _SAME_SIZE)]
    else:
        return None
    return found[0] if found else None


def _loaded(row: dict[str, Any], cache: dict[str, Any], load) -> dict | None:
    run_dir = row.get("run_dir")
    if not isinstance(run_dir, str) or not run_dir:
        return None
    key = (run_dir, load.__name__)
    if key not in cache:
        cache[key] = load(Path(run_dir)) if Path(run_dir).is_dir() else None
    return cache[key]


def _differences(row: dict[str, Any], ref: dict[str, Any], cache: dict[str, Any]) -> dict[str, dict[str, float]]:
    """This row minus its reference, per metric, over the same users (empty where they differ)."""
    mine, theirs = _loaded(row, cache, load_candidates), _loaded(ref, cache, load_candidates)
    if mine is not None and theirs is not None:  # rankers
        if not same_candidates(mine, theirs):
            return {}
        return {metric: paired_candidate_difference(theirs, mine, metric) for metric in PAIRED_RANKING_METRICS}
    mine, theirs = _loaded(row, cache, load_per_user), _loaded(ref, cache, load_per_user)
    if mine is None or theirs is None:
        return {}
    return {metric: paired_difference(theirs, mine, metric) for metric in PAIRED_METRICS
            if metric in mine and metric in theirs and len(mine[metric]) == len(theirs[metric])}


def add_paired_differences(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with a reference trial and both runs' per-user figures (or scored candidates) at
    hand gets the paired difference (this row minus the reference) of :data:`PAIRED_METRICS`
    (a ranker's :data:`PAIRED_RANKING_METRICS`) with its 95% interval; a row from the committed
    table, its run folders elsewhere, keeps its columns."""
    cache: dict[str, Any] = {}
    for row in rows:
        ref = reference(row, rows)
        if ref is None:
            continue
        for metric, diff in _differences(row, ref, cache).items():
            row["paired_ref"] = f"{ref['sweep']}/{ref['key']}"
            row[f"paired_{metric}"], row[f"paired_{metric}_lo"], row[f"paired_{metric}_hi"] = (
                diff["mean"], diff["lo"], diff["hi"])
    return rows


def read_paired(row: Any, metric: str) -> tuple[float, float, float] | None:
    """(difference, lo, hi) from a table row's paired columns, or None where it has none."""
    try:
        values = tuple(float(row.get(f"paired_{metric}{end}")) for end in ("", "_lo", "_hi"))
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


def verdict(diff: tuple[float, float, float]) -> str:
    """higher / lower where the paired interval excludes 0, else level."""
    return "higher" if diff[1] > 0 else "lower" if diff[2] < 0 else "level"


def paired_text(diff: tuple[float, float, float]) -> str:
    return f"{diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]"
