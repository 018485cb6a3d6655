"""report.md of the scaling report: the fitted laws next to the paper's, and one table per study."""

from __future__ import annotations

import math
from pathlib import Path

from recbole_lsrm.scaling.analysis import RepetitionCurve, ShapeStudy, SizeFit, group_name
from recbole_lsrm.scaling.fit import PAPER_FIT, PowerLawFit
from recbole_lsrm.tables import format_table


def _table(header: list[str], rows: list[list[str]]) -> str:
    return format_table(header, rows, style="markdown")


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
    rows = [[f"paper: {PAPER_FIT['dataset']}", "98.3K-9.4M (4 sizes)", str(PAPER_FIT["E"]), f"{PAPER_FIT['N0']:.3g}",
             str(PAPER_FIT["alpha"]), "", "", "", ""]]
    for entry in fits:
        if not entry.ok:
            rows.append([entry.name, ", ".join(entry.fit_on), "refused"] + [""] * 6)
            continue
        fit = entry.fit
        fixed = " (fixed)" if "E" in fit.fixed else ""
        rows.append([entry.name, ", ".join(entry.fit_on), f"{number(fit.E)}{fixed}", _sci(fit.N0), number(fit.alpha),
                     _ci(fit, "E"), _ci(fit, "N0", sci=True), _ci(fit, "alpha"), number(fit.rmse)])
    lines += [_table(["data", "fitted on", "E", "N0", "alpha", "95% CI of E", "95% CI of N0", "95% CI of alpha", "RMSE"],
                     rows), ""]
    for entry in fits:
        lines += [f"### {entry.name}", ""]
        if not entry.ok:
            lines += [f"Fit refused: {entry.reason}", ""]
        else:
            lines += [f"Confidence intervals: {entry.fit.ci_method}.", ""]
            if entry.fit.at_bound:
                lines += [f"At a bound of the fit: {', '.join(entry.fit.at_bound)} (the data do not pin it down).", ""]
        rows = []
        for p in entry.points:
            ci = p.predicted_ci95
            rows.append([
                p.size, f"{p.N:,.0f}", p.role, str(p.n_seeds),
                number(p.loss) + (f" ± {number(p.loss_std)}" if p.loss_std is not None else ""), number(p.predicted),
                "-" if ci is None else f"[{number(ci[0])}, {number(ci[1])}]",
                "-" if p.error_pct is None else f"{p.error_pct:+.2f}%",
            ])
        lines += [_table(["size", "N", "role", "seeds", "actual loss", "predicted", "95% CI of the curve (covariance)",
                          "error"], rows), ""]
        if entry.name in plots:
            lines += [f"![model size: {entry.name}]({plots[entry.name]})", ""]

    lines += ["## Data size (Figure 2b)", ""]
    if len(fits) > 1 and "data_size" in plots:
        rows = [[entry.name] + ([number(entry.fit.E), _sci(entry.fit.N0), number(entry.fit.alpha)] if entry.fit
                                else ["refused", "", ""]) for entry in fits]
        lines += [_table(["data", "E", "N0", "alpha"], rows), "", f"![data size]({plots['data_size']})", ""]
    else:
        lines += ["One data fraction only: sweep --fractions=0.1,0.5,1.0 for one fit per fraction.", ""]

    lines += ["## Data repetition (Figure 3)", ""]
    if curves:
        rows = []
        for c in curves:
            values = c.valid_celoss_by_epoch
            best = c.best_epoch
            rows.append([group_name(c.model, c.dataset, c.fraction), c.size, str(c.n_seeds), str(len(values)),
                         number(values[0]), f"{number(values[best - 1]) if best else '-'} ({best or '-'})",
                         number(values[-1])])
        lines += [_table(["data", "size", "seeds", "epochs", "valid CE epoch 1", "best valid CE (epoch)", "last valid CE"],
                         rows), "", f"![data repetition]({plots['repetition']})", ""]
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
            ]
            rows = [[f"{s.size}{' (Table IV)' if s.reference else ''}", str(s.n_layers or "-"), str(s.d_model or "-"),
                     number(s.aspect_ratio, 1), f"{s.N:,.0f}", str(s.n_seeds), number(s.loss), f"{s.increase_pct:+.2f}%"]
                    for s in study.shapes]
            lines += [_table(["shape", "n_layers", "d_model", "aspect ratio", "N", "seeds", "loss", "increase"], rows), ""]
        lines += [f"![model shape]({plots['shapes']})", ""]
    else:
        lines += ["No shape study in the table: sweep --shapes=l8 for one.", ""]

    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
