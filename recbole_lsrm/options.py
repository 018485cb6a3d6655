"""The options' schema: the ``# (type)`` tags of the plugin's property files, checked once.

Every key in ``properties/`` carries a comment ``# (type) meaning``; the type is read from
there (one source, next to the default), so ``--epochs=abc`` or ``--learning_rate=[1, 2]`` is
refused with the key, the expected type and the value before anything is built. ``~`` is
accepted where some property file's default is ``~`` or its comment says what ``~`` means.
:data:`RANGES` adds the bounds that a type alone cannot say (a learning rate must be positive).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from recbole_lsrm.errors import ConfigError

_TAG = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(.*?)#\s*\(([^)]*)\)(.*)$")

# type-tag words -> a check and the words of the error message
_KINDS = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "dict": (lambda v: isinstance(v, dict), "a mapping"),
    "{start, end}": (lambda v: isinstance(v, dict), "a {start, end} pair"),
}

# (low, high, low inclusive): bounds that the type tag cannot say.
POSITIVE, NON_NEGATIVE, FRACTION = (0, math.inf, False), (0, math.inf, True), (0, 1, True)
RANGES: dict[str, tuple[float, float, bool]] = {
    **{key: POSITIVE for key in (
        "epochs", "n_layers", "d_model", "n_heads", "hidden_size", "inner_size", "train_batch_size",
        "eval_batch_size", "MAX_ITEM_LIST_LENGTH", "learning_rate", "sgd_lr", "stopping_step",
        "switch_patience", "num_time_buckets", "gradient_accumulation_steps", "robustness_draws", "layer_norm_eps", "initializer_range",
    )},
    **{key: NON_NEGATIVE for key in ("warmup_steps", "dropout_schedule_epochs", "weight_decay")},
    **{key: FRACTION for key in ("min_lr_ratio", "sgd_momentum", "hidden_dropout_prob")},
}


def _kinds_of(tag: str) -> list[str]:
    words = [w.strip() for w in re.split(r",|\bor\b", tag) if w.strip()]
    return [w for w in words if w in _KINDS]


@lru_cache(maxsize=None)
def schema(properties_dir: Path) -> dict[str, tuple[frozenset[str], bool]]:
    """key -> (allowed kinds, ``~`` allowed), from every property file under ``properties_dir``."""
    found: dict[str, tuple[set[str], bool]] = {}
    for path in sorted(Path(properties_dir).rglob("*.yaml")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = _TAG.match(line)
            if not match:
                continue
            key, default, tag, meaning = match.group(1), match.group(2).strip(), match.group(3), match.group(4)
            kinds = _kinds_of(tag)
            if not kinds:
                continue
            known, nullable = found.get(key, (set(), False))
            found[key] = (known | set(kinds), nullable or default in ("~", "null") or "~" in meaning)
    return {key: (frozenset(kinds), nullable) for key, (kinds, nullable) in found.items()}


def _expected(kinds: frozenset[str], nullable: bool) -> str:
    words = sorted({_KINDS[k][1] for k in kinds})
    return " or ".join(words + (["~"] if nullable else []))


def check_option(key: str, value: Any, properties_dir: Path) -> None:
    """Raise :class:`ConfigError` naming ``key`` when ``value`` has the wrong type or range."""
    entry = schema(properties_dir).get(key)
    if entry is not None:
        kinds, nullable = entry
        if value is None:
            if not nullable:
                raise ConfigError(f"{key} must be {_expected(kinds, nullable)}, got ~ (no value)")
            return
        if not any(_KINDS[k][0](value) for k in kinds):
            raise ConfigError(f"{key} must be {_expected(kinds, nullable)}, got {value!r}")
    bounds = RANGES.get(key)
    if bounds is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high, low_inclusive = bounds
        too_low = value < low if low_inclusive else value <= low
        if too_low or value >= high or math.isnan(value):
            if bounds is POSITIVE:
                want = "positive"
            elif bounds is NON_NEGATIVE:
                want = "zero or more"
            else:
                want = f"in [{low}, {high})"
            raise ConfigError(f"{key} must be {want}, got {value!r}")


def check_options(values: Mapping[str, Any], properties_dir: Path) -> None:
    """Check every value whose key the schema or :data:`RANGES` knows."""
    for key, value in values.items():
        check_option(key, value, properties_dir)
