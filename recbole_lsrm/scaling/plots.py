"""The report's figures (paper Figures 2a, 2b, 3 and 4), each written atomically as a PNG."""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from recbole_lsrm.io import atomic_write
from recbole_lsrm.scaling.analysis import RepetitionCurve, ShapeStudy, SizeFit, SizePoint
from recbole_lsrm.scaling.fit import PAPER_FIT


def save_figure(fig, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    return path


def pyplot():
    """matplotlib's pyplot for files only, imported on first use: it adds a second to the start
    of every command that never draws."""
    import matplotlib  # imported on use (start-up time)

    matplotlib.use("Agg")  # files only: no display on servers and Ray nodes
    import matplotlib.pyplot as plt  # imported on use (start-up time)

    return plt


def _minor_label(x: float, _position=None) -> str:
    """A minor tick's label on a log axis: only 2 and 5 times a power of ten (every one of
    them overlaps its neighbours when the axis spans less than a decade)."""
    if x <= 0:
        return ""
    exponent = math.floor(math.log10(x) + 1e-9)
    mantissa = round(x / 10**exponent)
    return f"${mantissa}\\times10^{{{exponent}}}$" if mantissa in (2, 5) else ""


def set_log_x(ax) -> None:
    """A log x axis whose minor tick labels cannot overlap."""
    from matplotlib import ticker  # imported on use (start-up time)

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(ticker.FuncFormatter(_minor_label))


@contextmanager
def figure(path: Path, title: str, xlabel: str, ylabel: str, xlog: bool = False, size=(6, 4), legend: dict | None = None):
    """One figure: yields (pyplot, axes) to draw on, then labels it, adds the legend and saves it to ``path``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=size)
    try:
        yield plt, ax
        if xlog:
            set_log_x(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(**{"fontsize": 8, **(legend or {})})
        save_figure(fig, path)
    finally:
        plt.close(fig)


def _curve_range(points: list[SizePoint]) -> np.ndarray:
    n = np.array([p.N for p in points])
    return np.logspace(math.log10(n.min() / 1.5), math.log10(n.max() * 1.5), 200)


def plot_size_fit(entry: SizeFit, metric: str, path: Path) -> Path:
    """Figure 2a: the points used for the fit, the held-out ones, the fitted curve and the paper's."""
    with figure(path, f"Model size: {entry.name}", "non-embedding parameters N", metric, xlog=True) as (_, ax):
        xs = _curve_range(entry.points)
        fit = entry.fit
        if fit is not None:
            ax.plot(xs, fit.predict(xs), "--", color="tab:red",
                    label=f"fit: E={fit.E:.3g}, N0={fit.N0:.3g}, alpha={fit.alpha:.3g}")
        paper = PAPER_FIT
        ax.plot(xs, paper["E"] + (paper["N0"] / xs) ** paper["alpha"], ":", color="grey",
                label=f"paper fit ({paper['dataset']})")
        for role, colour in (("fit", "tab:blue"), ("held out", "tab:red")):
            chosen = [p for p in entry.points if p.role == role]
            if chosen:
                ax.errorbar([p.N for p in chosen], [p.loss for p in chosen],
                            yerr=[p.loss_std or 0.0 for p in chosen], fmt="o", color=colour,
                            label="fitted sizes" if role == "fit" else "held out (predicted)")
        for p in entry.points:
            ax.annotate(p.size, (p.N, p.loss), textcoords="offset points", xytext=(4, 4), fontsize=8)
    return path


def plot_data_sizes(fits: list[SizeFit], metric: str, path: Path) -> Path:
    """Figure 2b: one curve per data fraction."""
    with figure(path, "Data size: one fit per data fraction", "non-embedding parameters N", metric, xlog=True,
                legend={"title": "data"}) as (plt, ax):
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, entry in enumerate(fits):
            colour = colours[i % len(colours)]
            label = f"{entry.fraction:.0%}" + (f" {entry.model}" if entry.model else "")
            ax.plot([p.N for p in entry.points], [p.loss for p in entry.points], "o", color=colour, label=label)
            if entry.fit is not None:
                xs = _curve_range(entry.points)
                ax.plot(xs, entry.fit.predict(xs), "--", color=colour, alpha=0.8)
    return path


def plot_repetition(curves: list[RepetitionCurve], path: Path) -> Path:
    """Figure 3: validation CE per epoch, one line per size (and fraction)."""
    fractions = sorted({c.fraction for c in curves})
    with figure(path, "Data repetition: validation loss per epoch", "epoch", "validation CE loss") as (_, ax):
        for c in curves:
            ys = [np.nan if v is None else v for v in c.valid_celoss_by_epoch]
            label = c.size + (f" ({c.fraction:.0%})" if len(fractions) > 1 else "")
            ax.plot(range(1, len(ys) + 1), ys, "o-", markersize=3, label=label)
    return path


def plot_shapes(studies: list[ShapeStudy], path: Path) -> Path:
    """Figure 4: loss increase in % against the Table IV shape, by aspect ratio."""
    with figure(path, "Model shape", "aspect ratio d_model / n_layers", "loss increase (%)", xlog=True) as (_, ax):
        for study in studies:
            shapes = [s for s in study.shapes if s.aspect_ratio is not None]
            ax.plot([s.aspect_ratio for s in shapes], [s.increase_pct for s in shapes], "o-", label=f"N = {study.group}")
        ax.axhline(0.0, color="grey", linewidth=0.8)
    return path
