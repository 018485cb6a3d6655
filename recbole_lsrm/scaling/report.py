"""From a results table to the paper's section IV: fits.json, report.md and PNG plots.

- Model size (IV-A, Figure 2a): L(N) = E + (N0/N)^alpha fitted on the sizes not held out,
  the fitted constants next to the paper's, and the held-out sizes predicted (error in %).
- Data size (IV-B, Figure 2b): the same fit once per data fraction.
- Data repetition (IV-C, Figure 3): validation CE per epoch.
- Model shape (IV-D, Figure 4): loss increase in % of each shape against the Table IV shape.

The table is results.csv as the sweep writes it; a hand-made CSV needs only the columns
``N`` and the loss (``test_ce_loss``); ``size``, ``model``, ``base_dataset``, ``fraction``,
``seed``, ``shape_group``, ``reference_shape``, ``ablation``, ``aspect_ratio`` and
``valid_celoss_by_epoch`` are used where present.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.io import atomic_write, make_dir, write_text
from recbole_lsrm.scaling.fit import PAPER_FIT, FitError, fit_power_law

FITS_FILE = "fits.json"
REPORT_FILE = "report.md"


@dataclass
class Report:
    """The files written and what could not be done (a refused fit, a missing reference)."""

    fits_json: Path
    markdown: Path
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    size_fits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def any_fit(self) -> bool:
        return any(f["status"] == "ok" for f in self.size_fits)


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


def _size_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the size axis: not a non-reference shape, not an ablated recipe."""
    return table[((table["shape_group"] == "") | table["reference_shape"]) & table["ablation"].isin(["", "both"])]


def _group_name(model: str, dataset: str, fraction: float) -> str:
    parts = [p for p in (model, dataset) if p]
    return " ".join(parts + [f"{fraction:.0%} of the data"])


def _points(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One line per size: N and the loss's mean, std and number of seeds."""
    grouped = rows.groupby("size", sort=False).agg(
        N=("N", "mean"), loss=(metric, "mean"), loss_std=(metric, "std"), n_seeds=(metric, "size")
    )
    return grouped.sort_values("N").reset_index()


# --- model size and data size (IV-A, IV-B) ------------------------------------------------
def fit_sizes(
    table: pd.DataFrame, metric: str, predict: list[str], fix_E: float | None = None, bootstrap: int = 0
) -> list[dict[str, Any]]:
    """One fit per (model, dataset, fraction) on the sizes not in ``predict``; predictions for those."""
    size_rows = _size_rows(table)
    size_rows = size_rows[size_rows[metric].notna()]
    fits = []
    for (model, dataset, fraction), rows in size_rows.groupby(["model", "base_dataset", "fraction"], sort=True):
        points = _points(rows, metric)
        held_out = points["size"].isin(predict)
        fit_rows = rows[~rows["size"].isin(predict)]
        entry: dict[str, Any] = {
            "model": model, "dataset": dataset, "fraction": float(fraction),
            "name": _group_name(model, dataset, fraction),
            "fit_on": points.loc[~held_out, "size"].tolist(), "held_out": points.loc[held_out, "size"].tolist(),
        }
        try:
            fit = fit_power_law(fit_rows["N"], fit_rows[metric], fix_E=fix_E, bootstrap=bootstrap)
        except FitError as err:
            entry.update(status="refused", reason=str(err), fit=None, _fit=None)
            entry["points"] = [_point_dict(p, None, held) for p, held in zip(points.itertuples(), held_out)]
            fits.append(entry)
            continue
        entry.update(status="ok", reason=None, fit=fit.to_dict(), _fit=fit)
        entry["points"] = [_point_dict(p, fit, held) for p, held in zip(points.itertuples(), held_out)]
        fits.append(entry)
    return fits


def _point_dict(point, fit, held_out: bool) -> dict[str, Any]:
    predicted = float(fit.predict(point.N)[()]) if fit is not None else None
    interval = fit.predict_interval(point.N) if fit is not None else None
    return {
        "size": point.size,
        "N": float(point.N),
        "loss": float(point.loss),
        "loss_std": None if pd.isna(point.loss_std) else float(point.loss_std),
        "n_seeds": int(point.n_seeds),
        "role": "held out" if held_out else "fit",
        "predicted": predicted,
        "predicted_ci95": None if interval is None else [float(interval[0][0]), float(interval[1][0])],
        "error_pct": None if predicted is None else 100.0 * (predicted - point.loss) / point.loss,
    }


# --- data repetition (IV-C) ------------------------------------------------------------------
def repetition_curves(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Validation CE per epoch per size and fraction, averaged over seeds."""
    curves = []
    size_rows = _size_rows(table)
    for (model, dataset, fraction, size), rows in size_rows.groupby(
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
        curves.append({
            "model": model, "dataset": dataset, "fraction": float(fraction), "size": size,
            "N": float(rows["N"].mean()), "n_seeds": len(series),
            "valid_celoss_by_epoch": [None if not math.isfinite(v) else float(v) for v in mean],
            "best_epoch": int(np.nanargmin(mean)) + 1 if finite.any() else None,
        })
    return sorted(curves, key=lambda c: (c["model"], c["dataset"], c["fraction"], c["N"]))


# --- model shape (IV-D) -------------------------------------------------------------------
def shape_study(table: pd.DataFrame, metric: str) -> list[dict[str, Any]]:
    """Per shape group: each shape's loss increase in % against the Table IV shape."""
    studies = []
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
        studies.append({
            "model": model, "dataset": dataset, "fraction": float(fraction), "group": group,
            "baseline": baseline["size"], "baseline_kind": baseline_kind,
            "shapes": [
                {
                    "size": s.size, "n_layers": _int(s.n_layers), "d_model": _int(s.d_model),
                    "aspect_ratio": None if pd.isna(s.aspect_ratio) else float(s.aspect_ratio),
                    "N": float(s.N), "loss": float(s.loss), "n_seeds": int(s.n_seeds),
                    "increase_pct": float(s.increase_pct), "reference": bool(s.reference),
                }
                for s in shapes.itertuples()
            ],
        })
    return studies


def _int(value) -> int | None:
    try:
        return None if pd.isna(value) else int(value)
    except (TypeError, ValueError):
        return None


# --- plots -----------------------------------------------------------------------------------
def save_figure(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    return path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and Ray nodes
    import matplotlib.pyplot as plt

    return plt


@contextmanager
def figure(path: Path, title: str, xlabel: str, ylabel: str, xlog: bool = False, size=(6, 4), legend: dict | None = None):
    """One figure: yields (pyplot, axes) to draw on, then labels it, adds the legend and saves it to ``path``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=size)
    try:
        yield plt, ax
        if xlog:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(**{"fontsize": 8, **(legend or {})})
        save_figure(fig, path)
    finally:
        plt.close(fig)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-").lower()


def _curve_range(points: list[dict[str, Any]]) -> np.ndarray:
    n = np.array([p["N"] for p in points])
    return np.logspace(math.log10(n.min() / 1.5), math.log10(n.max() * 1.5), 200)


def plot_size_fit(entry: dict[str, Any], metric: str, path: Path) -> Path:
    """Figure 2a: the points used for the fit, the held-out ones, and the fitted curve."""
    with figure(path, f"Model size: {entry['name']}", "non-embedding parameters N", metric, xlog=True) as (_, ax):
        _draw_size_fit(entry, ax)
    return path


def _draw_size_fit(entry: dict[str, Any], ax) -> None:
    fit = entry["_fit"]
    xs = _curve_range(entry["points"])
    if fit is not None:
        ax.plot(xs, fit.predict(xs), "--", color="tab:red",
                label=f"fit: E={fit.E:.3g}, N0={fit.N0:.3g}, alpha={fit.alpha:.3g}")
    paper = PAPER_FIT
    ax.plot(xs, paper["E"] + (paper["N0"] / xs) ** paper["alpha"], ":", color="grey",
            label=f"paper fit ({paper['dataset']})")
    for role, colour in (("fit", "tab:blue"), ("held out", "tab:red")):
        chosen = [p for p in entry["points"] if p["role"] == role]
        if chosen:
            ax.errorbar([p["N"] for p in chosen], [p["loss"] for p in chosen],
                        yerr=[p["loss_std"] or 0.0 for p in chosen], fmt="o", color=colour,
                        label="fitted sizes" if role == "fit" else "held out (predicted)")
    for p in entry["points"]:
        ax.annotate(p["size"], (p["N"], p["loss"]), textcoords="offset points", xytext=(4, 4), fontsize=8)


def plot_data_sizes(fits: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Figure 2b: one curve per data fraction."""
    with figure(path, "Data size: one fit per data fraction", "non-embedding parameters N", metric, xlog=True,
                legend={"title": "data"}) as (plt, ax):
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, entry in enumerate(fits):
            colour = colours[i % len(colours)]
            label = f"{entry['fraction']:.0%}" + (f" {entry['model']}" if entry["model"] else "")
            ax.plot([p["N"] for p in entry["points"]], [p["loss"] for p in entry["points"]], "o", color=colour, label=label)
            if entry["_fit"] is not None:
                xs = _curve_range(entry["points"])
                ax.plot(xs, entry["_fit"].predict(xs), "--", color=colour, alpha=0.8)
    return path


def plot_repetition(curves: list[dict[str, Any]], path: Path) -> Path:
    """Figure 3: validation CE per epoch, one line per size (and fraction)."""
    fractions = sorted({c["fraction"] for c in curves})
    with figure(path, "Data repetition: validation loss per epoch", "epoch", "validation CE loss") as (_, ax):
        for c in curves:
            ys = [np.nan if v is None else v for v in c["valid_celoss_by_epoch"]]
            label = c["size"] + (f" ({c['fraction']:.0%})" if len(fractions) > 1 else "")
            ax.plot(range(1, len(ys) + 1), ys, "o-", markersize=3, label=label)
    return path


def plot_shapes(studies: list[dict[str, Any]], path: Path) -> Path:
    """Figure 4: loss increase in % against the Table IV shape, by aspect ratio."""
    with figure(path, "Model shape", "aspect ratio d_model / n_layers", "loss increase (%)", xlog=True) as (_, ax):
        for study in studies:
            shapes = [s for s in study["shapes"] if s["aspect_ratio"] is not None]
            ax.plot([s["aspect_ratio"] for s in shapes], [s["increase_pct"] for s in shapes], "o-",
                    label=f"N = {study['group']}")
        ax.axhline(0.0, color="grey", linewidth=0.8)
    return path


# --- writing ----------------------------------------------------------------------------------
def _num(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _sci(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _ci(fit: dict[str, Any], name: str, sci: bool = False) -> str:
    interval = fit["ci95"].get(name)
    if not interval:
        return "-"
    fmt = _sci if sci else (lambda v: _num(v, 4))
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]"


def _markdown(
    source: Path, metric: str, predict: list[str], fits: list[dict[str, Any]], curves: list[dict[str, Any]],
    studies: list[dict[str, Any]], plots: dict[str, str], notes: list[str],
) -> str:
    lines = [
        "# Scaling report",
        "",
        f"Results: `{source}`, loss: `{metric}`. Law (paper IV-A, eq. 2): L(N) = E + (N0 / N)^alpha, "
        f"N = non-embedding parameters (the paper's 12 n_layers d_model^2 for LSRM, 5 n_layers d_model^2 for HSTU's blocks, counted otherwise; results.csv's N_source says which).",
        "",
        "## Model size (Figure 2a)",
        "",
    ]
    if predict:
        lines += [f"Held out of the fit and predicted: {', '.join(predict)}.", ""]
    lines += [
        "| data | fitted on | E | N0 | alpha | 95% CI of E | 95% CI of N0 | 95% CI of alpha | RMSE |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| paper: {PAPER_FIT['dataset']} | 98.3K-9.4M (4 sizes) | {PAPER_FIT['E']} | {PAPER_FIT['N0']:.3g} | "
        f"{PAPER_FIT['alpha']} | | | | |",
    ]
    for entry in fits:
        if entry["status"] != "ok":
            lines.append(f"| {entry['name']} | {', '.join(entry['fit_on'])} | refused | | | | | | |")
            continue
        fit = entry["fit"]
        fixed = " (fixed)" if "E" in fit["fixed"] else ""
        lines.append(
            f"| {entry['name']} | {', '.join(entry['fit_on'])} | {_num(fit['E'])}{fixed} | {_sci(fit['N0'])} | "
            f"{_num(fit['alpha'])} | {_ci(fit, 'E')} | {_ci(fit, 'N0', sci=True)} | {_ci(fit, 'alpha')} | "
            f"{_num(fit['rmse'])} |"
        )
    lines.append("")
    for entry in fits:
        lines += [f"### {entry['name']}", ""]
        if entry["status"] != "ok":
            lines += [f"Fit refused: {entry['reason']}", ""]
        else:
            lines += [f"Confidence intervals: {entry['fit']['ci_method']}.", ""]
            if entry["fit"]["at_bound"]:
                lines += [f"At a bound of the fit: {', '.join(entry['fit']['at_bound'])} (the data do not pin it down).", ""]
        lines += [
            "| size | N | role | seeds | actual loss | predicted | 95% CI of the curve (covariance) | error |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in entry["points"]:
            ci = p["predicted_ci95"]
            lines.append(
                f"| {p['size']} | {p['N']:,.0f} | {p['role']} | {p['n_seeds']} | {_num(p['loss'])}"
                + (f" ± {_num(p['loss_std'])}" if p["loss_std"] is not None else "")
                + f" | {_num(p['predicted'])} | {'-' if ci is None else f'[{_num(ci[0])}, {_num(ci[1])}]'} | "
                + ("-" if p["error_pct"] is None else f"{p['error_pct']:+.2f}%")
                + " |"
            )
        lines.append("")
        if entry["name"] in plots:
            lines += [f"![model size: {entry['name']}]({plots[entry['name']]})", ""]

    lines += ["## Data size (Figure 2b)", ""]
    if len(fits) > 1 and "data_size" in plots:
        lines += [
            "| data | E | N0 | alpha |",
            "|---|---|---|---|",
        ]
        for entry in fits:
            fit = entry["fit"]
            lines.append(
                f"| {entry['name']} | " + (
                    f"{_num(fit['E'])} | {_sci(fit['N0'])} | {_num(fit['alpha'])} |" if fit else "refused | | |"
                )
            )
        lines += ["", f"![data size]({plots['data_size']})", ""]
    else:
        lines += ["One data fraction only: sweep --fractions=0.1,0.5,1.0 for one fit per fraction.", ""]

    lines += ["## Data repetition (Figure 3)", ""]
    if curves:
        lines += [
            "| data | size | seeds | epochs | valid CE epoch 1 | best valid CE (epoch) | last valid CE |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in curves:
            values = [v for v in c["valid_celoss_by_epoch"]]
            best = c["best_epoch"]
            lines.append(
                f"| {_group_name(c['model'], c['dataset'], c['fraction'])} | {c['size']} | {c['n_seeds']} | {len(values)} | "
                f"{_num(values[0])} | {_num(values[best - 1]) if best else '-'} ({best or '-'}) | {_num(values[-1])} |"
            )
        lines += ["", f"![data repetition]({plots['repetition']})", ""]
    else:
        lines += ["No per-epoch validation losses in the table.", ""]

    lines += ["## Model shape (Figure 4)", ""]
    if studies:
        for study in studies:
            lines += [
                f"### N = {study['group']} ({_group_name(study['model'], study['dataset'], study['fraction'])})",
                "",
                f"Baseline: {study['baseline']}, the {study['baseline_kind']}.",
                "",
                "| shape | n_layers | d_model | aspect ratio | N | seeds | loss | increase |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for s in study["shapes"]:
                lines.append(
                    f"| {s['size']}{' (Table IV)' if s['reference'] else ''} | {s['n_layers'] or '-'} | "
                    f"{s['d_model'] or '-'} | {_num(s['aspect_ratio'], 1)} | {s['N']:,.0f} | {s['n_seeds']} | "
                    f"{_num(s['loss'])} | {s['increase_pct']:+.2f}% |"
                )
            lines.append("")
        lines += [f"![model shape]({plots['shapes']})", ""]
    else:
        lines += ["No shape study in the table: sweep --shapes=l8 for one.", ""]

    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def write_report(
    results: Path,
    out: Path | None = None,
    predict: list[str] | None = None,
    metric: str = "test_ce_loss",
    fix_E: float | None = None,
    bootstrap: int = 0,
) -> Report:
    """Fit, plot and write ``fits.json``, ``report.md`` and the PNGs into ``out`` (default: next to results)."""
    results = Path(results).resolve()
    table = load_results(results, metric)
    out = Path(out).resolve() if out is not None else results.parent
    make_dir(out)
    predict = list(predict or [])
    unknown = sorted(set(predict) - set(table["size"]))
    if unknown:
        raise ConfigError(
            f"--predict: no size {', '.join(unknown)} in {results} (sizes: {', '.join(sorted(set(table['size'])))})"
        )
    notes = []
    dropped = int(table[metric].isna().sum())
    if dropped:
        notes.append(f"{dropped} row(s) without a {metric} value are left out")

    fits = fit_sizes(table, metric, predict, fix_E, bootstrap)
    curves = repetition_curves(table)
    studies = shape_study(table, metric)
    for entry in fits:
        if entry["status"] != "ok":
            notes.append(f"{entry['name']}: fit refused: {entry['reason']}")

    plots: dict[str, str] = {}
    files: list[Path] = []
    for entry in fits:
        path = out / f"fit-{_slug('-'.join(p for p in (entry['model'], entry['dataset']) if p))}-f{round(100 * entry['fraction'])}.png"
        files.append(plot_size_fit(entry, metric, path))
        plots[entry["name"]] = path.name
    if len(fits) > 1:
        files.append(plot_data_sizes(fits, metric, out / "data_size.png"))
        plots["data_size"] = "data_size.png"
    if curves:
        files.append(plot_repetition(curves, out / "repetition.png"))
        plots["repetition"] = "repetition.png"
    if studies:
        files.append(plot_shapes(studies, out / "shapes.png"))
        plots["shapes"] = "shapes.png"

    document = {
        "law": "L(N) = E + (N0 / N)^alpha",
        "results": str(results),
        "metric": metric,
        "paper": PAPER_FIT,
        "predict": predict,
        "size_fits": [{k: v for k, v in entry.items() if not k.startswith("_")} for entry in fits],
        "repetition": curves,
        "shapes": studies,
        "plots": plots,
        "notes": notes,
    }
    fits_path = out / FITS_FILE
    write_text(json.dumps(document, indent=2, default=str) + "\n", fits_path)
    report_path = out / REPORT_FILE
    write_text(_markdown(results, metric, predict, fits, curves, studies, plots, notes), report_path)
    return Report(fits_path, report_path, files, notes, fits)
