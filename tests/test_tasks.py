"""The five challenge tasks on ml-100k and a two-domain fixture, with a tiny model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.pipeline import run
from recbole_lsrm.tasks.compare import compare
from recbole_lsrm.tasks.robustness import perturb
from recbole_lsrm.tasks.trajectory import trajectory_rank

from conftest import write_inter

TINY_TASK_RUN = {"n_layers": 1, "d_model": 16, "n_heads": 2, "epochs": 1, "show_progress": False, "state": "WARNING"}


def test_trajectory_rank_perfect_disjoint_and_mixed():
    future = torch.tensor([[1, 2, 3, 4]])
    assert trajectory_rank(future, future, 4).item() == pytest.approx(1.0)
    assert trajectory_rank(future.flip(1), future, 4).item() == pytest.approx(1.0)  # order within the k does not matter
    assert trajectory_rank(torch.tensor([[7, 8, 9, 10]]), future, 4).item() == 0.0
    # k = 3: generated [2, 9, 1]; true next 3 = {1, 2, 3} -> I = (1, 0, 1).
    z = 1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    expected = (1 / math.log2(2) + 1 / math.log2(4)) / z
    assert trajectory_rank(torch.tensor([[2, 9, 1, 5]]), future, 3).item() == pytest.approx(expected)
    # The j-th item only counts if it is among the true next k (not next K) items.
    assert trajectory_rank(torch.tensor([[4, 1]]), future, 1).item() == 0.0


@pytest.fixture(scope="module")
def ml100k_tasks(tmp_path_factory):
    saved = tmp_path_factory.mktemp("tasks") / "saved"
    return run("LSRM", "ml-100k", options={**TINY_TASK_RUN, "checkpoint_dir": str(saved), "tasks": "all",
                                           "robustness_draws": 2})


@pytest.mark.slow
def test_all_tasks_write_results_and_plots(ml100k_tasks):
    run_dir = Path(ml100k_tasks["run_dir"])
    results = json.loads((run_dir / "tasks.json").read_text())
    assert set(results) == {"longtail", "coldstart", "robustness", "trajectory"}  # no domain field in ml-100k
    for name in results:
        assert (run_dir / f"task_{name}.png").stat().st_size > 10_000
    groups = results["longtail"]["groups"]
    assert list(groups) == ["G1", "G2", "G3", "G4"]
    assert sum(g["test_cases"] for g in groups.values()) == 943 - results["coldstart"]["users"]
    assert max(g["items"] for g in groups.values()) - min(g["items"] for g in groups.values()) <= 1
    assert list(results["coldstart"]["by_input_length"]) == ["5", "10", "20", "30", "40", "50"]
    rates = {(r["kind"], r["consecutive"], r["p"]) for r in results["robustness"]["perturbed"]}
    assert rates == {(k, c, p) for k in ("remove", "replace") for c in (False, True) for p in (0.1, 0.2, 0.3)}
    assert list(results["trajectory"]["tr"]) == [str(k) for k in range(1, 11)]
    for value in [*results["trajectory"]["tr"].values()] + [m["ndcg@10"] for m in results["coldstart"]["by_input_length"].values()]:
        assert 0.0 <= value <= 1.0


def test_task_figures_carry_intervals_over_test_users(ml100k_tasks):
    results = json.loads((Path(ml100k_tasks["run_dir"]) / "tasks.json").read_text())
    for group in results["longtail"]["groups"].values():
        lo, hi = group["ci95"]["ndcg@10"]
        assert lo <= group["ndcg@10"] <= hi
    for k, value in results["trajectory"]["tr"].items():
        lo, hi = results["trajectory"]["tr_ci95"][k]
        assert lo <= value <= hi and hi > lo
    robustness = results["robustness"]
    assert robustness["draws"] == 2
    for entry in robustness["perturbed"]:
        draws = entry["drop_percent_draws"]["ndcg@10"]
        assert len(draws) == 2 and entry["drop_percent"]["ndcg@10"] == pytest.approx(sum(draws) / 2)
        lo, hi = entry["drop_ci95"]["ndcg@10"]
        assert lo < hi
    # the sweep's table takes them as columns
    from recbole_lsrm.sweep.results import _task_columns

    columns = _task_columns(ml100k_tasks["tasks_file"])
    assert columns["task_trajectory: TR@1_lo"] <= columns["task_trajectory: TR@1"] <= columns["task_trajectory: TR@1_hi"]
    assert "task_robustness: remove p=0.1 NDCG@10 drop %_hi" in columns


def test_drop_interval_resamples_the_same_users_clean_and_perturbed():
    import numpy as np

    from recbole_lsrm.tasks.robustness import drop_interval

    rng = np.random.default_rng(0)
    clean = rng.random(2000)
    lo, hi = drop_interval(clean, np.stack([clean * 0.8, clean * 0.8]))
    assert lo == pytest.approx(20.0) and hi == pytest.approx(20.0)  # every resample drops by exactly 20%
    lo, hi = drop_interval(clean, np.stack([rng.random(2000), rng.random(2000)]))
    assert lo < 0 < hi  # no real drop: the interval spans 0


def test_cold_start_users_are_absent_from_training(ml100k_tasks):
    from recbole_lsrm.model import get_model_class
    from recbole_lsrm.config import LSRMConfig
    from recbole_lsrm.data import create_dataset, prepare_dataloaders

    model_class = get_model_class("LSRM")
    config = LSRMConfig(model_class, "ml-100k", [], {**TINY_TASK_RUN, "cold_start_users": 0.2, "trajectory_holdout": 10})
    data = create_dataset(config, model_class)
    train, valid, test = prepare_dataloaders(config, data, model_class)
    cold = set(data.cold_start_users.tolist())
    assert len(cold) == round(0.2 * 943)
    for split in (train, valid, test):
        assert not cold & set(split.dataset.inter_feat["user_id"].tolist())
    # The trajectory hold-out: nobody's last 10 items are in any split.
    seq_last = {}
    raw = data.raw_inter_feat
    for u, i in zip(raw["user_id"].tolist(), raw["item_id"].tolist()):
        seq_last.setdefault(u, []).append(i)
    tests = dict(zip(test.dataset.inter_feat["user_id"].tolist(), test.dataset.inter_feat["item_id"].tolist()))
    u = next(iter(tests))
    assert tests[u] == seq_last[u][-11]


def test_robustness_with_p_zero_equals_clean():
    rows = _test_rows()
    for kind in ("remove", "replace"):
        for consecutive in (False, True):
            same = perturb(rows, kind, 0.0, consecutive, "item_id", "item_length", 1683, torch.Generator().manual_seed(0))
            for field in rows.columns:
                assert torch.equal(same[field], rows[field]), (kind, consecutive, field)
    removed = perturb(rows, "remove", 0.5, False, "item_id", "item_length", 1683, torch.Generator().manual_seed(0))
    assert (removed["item_length"] <= rows["item_length"]).all() and (removed["item_length"] >= 1).all()
    kept = removed["item_id_list"][0][: removed["item_length"][0]].tolist()
    original = rows["item_id_list"][0][: rows["item_length"][0]].tolist()
    assert all(i in original for i in kept) and kept == sorted(kept, key=original.index)  # order preserved


def _test_rows():
    from recbole.data.interaction import Interaction

    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([5, 3, 8, 1])
    items = torch.randint(1, 1683, (4, 8), generator=gen) * (torch.arange(8)[None, :] < lengths[:, None])
    stamps = torch.arange(32, dtype=torch.float64).view(4, 8) * (torch.arange(8)[None, :] < lengths[:, None])
    return Interaction({"item_id_list": items, "timestamp_list": stamps, "item_length": lengths,
                        "item_id": torch.tensor([3, 4, 5, 6])})


def test_robustness_clean_reference_is_the_test_metric(ml100k_tasks):
    results = json.loads((Path(ml100k_tasks["run_dir"]) / "tasks.json").read_text())
    clean = results["robustness"]["clean"]
    assert clean["ndcg@10"] == pytest.approx(ml100k_tasks["test"]["ndcg@10"])


@pytest.fixture
def two_domains(tmp_path):
    rng = np.random.default_rng(0)
    rows, items = [], []
    for u in range(40):
        for t in range(12):
            # Users 0-19 stay in A and switch to B at their last (test) item: diff-domain cases.
            domain = ("B" if t == 11 else "A") if u < 20 else ("A" if (t // 4) % 2 == 0 else "B")
            item = int(rng.integers(15)) + (0 if domain == "A" else 15)
            rows.append((f"u{u}", f"i{item}", 100 * t))
    for i in range(30):
        items.append((f"i{i}", "A" if i < 15 else "B"))
    write_inter(tmp_path / "data" / "twodom" / "twodom.inter", rows)
    write_inter(tmp_path / "data" / "twodom" / "twodom.item", items, header="item_id:token\tdomain:token")
    return {"data_path": str(tmp_path / "data"), "checkpoint_dir": str(tmp_path / "saved"), "topk": [5, 10],
            "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "domain"]}}


def test_crossdomain_classifies_test_cases(two_domains):
    summary = run("LSRM", "twodom", options={**TINY_TASK_RUN, **two_domains, "tasks": "crossdomain"})
    result = json.loads(Path(summary["tasks_file"]).read_text())["crossdomain"]["classes"]
    assert set(result) == {"mix-domain", "diff-domain"}
    assert result["mix-domain"]["test_cases"] + result["diff-domain"]["test_cases"] == 40
    assert result["mix-domain"]["test_cases"] > 0 and result["diff-domain"]["test_cases"] > 0
    assert (Path(summary["run_dir"]) / "task_crossdomain.png").exists()


def test_crossdomain_without_domains_is_a_clear_error(tiny_dataset, run_options):
    with pytest.raises(ConfigError, match="needs each item's 'domain'"):
        run("LSRM", "cyclic", options={**run_options, **tiny_dataset, "tasks": "crossdomain", "epochs": 1})


def test_unknown_task_and_checkpoint_without_cold_users(tiny_dataset, run_options):
    with pytest.raises(ConfigError, match="unknown task"):
        run("LSRM", "cyclic", options={**run_options, **tiny_dataset, "tasks": "longtail,nosuch"})
    summary = run("LSRM", "cyclic", options={**run_options, **tiny_dataset, "epochs": 1})
    with pytest.raises(ConfigError, match="cold_start_users is 0"):
        run(checkpoint_path=summary["checkpoint"], options={"tasks": "coldstart"})


def test_tasks_on_a_loaded_checkpoint_and_compare(tiny_dataset, run_options, tmp_path, capsys):
    options = {**run_options, **tiny_dataset, "epochs": 1, "tasks": "longtail,trajectory", "trajectory_holdout": 5}
    small = run("LSRM", "cyclic", options=options)
    large = run("LSRM", "cyclic", options={**options, "d_model": 32})
    again = run(checkpoint_path=small["checkpoint"])  # finished: only tested, tasks again
    assert json.loads(Path(again["tasks_file"]).read_text())["longtail"] == json.loads(Path(small["tasks_file"]).read_text())["longtail"]
    table = compare([small["run_dir"], large["run_dir"]], out=str(tmp_path / "cmp"))
    assert set(table) == {"longtail", "trajectory"} and len(table["trajectory"]) == 2
    assert (tmp_path / "cmp" / "compare.png").exists() and "TR@5" in capsys.readouterr().out


def test_trajectory_generation_in_item_chunks_equals_the_score_matrix(tiny_dataset, monkeypatch):
    """The plugin's models generate with rank_items (bounded memory); RecBole's models with the
    (users, n_items) matrix. Both pick the same items."""
    from recbole_lsrm.tasks import trajectory

    options = {**TINY_TASK_RUN, **tiny_dataset, "tasks": "trajectory", "trajectory_holdout": 4, "eval_item_chunk": 7}
    chunked = json.loads(Path(run("LSRM", "cyclic", options=options)["tasks_file"]).read_text())["trajectory"]
    monkeypatch.setattr(trajectory, "is_plugin_model", lambda model: False)
    matrix = json.loads(Path(run("LSRM", "cyclic", options=options)["tasks_file"]).read_text())["trajectory"]
    assert chunked["users"] == matrix["users"] > 0
    assert chunked["tr"] == matrix["tr"]
    assert chunked["tr"]["1"] > 0  # a learnable dataset: something is predicted right
