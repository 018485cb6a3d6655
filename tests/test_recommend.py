"""After training: a run loads back from its folder, recommends as its own test ranked, and
exports vectors whose dot products rank the same items."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recbole_lsrm.errors import CheckpointError, ConfigError
from recbole_lsrm.pipeline import run
from recbole_lsrm.recommend import export, export_run, load_run, recommend, user_histories
from recbole_lsrm.recommend.export import EXPORT_FILES
from recbole_lsrm.recommend.ranking import item_titles
from recbole_lsrm.recommend.__main__ import main as recommend_main

from conftest import TINY, cyclic_sequences, write_inter

pytestmark = pytest.mark.usefixtures("one_thread")


def _train(root: Path, model: str, **options) -> dict:
    write_inter(root / "data" / "cyclic" / "cyclic.inter", cyclic_sequences())
    return run(model, "cyclic", options={**TINY, "data_path": str(root / "data"), "checkpoint_dir": str(root / "saved"),
                                         "topk": [5, 10], **options})


@pytest.fixture(scope="module")
def lsrm_run(tmp_path_factory) -> dict:
    return _train(tmp_path_factory.mktemp("lsrm"), "LSRM")


@pytest.fixture(scope="module")
def hstu_run(tmp_path_factory) -> dict:
    return _train(tmp_path_factory.mktemp("hstu"), "HSTU")


@pytest.fixture(scope="module")
def fmlp_run(tmp_path_factory) -> dict:
    return _train(tmp_path_factory.mktemp("fmlp"), "FMLPRec", hidden_size=16, inner_size=32)


def _test_metrics(trained, k: int = 10) -> tuple[float, float]:
    """HR@k and NDCG@k of recommend() on the run's test rows: every item but the last as input."""
    users = list(trained.dataset.field2id_token[trained.user_field][1:])
    tokens = trained.dataset.field2id_token[trained.item_field]
    histories, times, targets = {}, {}, {}
    for user, (items, when) in zip(users, user_histories(trained, users)):
        histories[user] = [tokens[i] for i in items[:-1]]
        times[user] = when[:-1]
        targets[user] = tokens[items[-1]]
    top = recommend(trained, histories=histories, times=times, k=k, exclude_history=False)
    hits = top[top["item"] == top["user"].map(targets)]
    return len(hits) / len(users), float(sum(1 / math.log2(r + 1) for r in hits["rank"]) / len(users))


@pytest.mark.parametrize("name", ["lsrm_run", "hstu_run", "fmlp_run"])
def test_recommend_ranks_the_test_users_as_the_run_tested_them(name, request):
    summary = request.getfixturevalue(name)
    trained = load_run(summary["run_dir"])
    hit, ndcg = _test_metrics(trained)
    # RecBole rounds its metrics to 4 decimals
    assert hit == pytest.approx(summary["test"]["hit@10"], abs=6e-5)
    assert ndcg == pytest.approx(summary["test"]["ndcg@10"], abs=6e-5)
    assert 0 < hit and ndcg < 1  # a real test: targets ranked, not all first


def test_load_run_has_the_best_weights_in_eval_mode(lsrm_run):
    trained = load_run(lsrm_run["run_dir"])
    stored = torch.load(Path(lsrm_run["run_dir"]) / "best_model.pth", weights_only=True)["model"]
    assert not trained.model.training
    for key, value in trained.model.state_dict().items():
        assert torch.equal(value, stored[key]), key


def test_a_history_given_directly_ranks_like_the_users_own(lsrm_run):
    trained = load_run(lsrm_run["run_dir"])
    tokens = trained.dataset.field2id_token[trained.item_field]
    items, _ = user_histories(trained, ["u1"])[0]
    by_user = recommend(trained, users=["u1"], k=5)
    by_history = recommend(trained, histories={"u1": [tokens[i] for i in items]}, k=5)
    assert by_user.equals(by_history)
    assert len(by_user) == 5 and list(by_user["rank"]) == [1, 2, 3, 4, 5]
    assert not set(by_user["item"]) & {tokens[i] for i in items[-trained.config["MAX_ITEM_LIST_LENGTH"]:]}


def test_unknown_users_and_items_are_named(lsrm_run):
    trained = load_run(lsrm_run["run_dir"])
    with pytest.raises(ConfigError, match="unknown user\\(s\\) in cyclic: nobody, ghost"):
        recommend(trained, users=["u1", "nobody", "ghost"])
    with pytest.raises(ConfigError, match="unknown item\\(s\\) in cyclic: zz"):
        recommend(trained, histories={"s": ["i1", "zz"]})


def test_the_export_reproduces_the_ranking(lsrm_run, tmp_path):
    trained = load_run(lsrm_run["run_dir"])
    paths = export_run(trained, tmp_path / "export")
    items, users = np.load(paths["items.npy"]), np.load(paths["users.npy"])
    item_ids = pd.read_parquet(paths["items.parquet"])["item"].tolist()
    user_ids = pd.read_parquet(paths["users.parquet"])["user"].tolist()
    assert items.shape == (len(item_ids), trained.config["d_model"]) and users.shape[0] == len(user_ids) == 60
    expected = recommend(trained, users=user_ids[:5], k=5, exclude_history=False)
    for row, user in enumerate(user_ids[:5]):
        order = np.argsort(-(users[row] @ items.T))[:5]
        assert [item_ids[i] for i in order] == expected[expected["user"] == user]["item"].tolist()
    assert "users[u] . items[i]" in paths["README.md"].read_text()


def test_an_export_never_overwrites_or_mixes_with_other_files(lsrm_run, tmp_path, capsys):
    trained = load_run(lsrm_run["run_dir"])
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "README.md").write_text("my notes\n")
    assert recommend_main([lsrm_run["run_dir"], f"--export={theirs}"]) == 2
    assert "already holds other files (README.md)" in capsys.readouterr().err
    assert [p.name for p in theirs.iterdir()] == ["README.md"] and (theirs / "README.md").read_text() == "my notes\n"
    # An earlier export of ours is replaced whole, and an empty folder is used as it is.
    ours = tmp_path / "ours"
    export_run(trained, ours)
    (ours / "users.npy").unlink()
    export_run(trained, ours)
    assert sorted(p.name for p in ours.iterdir()) == sorted(EXPORT_FILES)
    (tmp_path / "empty").mkdir()
    export_run(trained, tmp_path / "empty")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def test_an_interrupted_export_leaves_nothing_half_written(lsrm_run, tmp_path, monkeypatch):
    trained = load_run(lsrm_run["run_dir"])
    earlier = tmp_path / "earlier"
    export_run(trained, earlier)
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}

    def terminated(*args, **kwargs):
        raise KeyboardInterrupt  # what SIGTERM becomes in the commands

    monkeypatch.setattr(export, "_save_parquet", terminated)
    for out in (tmp_path / "new", earlier):
        with pytest.raises(KeyboardInterrupt):
            export_run(trained, out)
    assert not (tmp_path / "new").exists()
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before  # the earlier export, as it was
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_users_named_twice_are_refused_and_a_byte_order_mark_is_no_user(lsrm_run, tmp_path, capsys):
    assert recommend_main([lsrm_run["run_dir"], "--users=u1,u2,u1", "--k=2"]) == 2
    assert "error: --users names u1 more than once" in capsys.readouterr().err
    users_file = tmp_path / "users.txt"
    users_file.write_text("\ufeffu3\nu4\n", encoding="utf-8")
    assert recommend_main([lsrm_run["run_dir"], f"--users-file={users_file}", "--k=2"]) == 0
    shown = capsys.readouterr().out
    assert "u3" in shown and "u4" in shown


def test_a_history_for_a_time_aware_model_needs_its_times(hstu_run, capsys):
    assert hstu_run["options"].get("rab", "position_time") == "position_time"
    assert recommend_main([hstu_run["run_dir"], "--history=i1,i2,i3", "--k=3"]) == 2
    err = capsys.readouterr().err
    assert "rab: position_time" in err and "--times=T1,T2" in err and "Traceback" not in err
    assert recommend_main([hstu_run["run_dir"], "--history=i1,i2,i3", "--times=1000,1010,1020", "--k=3"]) == 0
    assert capsys.readouterr().out.count("history ") == 3  # three items listed
    assert recommend_main([hstu_run["run_dir"], "--history=i1,i2", "--times=1000,soon"]) == 2
    assert "--times must be numbers" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    ("weights", "has a summary.json but no best_model.pth"),
    ("options", "options must be a mapping of option: value, got ['epochs', 2]"),
    ("banana", "--device must be cpu, cuda or cuda:N, got 'banana'"),
    ("cuda", "--device=cuda: this machine has no CUDA GPU"),
])
def test_a_damaged_run_or_a_bad_device_is_named(lsrm_run, tmp_path, capsys, damage, message):
    if damage == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    copy = tmp_path / "run"
    shutil.copytree(lsrm_run["run_dir"], copy)
    device = damage if damage in ("banana", "cuda") else "cpu"
    if damage == "weights":
        (copy / "best_model.pth").unlink()
    if damage == "options":
        summary = json.loads((copy / "summary.json").read_text())
        (copy / "summary.json").write_text(json.dumps({**summary, "options": ["epochs", 2]}))
    assert recommend_main([str(copy), "--users=u1", f"--device={device}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err, err


def test_printed_recommendations_show_the_titles_of_the_item_file(lsrm_run, tmp_path, capsys):
    trained = load_run(lsrm_run["run_dir"])
    assert item_titles(trained) == {}  # the cyclic data has no .item file: ids alone
    item_file = Path(trained.config["data_path"]) / "cyclic.item"
    item_file.write_text("item_id:token\ttitle:token_seq\n" + "".join(f"i{i}\tFilm number {i}\n" for i in range(30)))
    try:
        assert recommend_main([lsrm_run["run_dir"], "--users=u1", "--k=3"]) == 0
        shown = capsys.readouterr().out
        assert "title" in shown.splitlines()[0] and "Film number" in shown
    finally:
        item_file.unlink()


def test_the_command_line_writes_a_csv_and_names_bad_input(lsrm_run, tmp_path, capsys):
    out = tmp_path / "top3.csv"
    assert recommend_main([lsrm_run["run_dir"], "--users=u1,u2", "--k=3", f"--out={out}"]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["user", "rank", "item", "score"] and len(table) == 6
    users_file = tmp_path / "users.txt"
    users_file.write_text("u3\nu4\n")
    assert recommend_main([lsrm_run["run_dir"], f"--users-file={users_file}", "--k=2"]) == 0
    assert "u4" in capsys.readouterr().out
    assert recommend_main([lsrm_run["run_dir"], "--users=nobody"]) == 2
    assert "error: unknown user(s) in cyclic: nobody" in capsys.readouterr().err
    assert recommend_main([lsrm_run["run_dir"]]) == 2
    assert "give one of --users" in capsys.readouterr().err


def test_a_folder_that_is_not_a_finished_run_says_what_is_missing(lsrm_run, tmp_path):
    with pytest.raises(ConfigError, match="run folder not found"):
        load_run(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "checkpoint.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match="no summary.json.*finish it with python run_recbole_lsrm.py --checkpoint="):
        load_run(tmp_path / "half")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "summary.json").write_text(Path(lsrm_run["run_dir"], "summary.json").read_text())
    torch.save({"format": "someone-else/3", "model": {}}, foreign / "best_model.pth")
    with pytest.raises(CheckpointError, match="another version"):
        load_run(foreign)


def test_recboles_own_models_load_and_recommend_too(tmp_path):
    summary = _train(tmp_path, "SASRec", n_layers=1, hidden_size=16, inner_size=32, n_heads=2, epochs=1,
                     loss_type="CE", train_neg_sample_args=None)
    trained = load_run(summary["run_dir"])
    top = recommend(trained, users=["u1"], k=3)
    assert len(top) == 3
    with pytest.raises(ConfigError, match="--export needs a model whose scores"):
        export_run(trained, tmp_path / "export")


def test_a_run_writes_tensorboard_scalars_and_its_curves(lsrm_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = Path(lsrm_run["run_dir"])
    events = EventAccumulator(str(run_dir / "log_tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/epoch_loss", "train/sgd", "valid/celoss", "valid/ndcg@10"} <= tags
    epochs = len(lsrm_run["history"])
    assert [e.step for e in events.Scalars("valid/celoss")] == list(range(epochs))
    steps = events.Scalars("train/loss")
    assert len(steps) == len({e.step for e in steps}) and len(steps) % epochs == 0 and len(steps) >= epochs
    assert [round(e.value, 5) for e in events.Scalars("train/epoch_loss")] == [
        round(r["train_loss"], 5) for r in lsrm_run["history"]]
    curves = run_dir / "curves.png"
    assert lsrm_run["curves"] == str(curves) and curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tensorboard_can_be_turned_off(tmp_path):
    summary = _train(tmp_path, "LSRM", epochs=1, log_tensorboard=False)
    assert not (Path(summary["run_dir"]) / "log_tensorboard").exists()


def test_the_config_goes_to_run_log_not_the_console(lsrm_run, tmp_path, capsys):
    _train(tmp_path, "LSRM", epochs=1, state="INFO")
    out = capsys.readouterr().out
    run_log = next((tmp_path / "saved").glob("*/run.log")).read_text()
    assert "learning_rate" in run_log and "General Hyper Parameters" in run_log
    assert "General Hyper Parameters" not in out


def test_cpu_threads_follow_the_option_and_default_to_the_affinity():
    import os

    from recbole_lsrm.pipeline import cpu_threads

    assert cpu_threads({"cpu_threads": 3}) == 3
    assert 1 <= cpu_threads({"cpu_threads": None}) <= len(os.sched_getaffinity(0))
