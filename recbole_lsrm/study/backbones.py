"""The report's sections for the HSTU scaling study's depth and variants parts (Guo et al. 2024):

- ``depth``: backbones scaled by the number of blocks at one width, one line per model, with 95%
  intervals and where each stops improving: test NDCG@10 and HR@10 for retrievers (part 1),
  AUC, LogLoss and GAUC for rankers (``objective: ranking``, part 4), with any ranker without a
  depth axis (RecBole's DIN) as a reference line;
- ``variants``: where HSTU's scaling comes from, each variant at one depth next to the full
  model and to the paper's ML-20M figure.

Both read the study's results table alone (columns ``model``, ``n_layers``, ``test_*`` and
their ``_lo``/``_hi`` intervals).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recbole_lsrm.scaling.plots import pyplot, save_figure
from recbole_lsrm.study.cells import NAMES, RANKING_FIGURES, interval, is_ranking, markdown_table, minutes, value, with_ci
from recbole_lsrm.study.paired import paired_text, read_paired
from recbole_lsrm.study.paired import verdict as paired_verdict

# The paper's ML-20M HR@10 of HSTU's variants (part 2), by the variant names study files use.
PAPER_VARIANTS_ML20M = {
    "full": (0.3376, "full HSTU (relative bias with time, SiLU, gating)"),
    "rab-position": (0.3122, "relative bias from position only"),
    "rab-none": (0.3083, "no relative bias"),
    "rab-rope": (0.3149, "rotary positions instead of the bias"),
    "softmax": (0.3298, "softmax instead of SiLU"),
    "no-gating": (0.3154, "without the feature interaction (U gating)"),
}
PAPER_DEPTH_FINDING = (
    "The paper (ML-20M, 2 to 32 blocks): at small depth the four backbones are close; only HSTU and "
    "Llama keep improving with depth (HSTU HR@10 .2915 at 2 blocks, .3520 at 16); GPT collapses beyond "
    "8 blocks (.0302); SASRec scales much better once it gets HSTU's relative bias and a pre-norm residual."
)
PAPER_RANKING_FINDING = (
    "The paper (ML-1M, ML-20M, Amazon Books; click labels plus sampled negatives, BCE): HSTU beats DIN and a "
    "Llama ranker and keeps improving with more blocks (best ML-1M AUC .7947); Llama is often better at small "
    "depth but scales poorly; lower LogLoss does not always mean higher AUC."
)
# LSRM's block is the paper's GPT.
LABELS = {"LSRM": "GPT (LSRM)"}
def _label(model: str) -> str:
    return LABELS.get(model, model)


def named_references(references: pd.DataFrame | None) -> list[tuple[str, pd.Series]]:
    """Each reference trial with its name: its model, and its sweep where several share the model
    (DIN trained two ways)."""
    if references is None or references.empty:
        return []
    models = [str(m) for m in references["model"]]
    return [(_label(m) + (f" ({r['sweep']})" if models.count(m) > 1 else ""), r)
            for m, (_, r) in zip(models, references.iterrows())]


def trend(rows: pd.DataFrame, name: str = "ndcg@10") -> tuple[list[str], int | None]:
    """Each step in depth as better / worse or level, and the last depth reached by a better
    step (where the model stops improving). A step is judged by its paired difference over the
    same test users where the table has it (:mod:`recbole_lsrm.study.paired`), else by whether
    the two trials' own intervals overlap."""
    steps, last_good = [], None
    ordered = rows.sort_values("n_layers")
    for (_, a), (_, b) in zip(ordered.iloc[:-1].iterrows(), ordered.iloc[1:].iterrows()):
        diff = read_paired(b, name) if str(b.get("paired_ref")) == f"{a['sweep']}/{a['key']}" else None
        ia, ib = interval(a, name), interval(b, name)
        if diff is not None:
            verdict = {"higher": "better", "lower": "worse", "level": "level"}[paired_verdict(diff)]
            detail = f" ({paired_text(diff)})"
        elif ia is not None and ib is not None and ib[0] > ia[1]:
            verdict, detail = "better", ""
        elif ia is not None and ib is not None and ib[1] < ia[0]:
            verdict, detail = "worse", ""
        else:
            verdict, detail = "level", ""
        steps.append(f"{int(a['n_layers'])} -> {int(b['n_layers'])} {verdict}{detail}")
        if verdict == "better":
            last_good = int(b["n_layers"])
    return steps, last_good


def depth_section(rows: pd.DataFrame, out: Path, plots: list[Path],
                  references: pd.DataFrame | None = None) -> list[str]:
    """All ``depth`` rows of the study: one table, one figure, one sentence per model.
    ``references``: trials without a depth axis (DIN among rankers), given beside them."""
    ranking = is_ranking(rows)
    main, second = ("auc", "logloss") if ranking else ("ndcg@10", "hit@10")
    if ranking:
        lines = ["## Rankers scaled by depth (HSTU scaling study, part 4)", "",
                 "Each model as a ranker at one width, BCE on the labels plus sampled negatives at every position "
                 "of a window, the same data, candidates and stopping rule (the validation AUC, at most the "
                 "`epochs` cap).", "", PAPER_RANKING_FINDING, ""]
        figures = list(RANKING_FIGURES)
    else:
        lines = ["## Backbones scaled by depth (HSTU scaling study, part 1)", "",
                 "Each backbone at one width, 2 to 16 blocks, the same data, windows, loss (full-softmax CE at "
                 "every position for the plugin's models) and stopping rule (the validation CE, at most the "
                 "`epochs` cap). RecBole's SASRec trains on RecBole's rows (one prefix per target, the loss at the "
                 "last position only): per epoch it sees each target once, like the others, but from "
                 "max-length prefixes rather than windows, and takes far longer per epoch on a CPU.", "",
                 PAPER_DEPTH_FINDING, ""]
        figures = ["celoss", "hit@10", "ndcg@10"]
    table = []
    for model, group in rows.groupby("model", sort=False):
        for _, r in group.sort_values("n_layers").iterrows():
            table.append([_label(model), str(int(r["n_layers"])), f"{int(r['N']):,}", str(r.get("epochs_run", "-")),
                          *[with_ci(r, f) for f in figures], minutes(r.get("train_time_s"))])
    for name, r in named_references(references):
        table.append([name, "-", "-", str(r.get("epochs_run", "-")),
                      *[with_ci(r, f) for f in figures], minutes(r.get("train_time_s"))])
    lines += markdown_table(["ranker" if ranking else "backbone", "blocks", "N", "epochs",
                             *[f"{NAMES[f]} [95%]" for f in figures], "train min"], table)
    capped = [f"{_label(str(model))} {int(r['n_layers'])}" for model, group in rows.groupby("model", sort=False)
              for _, r in group.sort_values("n_layers").iterrows() if str(r.get("epochs_run")) == str(r.get("epochs"))]
    capped += [name for name, r in named_references(references) if str(r.get("epochs_run")) == str(r.get("epochs"))]
    if capped:
        lines += ["", f"Stopped by the epoch cap, not by the validation {'AUC' if ranking else 'CE'} (still "
                      f"improving): {', '.join(capped)}."]
    lines += ["", f"Steps in depth ({NAMES[main]}; better or worse only where the 95% interval of the paired "
              "difference over the same test users, shown in brackets, excludes 0; without per-user figures, where "
              "the two trials' intervals do not overlap):", ""]
    for model, group in rows.groupby("model", sort=False):
        steps, last_good = trend(group, main)
        best = group.loc[group[f"test_{main}"].astype(float).idxmax()]
        where = (f"still improving at {last_good} blocks" if last_good == int(group["n_layers"].max())
                 else f"improves up to {last_good} blocks" if last_good else "no step is better")
        lines.append(f"- {_label(model)}: {', '.join(steps) or 'one depth only'}; {where}; best {NAMES[main]} "
                     f"{value(best, main):.4f} at {int(best['n_layers'])} blocks.")
    lines.append("")
    path = out / "depth.png"
    plot_depth(rows, path, (main, second), references)
    plots.append(path)
    lines += [f"![{NAMES[main]} and {NAMES[second]} against depth]({path.name})", ""]
    return lines


def plot_depth(rows: pd.DataFrame, path: Path, figures: tuple[str, str] = ("ndcg@10", "hit@10"),
               references: pd.DataFrame | None = None) -> Path:
    """Two figures against the number of blocks (log2 axis), one line per backbone, 95% error
    bars; each reference trial (no depth axis) a dashed line with its interval shaded."""
    caps = pd.to_numeric(rows.get("epochs", pd.Series(dtype=float)), errors="coerce").groupby(rows["model"]).max()

    def label(model: str) -> str:  # the epoch cap too, where the backbones' caps differ
        cap = caps.get(model)
        return _label(model) + (f" (at most {cap:g} epoch{'' if cap == 1 else 's'})"
                                if caps.nunique() > 1 and cap == cap else "")

    what = "Rankers" if is_ranking(rows) else "Backbones"
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    try:
        for ax, name in zip(axes, figures):
            title = NAMES[name]
            for model, group in rows.groupby("model", sort=False):
                group = group.sort_values("n_layers")
                x = group["n_layers"].astype(float).to_numpy()
                y = group[f"test_{name}"].astype(float).to_numpy()
                cis = [interval(r, name) for _, r in group.iterrows()]
                err = np.array([[v - c[0] if c else 0.0 for v, c in zip(y, cis)],
                                [c[1] - v if c else 0.0 for v, c in zip(y, cis)]])
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label(str(model)))
            for style, (reference, r) in zip(itertools.cycle(("--", ":", "-.")), named_references(references)):
                level, ci = value(r, name), interval(r, name)
                if not math.isfinite(level):
                    continue
                line = ax.axhline(level, linestyle=style, linewidth=1, color="grey", label=reference)
                if ci:
                    ax.axhspan(ci[0], ci[1], color=line.get_color(), alpha=0.12)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(rows["n_layers"].astype(float).unique()))
            ax.get_xaxis().set_major_formatter(lambda v, _: f"{v:g}")
            ax.set_xlabel("blocks")
            ax.set_ylabel(f"test {title}")
            ax.set_title(f"{what} scaled by depth: {title}")
            ax.legend(fontsize=8)
        save_figure(fig, path)
    finally:
        plt.close(fig)
    return path


def variants_section(rows: pd.DataFrame, depth_rows: pd.DataFrame) -> list[str]:
    """Each ``variants`` sweep's trial next to the full model at its depth and the paper's figure."""
    lines = ["## Where HSTU's scaling comes from (HSTU scaling study, part 2)", "",
             "Each variant changes one part of a backbone at one depth; `full` is the depth sweep's trial of "
             "the same model and depth. The paper's figures are HR@10 on ML-20M (its protocol), given for "
             "their direction, not to be compared in level.", ""]
    table: list[list[Any]] = []
    for sweep, group in rows.groupby("sweep", sort=False):
        for _, r in group.sort_values("n_layers").iterrows():
            name = str(sweep).split("-", 1)[1] if "-" in str(sweep) else str(sweep)
            full = depth_rows[(depth_rows["model"] == r["model"]) & (depth_rows["n_layers"] == r["n_layers"])]
            paper = PAPER_VARIANTS_ML20M.get(name)
            full_hr = with_ci(full.iloc[0], "hit@10") if len(full) else "-"
            diff = read_paired(r, "hit@10")
            table.append([f"{_label(str(r['model']))}: {sweep}", str(int(r["n_layers"])), with_ci(r, "hit@10"),
                          with_ci(r, "ndcg@10"), full_hr,
                          f"{paired_text(diff)} {paired_verdict(diff)}" if diff is not None else "-",
                          f"{paper[0]:.4f} ({paper[1]})" if paper else "-"])
    lines += markdown_table(["variant", "blocks", "HR@10 [95%]", "NDCG@10 [95%]", "full model's HR@10",
                             "HR@10 minus the full model's [paired 95%]", "paper, ML-20M HR@10"], table)
    full_paper = PAPER_VARIANTS_ML20M["full"][0]
    lines += ["", f"The paper's full HSTU: HR@10 {full_paper:.4f}; every variant is below it there.", ""]
    return lines
