"""Sweeps: planning and bad input (no Ray), one small Ray Tune sweep end to end, restarts."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from conftest import TINY, cyclic_sequences, plan_from_argv, write_inter
from recbole_lsrm.errors import ConfigError, DatasetError
from recbole_lsrm.pipeline import run
from recbole_lsrm.sweep import runner
from recbole_lsrm.sweep.__main__ import main as sweep_main
from recbole_lsrm.sweep.plan import subset_dataset
from recbole_lsrm.sweep.results import RESULTS_FILE, read_trial_record

# TINY without the size keys the sweep sets itself, as --key=value arguments.
TRIAL_OPTIONS = {k: v for k, v in TINY.items() if k not in ("n_layers", "epochs")} | {"epochs": 1}


def argv(tiny_dataset: dict, out: Path, *extra: str, **options) -> list[str]:
    """The sweep's command line on the tiny dataset; an option given as None is left out."""
    values = {**TRIAL_OPTIONS, **{k: v for k, v in tiny_dataset.items() if k != "checkpoint_dir"}, **options}
    return ["--dataset=cyclic", f"--out={out}", *extra] + [
        f"--{k}={json.dumps(v)}" for k, v in values.items() if v is not None
    ]


# --- planning (no Ray) ---------------------------------------------------------------------------
def test_subset_names_follow_the_converter():
    assert subset_dataset("ml-20m", 0.1) == "ml-20m-10"
    assert subset_dataset("ml-20m", 0.5) == "ml-20m-50"
    assert subset_dataset("ml-20m", 1.0) == "ml-20m"


def test_plan_crosses_sizes_fractions_and_seeds(tiny_dataset, tmp_path):
    write_inter(Path(tiny_dataset["data_path"]) / "cyclic-50" / "cyclic-50.inter", cyclic_sequences(n_users=30))
    plan = plan_from_argv(argv(tiny_dataset, tmp_path / "sweep", "--depths=1,2", "--fractions=0.5,1", "--seeds=0,1"))
    assert [t.key for t in plan.trials] == [
        "nl1-f50-s0", "nl1-f50-s1", "nl1-f100-s0", "nl1-f100-s1",
        "nl2-f50-s0", "nl2-f50-s1", "nl2-f100-s0", "nl2-f100-s1",
    ]
    trial = plan.trials[0]
    assert trial.dataset == "cyclic-50" and trial.base_dataset == "cyclic" and trial.fraction == 0.5
    assert trial.options["n_layers"] == 1 and trial.options["seed"] == 0
    # absolute per-trial folders: Ray runs trials elsewhere
    assert trial.options["checkpoint_dir"] == str((tmp_path / "sweep" / "trials" / "nl1-f50-s0").resolve())
    assert Path(trial.options["data_path"]).is_absolute()
    assert trial.planned_N == 12 * 1 * 16 * 16 and trial.planned_epochs == 1


def test_shape_study_plan_shares_the_table_iv_trial(tiny_dataset, tmp_path):
    plan = plan_from_argv(argv(tiny_dataset, tmp_path / "sweep", "--scales=l2,l8", "--shapes=l8",
                           d_model=None, n_heads=None))
    by_size = {t.size: t for t in plan.trials}
    assert list(by_size) == ["l2", "l8", "L32-d64", "L2-d256"]
    assert by_size["l8"].reference_shape and by_size["l8"].shape_group == "l8"
    assert by_size["l2"].shape_group is None
    deep = by_size["L32-d64"]
    assert (deep.options["n_layers"], deep.options["d_model"], deep.options["n_heads"]) == (32, 64, 2)
    assert {t.planned_N for t in plan.trials if t.shape_group} == {1_572_864}


def test_other_models_sweep_layers_and_count_their_parameters(tiny_dataset, tmp_path):
    plan = plan_from_argv(["--model=SASRec", "--dataset=cyclic", "--depths=1,2", f"--out={tmp_path}",
                       f"--data_path={tiny_dataset['data_path']}", "--MAX_ITEM_LIST_LENGTH=10"])
    assert [t.size for t in plan.trials] == ["nl1", "nl2"] and plan.trials[0].planned_N is None


@pytest.mark.parametrize(
    "extra, options, message",
    [
        ([], {}, "give the sizes to sweep"),
        (["--scales=l2,l5"], {"d_model": None}, "unknown scale 'l5'"),
        (["--scales=l2"], {}, "--d_model is set by the sweep (--scales)"),
        (["--depths=1", "--n_layers=3"], {}, "--n_layers is set by the sweep (--depths)"),
        (["--depths=1", "--seeds=0", "--seed=3"], {}, "--seed is set by the sweep (--seeds)"),
        (["--depths=1", "--epoch=3"], {}, "unknown option --epoch (did you mean --epochs?)"),
        (["--depths=1", "--cpus_per_trial=1"], {}, "did you mean --cpus-per-trial?"),
        (["--depths=1", "--fractions=0.125"], {}, "not a whole percent"),
        (["--depths=1", "--fractions=0.3"], {}, "python -m recbole_lsrm.prepare cyclic --raw ... --fraction=0.3"),
        (["--depths=1,x"], {}, "--depths must be a whole number"),
        (["--depths=1", "--cpus-per-trial=0"], {}, "--cpus-per-trial must be > 0"),
        (["--depths=1", "--predict=l24"], {}, "--predict: l24 not among the sizes"),
        (["--depths=1", "--checkpoint_dir=x"], {}, "choose the sweep folder with --out"),
        (["--shapes=l8", "--ratios=2,x"], {"d_model": None, "n_heads": None}, "'x' is not a number"),
        (["--depths=1", "--ratios=2"], {}, "--ratios belongs to a shape study"),
        (["--model=SASRec", "--scales=l2"], {"d_model": None}, "SASRec has its own size options"),
        (["--model=Nope", "--depths=1"], {}, "unknown model 'Nope'"),
        (["--model=GRU4Rec", "--depths=1"], {"d_model": None, "n_heads": None}, "GRU4Rec does not have"),
        (["--depths=1", "scales=l2"], {}, "options are written --key=value"),
        (["--depths=1"], {"n_heads": 3}, "d_model=16 must be divisible by n_heads=3"),
    ],
)
def test_bad_input_is_a_clear_error_without_traceback(tiny_dataset, tmp_path, capsys, extra, options, message):
    assert sweep_main(argv(tiny_dataset, tmp_path / "sweep", *extra, **options)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()  # nothing written


def test_dry_run_prints_the_plan_and_writes_nothing(tiny_dataset, tmp_path, capsys):
    assert sweep_main(argv(tiny_dataset, tmp_path / "sweep", "--depths=1,2", "--dry-run")) == 0
    printed = capsys.readouterr().out
    assert "nl1-f100-s2020" in printed and "to run" in printed
    assert not (tmp_path / "sweep").exists()


# --- one trial without Ray: resuming an interrupted run ------------------------------------------------
class _Killed(Exception):
    pass


def test_an_interrupted_trial_resumes_from_its_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    from recbole_lsrm.sweep import trainable

    plan = plan_from_argv(argv(tiny_dataset, tmp_path / "sweep", "--depths=1", epochs=3))
    spec = plan.trials[0]

    def killed_after_first_epoch(epoch, record):
        raise _Killed

    with pytest.raises(_Killed):
        run(spec.model, spec.dataset, spec.config_files, spec.options, epoch_callback=killed_after_first_epoch)
    reported = []
    monkeypatch.setattr(trainable, "report", reported.append)
    trainable.train_trial({"trial": spec.to_dict(), "threads": 1})

    run_dirs = [p for p in spec.trial_dir.iterdir() if p.is_dir()]
    assert len(run_dirs) == 1  # the interrupted run was continued, not started again
    summary = json.loads((run_dirs[0] / "summary.json").read_text())
    assert summary["epochs_run"] == 3
    assert [r["epoch"] for r in reported[:-1]] == [2, 3]  # epochs 2 and 3 ran now, each reported
    assert all("valid_celoss" in r for r in reported[:-1])
    assert reported[-1]["trial_finished"] and reported[-1]["test_ce_loss"] == summary["test_ce_loss"]
    assert read_trial_record(spec.trial_dir)["summary"] == str(run_dirs[0] / "summary.json")


def _fake_ray(monkeypatch, tune_report=None, train_report=None):
    """A stand-in ``ray`` package with the reporting functions of one ray release."""
    import types

    ray, tune, train = (types.ModuleType(name) for name in ("ray", "ray.tune", "ray.train"))
    air, session = types.ModuleType("ray.air"), types.ModuleType("ray.air.session")
    session.report = lambda metrics, checkpoint=None: None  # ray 2.6.3's ray.air.session.report
    air.session = session
    if tune_report is not None:
        tune.report = tune_report
    if train_report is not None:
        train.report = train_report
    ray.tune, ray.train, ray.air = tune, train, air
    for name, module in (("ray", ray), ("ray.tune", tune), ("ray.train", train), ("ray.air", air),
                         ("ray.air.session", session)):
        monkeypatch.setitem(sys.modules, name, module)
    return ray


def test_the_report_helper_finds_each_rays_api(monkeypatch):
    from recbole_lsrm.sweep.session import _reporter

    def old_tune_report(**kwargs):  # ray 2.6.3's keyword-style tune.report: not the one to call
        raise AssertionError("keyword-style tune.report called")

    def train_report(metrics, *, checkpoint=None):  # ray 2.7 - 2.x
        pass

    def new_tune_report(metrics, *, checkpoint=None):  # recent ray
        pass

    ray = _fake_ray(monkeypatch, tune_report=old_tune_report)
    assert _reporter() is ray.air.session.report
    ray = _fake_ray(monkeypatch, tune_report=old_tune_report, train_report=train_report)
    assert _reporter() is train_report
    ray = _fake_ray(monkeypatch, tune_report=new_tune_report, train_report=train_report)
    assert _reporter() is new_tune_report


# --- a real sweep through Ray Tune ------------------------------------------------------------------------
@pytest.mark.slow
def test_sweep_end_to_end_then_restart_runs_nothing(tiny_dataset, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sweep"
    args = argv(tiny_dataset, out, "--depths=1,2,3", "--cpus-per-trial=1", "--predict=nl3", epochs=2)
    plan = plan_from_argv(args)
    ray_init = {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False}
    outcome = runner.run_sweep(plan, ray_init=ray_init)
    printed = capsys.readouterr().out
    assert sorted(outcome.ran) == ["nl1-f100-s2020", "nl2-f100-s2020", "nl3-f100-s2020"]
    assert not outcome.failed and not outcome.skipped
    assert "nl2-f100-s2020 epoch 2/2: train loss" in printed and "test CE" in printed

    with open(out / RESULTS_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["size"] for r in rows] == ["nl1", "nl2", "nl3"]
    assert [int(r["N"]) for r in rows] == [3072, 6144, 9216]
    for row in rows:
        assert float(row["test_ce_loss"]) > 0 and float(row["test_ndcg@10"]) >= 0
        assert len(json.loads(row["valid_celoss_by_epoch"])) == 2
        assert Path(row["summary"]).is_file()

    # Tune saw every epoch's validation loss through the report helper.
    tune_results = list((out / "ray").glob("tune-*/nl1-f100-s2020/result.json"))
    assert tune_results
    epochs = [json.loads(line) for line in tune_results[0].read_text().splitlines()]
    assert [e["epoch"] for e in epochs if "valid_celoss" in e] == [1, 2]

    fits = json.loads((out / "fits.json").read_text())
    fit = fits["size_fits"][0]
    # two sizes left after holding out nl3: the three-constant fit is refused, clearly
    assert fit["status"] == "refused" and "at least 3 different model sizes" in fit["reason"]
    report = (out / "report.md").read_text()
    assert "fit refused" in report
    for png in ("fit-lsrm-cyclic-f100.png", "repetition.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in report

    # Started again: every trial is finished, so Ray is not even started.
    before = sorted(p.name for p in (out / "trials").glob("*/*"))

    def no_ray(*args, **kwargs):
        raise AssertionError("a finished sweep started trials again")

    monkeypatch.setattr(runner, "_run_tune", no_ray)
    again = runner.run_sweep(plan_from_argv(args))
    assert again.ran == [] and sorted(again.skipped) == sorted(outcome.ran)
    assert sorted(p.name for p in (out / "trials").glob("*/*")) == before

    # The same folder with other trial options is refused, since its trials would not compare.
    with pytest.raises(ConfigError, match="--epochs: 2 then, 3 now"):
        runner.run_sweep(plan_from_argv(argv(tiny_dataset, out, "--depths=1,2,3", epochs=3)))

    # The fit on all three sizes works from the same table.
    from recbole_lsrm.scaling.report import write_report

    assert write_report(out / RESULTS_FILE, tmp_path / "all").any_fit


def test_missing_subset_is_reported_before_ray_starts(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_run_tune", lambda *a, **k: pytest.fail("Ray started"))
    with pytest.raises(DatasetError, match="cyclic-10"):
        plan_from_argv(argv(tiny_dataset, tmp_path / "sweep", "--depths=1", "--fractions=0.1"))


@pytest.mark.parametrize("model,n_layers,d_model,formula", [
    ("LSRM", 2, 64, "paper: 12 n_layers d_model^2"),
    ("HSTU", 2, 64, "blocks: 5 n_layers d_model^2 (4 without gating)"),
])
def test_results_rows_name_how_each_model_counts_n(tmp_path, model, n_layers, d_model, formula):
    from recbole_lsrm.sweep.results import result_row

    per_layer = 12 if model == "LSRM" else 5
    summary = {"model": model, "dataset": "ml-1m", "n_layers": n_layers, "d_model": d_model,
               "non_embedding_params": per_layer * n_layers * d_model**2, "non_embedding_params_counted": 1,
               "history": [], "test": {}, "best_valid": {}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    trial = {"key": "x", "size": "l2", "base_dataset": "ml-1m", "fraction": 1.0, "seed": 0}
    row = result_row({"trial": trial, "summary": str(path)})
    assert row["N_source"] == formula and row["N"] == per_layer * n_layers * d_model**2


def test_a_ranker_tested_before_a_figure_existed_gets_it_from_its_scored_candidates(tmp_path):
    """A finished ranker whose summary lacks a figure (held-out AUC, added later) gets it, with its
    interval, from the candidates the run kept; the figures it has are left as they were."""
    import numpy as np

    from recbole_lsrm.evaluation.candidates import candidate_intervals, heldout_auc, save_candidates
    from recbole_lsrm.sweep.results import result_row

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 2)
    labels = np.where(np.arange(80) % 2 == 0, rng.integers(0, 2, 80), 0).astype(float)
    scored = {"groups": groups, "labels": labels, "scores": rng.normal(size=80) + labels}
    save_candidates(scored, tmp_path)
    summary = {"model": "HSTU", "dataset": "ml-1m", "history": [], "run_dir": str(tmp_path),
               "test": {"auc": 0.123, "logloss": 0.5, "gauc": 0.6}, "test_intervals": {"auc": [0.1, 0.2]}}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    trial = {"key": "x", "size": "nl2", "base_dataset": "ml-1m", "fraction": 1.0, "seed": 0}
    row = result_row({"trial": trial, "summary": str(path)})
    assert row["test_auc"] == 0.123 and "test_gauc_lo" not in row
    assert row["test_heldout_auc"] == pytest.approx(heldout_auc(**scored))
    assert [row["test_heldout_auc_lo"], row["test_heldout_auc_hi"]] == candidate_intervals(**scored)["heldout_auc"]


def test_progress_lines_name_a_rankers_auc_and_a_retrievers_ce(tmp_path):
    """The sweep's one line per epoch and per finished trial: validation and test AUC for a
    ranker (it has no CE), validation CE and test CE / NDCG@10 for a retriever."""
    import io
    from types import SimpleNamespace

    from recbole_lsrm.sweep.runner import _progress_callback_class
    from recbole_lsrm.sweep.trainable import epoch_metrics

    stream = io.StringIO()
    spec = SimpleNamespace(trial_dir=tmp_path / "t", planned_epochs=10)
    progress = _progress_callback_class()({"rank/nl2": spec}, stream)
    trial = SimpleNamespace(config={"trial": {"options": {"checkpoint_dir": str(tmp_path / "t")}}})
    ranker = epoch_metrics(0, {"train_loss": 0.61, "phase": "adam", "valid": {"auc": 0.8123, "logloss": 0.55}})
    retriever = epoch_metrics(1, {"train_loss": 7.5, "phase": "adam", "valid": {"celoss": 7.25}})
    assert ranker["valid_auc"] == 0.8123 and "valid_celoss" not in ranker and retriever["valid_celoss"] == 7.25
    for result in (ranker, retriever, {"trial_finished": True, "test_auc": 0.8, "test_logloss": 0.5, "run_dir": "r"},
                   {"trial_finished": True, "test_ce_loss": 7.0, "test_ndcg@10": 0.1, "run_dir": "r"}):
        progress.on_trial_result(0, [], trial, {**result, "time_this_iter_s": 12.0})
    lines = [line.split("] ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == ["rank/nl2 epoch 1/10: train loss 0.6100, valid AUC 0.8123 [adam, 12s]",
                     "rank/nl2 epoch 2/10: train loss 7.5000, valid CE 7.2500 [adam, 12s]",
                     "rank/nl2 tested: test AUC 0.8000, LogLoss 0.5000  (r)",
                     "rank/nl2 tested: test CE 7.0000, NDCG@10 0.1000  (r)"]


def test_a_sweep_folder_keeps_its_settings_once_a_trial_has_started(tmp_path):
    """Trials are skipped by key, so a folder whose trials ran with other options is refused by
    name; a folder with no trial yet (stopped before its first) takes the new settings."""
    from recbole_lsrm.io import read_json
    from recbole_lsrm.sweep.results import check_sweep_record

    check_sweep_record(tmp_path, {"options": {"neg_ratio": 0.2}})
    check_sweep_record(tmp_path, {"options": {"neg_ratio": 0.2, "eval_neg_ratio": 1.0}})  # no trial yet
    assert read_json(tmp_path / "sweep.json", "record") == {"options": {"neg_ratio": 0.2, "eval_neg_ratio": 1.0}}
    (tmp_path / "trials" / "nl2-f100-s2020").mkdir(parents=True)
    check_sweep_record(tmp_path, {"options": {"neg_ratio": 0.2, "eval_neg_ratio": 1.0}})  # the same: continues
    with pytest.raises(ConfigError, match=r"holds trials run with other settings \(--eval_neg_ratio: 1.0 then, "
                                          r"'unset' now\)"):
        check_sweep_record(tmp_path, {"options": {"neg_ratio": 0.2}})
