"""Section IV of the paper from a results table: the typed results the report plots and writes.

- :func:`fit_sizes` (IV-A, IV-B): one :class:`SizeFit` of L(N) = E + (N0/N)^alpha per (model,
  data, fraction), fitted on the sizes not held out, with each size's prediction;
- :func:`repetition_curves` (IV-C): validation CE per epoch, one :class:`RepetitionCurve` per size;
- :func:`shape_study` (IV-D): each shape's loss increase against the Table IV shape, one
  :class:`ShapeStudy` per group of equal N.

Each result has ``to_dict()``, the plain numbers of fits.json.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.scaling.fit import FitError, PowerLawFit, fit_power_law


# --- reading the table ------------------------------------------------------------------
def load_results(path: Path, metric: str = "test_ce_loss") -> pd.DataFrame:
    """Read results.csv with clear errors, and fill the optional columns' defaults."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"results file not found: {path} (a sweep writes <out>/results.csv)")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not a readable CSV table: {err}") from None
    for column in ("N", metric):
        if column not in table.columns:
            raise ConfigError(f"{path} has no column '{column}' (columns: {', '.join(map(str, table.columns))})")
    for column in ("N", metric):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ConfigError(f"{path}, row {row + 2}: column '{column}' holds {table[column].iloc[row]!r}, not a number")
        table[column] = values
    not_positive = np.flatnonzero((table["N"] <= 0).to_numpy())
    if not_positive.size:
        row = int(not_positive[0])
        raise ConfigError(f"{path}, row {row + 2}: N = {table['N'].iloc[row]!r}; N is a positive number of "
                          "non-embedding parameters")
    defaults = {
        "size": None, "model": "", "base_dataset": table["dataset"] if "dataset" in table else "",
        "fraction": 1.0, "seed": 0, "shape_group": None, "reference_shape": False, "aspect_ratio": np.nan,
        "n_layers": np.nan, "d_model": np.nan, "ablation": None,
        "valid_celoss_by_epoch": None,
    }
    for column, default in defaults.items():
        if column not in table.columns:
            table[column] = default
    table["size"] = [
        str(s) if isinstance(s, str) and s else f"N={n:.4g}" for s, n in zip(table["size"], table["N"])
    ]
    table["model"] = table["model"].fillna("").astype(str)
    table["base_dataset"] = table["base_dataset"].fillna("").astype(str)
    table["fraction"] = pd.to_numeric(table["fraction"], errors="coerce").fillna(1.0)
    table["shape_group"] = [s if isinstance(s, str) and s else "" for s in table["shape_group"]]
    table["reference_shape"] = [str(v).lower() in ("true", "1") for v in table["reference_shape"]]
    table["ablation"] = [a if isinstance(a, str) and a else "" for a in table["ablation"]]
    return table


def size_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the size axis: not a non-reference shape, not an ablated recipe."""
    return table[((table["shape_group"] == "") | table["reference_shape"]) & table["ablation"].isin(["", "both"])]


def group_name(model: str, dataset: str, fraction: float) -> str:
    parts = [p for p in (model, dataset) if p]
    return " ".join(parts + [f"{fraction:.0%} of the data"])




# --- model size and data size (IV-A, IV-B) ------------------------------------------------
@dataclass(frozen=True)
class SizePoint:
    """One model size: its mean loss over seeds, and the fit's prediction where there is a fit."""

    size: str
    N: float
    loss: float
    loss_std: float | None
    n_seeds: int
    role: str  # "fit" or "held out"
    predicted: float | None
    predicted_ci95: list[float] | None
    error_pct: float | None


@dataclass
class SizeFit:
    """The law fitted to one (model, dataset, fraction), or the reason it was refused."""

    model: str
    dataset: str
    fraction: float
    name: str
    fit_on: list[str]
    held_out: list[str]
    fit: PowerLawFit | None  # None: refused
    reason: str | None = None
    points: list[SizePoint] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.fit is not None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "refused"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "dataset": self.dataset, "fraction": self.fraction, "name": self.name,
            "fit_on": self.fit_on, "held_out": self.held_out, "status": self.status, "reason": self.reason,
            "fit": self.fit.to_dict() if self.fit is not None else None,
            "points": [asdict(p) for p in self.points],
        }


def _points(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One line per size: N and the loss's mean, std and number of seeds."""
    grouped = rows.groupby("size", sort=False).agg(
        N=("N", "mean"), loss=(metric, "mean"), loss_std=(metric, "std"), n_seeds=(metric, "size")
    )
    return grouped.sort_values("N").reset_index()


def _size_point(point, fit: PowerLawFit | None, held_out: bool) -> SizePoint:
    predicted = float(fit.predict(point.N)[()]) if fit is not None else None
    interval = fit.predict_interval(point.N) if fit is not None else None
    return SizePoint(
        size=point.size,
        N=float(point.N),
        loss=float(point.loss),
        loss_std=None if pd.isna(point.loss_std) else float(point.loss_std),
        n_seeds=int(point.n_seeds),
        role="held out" if held_out else "fit",
        predicted=predicted,
        predicted_ci95=None if interval is None else [float(interval[0][0]), float(interval[1][0])],
        error_pct=None if predicted is None else 100.0 * (predicted - point.loss) / point.loss,
    )


def fit_sizes(
    table: pd.DataFrame, metric: str, predict: list[str], fix_E: float | None = None, bootstrap: int = 0
) -> list[SizeFit]:
    """One fit per (model, dataset, fraction) on the sizes not in ``predict``; predictions for those."""
    rows_of_sizes = size_rows(table)
    rows_of_sizes = rows_of_sizes[rows_of_sizes[metric].notna()]
    fits = []
    for (model, dataset, fraction), rows in rows_of_sizes.groupby(["model", "base_dataset", "fraction"], sort=True):
        points = _points(rows, metric)
        held_out = points["size"].isin(predict)
        fit_rows = rows[~rows["size"].isin(predict)]
        entry = SizeFit(
            model=model, dataset=dataset, fraction=float(fraction), name=group_name(model, dataset, fraction),
            fit_on=points.loc[~held_out, "size"].tolist(), held_out=points.loc[held_out, "size"].tolist(), fit=None,
        )
        try:
            entry.fit = fit_power_law(fit_rows["N"], fit_rows[metric], fix_E=fix_E, bootstrap=bootstrap)
        except FitError as err:
            entry.reason = str(err)
        entry.points = [_size_point(p, entry.fit, held) for p, held in zip(points.itertuples(), held_out)]
        fits.append(entry)
    return fits


# --- data repetition (IV-C) ------------------------------------------------------------------
@dataclass(frozen=True)
class RepetitionCurve:
    """Validation CE per epoch of one size (and fraction), averaged over seeds."""

    model: str
    dataset: str
    fraction: float
    size: str
    N: float
    n_seeds: int
    valid_celoss_by_epoch: list[float | None]
    best_epoch: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repetition_curves(table: pd.DataFrame) -> list[RepetitionCurve]:
    """Validation CE per epoch per size and fraction, averaged over seeds."""
    curves = []
    for (model, dataset, fraction, size), rows in size_rows(table).groupby(
        ["model", "base_dataset", "fraction", "size"], sort=True
    ):
        series = []
        for text in rows["valid_celoss_by_epoch"]:
            try:
                values = json.loads(text) if isinstance(text, str) else None
            except ValueError:
                values = None
            if values:
                series.append([np.nan if v is None else float(v) for v in values])
        if not series:
            continue
        length = max(len(s) for s in series)
        padded = np.full((len(series), length), np.nan)
        for i, s in enumerate(series):
            padded[i, : len(s)] = s
        with np.errstate(all="ignore"):
            mean = np.nanmean(padded, axis=0) if padded.size else padded
        finite = np.isfinite(mean)
        curves.append(RepetitionCurve(
            model=model, dataset=dataset, fraction=float(fraction), size=size,
            N=float(rows["N"].mean()), n_seeds=len(series),
            valid_celoss_by_epoch=[None if not math.isfinite(v) else float(v) for v in mean],
            best_epoch=int(np.nanargmin(mean)) + 1 if finite.any() else None,
        ))
    return sorted(curves, key=lambda c: (c.model, c.dataset, c.fraction, c.N))


# --- model shape (IV-D) -------------------------------------------------------------------
@dataclass(frozen=True)
class ShapePoint:
    size: str
    n_layers: int | None
    d_model: int | None
    aspect_ratio: float | None
    N: float
    loss: float
    n_seeds: int
    increase_pct: float  # loss increase against the study's baseline shape
    reference: bool  # the Table IV shape of this N


@dataclass(frozen=True)
class ShapeStudy:
    """The shapes of one N (a shape group), sorted by aspect ratio, against a baseline shape."""

    model: str
    dataset: str
    fraction: float
    group: str
    baseline: str
    baseline_kind: str
    shapes: list[ShapePoint]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shape_study(table: pd.DataFrame, metric: str) -> list[ShapeStudy]:
    """Per shape group: each shape's loss increase in % against the Table IV shape."""
    studies: list[ShapeStudy] = []
    rows = table[(table["shape_group"] != "") & table[metric].notna()]
    if rows.empty:
        return studies
    exploded = rows.assign(group=rows["shape_group"].str.split(",")).explode("group")
    for (model, dataset, fraction, group), members in exploded.groupby(
        ["model", "base_dataset", "fraction", "group"], sort=True
    ):
        shapes = members.groupby("size", sort=False).agg(
            N=("N", "mean"), loss=(metric, "mean"), n_seeds=(metric, "size"),
            aspect_ratio=("aspect_ratio", "mean"), reference=("reference_shape", "any"),
            n_layers=("n_layers", "first"), d_model=("d_model", "first"),
        ).reset_index()
        if shapes["reference"].any():
            baseline = shapes[shapes["reference"]].iloc[0]
            baseline_kind = "Table IV shape"
        else:
            baseline = shapes.loc[shapes["loss"].idxmin()]
            baseline_kind = "best shape (no Table IV shape of this size in the table)"
        shapes["increase_pct"] = 100.0 * (shapes["loss"] / baseline["loss"] - 1.0)
        shapes = shapes.sort_values("aspect_ratio")
        studies.append(ShapeStudy(
            model=model, dataset=dataset, fraction=float(fraction), group=group,
            baseline=baseline["size"], baseline_kind=baseline_kind,
            shapes=[
                ShapePoint(
                    size=s.size, n_layers=_int(s.n_layers), d_model=_int(s.d_model),
                    aspect_ratio=None if pd.isna(s.aspect_ratio) else float(s.aspect_ratio),
                    N=float(s.N), loss=float(s.loss), n_seeds=int(s.n_seeds),
                    increase_pct=float(s.increase_pct), reference=bool(s.reference),
                )
                for s in shapes.itertuples()
            ],
        ))
    return studies


def _int(value) -> int | None:
    try:
        return None if pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None
