"""The command line: RecBole's --key=value conventions and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_lsrm.cli import main, parse_args
from recbole_lsrm.errors import ConfigError

from conftest import TINY, write_inter

ROOT = Path(__file__).resolve().parents[1]


def test_values_are_yaml_literals_not_eval():
    parsed = parse_args(["--epochs=3", "--learning_rate=1e-3", "--layer_dropout=[0.3, 0.1]",
                         "--eval_mask_history=true", "--dataset=ml-100k", "--valid_metric=NDCG@10",
                         "--note=__import__('os').getcwd()"])
    assert parsed["epochs"] == 3 and parsed["learning_rate"] == 0.001
    assert parsed["layer_dropout"] == [0.3, 0.1] and parsed["eval_mask_history"] is True
    assert parsed["dataset"] == "ml-100k" and parsed["valid_metric"] == "NDCG@10"
    assert parsed["note"] == "__import__('os').getcwd()"  # a string, never evaluated
    with pytest.raises(ConfigError, match="--key=value"):
        parse_args(["epochs=3"])
    with pytest.raises(ConfigError, match="twice"):
        parse_args(["--epochs=3", "--epochs=4"])


def _bad_run(capsys, saved: Path, *args: str) -> str:
    code = main([f"--checkpoint_dir={saved}", "--show_progress=False", *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not saved.exists(), "a failed run must not write anything"
    return err


def test_unknown_dataset(capsys, tmp_path):
    err = _bad_run(capsys, tmp_path / "saved", "--dataset=no-such-data", f"--data_path={tmp_path}")
    assert "unknown dataset 'no-such-data'" in err and "Known datasets" in err


def test_missing_files_of_a_known_dataset(capsys, tmp_path):
    err = _bad_run(capsys, tmp_path / "saved", "--dataset=ml-20m", f"--data_path={tmp_path}")
    assert "atomic file not found" in err and str(tmp_path / "ml-20m" / "ml-20m.inter") in err
    assert "Nothing is downloaded" in err


def test_inter_file_without_timestamp(capsys, tmp_path):
    write_inter(tmp_path / "nots" / "nots.inter", [("u1", "i1"), ("u1", "i2")], header="user_id:token\titem_id:token")
    err = _bad_run(capsys, tmp_path / "saved", "--dataset=nots", f"--data_path={tmp_path}")
    assert "missing column(s) timestamp" in err and "nots.inter, line 1" in err


def test_non_numeric_timestamps(capsys, tmp_path):
    rows = [("u1", "i1", 10), ("u1", "i2", 20), ("u1", "i3", "yesterday"), ("u1", "i4", 40)]
    write_inter(tmp_path / "badts" / "badts.inter", rows)
    err = _bad_run(capsys, tmp_path / "saved", "--dataset=badts", f"--data_path={tmp_path}")
    assert "badts.inter, line 4: column 'timestamp' must be numeric, got 'yesterday'" in err


def test_wrong_separator(capsys, tmp_path):
    path = tmp_path / "csv" / "csv.inter"
    path.parent.mkdir(parents=True)
    path.write_text("user_id:token,item_id:token,timestamp:float\nu1,i1,1\n")
    err = _bad_run(capsys, tmp_path / "saved", "--dataset=csv", f"--data_path={tmp_path}")
    assert "separator" in err


def test_unknown_scale(capsys, tmp_path):
    err = _bad_run(capsys, tmp_path / "saved", "--scale=l3")
    assert "unknown scale 'l3'" in err and "l2, l4, l8, l12, l24, l48" in err


def test_layer_dropout_of_the_wrong_length(capsys, tmp_path):
    err = _bad_run(capsys, tmp_path / "saved", "--n_layers=4", "--layer_dropout=[0.3,0.2,0.1]")
    assert "layer_dropout has 3 rates but the model has n_layers=4" in err


def test_unknown_option_suggests_the_right_one(capsys, tmp_path):
    err = _bad_run(capsys, tmp_path / "saved", "--n_layer=4")
    assert "unknown option --n_layer (did you mean --n_layers?)" in err


def test_unknown_model(capsys, tmp_path):
    err = _bad_run(capsys, tmp_path / "saved", "--model=NoSuchRec")
    assert "unknown model 'NoSuchRec':" in err  # nothing close to suggest


@pytest.mark.parametrize("typed, meant", [("llama", "Llama"), ("LSMR", "LSRM"), ("SASrec", "SASRec")])
def test_a_mistyped_model_suggests_the_one_meant(capsys, tmp_path, typed, meant):
    err = _bad_run(capsys, tmp_path / "saved", f"--model={typed}")
    assert f"unknown model '{typed}' (did you mean {meant}?)" in err


def test_help_names_every_plugin_model(capsys):
    from recbole_lsrm.model.registry import MODELS

    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert all(name in shown for name in MODELS)


def test_topk_larger_than_the_catalogue(capsys, tmp_path, tiny_dataset):
    err = _bad_run(capsys, tmp_path / "saved", "--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}", "--topk=[10,50]")
    assert "topk [10, 50] asks for more items than cyclic has (30)" in err


def test_missing_config_file(capsys, tmp_path):
    err = _bad_run(capsys, tmp_path / "saved", f"--config_files={tmp_path / 'absent.yaml'}")
    assert "config file not found" in err


@pytest.mark.slow
def test_script_exits_non_zero_with_one_clear_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_recbole_lsrm.py"), "--dataset=nowhere", f"--data_path={tmp_path}",
         f"--checkpoint_dir={tmp_path / 'saved'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: unknown dataset 'nowhere'")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_scales_module_prints_table_iv():
    result = subprocess.run([sys.executable, "-m", "recbole_lsrm.scales"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0
    assert "829,440,000" in result.stdout and "98,304" in result.stdout


def test_config_files_and_overrides(tmp_path, tiny_dataset):
    from recbole_lsrm.pipeline import run

    config = tmp_path / "small.yaml"
    config.write_text("n_layers: 1\nd_model: 8\nn_heads: 1\nepochs: 1\nshow_progress: False\nstate: WARNING\n")
    summary = run("LSRM", "cyclic", config_files=[str(config)], options={**tiny_dataset, "d_model": 12, "n_heads": 2})
    assert summary["d_model"] == 12 and summary["n_layers"] == 1 and summary["epochs_run"] == 1


def test_data_size_subsets_use_their_base_property_file():
    from recbole_lsrm.config import PROPERTIES_DIR, dataset_property_file

    assert dataset_property_file("amazon-mix-10") == PROPERTIES_DIR / "dataset" / "amazon-mix.yaml"
    assert dataset_property_file("ml-20m-50") == PROPERTIES_DIR / "dataset" / "ml-20m.yaml"
    assert dataset_property_file("ml-20m") == PROPERTIES_DIR / "dataset" / "ml-20m.yaml"
    assert not dataset_property_file("ml-100k").exists()  # RecBole's own file serves ml-100k


def test_load_col_without_the_time_field(capsys, tmp_path):
    err = _bad_run(capsys, tmp_path / "saved", "--load_col={inter: [user_id, item_id]}")
    assert "leaves out 'timestamp'" in err


def _quiet_run(capsys, tiny_dataset, state: str) -> tuple[str, str]:
    """A tiny run at ``state`` with progress bars asked for; (what the console showed, run.log)."""
    options = {**TINY, **tiny_dataset, "epochs": 2, "state": state, "show_progress": True}
    args = ["--dataset=cyclic"] + [f"--{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in options.items()]
    assert main(args) == 0
    shown = capsys.readouterr()
    run_dir = next(Path(tiny_dataset["checkpoint_dir"]).iterdir())
    return shown.out + shown.err, (run_dir / "run.log").read_text()


def test_quiet_mode_keeps_the_essentials_on_the_console_and_a_complete_run_log(capsys, tiny_dataset):
    console, log = _quiet_run(capsys, tiny_dataset, "WARNING")
    for essential in ("run folder", "test result", "summary"):
        assert essential in console, essential
    assert "epoch 0 training" not in console and "valid result" not in console
    for line in ("epoch 0 training", "epoch 1 evaluating", "valid result", "precision", "test result", "summary"):
        assert line in log, line
    # The dataset's own counts (60 users, 30 items), not RecBole's with the padding id; the
    # model's module tree in run.log only.
    assert "cyclic: 60 users, 30 items, 1,500 interactions" in log
    assert "DecoderBlock(" in log and "DecoderBlock(" not in console


def test_a_redirected_run_prints_no_escape_codes_or_progress_bars(capsys, tiny_dataset):
    console, log = _quiet_run(capsys, tiny_dataset, "INFO")  # capsys: stdout and stderr are not terminals
    assert "epoch 0 training" in console and "test result" in console
    assert "\x1b[" not in console and "\r" not in console
    assert "\x1b[" not in log
