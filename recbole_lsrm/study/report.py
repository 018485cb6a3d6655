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
- compare: settings side by side (side information, behaviours, domains), every test figure.
- the joint law L(N, D') over the size and converged trials (:mod:`recbole_lsrm.scaling.joint`),
  with its held-out errors next to the per-fraction fits', where the table allows a fit.

Every test figure carries its 95% bootstrap interval over test users (columns ``*_lo`` and
``*_hi``). A difference is called supported when the two intervals do not overlap, which is
conservative: a paired test on the same users (``recbole_lsrm.evaluation.intervals``) can
support smaller differences.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.io import make_dir, write_text
from recbole_lsrm.scaling.joint_report import markdown as joint_markdown, run_joint, save_joint
from recbole_lsrm.scaling.analysis import SizeFit, fit_sizes, load_results, repetition_curves
from recbole_lsrm.scaling.plots import plot_data_sizes, plot_repetition, plot_size_fit
from recbole_lsrm.study.backbones import NAMES, depth_section, is_ranking, variants_section
from recbole_lsrm.study.paired import paired_text, read_paired, reference
from recbole_lsrm.study.paired import verdict as paired_verdict
from recbole_lsrm.sweep.plan import ABLATIONS
from recbole_lsrm.tables import format_table

METRIC = "test_ce_loss"
VARIANTS = ABLATIONS  # Table III, in the order the sweep names them


@dataclass
class StudyReport:
    markdown: Path
    fits_json: Path
    plots: list[Path] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)


# --- cells ---------------------------------------------------------------------------------
def _f(value: Any, digits: int = 4) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


def _interval(row: pd.Series, name: str) -> tuple[float, float] | None:
    lo, hi = row.get(f"test_{name}_lo"), row.get(f"test_{name}_hi")
    try:
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def _with_ci(row: pd.Series, name: str, digits: int = 4) -> str:
    value = row.get(METRIC) if name == "celoss" else row.get(f"test_{name}")
    ci = _interval(row, name)
    return _f(value, digits) + (f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return format_table(header, rows, style="markdown").splitlines()


def _minutes(seconds: Any) -> str:
    try:
        return f"{float(seconds) / 60:.1f}"
    except (TypeError, ValueError):
        return "-"


def compare_sizes(rows: pd.DataFrame, name: str = "celoss") -> list[str]:
    """Sentences on consecutive sizes: is the larger one better, and do the intervals say so?"""
    smaller_is_better = name == "celoss"
    out = []
    ordered = rows.sort_values("N")
    for (_, a), (_, b) in zip(ordered.iloc[:-1].iterrows(), ordered.iloc[1:].iterrows()):
        va = float(a[METRIC] if name == "celoss" else a[f"test_{name}"])
        vb = float(b[METRIC] if name == "celoss" else b[f"test_{name}"])
        better = vb < va if smaller_is_better else vb > va
        ia, ib = _interval(a, name), _interval(b, name)
        separated = ia is not None and ib is not None and (ib[1] < ia[0] or ib[0] > ia[1])
        verdict = ("better, beyond the intervals" if better and separated
                   else "worse, beyond the intervals" if separated
                   else "better, within the intervals (not supported)" if better
                   else "not better (within the intervals)")
        out.append(f"{b['size']} vs {a['size']}: {name} {_f(vb)} vs {_f(va)}: {verdict}")
    return out


# --- sections ------------------------------------------------------------------------------
def _size_section(name: str, rows: pd.DataFrame, out: Path, plots: list[Path], fits: dict) -> list[str]:
    held = sorted(set(rows.loc[rows["held_out"], "size"]))
    lines = [f"## L(N): sweep `{name}`", ""]
    epochs = sorted({int(e) for e in rows["epochs"].dropna()})
    lines += [f"{len(rows)} sizes, {', '.join(map(str, epochs))} epoch(s) each; the law is fitted on all but "
              f"{', '.join(held) or 'none'} and predicts those.", ""]
    entries = fit_sizes(rows, METRIC, held)
    lines += _table(
        ["size", "N", "test CE [95%]", "NDCG@10 [95%]", "HR@10 [95%]", "train min", "role", "predicted CE [95%]", "error"],
        [[r["size"], f"{int(r['N']):,}", _with_ci(r, "celoss"), _with_ci(r, "ndcg@10"), _with_ci(r, "hit@10"),
          _minutes(r.get("train_time_s")), "held out" if r["held_out"] else "fit", *_predicted(entries, r["size"])]
         for _, r in rows.sort_values("N").iterrows()],
    )
    lines.append("")
    for entry in entries:
        fits[f"{name}: {entry.name}"] = entry.to_dict()
        if entry.ok:
            fit = entry.fit
            ci = fit.ci95
            lines.append(
                f"Fit ({entry.name}): E = {_f(fit.E)}, N0 = {fit.N0:.4g}, alpha = {_f(fit.alpha)}"
                + (f" (alpha 95% [{_f(ci['alpha'][0])}, {_f(ci['alpha'][1])}])" if ci.get("alpha") else "")
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
                return [_f(p.predicted) + (f" [{_f(ci[0])}, {_f(ci[1])}]" if ci else ""), f"{p.error_pct:+.2f}%"]
    return ["-", "-"]


def _converged_section(name: str, rows: pd.DataFrame, out: Path, plots: list[Path], fits: dict) -> list[str]:
    lines = [f"## Trained to convergence: sweep `{name}`", ""]
    lines += ["Each size trained with the model's recipe (AdamW with the learning rate's cosine decay over the "
              "`epochs` cap, a switch to SGD where Adam's validation CE stopped improving, layer-wise dropout) until "
              "the validation CE stopped improving or the cap ended it; test figures are those of the best "
              "validation epoch.", ""]
    for fraction, group in rows.groupby("fraction", sort=True):
        lines += [f"### {float(fraction):.0%} of the users", ""]
        lines += _table(
            ["size", "N", "epochs run (best, switch)", "test CE [95%]", "HR@10 [95%]", "NDCG@10 [95%]", "train min"],
            [[r["size"], f"{int(r['N']):,}",
              f"{_cell(r.get('epochs_run'))} ({_cell(r.get('best_epoch'))}, {_cell(r.get('switch_epoch'))})",
              _with_ci(r, "celoss"), _with_ci(r, "hit@10"), _with_ci(r, "ndcg@10"), _minutes(r.get("train_time_s"))]
             for _, r in group.sort_values("N").iterrows()],
        )
        capped = [r["size"] for _, r in group.iterrows() if _int(r.get("epochs_run")) == _int(r.get("epochs"))]
        if capped:
            lines += ["", f"Stopped by the epoch cap, not by the validation CE: {', '.join(capped)}."]
        lines += ["", "Consecutive sizes:", ""]
        lines += [f"- {s}" for s in compare_sizes(group)] + [f"- {s}" for s in compare_sizes(group, "ndcg@10")]
        lines.append("")
    entries = fit_sizes(rows, METRIC, [])
    for entry in entries:
        fits[f"{name}: {entry.name}"] = entry.to_dict()
        status = (f"E = {_f(entry.fit.E)}, N0 = {entry.fit.N0:.4g}, alpha = {_f(entry.fit.alpha)}"
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


def _cell(value: Any) -> str:
    number = _int(value)
    return "-" if number is None else str(number)


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _switched(row: pd.Series) -> bool:
    return _int(row.get("switch_epoch")) is not None


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
            return _with_ci(r, "celoss") + (f" (SGD from {_int(r.get('switch_epoch'))})" if _switched(r) else "")

        row = [size, f"{int(group['N'].iloc[0]):,}"] + [cell(v) for v in VARIANTS]
        for v in VARIANTS[1:]:
            row.append(f"{float(cells[v][METRIC]) - float(both[METRIC]):+.4f}" if v in cells and both is not None else "-")
        table.append((group["N"].iloc[0], row))
        for v in ("both", "no-lad"):
            if v in cells and not _switched(cells[v]):
                lines.append(f"- {size} {v}: its Adam phase never switched to SGD, so it shows no switching optimizer.")
    lines += [""] if lines[-1] != "" else []
    lines += _table(header, [r for _, r in sorted(table, key=lambda t: t[0])])
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
            ci = f" [{_f(lo)}, {_f(hi)}]" if _f(lo) != "-" and _f(hi) != "-" else ""
            cells.append(_f(r.get(column)) + ci)
        if len(ordered) > 1:
            first, last = float(ordered.iloc[0][column] or "nan"), float(ordered.iloc[-1][column] or "nan")
            cells.append(_f(last / first, 3) if first else "-")
        table.append([column[len("task_"):], *cells])
    lines += _table(header, table)
    lines.append("")
    if (out / f"{name}-compare" / "compare.png").is_file():
        lines += [f"![tasks]({name}-compare/compare.png)", ""]
    return lines


DOMAIN_FIGURES = ("hit@10", "ndcg@10", "hit@50", "ndcg@50")


def _compare_section(rows: pd.DataFrame, everything: pd.DataFrame | None = None) -> list[str]:
    """Settings side by side: each sweep's trials with every test figure and its interval, each
    domain's where the test users are grouped by domain, and each trial against its baseline
    (looked up among ``everything`` finished, a depth sweep's trials included)."""
    lines = ["## Settings compared", "",
             "Each sweep one setting (its options are in the study file); the same data, split and stopping rule.", ""]
    ranking = is_ranking(rows)
    figures = ["auc", "logloss", "gauc"] if ranking else ["celoss", "hit@10", "ndcg@10", "hit@50", "ndcg@50"]
    table = [[str(r["sweep"]), str(r.get("model", "")), _cell(r.get("n_layers"))] + [_with_ci(r, f) for f in figures]
             for _, r in rows.iterrows()]
    lines += _table(["sweep", "model", "blocks"] + [f"{NAMES[f]} [95%]" for f in figures], table)
    lines += _domain_tables(rows)
    lines += _against_baselines(rows, ["auc", "logloss"] if ranking else ["ndcg@10", "hit@10"],
                                everything if everything is not None else rows)
    return lines + [""]


def _domain_tables(rows: pd.DataFrame) -> list[str]:
    """One table per domain of the held-out item: each trial's test users of that domain, with
    every figure and its interval (columns ``domain <name>: <figure>`` of the table)."""
    domains = sorted({c.split(":")[0][len("domain "):] for c in rows.columns
                      if c.startswith("domain ") and c.endswith(": ndcg@10")})
    lines: list[str] = []
    for domain in domains:
        def cell(r: pd.Series, name: str) -> str:
            column = f"domain {domain}: {name}"
            lo, hi = _f(r.get(column + "_lo")), _f(r.get(column + "_hi"))
            return _f(r.get(column)) + (f" [{lo}, {hi}]" if "-" not in (lo, hi) else "")

        present = rows[pd.to_numeric(rows.get(f"domain {domain}: ndcg@10"), errors="coerce").notna()]
        table = [[str(r["sweep"]), str(r.get("model", "")), _cell(r.get(f"domain {domain}: users")),
                  *[cell(r, f) for f in DOMAIN_FIGURES]] for _, r in present.iterrows()]
        lines += ["", f"Test users whose held-out item is in {domain}:", ""]
        lines += _table(["sweep", "model", "users", *[f"{NAMES[f]} [95%]" for f in DOMAIN_FIGURES]], table)
    return lines


def _done(table: pd.DataFrame) -> pd.Series:
    """The finished trials: a test CE (retrieval) or a test AUC (ranking)."""
    done = pd.to_numeric(table[METRIC], errors="coerce").notna()
    if "test_auc" in table.columns:
        done |= pd.to_numeric(table["test_auc"], errors="coerce").notna()
    return done


def _protocol(table: pd.DataFrame) -> str:
    if is_ranking(table):
        return ("leave-one-out by time (each user's last interaction is the test, the one before it validation), "
                "the held-out interaction with its real label plus sampled negatives the user never had (at the "
                "trial's neg_ratio, drawn with the run's seed); AUC and LogLoss over all scored pairs, GAUC over "
                "users with both labels.")
    return (f"leave-one-out by time ({_held_out(table)}), full ranking over all items; CE is the held-out "
            "item's cross-entropy over all items.")


def _held_out(table: pd.DataFrame) -> str:
    """What the protocol holds out: each user's last items, or their last items of the target behaviour."""
    targets = sorted({str(v).strip() for v in table.get("target_behavior", pd.Series(dtype=object)).dropna()} - {""})
    if targets:
        return (f"each user's last two {' / '.join(targets)} interactions by time are validation and test; "
                "everything before them, of any behaviour, is their history")
    return "the last item of each user is the test item, the one before it validation"


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()


def _against_baselines(rows: pd.DataFrame, figures: list[str], everything: pd.DataFrame) -> list[str]:
    """Each trial of a sweep with a ``baseline`` (found among ``everything``) against that sweep's
    trial of the same size, then each sweep's ``paper`` note (the paper's finding for that comparison)."""
    lines: list[str] = []
    records, candidates = rows.to_dict("records"), everything.to_dict("records")
    for row in records:
        baseline = _text(row.get("baseline"))
        if not baseline:
            continue
        size = f"{row.get('model', '')}, {_cell(row.get('n_layers'))} blocks"
        base = reference(row, candidates)  # the baseline's trial of the same size
        if base is None:
            lines.append(f"- {row['sweep']} ({size}): no trial of {baseline} at that size yet.")
            continue
        parts = []
        for name in figures:
            value, other = _f(row.get(f"test_{name}")), _f(base.get(f"test_{name}"))
            if "-" in (value, other):
                continue
            diff = read_paired(row, name) if _text(row.get("paired_ref")) == f"{baseline}/{base['key']}" else None
            if diff is not None:
                parts.append(f"{NAMES.get(name, name)} {value} vs {other} ({paired_text(diff)} paired, {paired_verdict(diff)})")
                continue
            ours, theirs = _interval(row, name), _interval(base, name)
            verdict = ("within the intervals" if ours is None or theirs is None or (ours[0] <= theirs[1] and theirs[0] <= ours[1])
                       else "higher beyond the intervals" if ours[0] > theirs[1] else "lower beyond the intervals")
            parts.append(f"{NAMES.get(name, name)} {value} vs {other} ({float(value) - float(other):+.4f}, {verdict})")
        lines.append(f"- {row['sweep']} against {baseline} ({size}): {'; '.join(parts) or 'no shared figures'}.")
    if lines:
        lines = ["", "Against each sweep's baseline (the baseline's trial of the same model, blocks, data and seed, "
                 "or its only trial): "
                 "the paired difference over the same test users with its 95% interval, higher or lower where it "
                 "excludes 0; without per-user figures, the two trials' intervals (higher or lower where they do not "
                 "overlap):", ""] + lines
    notes: dict[str, list[str]] = {}  # the paper's finding -> the sweeps it is set beside
    for row in records:
        text, sweep = _text(row.get("paper")), str(row["sweep"])
        if text and sweep not in notes.setdefault(text, []):
            notes[text].append(sweep)
    if notes:
        lines += ["", "The paper's findings for these comparisons (HSTU scaling study; its protocol and data):", ""]
        lines += [f"- {', '.join(sweeps)}: {text}" for text, sweeps in notes.items()]
    return lines


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
        f"{_minutes(pd.to_numeric(table.get('train_time_s'), errors='coerce').sum())} min of training in all.",
        f"Protocol: {_protocol(table)} "
        "Intervals are 95% bootstrap intervals over test users (1,000 resamples); one training seed per trial, "
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
                    lines += _compare_section(compare_rows, finished)
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
