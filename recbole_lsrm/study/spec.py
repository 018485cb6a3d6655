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
        section: size                # size | converged | ablation | tasks
        sizes: [1x32, 2x64, 4x128]   # or scales: [l2, l4]
        predict: [L4-d128]           # sizes held out of the fit
        options: {epochs: 1}

Relative paths are read from the study file's folder. Each sweep runs through the Ray Tune
sweep (:mod:`recbole_lsrm.sweep`) in ``<work>/<sweep name>``; its ``section`` says which part
of the report its rows belong to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recbole_lsrm.errors import ConfigError

SECTIONS = ("size", "converged", "ablation", "tasks")
_STUDY_KEYS = {"name", "model", "dataset", "data", "work", "report", "options", "sweeps", "cpus_per_trial"}
_SWEEP_KEYS = {"name", "section", "sizes", "scales", "fractions", "seeds", "ablation", "predict", "options", "baseline"}


@dataclass
class SweepSpec:
    name: str
    section: str
    sizes: list[str] = field(default_factory=list)
    scales: list[str] = field(default_factory=list)
    fractions: list[float] = field(default_factory=lambda: [1.0])
    seeds: list[int] = field(default_factory=list)
    ablation: list[str] = field(default_factory=list)
    predict: list[str] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None  # ablation: the sweep whose rows are the "both" variant

    def argv(self, study: "StudySpec", data_path: Path, out: Path) -> list[str]:
        """The sweep's command line (``python -m recbole_lsrm.sweep ...``)."""
        args = [f"--model={study.model}", f"--dataset={study.dataset}", f"--out={out}",
                f"--cpus-per-trial={study.cpus_per_trial:g}"]
        if self.sizes:
            args.append("--sizes=" + ",".join(self.sizes))
        if self.scales:
            args.append("--scales=" + ",".join(self.scales))
        if self.fractions != [1.0]:
            args.append("--fractions=" + ",".join(f"{f:g}" for f in self.fractions))
        if self.seeds:
            args.append("--seeds=" + ",".join(str(s) for s in self.seeds))
        if self.ablation:
            args.append("--ablation=" + ",".join(self.ablation))
        if self.predict:
            args.append("--predict=" + ",".join(self.predict))
        for key, value in {**study.options, **self.options, "data_path": str(data_path)}.items():
            args.append(f"--{key}={_cli_value(value)}")
        return args


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
    cpus_per_trial: float = 2

    def sweep(self, name: str) -> SweepSpec:
        for sweep in self.sweeps:
            if sweep.name == name:
                return sweep
        raise ConfigError(f"{self.path}: no sweep named {name!r} (sweeps: {', '.join(s.name for s in self.sweeps)})")


def _cli_value(value: Any) -> str:
    """A value as the command line writes it (YAML flow style for lists and dicts)."""
    import yaml

    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    if value is None:
        return "~"
    return str(value)


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"{where} must be a list, got {value!r}")
    return [str(v) for v in value]


def load_study(path: str | Path) -> StudySpec:
    """Read and check a study file; every problem is named with the file and the key."""
    import yaml

    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"study file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
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
        fractions = [float(f) for f in _strings(entry.get("fractions", [1.0]), f"{where}: fractions")]
        sweep = SweepSpec(
            name=str(entry["name"]), section=section,
            sizes=_strings(entry.get("sizes"), f"{where}: sizes"),
            scales=_strings(entry.get("scales"), f"{where}: scales"),
            fractions=fractions,
            seeds=[int(s) for s in _strings(entry.get("seeds"), f"{where}: seeds")],
            ablation=_strings(entry.get("ablation"), f"{where}: ablation"),
            predict=_strings(entry.get("predict"), f"{where}: predict"),
            options=sweep_options,
            baseline=entry.get("baseline"),
        )
        if not sweep.sizes and not sweep.scales:
            raise ConfigError(f"{where}: give sizes (1x32, 2x64) or scales (l2, l4)")
        if section == "ablation" and not sweep.ablation:
            raise ConfigError(f"{where}: an ablation sweep lists its variants: ablation: [no-lad, no-so, neither]")
        if section == "tasks" and not (sweep_options.get("tasks") or options.get("tasks")):
            raise ConfigError(f"{where}: a tasks sweep sets options: {{tasks: [longtail, coldstart, ...]}}")
        sweeps.append(sweep)
    names = [s.name for s in sweeps]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: two sweeps share a name ({', '.join(names)})")
    for sweep in sweeps:
        if sweep.baseline is not None and sweep.baseline not in names:
            raise ConfigError(f"{path}, sweep {sweep.name!r}: baseline {sweep.baseline!r} is not a sweep of this study")
    return StudySpec(
        path=path, name=str(raw["name"]), model=str(raw.get("model", "LSRM")), dataset=str(raw["dataset"]),
        data=(base / str(raw["data"])).resolve(), work=(base / str(raw["work"])).resolve(),
        report=(base / str(raw["report"])).resolve(), sweeps=sweeps, options=options,
        cpus_per_trial=float(raw.get("cpus_per_trial", 2)),
    )
