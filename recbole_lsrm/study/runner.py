"""Running a study: its data, its sweeps (in order, in one Tune run), and one results table saved as trials finish.

Every sweep runs in ``<work>/<sweep name>`` and is resumable as any sweep is: finished trials
are skipped, an interrupted one resumes from its last epoch. The study's table
(``<report>/results.csv``, with the columns ``sweep``, ``section`` and ``held_out`` in front)
is rewritten each time a trial finishes. It is also an input: a trial found there but not in
the work folder (a study continued on another machine from the committed table) counts as
finished and is not run again.
"""

from __future__ import annotations

import csv
import lzma
import gzip
import json
import shutil
import sys
import time
import zlib
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from recbole_lsrm.config import DEFAULT_SEED
from recbole_lsrm.errors import ConfigError, DatasetError
from recbole_lsrm.io import atomic_write, make_dir, write_json
from recbole_lsrm.prepare.subsets import sample_users, subset_name
from recbole_lsrm.study.paired import add_paired_differences
from recbole_lsrm.study.report import natural_key, write_study_report
from recbole_lsrm.study.spec import StudySpec, SweepSpec
from recbole_lsrm.sweep.plan import build_plan
from recbole_lsrm.sweep.results import gather, read_trial_record, write_results_csv
from recbole_lsrm.sweep.runner import run_sweeps
from recbole_lsrm.tasks.compare import compare

STUDY_COLUMNS = ("sweep", "section", "held_out")
STUDY_RECORD = "study.json"
_SOURCE_STAMP = ".source.json"


# --- data -----------------------------------------------------------------------------------
# The atomic files a dataset may have beside its .inter (side information, given test items).
SIBLINGS = ("item", "user", "test.inter")


def _siblings(source: Path) -> dict[str, Path]:
    """``ml-1m.inter.xz`` -> the ``ml-1m.item.xz``, ``ml-1m.user.xz``, ... found beside it."""
    name = source.name
    stem, packing = name.split(".inter", 1)[0], name.split(".inter", 1)[1] if ".inter" in name else ""
    return {kind: source.with_name(f"{stem}.{kind}{packing}") for kind in SIBLINGS
            if source.with_name(f"{stem}.{kind}{packing}").is_file()}


def prepare_data(study: StudySpec, stream: TextIO) -> Path:
    """The data_path the trials read: ``data`` itself when it is a folder, else a folder in
    ``<work>/data`` holding the (decompressed) atomic file and the ``.item``, ``.user`` and
    ``.test.inter`` files found beside it. Data subsets are added later."""
    source = study.data
    if source.is_dir():
        if not (source / study.dataset / f"{study.dataset}.inter").is_file():
            raise DatasetError(f"{source} has no {study.dataset}/{study.dataset}.inter (the study's data folder)")
        return source
    if not source.is_file():
        raise DatasetError(
            f"the study's data {source} is not found: set data: in {study.path.name} or pass --data=PATH "
            f"(an atomic .inter file, .xz or .gz, or a folder holding {study.dataset}/{study.dataset}.inter)"
        )
    data_path = study.work / "data"
    target = data_path / study.dataset / f"{study.dataset}.inter"
    stamp_path = target.parent / _SOURCE_STAMP
    files = {"inter": source, **_siblings(source)}
    stamp = {"source": str(source), "bytes": source.stat().st_size, "mtime": source.stat().st_mtime}
    if len(files) > 1:  # older stamps (the .inter alone) stay valid where there are no siblings
        stamp["files"] = {kind: [str(p), p.stat().st_size, p.stat().st_mtime] for kind, p in files.items()}
    if target.is_file() and stamp_path.is_file() and _read_stamp(stamp_path) == stamp:
        return data_path
    make_dir(target.parent)
    for kind, packed_path in files.items():
        unpacked = target.with_name(f"{study.dataset}.{kind}")
        print(f"data: {packed_path} -> {unpacked}", file=stream, flush=True)
        _unpack(packed_path, unpacked)
    write_json(stamp, stamp_path)
    return data_path


def _unpack(source: Path, target: Path) -> None:
    opener = lzma.open if source.suffix == ".xz" else gzip.open if source.suffix == ".gz" else open

    def write(tmp: str) -> None:
        try:
            with opener(source, "rb") as packed, open(tmp, "wb") as out:
                shutil.copyfileobj(packed, out, 1 << 22)
        except (EOFError, lzma.LZMAError, gzip.BadGzipFile, zlib.error) as err:
            raise DatasetError(f"{source} cannot be unpacked ({err.__class__.__name__}: {err}): "
                               "a truncated or damaged download? Fetch it again") from None

    atomic_write(target, write)


def _read_stamp(path: Path) -> dict | None:
    """The unpacked data's record of its source; None (unpack again) when it is unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_subset(data_path: Path, dataset: str, fraction: float, stream: TextIO, seed: int = DEFAULT_SEED) -> None:
    """Write ``<dataset>-<percent>`` (a seeded share of the users, whole sequences) if missing."""
    name = subset_name(dataset, fraction)
    target = data_path / name / f"{name}.inter"
    if fraction == 1.0 or target.is_file():
        return
    source = data_path / dataset / f"{dataset}.inter"
    frame = pd.read_csv(source, sep="\t", dtype=str, keep_default_na=False)
    user_column = next((c for c in frame.columns if c.split(":")[0] == "user_id"), None)
    if user_column is None:
        raise DatasetError(f"{source} has no user_id column (header: {', '.join(frame.columns)})")
    users = frame[user_column]
    numeric = pd.to_numeric(users, errors="coerce")
    keep = sample_users(numeric if numeric.notna().all() else users, fraction, seed)
    subset = frame[keep]
    make_dir(target.parent)
    atomic_write(target, lambda tmp: subset.to_csv(tmp, sep="\t", index=False))
    print(f"data: {name}: {fraction:.0%} of the users (seed {seed}), {len(subset):,} of {len(frame):,} "
          f"interactions -> {target}", file=stream, flush=True)


# --- the study's table ----------------------------------------------------------------------
def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a study's results.csv (empty cells as None); [] when there is none."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "sweep" not in reader.fieldnames or "key" not in reader.fieldnames:
            raise ConfigError(f"{path} is not a study's results table (it needs the columns sweep and key)")
        return [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]


def study_rows(study: StudySpec, committed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every finished trial of the study: the work folders' own, then the committed table's others,
    each with its paired difference against its reference trial (:mod:`recbole_lsrm.study.paired`)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for sweep in study.sweeps:
        out = study.work / sweep.name
        if (out / "trials").is_dir():
            for row in gather(out):
                rows[(sweep.name, row["key"])] = _label(row, sweep)
    known = {s.name: s for s in study.sweeps}
    for row in committed:
        if row["sweep"] in known:
            rows.setdefault((row["sweep"], row["key"]), _with_notes(row, known[row["sweep"]]))
    order = {s.name: i for i, s in enumerate(study.sweeps)}
    return add_paired_differences([rows[k] for k in sorted(rows, key=lambda k: (order[k[0]], natural_key(k[1])))])


_NOTES = ("baseline", "paper")  # the sweep's compare notes, carried by each of its rows


def _label(row: dict[str, Any], sweep: SweepSpec) -> dict[str, Any]:
    return _with_notes({"sweep": sweep.name, "section": sweep.section, "held_out": row["size"] in sweep.predict, **row}, sweep)


def _with_notes(row: dict[str, Any], sweep: SweepSpec) -> dict[str, Any]:
    """The row with the study file's current notes (a committed row's earlier ones dropped)."""
    return {**{k: v for k, v in row.items() if k not in _NOTES}, **{k: getattr(sweep, k) for k in _NOTES if getattr(sweep, k)}}


def _check_fingerprint(study: StudySpec, sweep: str, fingerprint: dict[str, Any], committed: list, write: bool) -> None:
    """``<report>/study.json`` keeps each sweep's settings: the committed table's trials of a
    sweep are reused only if the sweep is still run the same way."""
    path = study.report / STUDY_RECORD
    record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    before = record.get(sweep)
    if before is not None and before != fingerprint and any(r["sweep"] == sweep for r in committed):
        raise ConfigError(
            f"{study.report / 'results.csv'} holds trials of sweep {sweep!r} run with other settings "
            f"(see {path}); restore the study file's settings, or remove that sweep's rows to run it anew"
        )
    if write and before != fingerprint:
        record[sweep] = fingerprint
        make_dir(study.report)
        write_json(record, path)


def _compare_tasks(study: StudySpec, sweep: SweepSpec, stream: TextIO) -> None:
    """``python -m recbole_lsrm.tasks compare`` on the sweep's runs, into ``<report>/<sweep>-compare``."""
    run_dirs = [row["run_dir"] for row in gather(study.work / sweep.name) if row.get("run_dir")]
    if len(run_dirs) >= 2:
        print(f"\n== tasks compare: {len(run_dirs)} runs ==", file=stream, flush=True)
        compare(run_dirs, out=str(study.report / f"{sweep.name}-compare"))


# --- running --------------------------------------------------------------------------------
def run_study(
    study: StudySpec,
    only: list[str] | None = None,
    dry_run: bool = False,
    ray_init: dict[str, Any] | None = None,
    stream: TextIO | None = None,
) -> dict[str, Any]:
    """Run the study's sweeps (or those in ``only``); write the table and the report.

    The unfinished trials of all the sweeps go to one Tune run, in the study's order, so that
    sweeps of one trial run side by side as the CPUs allow.

    Returns ``{"failed": {sweep: [keys]}, "interrupted": bool, "terminated": bool, "report": path or None}``.
    """

    stream = stream or sys.stdout
    names = [s.name for s in study.sweeps]
    for name in only or []:
        if name not in names:
            raise ConfigError(f"--only: no sweep named {name!r} in {study.path.name} (sweeps: {', '.join(names)})")
    table_path = study.report / "results.csv"
    committed = read_table(table_path)
    data_path = prepare_data(study, stream)  # a dry run too: the plans check the data files

    def save(_key: str | None = None) -> None:
        rows = study_rows(study, committed)
        if rows:
            write_results_csv(study.report, rows, first=STUDY_COLUMNS)

    outcome: dict[str, Any] = {"failed": {}, "interrupted": False, "terminated": False, "report": None}
    started = time.time()
    plans, titles, sweeps = [], [], []
    for sweep in study.sweeps:
        if only and sweep.name not in only:
            continue
        for fraction in sweep.fractions:
            ensure_subset(data_path, study.dataset, fraction, stream)
        plan = build_plan(sweep.request(study, data_path, study.work / sweep.name, dry_run=dry_run))
        _check_fingerprint(study, sweep.name, plan.fingerprint(), committed, write=not dry_run)
        taken = {r["key"] for r in committed if r["sweep"] == sweep.name}
        local = {t.key for t in plan.trials if read_trial_record(t.trial_dir) is not None}
        from_table = sorted(taken - local)
        plan.trials = [t for t in plan.trials if t.key not in from_table]
        title = f"\n== sweep {sweep.name} ({sweep.section}) =="
        if from_table:
            title += f"\n  finished earlier, read from {table_path}: {', '.join(from_table)}"
        if not plan.trials:
            print(title, file=stream, flush=True)
            continue
        plans.append(plan)
        titles.append(title)
        sweeps.append(sweep)
    # One Tune run for all the sweeps: a sweep of one trial does not leave the other CPUs idle.
    results = run_sweeps(plans, ray_init=ray_init, stream=stream, on_trial_finished=save, report=False,
                         titles=titles) if plans else []
    for sweep, result in zip(sweeps, results):
        if result.failed:
            outcome["failed"][sweep.name] = sorted(result.failed)
        if result.interrupted:
            outcome["interrupted"], outcome["terminated"] = True, result.terminated
        elif sweep.section == "tasks" and not dry_run:
            _compare_tasks(study, sweep, stream)
    if dry_run:
        return outcome
    if study_rows(study, committed):
        _, outcome["report"] = write_table_and_report(study)
        print(f"\nstudy {study.name}: {time.time() - started:.0f} s; table {table_path}; report {outcome['report']}",
              file=stream, flush=True)
    return outcome


def write_table_and_report(study: StudySpec) -> tuple[Path, Path]:
    """``results.csv`` from the finished trials (here and in the committed table), then the report."""
    table_path = study.report / "results.csv"
    rows = study_rows(study, read_table(table_path))
    if not rows:
        raise ConfigError(f"no finished trials of study {study.name} in {study.work} or {table_path}")
    write_results_csv(study.report, rows, first=STUDY_COLUMNS)
    return table_path, write_study_report(table_path, study.report, title=study.name).markdown
