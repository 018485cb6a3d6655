"""The cells of a study report's tables, read from one row of the study's results table.

A row holds each test figure as ``test_<name>`` (the test CE as ``test_ce_loss``) with its 95%
interval as ``test_<name>_lo`` / ``test_<name>_hi``; an empty cell (NaN once pandas reads the
table back) prints as ``-``.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from recbole_lsrm.tables import format_table

# Each test figure's name in the reports' tables (the table's column is test_<key>).
NAMES = {"celoss": "test CE", "hit@10": "HR@10", "ndcg@10": "NDCG@10", "hit@50": "HR@50", "ndcg@50": "NDCG@50",
         "auc": "AUC", "logloss": "LogLoss", "gauc": "GAUC", "heldout_auc": "held-out AUC"}
RANKING_FIGURES = ("auc", "logloss", "gauc", "heldout_auc")  # a ranker's figures, as its table shows them


def number(value: Any, digits: int = 4) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


def as_int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def count(value: Any, grouped: bool = False) -> str:
    """A whole number (``grouped``: with thousands separators, 21,535), or ``-``."""
    number_ = as_int(value)
    return "-" if number_ is None else f"{number_:,}" if grouped else str(number_)


def text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()


def minutes(seconds: Any) -> str:
    try:
        return f"{float(seconds) / 60:.1f}"
    except (TypeError, ValueError):
        return "-"


def value(row: Any, name: str) -> float:
    """The row's test figure ``name`` (``celoss`` for the test CE), NaN where it has none."""
    try:
        return float(row.get("test_ce_loss") if name == "celoss" else row.get(f"test_{name}"))
    except (TypeError, ValueError):
        return math.nan


def interval(row: Any, name: str) -> tuple[float, float] | None:
    try:
        lo, hi = float(row.get(f"test_{name}_lo")), float(row.get(f"test_{name}_hi"))
    except (TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def with_ci(row: Any, name: str, digits: int = 4) -> str:
    """``0.1234 [0.1200, 0.1270]``: the figure with its interval, or the figure alone."""
    ci = interval(row, name)
    return number(value(row, name), digits) + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def is_ranking(rows: pd.DataFrame) -> bool:
    """Whether the rows are rankers' (AUC and LogLoss) rather than retrievers' (CE, HR, NDCG)."""
    return "test_auc" in rows.columns and pd.to_numeric(rows["test_auc"], errors="coerce").notna().any()


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return format_table(header, rows, style="markdown").splitlines()
