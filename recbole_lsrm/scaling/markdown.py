"""report.md of the scaling report: the fitted laws next to the paper's, and one table per study."""

from __future__ import annotations

import math
from pathlib import Path

from recbole_lsrm.scaling.analysis import RepetitionCurve, ShapeStudy, SizeFit, group_name
from recbole_lsrm.scaling.fit import PAPER_FIT, PowerLawFit


def number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _sci(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _ci(fit: PowerLawFit, name: str, sci: bool = False) -> str:
    interval = fit.ci95.get(name)
    if not interval:
        return "-"
    fmt = _sci if sci else (lambda v: number(v, 4))
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]"


def markdown(
    source: Path, metric: str, predict: list[str], fits: list[SizeFit], curves: list[RepetitionCurve],
    studies: list[ShapeStudy], plots: dict[str, str], notes: list[str],
) -> str:
    """report.md: the fits next to the paper's, each size's prediction, repetition and shape tables."""
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
        if not entry.ok:
            lines.append(f"| {entry.name} | {', '.join(entry.fit_on)} | refused | | | | | | |")
            continue
        fit = entry.fit
        fixed = " (fixed)" if "E" in fit.fixed else ""
        lines.append(
            f"| {entry.name} | {', '.join(entry.fit_on)} | {number(fit.E)}{fixed} | {_sci(fit.N0)} | "
            f"{number(fit.alpha)} | {_ci(fit, 'E')} | {_ci(fit, 'N0', sci=True)} | {_ci(fit, 'alpha')} | "
            f"{number(fit.rmse)} |"
        )
    lines.append("")
    for entry in fits:
        lines += [f"### {entry.name}", ""]
        if not entry.ok:
            lines += [f"Fit refused: {entry.reason}", ""]
        else:
            lines += [f"Confidence intervals: {entry.fit.ci_method}.", ""]
            if entry.fit.at_bound:
                lines += [f"At a bound of the fit: {', '.join(entry.fit.at_bound)} (the data do not pin it down).", ""]
        lines += [
            "| size | N | role | seeds | actual loss | predicted | 95% CI of the curve (covariance) | error |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in entry.points:
            ci = p.predicted_ci95
            lines.append(
                f"| {p.size} | {p.N:,.0f} | {p.role} | {p.n_seeds} | {number(p.loss)}"
                + (f" ± {number(p.loss_std)}" if p.loss_std is not None else "")
                + f" | {number(p.predicted)} | {'-' if ci is None else f'[{number(ci[0])}, {number(ci[1])}]'} | "
                + ("-" if p.error_pct is None else f"{p.error_pct:+.2f}%")
                + " |"
            )
        lines.append("")
        if entry.name in plots:
            lines += [f"![model size: {entry.name}]({plots[entry.name]})", ""]

    lines += ["## Data size (Figure 2b)", ""]
    if len(fits) > 1 and "data_size" in plots:
        lines += [
            "| data | E | N0 | alpha |",
            "|---|---|---|---|",
        ]
        for entry in fits:
            fit = entry.fit
            lines.append(
                f"| {entry.name} | " + (
                    f"{number(fit.E)} | {_sci(fit.N0)} | {number(fit.alpha)} |" if fit else "refused | | |"
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
            values = c.valid_celoss_by_epoch
            best = c.best_epoch
            lines.append(
                f"| {group_name(c.model, c.dataset, c.fraction)} | {c.size} | {c.n_seeds} | {len(values)} | "
                f"{number(values[0])} | {number(values[best - 1]) if best else '-'} ({best or '-'}) | {number(values[-1])} |"
            )
        lines += ["", f"![data repetition]({plots['repetition']})", ""]
    else:
        lines += ["No per-epoch validation losses in the table.", ""]

    lines += ["## Model shape (Figure 4)", ""]
    if studies:
        for study in studies:
            lines += [
                f"### N = {study.group} ({group_name(study.model, study.dataset, study.fraction)})",
                "",
                f"Baseline: {study.baseline}, the {study.baseline_kind}.",
                "",
                "| shape | n_layers | d_model | aspect ratio | N | seeds | loss | increase |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for s in study.shapes:
                lines.append(
                    f"| {s.size}{' (Table IV)' if s.reference else ''} | {s.n_layers or '-'} | "
                    f"{s.d_model or '-'} | {number(s.aspect_ratio, 1)} | {s.N:,.0f} | {s.n_seeds} | "
                    f"{number(s.loss)} | {s.increase_pct:+.2f}% |"
                )
            lines.append("")
        lines += [f"![model shape]({plots['shapes']})", ""]
    else:
        lines += ["No shape study in the table: sweep --shapes=l8 for one.", ""]

    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
