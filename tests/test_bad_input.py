"""Bad input and faults: one clear ``error: ...`` line and exit status 2, nothing half-written,
outputs readable by collaborators, and resumed runs that really apply what they record."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from pathlib import Path

import pytest

from recbole_lsrm import io
from recbole_lsrm.cli import main
from recbole_lsrm.errors import ConfigError, OutputError

from conftest import TINY, cyclic_sequences, write_inter

TINY_ARGS = [f"--{k}={v}" for k, v in TINY.items()]


def _tiny_args(*args: str) -> list[str]:
    """TINY (with a catalogue-sized topk) as --key=value; a later ``args`` entry replaces a key."""
    options = {a[2:].split("=", 1)[0]: a for a in [*TINY_ARGS, "--topk=[5,10]", *args]}
    return list(options.values())


def _write_files(root: Path) -> None:
    """Malformed atomic files, each in its own dataset folder under ``root``."""
    rows = cyclic_sequences(n_users=5, length=6)
    write_inter(root / "short" / "short.inter", rows)
    with open(root / "short" / "short.inter", "a") as f:
        f.write("u3\ti5\n")  # a row cut short
    write_inter(root / "nants" / "nants.inter", rows[:4] + [("u1", "i9", "nan")] + rows[4:])
    write_inter(root / "empty" / "empty.inter", [])
    (root / "comma").mkdir()
    (root / "comma" / "comma.inter").write_text("user_id:token,item_id:token,timestamp:float\nu1,i1,1\n")


# (arguments, what the error line must say)
BAD_RUNS = [
    (["--epochs=abc"], "epochs must be an integer, got 'abc'"),
    (["--epochs=__import__('os').getcwd()"], "epochs must be an integer"),
    (["--learning_rate=[1,2]"], "learning_rate must be a number, got [1, 2]"),
    (["--learning_rate=-1"], "learning_rate must be positive, got -1"),
    (["--sgd_lr=0"], "sgd_lr must be positive"),
    (["--n_layers=0"], "n_layers must be positive, got 0"),
    (["--MAX_ITEM_LIST_LENGTH=0"], "MAX_ITEM_LIST_LENGTH must be positive, got 0"),
    (["--sgd_momentum=1.5"], "sgd_momentum must be in [0, 1), got 1.5"),
    (["--eval_mask_history=maybe"], "eval_mask_history must be true or false, got 'maybe'"),
    (["--checkpoint_dir=~"], "checkpoint_dir must be a string, got ~"),
    (["--dataset=short"], "short.inter, line 32: column 'timestamp' has no value"),
    (["--dataset=nants"], "nants.inter, line 6: column 'timestamp' has no value"),
    (["--dataset=empty"], "empty.inter: no rows after the header line"),
    (["--dataset=comma"], "is the separator a tab?"),
]


@pytest.mark.parametrize("args,message", BAD_RUNS, ids=[" ".join(a) for a, _ in BAD_RUNS])
def test_bad_input_is_one_clear_error(args, message, capsys, tmp_path):
    _write_files(tmp_path)
    saved = tmp_path / "saved"
    code = main([f"--data_path={tmp_path}", *_tiny_args(f"--checkpoint_dir={saved}", *args)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    assert not saved.exists()


def test_a_checkpoint_dir_that_is_a_file(capsys, tmp_path, tiny_dataset):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = main(["--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}", *_tiny_args(f"--checkpoint_dir={blocker}")])
    err = capsys.readouterr().err
    assert code == 2 and "cannot create the folder" in err and "is a file" in err, err


def test_a_full_disk_says_so_and_leaves_nothing(capsys, tmp_path, tiny_dataset, monkeypatch):
    import torch

    def no_space(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    saved = tmp_path / "saved"
    code = main(["--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}", *_tiny_args(f"--checkpoint_dir={saved}")])
    err = capsys.readouterr().err
    assert code == 2 and "the disk is full" in err and "best_model.pth" in err, err
    run_dir = next(saved.iterdir())
    # no temporary file left (the TensorBoard folder is the run's from its first epoch)
    assert sorted(p.name for p in run_dir.iterdir()) == ["log_tensorboard", "run.log"]


def test_prepare_into_a_read_only_folder(capsys, tmp_path, monkeypatch):
    from recbole_lsrm.prepare.__main__ import main as prepare_main

    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "ro")):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    code = prepare_main(["synthetic", "--like", "ml-1m", "--scale=0.001", "--out", str(tmp_path / "ro" / "data")])
    err = capsys.readouterr().err
    assert code == 2 and "read-only" in err and "Traceback" not in err, err


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        io.write_json({"a": 1}, tmp_path / "summary.json")
        io.atomic_write(tmp_path / "c.pth", lambda tmp: Path(tmp).write_bytes(b"x"))
    finally:
        os.umask(old)
    for name in ("summary.json", "c.pth"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640


def test_run_outputs_are_readable_by_the_group_and_others(tmp_path, tiny_dataset):
    from recbole_lsrm.pipeline import run

    old = os.umask(0o022)
    try:
        summary = run("LSRM", "cyclic", options={**TINY, **tiny_dataset, "epochs": 1})
    finally:
        os.umask(old)
    for name in ("summary.json", "checkpoint.pth", "best_model.pth"):
        assert stat.S_IMODE((Path(summary["run_dir"]) / name).stat().st_mode) == 0o644, name


def test_a_killed_write_is_cleaned_up_by_the_next_one(tmp_path):
    target = tmp_path / "checkpoint.pth"
    stale = tmp_path / ".checkpoint.pth.ab12cd_9"  # what mkstemp leaves when the process dies
    stale.write_bytes(b"half a checkpoint")
    os.utime(stale, (time.time() - 600, time.time() - 600))
    unrelated = tmp_path / ".other.pth.ab12cd_9"
    unrelated.write_bytes(b"x")
    io.atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"whole"))
    assert target.read_bytes() == b"whole"
    assert not stale.exists() and unrelated.exists()


def test_missing_property_files_are_a_clear_error(tmp_path, monkeypatch):
    from recbole_lsrm import config

    monkeypatch.setattr(config, "PACKAGE_DIR", tmp_path / "site-packages" / "recbole_lsrm")
    with pytest.raises(ConfigError, match="property files are missing"):
        config.find_properties_dir()


def test_output_error_is_an_os_error_and_a_plugin_error():
    err = OutputError("cannot write x")
    assert isinstance(err, OSError)


def _newest_run(saved: Path) -> Path:
    return max(saved.iterdir(), key=lambda p: p.stat().st_mtime)


@pytest.mark.slow
def test_divergence_names_the_rate_that_caused_it_and_resume_applies_a_new_one(capsys, tmp_path, one_thread):
    saved = tmp_path / "saved"
    args = [*_tiny_args(f"--checkpoint_dir={saved}", "--topk=[10]", "--epochs=4", "--switch_epoch=2", "--sgd_lr=1e6")]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and "training diverged" in err and "sgd_lr=1e+06" in err, err
    run_dir = _newest_run(saved)
    assert "training diverged" in (run_dir / "run.log").read_text()

    code = main([f"--checkpoint={run_dir / 'checkpoint.pth'}", "--sgd_lr=0.01", "--state=INFO"])
    assert code == 0, capsys.readouterr().err
    log = (run_dir / "run.log").read_text()
    assert "Resumed with new settings: sgd_lr 1e+06 -> 0.01" in log
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["options"]["sgd_lr"] == 0.01 and summary["epochs_run"] == 4
    assert all(r["train_loss"] < 10 for r in summary["history"])


def test_a_resumed_run_trains_at_the_learning_rate_it_records(tmp_path, tiny_dataset):
    from recbole_lsrm.pipeline import run

    class Killed(Exception):
        pass

    def kill_after_epoch_0(epoch, record):
        if epoch == 0:
            raise Killed

    options = {**TINY, **tiny_dataset, "epochs": 3, "lr_scheduler": "constant", "optimizer_switch": False}
    with pytest.raises(Killed):
        run("LSRM", "cyclic", options=options, epoch_callback=kill_after_epoch_0)
    run_dir = _newest_run(Path(tiny_dataset["checkpoint_dir"]))
    for key, value in (("seed", 5), ("n_layers", 2), ("train_batch_size", 32)):
        with pytest.raises(ConfigError, match=f"--{key} cannot change when resuming"):
            run(checkpoint_path=str(run_dir / "checkpoint.pth"), options={key: value})
    resumed = run(checkpoint_path=str(run_dir / "checkpoint.pth"), options={"learning_rate": 0.0005})
    assert resumed["options"]["learning_rate"] == 0.0005
    assert [r["lr"] for r in resumed["history"]] == [options.get("learning_rate", 0.002), 0.0005, 0.0005]


def test_a_trial_killed_from_outside_gets_an_error_file(tmp_path):
    from recbole_lsrm.sweep.results import ERROR_FILE, last_error, record_external_failure

    ray_error = tmp_path / "ray-error.txt"
    ray_error.write_text("Failure # 1\nTraceback ...\nray.exceptions.RayActorError: The actor died unexpectedly\n")
    trial_dir = tmp_path / "trials" / "l2-f100-s0"
    text = record_external_failure(trial_dir, str(ray_error))
    assert (trial_dir / ERROR_FILE).exists() and last_error(trial_dir) == text
    assert "killed from outside" in text and "The actor died unexpectedly" in text
    assert "no report from Ray" in record_external_failure(tmp_path / "other", None)


def test_the_sweep_reports_a_killed_trial_with_what_ray_saw(tmp_path):
    import io as text_io
    from types import SimpleNamespace

    pytest.importorskip("ray", reason="sweeps need Ray Tune")
    from recbole_lsrm.sweep.runner import _progress_callback_class

    trial_dir = tmp_path / "trials" / "l2-f100-s0"
    ray_error = tmp_path / "error.txt"
    ray_error.write_text("ray.exceptions.RayActorError: The actor died unexpectedly before finishing this task.\n")
    spec = SimpleNamespace(key="l2-f100-s0", trial_dir=trial_dir)
    stream = text_io.StringIO()
    progress = _progress_callback_class()({"l2-f100-s0": spec}, stream)
    trial = SimpleNamespace(config={"trial": {"key": "l2-f100-s0", "options": {"checkpoint_dir": str(trial_dir)}}},
                            error_file=str(ray_error))
    progress.on_trial_error(0, [], trial)
    said = stream.getvalue()
    assert "l2-f100-s0 FAILED: the trial's process ended without a Python error" in said
    assert "The actor died unexpectedly" in (trial_dir / "error.txt").read_text()


def test_divergence_in_the_first_epoch_says_there_is_nothing_to_resume(capsys, tmp_path, one_thread):
    code = main(_tiny_args(f"--checkpoint_dir={tmp_path / 'saved'}", "--learning_rate=1e6", "--warmup_steps=0"))
    err = capsys.readouterr().err
    assert code == 2 and "training diverged" in err and "learning_rate=1e+06" in err, err
    assert "nothing to resume" in err
