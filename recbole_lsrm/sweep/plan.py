"""What a sweep runs: one typed :class:`SweepRequest`, one :class:`TrialSpec` per trial, and checks.

A sweep crosses one size axis (Table IV scales, (n_layers)x(d_model) sizes, depths, or shapes
at a fixed N) with data fractions, seeds and Table III variants (paper IV: one trial per shape,
data fraction and seed). The request is built by argparse from a command line
(:func:`request_from_argv`) or directly by a study; :func:`build_plan` turns it into trials.
Every trial is one call of :func:`recbole_lsrm.pipeline.run` with a config dict; everything a
trial needs is in its spec, with absolute paths, because Ray runs it in another process (and on
a cluster, on another machine) whose working directory is not ours.

No Ray here: planning, checking and printing the plan work without it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from recbole_lsrm.config import (
    DEFAULT_DATASET, DEFAULT_MODEL, DEFAULT_SEED, LSRMConfig, available_scales, check_keys, model_defaults,
    parse_value, uses_scale_presets,
)
from recbole_lsrm.data import known_datasets
from recbole_lsrm.data.atomic_file import check_atomic_files
from recbole_lsrm.errors import ConfigError, DatasetError
from recbole_lsrm.model import get_model_class
from recbole_lsrm.model.contract import papers_non_embedding_params
from recbole_lsrm.prepare.subsets import subset_name as subset_dataset
from recbole_lsrm.scaling.scales import Shape
from recbole_lsrm.scaling.shapes import (
    DEFAULT_TOLERANCE, build_shapes, choose_n_heads, parse_pairs, parse_ratios, target_size,
)

DEFAULT_CPUS_PER_TRIAL = 2

# Table III's training techniques, one trial each: the trial options of every variant.
# both: the model's recipe; no-lad: one dropout rate (the mean of layer_dropout) in every
# layer; no-so: Adam to the end; neither.
ABLATIONS = ("both", "no-lad", "no-so", "neither")

# Options that do not change a trial's result: what is printed, and where the same data lies
# (a sweep continued on another machine reads its dataset from another folder).
_COSMETIC_OPTIONS = ("state", "show_progress", "data_path")


@dataclass
class Resources:
    """What each trial gets from Ray, and which Ray."""

    cpus_per_trial: float = DEFAULT_CPUS_PER_TRIAL  # CPUs (and torch threads) per trial
    gpus_per_trial: float | None = None  # None: 1 where the cluster has GPUs, else 0
    num_cpus: int | None = None  # CPUs of the local Ray instance (None: all)
    max_concurrent: int | None = None
    address: str | None = None  # an existing Ray cluster instead of a local Ray


@dataclass
class SweepRequest:
    """One sweep, typed: what to train (one size axis or more, crossed with fractions, seeds and
    ablations), with which options, on which resources, into which folder."""

    model: str = DEFAULT_MODEL
    dataset: str = DEFAULT_DATASET
    scales: list[str] = field(default_factory=list)  # Table IV scales (l2, l4, ...)
    sizes: list[Shape] = field(default_factory=list)  # (n_layers)x(d_model) of LSRM-shaped models
    depths: list[int] = field(default_factory=list)  # numbers of layers/blocks (any model with n_layers)
    shapes: list[str] = field(default_factory=list)  # shape studies at a fixed N: l8, 1.57e6
    ratios: list[float] | None = None  # the shape studies' aspect ratios (None: R/8, R, 8R)
    pairs: list[tuple[int, int]] | None = None  # the shape studies' explicit (n_layers, d_model)
    shape_tolerance: float | None = None  # None: DEFAULT_TOLERANCE
    own_size: bool = False  # one trial at the model's own size (a baseline without a depth option)
    fractions: list[float] = field(default_factory=lambda: [1.0])
    seeds: list[int] | None = None  # None: the trial options' seed, else DEFAULT_SEED
    ablations: list[str] = field(default_factory=list)
    predict: list[str] = field(default_factory=list)  # sizes held out of the fit and predicted
    options: dict[str, Any] = field(default_factory=dict)  # every trial's config keys, typed
    config_files: list[str] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    out: Path | None = None  # None: saved/sweeps/<dataset>-<model>
    verbose: bool = False
    dry_run: bool = False


@dataclass
class TrialSpec:
    """One trial: the arguments of one ``pipeline.run`` call plus what the report groups by."""

    key: str  # unique in the sweep and its folder name: <size>-f<percent>-s<seed>[-<ablation>]
    size: str  # l4 (scale), nl2 (depth), L32-d64 (shape)
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
    ablation: str | None = None  # both, no-lad, no-so or neither

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
    """A whole sweep: the request it answers and its trials."""

    request: SweepRequest
    out: Path
    trials: list[TrialSpec]

    # What the runner reads, by the names it has always used.
    model = property(lambda self: self.request.model)
    dataset = property(lambda self: self.request.dataset)
    config_files = property(lambda self: self.request.config_files)
    options = property(lambda self: self.request.options)
    predict = property(lambda self: self.request.predict)
    verbose = property(lambda self: self.request.verbose)
    dry_run = property(lambda self: self.request.dry_run)
    cpus_per_trial = property(lambda self: self.request.resources.cpus_per_trial)
    gpus_per_trial = property(lambda self: self.request.resources.gpus_per_trial)
    num_cpus = property(lambda self: self.request.resources.num_cpus)
    max_concurrent = property(lambda self: self.request.resources.max_concurrent)
    address = property(lambda self: self.request.resources.address)

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


# --- values of a request, from text --------------------------------------------------------
def _list(text: str, option: str) -> list[str]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"--{option} is empty")
    if len(set(parts)) != len(parts):
        raise ConfigError(f"--{option} lists a value twice: {text}")
    return parts


def _number(text: Any, option: str, integer: bool = False, minimum: float = 0.0, strict: bool = False):
    try:
        if integer and (isinstance(text, bool) or (isinstance(text, float) and not text.is_integer())):
            raise ValueError(text)
        value = int(text) if integer else float(text)
    except (TypeError, ValueError):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"--{option} must be {kind}, got {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise ConfigError(f"--{option} must be {'>' if strict else '>='} {minimum:g}, got {text}")
    return value


def parse_fractions(text: str) -> list[float]:
    """``"0.1,0.5,1.0"``: each a whole percent in (0, 1]."""
    return [_fraction(part) for part in _list(text, "fractions")]


def _fraction(value: Any) -> float:
    f = _number(value, "fractions", strict=True)
    if f > 1:
        raise ConfigError(f"--fractions: {value} is more than the whole dataset (fractions are in (0, 1])")
    if abs(100 * f - round(100 * f)) > 1e-6:
        raise ConfigError(f"--fractions: {value} is not a whole percent; subsets are named <dataset>-<percent>")
    return f


def parse_sizes(text: str) -> list[Shape]:
    """``"1x32,2x64"`` -> Shapes (n_layers, d_model, a head count of about 32 dimensions)."""
    shapes = []
    for part in _list(text, "sizes"):
        layers, sep, width = part.lower().partition("x")
        if not sep or not layers.strip().isdigit() or not width.strip().isdigit() or int(layers) < 1 or int(width) < 1:
            raise ConfigError(f"--sizes: cannot read {part!r}: write (n_layers)x(d_model) pairs, e.g. 1x32,2x64")
        shapes.append(Shape(int(layers), int(width), choose_n_heads(int(width))))
    return shapes


def parse_depths(text: str) -> list[int]:
    return [_number(part, "depths", integer=True, minimum=1) for part in _list(text, "depths")]


def parse_seeds(text: str) -> list[int]:
    return [_number(part, "seeds", integer=True) for part in _list(text, "seeds")]


def parse_ablations(text: str) -> list[str]:
    return _list(text, "ablation")


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


# --- the command line ----------------------------------------------------------------------
DESCRIPTION = """\
Runs one Ray Tune trial per (size, data fraction, seed) through the training pipeline and
gathers every trial's summary and per-epoch validation loss into <out>/results.csv, then
fits L(N) = E + (N0/N)^alpha and writes fits.json, report.md and plots next to it."""
EPILOG = """\
Any other --KEY=VALUE is a RecBole/plugin option passed to every trial (--epochs=2,
--MAX_ITEM_LIST_LENGTH=50, --data_path=...), read as YAML like the main command line's."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors reported like every other bad input (``error: ...``, exit 2)."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{message} (see --help)")


def _typed(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """A converter whose ConfigError argparse reports as it is (not as 'invalid value')."""

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ConfigError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m recbole_lsrm.sweep", description=DESCRIPTION, epilog=EPILOG,
                     allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the model of every trial (default {DEFAULT_MODEL})")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, help=f"default {DEFAULT_DATASET}")
    axis = parser.add_argument_group("size axis (one or more)")
    axis.add_argument("--scales", type=_typed(lambda t: _list(t, "scales")), default=[],
                      help="Table IV scales of LSRM-shaped models: l2,l4,...")
    axis.add_argument("--sizes", type=_typed(parse_sizes), default=[],
                      help="(n_layers)x(d_model) pairs of LSRM-shaped models, heads of about 32 dimensions: 1x32,2x64")
    axis.add_argument("--depths", type=_typed(parse_depths), default=[],
                      help="numbers of layers/blocks, other sizes from the model's options (any model): 1,2,4")
    axis.add_argument("--shapes", type=_typed(lambda t: _list(t, "shapes")), default=[],
                      help="shape study at a fixed N (paper IV-D): l8,1.57e6: the Table IV shape and shapes "
                           "with aspect ratios d_model/n_layers --ratios (default R/8, R, 8R) or --pairs")
    axis.add_argument("--ratios", type=_typed(parse_ratios), help="a shape study's aspect ratios: 2,16,128")
    axis.add_argument("--pairs", type=_typed(parse_pairs), help="a shape study's shapes: 32x64,2x256")
    axis.add_argument("--shape-tolerance", type=_typed(lambda t: _number(t, "shape-tolerance", strict=True)),
                      help=f"a shape's N within this share of the target (default {DEFAULT_TOLERANCE})")
    data = parser.add_argument_group("data and repeats")
    data.add_argument("--fractions", type=_typed(parse_fractions), default=[1.0],
                      help="f < 1 reads <dataset>-<100 f> (python -m recbole_lsrm.prepare <dataset> --raw ... "
                           "--fraction=f writes it); 1.0 is the dataset itself")
    data.add_argument("--seeds", type=_typed(parse_seeds), help=f"one trial per seed (default --seed or {DEFAULT_SEED})")
    data.add_argument("--ablation", type=_typed(parse_ablations), default=[], dest="ablations",
                      help=f"Table III's techniques, one trial each: {','.join(ABLATIONS)}")
    resources = parser.add_argument_group("resources")
    resources.add_argument("--cpus-per-trial", type=_typed(lambda t: _number(t, "cpus-per-trial", strict=True)),
                           default=DEFAULT_CPUS_PER_TRIAL, help="CPUs (and torch threads) per trial (default 2)")
    resources.add_argument("--gpus-per-trial", type=_typed(lambda t: _number(t, "gpus-per-trial")),
                           help="GPUs per trial (default 1 where Ray sees GPUs, else 0; fractions allowed)")
    resources.add_argument("--num-cpus", type=_typed(lambda t: _number(t, "num-cpus", integer=True, minimum=1)),
                           help="CPUs of the local Ray instance (default: all)")
    resources.add_argument("--max-concurrent", type=_typed(lambda t: _number(t, "max-concurrent", integer=True, minimum=1)),
                           help="at most N trials at a time")
    resources.add_argument("--address", help="run on an existing Ray cluster (auto) instead of a local Ray")
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, help="the sweep folder (default saved/sweeps/<dataset>-<model>); a sweep "
                        "started again in it skips finished trials and resumes unfinished ones")
    output.add_argument("--config_files", default="", help='property files for every trial: "a.yaml b.yaml"')
    output.add_argument("--predict", type=_typed(lambda t: _list(t, "predict")), default=[],
                        help="sizes held out of the fit and predicted by it in the report: l8")
    output.add_argument("--verbose", action="store_true", help="stream the trials' own logs to this console")
    output.add_argument("--dry-run", action="store_true", help="print the trials (and which are finished) and exit")
    return parser


def request_from_argv(argv: list[str]) -> SweepRequest:
    """The request of a command line; every ``--KEY=VALUE`` argparse does not know is a trial option."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    sweep_options = {a.option_strings[0][2:] for a in parser._actions if a.option_strings}
    options: dict[str, Any] = {}
    for arg in rest:
        if not arg.startswith("--") or arg.startswith("--=") or "=" not in arg:
            raise ConfigError(f"cannot read argument {arg!r}: options are written --key=value (see --help)")
        key, _, value = arg[2:].partition("=")
        if key == "n-layers":
            raise ConfigError("the depth axis is --depths=1,2,4 (--n_layers=K fixes one depth for every trial)")
        hyphenated = key.replace("_", "-")
        if hyphenated != key and hyphenated in sweep_options:
            raise ConfigError(f"unknown option --{key}: did you mean --{hyphenated}?")
        typed = parse_value(value)
        if key in options and options[key] != typed:
            raise ConfigError(f"--{key} is given twice with different values")
        options[key] = typed
    return SweepRequest(
        model=args.model, dataset=args.dataset, scales=args.scales, sizes=args.sizes, depths=args.depths,
        shapes=args.shapes, ratios=args.ratios, pairs=args.pairs, shape_tolerance=args.shape_tolerance,
        fractions=args.fractions, seeds=args.seeds, ablations=args.ablations, predict=args.predict,
        options=options, config_files=args.config_files.split(),
        resources=Resources(cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                            num_cpus=args.num_cpus, max_concurrent=args.max_concurrent, address=args.address),
        out=args.out, verbose=args.verbose, dry_run=args.dry_run,
    )


# --- the plan ------------------------------------------------------------------------------
@dataclass
class _Size:
    label: str
    options: dict[str, Any]
    groups: list[str] = field(default_factory=list)
    reference: bool = False


def _size_axis(request: SweepRequest, model_class: type) -> list[_Size]:
    """The sizes of the request, in order, each once (a scale named twice is one trial)."""
    model = request.model
    if request.own_size:
        return [_Size("default", {})]
    if not (request.scales or request.sizes or request.depths or request.shapes):
        raise ConfigError(
            "give the sizes to sweep: --scales=l2,l4,l8, --sizes=1x32,2x64, --depths=1,2,4 or --shapes=l8 (see --help)"
        )
    for option, value in (("ratios", request.ratios), ("pairs", request.pairs),
                          ("shape-tolerance", request.shape_tolerance)):
        if value is not None and not request.shapes:
            raise ConfigError(f"--{option} belongs to a shape study: add --shapes=l8 (or a number of parameters)")
    shaped = uses_scale_presets(model_class)
    sizes: dict[str, _Size] = {}

    def add(label: str, options: dict[str, Any], group: str | None = None, reference: bool = False) -> None:
        entry = sizes.setdefault(label, _Size(label, options))
        if group is not None:
            entry.groups.append(group)
            entry.reference = entry.reference or reference

    if request.scales and not shaped:
        raise ConfigError(
            f"--scales are Table IV shapes of LSRM-shaped models; {model} has its own size options: "
            f"sweep --depths=... and pass its other sizes as --KEY=VALUE"
        )
    for name in request.scales:
        if name not in available_scales():
            raise ConfigError(f"--scales: unknown scale '{name}': choose from {', '.join(available_scales())}")
        add(name, {"scale": name})
    if request.sizes and not shaped:
        raise ConfigError(f"--sizes are (n_layers)x(d_model) of LSRM-shaped models; {model} is not one: use --depths")
    for shape in request.sizes:
        add(shape.label, shape.options())
    if request.depths and "n_layers" not in model_defaults(model):
        raise ConfigError(
            f"--depths sets the option n_layers, which {model} does not have (see its property file); "
            f"sweep its depth option by hand with one sweep folder per value"
        )
    for depth in request.depths:
        add(f"nl{depth}", {"n_layers": depth})
    if request.shapes and not shaped:
        raise ConfigError(f"--shapes vary n_layers and d_model of LSRM-shaped models; {model} is not one")
    tolerance = DEFAULT_TOLERANCE if request.shape_tolerance is None else request.shape_tolerance
    for spec in request.shapes:
        target = target_size(spec, tolerance)
        for shape in build_shapes(target, request.ratios, request.pairs, tolerance):
            if target.reference is not None and shape == target.reference and target.scale is not None:
                # the Table IV shape is the scale itself: the same trial as --scales=<scale>
                add(target.scale, {"scale": target.scale}, target.name, True)
            else:
                options = shape.options()
                if target.scale is not None:
                    options["scale"] = target.scale  # the scale's epochs and batch size
                add(shape.label, options, target.name, False)
    return list(sizes.values())


def _check_request(request: SweepRequest) -> None:
    """What a typed request can still get wrong (a study builds one without argparse)."""
    for fraction in request.fractions:
        _fraction(fraction)
    if len(set(request.fractions)) != len(request.fractions):
        raise ConfigError(f"--fractions lists a value twice: {request.fractions}")
    unknown = [n for n in request.ablations if n not in ABLATIONS]
    if unknown:
        raise ConfigError(f"--ablation: unknown {', '.join(unknown)}: choose from {', '.join(ABLATIONS)}")
    for seed in request.seeds or []:
        _number(seed, "seeds", integer=True)
    if request.resources.address is not None and request.resources.num_cpus is not None:
        raise ConfigError("--num-cpus sizes a local Ray instance; a cluster (--address) has its own")
    for key in ("checkpoint_dir", "checkpoint"):
        if key in request.options:
            raise ConfigError(f"--{key} is set per trial by the sweep; choose the sweep folder with --out")
    for key in ("model", "dataset"):
        if key in request.options:
            raise ConfigError(f"--{key} is a sweep option; give it once")


def _set_by_sweep(request: SweepRequest) -> dict[str, str]:
    """Trial options the sweep sets, and by which of its options (one value per trial)."""
    set_by: dict[str, str] = {}
    for axis, given, keys in (
        ("scales", request.scales, ("scale", "n_layers", "d_model")),
        ("sizes", request.sizes, ("n_layers", "d_model", "n_heads")),
        ("depths", request.depths, ("n_layers",)),
        ("shapes", request.shapes, ("scale", "n_layers", "d_model", "n_heads")),
        ("seeds", request.seeds, ("seed",)),
        ("ablation", request.ablations, ("layer_dropout", "optimizer_switch")),
    ):
        if given:
            # a fixed n_layers or d_model would collapse the scales into one size
            set_by.update({key: f"--{axis}" for key in keys if key not in set_by})
    return set_by


def build_plan(request: SweepRequest) -> SweepPlan:
    """The trials of a request, each config built (and so checked) once, before any trial runs."""
    _check_request(request)
    model, dataset = request.model, request.dataset
    model_class = get_model_class(model)
    config_files = [os.path.abspath(f) for f in request.config_files]
    for path in config_files:
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")
    sizes = _size_axis(request, model_class)
    options = dict(request.options)
    set_by = _set_by_sweep(request)
    clash = [key for key in set_by if key in options]
    if clash:
        raise ConfigError(f"--{clash[0]} is set by the sweep ({set_by[clash[0]]}); remove it")
    if request.ablations and "layer_dropout" not in model_defaults(model):
        raise ConfigError(f"--ablation varies layer_dropout and optimizer_switch; {model} has no layer_dropout")
    seeds = request.seeds if request.seeds else [options.pop("seed", DEFAULT_SEED)]
    if not isinstance(seeds[0], int) or isinstance(seeds[0], bool):
        raise ConfigError(f"--seed must be a whole number, got {seeds[0]!r}")
    check_keys({**options, **{k: None for s in sizes for k in s.options}}, model, dataset, config_files)
    unknown = sorted(set(request.predict) - {s.label for s in sizes})
    if unknown:
        raise ConfigError(f"--predict: {', '.join(unknown)} not among the sizes of this sweep "
                          f"({', '.join(s.label for s in sizes)})")

    out = Path(request.out or Path("saved") / "sweeps" / f"{dataset}-{model}").resolve()
    checked_data: set[str] = set()
    trials = []
    for size in sizes:
        for fraction in request.fractions:
            name = subset_dataset(dataset, fraction)
            for seed in seeds:
                key = f"{size.label}-f{round(100 * fraction)}-s{seed}"
                base = {**size.options, "seed": seed,
                        "show_progress": False,  # no progress bars in trial logs; --show_progress=True overrides
                        **options}
                try:
                    config = LSRMConfig(model_class, name, config_files, base)
                except ConfigError as err:
                    raise ConfigError(f"trial {key}: {err}") from None
                if name not in checked_data:
                    _check_data(config, dataset, fraction)
                    checked_data.add(name)
                # Ray runs a trial in its own working directory: every path is made absolute here.
                data_path = os.path.dirname(config["data_path"])
                for ablation in request.ablations or [None]:
                    trial_key = key + (f"-{ablation}" if ablation else "")
                    trials.append(TrialSpec(
                        key=trial_key, size=size.label, model=model, dataset=name, base_dataset=dataset,
                        fraction=fraction, seed=seed,
                        options={**base, **(ablation_options(ablation, config["layer_dropout"]) if ablation else {}),
                                 "data_path": data_path, "checkpoint_dir": str(out / "trials" / trial_key)},
                        config_files=config_files, shape_group=",".join(size.groups) or None,
                        reference_shape=size.reference, ablation=ablation,
                        # a Table III variant changes neither the epochs nor N
                        planned_epochs=int(config["epochs"]), planned_N=papers_non_embedding_params(model_class, config),
                    ))
    return SweepPlan(request=request, out=out, trials=trials)


def _check_data(config, dataset: str, fraction: float) -> None:
    """The atomic files of one dataset the sweep reads, checked before any trial starts; a
    missing subset is named with the command that writes it."""
    name = config["dataset"]
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
