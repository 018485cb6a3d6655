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

Three parts: :mod:`~recbole_lsrm.scaling.analysis` (the typed results),
:mod:`~recbole_lsrm.scaling.plots` (the figures) and :mod:`~recbole_lsrm.scaling.markdown`
(report.md); this module runs them and writes the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.io import make_dir, write_text
from recbole_lsrm.scaling.analysis import SizeFit, fit_sizes, load_results, repetition_curves, shape_study
from recbole_lsrm.scaling.fit import PAPER_FIT
from recbole_lsrm.scaling.markdown import markdown
from recbole_lsrm.scaling.plots import plot_data_sizes, plot_repetition, plot_shapes, plot_size_fit

FITS_FILE = "fits.json"
REPORT_FILE = "report.md"


@dataclass
class Report:
    """The files written and what could not be done (a refused fit, a missing reference)."""

    fits_json: Path
    markdown: Path
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    size_fits: list[SizeFit] = field(default_factory=list)

    @property
    def any_fit(self) -> bool:
        return any(f.ok for f in self.size_fits)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-").lower()


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
        if not entry.ok:
            notes.append(f"{entry.name}: fit refused: {entry.reason}")

    plots: dict[str, str] = {}
    files: list[Path] = []
    for entry in fits:
        path = out / f"fit-{_slug('-'.join(p for p in (entry.model, entry.dataset) if p))}-f{round(100 * entry.fraction)}.png"
        files.append(plot_size_fit(entry, metric, path))
        plots[entry.name] = path.name
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
        "size_fits": [entry.to_dict() for entry in fits],
        "repetition": [c.to_dict() for c in curves],
        "shapes": [s.to_dict() for s in studies],
        "plots": plots,
        "notes": notes,
    }
    fits_path = out / FITS_FILE
    write_text(json.dumps(document, indent=2, default=str) + "\n", fits_path)
    report_path = out / REPORT_FILE
    write_text(markdown(results, metric, predict, fits, curves, studies, plots, notes), report_path)
    return Report(fits_path, report_path, files, notes, fits)
