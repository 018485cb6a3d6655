"""Studies: the study file, intervals over test users, a small study end to end, continued elsewhere."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TINY, plan_from_argv
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.evaluation.intervals import bootstrap_intervals, load_per_user, paired_difference
from recbole_lsrm.study.__main__ import main as study_main
from recbole_lsrm.study.runner import run_study
from recbole_lsrm.study.spec import load_study
from recbole_lsrm.sweep.plan import ablation_options, parse_sizes

OPTIONS = {k: v for k, v in TINY.items() if k not in ("n_layers", "d_model", "n_heads", "epochs")} | {"topk": [5, 10]}
RAY = {"num_cpus": 2, "include_dashboard": False, "log_to_driver": False}


def write_study(folder: Path, data: Path, **changes) -> Path:
    study = {
        "name": "tiny", "model": "LSRM", "dataset": "cyclic", "data": str(data), "work": "work", "report": "report",
        "cpus_per_trial": 1, "options": OPTIONS,
        "sweeps": [
            {"name": "size", "section": "size", "sizes": ["1x8", "1x16", "2x16"], "predict": ["L2-d16"],
             "options": {"epochs": 1}},
            {"name": "converged", "section": "converged", "sizes": ["1x16"], "options": {"epochs": 2}},
            {"name": "ablation", "section": "ablation", "sizes": ["1x16"], "ablation": ["no-lad"],
             "baseline": "converged", "options": {"epochs": 2}},
        ],
    }
    study.update(changes)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    return path


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- the study file ---------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"sweeps": []}, "sweeps must be a non-empty list"),
    ({"colour": 1}, "unknown key(s) colour"),
    ({"sweeps": [{"name": "a", "section": "sizes", "sizes": ["1x8"]}]}, "section must be one of"),
    ({"sweeps": [{"name": "a", "section": "ablation", "sizes": ["1x8"]}]}, "lists its variants"),
    ({"sweeps": [{"name": "a", "sizes": ["1x8"], "baseline": "b"}]}, "baseline 'b' is not a sweep"),
    ({"sweeps": [{"name": "a", "sizes": ["1x8"], "baseline": 5}]}, "baseline must name a sweep of this study"),
    ({"sweeps": [{"name": "a", "sizes": ["1x8"], "baseline": "a"}]}, "baseline 'a' is this sweep itself"),
    ({"sweeps": [{"name": "a", "depths": [2, 4]}, {"name": "b", "depths": [2], "baseline": "a/nl8"}]},
     "baseline 'a/nl8' names no trial of sweep 'a' (its trials: nl2, nl4)"),
    ({"sweeps": [{"name": "a"}]}, "give sizes"),
    ({"sweeps": [{"name": "a", "sizes": ["1x8"]}, {"name": "a", "sizes": ["1x8"]}]}, "two sweeps share a name"),
    ({"sweeps": [{"name": "a", "section": "tasks", "sizes": ["1x8"]}]}, "a tasks sweep sets options"),
    ({"max_concurrent": 0}, "--max_concurrent must be >= 1, got 0"),
    ({"max_concurrent": 1.5}, "--max_concurrent must be a whole number, got 1.5"),
])
def test_bad_study_files_name_the_problem(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_study(write_study(tmp_path, tmp_path, **change))


def test_the_protocol_line_names_the_held_out_behaviour():
    from recbole_lsrm.study.report import _held_out

    assert _held_out(pd.DataFrame({"target_behavior": ["buy", None]})).startswith("each user's last two buy interactions")
    assert _held_out(pd.DataFrame({"model": ["LSRM"]})).startswith("the last item of each user is the test item")


def test_max_concurrent_bounds_every_sweep_of_the_study(tmp_path, capsys):
    study = load_study(write_study(tmp_path, tmp_path, max_concurrent=1))
    requests = [sweep.request(study, tmp_path, tmp_path) for sweep in study.sweeps]
    assert {r.resources.max_concurrent for r in requests} == {1}
    default = load_study(write_study(tmp_path, tmp_path))
    assert default.sweeps[0].request(default, tmp_path, tmp_path).resources.max_concurrent is None
    with pytest.raises(SystemExit) as stop:
        study_main([str(write_study(tmp_path, tmp_path)), "--max-concurrent=0"])
    assert stop.value.code == 2 and "--max-concurrent must be >= 1, got 0" in capsys.readouterr().err


def test_missing_study_file_and_data_exit_2(tmp_path, capsys):
    assert study_main([str(tmp_path / "nope.yaml")]) == 2
    assert "study file not found" in capsys.readouterr().err
    assert study_main([str(write_study(tmp_path, tmp_path / "absent.inter.xz"))]) == 2
    assert "is not found: set data:" in capsys.readouterr().err


def test_sizes_and_ablation_axes(tiny_dataset, tmp_path):
    shapes = parse_sizes("1x32,2x64,4x512")
    assert [(s.n_layers, s.d_model, s.n_heads) for s in shapes] == [(1, 32, 1), (2, 64, 2), (4, 512, 8)]
    with pytest.raises(ConfigError, match="cannot read '2by64'"):
        parse_sizes("2by64")
    assert ablation_options("both", {"start": 0.3, "end": 0.1}) == {}
    assert ablation_options("no-lad", {"start": 0.3, "end": 0.1}) == {"layer_dropout": 0.2}
    assert ablation_options("neither", [0.1, 0.2, 0.3]) == {"layer_dropout": 0.2, "optimizer_switch": False}
    plan = plan_from_argv(["--dataset=cyclic", f"--out={tmp_path / 's'}", f"--data_path={tiny_dataset['data_path']}",
                       "--sizes=1x16", "--ablation=both,no-so"])
    assert [(t.key, t.options.get("optimizer_switch")) for t in plan.trials] == [
        ("L1-d16-f100-s2020-both", None), ("L1-d16-f100-s2020-no-so", False)]
    with pytest.raises(ConfigError, match="set by the sweep"):
        plan_from_argv(["--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}", "--sizes=1x16",
                    "--ablation=no-so", "--optimizer_switch=True"])


# --- intervals ----------------------------------------------------------------------------------
def test_bootstrap_intervals_narrow_with_more_users_and_paired_differences_see_small_gains():
    rng = np.random.default_rng(0)
    few, many = rng.random(100), rng.random(10_000)
    (lo_few, hi_few), (lo_many, hi_many) = bootstrap_intervals({"x": few})["x"], bootstrap_intervals({"x": many})["x"]
    assert lo_few < few.mean() < hi_few and lo_many < many.mean() < hi_many
    assert (hi_many - lo_many) < (hi_few - lo_few) / 5
    # b is a + 0.01 for every user: unpaired intervals overlap, the paired one excludes 0
    a = {"ndcg@10": rng.random(2000)}
    b = {"ndcg@10": a["ndcg@10"] + 0.01}
    ia, ib = bootstrap_intervals(a)["ndcg@10"], bootstrap_intervals(b)["ndcg@10"]
    assert ib[0] < ia[1]
    diff = paired_difference(a, b, "ndcg@10")
    assert diff["lo"] == pytest.approx(0.01) and diff["hi"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="different users"):
        paired_difference(a, {"ndcg@10": np.zeros(5)}, "ndcg@10")


# --- a study end to end ----------------------------------------------------------------------------
@pytest.mark.slow
def test_study_end_to_end_report_from_the_table_and_continued_elsewhere(tiny_dataset, tmp_path, monkeypatch, capsys):
    path = write_study(tmp_path, Path(tiny_dataset["data_path"]))
    study = load_study(path)
    outcome = run_study(study, ray_init=RAY)
    assert outcome["failed"] == {} and not outcome["interrupted"]
    # The three sweeps' five trials share one Tune run: two at a time on two CPUs.
    out = capsys.readouterr().out
    assert out.count("Ray (local)") == 1 and "-> 2 trial(s) at a time" in out
    assert "ablation/L1-d16-f100-s2020-no-lad started" in out and "converged: sweep done in" in out
    table = tmp_path / "report" / "results.csv"
    rows = read_rows(table)
    assert list(rows[0])[:4] == ["sweep", "section", "held_out", "key"]
    assert [(r["sweep"], r["key"]) for r in rows] == [
        ("size", "L1-d8-f100-s2020"), ("size", "L1-d16-f100-s2020"), ("size", "L2-d16-f100-s2020"),
        ("converged", "L1-d16-f100-s2020"), ("ablation", "L1-d16-f100-s2020-no-lad")]
    assert [r["held_out"] for r in rows[:3]] == ["False", "False", "True"]  # L2-d16 predicted
    for row in rows:
        assert float(row["test_celoss_lo"]) <= float(row["test_ce_loss"]) <= float(row["test_celoss_hi"])
        assert float(row["test_ndcg@10_lo"]) <= float(row["test_ndcg@10"]) <= float(row["test_ndcg@10_hi"])
    assert rows[-1]["ablation"] == "no-lad"

    # The per-user figures behind the intervals are those of the reported test metrics.
    summary = json.loads(Path(rows[0]["summary"]).read_text())
    per_user = load_per_user(Path(summary["run_dir"]))
    assert per_user["hit@10"].mean() == pytest.approx(summary["test"]["hit@10"], abs=1e-4)
    assert per_user["ndcg@10"].mean() == pytest.approx(summary["test"]["ndcg@10"], abs=1e-4)
    assert per_user["celoss"].mean() == pytest.approx(summary["test"]["celoss"], abs=1e-4)

    report = (tmp_path / "report" / "report.md").read_text()
    for heading in ("## L(N): sweep `size`", "## Trained to convergence: sweep `converged`",
                    "## Ablation (Table III): sweep `ablation`"):
        assert heading in report
    assert "refused" in report  # two sizes to fit three constants
    assert (tmp_path / "report" / "size-fit.png").read_bytes()[:4] == b"\x89PNG"

    # The report is made again from the table alone.
    from recbole_lsrm.scaling.__main__ import main as scaling_main

    assert scaling_main(["study", str(table), "--out", str(tmp_path / "again"), "--title", "tiny"]) == 0
    assert (tmp_path / "again" / "report.md").read_text() == report

    # Continued on another machine: the trial folders are gone, the committed table is there.
    shutil.rmtree(tmp_path / "work")
    from recbole_lsrm.sweep import runner

    monkeypatch.setattr(runner, "_run_tune", lambda *a, **k: pytest.fail("finished trials ran again"))
    capsys.readouterr()
    again = run_study(load_study(path), ray_init=RAY)
    assert again["failed"] == {}
    assert "finished earlier, read from" in capsys.readouterr().out
    assert [(r["sweep"], r["key"]) for r in read_rows(table)] == [(r["sweep"], r["key"]) for r in rows]

    # ... but not if the study now runs a sweep another way.
    changed = yaml.safe_load(path.read_text())
    changed["sweeps"][1]["options"]["epochs"] = 3
    path.write_text(yaml.safe_dump(changed))
    with pytest.raises(ConfigError, match="holds trials of sweep 'converged' run with other settings"):
        run_study(load_study(path), ray_init=RAY)


def test_sweeps_run_together_must_share_their_resources(tiny_dataset, tmp_path):
    from recbole_lsrm.sweep.runner import run_sweeps

    plans = [plan_from_argv(["--dataset=cyclic", f"--data_path={tiny_dataset['data_path']}", "--depths=1",
                             f"--out={tmp_path / name}", f"--cpus-per-trial={cpus}"]) for name, cpus in (("a", 1), ("b", 2))]
    with pytest.raises(ConfigError, match="sweeps run together must share cpus_per_trial; these ask for 1 and 2"):
        run_sweeps(plans)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_backbone_sections_report_depth_trends_and_variants(tmp_path):
    """A study table with depth and variants sweeps: one table and figure for the depths, the
    steps called better only beyond the intervals, each variant next to the full model and the paper."""
    from recbole_lsrm.study.report import write_study_report

    rows = []

    def row(sweep, section, model, depth, ndcg, half=0.004):
        rows.append({"sweep": sweep, "section": section, "held_out": False, "key": f"nl{depth}-f100-s2020",
                     "size": f"nl{depth}", "model": model, "dataset": "ml-1m", "base_dataset": "ml-1m",
                     "n_layers": depth, "N": 10000 * depth, "epochs_run": 3, "train_time_s": 60.0,
                     "test_ce_loss": 7 - ndcg, "test_celoss_lo": 6.9 - ndcg, "test_celoss_hi": 7.1 - ndcg,
                     "test_ndcg@10": ndcg, "test_ndcg@10_lo": ndcg - half, "test_ndcg@10_hi": ndcg + half,
                     "test_hit@10": 2 * ndcg, "test_hit@10_lo": 2 * ndcg - half, "test_hit@10_hi": 2 * ndcg + half})

    for depth, ndcg in ((2, 0.10), (4, 0.12), (8, 0.14)):
        row("hstu-depth", "depth", "HSTU", depth, ndcg)
    for depth, ndcg in ((2, 0.10), (4, 0.101), (8, 0.08)):
        row("lsrm-depth", "depth", "LSRM", depth, ndcg)
    row("hstu-softmax", "variants", "HSTU", 4, 0.11)
    path = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    report = write_study_report(path, tmp_path, title="backbones")
    text = report.markdown.read_text()
    assert "## Backbones scaled by depth" in text and (tmp_path / "depth.png").is_file()
    assert "- HSTU: 2 -> 4 better, 4 -> 8 better; still improving at 8 blocks" in text
    assert "- GPT (LSRM): 2 -> 4 level, 4 -> 8 worse; no step is better" in text
    assert "HSTU: hstu-softmax" in text and "0.3298 (softmax instead of SiLU)" in text
    assert "Joint law" not in text  # no size or converged trials: no joint law


def test_the_data_comes_with_its_item_user_and_test_files(tmp_path):
    import io as _io
    import lzma

    from recbole_lsrm.study.runner import prepare_data
    from recbole_lsrm.study.spec import load_study

    for kind, text in (("inter", "user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t1\n"),
                       ("item", "item_id:token\tgenre:token_seq\ni1\tDrama\n"),
                       ("test.inter", "user_id:token\titem_id:token\nu1\ti1\n")):
        (tmp_path / f"d.{kind}.xz").write_bytes(lzma.compress(text.encode()))
    study = tmp_path / "s.yaml"
    study.write_text("name: s\ndataset: d\ndata: d.inter.xz\nwork: w\nreport: r\nsweeps: [{name: a, sizes: [1x16]}]\n")
    data_path = prepare_data(load_study(study), _io.StringIO())
    assert sorted(p.name for p in (data_path / "d").glob("d.*")) == ["d.inter", "d.item", "d.test.inter"]


def test_the_compare_section_lists_every_setting_and_each_domain(tmp_path):
    from recbole_lsrm.study.report import write_study_report

    rows = []
    for sweep, ndcg in (("hstu-joint", 0.05), ("hstu-beauty", 0.06)):
        rows.append({"sweep": sweep, "section": "compare", "held_out": False, "key": "nl2-f100-s2020", "size": "nl2",
                     "model": "HSTU", "dataset": "amz", "base_dataset": "amz", "n_layers": 2, "N": 100,
                     "test_ce_loss": 9.0, "test_ndcg@10": ndcg, "test_ndcg@10_lo": ndcg - 0.01,
                     "test_ndcg@10_hi": ndcg + 0.01, "domain Beauty: users": 900, "domain Beauty: ndcg@10": ndcg,
                     "domain Beauty: ndcg@10_lo": ndcg - 0.02, "domain Beauty: ndcg@10_hi": ndcg + 0.02,
                     "domain Beauty: hit@50": 4 * ndcg, "domain Beauty: hit@50_lo": 3 * ndcg,
                     "domain Beauty: hit@50_hi": 5 * ndcg})
    rows.append({**rows[0], "sweep": "hstu-sports", "domain Beauty: ndcg@10": None, "domain Sports: users": 1200,
                 "domain Sports: ndcg@10": 0.03})  # a separate model of the other domain has no Beauty users
    path = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    text = write_study_report(path, tmp_path, title="domains").markdown.read_text()
    assert "## Settings compared" in text and "| hstu-beauty | HSTU | 2 |" in text
    beauty = text[text.index("held-out item is in Beauty"):text.index("held-out item is in Sports")]
    assert "| hstu-beauty | HSTU | 900 | - | 0.0600 [0.0400, 0.0800] | 0.2400 [0.1800, 0.3000] | - |" in beauty
    assert "hstu-sports" not in beauty
    assert "| hstu-sports | HSTU | 1,200 | - | 0.0300 | - | - |" in text
    assert "![NDCG@10 per domain of the held-out item](domains.png)" in text and (tmp_path / "domains.png").is_file()


def test_a_compare_sweep_is_set_against_its_baseline_at_the_same_size_with_the_papers_finding(tmp_path, tiny_dataset):
    from recbole_lsrm.study.report import write_study_report
    from recbole_lsrm.study.runner import study_rows

    path = write_study(tmp_path, Path(tiny_dataset["data_path"]), sweeps=[
        {"name": "ids", "section": "compare", "depths": [2, 8]},
        {"name": "side-info", "section": "compare", "depths": [2, 8], "baseline": "ids",
         "paper": "Side information is  slightly worse\n in most cases."}])
    study = load_study(path)
    assert study.sweeps[1].paper == "Side information is slightly worse in most cases."

    def row(sweep, depth, ndcg):
        return {"sweep": sweep, "section": "compare", "held_out": False, "key": f"nl{depth}-f100-s2020",
                "size": f"nl{depth}", "model": "HSTU", "dataset": "ml-1m", "base_dataset": "ml-1m", "fraction": 1.0,
                "seed": 2020, "n_layers": depth, "N": 100, "test_ce_loss": 7.0, "test_ndcg@10": ndcg,
                "test_ndcg@10_lo": ndcg - 0.01, "test_ndcg@10_hi": ndcg + 0.01, "test_hit@10": 2 * ndcg,
                "test_hit@10_lo": 2 * ndcg - 0.01, "test_hit@10_hi": 2 * ndcg + 0.01, "baseline": "stale"}

    # Rows from a committed table take the study file's notes as it is now.
    committed = [row("ids", 2, 0.10), row("ids", 8, 0.12), row("side-info", 2, 0.105), row("side-info", 8, 0.08)]
    rows = study_rows(study, committed)
    assert [r.get("baseline") for r in rows] == [None, None, "ids", "ids"]
    assert rows[3]["paper"] == "Side information is slightly worse in most cases."

    table = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    text = write_study_report(table, tmp_path, title="side info").markdown.read_text()
    assert ("- side-info against ids (HSTU, 2 blocks): NDCG@10 0.1050 vs 0.1000 (+0.0050, within the intervals); "
            "HR@10 0.2100 vs 0.2000 (+0.0100, within the intervals).") in text
    assert "- side-info against ids (HSTU, 8 blocks): NDCG@10 0.0800 vs 0.1200 (-0.0400, lower beyond the intervals)" in text
    assert "- side-info: Side information is slightly worse in most cases." in text

    with pytest.raises(ConfigError, match="paper must be a sentence"):
        load_study(write_study(tmp_path, tmp_path, sweeps=[{"name": "a", "section": "compare", "paper": ["x"]}]))


def test_paired_differences_over_the_same_users_decide_the_steps_the_intervals_cannot(tmp_path):
    """Two trials tested on the same users: a small gain for every user is 'better' by the paired
    interval though the trials' own intervals overlap; each row is set against its own reference."""
    from recbole_lsrm.evaluation.intervals import save_per_user
    from recbole_lsrm.study.backbones import trend
    from recbole_lsrm.study.paired import add_paired_differences, read_paired

    rng = np.random.default_rng(0)
    base = rng.random(3000) * 0.3
    rows = []

    def row(sweep, section, depth, gain, users=3000, **extra):
        run_dir = tmp_path / f"{sweep}-{depth}"
        run_dir.mkdir()
        ndcg = np.clip(base[:users] + gain, 0, 1)
        save_per_user({"ndcg@10": ndcg, "hit@10": ndcg > 0.15}, run_dir)
        lo, hi = bootstrap_intervals({"x": ndcg})["x"]
        rows.append({"sweep": sweep, "section": section, "key": f"nl{depth}-f100-s2020", "model": "HSTU",
                     **extra, "n_layers": depth, "fraction": 1.0, "seed": 2020, "run_dir": str(run_dir),
                     "test_ndcg@10": ndcg.mean(), "test_ndcg@10_lo": lo, "test_ndcg@10_hi": hi})

    row("hstu-depth", "depth", 2, 0.0)
    row("hstu-depth", "depth", 8, 0.004)   # one step above 4 below, set against 4
    row("hstu-depth", "depth", 4, 0.002)
    row("hstu-softmax", "variants", 4, -0.003)
    row("side-info", "compare", 4, 0.0, baseline="hstu-softmax")
    row("other-users", "compare", 4, 0.0, users=2000, baseline="hstu-softmax")
    row("reference", "compare", 1, -0.01, model="RecentItems")  # one trial: every trial's reference
    row("against-reference", "compare", 2, 0.0, baseline="reference")
    row("against-depths", "compare", 6, 0.0, baseline="hstu-depth")  # no trial of its size among several
    rows = add_paired_differences(rows)
    by = {(r["sweep"], r["n_layers"]): r for r in rows}
    assert "paired_ref" not in by[("hstu-depth", 2)]
    assert by[("hstu-depth", 8)]["paired_ref"] == "hstu-depth/nl4-f100-s2020"
    assert by[("hstu-depth", 4)]["paired_ref"] == "hstu-depth/nl2-f100-s2020"
    assert by[("hstu-softmax", 4)]["paired_ref"] == "hstu-depth/nl4-f100-s2020"
    assert by[("side-info", 4)]["paired_ref"] == "hstu-softmax/nl4-f100-s2020"
    assert "paired_ref" not in by[("other-users", 4)]  # other test users: no pairing
    assert by[("against-reference", 2)]["paired_ref"] == "reference/nl1-f100-s2020"
    assert "paired_ref" not in by[("against-depths", 6)]
    diff = read_paired(by[("hstu-softmax", 4)], "ndcg@10")
    assert diff[0] == pytest.approx(-0.005, abs=2e-4) and diff[2] < 0

    depth = pd.DataFrame([r for r in rows if r["section"] == "depth"])
    a, b = depth.sort_values("n_layers").iloc[0], depth.sort_values("n_layers").iloc[1]
    assert b["test_ndcg@10_lo"] < a["test_ndcg@10_hi"]  # the trials' own intervals overlap
    steps, last_good = trend(depth)
    assert steps[0].startswith("2 -> 4 better (+0.0020 [+0.00") and last_good == 8


def test_rankers_by_depth_report_auc_with_din_beside_and_compare_sweeps_against_the_depth_trials(tmp_path):
    """A ranking study: the depth sweeps in one AUC table and figure (DIN, without a depth axis,
    as a reference), a compare sweep set against the depth sweep's trial of its size."""
    from recbole_lsrm.study.report import write_study_report

    rows = []

    def row(sweep, section, model, depth, auc, **extra):
        rows.append({"sweep": sweep, "section": section, "held_out": False, "key": f"nl{depth}-f100-s2020",
                     "size": f"nl{depth}" if depth else "DIN", "model": model, "dataset": "ml-1m",
                     "base_dataset": "ml-1m", "fraction": 1.0, "seed": 2020, "n_layers": depth,
                     "N": 1000 * (depth or 1), "epochs": 10, "epochs_run": 10 if depth == 8 else 6,
                     "train_time_s": 60.0, "test_ce_loss": None, "test_auc": auc, "test_auc_lo": auc - 0.005,
                     "test_auc_hi": auc + 0.005, "test_logloss": 1 - auc, "test_logloss_lo": 0.99 - auc,
                     "test_logloss_hi": 1.01 - auc, "test_gauc": auc - 0.1, "test_heldout_auc": auc - 0.05, **extra})

    for depth, auc in ((2, 0.80), (4, 0.82), (8, 0.84)):
        row("hstu-depth", "depth", "HSTU", depth, auc)
    for depth, auc in ((2, 0.81), (4, 0.811), (8, 0.79)):
        row("llama-depth", "depth", "Llama", depth, auc)
    row("din", "compare", "DIN", None, 0.75, baseline="hstu-depth/nl2")
    row("din-labels-only", "compare", "DIN", None, 0.70, epochs_run=10)
    row("hstu-neg-0.5", "compare", "HSTU", 2, 0.78, baseline="hstu-depth")
    path = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    text = write_study_report(path, tmp_path, title="ranking").markdown.read_text()
    assert "## Rankers scaled by depth" in text and "best ML-1M AUC .7947" in text
    assert "bootstrap intervals over test users (200 resamples)" in text
    assert ("| ranker | blocks | N | epochs | AUC [95%] | LogLoss [95%] | GAUC [95%] | held-out AUC [95%] | train min |"
            in text)
    assert "| DIN (din) | - | - | 6 | 0.7500 [0.7450, 0.7550] | 0.2500 [0.2400, 0.2600] | 0.6500 | 0.7000 | 1.0 |" in text
    assert "| DIN (din-labels-only) | - | - | 10 | 0.7000 [0.6950, 0.7050] |" in text  # two DINs, told apart
    assert "- HSTU: 2 -> 4 better, 4 -> 8 better; still improving at 8 blocks; best AUC 0.8400 at 8 blocks." in text
    assert "- Llama: 2 -> 4 level, 4 -> 8 worse; no step is better; best AUC 0.8110 at 4 blocks." in text
    assert ("Stopped by the epoch cap, not by the validation AUC (still improving): HSTU 8, Llama 8, "
            "DIN (din-labels-only).") in text
    assert "![AUC and LogLoss against depth](depth.png)" in text and (tmp_path / "depth.png").is_file()
    assert "- din against hstu-depth/nl2 (DIN): AUC 0.7500 vs 0.8000 (-0.0500, lower beyond the intervals)" in text
    assert ("- hstu-neg-0.5 against hstu-depth (HSTU, 2 blocks): AUC 0.7800 vs 0.8000 "
            "(-0.0200, lower beyond the intervals)") in text


def test_rankers_on_the_same_candidates_get_paired_auc_differences(tmp_path):
    """Rankers scored on the same candidates (same users, labels, negatives): AUC and LogLoss of
    each depth step are paired over resamples of the same users; a trial scored on other
    candidates (another neg_ratio) is not paired."""
    from recbole_lsrm.evaluation.candidates import auc, load_candidates, save_candidates
    from recbole_lsrm.study.backbones import trend
    from recbole_lsrm.study.paired import add_paired_differences, read_paired

    rng = np.random.default_rng(0)
    users = 600
    groups = np.repeat(np.arange(users), 2)
    labels = np.tile([1.0, 0.0], users)
    labels[::4] = rng.integers(0, 2, len(labels[::4]))  # some held-out interactions are dislikes
    noise = rng.normal(size=len(labels))
    rows = []

    def row(sweep, section, depth, signal, candidates=None, **extra):
        run_dir = tmp_path / f"{sweep}-{depth}"
        run_dir.mkdir()
        g, y = candidates if candidates is not None else (groups, labels)
        scores = signal * (2 * y - 1) + (noise if candidates is None else rng.normal(size=len(y)))
        save_candidates({"groups": g, "labels": y, "scores": scores}, run_dir)
        rows.append({"sweep": sweep, "section": section, "key": f"nl{depth}-f100-s2020", "model": "HSTU", **extra,
                     "n_layers": depth, "fraction": 1.0, "seed": 2020, "run_dir": str(run_dir),
                     "test_auc": auc(y, scores), "test_auc_lo": auc(y, scores) - 0.05,
                     "test_auc_hi": auc(y, scores) + 0.05})

    row("hstu-depth", "depth", 2, 0.5)
    row("hstu-depth", "depth", 4, 0.6)
    fewer = (np.arange(users), np.ones(users))  # neg_ratio 0 for the sake of argument: other candidates
    row("hstu-neg", "compare", 2, 0.5, candidates=fewer, baseline="hstu-depth")
    loaded = load_candidates(tmp_path / "hstu-depth-2")
    assert set(loaded) == {"groups", "labels", "scores"} and len(loaded["scores"]) == 2 * users
    rows = add_paired_differences(rows)
    by = {(r["sweep"], r["n_layers"]): r for r in rows}
    step = read_paired(by[("hstu-depth", 4)], "auc")
    assert step[0] == pytest.approx(rows[1]["test_auc"] - rows[0]["test_auc"]) and step[1] > 0
    assert read_paired(by[("hstu-depth", 4)], "logloss") is not None
    assert "paired_ref" not in by[("hstu-neg", 2)]
    steps, last_good = trend(pd.DataFrame([r for r in rows if r["section"] == "depth"]), "auc")
    assert steps[0].startswith("2 -> 4 better (+0.0") and last_good == 4
