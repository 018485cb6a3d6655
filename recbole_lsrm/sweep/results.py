"""A sweep folder on disk: which trials finished, and all of them gathered into results.csv.

Layout of ``<out>/``::

    sweep.json              the model, dataset and trial options the folder's trials share
    trials/<key>/           one trial: its checkpoint_dir
        <model>-<dataset>-<time>-<id>/   the pipeline's run folder (run.log, checkpoint.pth, summary.json)
        trial.json          written when the trial has finished: its spec and summary path
        error.txt           the error of the last failed attempt
    ray/                    Ray Tune's own experiment folders
    results.csv             one row per finished trial

The folder, not Ray's experiment state, is the record of what is done: a sweep started again
reads it, skips finished trials, and resumes interrupted ones from their last checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.evaluation.candidates import METRICS as CANDIDATE_METRICS
from recbole_lsrm.evaluation.candidates import candidate_intervals, load_candidates, ranking_metrics, scored_arrays
from recbole_lsrm.io import atomic_write, make_dir, read_json, write_json, write_text
from recbole_lsrm.tasks.compare import key_figures, key_intervals

TRIAL_RECORD = "trial.json"
ERROR_FILE = "error.txt"
SWEEP_RECORD = "sweep.json"
RESULTS_FILE = "results.csv"

# results.csv: these first, then the test and best-validation metrics, then the curves.
LEADING_COLUMNS = [
    "key", "size", "model", "dataset", "base_dataset", "fraction", "seed", "scale",
    "n_layers", "d_model", "n_heads", "aspect_ratio", "shape_group", "reference_shape",
    "ablation", "N", "N_source", "non_embedding_params", "non_embedding_params_counted", "total_params",
    "max_seq_length", "target_behavior", "train_rows", "epochs", "epochs_run", "best_epoch", "switch_epoch",
    "train_time_s", "train_positions", "train_tokens_per_s", "test_ce_loss",
]
TRAILING_COLUMNS = [
    "valid_celoss_by_epoch", "train_loss_by_epoch", "device", "cuda_visible_devices", "run_dir", "summary",
]


def _run_dirs(trial_dir: Path) -> list[Path]:
    if not trial_dir.is_dir():
        return []
    return sorted((p for p in trial_dir.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)


def finished_summary(trial_dir: Path) -> Path | None:
    """The newest summary.json of a run in ``trial_dir``, if a run got that far."""
    done = [p / "summary.json" for p in _run_dirs(trial_dir) if (p / "summary.json").is_file()]
    return done[-1] if done else None


def unfinished_checkpoint(trial_dir: Path) -> Path | None:
    """The newest checkpoint.pth of a run that was interrupted before writing its summary."""
    partial = [
        p / "checkpoint.pth" for p in _run_dirs(trial_dir)
        if (p / "checkpoint.pth").is_file() and not (p / "summary.json").is_file()
    ]
    return partial[-1] if partial else None


def read_trial_record(trial_dir: Path) -> dict[str, Any] | None:
    """The finished trial's record, or None if the trial has not finished (or its run is gone)."""
    path = Path(trial_dir) / TRIAL_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not Path(record.get("summary", "")).is_file():
        return None
    return record


def write_trial_record(trial: dict[str, Any], summary_path: Path, cuda_visible_devices: str | None) -> Path:
    """Mark a trial finished: its spec, where its summary is, and the GPUs Ray gave it."""
    path = Path(trial["options"]["checkpoint_dir"]) / TRIAL_RECORD
    write_json(
        {
            "trial": trial,
            "summary": str(summary_path),
            "cuda_visible_devices": cuda_visible_devices,
            "finished_at": datetime.now().isoformat(timespec="seconds"),
        },
        path,
    )
    return path


def finished_keys(out: Path) -> set[str]:
    return {p.name for p in (Path(out) / "trials").glob("*") if read_trial_record(p) is not None}


# How each model's paper-style N is counted (its blocks' weight matrices), for results.csv.
_PAPER_N_FORMULAS = {
    "LSRM": "paper: 12 n_layers d_model^2",
    "HSTU": "blocks: 5 n_layers d_model^2 (4 without gating)",
}


def _paper_n_formula(model: str) -> str:
    return _PAPER_N_FORMULAS.get(model, "the model's block matrices")


def write_error(trial_dir: Path, text: str) -> None:
    """Record why a trial failed in its ``error.txt``."""
    make_dir(trial_dir)
    write_text(text.rstrip() + "\n", Path(trial_dir) / ERROR_FILE)


def record_external_failure(trial_dir: Path, ray_error_file: str | None) -> str:
    """A trial whose process died without writing its error (killed by a signal, out of
    memory): write ``error.txt`` from what Ray saw, and return it."""
    said = ""
    if ray_error_file:
        try:
            said = Path(ray_error_file).read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            said = ""
    lines = [line for line in said.splitlines() if line.strip()]
    cause = lines[-1] if lines else "no report from Ray"
    text = (
        "the trial's process ended without a Python error (killed from outside: a signal, "
        f"the out-of-memory killer, or a lost node); Ray reports: {cause}. "
        f"Its run.log under {trial_dir} ends where it stopped; the next sweep run resumes it."
    )
    write_error(trial_dir, text)
    return text


def last_error(trial_dir: Path) -> str | None:
    try:
        return (Path(trial_dir) / ERROR_FILE).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def check_sweep_record(out: Path, fingerprint: dict[str, Any], write: bool = True) -> None:
    """Write ``sweep.json``, or check that the folder's earlier trials were run the same way.

    Trials are skipped by key (size, fraction, seed); that is only right if the options
    every trial shares are the same as before. A folder with no trial yet (a sweep stopped
    before its first) takes the new settings. ``write=False`` only checks (a dry run).
    """
    path = Path(out) / SWEEP_RECORD
    started = any(p.is_dir() for p in (Path(out) / "trials").glob("*"))
    if path.is_file() and started:
        before = read_json(path, "a sweep's record of its settings (remove it or choose another --out)")
        if before != fingerprint:
            differences = []
            for key in sorted(set(before) | set(fingerprint)):
                then, now = before.get(key), fingerprint.get(key)
                if then == now:
                    continue
                if isinstance(then, dict) and isinstance(now, dict):
                    for name in sorted(set(then) | set(now)):
                        if then.get(name, "unset") != now.get(name, "unset"):
                            differences.append(f"--{name}: {then.get(name, 'unset')!r} then, {now.get(name, 'unset')!r} now")
                else:
                    differences.append(f"{key}: {then!r} then, {now!r} now")
            raise ConfigError(
                f"the sweep folder {out} holds trials run with other settings ({'; '.join(differences)}); "
                f"run with the same options to continue it, or choose another --out"
            )
        return
    if write:
        make_dir(out)
        write_json(fingerprint, path)


# --- results.csv --------------------------------------------------------------------------
def _json_list(values: list) -> str:
    return json.dumps([None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values])


def result_row(record: dict[str, Any]) -> dict[str, Any]:
    """One results.csv row from a finished trial's record and its run summary."""
    trial = record["trial"]
    summary = read_json(record["summary"], "a run summary", required=("model", "test"))
    paper_n = summary.get("non_embedding_params")
    counted = summary.get("non_embedding_params_counted")
    n_layers, d_model = summary.get("n_layers"), summary.get("d_model")
    history = summary.get("history", [])
    row: dict[str, Any] = {
        "key": trial["key"],
        "size": trial["size"],
        "model": summary["model"],
        "dataset": summary["dataset"],
        "base_dataset": trial["base_dataset"],
        "fraction": trial["fraction"],
        "seed": summary.get("seed", trial["seed"]),
        "scale": summary.get("scale"),
        "n_layers": n_layers,
        "d_model": d_model,
        "n_heads": summary.get("n_heads"),
        "aspect_ratio": d_model / n_layers if isinstance(n_layers, int) and isinstance(d_model, int) and n_layers else None,
        "shape_group": trial.get("shape_group"),
        "reference_shape": bool(trial.get("reference_shape")),
        "ablation": trial.get("ablation"),
        # The x-axis of the law: the paper's count for LSRM-shaped models, counted otherwise.
        "N": paper_n if paper_n is not None else counted,
        "N_source": _paper_n_formula(summary["model"]) if paper_n is not None else "counted",
        "non_embedding_params": paper_n,
        "non_embedding_params_counted": counted,
        "total_params": summary.get("total_params"),
        "max_seq_length": summary.get("max_seq_length"),
        "target_behavior": (summary.get("options") or {}).get("target_behavior"),  # several behaviours: what is held out
        "train_rows": summary.get("train_rows"),
        "epochs": summary.get("epochs"),
        "epochs_run": summary.get("epochs_run"),
        "best_epoch": summary.get("best_epoch"),
        "switch_epoch": summary.get("switch_epoch"),
        "train_time_s": summary.get("train_time_s"),
        "train_positions": summary.get("train_positions"),  # targets trained, all epochs
        "train_tokens_per_s": summary.get("train_tokens_per_s"),
        "test_ce_loss": summary.get("test_ce_loss"),
        "valid_celoss_by_epoch": _json_list([(r.get("valid") or {}).get("celoss") for r in history]),
        "train_loss_by_epoch": _json_list([r.get("train_loss") for r in history]),
        "device": summary.get("device"),
        "cuda_visible_devices": record.get("cuda_visible_devices"),
        "run_dir": summary.get("run_dir"),
        "summary": record["summary"],
    }
    for name, value in (summary.get("test") or {}).items():
        row[f"test_{name}"] = value
    row.update(_task_columns(summary.get("tasks_file")))
    for name, (lo, hi) in (summary.get("test_intervals") or {}).items():
        row[f"test_{name}_lo"], row[f"test_{name}_hi"] = lo, hi
    row.update(_candidate_columns(summary))
    for name, value in (summary.get("best_valid") or {}).items():
        row[f"valid_{name}"] = value
    for domain, figures in (summary.get("test_by_domain") or {}).items():  # every test figure per target domain
        row[f"domain {domain}: users"] = figures.get("users")
        for name in ("hit@10", "ndcg@10", "hit@50", "ndcg@50"):
            if name in figures:
                row[f"domain {domain}: {name}"] = figures[name]
                lo, hi = (figures.get("ci95") or {}).get(name, (None, None))
                row[f"domain {domain}: {name}_lo"], row[f"domain {domain}: {name}_hi"] = lo, hi
    return row


def _candidate_columns(summary: dict[str, Any]) -> dict[str, float]:
    """A ranker tested before one of its figures existed: that figure and its interval, recomputed
    from the run's scored candidates (``test_candidates.npz``), where the run folder has them."""
    test = summary.get("test") or {}
    missing = [name for name in CANDIDATE_METRICS if name not in test]
    if "auc" not in test or not missing or not summary.get("run_dir"):
        return {}
    scored = load_candidates(Path(summary["run_dir"]))
    if scored is None:
        return {}
    figures, intervals = ranking_metrics(*scored_arrays(scored)), candidate_intervals(*scored_arrays(scored))
    columns: dict[str, float] = {}
    for name in missing:
        columns[f"test_{name}"] = figures[name]
        if name in intervals:
            columns[f"test_{name}_lo"], columns[f"test_{name}_hi"] = intervals[name]
    return columns


def _task_columns(tasks_file: str | None) -> dict[str, float]:
    """``task_<task>: <figure>`` (and ``_lo``/``_hi``) columns from a run's tasks.json."""
    if not tasks_file or not Path(tasks_file).is_file():
        return {}
    columns: dict[str, float] = {}
    for task, result in read_json(tasks_file, "a run's task results").items():
        intervals = key_intervals(task, result)
        for figure, value in key_figures(task, result).items():
            name = f"task_{task}: {figure}"
            columns[name] = value
            if figure in intervals:
                columns[name + "_lo"], columns[name + "_hi"] = intervals[figure]
    return columns


def gather(out: Path) -> list[dict[str, Any]]:
    """A row per finished trial in the sweep folder, in key order."""
    rows = []
    for trial_dir in sorted((Path(out) / "trials").glob("*")):
        record = read_trial_record(trial_dir)
        if record is not None:
            rows.append(result_row(record))
    return rows


def write_results_csv(out: Path, rows: list[dict[str, Any]], first: tuple[str, ...] = ()) -> Path:
    """Write ``<out>/results.csv`` (through a temporary file) with a stable column order.

    ``first`` names columns to put before the usual ones (a study's sweep and section).
    """
    leading = list(first) + [c for c in LEADING_COLUMNS if c not in first]
    metrics = sorted({k for row in rows for k in row} - set(leading) - set(TRAILING_COLUMNS))
    columns = leading + metrics + TRAILING_COLUMNS
    path = Path(out) / RESULTS_FILE

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="raise")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})

    make_dir(path.parent)
    atomic_write(path, write)
    return path
