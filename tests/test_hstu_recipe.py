"""--recipe: the HSTU reference preset end to end, its options, and its clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recbole_lsrm.cli import main
from recbole_lsrm.model import get_model_class
from recbole_lsrm.config import LSRMConfig
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.pipeline import run
from recbole_lsrm.trainer import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

# The reference recipe, made small: a 10-item window (padded width 10 + 11), d = 16.
SMALL_REFERENCE = {
    "recipe": "reference", "MAX_ITEM_LIST_LENGTH": 10, "attention_divisor": 21, "d_model": 16, "n_heads": 2,
    "sampled_softmax": 8, "train_batch_size": 16, "epochs": 2, "show_progress": False, "state": "WARNING",
}


def test_recipe_file_sets_the_reference_and_every_key_can_be_overridden(tiny_dataset):
    config = LSRMConfig(get_model_class("HSTU"), "cyclic", [], {**tiny_dataset, "recipe": "reference", "temperature": 0.1})
    assert config["temperature"] == 0.1  # given: wins over the preset
    assert (config["similarity"], config["time_query"], config["sampled_negatives"]) == ("cosine", "target", "position")
    assert (config["d_model"], config["n_layers"], config["adam_betas"]) == (50, 2, [0.9, 0.98])
    assert config["eval_args"]["split"] == {"LS": "test_only"} and config["train_windows"] == "last"
    assert config["time_order"] == "exact"
    plugin = LSRMConfig(get_model_class("HSTU"), "cyclic", [], {**tiny_dataset, "recipe": "plugin"})
    default = LSRMConfig(get_model_class("HSTU"), "cyclic", [], dict(tiny_dataset))
    for key in ("similarity", "time_query", "d_model", "learning_rate", "eval_args", "train_windows", "adam_betas", "time_order"):
        assert plugin[key] == default[key], key


def test_reference_recipe_trains_tests_and_runs_every_task(tmp_path):
    _two_domain_files(tmp_path / "data" / "twodom")
    options = {
        **SMALL_REFERENCE, "data_path": str(tmp_path / "data"), "checkpoint_dir": str(tmp_path / "saved"),
        "topk": [5, 10], "tasks": "all", "trajectory_holdout": 3,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "domain"]},
    }
    summary = run("HSTU", "twodom", options=options)
    assert summary["recipe"] == "reference"
    assert summary["best_valid"] is None and summary["epochs_run"] == 2  # no validation item: all epochs
    assert summary["best_epoch"] == 1  # the last weights are tested
    assert summary["train_rows"] == 32  # one window per training user (40, 20% held out cold)
    state = checkpoint.load(Path(summary["checkpoint"]))
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.98)
    assert state["optimizer"]["param_groups"][0]["weight_decay"] == 0.0
    assert 0 < summary["test"]["celoss"] < 20
    tasks = json.loads(Path(summary["tasks_file"]).read_text())
    assert set(tasks) == {"longtail", "coldstart", "crossdomain", "robustness", "trajectory"}


def test_chunked_ranking_matches_the_score_matrix_with_cosine_scores(tiny_dataset, monkeypatch):
    """Ranking in item chunks gives the metrics and CE of the model's own scores (cosine / 0.05)."""
    from recbole_lsrm.trainer.evaluation import FullSortEvaluation

    options = {**SMALL_REFERENCE, **tiny_dataset, "epochs": 1, "eval_item_chunk": 7}
    chunked = run("HSTU", "cyclic", options=options)
    monkeypatch.setattr(FullSortEvaluation, "_ranks_in_chunks", lambda self, batch: False)
    matrix = run("HSTU", "cyclic", options=options)
    for key, value in matrix["test"].items():
        assert chunked["test"][key] == pytest.approx(value, abs=2e-4), key


def test_optimizer_switch_needs_a_validation_item_or_a_switch_epoch(tiny_dataset):
    options = {**SMALL_REFERENCE, **tiny_dataset, "optimizer_switch": True}
    with pytest.raises(ConfigError, match="no validation item"):
        run("HSTU", "cyclic", options=options)


def test_unknown_recipe_and_recipe_of_another_model(capsys, tiny_dataset):
    assert main(["--model=HSTU", "--recipe=paper", f"--data_path={tiny_dataset['data_path']}", "--dataset=cyclic"]) == 2
    assert "unknown recipe 'paper' for HSTU: choose one of plugin, reference" in capsys.readouterr().err
    assert main(["--model=LSRM", "--recipe=reference", f"--data_path={tiny_dataset['data_path']}", "--dataset=cyclic"]) == 2
    assert "unknown recipe 'reference' for LSRM: choose one of plugin" in capsys.readouterr().err


def test_bad_adam_betas_and_similarity_are_named(tiny_dataset):
    with pytest.raises(ConfigError, match="adam_betas must be two numbers"):
        run("HSTU", "cyclic", options={**SMALL_REFERENCE, **tiny_dataset, "adam_betas": [0.9]})
    with pytest.raises(ConfigError, match="similarity must be one of dot, cosine"):
        run("HSTU", "cyclic", options={**SMALL_REFERENCE, **tiny_dataset, "similarity": "euclid"})


def _two_domain_files(folder: Path) -> None:
    import numpy as np

    from conftest import write_inter

    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        for t in range(12):
            domain = ("B" if t == 11 else "A") if u < 20 else ("A" if (t // 4) % 2 == 0 else "B")
            rows.append((f"u{u}", f"i{int(rng.integers(15)) + (0 if domain == 'A' else 15)}", 1_000_000 + 100 * t))
    write_inter(folder / "twodom.inter", rows)
    write_inter(folder / "twodom.item", [(f"i{i}", "A" if i < 15 else "B") for i in range(30)],
                header="item_id:token\tdomain:token")
