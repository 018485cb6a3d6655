"""A study's report from its results table alone: ``report.md``, ``fits.json`` and PNGs.

``python -m recbole_lsrm.scaling study results/ml-1m/results.csv`` rewrites it; the study
runner calls the same function. Each section reads the rows of its ``section``:

- size: L(N) = E + (N0/N)^alpha fitted on the sizes not ``held_out``; the held-out sizes
  predicted, with the error in % and the fit's 95% interval (paper IV-A).
- converged: test CE, HR@10 and NDCG@10 per size and data fraction, one fit per fraction
  (paper IV-B, Figure 2b) and the validation curves (IV-C); where a larger model is not
  better beyond the intervals, the report says so.
- ablation: Table III, test CE of each variant; "both" is the converged section's trial of
  the same size.
- tasks: the challenge tasks' key figures per size.
- depth and variants: backbones scaled by depth, and HSTU's parts one at a time (the HSTU
  scaling study's first two parts, :mod:`recbole_lsrm.study.backbones`).
- compare: settings side by side (side information, behaviours, domains, rankers), every test figure
  (:mod:`recbole_lsrm.study.compare`).
- the joint law L(N, D') over the size and converged trials (:mod:`recbole_lsrm.scaling.joint`),
  with its held-out errors next to the per-fraction fits', where the table allows a fit.

Every test figure carries its 95% bootstrap interval over test users (columns ``*_lo`` and
``*_hi``). A difference is called supported when the two intervals do not overlap, which is
conservative: a paired test on the same users (``recbole_lsrm.evaluation.intervals``) can
support smaller differences.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.evaluation.candidates import RESAMPLES as RANKING_RESAMPLES
from recbole_lsrm.evaluation.intervals import N_RESAMPLES
from recbole_lsrm.io import make_dir, write_text
from recbole_lsrm.scaling.joint_report import markdown as joint_markdown, run_joint, save_joint
from recbole_lsrm.scaling.analysis import SizeFit, fit_sizes, load_results, repetition_curves
from recbole_lsrm.scaling.plots import plot_data_sizes, plot_repetition, plot_size_fit
from recbole_lsrm.study.backbones import depth_section, variants_section
from recbole_lsrm.study.cells import as_int, count, interval, is_ranking, markdown_table, minutes, number, with_ci
from recbole_lsrm.study.compare import compare_section
from recbole_lsrm.sweep.plan import ABLATIONS

METRIC = "test_ce_loss"
VARIANTS = ABLATIONS  # Table III, in the order the sweep names them


@dataclass
class StudyReport:
    markdown: Path
    fits_json: Path
    plots: list[Path] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


def compare_sizes(rows: pd.DataFrame, name: str = "celoss") -> list[str]:
    """Sentences on consecutive sizes: is the larger one better, and do the intervals say so?"""
    smaller_is_better = name == "celoss"
    out = []
    ordered = rows.sort_values("N")
    for (_, a), (_, b) in zip(ordered.iloc[:-1].iterrows(), ordered.iloc[1:].iterrows()):
        va = float(a[METRIC] if name == "celoss" else a[f"test_{name}"])
        vb = float(b[METRIC] if name == "celoss" else b[f"test_{name}"])
        better = vb < va if smaller_is_better else vb > va
        ia, ib = interval(a, name), interval(b, name)
        separated = ia is not None and ib is not None and (ib[1] < ia[0] or ib[0] > ia[1])
        verdict = ("better, beyond the intervals" if better and separated
                   else "worse, beyond the intervals" if separated
                   else "better, within the intervals (not supported)" if better
                   else "not better (within the intervals)")
        out.append(f"{b['size']} vs {a['size']}: {name} {number(vb)} vs {number(va)}: {verdict}")
    return out


# --- sections ------------------------------------------------------------------------------
def _size_section(name: str, rows: pd.DataFrame, out: Path, plots: list[Path], fits: dict) -> list[str]:
    held = sorted(set(rows.loc[rows["held_out"], "size"]))
    lines = [f"## L(N): sweep `{name}`", ""]
    epochs = sorted({int(e) for e in rows["epochs"].dropna()})
    lines += [f"{len(rows)} sizes, {', '.join(map(str, epochs))} epoch(s) each; the law is fitted on all but "
              f"{', '.join(held) or 'none'} and predicts those.", ""]
    entries = fit_sizes(rows, METRIC, held)
    lines += markdown_table(
        ["size", "N", "test CE [95%]", "NDCG@10 [95%]", "HR@10 [95%]", "train min", "role", "predicted CE [95%]", "error"],
        [[r["size"], f"{int(r['N']):,}", with_ci(r, "celoss"), with_ci(r, "ndcg@10"), with_ci(r, "hit@10"),
          minutes(r.get("train_time_s")), "held out" if r["held_out"] else "fit", *_predicted(entries, r["size"])]
         for _, r in rows.sort_values("N").iterrows()],
    )
    lines.append("")
    for entry in entries:
        fits[f"{name}: {entry.name}"] = entry.to_dict()
        if entry.ok:
            fit = entry.fit
            ci = fit.ci95
            lines.append(
                f"Fit ({entry.name}): E = {number(fit.E)}, N0 = {fit.N0:.4g}, alpha = {number(fit.alpha)}"
                + (f" (alpha 95% [{number(ci['alpha'][0])}, {number(ci['alpha'][1])}])" if ci.get("alpha") else "")
                + "."
            )
        else:
            lines.append(f"Fit ({entry.name}) refused: {entry.reason}")
        path = out / f"{name}-fit.png"
        plots.append(plot_size_fit(entry, METRIC, path))
        lines += ["", f"![L(N) {name}]({path.name})", ""]
    lines += ["Consecutive sizes (test CE):", ""] + [f"- {s}" for s in compare_sizes(rows)] + [""]
    return lines


def _predicted(entries: list[SizeFit], size: str) -> list[str]:
    for entry in entries:
        for p in entry.points:
            if p.size == size and p.predicted is not None:
                ci = p.predicted_ci95
                return [number(p.predicted) + (f" [{number(ci[0])}, {number(ci[1])}]" if ci else ""), f"{p.error_pct:+.2f}%"]
    return ["-", "-"]


def _converged_section(name: str, rows: pd.DataFrame, out: Path, plots: list[Path], fits: dict) -> list[str]:
    lines = [f"## Trained to convergence: sweep `{name}`", ""]
    lines += ["Each size trained with the model's recipe (AdamW with the learning rate's cosine decay over the "
              "`epochs` cap, a switch to SGD where Adam's validation CE stopped improving, layer-wise dropout) until "
              "the validation CE stopped improving or the cap ended it; test figures are those of the best "
              "validation epoch.", ""]
    for fraction, group in rows.groupby("fraction", sort=True):
        lines += [f"### {float(fraction):.0%} of the users", ""]
        lines += markdown_table(
            ["size", "N", "epochs run (best, switch)", "test CE [95%]", "HR@10 [95%]", "NDCG@10 [95%]", "train min"],
            [[r["size"], f"{int(r['N']):,}",
              f"{count(r.get('epochs_run'))} ({count(r.get('best_epoch'))}, {count(r.get('switch_epoch'))})",
              with_ci(r, "celoss"), with_ci(r, "hit@10"), with_ci(r, "ndcg@10"), minutes(r.get("train_time_s"))]
             for _, r in group.sort_values("N").iterrows()],
        )
        capped = [r["size"] for _, r in group.iterrows() if as_int(r.get("epochs_run")) == as_int(r.get("epochs"))]
        if capped:
            lines += ["", f"Stopped by the epoch cap, not by the validation CE: {', '.join(capped)}."]
        lines += ["", "Consecutive sizes:", ""]
        lines += [f"- {s}" for s in compare_sizes(group)] + [f"- {s}" for s in compare_sizes(group, "ndcg@10")]
        lines.append("")
    entries = fit_sizes(rows, METRIC, [])
    for entry in entries:
        fits[f"{name}: {entry.name}"] = entry.to_dict()
        status = (f"E = {number(entry.fit.E)}, N0 = {entry.fit.N0:.4g}, alpha = {number(entry.fit.alpha)}"
                  if entry.ok else f"refused: {entry.reason}")
        lines.append(f"- fit, {entry.name}: {status}")
    lines.append("")
    if len(entries) > 1:
        path = out / f"{name}-data-size.png"
        plots.append(plot_data_sizes(entries, METRIC, path))
        lines += [f"![data size]({path.name})", ""]
    curves = repetition_curves(rows)
    if curves:
        path = out / f"{name}-validation.png"
        plots.append(plot_repetition(curves, path))
        lines += [f"![validation CE per epoch]({path.name})", ""]
    return lines


def _switched(row: pd.Series) -> bool:
    return as_int(row.get("switch_epoch")) is not None


def _ablation_section(name: str, rows: pd.DataFrame, baseline: pd.DataFrame) -> list[str]:
    lines = [f"## Ablation (Table III): sweep `{name}`", ""]
    lines += ["no-lad: one dropout rate, the mean of `layer_dropout`, in every layer; no-so: no switch to SGD "
              "(optimizer_switch False). A variant missing from the sweep is taken from the converged section's "
              "trial of that size: \"both\" if its Adam phase switched to SGD, \"no-so\" if it never did. "
              "(SGD from epoch K) marks the trials that switched.", ""]
    header = ["size", "N"] + [f"{v} CE [95%]" for v in VARIANTS] + [f"{v} - both" for v in VARIANTS[1:]]
    table = []
    for size, group in rows.groupby("size", sort=False):
        cells: dict[str, pd.Series] = {str(r["ablation"]): r for _, r in group.iterrows()}
        base = baseline[(baseline["size"] == size) & (baseline["fraction"] == 1.0)]
        if len(base):
            variant = "both" if _switched(base.iloc[0]) else "no-so"
            cells.setdefault(variant, base.iloc[0])
        both = cells.get("both")

        def cell(v: str) -> str:
            if v not in cells:
                return "-"
            r = cells[v]
            return with_ci(r, "celoss") + (f" (SGD from {as_int(r.get('switch_epoch'))})" if _switched(r) else "")

        row = [size, f"{int(group['N'].iloc[0]):,}"] + [cell(v) for v in VARIANTS]
        for v in VARIANTS[1:]:
            row.append(f"{float(cells[v][METRIC]) - float(both[METRIC]):+.4f}" if v in cells and both is not None else "-")
        table.append((group["N"].iloc[0], row))
        for v in ("both", "no-lad"):
            if v in cells and not _switched(cells[v]):
                lines.append(f"- {size} {v}: its Adam phase never switched to SGD, so it shows no switching optimizer.")
    lines += [""] if lines[-1] != "" else []
    lines += markdown_table(header, [r for _, r in sorted(table, key=lambda t: t[0])])
    return lines + ["", "Paper (ML-20M, l2 / l24): both 5.6249 / 4.7182, w/o LAD 5.6127 / 4.7296, "
                        "w/o SO 5.6281 / 4.7230, neither 5.6013 / 4.7504.", ""]


def natural_key(text: str) -> list:
    """Numbers in a name compared as numbers: nl2 before nl16, k=5 before k=10."""
    return [float(part) if part[:1].isdigit() else part for part in re.split(r"(\d+(?:\.\d+)?)", text)]


def _tasks_section(name: str, rows: pd.DataFrame, out: Path) -> list[str]:
    lines = [f"## Challenge tasks: sweep `{name}`", ""]
    columns = sorted((c for c in rows.columns if c.startswith("task_") and not c.endswith(("_lo", "_hi"))),
                     key=natural_key)  # k=5 before k=10, TR@2 before TR@10
    if not columns:
        return lines + ["No task figures in the table.", ""]
    ordered = rows.sort_values("N")
    lines += ["Each model trained with the tasks' data settings (cold-start users held out of training, the "
              "last items of each user held out for the trajectory task).", ""]
    header = ["figure"] + [f"{r['size']} [95%]" for _, r in ordered.iterrows()]
    if len(ordered) > 1:
        header.append(f"{ordered.iloc[-1]['size']} / {ordered.iloc[0]['size']}")
    table = []
    for column in columns:
        cells = []
        for _, r in ordered.iterrows():
            lo, hi = r.get(column + "_lo"), r.get(column + "_hi")
            ci = f" [{number(lo)}, {number(hi)}]" if number(lo) != "-" and number(hi) != "-" else ""
            cells.append(number(r.get(column)) + ci)
        if len(ordered) > 1:
            first, last = float(ordered.iloc[0][column] or "nan"), float(ordered.iloc[-1][column] or "nan")
            cells.append(number(last / first, 3) if first else "-")
        table.append([column[len("task_"):], *cells])
    lines += markdown_table(header, table)
    lines.append("")
    if (out / f"{name}-compare" / "compare.png").is_file():
        lines += [f"![tasks]({name}-compare/compare.png)", ""]
    return lines


def _done(table: pd.DataFrame) -> pd.Series:
    """The finished trials: a test CE (retrieval) or a test AUC (ranking)."""
    done = pd.to_numeric(table[METRIC], errors="coerce").notna()
    if "test_auc" in table.columns:
        done |= pd.to_numeric(table["test_auc"], errors="coerce").notna()
    return done


def _resamples(table: pd.DataFrame) -> str:
    """A ranker's figures are recomputed on each resample of the users, a retriever's averaged."""
    return f"{RANKING_RESAMPLES:,}" if is_ranking(table) else f"{N_RESAMPLES:,}"


def _protocol(table: pd.DataFrame) -> str:
    if is_ranking(table):
        return ("leave-one-out by time (each user's last interaction is the test, the one before it validation), "
                "the held-out interaction with its real label plus sampled negatives the user never had (at the "
                "trial's eval_neg_ratio, its neg_ratio unless set, drawn with the run's seed); AUC and LogLoss over "
                "all scored pairs, GAUC over users with both labels, held-out AUC over the held-out interactions "
                "alone (liked against not liked, no sampled negative).")
    return (f"leave-one-out by time ({_held_out(table)}), full ranking over all items; CE is the held-out "
            "item's cross-entropy over all items.")


def _held_out(table: pd.DataFrame) -> str:
    """What the protocol holds out: each user's last items, or their last items of the target behaviour."""
    targets = sorted({str(v).strip() for v in table.get("target_behavior", pd.Series(dtype=object)).dropna()} - {""})
    if targets:
        return (f"each user's last two {' / '.join(targets)} interactions by time are validation and test; "
                "everything before them, of any behaviour, is their history")
    return "the last item of each user is the test item, the one before it validation"


# --- the report ------------------------------------------------------------------------------
def write_study_report(results: Path, out: Path | None = None, title: str | None = None) -> StudyReport:
    results = Path(results).resolve()
    table = load_results(results, METRIC)
    for column in ("sweep", "section"):
        if column not in table.columns:
            raise ConfigError(f"{results} is not a study's table: it has no column '{column}' "
                              f"(for a sweep's results.csv use: python -m recbole_lsrm.scaling fit)")
    table["held_out"] = [str(v).lower() in ("true", "1") for v in table.get("held_out", False)]
    out = Path(out).resolve() if out is not None else results.parent
    make_dir(out)
    plots: list[Path] = []
    fits: dict[str, Any] = {}
    devices = sorted({str(d) for d in table.get("device", pd.Series(dtype=str)).dropna()})
    lines = [f"# Study: {title or results.parent.name}", ""]
    lines += [
        f"Made from `{results.name}` ({len(table)} trials) by `python -m recbole_lsrm.scaling study {results.name}`.",
        f"Data: {', '.join(sorted(set(table['base_dataset'])))}; device(s): {', '.join(devices) or 'not recorded'}; "
        f"{minutes(pd.to_numeric(table.get('train_time_s'), errors='coerce').sum())} min of training in all.",
        f"Protocol: {_protocol(table)} "
        f"Intervals are 95% bootstrap intervals over test users ({_resamples(table)} resamples); one training seed per trial, "
        "so seed-to-seed variation is not in them.",
        "",
    ]
    converged = table[table["section"] == "converged"]
    done = _done(table)
    finished = table[done]
    done_sections: set[str] = set()
    for sweep, rows in table.groupby("sweep", sort=False):
        section = rows["section"].iloc[0]
        rows = rows[done[rows.index]]
        if rows.empty:
            continue
        if section in ("depth", "variants", "compare"):  # every sweep of the section in one table
            if section not in done_sections:
                depth_rows = finished[finished["section"] == "depth"]
                compare_rows = finished[finished["section"] == "compare"]
                if section == "depth":  # trials without a depth axis (DIN) drawn beside the depths
                    no_depth = pd.to_numeric(compare_rows.get("n_layers"), errors="coerce").isna()
                    lines += depth_section(depth_rows, out, plots, references=compare_rows[no_depth])
                elif section == "variants":
                    lines += variants_section(finished[finished["section"] == "variants"], depth_rows)
                else:
                    lines += compare_section(compare_rows, finished, out, plots)
                done_sections.add(section)
            continue
        if section == "size":
            lines += _size_section(sweep, rows, out, plots, fits)
        elif section == "converged":
            lines += _converged_section(sweep, rows, out, plots, fits)
        elif section == "ablation":
            lines += _ablation_section(sweep, rows, converged)
        elif section == "tasks":
            lines += _tasks_section(sweep, rows, out)
    has_sizes = table["section"].isin(["size", "converged"]).any()
    joint = run_joint(table, out) if has_sizes and {"train_positions", "epochs_run"} <= set(table.columns) else None
    if joint is not None:
        lines += joint_markdown(joint)
        plots += joint.plots
    fits_path = out / "fits.json"
    write_text(json.dumps({"law": "L(N) = E + (N0 / N)^alpha", "results": results.name, "metric": METRIC,
                           "fits": fits, "plots": [p.name for p in plots]}, indent=2, default=_plain) + "\n", fits_path)
    if joint is not None:
        save_joint(joint, fits_path)
    report_path = out / "report.md"
    write_text("\n".join(lines).rstrip() + "\n", report_path)
    return StudyReport(report_path, fits_path, plots)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return str(value)
