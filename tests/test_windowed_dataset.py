"""All-position training rows: windows cut from the end, RecBole's evaluation rows unchanged."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from recbole_lsrm.model import get_model_class
from recbole_lsrm.config import LSRMConfig
from recbole_lsrm.data import create_dataset, prepare_dataloaders
from recbole_lsrm.data.windowed_dataset import split_points, window_bounds

from conftest import write_inter


def build(model: str, dataset: str, options: dict):
    model_class = get_model_class(model)
    config = LSRMConfig(model_class, dataset, [], {"state": "WARNING", "show_progress": False, **options})
    data = create_dataset(config, model_class)
    return prepare_dataloaders(config, data, model_class)


def test_split_points_follow_recbole_leave_one_out():
    train_len, has_valid, has_test = split_points(np.array([9, 4, 3, 2, 1]))
    assert train_len.tolist() == [7, 2, 2, 2, 1]
    assert has_valid.tolist() == [True, True, False, False, False]
    assert has_test.tolist() == [True, True, True, False, False]


def test_window_bounds_cover_every_transition_once():
    start, end = window_bounds(np.array([0, 100]), np.array([7, 12]), max_len=3, stride=3)
    assert list(zip(start.tolist(), end.tolist())) == [(3, 7), (0, 4), (108, 112), (105, 109), (102, 106), (100, 103)]
    targets = np.concatenate([np.arange(s + 1, e) for s, e in zip(start, end)])
    assert sorted(targets.tolist()) == list(range(1, 7)) + list(range(101, 112))


def test_window_rows_on_hand_made_sequences(tmp_path):
    rows = [("A", f"a{t}", t) for t in range(9)] + [("B", f"b{t}", t) for t in range(3)]
    rows += [("C", "c0", 0), ("C", "c1", 1), ("D", "d0", 0)]
    write_inter(tmp_path / "hand" / "hand.inter", rows)
    train, valid, test = build("LSRM", "hand", {"data_path": str(tmp_path), "MAX_ITEM_LIST_LENGTH": 3})
    ds = train.dataset

    def tokens(field, ids):
        return [ds.id2token(field, i) if i else "-" for i in ids]

    got = sorted(
        (ds.id2token("user_id", int(u)), tokens("item_id", x.tolist()), tokens("item_id", y.tolist()), int(n))
        for u, x, y, n in zip(
            ds.inter_feat["user_id"], ds.inter_feat["item_id_list"],
            ds.inter_feat["target_item_id_list"], ds.inter_feat["item_length"],
        )
    )
    assert got == [
        ("A", ["a0", "a1", "a2"], ["a1", "a2", "a3"], 3),
        ("A", ["a3", "a4", "a5"], ["a4", "a5", "a6"], 3),
        ("B", ["b0", "-", "-"], ["b1", "-", "-"], 1),
        ("C", ["c0", "-", "-"], ["c1", "-", "-"], 1),
    ]
    v = valid.dataset.inter_feat
    assert tokens("item_id", v["item_id_list"][0].tolist()) == ["a4", "a5", "a6"]
    assert tokens("item_id", [int(v["item_id"][0])]) == ["a7"]
    assert len(valid.dataset) == 1
    t = test.dataset.inter_feat
    got_test = sorted(
        (ds.id2token("user_id", int(u)), tokens("item_id", x.tolist()), tokens("item_id", [int(y)])[0])
        for u, x, y in zip(t["user_id"], t["item_id_list"], t["item_id"])
    )
    assert got_test == [("A", ["a5", "a6", "a7"], "a8"), ("B", ["b0", "b1", "-"], "b2")]
    # Training popularity counts each training item once.
    counts = ds.item_counter
    assert counts[ds.token2id("item_id", "a0")] == 1 and counts[ds.token2id("item_id", "a6")] == 1
    assert ds.token2id("item_id", "a7") not in counts


def test_smaller_stride_overlaps_windows(tmp_path):
    write_inter(tmp_path / "s" / "s.inter", [("A", f"a{t}", t) for t in range(12)])
    train, _, _ = build("LSRM", "s", {"data_path": str(tmp_path), "MAX_ITEM_LIST_LENGTH": 4, "window_stride": 2})
    assert sorted(train.dataset.inter_feat["item_length"].tolist()) == [3, 4, 4, 4]  # 10 training items
    with pytest.raises(Exception, match="window_stride"):
        build("LSRM", "s", {"data_path": str(tmp_path), "MAX_ITEM_LIST_LENGTH": 4, "window_stride": 9})


def test_overlapping_windows_train_each_target_once_with_the_longest_history(tmp_path):
    write_inter(tmp_path / "s" / "s.inter", [("A", f"a{t}", t) for t in range(12)] + [("B", f"b{t}", t) for t in range(5)])
    options = {"data_path": str(tmp_path), "MAX_ITEM_LIST_LENGTH": 4, "window_stride": 2, "window_loss": "new"}
    train, _, _ = build("LSRM", "s", options)
    ds = train.dataset
    rows = ds.inter_feat
    seen = {}
    for items, targets, n in zip(rows["item_id_list"].tolist(), rows["target_item_id_list"].tolist(), rows["item_length"].tolist()):
        for position, target in enumerate(targets[:n]):
            if target:
                name = ds.id2token("item_id", target)
                assert name not in seen, f"{name} is trained twice"
                seen[name] = position  # the history it is predicted from: `position + 1` items
    # A: 10 training items a0..a9, targets a1..a9; B: 3 training items, targets b1, b2.
    assert sorted(seen) == sorted([f"a{t}" for t in range(1, 10)] + ["b1", "b2"])
    # Every target after a user's first L - stride has at least L - stride items before it.
    assert all(position + 1 >= 2 for name, position in seen.items() if int(name[1:]) > 2)
    # "all" keeps the overlapping targets (a target twice); a bad value is refused.
    everything, _, _ = build("LSRM", "s", {**options, "window_loss": "all"})
    assert (everything.dataset.inter_feat["target_item_id_list"] > 0).sum() > (rows["target_item_id_list"] > 0).sum()
    with pytest.raises(Exception, match="window_loss must be one of all, new"):
        build("LSRM", "s", {**options, "window_loss": "some"})


def test_ml100k_has_one_row_per_window_and_recboles_eval_rows():
    train, valid, test = build("LSRM", "ml-100k", {})
    inter = train.dataset.inter_feat
    lengths = np.bincount(test.dataset.inter_feat["user_id"].numpy())  # every ml-100k user has a test row
    n_users = int((lengths > 0).sum())
    assert n_users == 943
    rows = len(train.dataset)
    # About users x ceil(len / (L + 1)) rows, not one row per prefix (99,057).
    assert 943 <= rows < 3_000
    targets = int((inter["target_item_id_list"] > 0).sum())
    assert targets == 100_000 - 2 * 943 - 943  # every training transition once

    ref_train, ref_valid, ref_test = build("SASRec", "ml-100k", {})
    assert len(ref_train.dataset) == 99_057 - 2 * 943
    for ours, ref in ((valid, ref_valid), (test, ref_test)):
        a, b = ours.dataset.inter_feat, ref.dataset.inter_feat
        order_a, order_b = np.argsort(a["user_id"].numpy()), np.argsort(b["user_id"].numpy())
        for field in ("user_id", "item_id", "item_length", "item_id_list"):
            assert torch.equal(a[field][order_a], b[field][order_b]), field


def test_reference_data_path_last_window_test_only_split_and_target_times(tmp_path):
    """HSTU's reference data: one window per user (the latest L + 1 training items), only the last
    item held out, the targets' times alongside, timestamps exact to the second."""
    base = 1_000_000_000  # float32 would round these to steps of 64 s
    rows = [("A", f"a{t}", base + 3 * t) for t in range(9)] + [("B", f"b{t}", base + t) for t in range(3)]
    write_inter(tmp_path / "ref" / "ref.inter", rows)
    options = {
        "data_path": str(tmp_path), "MAX_ITEM_LIST_LENGTH": 3, "train_windows": "last", "time_query": "target",
        "eval_args": {"split": {"LS": "test_only"}, "order": "TO", "group_by": "user", "mode": "full"},
    }
    train, valid, test = build("HSTU", "ref", options)
    assert valid is None  # no validation item
    ds = train.dataset
    got = sorted(
        (ds.id2token("user_id", int(u)), [ds.id2token("item_id", i) if i else "-" for i in y.tolist()], times.tolist())
        for u, y, times in zip(ds.inter_feat["user_id"], ds.inter_feat["target_item_id_list"],
                               ds.inter_feat["target_timestamp_list"])
    )
    # A trains on a5..a7 -> a6..a8 minus the test item a8: its latest window a4 a5 a6 -> a5 a6 a7; nothing earlier.
    assert got == [
        ("A", ["a5", "a6", "a7"], [base + 15.0, base + 18.0, base + 21.0]),
        ("B", ["b1", "-", "-"], [base + 1.0, 0.0, 0.0]),
    ]
    assert ds.inter_feat["timestamp_list"].dtype == torch.float64
    t = test.dataset.inter_feat
    assert sorted(ds.id2token("item_id", int(i)) for i in t["item_id"]) == ["a8", "b2"]
    assert sorted(t["timestamp"].tolist()) == [base + 2.0, base + 24.0]  # the request time, exact
    with pytest.raises(Exception, match="train_windows must be one of all, last"):
        build("HSTU", "ref", {**options, "train_windows": "first"})
    with pytest.raises(Exception, match="test_only"):
        build("HSTU", "ref", {**options, "eval_args": {**options["eval_args"], "split": {"RS": [0.8, 0.1, 0.1]}}})


def test_time_order_exact_sorts_by_seconds_recbole_by_its_float32_time(tmp_path):
    base = 1_000_000_000
    # Written out of time order; 20 s apart, so float32 (64 s steps) makes them a tie.
    rows = [("A", "late", base + 30), ("A", "early", base + 10), ("A", "first", base - 10_000), ("A", "last", base + 10_000)]
    write_inter(tmp_path / "t" / "t.inter", rows)
    options = {"data_path": str(tmp_path), "MAX_ITEM_LIST_LENGTH": 5}

    def order(time_order):
        train, valid, test = build("LSRM", "t", {**options, "time_order": time_order})
        ds = test.dataset
        history = [ds.id2token("item_id", int(i)) for i in ds.inter_feat["item_id_list"][0] if i]
        return history + [ds.id2token("item_id", int(ds.inter_feat["item_id"][0]))]

    assert order("recbole") == ["first", "late", "early", "last"]  # the tie keeps file order
    assert order("exact") == ["first", "early", "late", "last"]
    with pytest.raises(Exception, match="time_order: exact orders the all-position models' data"):
        build("SASRec", "t", {**options, "time_order": "exact"})
