"""The option schema (recbole_lsrm/options.py): every value is checked once, when the config is
built, with an error naming the key, what it must be and what it got; every shipped property
file, recipe and scale preset passes it."""

from __future__ import annotations

import pytest

from recbole_lsrm.model import get_model_class
from recbole_lsrm.config import LSRMConfig, available_recipes, available_scales
from recbole_lsrm.errors import ConfigError


def build(model: str, **options):
    return LSRMConfig(get_model_class(model), "ml-100k", None, options)


def refusal(model: str, **options) -> str:
    with pytest.raises(ConfigError) as caught:
        build(model, **options)
    return str(caught.value)


@pytest.mark.parametrize(
    "model, options, message",
    [
        # types, read from the property files' "# (type)" tags
        ("HSTU", {"gating": "yes"}, "gating must be true or false, got 'yes'"),
        ("LSRM", {"compile": "yes"}, "compile must be true or false, got 'yes'"),
        ("LSRM", {"windows_on_device": "gpu"}, "windows_on_device must be true or false or ~, got 'gpu'"),
        ("LSRM", {"epochs": "many"}, "epochs must be an integer, got 'many'"),
        # ranges
        ("HSTU", {"num_time_buckets": 0}, "num_time_buckets must be positive, got 0"),
        ("FMLPRec", {"inner_size": 0}, "inner_size must be positive, got 0"),
        ("FMLPRec", {"hidden_dropout_prob": 1.0}, r"hidden_dropout_prob must be in \[0, 1\), got 1.0"),
        ("LSRM", {"sgd_lr": 0}, "sgd_lr must be positive, got 0"),
        ("LSRM", {"sgd_momentum": 1.0}, r"sgd_momentum must be in \[0, 1\), got 1.0"),
        ("LSRM", {"switch_patience": 0}, "switch_patience must be positive"),
        ("LSRM", {"epochs": 0}, "epochs must be positive"),
        ("LSRM", {"temperature": 0.0}, "temperature must be positive"),
        ("LSRM", {"cold_start_users": 1.0}, r"cold_start_users must be in \[0, 1\)"),
        ("LSRM", {"trajectory_holdout": -1}, "trajectory_holdout must be zero or more"),
        ("LSRM", {"eval_item_chunk": 0}, "eval_item_chunk must be positive"),
        # choices
        ("HSTU", {"attn_activation": "relu"}, "attn_activation must be one of silu, softmax, got 'relu'"),
        ("HSTU", {"rab": "time"}, "rab must be one of none, position, position_time, rope, got 'time'"),
        ("HSTU", {"time_query": "now"}, "time_query must be one of input, target"),
        ("LSRM", {"similarity": "euclid"}, "similarity must be one of dot, cosine, got 'euclid'"),
        ("LSRM", {"dropout_schedule": "sometimes"}, "dropout_schedule must be one of constant, early, late"),
        ("LSRM", {"window_loss": "some"}, "window_loss must be one of all, new, got 'some'"),
        ("LSRM", {"learner": "sgd"}, "learner must be one of adam, adamw, got 'sgd'"),
        ("FMLPRec", {"hidden_act": "silu"}, "hidden_act must be one of gelu, relu, swish, tanh, sigmoid"),
        # rules across keys
        ("LSRM", {"d_model": 30, "n_heads": 4}, "d_model=30 must be divisible by n_heads=4"),
        ("HSTU", {"n_heads": 3}, "d_model=64 must be divisible by n_heads=3"),
        ("LSRM", {"n_layers": 4, "layer_dropout": [0.1, 0.2, 0.3]}, "3 rates but the model has n_layers=4"),
        ("LSRM", {"layer_dropout": 1.5}, r"layer_dropout must be a number in \[0, 1\)"),
        ("LSRM", {"layer_dropout": {"begin": 0.1}}, "start and end"),
        ("LSRM", {"window_stride": 80}, r"window_stride must be an integer in \[1, MAX_ITEM_LIST_LENGTH=50\]"),
        ("LSRM", {"adam_betas": [0.9]}, "adam_betas must be two numbers in"),
        ("LSRM", {"epochs": 10, "switch_epoch": 10}, "switch_epoch=10 leaves no SGD epoch within epochs=10"),
        ("LSRM", {"valid_metric": "Recall@10"}, "valid_metric Recall@10 is not computed"),
        ("LSRM", {"valid_metric": "NDCG@20"}, "valid_metric NDCG@20 is not computed"),
        # the tasks' settings, resolved inside the config
        ("LSRM", {"tasks": "coldstart", "cold_start_users": 0.0}, "the coldstart task needs users held out"),
        ("LSRM", {"tasks": "sideways"}, "unknown task"),
    ],
)
def test_a_bad_value_is_refused_when_the_config_is_built(model, options, message):
    assert __import__("re").search(message, refusal(model, **options))


def test_every_shipped_preset_passes_the_schema():
    for model in ("LSRM", "HSTU", "FMLPRec"):
        for recipe in available_recipes(model):
            build(model, recipe=recipe)
    for scale in available_scales():
        build("LSRM", scale=scale)
        build("HSTU", scale=scale)


def test_what_belongs_to_one_model_does_not_bind_the_others():
    assert build("SASRec", hidden_act="swish")["hidden_act"] == "swish"  # FMLP-Rec's choices only
    assert build("LSRM", learner="AdamW")["learner"] == "AdamW"  # RecBole compares learners without case


def test_task_settings_are_resolved_in_the_config():
    assert (build("LSRM")["cold_start_users"], build("LSRM")["trajectory_holdout"]) == (0.0, 0)
    both = build("LSRM", tasks="coldstart,trajectory")
    assert (both["cold_start_users"], both["trajectory_holdout"]) == (0.2, 10)
    assert build("LSRM", tasks="trajectory", trajectory_holdout=4)["trajectory_holdout"] == 4


def test_every_property_key_has_a_valid_type_tag():
    """Each key of every property file is typed somewhere (``# (type) meaning``), and every tag
    holds only known words: a typo in a tag would otherwise turn its key's check off."""
    from recbole_lsrm.config import PROPERTIES_DIR, read_yaml
    from recbole_lsrm.options import _KINDS, FIXED_ON_RESUME, tag_of, tag_words

    typed, bad = set(), []
    files = sorted(PROPERTIES_DIR.rglob("*.yaml"))
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = tag_of(line)
            if found is None:
                continue
            key, tag = found
            unknown = [w for w in tag_words(tag) if w not in _KINDS and w != FIXED_ON_RESUME]
            if unknown or not any(w in _KINDS for w in tag_words(tag)):
                bad.append(f"{path.relative_to(PROPERTIES_DIR)}:{number}: ({tag})")
            else:
                typed.add(key)
    assert not bad, "tags with unknown words (known: " + ", ".join(list(_KINDS) + [FIXED_ON_RESUME]) + "):\n" + "\n".join(bad)
    untyped = sorted({f"{p.relative_to(PROPERTIES_DIR)}: {k}" for p in files for k in read_yaml(p) if k not in typed})
    assert not untyped, "keys with no # (type) tag in any property file:\n" + "\n".join(untyped)


def test_a_mistyped_tag_is_found(tmp_path):
    from recbole_lsrm.options import _KINDS, tag_of, tag_words

    key, tag = tag_of("epochs: 3   # (itn) Training epochs.")
    assert key == "epochs" and not any(w in _KINDS for w in tag_words(tag))
