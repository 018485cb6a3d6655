"""A study file: which sweeps to run, on which data, and where the report goes.

A study is a YAML file in the repository (``studies/ml-1m.yaml``)::

    name: ml-1m
    model: LSRM
    dataset: ml-1m
    data: ../../shared/datasets/ml-1m/ml-1m.inter.xz   # an atomic .inter (.xz/.gz), or a data_path folder
    work: ../saved/studies/ml-1m     # trial folders and checkpoints (large, never committed)
    report: ../results/ml-1m         # results.csv, fits.json, report.md, PNGs (small, committed)
    options: {MAX_ITEM_LIST_LENGTH: 50}   # every trial
    sweeps:
      - name: single-epoch
        section: size                # size | converged | ablation | tasks | depth | variants | compare
        sizes: [1x32, 2x64, 4x128]   # or scales: [l2, l4]
        predict: [L4-d128]           # sizes held out of the fit
        options: {epochs: 1}
      - {name: ids, section: compare, depths: [2, 8]}   # section compare: settings side by side
      - name: side-info
        section: compare
        depths: [2, 8]
        baseline: ids                # each trial against sweep ids' trial of the same model and depth
                                     # (ids/nl2: against that one trial of ids, as DIN against HSTU)
        paper: Side information is slightly worse in most cases.   # the paper's finding, in the report
        options: {feature_fusion: mean, item_features: [genre]}

Relative paths are read from the study file's folder. Each sweep runs through the Ray Tune
sweep (:mod:`recbole_lsrm.sweep`) in ``<work>/<sweep name>``; its ``section`` says which part
of the report its rows belong to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from recbole_lsrm.config import YamlLoader
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.sweep.plan import (
    DEFAULT_CPUS_PER_TRIAL, Resources, SweepRequest, _number, parse_depths, parse_fractions, parse_seeds, parse_sizes,
)

SECTIONS = ("size", "converged", "ablation", "tasks", "depth", "variants", "compare")
_STUDY_KEYS = {"name", "model", "dataset", "data", "work", "report", "options", "sweeps", "cpus_per_trial", "max_concurrent"}
_SWEEP_KEYS = {"name", "model", "section", "sizes", "scales", "depths", "fractions", "seeds", "ablation", "predict", "options", "baseline",
               "paper"}


@dataclass
class SweepSpec:
    name: str
    section: str
    model: str | None = None  # the study's model unless the sweep names its own
    sizes: list[str] = field(default_factory=list)
    scales: list[str] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    fractions: list[float] = field(default_factory=lambda: [1.0])
    seeds: list[int] = field(default_factory=list)
    ablation: list[str] = field(default_factory=list)
    predict: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None  # ablation: the "both" variant's sweep; compare: the sweep each trial is set against
    paper: str | None = None  # compare: the paper's finding for this comparison, printed in the report

    def request(self, study: "StudySpec", data_path: Path, out: Path, dry_run: bool = False) -> SweepRequest:
        """The sweep's typed request, as ``python -m recbole_lsrm.sweep`` would build it."""
        return SweepRequest(
            model=self.model or study.model, dataset=study.dataset, scales=list(self.scales), sizes=parse_sizes(",".join(self.sizes))
            if self.sizes else [], depths=list(self.depths), fractions=list(self.fractions),
            seeds=list(self.seeds) or None, ablations=list(self.ablation), predict=list(self.predict),
            options={**study.options, **self.options, "data_path": str(data_path)},
            resources=Resources(cpus_per_trial=study.cpus_per_trial, max_concurrent=study.max_concurrent),
            out=out, dry_run=dry_run,
            own_size=not (self.sizes or self.scales or self.depths),
        )


@dataclass
class StudySpec:
    path: Path
    name: str
    model: str
    dataset: str
    data: Path
    work: Path
    report: Path
    sweeps: list[SweepSpec]
    options: dict[str, Any] = field(default_factory=dict)
    cpus_per_trial: float = DEFAULT_CPUS_PER_TRIAL
    # at most this many trials at a time (None: as many as the CPUs hold); memory-heavy trials,
    # e.g. RecBole's SASRec on ML-1M (its prefix rows: 6 to 10 GB a trial), need it
    max_concurrent: int | None = None

    def sweep(self, name: str) -> SweepSpec:
        for sweep in self.sweeps:
            if sweep.name == name:
                return sweep
        raise ConfigError(f"{self.path}: no sweep named {name!r} (sweeps: {', '.join(s.name for s in self.sweeps)})")


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{where} must be a list, got {value!r}")
    return [str(v) for v in value]


def _note(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a sentence (the paper's finding), got {value!r}")
    return " ".join(value.split())


def _parsed(parse: Callable[[str], list], value: Any, where: str, key: str) -> list:
    """A list of the study file read as the sweep's command line reads it, errors named with the file."""
    values = _strings(value, f"{where}: {key}")
    try:
        return parse(",".join(values)) if values else []
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _trial_sizes(sweep: SweepSpec) -> set[str]:
    """The size labels of a sweep's trials (as the sweep's plan names them: l2, 1x32, nl4)."""
    return {*sweep.scales, *sweep.sizes, *(f"nl{d}" for d in sweep.depths)}


def _check_baseline(sweep: SweepSpec, sweeps: dict[str, SweepSpec], where: str) -> None:
    """A baseline names another sweep of the study, or one of its trials ("sweep/size")."""
    baseline = sweep.baseline
    if baseline is None:
        return
    if not isinstance(baseline, str) or not baseline:
        raise ConfigError(f"{where}: baseline must name a sweep of this study (or one of its trials: "
                          f"sweep/nl2), got {baseline!r}")
    name, _, size = baseline.partition("/")
    if name not in sweeps:
        raise ConfigError(f"{where}: baseline {baseline!r} is not a sweep of this study")
    if name == sweep.name:
        raise ConfigError(f"{where}: baseline {baseline!r} is this sweep itself: name another sweep to set it against")
    sizes = _trial_sizes(sweeps[name])
    if size and sizes and size not in sizes:
        raise ConfigError(f"{where}: baseline {baseline!r} names no trial of sweep {name!r} "
                          f"(its trials: {', '.join(sorted(sizes))})")


def _cpus(value: Any, path: Path) -> float:
    try:
        return _number(value, "cpus_per_trial", strict=True)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def _max_concurrent(value: Any, path: Path) -> int | None:
    try:
        return None if value is None else _number(value, "max_concurrent", integer=True, minimum=1)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def load_study(path: str | Path) -> StudySpec:
    """Read and check a study file; every problem is named with the file and the key."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"study file not found: {path}")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=YamlLoader)  # 1e-3 is a number, as in config files
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study file is a mapping with name, model, dataset, data, work, report and sweeps")
    unknown = sorted(set(raw) - _STUDY_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_STUDY_KEYS))})")
    missing = [k for k in ("name", "dataset", "data", "work", "report", "sweeps") if k not in raw]
    if missing:
        raise ConfigError(f"{path}: missing key(s) {', '.join(missing)}")
    base = path.parent
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: options must be a mapping of option: value")
    sweeps_raw = raw["sweeps"]
    if not isinstance(sweeps_raw, list) or not sweeps_raw:
        raise ConfigError(f"{path}: sweeps must be a non-empty list")
    sweeps = []
    for i, entry in enumerate(sweeps_raw):
        where = f"{path}, sweep {i + 1}"
        if not isinstance(entry, dict) or "name" not in entry:
            raise ConfigError(f"{where}: each sweep is a mapping with a name")
        where = f"{path}, sweep {entry['name']!r}"
        unknown = sorted(set(entry) - _SWEEP_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_SWEEP_KEYS))})")
        section = entry.get("section", "size")
        if section not in SECTIONS:
            raise ConfigError(f"{where}: section must be one of {', '.join(SECTIONS)}, got {section!r}")
        sweep_options = entry.get("options") or {}
        if not isinstance(sweep_options, dict):
            raise ConfigError(f"{where}: options must be a mapping")
        fractions = _parsed(parse_fractions, entry.get("fractions", [1.0]), where, "fractions")
        sweep = SweepSpec(
            name=str(entry["name"]), section=section,
            model=str(entry["model"]) if entry.get("model") is not None else None,
            sizes=_strings(entry.get("sizes"), f"{where}: sizes"),
            scales=_strings(entry.get("scales"), f"{where}: scales"),
            depths=_parsed(parse_depths, entry.get("depths"), where, "depths"),
            fractions=fractions or [1.0],
            seeds=_parsed(parse_seeds, entry.get("seeds"), where, "seeds"),
            ablation=_strings(entry.get("ablation"), f"{where}: ablation"),
            predict=_strings(entry.get("predict"), f"{where}: predict"),
            options=sweep_options,
            baseline=entry.get("baseline"),
            paper=_note(entry.get("paper"), f"{where}: paper"),
        )
        if not sweep.sizes and not sweep.scales and not sweep.depths and section not in ("compare",):
            raise ConfigError(f"{where}: give sizes (1x32, 2x64), scales (l2, l4) or depths (2, 4, 8) "
                              "(a compare sweep without them trains the model's own size)")
        if section == "ablation" and not sweep.ablation:
            raise ConfigError(f"{where}: an ablation sweep lists its variants: ablation: [no-lad, no-so, neither]")
        if section == "tasks" and not (sweep_options.get("tasks") or options.get("tasks")):
            raise ConfigError(f"{where}: a tasks sweep sets options: {{tasks: [longtail, coldstart, ...]}}")
        sweeps.append(sweep)
    names = [s.name for s in sweeps]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: two sweeps share a name ({', '.join(names)})")
    for sweep in sweeps:
        _check_baseline(sweep, {s.name: s for s in sweeps}, f"{path}, sweep {sweep.name!r}")
    return StudySpec(
        path=path, name=str(raw["name"]), model=str(raw.get("model", "LSRM")), dataset=str(raw["dataset"]),
        data=(base / str(raw["data"])).resolve(), work=(base / str(raw["work"])).resolve(),
        report=(base / str(raw["report"])).resolve(), sweeps=sweeps, options=options,
        cpus_per_trial=_cpus(raw.get("cpus_per_trial", DEFAULT_CPUS_PER_TRIAL), path),
        max_concurrent=_max_concurrent(raw.get("max_concurrent"), path),
    )
