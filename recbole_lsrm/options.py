"""The options' schema, checked once, when :class:`~recbole_lsrm.config.LSRMConfig` is built.

Every value of the final config (the property files, the recipe and scale presets, the user's
files and ``--key=value``) is checked here, so a module that reads an option can trust it:

- types: every key in ``properties/`` carries a comment ``# (type) meaning``; the type is read
  from there (one source, next to the default), so ``--epochs=abc`` or ``--learning_rate=[1, 2]``
  is refused with the key, the expected type and the value. ``~`` is accepted where some
  property file's default is ``~`` or its comment says what ``~`` means;
- :data:`RANGES`: the bounds a type cannot say (a learning rate must be positive);
- :data:`CHOICES`: the names a string option accepts (the one list of them), and
  :data:`MODEL_CHOICES` for one model's own keys;
- :data:`RULES`: what holds across keys (d_model divisible by n_heads, one dropout rate per
  layer, a validation metric that is computed, ...).

What needs the data (a sampled softmax larger than the catalogue, timestamps that a time bias
needs) is checked where the data is read.
"""

from __future__ import annotations

import math
import re
from numbers import Real
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
SEEDS = (0, 2**32, True)  # what numpy's and torch's generators take
RANGES: dict[str, tuple[float, float, bool]] = {
    **{key: POSITIVE for key in (
        "epochs", "n_layers", "d_model", "n_heads", "hidden_size", "inner_size", "train_batch_size",
        "eval_batch_size", "MAX_ITEM_LIST_LENGTH", "learning_rate", "sgd_lr", "stopping_step",
        "switch_patience", "switch_epoch", "num_time_buckets", "gradient_accumulation_steps", "robustness_draws",
        "layer_norm_eps", "initializer_range", "temperature", "window_stride", "ce_chunk_size", "sampled_softmax",
        "eval_item_chunk", "attention_divisor", "cpu_threads", "ffn_dim", "rms_norm_eps", "neg_ratio",
        "eval_neg_ratio",
    )},
    **{key: NON_NEGATIVE for key in ("warmup_steps", "dropout_schedule_epochs", "weight_decay", "trajectory_holdout")},
    **{key: FRACTION for key in ("min_lr_ratio", "sgd_momentum", "hidden_dropout_prob", "cold_start_users")},
    "seed": SEEDS,
}

# The names a string option accepts.
SIMILARITIES = ("dot", "cosine")
NEGATIVE_DRAWS = ("batch", "position")
ATTN_ACTIVATIONS = ("silu", "softmax")
RAB_KINDS = ("none", "position", "position_time", "rope")  # recbole_lsrm.model.relative builds each
TIME_QUERIES = ("input", "target")
LAYER_NORMS = ("affine", "plain")
HSTU_INITS = ("plugin", "reference")
TIME_ORDERS = ("recbole", "exact")
WINDOW_LOSSES = ("all", "new")
TRAIN_WINDOWS = ("all", "last")
ADAM_PHASE_LEARNERS = ("adam", "adamw")
LR_SCHEDULERS = ("constant", "cosine")
DROPOUT_SCHEDULES = ("constant", "early", "late")
FEATURE_FUSIONS = ("none", "mean")
BEHAVIOR_MODES = ("none", "embed", "token")
BEHAVIOR_LOSSES = ("target", "all")
OBJECTIVES = ("retrieval", "ranking")
RANKING_HEADS = ("dot", "mlp", "ffn")
# What a ranking run reports (GAUC: the users' own AUCs, see trainer/ranking.py).
RANKING_METRICS = ("auc", "logloss", "gauc", "heldout_auc")
HIDDEN_ACTIVATIONS = ("gelu", "relu", "swish", "tanh", "sigmoid")  # RecBole's FeedForward
CHOICES: dict[str, tuple[str, ...]] = {
    "similarity": SIMILARITIES, "sampled_negatives": NEGATIVE_DRAWS, "attn_activation": ATTN_ACTIVATIONS,
    "rab": RAB_KINDS, "time_query": TIME_QUERIES, "layer_norm": LAYER_NORMS, "hstu_init": HSTU_INITS,
    "time_order": TIME_ORDERS, "window_loss": WINDOW_LOSSES, "train_windows": TRAIN_WINDOWS,
    "learner": ADAM_PHASE_LEARNERS, "lr_scheduler": LR_SCHEDULERS, "dropout_schedule": DROPOUT_SCHEDULES,
    "feature_fusion": FEATURE_FUSIONS, "behavior_mode": BEHAVIOR_MODES, "behavior_loss": BEHAVIOR_LOSSES, "objective": OBJECTIVES,
    "ranking_head": RANKING_HEADS, "bf16": ("auto",),
}
# Keys whose meaning belongs to one model (RecBole's models read hidden_act too).
MODEL_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {"FMLPRec": {"hidden_act": HIDDEN_ACTIVATIONS}}
# Compared without case, as RecBole does.
CASE_FREE = frozenset({"learner"})


# Words a tag may hold besides the types: a setting a resumed run keeps as it was.
FIXED_ON_RESUME = "fixed on resume"


def tag_words(tag: str) -> list[str]:
    """``float, list or {start, end}`` -> ["float", "list", "{start, end}"] (a {...} is one word)."""
    return [w.strip() for w in re.findall(r"\{[^}]*\}|[^,{]+", tag) for w in re.split(r"\bor\b", w) if w.strip()]


def _kinds_of(tag: str) -> list[str]:
    return [w for w in tag_words(tag) if w in _KINDS]


def tag_of(line: str) -> tuple[str, str] | None:
    """(key, tag) of a property file's ``key: value  # (tag) meaning`` line, else None."""
    match = _TAG.match(line)
    return (match.group(1), match.group(3)) if match else None


@lru_cache(maxsize=None)
def fixed_keys(properties_dir: Path) -> frozenset[str]:
    """The keys some property file under ``properties_dir`` tags ``fixed on resume``."""
    return frozenset(
        key for path in Path(properties_dir).rglob("*.yaml") for line in path.read_text(encoding="utf-8").splitlines()
        for key, tag in [tag_of(line) or ("", "")] if FIXED_ON_RESUME in tag_words(tag)
    )


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


def _expected(kinds: frozenset[str], nullable: bool, names: tuple[str, ...] = ()) -> str:
    """What a key takes, in words; a string that must be one of ``names`` is said as those names."""
    words = sorted({_KINDS[k][1] for k in kinds if not (names and k == "str")})
    return " or ".join(words + [f"one of {', '.join(names)}"] * bool(names) + (["~"] if nullable else []))


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
            raise ConfigError(f"{key} must be {_expected(kinds, nullable, CHOICES.get(key, ()))}, got {value!r}")
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


def setting(config, key: str, default=None):
    """``config[key]``, or ``default`` where it is unset (~) or absent (a config written before the
    key existed). Its value was checked when the config was built."""
    value = config[key] if key in config else None
    return default if value is None else value


def check_choice(key: str, value: Any, allowed: tuple[str, ...], kinds: frozenset[str] = frozenset()) -> None:
    """``value`` must be one of ``allowed``; the message names the key's other ``kinds`` too."""
    given = value.lower() if key in CASE_FREE and isinstance(value, str) else value
    if given not in allowed:
        raise ConfigError(f"{key} must be {_expected(kinds | {'str'}, False, allowed)}, got {value!r}")


def check_options(values: Mapping[str, Any], properties_dir: Path) -> None:
    """Check each value's type, range and choice on its own (no rule across keys).

    A key that takes a name or another type (``bf16``: true, false or auto) is checked
    against its names only when its value is a string."""
    for key, value in values.items():
        check_option(key, value, properties_dir)
        if key in CHOICES and isinstance(value, str):
            check_choice(key, value, CHOICES[key], schema(properties_dir).get(key, (frozenset(),))[0])


# --- layer-wise adaptive dropout (paper III-B1) -------------------------------------------
def _check_rate(rate: Any, what: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, Real) or not 0.0 <= float(rate) < 1.0:
        raise ConfigError(f"{what} must be a number in [0, 1), got {rate!r}")
    return float(rate)


def resolve_layer_dropout(layer_dropout: Any, n_layers: int) -> list[float]:
    """Turn the ``layer_dropout`` option into one rate per layer, bottom layer first."""
    if isinstance(layer_dropout, dict):
        if set(layer_dropout) != {"start", "end"}:
            raise ConfigError(
                f"layer_dropout as a pair needs exactly the keys start and end, got {sorted(layer_dropout)}"
            )
        start = _check_rate(layer_dropout["start"], "layer_dropout.start")
        end = _check_rate(layer_dropout["end"], "layer_dropout.end")
        if n_layers == 1:
            return [start]
        return [start + (end - start) * i / (n_layers - 1) for i in range(n_layers)]
    if isinstance(layer_dropout, (list, tuple)):
        if len(layer_dropout) != n_layers:
            raise ConfigError(
                f"layer_dropout has {len(layer_dropout)} rates but the model has n_layers={n_layers}: "
                "give one rate per layer, a {start: a, end: b} pair, or a single rate"
            )
        return [_check_rate(r, f"layer_dropout[{i}]") for i, r in enumerate(layer_dropout)]
    return [_check_rate(layer_dropout, "layer_dropout")] * n_layers



# --- the challenge tasks' settings (paper V) --------------------------------------------------
# The tasks' names, in the order they run (``tasks: all``); recbole_lsrm.tasks maps each to its module.
TASK_NAMES = ("longtail", "coldstart", "crossdomain", "robustness", "trajectory")
# The data split settings the tasks resolve (stored with a run, fixed when it resumes).
SPLIT_SETTINGS = ("cold_start_users", "trajectory_holdout")
# Metrics every task reads from the run's evaluation.
NEEDED_METRICS = ("hit", "ndcg", "coverage")
# Trajectory prediction generates up to 10 items (TR@1 ... TR@10, paper V-F).
TRAJECTORY_STEPS = 10


def parse_tasks(value: Any) -> tuple[list[str], bool]:
    """``"longtail,coldstart"``, a list, or ``"all"`` -> (task names, whether "all" was asked)."""
    if value in (None, "", []):
        return [], False
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else [str(n) for n in value]
    if names == ["all"]:
        return list(TASK_NAMES), True
    unknown = [n for n in names if n not in TASK_NAMES]
    if unknown:
        raise ConfigError(f"unknown task(s) {', '.join(unknown)}: choose from {', '.join(TASK_NAMES)} or all")
    return names, False


def resolve_task_settings(config: dict) -> list[str]:
    """Check ``tasks`` and settle the data settings they need, while the config is built.

    ``cold_start_users`` and ``trajectory_holdout`` left at ~ become 0.2 and 10 when the
    coldstart and trajectory tasks run (0 otherwise). ``config`` is the final config dict that
    :class:`~recbole_lsrm.config.LSRMConfig` is building; nothing edits a built config.
    """
    names, _ = parse_tasks(config["tasks"])
    if config["cold_start_users"] is None:
        config["cold_start_users"] = 0.2 if "coldstart" in names else 0.0
    if config["trajectory_holdout"] is None:
        config["trajectory_holdout"] = TRAJECTORY_STEPS if "trajectory" in names else 0
    if "coldstart" in names and not config["cold_start_users"]:
        raise ConfigError("the coldstart task needs users held out of training, but cold_start_users is 0 "
                          "(a checkpoint trained on all users cannot be tested on cold-start users)")
    if "trajectory" in names and not config["trajectory_holdout"]:
        raise ConfigError("the trajectory task needs held-out items, but trajectory_holdout is 0 "
                          "(a checkpoint trained on whole sequences cannot be tested on their end)")
    if names:
        metrics = {m.lower() for m in config["metrics"]}
        missing = [m for m in NEEDED_METRICS if m not in metrics]
        if missing or 10 not in config["topk"]:
            raise ConfigError(f"the tasks report Hit, NDCG and Coverage at 10: add {missing or ''} to metrics "
                              f"and 10 to topk (metrics {config['metrics']}, topk {config['topk']})")
    return names



# --- side information (HSTU scaling study, part 3) -------------------------------------------
def resolve_feature_columns(config: dict) -> None:
    """With ``feature_fusion: mean``, load the ``.item`` and ``.user`` columns the features name
    (RecBole loads only what ``load_col`` lists); features without a fusion are refused, as they
    would be read and never used."""
    items, users = list(config["item_features"] or []), list(config["user_features"] or [])
    for key, fields in (("item_features", items), ("user_features", users)):
        twice = sorted({f for f in fields if fields.count(f) > 1})
        if twice:
            raise ConfigError(f"{key} lists {', '.join(map(str, twice))} more than once (each field is one input)")
    fusion = config["feature_fusion"] or "none"
    if fusion == "none":
        if items or users:
            named = "item_features" if items else "user_features"
            raise ConfigError(f"{named} {items or users} are used with feature_fusion: mean (it is none)")
        return
    if not items and not users:
        raise ConfigError(f"feature_fusion: {fusion} needs item_features or user_features to fuse")
    # An item or user missing from its feature file keeps its interactions (its features are padding).
    config["filter_inter_by_user_or_item"] = False
    load_col = dict(config["load_col"] or {})
    for kind, fields, id_field in (("item", items, config["ITEM_ID_FIELD"]), ("user", users, config["USER_ID_FIELD"])):
        if fields:
            load_col[kind] = [id_field, *[f for f in fields if f != id_field]]
    config["load_col"] = load_col


def resolve_behaviors(config: dict) -> None:
    """With ``behavior_field``: a target behaviour among the inputs, the field loaded; without
    it, no behaviour option."""
    field, target = config["behavior_field"], config["target_behavior"]
    inputs, mode = config["input_behaviors"], config["behavior_mode"] or "none"
    if field is None:
        given = [k for k, v in (("target_behavior", target), ("input_behaviors", inputs),
                                ("behavior_order", config["behavior_order"])) if v is not None]
        if mode != "none":
            given.append("behavior_mode")
        if (config["behavior_loss"] or "target") != "target":
            given.append("behavior_loss")
        if given:
            raise ConfigError(f"{', '.join(given)} need behavior_field: the .inter column that names each "
                              "interaction's behaviour")
        return
    if target is None:
        raise ConfigError(f"behavior_field: {field} needs target_behavior: the behaviour predicted (e.g. buy)")
    if inputs is not None and str(target) not in [str(b) for b in inputs]:
        raise ConfigError(f"input_behaviors {inputs} must include the target behaviour {target!r}: its "
                          "interactions are the targets and part of every later history")
    if "trajectory" in parse_tasks(config["tasks"])[0]:
        raise ConfigError("the trajectory task holds out each user's last items of every behaviour; it is not "
                          "defined with target_behavior")
    load_col = dict(config["load_col"] or {})
    columns = list(load_col.get("inter") or [])
    if field not in columns:
        load_col["inter"] = columns + [field]
    config["load_col"] = load_col


def resolve_threshold(config: dict) -> None:
    """``threshold: {rating: 4}`` (RecBole's labels from a rating): the rating column is loaded."""
    threshold = config["threshold"]
    if not threshold:
        return
    if not isinstance(threshold, dict) or len(threshold) != 1:
        raise ConfigError(f"threshold must be one field and its value, e.g. {{rating: 4}}, got {threshold!r}")
    field = next(iter(threshold))
    load_col = dict(config["load_col"] or {})
    columns = list(load_col.get("inter") or [])
    if load_col and field not in columns:
        load_col["inter"] = columns + [field]
        config["load_col"] = load_col


def resolve_objective(config: dict, given: Mapping[str, Any]) -> None:
    """``objective: ranking``: labels (a label column, or ``threshold`` on a rating) loaded, and
    the ranking metrics (AUC, LogLoss; GAUC is always reported) unless ``given`` names others.
    A retrieval metric with ranking, or the reverse, is refused by name."""
    objective = config["objective"] or "retrieval"
    metrics = [str(m).lower() for m in (config["metrics"] or [])]
    if objective != "ranking":
        if "metrics" in given and set(metrics) & set(RANKING_METRICS):
            raise ConfigError(f"metrics {config['metrics']} score rankers (AUC, LogLoss): set objective: ranking, or use "
                              "Hit, NDCG, Coverage, CELoss")
        for key in ("ranking_head", "neg_ratio", "eval_neg_ratio"):
            if key in given and given[key] is not None:
                raise ConfigError(f"{key} is an option of objective: ranking (this run retrieves items, objective: "
                                  f"{objective}): set objective: ranking, or leave {key} out")
        return
    label, threshold = config["LABEL_FIELD"], config["threshold"]
    if not threshold and label not in list((config["load_col"] or {}).get("inter") or []):
        raise ConfigError(f"objective: ranking needs labels: a '{label}' column (load_col inter: [..., {label}]) or "
                          "threshold: {rating: 4} (a rating of 4 or more is 1, else 0)")
    if "metrics" not in given:
        config["metrics"] = ["AUC", "LogLoss"]
    elif set(metrics) - set(RANKING_METRICS):
        raise ConfigError(f"metrics {config['metrics']} rank items; objective: ranking reports AUC and LogLoss (and GAUC)")
    if "valid_metric" not in given:
        config["valid_metric"] = "AUC"
    if str(config["valid_metric"]).lower() not in RANKING_METRICS:
        raise ConfigError(f"valid_metric {config['valid_metric']} is not a ranking metric (AUC, LogLoss, GAUC)")
    config["valid_metric_bigger"] = str(config["valid_metric"]).lower() != "logloss"


# --- rules across keys -----------------------------------------------------------------------
def _heads_divide_width(config: Mapping[str, Any]) -> None:
    if "d_model" in config and "n_heads" in config and config["d_model"] % config["n_heads"]:
        raise ConfigError(f"d_model={config['d_model']} must be divisible by n_heads={config['n_heads']}")


def _one_dropout_rate_per_layer(config: Mapping[str, Any]) -> None:
    if "layer_dropout" in config and "n_layers" in config:
        resolve_layer_dropout(config["layer_dropout"], config["n_layers"])


def _window_within_the_input(config: Mapping[str, Any]) -> None:
    stride, length = config.get("window_stride"), config.get("MAX_ITEM_LIST_LENGTH")
    if stride is not None and length is not None and stride > length:
        raise ConfigError(f"window_stride must be an integer in [1, MAX_ITEM_LIST_LENGTH={length}], got {stride!r}")


def _two_adam_betas(config: Mapping[str, Any]) -> None:
    betas = config.get("adam_betas")
    if betas is not None and (
        not isinstance(betas, list) or len(betas) != 2
        or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
    ):
        raise ConfigError(f"adam_betas must be two numbers in [0, 1), got {betas!r}")


def _an_sgd_epoch_after_the_switch(config: Mapping[str, Any]) -> None:
    at, epochs = config.get("switch_epoch"), config.get("epochs")
    if at is not None and epochs is not None and at >= epochs:
        raise ConfigError(f"switch_epoch={at} leaves no SGD epoch within epochs={epochs}")


def _valid_metric_is_computed(config: Mapping[str, Any]) -> None:
    metric, metrics, topk = config.get("valid_metric"), config.get("metrics"), config.get("topk")
    if not isinstance(metric, str) or metrics is None or topk is None:
        return
    name, _, k = metric.lower().partition("@")
    if config.get("objective") == "ranking" and name in ("gauc", "heldout_auc"):  # always reported by a ranker
        return
    if name not in [m.lower() for m in metrics] or (k and (not k.isdigit() or int(k) not in topk)):
        raise ConfigError(f"valid_metric {metric} is not computed: metrics are {metrics} with topk {topk}")


def _rope_turns_pairs(config: Mapping[str, Any]) -> None:
    d, heads = config.get("d_model"), config.get("n_heads")
    if config.get("rab") == "rope" and isinstance(d, int) and isinstance(heads, int) and heads and (d // heads) % 2:
        raise ConfigError(f"rab: rope turns pairs of a head's features, so the head width d_model / n_heads must be "
                          f"even, got {d} / {heads} = {d // heads}")


def _time_bias_has_times(config: Mapping[str, Any]) -> None:
    columns = (config.get("load_col") or {}).get("inter") if isinstance(config.get("load_col"), dict) else None
    time_field = config.get("TIME_FIELD")
    if config.get("rab") == "position_time" and columns is not None and time_field not in columns:
        raise ConfigError(f"rab: position_time needs the timestamps, but load_col inter {columns} leaves out "
                          f"{time_field!r}: add it, or choose rab: position or rope")


RULES = (
    _heads_divide_width, _one_dropout_rate_per_layer, _window_within_the_input, _two_adam_betas,
    _an_sgd_epoch_after_the_switch, _valid_metric_is_computed, _rope_turns_pairs, _time_bias_has_times,
)


def check_config(config: Mapping[str, Any], model: str, properties_dir: Path) -> None:
    """Check a final config: every value on its own, then :data:`RULES` across keys."""
    check_options(config, properties_dir)
    for key, allowed in MODEL_CHOICES.get(model, {}).items():
        if key in config:
            check_choice(key, config[key], allowed)
    for rule in RULES:
        rule(config)
