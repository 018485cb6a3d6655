"""The report's ``compare`` section: settings side by side (side information, behaviours,
domains, rankers' heads and negatives), from the study's results table alone.

- every compare trial with every test figure and its 95% interval (AUC, LogLoss and GAUC for
  rankers; test CE, HR and NDCG at 10 and 50 for retrievers);
- where the test users are grouped by the domain of their held-out item (columns
  ``domain <name>: <figure>``), one table per domain and one figure (``domains.png``);
- each trial of a sweep with a ``baseline`` against that sweep's trial of the same size: the
  paired difference over the same test users where the table has it, else the two intervals;
- each sweep's ``paper`` note, the paper's finding for that comparison.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recbole_lsrm.scaling.plots import pyplot, save_figure
from recbole_lsrm.study.cells import NAMES, RANKING_FIGURES, count, interval, is_ranking, markdown_table, number, text, with_ci
from recbole_lsrm.study.paired import PAIRED_RANKING_METRICS, paired_text, read_paired, reference
from recbole_lsrm.study.paired import verdict as paired_verdict

DOMAIN_FIGURES = ("hit@10", "ndcg@10", "hit@50", "ndcg@50")


def compare_section(rows: pd.DataFrame, everything: pd.DataFrame, out: Path, plots: list[Path]) -> list[str]:
    """All ``compare`` rows of the study; baselines are looked up among ``everything`` finished
    (a depth sweep's trials included)."""
    lines = ["## Settings compared", "",
             "Each sweep one setting (its options are in the study file); the same data, split and stopping rule.", ""]
    ranking = is_ranking(rows)
    figures = list(RANKING_FIGURES) if ranking else ["celoss", "hit@10", "ndcg@10", "hit@50", "ndcg@50"]
    table = [[str(r["sweep"]), str(r.get("model", "")), count(r.get("n_layers"))] + [with_ci(r, f) for f in figures]
             for _, r in rows.iterrows()]
    lines += markdown_table(["sweep", "model", "blocks"] + [f"{NAMES[f]} [95%]" for f in figures], table)
    domains = _domains(rows)
    if domains:
        lines += _domain_tables(rows, domains)
        path = plot_domains(rows, domains, out / "domains.png")
        plots.append(path)
        lines += ["", f"![NDCG@10 per domain of the held-out item]({path.name})"]
    lines += against_baselines(rows, list(PAIRED_RANKING_METRICS) if ranking else ["ndcg@10", "hit@10"], everything)
    return lines + [""]


def _domains(rows: pd.DataFrame) -> list[str]:
    return sorted({c.split(":")[0][len("domain "):] for c in rows.columns
                   if c.startswith("domain ") and c.endswith(": ndcg@10")})


def _domain_figure(row: pd.Series, domain: str, name: str) -> tuple[float, tuple[float, float] | None]:
    column = f"domain {domain}: {name}"
    figure = {f"test_{name}": row.get(column), f"test_{name}_lo": row.get(column + "_lo"),
              f"test_{name}_hi": row.get(column + "_hi")}
    ci = interval(figure, name)
    try:
        return float(row.get(column)), ci
    except (TypeError, ValueError):
        return float("nan"), ci


def _with_domain(rows: pd.DataFrame, domain: str) -> pd.DataFrame:
    return rows[pd.to_numeric(rows.get(f"domain {domain}: ndcg@10"), errors="coerce").notna()]


def _domain_tables(rows: pd.DataFrame, domains: list[str]) -> list[str]:
    """One table per domain of the held-out item: each trial's test users of that domain, with
    every figure and its interval."""
    lines: list[str] = []
    for domain in domains:
        table = []
        for _, r in _with_domain(rows, domain).iterrows():
            cells = []
            for name in DOMAIN_FIGURES:
                figure, ci = _domain_figure(r, domain, name)
                cells.append(number(figure) + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))
            table.append([str(r["sweep"]), str(r.get("model", "")), count(r.get(f"domain {domain}: users"), grouped=True), *cells])
        lines += ["", f"Test users whose held-out item is in {domain}:", ""]
        lines += markdown_table(["sweep", "model", "users", *[f"{NAMES[f]} [95%]" for f in DOMAIN_FIGURES]], table)
    return lines


def plot_domains(rows: pd.DataFrame, domains: list[str], path: Path, name: str = "ndcg@10") -> Path:
    """One group of bars per domain of the held-out item, one bar per trial with test users
    there (a trial keeps its colour across domains), with its 95% interval."""
    plt = pyplot()
    sweeps = list(dict.fromkeys(str(s) for s in rows["sweep"]))
    colours = {sweep: plt.get_cmap("tab20" if len(sweeps) > 10 else "tab10")(i) for i, sweep in enumerate(sweeps)}
    groups = {domain: [(sweep, *_domain_figure(present.iloc[0], domain, name)) for sweep in sweeps
                       if not (present := _with_domain(rows[rows["sweep"].astype(str) == sweep], domain)).empty]
              for domain in domains}
    width = 0.8 / max(1, max(len(bars) for bars in groups.values()))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * sum(len(bars) for bars in groups.values())), 4.4))
    labelled: set[str] = set()
    try:
        for j, domain in enumerate(domains):
            bars = groups[domain]
            for k, (sweep, figure, ci) in enumerate(bars):
                err = np.array([[figure - ci[0]], [ci[1] - figure]]) if ci else None
                ax.bar(j + width * (k - (len(bars) - 1) / 2), figure, width=width * 0.95, yerr=err, capsize=3,
                       color=colours[sweep], label=None if sweep in labelled else sweep)
                labelled.add(sweep)
        ax.set_xticks(range(len(domains)))
        ax.set_xticklabels(domains)
        ax.set_ylabel(f"test {NAMES[name]}")
        ax.set_title(f"{NAMES[name]} per domain of the held-out item (95% intervals)")
        ax.legend(fontsize=7, ncol=2)
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def against_baselines(rows: pd.DataFrame, figures: list[str], everything: pd.DataFrame) -> list[str]:
    """Each trial of a sweep with a ``baseline`` (found among ``everything``) against that sweep's
    trial of the same size, then each sweep's ``paper`` note (the paper's finding for that comparison)."""
    lines: list[str] = []
    records, candidates = rows.to_dict("records"), everything.to_dict("records")
    for row in records:
        baseline = text(row.get("baseline"))
        if not baseline:
            continue
        blocks = count(row.get("n_layers"))
        size = f"{row.get('model', '')}" + (f", {blocks} blocks" if blocks != "-" else "")
        base = reference(row, candidates)  # the baseline's trial of the same size
        if base is None:
            lines.append(f"- {row['sweep']} ({size}): no trial of {baseline} at that size yet.")
            continue
        parts = []
        for name in figures:
            value, other = number(row.get(f"test_{name}")), number(base.get(f"test_{name}"))
            if "-" in (value, other):
                continue
            diff = read_paired(row, name) if text(row.get("paired_ref")) == f"{base['sweep']}/{base['key']}" else None
            if diff is not None:
                parts.append(f"{NAMES.get(name, name)} {value} vs {other} ({paired_text(diff)} paired, {paired_verdict(diff)})")
                continue
            ours, theirs = interval(row, name), interval(base, name)
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
        note, sweep = text(row.get("paper")), str(row["sweep"])
        if note and sweep not in notes.setdefault(note, []):
            notes[note].append(sweep)
    if notes:
        lines += ["", "The paper's findings for these comparisons (HSTU scaling study; its protocol and data):", ""]
        lines += [f"- {', '.join(sweeps)}: {note}" for note, sweeps in notes.items()]
    return lines
