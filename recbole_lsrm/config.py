"""The one way configuration flows: property YAML files -> :class:`LSRMConfig` -> objects.

Priority, lowest first (RecBole's order, with the plugin's files in the internal layer):

1. RecBole's own property files (``overall.yaml``, its model and dataset files);
2. the plugin's ``properties/overall.yaml``, ``properties/model/<model>.yaml``,
   ``properties/dataset/<dataset>.yaml``, with ``recipe``, ``properties/recipe/<model>/<recipe>.yaml``
   and, with ``scale``, ``properties/scale/<scale>.yaml``;
3. the user's ``config_files``;
4. the options given as a dict (the command line's ``--key=value``, already parsed as YAML).

Unlike RecBole's Config, :class:`LSRMConfig` never reads ``sys.argv`` and never calls
``eval``; it does not set ``CUDA_VISIBLE_DEVICES``; and it turns ``data_path`` and
``checkpoint_dir`` into absolute paths so runs do not depend on the working directory.
"""

from __future__ import annotations

import difflib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

from recbole_lsrm import compat, distributed, precision
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.options import (
    check_config, check_options, fixed_keys, resolve_behaviors, resolve_feature_columns, resolve_objective,
    resolve_task_settings, resolve_threshold,
)

compat.numpy_aliases()
import recbole  # noqa: E402
from recbole.config import Config  # noqa: E402  (needs the numpy aliases on numpy 2)
from recbole.utils import argument_list  # noqa: E402


PACKAGE_DIR = Path(__file__).resolve().parent


def find_properties_dir() -> Path:
    """The plugin's property files: ``recbole_lsrm/properties`` in an installed wheel, the
    top-level ``properties/`` in a source tree or an editable install (the same files)."""
    candidates = (PACKAGE_DIR / "properties", PACKAGE_DIR.parent / "properties")
    for candidate in candidates:
        if (candidate / "overall.yaml").is_file():
            return candidate
    raise ConfigError(
        "the plugin's property files are missing (looked for overall.yaml in "
        + " and ".join(str(c) for c in candidates)
        + "): reinstall recbole_lsrm (pip install .) or run from its source tree"
    )


PROPERTIES_DIR = find_properties_dir()
RECBOLE_PROPERTIES_DIR = Path(recbole.__file__).resolve().parent / "properties"

# What a run trains when the command line names nothing (ml-100k ships inside RecBole).
DEFAULT_MODEL = "LSRM"
DEFAULT_DATASET = "ml-100k"

# RecBole's sequential rankers (labels, BCE): objective: ranking evaluates them as the plugin's rankers.
RECBOLE_RANKERS = ("DIN", "DIEN")


def recbole_ranker_negatives(model: str, neg_ratio: float) -> dict:
    """RecBole's ``train_neg_sample_args`` for its rankers under ``objective: ranking``: ``neg_ratio``
    uniform negatives per interaction, as the plugin's rankers train (RecBole draws whole numbers)."""
    if neg_ratio != int(neg_ratio):
        raise ConfigError(f"{model} samples a whole number of negatives per interaction: neg_ratio: {neg_ratio:g} "
                          "cannot be drawn; set neg_ratio to 1, 2, ... (or train_neg_sample_args)")
    return {"distribution": "uniform", "sample_num": int(neg_ratio)}

# Options of the command line itself, not RecBole config keys.
RUN_OPTIONS = ("model", "dataset", "config_files", "scale", "recipe", "checkpoint")
# --recipe=plugin: the model's own property file, nothing more.
DEFAULT_RECIPE = "plugin"


class YamlLoader(yaml.SafeLoader):
    """YAML's safe loader, reading ``1e-3`` as a number the way RecBole's loader does."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_value(text: str):
    """A command-line value as a YAML literal (never eval): '0.1' -> 0.1, '[1, 2]' -> [1, 2]."""
    try:
        return yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"cannot parse value {text!r}: {err}") from err


def read_yaml(path: Path) -> dict:
    """Read a YAML mapping with a clear error for a missing or malformed file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err}") from err
    try:
        data = yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value lines")
    return data


# The seed of overall.yaml (RecBole's), for everything seeded outside a config too.
DEFAULT_SEED: int = read_yaml(PROPERTIES_DIR / "overall.yaml")["seed"]
# The run options a resumed run cannot change, besides the keys tagged "fixed on resume".
FIXED_RUN_OPTIONS = ("scale", "recipe")


def fixed_on_resume() -> tuple[str, ...]:
    """Settings a checkpoint carries on with as they were: its RNG states, its model's shape, its
    windows and batches (the schedule counts steps per epoch), its optimizer's kind and its data.
    Marked in the property files' tags (``# (int, fixed on resume) ...``)."""
    return FIXED_RUN_OPTIONS + tuple(sorted(fixed_keys(PROPERTIES_DIR)))


@lru_cache(maxsize=None)
def plugin_defaults(model: str) -> dict[str, Any]:
    """The plugin's defaults for ``model``: ``properties/overall.yaml`` and then its own
    ``properties/model/<model>.yaml``. The one source of a default: code that meets a config
    without a key (one written before the key existed, or a dict built by hand) reads it here."""
    values = dict(read_yaml(PROPERTIES_DIR / "overall.yaml"))
    path = PROPERTIES_DIR / "model" / f"{model}.yaml"
    if path.is_file():
        values.update(read_yaml(path))
    return values


def model_defaults(model: str) -> dict[str, Any]:
    """The keys of the model's own property file (the plugin's, else RecBole's)."""
    for folder in (PROPERTIES_DIR, RECBOLE_PROPERTIES_DIR):
        path = folder / "model" / f"{model}.yaml"
        if path.is_file():
            return read_yaml(path)
    return {}


def available_scales() -> list[str]:
    """Scale presets shipped in ``properties/scale`` (l2 ... l48), smallest first."""
    names = [p.stem for p in PROPERTIES_DIR.glob("scale/*.yaml")]
    return sorted(names, key=lambda n: int(n[1:]) if n[1:].isdigit() else 10**9)


def scale_file(scale: str) -> Path:
    path = PROPERTIES_DIR / "scale" / f"{scale}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown scale '{scale}': choose one of {', '.join(available_scales())}")
    return path


def available_recipes(model: str) -> list[str]:
    """Training recipes of a model: plugin (its own property file) and ``properties/recipe/<model>/*.yaml``."""
    return [DEFAULT_RECIPE] + sorted(p.stem for p in PROPERTIES_DIR.glob(f"recipe/{model}/*.yaml"))


def recipe_file(model: str, recipe: str) -> Path | None:
    """The preset of ``--recipe`` for ``model`` (None for the plugin recipe)."""
    if recipe == DEFAULT_RECIPE:
        return None
    path = PROPERTIES_DIR / "recipe" / model / f"{recipe}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown recipe '{recipe}' for {model}: choose one of {', '.join(available_recipes(model))}")
    return path


def dataset_property_file(dataset: str) -> Path:
    """``properties/dataset/<dataset>.yaml``; a data-size subset ``<base>-<percent>`` (written
    by ``prepare --fraction``) falls back to its base dataset's file."""
    exact = PROPERTIES_DIR / "dataset" / f"{dataset}.yaml"
    base, sep, percent = dataset.rpartition("-")
    fallback = PROPERTIES_DIR / "dataset" / f"{base}.yaml"
    if not exact.is_file() and sep and percent.isdigit() and fallback.is_file():
        return fallback
    return exact


def _plugin_property_files(model: str, dataset: str, scale: str | None, recipe: str | None = None) -> list[Path]:
    files = [
        PROPERTIES_DIR / "overall.yaml",
        PROPERTIES_DIR / "model" / f"{model}.yaml",
        dataset_property_file(dataset),
    ]
    preset = recipe_file(model, recipe) if recipe is not None else None
    if preset is not None:
        files.append(preset)
    if scale is not None:
        files.append(scale_file(scale))
    return [f for f in files if f.is_file()]


def known_keys(model: str, dataset: str) -> set[str]:
    """Every key some property file or RecBole's argument lists define for this run."""
    keys = set(RUN_OPTIONS)
    for names in (
        argument_list.general_arguments,
        argument_list.training_arguments,
        argument_list.evaluation_arguments,
        argument_list.dataset_arguments,
    ):
        keys.update(names)
    # RecBole reads these without listing them anywhere.
    keys.update({"nproc", "world_size", "offset", "ip", "port", "local_rank", "encoding"})
    candidates = list(RECBOLE_PROPERTIES_DIR.rglob("*.yaml")) + list(PROPERTIES_DIR.rglob("*.yaml"))
    wanted = {f"{model}.yaml", f"{dataset}.yaml", dataset_property_file(dataset).name, "overall.yaml", "sample.yaml"}
    for path in candidates:
        if (
            path.name in wanted
            or path.parent.name in ("quick_start_config", "scale")
            or (path.parent.parent.name == "recipe" and path.parent.name == model)
        ):
            keys.update(read_yaml(path))
    return keys


def check_keys(options: dict[str, Any], model: str, dataset: str, config_files: Iterable[str] = ()) -> None:
    """Reject options no component reads, on the command line and in config files alike (a typo
    would otherwise be ignored silently)."""
    known = known_keys(model, dataset)
    sources = [(options, "--{key}", "--{close}")] + [
        (read_yaml(Path(path)), f"{{key}} (in {path})", "{close}") for path in config_files
    ]
    for values, where, suggestion in sources:
        for key in values:
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {suggestion.format(close=close[0])}?)" if close else ""
                raise ConfigError(f"unknown option {where.format(key=key)}{hint}")


# A dataset name is a folder and file name under data_path: no path separators, no hidden files.
DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_dataset_name(name: Any, option: str = "--dataset") -> str:
    """``name`` if it is a dataset name (letters, digits, '.', '_', '-', not starting with a dot),
    so that it cannot point outside ``data_path`` or ``checkpoint_dir``."""
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise ConfigError(f"{option}={name!r} is not a dataset name (letters, digits, '.', '_', '-'; "
                          "no path: put the data under --data_path instead)")
    return name


def uses_windows(model_class: type) -> bool:
    """The model's own answer (``all_position_training``, see the model contract): whether it
    trains on all positions of windows (LSRM, HSTU, Llama, RecentItems' data path). RecBole's
    models have none."""
    return bool(getattr(model_class, "all_position_training", False))


def uses_scale_presets(model_class: type) -> bool:
    """The model's own answer (``uses_scale_presets``, see the model contract): whether
    ``--scale`` (Table IV's n_layers, d_model, n_heads) sizes it. RecBole's models have none."""
    return bool(getattr(model_class, "uses_scale_presets", False))


class LSRMConfig(Config):
    """RecBole's Config with the plugin's property files and without its unsafe parts."""

    def __init__(
        self,
        model: type,
        dataset: str,
        config_file_list: list[str] | None = None,
        config_dict: dict[str, Any] | None = None,
    ) -> None:
        check_dataset_name(dataset)
        self.model_class = model
        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except ConfigError:
            raise
        except (ValueError, TypeError, KeyError, NotImplementedError, RuntimeError) as err:
            raise ConfigError(f"invalid configuration: {err}") from err

    # --- RecBole pitfalls -------------------------------------------------------------
    def compatibility_settings(self) -> None:
        compat.numpy_aliases()

    def _load_cmd_line(self) -> dict:
        # The command line is parsed by recbole_lsrm.cli and arrives as config_dict.
        return {}

    def _load_variable_config_dict(self, config_dict: dict | None) -> dict:
        # Values are already typed (YAML-parsed); RecBole would eval() strings here.
        return dict(config_dict or {})

    def _load_config_files(self, file_list: list[str] | None) -> dict:
        merged: dict = {}
        for path in file_list or []:
            merged.update(read_yaml(Path(path)))
        return merged

    def _init_device(self) -> None:
        final = self.final_config_dict
        if "local_rank" in final or final.get("nproc", 1) != 1:
            raise ConfigError(
                "RecBole's own multi-process options (nproc, local_rank) are not used: start K processes "
                "with torchrun --nproc_per_node=K run_recbole_lsrm.py ..."
            )
        group = distributed.from_env()
        final["process_group"] = group
        final["world_size"] = group.world_size
        final["local_rank"] = group.rank  # RecBole logs dataset statistics where this is 0
        # The plugin splits batches itself; RecBole's DistributedSampler path stays off.
        final["single_spec"] = True
        final["device"] = distributed.device_for(group, bool(final.get("use_gpu", True)))
        # bf16 or fp32, decided once for this device (recbole_lsrm.precision), with its reason.
        final["precision"] = precision.resolve(final["bf16"], final["device"])

    # --- the plugin's property files --------------------------------------------------
    def _load_internal_config_dict(self, model: str, model_class: type, dataset: str) -> None:
        super()._load_internal_config_dict(model, model_class, dataset)
        scale = self.external_config_dict.get("scale")
        if scale is not None and not uses_scale_presets(model_class):
            raise ConfigError(
                f"--scale sets n_layers/d_model/n_heads of the plugin's transformer models; "
                f"{model} has its own size options (see its property file)"
            )
        recipe = self.external_config_dict.get("recipe")
        if recipe is not None and not isinstance(recipe, str):
            raise ConfigError(f"recipe must be a name ({', '.join(available_recipes(model))}), got {recipe!r}")
        for path in _plugin_property_files(model, dataset, scale, recipe):
            values = read_yaml(path)
            self.internal_config_dict.update(values)
            if path.parent.name == "dataset":
                self.parameters["Dataset"] += [k for k in values if k not in self.parameters["Dataset"]]

    def _set_default_parameters(self) -> None:
        # The user's values first, on their own: RecBole reads some of them below.
        check_options(self.external_config_dict, PROPERTIES_DIR)
        final = self.final_config_dict
        # A ranker's metrics (AUC, LogLoss) are RecBole's value metrics, which RecBole refuses with
        # full-sort evaluation: its own checks see a ranking metric, the plugin evaluates rankers itself.
        metrics = final.get("metrics")
        ranker = final.get("objective") == "ranking"
        if ranker and self.model in RECBOLE_RANKERS and "train_neg_sample_args" not in self.external_config_dict:
            final["train_neg_sample_args"] = recbole_ranker_negatives(self.model, final["neg_ratio"])
        if not ranker and "metrics" in self.external_config_dict and getattr(self.model_class, "feature_inputs", False):
            resolve_objective({**final, "objective": "retrieval"}, self.external_config_dict)
        if ranker:
            final["metrics"] = ["Hit"]
        super()._set_default_parameters()
        if ranker:
            final["metrics"] = metrics
        resolve_task_settings(final)
        resolve_feature_columns(final)
        resolve_behaviors(final)
        resolve_threshold(final)
        ranker = self.model in RECBOLE_RANKERS  # RecBole's own rankers, trained on labels
        if getattr(self.model_class, "feature_inputs", False) or (ranker and final["objective"] == "ranking"):
            resolve_objective(final, self.external_config_dict)  # RecBole's rankers (DIN) too, when asked
        # The data path's behaviour split and given test rows need windows (the all-position
        # models, RecentItems); side information and behaviours as input need a model that reads them.
        refused = () if uses_windows(self.model_class) else (("behavior_field", None), ("test_inter", False))
        if not getattr(self.model_class, "feature_inputs", False):
            refused += (("feature_fusion", "none"), ("behavior_mode", "none"), ("domain_embedding", False)) + (
                (("objective", "retrieval"),) if not ranker else ())
        for key, off in refused:
            if (final[key] or off) != off:
                raise ConfigError(f"{key}: {final[key]} feeds side information or behaviours to the plugin's "
                                  f"attention models (LSRM, HSTU, Llama); {self.model} reads item ids only")
        check_config(final, self.model, PROPERTIES_DIR)
        final["data_path"] = os.path.abspath(final["data_path"])
        final["checkpoint_dir"] = os.path.abspath(final["checkpoint_dir"])
