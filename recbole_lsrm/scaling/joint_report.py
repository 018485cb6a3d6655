"""The joint law from a results table: its points, fit, held-out errors, figures and markdown.

``python -m recbole_lsrm.scaling fit-joint results.csv`` and the study report use it. A
trial's point is (N, U, epochs) -> test CE: U the unique training targets of one epoch
(``train_positions / epochs_run``), epochs those trained up to the tested (best) epoch
(``best_epoch + 1``). Trials of the size and converged sections with the model's own recipe
are used (not ablated variants, not the tasks' runs, which train on other data).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.io import make_dir, read_json, write_text
from recbole_lsrm.scaling.fit import FitError
from recbole_lsrm.scaling.markdown import number
from recbole_lsrm.scaling.plots import figure
from recbole_lsrm.scaling.joint import DEFAULT_SAMPLES, FLOPS_PER_PARAMETER_AND_TARGET, JointFit, fit_joint, holdout_errors
from recbole_lsrm.tables import format_table

METRIC = "test_ce_loss"


@dataclass
class JointResult:
    points: pd.DataFrame
    fit: JointFit | None
    reason: str | None = None
    holdout: list[dict[str, Any]] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)


def joint_points(table: pd.DataFrame) -> pd.DataFrame:
    """The table's trials as columns N, U, epochs, fraction, loss, size (rows that qualify)."""
    for column in ("train_positions", "epochs_run"):
        if column not in table.columns:
            raise ConfigError(f"the joint law needs the column '{column}' (results.csv of a sweep or study has it)")
    rows = table
    if "section" in rows.columns:
        rows = rows[rows["section"].isin(["size", "converged"])]
    if "ablation" in rows.columns:
        rows = rows[rows["ablation"].fillna("").isin(["", "both"])]
    epochs_run = pd.to_numeric(rows["epochs_run"], errors="coerce")
    best = pd.to_numeric(rows["best_epoch"], errors="coerce") if "best_epoch" in rows.columns else epochs_run - 1
    points = pd.DataFrame({
        "size": rows["size"].astype(str) if "size" in rows.columns else "",
        "N": pd.to_numeric(rows["N"], errors="coerce"),
        "U": pd.to_numeric(rows["train_positions"], errors="coerce") / epochs_run,
        "epochs": (best.fillna(epochs_run - 1) + 1).clip(lower=1),
        "fraction": pd.to_numeric(rows["fraction"], errors="coerce").fillna(1.0) if "fraction" in rows.columns else 1.0,
        "loss": pd.to_numeric(rows[METRIC], errors="coerce"),
    })
    return points.dropna().reset_index(drop=True)


def run_joint(table: pd.DataFrame, out: Path, samples: int = DEFAULT_SAMPLES, prefix: str = "",
              intervals: str = "bootstrap") -> JointResult:
    """Fit, evaluate held out, plot (``<prefix>joint.png``, ``<prefix>iso_compute.png``)."""
    points = joint_points(table)
    arrays = [points[c].to_numpy(float) for c in ("N", "U", "epochs", "loss")]
    try:
        fit = fit_joint(*arrays, samples=samples, intervals=intervals)
    except FitError as err:
        return JointResult(points, None, str(err))
    result = JointResult(points, fit, holdout=holdout_errors(*arrays, points["fraction"].to_numpy(float)))
    make_dir(out)
    result.plots = [plot_joint(fit, points, out / f"{prefix}joint.png"), plot_iso_compute(fit, points, out / f"{prefix}iso_compute.png")]
    return result


def save_joint(result: JointResult, fits_path: Path) -> None:
    """Put the fit and its held-out errors into ``fits.json`` under ``joint`` (other keys kept)."""
    document = read_json(fits_path, "a scaling report's fits") if fits_path.is_file() else {}
    if result.fit is None:
        document["joint"] = {"status": "refused", "reason": result.reason}
    else:
        document["joint"] = {"status": "ok", **result.fit.to_dict(), "holdout": result.holdout}
    write_text(json.dumps(document, indent=2, default=float) + "\n", fits_path)


def markdown(result: JointResult) -> list[str]:
    lines = ["## Joint law L(N, D') with data repetition", ""]
    if result.fit is None:
        return lines + [f"Not fitted: {result.reason}", ""]
    fit = result.fit
    ci = fit.ci95
    lines += [
        "L(N, D') = E + A / N^alpha + B / D'^beta, with D' = U + U R* (1 - exp(-(epochs - 1) / R*)) the effective "
        "data of U unique training targets seen `epochs` times (Muennighoff et al. 2023); fitted on "
        f"{fit.n_points} trials (N {fit.ranges['N'][0]:,.0f} ... {fit.ranges['N'][1]:,.0f}, U "
        f"{fit.ranges['U'][0]:,.0f} ... {fit.ranges['U'][1]:,.0f}, epochs {fit.ranges['epochs'][0]:g} ... "
        f"{fit.ranges['epochs'][1]:g}); rmse {fit.rmse:.4f}. Intervals: {fit.ci_method or 'none'}.", "",
    ]
    rows = [[name, f"{getattr(fit, name):.4g}", f"[{ci[name][0]:.4g}, {ci[name][1]:.4g}]" if ci.get(name) else "-",
             "no" if name in fit.undetermined else "yes"] for name in ("E", "A", "alpha", "B", "beta", "R_star")]
    lines += format_table(["constant", "value", "95% interval", "determined by the trials"], rows,
                          style="markdown").splitlines()
    lines += [""] + [f"- {n}" for n in fit.notes] + ([""] if fit.notes else [])
    lines += ["Held out (refit without them, then predicted): mean |error| of the test CE in %.", ""]
    rows = []
    for e in result.holdout:
        what = f"N = {e['value']:,.0f}" if e["left_out"] == "size" else f"fraction {e['value']:.0%}"
        joint = number(e["joint_error_pct"], 2) if e["joint_error_pct"] is not None else f"refused ({e.get('joint_refused', '')})"
        per = number(e["per_fraction_error_pct"], 2) if e["per_fraction_error_pct"] is not None else (
            "cannot (no data of that fraction)" if e["left_out"] == "fraction" else "cannot (< 3 other sizes)")
        rows.append([what, str(e["trials"]), joint, per])
    lines += format_table(["left out", "trials", "joint law", "per-fraction L(N)"], rows, style="markdown").splitlines()
    lines.append("")
    for path in result.plots:
        lines += [f"![{path.stem}]({path.name})", ""]
    return lines


def plot_joint(fit: JointFit, points: pd.DataFrame, path: Path) -> Path:
    """Loss against N per data fraction: the trials and the law at each fraction's U and epochs."""
    title = "Joint law: trials (points) and L(N, D') at their data and epochs (lines)"
    with figure(path, title, "non-embedding parameters N", "test CE", xlog=True, size=(6.5, 4.2),
                legend={"fontsize": 7}) as (plt, ax):
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        xs = np.logspace(math.log10(points["N"].min() / 1.5), math.log10(points["N"].max() * 1.5), 100)
        groups = points.groupby(["fraction", points["epochs"].round()], sort=True)
        for i, ((fraction, epochs), group) in enumerate(groups):
            colour = colours[i % len(colours)]
            ax.plot(group["N"], group["loss"], "o", color=colour, label=f"{fraction:.0%} data, {epochs:g} epochs")
            ax.plot(xs, fit.predict(xs, float(group["U"].median()), float(epochs)), "--", color=colour, alpha=0.7)
    return path


def plot_iso_compute(fit: JointFit, points: pd.DataFrame, path: Path) -> Path:
    """Predicted loss against N at fixed budgets on the full data: epochs = C / (6 N U)."""
    U = float(points["U"].max())
    spent = FLOPS_PER_PARAMETER_AND_TARGET * points["N"] * points["U"] * points["epochs"]
    budgets = np.logspace(math.log10(spent.min()), math.log10(spent.max()), 4)
    xs = np.logspace(math.log10(points["N"].min() / 3), math.log10(points["N"].max() * 3), 200)
    title = f"Iso-compute: U = {U:,.0f} targets, epochs = C / (6 N U); * = optimum"
    with figure(path, title, "non-embedding parameters N", "predicted test CE", xlog=True, size=(6.5, 4.2),
                legend={"fontsize": 7}) as (_, ax):
        for budget in budgets:
            losses = fit.predict(xs, U, budget / (FLOPS_PER_PARAMETER_AND_TARGET * xs * U))
            best = int(np.argmin(losses))
            line, = ax.plot(xs, losses, label=f"C = {budget:.2g} FLOPs")
            ax.plot(xs[best], losses[best], "*", color=line.get_color(), markersize=10)
    return path
