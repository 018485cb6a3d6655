"""What a sweep runs: its command-line options, one :class:`TrialSpec` per trial, and checks.

A sweep crosses one size axis (Table IV scales, numbers of layers, or shapes at a fixed N)
with data fractions and seeds (SPEC 4: one trial per shape, data fraction and seed). Every
trial is one call of :func:`recbole_lsrm.pipeline.run` with a config dict; everything a trial
needs is in its spec, with absolute paths, because Ray runs it in another process (and on a
cluster, on another machine) whose working directory is not ours.

No Ray here: planning, checking and printing the plan work without it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recbole_lsrm.errors import ConfigError

DEFAULT_MODEL = "LSRM"
DEFAULT_DATASET = "ml-100k"
DEFAULT_SEED = 2020  # RecBole's default seed
DEFAULT_CPUS_PER_TRIAL = 2

USAGE = """\
usage: python -m recbole_lsrm.sweep [--dataset=ml-100k] [--model=LSRM]
           (--scales=l2,l4,l8 | --sizes=1x32,2x64 | --n-layers=1,2,4 | --shapes=l8[,l12] [--ratios=2,16,128 | --pairs=32x64,8x128])
           [--fractions=0.1,0.5,1.0] [--seeds=0,1] [--ablation=both,no-lad,no-so,neither] [--out=DIR] [--config_files="a.yaml b.yaml"]
           [--cpus-per-trial=2] [--gpus-per-trial=1] [--num-cpus=N] [--max-concurrent=N] [--address=auto]
           [--predict=l8] [--verbose] [--dry-run] [--KEY=VALUE ...]

Runs one Ray Tune trial per (size, data fraction, seed) through the training pipeline and
gathers every trial's summary and per-epoch validation loss into <out>/results.csv, then
fits L(N) = E + (N0/N)^alpha and writes fits.json, report.md and plots next to it.

size axis (one or more of):
  --scales=l2,l4,...      Table IV scales (LSRM-shaped models)
  --sizes=1x32,2x64       (n_layers)x(d_model) pairs of LSRM-shaped models, heads of about 32 dimensions
  --n-layers=1,2,4        numbers of layers/blocks, other sizes from the model's options (any model)
  --shapes=l8,1.57e6      shape study at a fixed N (paper IV-D): the Table IV shape and shapes with
                          aspect ratios d_model/n_layers --ratios=2,16,128 (default: R/8, R, 8R)
                          or explicit --pairs=32x64,2x256, within --shape-tolerance=0.05 of N
data and repeats:
  --fractions=0.1,1.0     fraction f < 1 reads the dataset <dataset>-<100 f> (python -m recbole_lsrm.prepare
                          <dataset> --raw ... --fraction=f writes it); 1.0 is the dataset itself
  --seeds=0,1             one trial per seed (default: --seed or 2020)
  --ablation=both,no-lad  the training techniques of Table III, one trial each: both (the model's recipe),
                          no-lad (one dropout rate, the mean of layer_dropout, in every layer), no-so
                          (Adam to the end: optimizer_switch False), neither
resources:
  --cpus-per-trial=2      CPUs (and torch threads) per trial
  --gpus-per-trial=1      GPUs per trial (default 1 where Ray sees GPUs, else 0; fractions allowed)
  --num-cpus=N            CPUs of the local Ray instance (default: all)
  --max-concurrent=N      at most N trials at a time
  --address=auto          run on an existing Ray cluster instead of a local Ray
output:
  --out=DIR               the sweep folder (default saved/sweeps/<dataset>-<model>); a sweep started again
                          in it skips finished trials and resumes unfinished ones from their last epoch
  --predict=l8            sizes held out of the fit and predicted by it in the report
  --verbose               stream the trials' own logs to this console
  --dry-run               print the trials (and which are finished) and exit
Any other --KEY=VALUE is a RecBole/plugin option passed to every trial (--epochs=2,
--MAX_ITEM_LIST_LENGTH=50, --data_path=...). Note --n_layers (underscore) is such an option,
--n-layers (hyphen) is the sweep axis.
"""

# Sweep options and whether they take a value; every other --key=value is a trial option.
SWEEP_OPTIONS = {
    "dataset": True, "model": True, "scales": True, "sizes": True, "n-layers": True, "ablation": True, "shapes": True, "ratios": True,
    "pairs": True, "shape-tolerance": True, "fractions": True, "seeds": True, "cpus-per-trial": True,
    "gpus-per-trial": True, "num-cpus": True, "max-concurrent": True, "address": True, "out": True,
    "config_files": True, "predict": True, "verbose": False, "dry-run": False,
}
# Options that do not change a trial's result: what is printed, and where the same data lies
# (a sweep continued on another machine reads its dataset from another folder).
_COSMETIC_OPTIONS = ("state", "show_progress", "data_path")


@dataclass
class TrialSpec:
    """One trial: the arguments of one ``pipeline.run`` call plus what the report groups by."""

    key: str  # unique in the sweep and its folder name: <size>-f<percent>-s<seed>[-<ablation>]
    size: str  # l4 (scale), nl2 (n_layers), L32-d64 (shape)
    model: str
    dataset: str  # the dataset read: <dataset> or <dataset>-<percent>
    base_dataset: str
    fraction: float
    seed: int
    options: dict[str, Any]
    config_files: list[str] = field(default_factory=list)
    shape_group: str | None = None  # the target size of a shape study this trial belongs to
    reference_shape: bool = False  # the Table IV shape of its size
    planned_epochs: int | None = None
    planned_N: int | None = None  # the paper's N for LSRM-shaped models; others are counted when built
    ablation: str | None = None  # both, no-lad, no-so or neither (--ablation)

    @property
    def trial_dir(self) -> Path:
        return Path(self.options["checkpoint_dir"])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialSpec":
        return cls(**data)


@dataclass
class SweepPlan:
    """A whole sweep: the trials and how to run them."""

    out: Path
    model: str
    dataset: str
    config_files: list[str]
    options: dict[str, Any]  # pass-through trial options
    trials: list[TrialSpec]
    cpus_per_trial: float = DEFAULT_CPUS_PER_TRIAL
    gpus_per_trial: float | None = None  # None: 1 where the cluster has GPUs, else 0
    num_cpus: int | None = None
    max_concurrent: int | None = None
    address: str | None = None
    predict: list[str] = field(default_factory=list)
    verbose: bool = False
    dry_run: bool = False

    def fingerprint(self) -> dict[str, Any]:
        """What makes two sweeps comparable: model, dataset and the options every trial shares.

        Options that change only what is printed (log level, progress bars) and the data's
        folder are left out, so a sweep can be continued with other ones, or elsewhere.
        """
        options = {k: v for k, v in self.options.items() if k not in _COSMETIC_OPTIONS}
        return json.loads(json.dumps(
            {"model": self.model, "dataset": self.dataset, "config_files": self.config_files, "options": options},
            sort_keys=True, default=str,
        ))


# --- parsing ------------------------------------------------------------------------
def split_args(argv: list[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """Sweep options (raw strings) and trial options (YAML-typed, like the main command line)."""
    from recbole_lsrm.config import parse_value

    sweep: dict[str, str] = {}
    trial: dict[str, Any] = {}
    for arg in argv:
        if not arg.startswith("--") or arg.startswith("--="):
            raise ConfigError(f"cannot read argument {arg!r}: options are written --key=value (see --help)")
        key, sep, value = arg[2:].partition("=")
        if key in SWEEP_OPTIONS:
            if SWEEP_OPTIONS[key] and not sep:
                raise ConfigError(f"--{key} needs a value: --{key}=...")
            if not SWEEP_OPTIONS[key]:
                value = value if sep else "true"
                if value.lower() not in ("true", "false"):
                    raise ConfigError(f"--{key} is a switch: write --{key} (or --{key}=false)")
            if key in sweep and sweep[key] != value:
                raise ConfigError(f"--{key} is given twice with different values")
            sweep[key] = value
            continue
        hyphenated = key.replace("_", "-")
        if key != "n_layers" and hyphenated in SWEEP_OPTIONS:
            raise ConfigError(f"unknown option --{key}: did you mean --{hyphenated}?")
        if not sep:
            raise ConfigError(f"cannot read argument {arg!r}: options are written --key=value (see --help)")
        typed = parse_value(value)
        if key in trial and trial[key] != typed:
            raise ConfigError(f"--{key} is given twice with different values")
        trial[key] = typed
    return sweep, trial


def _list(text: str, option: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"--{option} is empty")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"--{option} lists a value twice: {text}")
    return parts


def _number(text: str, option: str, integer: bool = False, minimum: float = 0.0, strict: bool = False):
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"--{option} must be {kind}, got {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ConfigError(f"--{option} must be {'>' if strict else '>='} {minimum:g}, got {text}")
    return value


def parse_fractions(text: str) -> list[float]:
    """``"0.1,0.5,1.0"``: each a whole percent in (0, 1]."""
    fractions = []
    for part in _list(text, "fractions"):
        f = _number(part, "fractions", strict=True)
        if f > 1:
            raise ConfigError(f"--fractions: {part} is more than the whole dataset (fractions are in (0, 1])")
        if abs(100 * f - round(100 * f)) > 1e-6:
            raise ConfigError(f"--fractions: {part} is not a whole percent; subsets are named <dataset>-<percent>")
        fractions.append(f)
    return fractions


ABLATIONS = ("both", "no-lad", "no-so", "neither")


def parse_sizes(text: str):
    """``"1x32,2x64"`` -> Shapes (n_layers, d_model, a head count of about 32 dimensions)."""
    from recbole_lsrm.scaling.shapes import Shape, choose_n_heads

    shapes = []
    for part in _list(text, "sizes"):
        layers, sep, width = part.lower().partition("x")
        if not sep or not layers.strip().isdigit() or not width.strip().isdigit() or int(layers) < 1 or int(width) < 1:
            raise ConfigError(f"--sizes: cannot read {part!r}: write (n_layers)x(d_model) pairs, e.g. 1x32,2x64")
        shapes.append(Shape(int(layers), int(width), choose_n_heads(int(width))))
    return shapes


def parse_ablations(text: str) -> list[str]:
    names = _list(text, "ablation")
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise ConfigError(f"--ablation: unknown {', '.join(unknown)}: choose from {', '.join(ABLATIONS)}")
    return names


def ablation_options(name: str, layer_dropout: Any) -> dict[str, Any]:
    """The trial options of one Table III variant, given the model's configured layer_dropout."""
    options: dict[str, Any] = {}
    if name in ("no-lad", "neither"):
        if isinstance(layer_dropout, dict):
            rates = [float(layer_dropout["start"]), float(layer_dropout["end"])]
        elif isinstance(layer_dropout, (list, tuple)):
            rates = [float(r) for r in layer_dropout]
        else:
            rates = [float(layer_dropout)]
        options["layer_dropout"] = round(sum(rates) / len(rates), 6)
    if name in ("no-so", "neither"):
        options["optimizer_switch"] = False
    return options


def subset_dataset(dataset: str, fraction: float) -> str:
    """The dataset a fraction reads: ``ml-20m`` and 0.1 -> ``ml-20m-10``; 1.0 -> ``ml-20m``."""
    return dataset if fraction == 1.0 else f"{dataset}-{round(100 * fraction)}"


def _model_defaults(model: str) -> dict[str, Any]:
    """The keys of the model's own property file (the plugin's, else RecBole's)."""
    from recbole_lsrm.config import PROPERTIES_DIR, RECBOLE_PROPERTIES_DIR, read_yaml

    for folder in (PROPERTIES_DIR, RECBOLE_PROPERTIES_DIR):
        path = folder / "model" / f"{model}.yaml"
        if path.is_file():
            return read_yaml(path)
    return {}


def _size_axis(sweep: dict[str, str], model_class: type, model: str) -> list[dict[str, Any]]:
    """The sizes: dicts of label, size options, shape group and whether it is a reference shape."""
    from recbole_lsrm.config import available_scales
    from recbole_lsrm.model.contract import uses_scale_presets
    from recbole_lsrm.scaling.shapes import (
        DEFAULT_TOLERANCE, build_shapes, parse_pairs, parse_ratios, target_size,
    )

    if not any(k in sweep for k in ("scales", "sizes", "n-layers", "shapes")):
        raise ConfigError(
            "give the sizes to sweep: --scales=l2,l4,l8, --sizes=1x32,2x64, --n-layers=1,2,4 or --shapes=l8 (see --help)"
        )
    for option in ("ratios", "pairs", "shape-tolerance"):
        if option in sweep and "shapes" not in sweep:
            raise ConfigError(f"--{option} belongs to a shape study: add --shapes=l8 (or a number of parameters)")
    shaped = uses_scale_presets(model_class)
    sizes: dict[str, dict[str, Any]] = {}

    def add(label: str, options: dict[str, Any], group: str | None = None, reference: bool = False) -> None:
        entry = sizes.setdefault(label, {"label": label, "options": options, "groups": [], "reference": False})
        if group is not None:
            entry["groups"].append(group)
            entry["reference"] = entry["reference"] or reference

    if "scales" in sweep:
        if not shaped:
            raise ConfigError(
                f"--scales are Table IV shapes of LSRM-shaped models; {model} has its own size options: "
                f"sweep --n-layers=... and pass its other sizes as --KEY=VALUE"
            )
        for name in _list(sweep["scales"], "scales"):
            if name not in available_scales():
                raise ConfigError(f"--scales: unknown scale '{name}': choose from {', '.join(available_scales())}")
            add(name, {"scale": name})
    if "sizes" in sweep:
        if not shaped:
            raise ConfigError(f"--sizes are (n_layers)x(d_model) of LSRM-shaped models; {model} is not one: use --n-layers")
        for shape in parse_sizes(sweep["sizes"]):
            add(shape.label, shape.options())
    if "n-layers" in sweep:
        if "n_layers" not in _model_defaults(model):
            raise ConfigError(
                f"--n-layers sets the option n_layers, which {model} does not have (see its property file); "
                f"sweep its depth option by hand with one sweep folder per value"
            )
        for part in _list(sweep["n-layers"], "n-layers"):
            add(f"nl{_number(part, 'n-layers', integer=True, minimum=1)}", {"n_layers": int(part)})
    if "shapes" in sweep:
        if not shaped:
            raise ConfigError(f"--shapes vary n_layers and d_model of LSRM-shaped models; {model} is not one")
        tolerance = _number(sweep.get("shape-tolerance", str(DEFAULT_TOLERANCE)), "shape-tolerance", strict=True)
        ratios = parse_ratios(sweep["ratios"]) if "ratios" in sweep else None
        pairs = parse_pairs(sweep["pairs"]) if "pairs" in sweep else None
        for spec in _list(sweep["shapes"], "shapes"):
            target = target_size(spec, tolerance)
            for shape in build_shapes(target, ratios, pairs, tolerance):
                is_reference = target.reference is not None and shape == target.reference
                if is_reference and target.scale is not None:
                    # the Table IV shape is the scale itself: the same trial as --scales=<scale>
                    add(target.scale, {"scale": target.scale}, target.name, True)
                else:
                    options = shape.options()
                    if target.scale is not None:
                        options["scale"] = target.scale  # the scale's epochs and batch size
                    add(shape.label, options, target.name, False)
    return list(sizes.values())


def build_plan(argv: list[str]) -> SweepPlan:
    """Parse the command line into a plan and check everything that can be checked without Ray."""
    from recbole_lsrm.compat import get_model_class
    from recbole_lsrm.config import check_keys

    sweep, options = split_args(argv)
    model = sweep.get("model", DEFAULT_MODEL)
    dataset = sweep.get("dataset", DEFAULT_DATASET)
    model_class = get_model_class(model)
    for key in ("checkpoint_dir", "checkpoint"):
        if key in options:
            raise ConfigError(f"--{key} is set per trial by the sweep; choose the sweep folder with --out")
    for key in ("model", "dataset"):
        if key in options:
            raise ConfigError(f"--{key} is a sweep option; give it once")
    config_files = [os.path.abspath(f) for f in sweep.get("config_files", "").split()]
    for path in config_files:
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")

    sizes = _size_axis(sweep, model_class, model)
    # Trial options the sweep sets, and by which of its options (one value per trial).
    set_by_sweep: dict[str, str] = {}
    for axis, keys in (("scales", ("scale", "n_layers", "d_model")), ("sizes", ("n_layers", "d_model", "n_heads")),
                       ("n-layers", ("n_layers",)),
                       ("shapes", ("scale", "n_layers", "d_model", "n_heads")), ("seeds", ("seed",))):
        if axis in sweep:
            # a fixed n_layers or d_model would collapse the scales into one size
            set_by_sweep.update({key: f"--{axis}" for key in keys if key not in set_by_sweep})
    clash = [key for key in set_by_sweep if key in options]
    if clash:
        raise ConfigError(f"--{clash[0]} is set by the sweep ({set_by_sweep[clash[0]]}); remove it")
    if "seeds" in sweep:
        seeds = [_number(s, "seeds", integer=True) for s in _list(sweep["seeds"], "seeds")]
    else:
        seed = options.pop("seed", DEFAULT_SEED)
        if not isinstance(seed, int):
            raise ConfigError(f"--seed must be a whole number, got {seed!r}")
        seeds = [seed]
    fractions = parse_fractions(sweep.get("fractions", "1.0"))
    ablations: list[str | None] = parse_ablations(sweep["ablation"]) if "ablation" in sweep else [None]
    if ablations != [None]:
        for key in ("layer_dropout", "optimizer_switch"):
            if key in options:
                raise ConfigError(f"--{key} is set by the sweep (--ablation); remove it")
        if "layer_dropout" not in _model_defaults(model):
            raise ConfigError(f"--ablation varies layer_dropout and optimizer_switch; {model} has no layer_dropout")
    check_keys({**options, **{k: None for s in sizes for k in s["options"]}}, model, dataset, config_files)

    out = Path(sweep.get("out") or Path("saved") / "sweeps" / f"{dataset}-{model}").resolve()
    data_paths = _data_paths(model_class, dataset, fractions, config_files, options)
    trials = []
    layer_dropout = _configured(model_class, dataset, config_files, options, "layer_dropout") if ablations != [None] else None
    for size in sizes:
        for fraction in fractions:
            for seed in seeds:
                for ablation in ablations:
                    name = subset_dataset(dataset, fraction)
                    key = f"{size['label']}-f{round(100 * fraction)}-s{seed}" + (f"-{ablation}" if ablation else "")
                    trial_options = {
                        **size["options"],
                        "seed": seed,
                        "show_progress": False,  # no progress bars in trial logs; --show_progress=True overrides
                        **options,
                        **(ablation_options(ablation, layer_dropout) if ablation else {}),
                        "data_path": data_paths[name],
                        "checkpoint_dir": str(out / "trials" / key),
                    }
                    trials.append(TrialSpec(
                        key=key, size=size["label"], model=model, dataset=name, base_dataset=dataset,
                        fraction=fraction, seed=seed, options=trial_options, config_files=config_files,
                        shape_group=",".join(size["groups"]) or None, reference_shape=size["reference"],
                        ablation=ablation,
                    ))
    _check_trials(model_class, trials)

    gpus = sweep.get("gpus-per-trial")
    plan = SweepPlan(
        out=out, model=model, dataset=dataset, config_files=config_files, options=options, trials=trials,
        cpus_per_trial=_number(sweep.get("cpus-per-trial", str(DEFAULT_CPUS_PER_TRIAL)), "cpus-per-trial", strict=True),
        gpus_per_trial=None if gpus is None else _number(gpus, "gpus-per-trial"),
        num_cpus=None if "num-cpus" not in sweep else _number(sweep["num-cpus"], "num-cpus", integer=True, minimum=1),
        max_concurrent=None if "max-concurrent" not in sweep else _number(
            sweep["max-concurrent"], "max-concurrent", integer=True, minimum=1),
        address=sweep.get("address"),
        predict=_list(sweep["predict"], "predict") if "predict" in sweep else [],
        verbose=sweep.get("verbose", "false").lower() == "true",
        dry_run=sweep.get("dry-run", "false").lower() == "true",
    )
    if plan.address is not None and plan.num_cpus is not None:
        raise ConfigError("--num-cpus sizes a local Ray instance; a cluster (--address) has its own")
    unknown = sorted(set(plan.predict) - {t.size for t in trials})
    if unknown:
        raise ConfigError(f"--predict: {', '.join(unknown)} not among the sizes of this sweep ({', '.join(s['label'] for s in sizes)})")
    return plan


def _configured(model_class: type, dataset: str, config_files: list[str], options: dict, key: str) -> Any:
    """One option's value as a trial's config would have it (model file, config files, options)."""
    from recbole_lsrm.config import LSRMConfig

    return LSRMConfig(model_class, dataset, config_files, options)[key]


def _data_paths(model_class: type, dataset: str, fractions: list[float], config_files: list[str], options: dict) -> dict[str, str]:
    """The absolute data folder of each dataset the sweep reads, with its files checked now.

    A trial resolves a relative ``data_path`` against its own working directory, which Ray
    sets; resolving it here, once, makes it ours. A missing subset fails here with the
    plugin's usual message, before any trial starts.
    """
    from recbole_lsrm.config import LSRMConfig
    from recbole_lsrm.data import known_datasets
    from recbole_lsrm.data.atomic_file import check_atomic_files
    from recbole_lsrm.errors import DatasetError

    paths = {}
    for fraction in fractions:
        name = subset_dataset(dataset, fraction)
        config = LSRMConfig(model_class, name, config_files, options)
        try:
            check_atomic_files(
                config["data_path"], name,
                required=[config["USER_ID_FIELD"], config["ITEM_ID_FIELD"], config["TIME_FIELD"]],
                separator=config["field_separator"], known=known_datasets(),
            )
        except DatasetError as err:
            if fraction == 1.0:
                raise
            raise DatasetError(
                f"{err} The {fraction:.0%} subset is written by: python -m recbole_lsrm.prepare {dataset} "
                f"--raw ... --fraction={fraction:g}"
            ) from None
        paths[name] = os.path.dirname(config["data_path"])
    return paths


def _check_trials(model_class: type, trials: list[TrialSpec]) -> None:
    """Build every trial's config once: bad values fail now, not in the middle of the sweep."""
    from recbole_lsrm.config import LSRMConfig
    from recbole_lsrm.model.contract import papers_non_embedding_params

    for trial in trials:
        try:
            config = LSRMConfig(model_class, trial.dataset, trial.config_files, trial.options)
        except ConfigError as err:
            raise ConfigError(f"trial {trial.key}: {err}") from None
        trial.planned_epochs = int(config["epochs"])
        trial.planned_N = papers_non_embedding_params(model_class, config)
