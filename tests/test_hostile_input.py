"""The second hostile test: inputs that were accepted silently, ended in a traceback or exited
with the wrong status, and the faults of concurrent writers and signals. Every command answers
bad input with one ``error: ...`` line and exit status 2, and SIGTERM like Ctrl-C."""

from __future__ import annotations

import json
import lzma
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recbole_lsrm import io
from recbole_lsrm.cli import main
from recbole_lsrm.errors import ConfigError, DatasetError

from conftest import TINY, cyclic_sequences, plan_from_argv, write_inter

def tiny_args(**overrides) -> list[str]:
    """TINY (with a catalogue-sized topk) as --key=value arguments, ``overrides`` replacing keys."""
    return [f"--{k}={v}" for k, v in {**TINY, "topk": "[5,10]", **overrides}.items()]


TINY_ARGS = tiny_args()


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_refused(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


# --- silently accepted before ------------------------------------------------------------------
def test_nothing_to_train_on_is_refused_with_the_counts(capsys, tmp_path):
    write_inter(tmp_path / "data" / "ones" / "ones.inter", [(f"u{u}", f"i{u % 7}", 100 + u) for u in range(30)])
    code, err = run_cli(capsys, "--dataset=ones", f"--data_path={tmp_path / 'data'}",
                        f"--checkpoint_dir={tmp_path / 'saved'}", *tiny_args(topk="[5]"))
    assert_refused(code, err, "nothing to train on", "30 interactions of 30 users")
    assert "test_only" not in err
    assert not (tmp_path / "saved").exists() or not list((tmp_path / "saved").rglob("summary.json"))


def test_a_hold_out_that_takes_every_training_row_is_named(capsys, tmp_path, tiny_dataset):
    code, err = run_cli(capsys, "--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}",
                        f"--checkpoint_dir={tmp_path / 'saved'}", *TINY_ARGS, "--trajectory_holdout=24")
    assert_refused(code, err, "nothing to train on", "held out by trajectory_holdout=24", "lower trajectory_holdout")


@pytest.mark.parametrize("name", ["../../../evil", "a/b", ".hidden", "/abs"])
def test_a_dataset_name_is_not_a_path(capsys, tmp_path, name):
    code, err = run_cli(capsys, f"--dataset={name}", f"--checkpoint_dir={tmp_path / 'saved'}", *TINY_ARGS)
    assert_refused(code, err, "is not a dataset name")
    with pytest.raises(ConfigError, match="is not a dataset name"):
        plan_from_argv([f"--dataset={name}", "--depths=1", f"--out={tmp_path / 'sweep'}"])


def test_a_typo_in_a_config_file_is_refused_like_one_on_the_command_line(capsys, tmp_path, tiny_dataset):
    config = tmp_path / "mine.yaml"
    config.write_text("epoch: 3\n")
    code, err = run_cli(capsys, "--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}",
                        f"--config_files={config}", *TINY_ARGS)
    assert_refused(code, err, f"unknown option epoch (in {config})", "did you mean epochs?")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A one-epoch tiny run: its checkpoint.pth."""
    root = tmp_path_factory.mktemp("finished")
    write_inter(root / "data" / "cyclic" / "cyclic.inter", cyclic_sequences())
    assert main(["--dataset=cyclic", f"--data_path={root / 'data'}", f"--checkpoint_dir={root / 'saved'}",
                 *tiny_args(epochs=1)]) == 0
    return next((root / "saved").glob("*/checkpoint.pth"))


def test_resume_checks_config_files_too(capsys, tmp_path, finished_run):
    config = tmp_path / "other.yaml"
    config.write_text("seed: 5\n")
    code, err = run_cli(capsys, f"--checkpoint={finished_run}", f"--config_files={config}")
    assert_refused(code, err, f"seed (set to 5 in {config}) cannot change when resuming", "seed=2020, not 5")
    code, err = run_cli(capsys, f"--checkpoint={finished_run}", "--seed=5")
    assert_refused(code, err, "--seed cannot change when resuming")


def test_more_epochs_for_a_finished_run_are_refused_not_recorded(capsys, finished_run):
    before = json.loads((finished_run.parent / "summary.json").read_text())
    code, err = run_cli(capsys, f"--checkpoint={finished_run}", "--epochs=3")
    assert_refused(code, err, "--epochs=3", "has finished", "start a new run")
    assert json.loads((finished_run.parent / "summary.json").read_text()) == before


def test_time_typed_as_a_token_is_refused(capsys, tmp_path):
    write_inter(tmp_path / "tok" / "tok.inter", cyclic_sequences(n_users=10, length=6),
                header="user_id:token\titem_id:token\ttimestamp:token")
    code, err = run_cli(capsys, "--dataset=tok", f"--data_path={tmp_path}", *TINY_ARGS)
    assert_refused(code, err, "'timestamp' is typed 'token'", "timestamp:float")


# --- data files ---------------------------------------------------------------------------------
def _data(tmp_path: Path, name: str, content: bytes) -> list[str]:
    (tmp_path / name).mkdir()
    (tmp_path / name / f"{name}.inter").write_bytes(content)
    return [f"--dataset={name}", f"--data_path={tmp_path}", *TINY_ARGS]


GOOD = b"user_id:token\titem_id:token\ttimestamp:float\n" + b"".join(
    f"{u}\t{(u + t) % 9}\t{t}\n".encode() for u in range(8) for t in range(6))


@pytest.mark.parametrize("name,content,fragments", [
    ("latin", GOOD + "u1\tcaf\u00e9\t7\n".encode("latin-1"), ["line 50", "is not utf-8 text", "encoding"]),
    ("bom", b"\xef\xbb\xbf" + GOOD, ["byte-order mark"]),
    ("floatid", GOOD.replace(b"item_id:token", b"item_id:float"), ["'item_id' is typed 'float'", "item_id:token"]),
], ids=["non-utf8", "bom", "float-id"])
def test_malformed_data_files_are_named(capsys, tmp_path, name, content, fragments):
    code, err = run_cli(capsys, *_data(tmp_path, name, content))
    assert_refused(code, err, *fragments)


def test_an_impossible_length_is_named_not_a_memory_traceback(capsys, tmp_path, tiny_dataset):
    code, err = run_cli(capsys, "--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}",
                        f"--checkpoint_dir={tmp_path / 'saved'}", *TINY_ARGS, "--MAX_ITEM_LIST_LENGTH=1000000000")
    assert_refused(code, err, "MAX_ITEM_LIST_LENGTH")


def test_a_seed_out_of_range_is_refused(capsys, tmp_path):
    code, err = run_cli(capsys, "--seed=-1", *TINY_ARGS)
    assert_refused(code, err, "seed must be in [0, 4294967296), got -1")
    from recbole_lsrm.prepare.__main__ import main as prepare_main

    assert prepare_main(["ml-1m", "--raw", str(tmp_path), "--fraction=0.5", "--seed=-1"]) == 2
    assert "a seed is in [0, 2^32)" in capsys.readouterr().err


# --- JSON and study files -----------------------------------------------------------------------
@pytest.mark.parametrize("content,fragment", [
    ('{"model": "LSRM", "te', "is not valid JSON"),
    ("[1, 2]", "holds a JSON list"),
    ("{}", "lacks model"),
], ids=["truncated", "a-list", "no-keys"])
def test_tasks_compare_names_a_corrupt_summary(capsys, tmp_path, content, fragment):
    from recbole_lsrm.tasks.__main__ import main as tasks_main

    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(content)
        (tmp_path / name / "tasks.json").write_text("{}")
        runs.append(str(tmp_path / name))
    code = tasks_main(["compare", *runs, "--out", str(tmp_path / "out")])
    assert_refused(code, capsys.readouterr().err, "summary.json", fragment)


def test_tasks_compare_on_runs_without_task_results_says_why(capsys, tmp_path):
    from recbole_lsrm.tasks.__main__ import main as tasks_main

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text('{"model": "LSRM", "n_layers": 1}')
        (tmp_path / name / "tasks.json").write_text("{}")
    code = tasks_main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out")])
    assert_refused(code, capsys.readouterr().err, "none of these runs has task results", "--tasks=")


def _scaling(*args: str) -> int:
    from recbole_lsrm.scaling.__main__ import main as scaling_main

    return scaling_main(list(args))


def test_plan_names_a_fits_file_of_the_wrong_shape_and_a_bad_extrapolation(capsys, tmp_path):
    fits = tmp_path / "fits.json"
    fits.write_text("[]")
    assert_refused(_scaling("plan", f"--fits={fits}", "--interactions=1e6", "--budget=1e15"),
                   capsys.readouterr().err, "holds a JSON list")
    fits.write_text('{"joint": [1]}')
    assert_refused(_scaling("plan", f"--fits={fits}", "--interactions=1e6", "--budget=1e15"),
                   capsys.readouterr().err, "no joint law")
    assert_refused(_scaling("plan", f"--fits={fits}", "--interactions=1e6", "--budget=1e15", "--extrapolation=0"),
                   capsys.readouterr().err, "--extrapolation must be at least 1")


def test_fit_joint_checks_the_fits_file_before_fitting(capsys, tmp_path):
    results = tmp_path / "results.csv"
    results.write_text("N,train_positions,epochs_run,test_ce_loss\n100,1000,1,7.0\n")
    (tmp_path / "fits.json").write_text('{"size": ')
    assert_refused(_scaling("fit-joint", str(results)), capsys.readouterr().err, "fits.json is not valid JSON")


def test_fit_names_a_row_with_no_positive_N_and_says_why_nothing_fits(capsys, tmp_path):
    results = tmp_path / "results.csv"
    results.write_text("N,test_ce_loss\n100,7.0\n0,6.5\n")
    assert_refused(_scaling("fit", str(results)), capsys.readouterr().err, "row 3: N = 0")
    results.write_text("N,test_ce_loss\n100,\n200,\n")
    assert_refused(_scaling("fit", str(results)), capsys.readouterr().err, "no scaling law could be fitted:")
    assert_refused(_scaling("fit", str(results), "--bootstrap=-1"), capsys.readouterr().err, "--bootstrap must be >= 0")


@pytest.mark.parametrize("sweep,fragment", [
    ({"fractions": ["abc"]}, "--fractions must be a number, got 'abc'"),
    ({"seeds": ["x"]}, "--seeds must be a whole number, got 'x'"),
    ({"depths": [0]}, "--depths must be >= 1"),
], ids=["fractions", "seeds", "depths"])
def test_study_values_are_checked_where_they_are_read(tmp_path, sweep, fragment):
    from recbole_lsrm.study.spec import load_study

    study = tmp_path / "s.yaml"
    study.write_text(json.dumps({"name": "s", "dataset": "ml-100k", "data": ".", "work": "w", "report": "r",
                                 "sweeps": [{"name": "a", "sizes": ["1x16"], **sweep}]}))
    with pytest.raises(ConfigError, match="sweep 'a'") as caught:
        load_study(study)
    assert fragment in str(caught.value)


def test_study_cpus_per_trial_must_be_a_number(tmp_path):
    from recbole_lsrm.study.spec import load_study

    study = tmp_path / "s.yaml"
    study.write_text("name: s\ndataset: ml-100k\ndata: .\nwork: w\nreport: r\ncpus_per_trial: two\n"
                     "sweeps: [{name: a, sizes: [1x16]}]\n")
    with pytest.raises(ConfigError, match="cpus_per_trial must be a number, got 'two'"):
        load_study(study)


def test_a_truncated_xz_study_file_is_named(tmp_path):
    from recbole_lsrm.study.runner import prepare_data
    from recbole_lsrm.study.spec import load_study

    packed = lzma.compress(GOOD * 50)
    (tmp_path / "d.inter.xz").write_bytes(packed[: len(packed) // 2])
    study = tmp_path / "s.yaml"
    study.write_text("name: s\ndataset: d\ndata: d.inter.xz\nwork: w\nreport: r\nsweeps: [{name: a, sizes: [1x16]}]\n")
    with pytest.raises(DatasetError, match="cannot be unpacked.*truncated or damaged"):
        prepare_data(load_study(study), sys.stdout)
    assert not list((tmp_path / "w").rglob("d.inter"))


# --- concurrent writers, signals ----------------------------------------------------------------
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_write_removes_a_dead_writers_temporary_file_but_not_a_live_ones(tmp_path):
    target = tmp_path / "summary.json"
    live = tmp_path / f".summary.json.{os.getppid()}-abcd1234"
    dead = tmp_path / f".summary.json.{_dead_pid()}-efgh5678"
    for stale in (live, dead):
        stale.write_text("half")
        os.utime(stale, (time.time() - 60, time.time() - 60))
    io.write_json({"a": 1}, target)
    assert json.loads(target.read_text()) == {"a": 1}
    assert live.exists() and not dead.exists()


def test_a_second_sweep_in_the_same_folder_is_refused_while_the_first_runs(tmp_path, tiny_dataset):
    from recbole_lsrm.sweep.runner import run_sweep

    out = tmp_path / "sweep"
    plan = plan_from_argv(["--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}", "--depths=1",
                           f"--out={out}", "--d_model=16", "--n_heads=2", "--epochs=1"])
    out.mkdir(parents=True)
    (out / ".sweep.lock").write_text(f"{os.getppid()}\n")  # a live process holds it
    with pytest.raises(ConfigError, match=f"another sweep \\(process {os.getppid()}\\) is running"):
        run_sweep(plan, stream=open(os.devnull, "w"))
    assert not (out / "trials").exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_and_a_live_one_refuses_others(tmp_path):
    (tmp_path / ".lock").write_text(f"{_dead_pid()}\n")
    with io.FolderLock(tmp_path, lambda pid: f"held by {pid}"):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        other = subprocess.run(
            [sys.executable, "-c", f"from recbole_lsrm import io; io.FolderLock({str(tmp_path)!r}, "
             "lambda pid: f'held by {pid}').__enter__()"], capture_output=True, text=True, timeout=120)
        assert other.returncode != 0 and f"held by {os.getpid()}" in other.stderr
    assert not (tmp_path / ".lock").exists()


def sigterm_once_checkpointed(process: subprocess.Popen, root: Path, pattern: str) -> str:
    """Wait (at most 5 min) for a checkpoint under ``root``, send SIGTERM, return the process's stderr."""
    deadline = time.time() + 300
    while not list(root.glob(pattern)) and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert list(root.glob(pattern)), f"no checkpoint was written ({pattern})"
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=180)[1]


@pytest.mark.slow
def test_sigterm_stops_a_run_like_ctrl_c_and_says_how_to_resume(tmp_path, tiny_dataset):
    saved = tmp_path / "saved"
    process = subprocess.Popen(
        [sys.executable, "-m", "recbole_lsrm", "--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}",
         f"--checkpoint_dir={saved}", *tiny_args(epochs=100000, stopping_step=100000, optimizer_switch=False)],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    err = sigterm_once_checkpointed(process, saved, "*/checkpoint.pth")
    checkpoint = next(saved.glob("*/checkpoint.pth"))
    assert process.returncode == 143, err
    assert f"terminated; resume with: python run_recbole_lsrm.py --checkpoint={checkpoint}" in err
    assert "Traceback" not in err


def test_sigterm_caught_and_reraised_as_a_plain_ctrl_c_still_exits_143(capsys):
    """Ray's and Tune's loops may catch the Terminated exception and raise a KeyboardInterrupt of
    their own: the command still ends as terminated; the next command starts afresh."""
    from recbole_lsrm import commands

    def body():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here
        except KeyboardInterrupt:
            raise KeyboardInterrupt() from None
        return commands.DONE

    assert commands.run_command(body) == commands.TERMINATED
    assert capsys.readouterr().err.startswith("terminated")

    def ctrl_c():
        raise KeyboardInterrupt()

    assert commands.run_command(ctrl_c) == commands.INTERRUPTED


def test_a_sweep_stopped_by_sigterm_exits_143_and_says_how_to_continue(tmp_path, tiny_dataset, monkeypatch, capsys):
    from recbole_lsrm.sweep import runner
    from recbole_lsrm.sweep.__main__ import main as sweep_main

    monkeypatch.setattr(runner, "_run_tune", lambda *a, **k: "terminated")
    code = sweep_main(["--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}", "--depths=1",
                       f"--out={tmp_path / 'sweep'}", "--d_model=16", "--n_heads=2", "--epochs=1"])
    assert code == 143
    assert "terminated: run the same command again to continue" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_stops_a_real_sweep_under_ray_like_ctrl_c(tmp_path, tiny_dataset):
    out = tmp_path / "sweep"
    process = subprocess.Popen(
        [sys.executable, "-m", "recbole_lsrm.sweep", "--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}",
         "--depths=1", f"--out={out}", "--cpus-per-trial=1", "--num-cpus=1", "--d_model=16", "--n_heads=2",
         "--epochs=100000", "--stopping_step=100000", "--optimizer_switch=False", "--topk=[5,10]"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    err = sigterm_once_checkpointed(process, out, "trials/*/*/checkpoint.pth")
    assert process.returncode == 143, err[-2000:]
    assert "terminated: run the same command again to continue" in err
    assert not (out / ".sweep.lock").exists()


# --- the third hostile test: the newer features ---------------------------------------------
@pytest.mark.parametrize("option, named", [
    ("--ranking_head=mlp", "ranking_head is an option of objective: ranking"),
    ("--neg_ratio=5", "neg_ratio is an option of objective: ranking"),
    ("--feature_fusion=mean", "item_features lists genre more than once"),
])
def test_options_that_would_change_nothing_or_count_twice_are_refused(capsys, tmp_path, option, named):
    extra = ["--item_features=[genre,genre]"] if "feature" in option else []
    code, err = run_cli(capsys, *TINY_ARGS, f"--checkpoint_dir={tmp_path}", option, *extra)
    assert_refused(code, err, named)
    assert not any(tmp_path.iterdir())  # refused before any run folder exists


def test_a_threshold_on_a_column_the_data_lacks_is_named(capsys, tmp_path):
    code, err = run_cli(capsys, *TINY_ARGS, f"--checkpoint_dir={tmp_path}", "--objective=ranking",
                        "--threshold={score: 4}")
    assert_refused(code, err, "missing column(s) score", "threshold: {'score': 4} makes the labels from 'score'")


def test_a_threshold_no_rating_reaches_is_named_before_training(capsys, tmp_path):
    code, err = run_cli(capsys, *TINY_ARGS, f"--checkpoint_dir={tmp_path}", "--objective=ranking",
                        "--threshold={rating: 6}")
    assert_refused(code, err, "threshold: {'rating': 6} makes no label 1", "lower the threshold")
    assert not any(tmp_path.iterdir())  # nothing trained, no run folder
