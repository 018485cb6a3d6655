"""Several behaviours in one log: every interaction is input, the target behaviour's are
predicted and held out (each user's last two by time), and the behaviour can be given to the
model as an embedding."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from recbole_lsrm.config import LSRMConfig
from recbole_lsrm.data import create_dataset
from recbole_lsrm.data.behaviors import behavior_split
from recbole_lsrm.errors import ConfigError, DatasetError
from recbole_lsrm.model import get_model_class
from recbole_lsrm.pipeline import run

from conftest import TINY

pytestmark = pytest.mark.usefixtures("one_thread")
BEHAVIORS = {"behavior_field": "behavior", "target_behavior": "buy"}


def write_log(root: Path, n_users: int = 40, length: int = 23, seed: int = 0) -> Path:
    """Users view items in a cycle and buy every third one (the item they viewed just before)."""
    rng = np.random.default_rng(seed)
    lines = ["user_id:token\titem_id:token\tbehavior:token\ttimestamp:float"]
    for u in range(n_users):
        start = int(rng.integers(20))
        for t in range(length):
            item = (start + t // 2) % 20
            behavior = "buy" if t % 3 == 2 else ("cart" if t % 6 == 1 else "view")
            lines.append(f"u{u}\ti{item}\t{behavior}\t{1000 + t}")
    (root / "mb").mkdir(parents=True, exist_ok=True)
    (root / "mb" / "mb.inter").write_text("\n".join(lines) + "\n")
    return root


def build(root: Path, **options):
    model_class = get_model_class("LSRM")
    config = LSRMConfig(model_class, "mb", None, {**TINY, **BEHAVIORS, "data_path": str(root), **options})
    dataset = create_dataset(config, model_class)
    return config, dataset, dataset.build()


def test_the_split_holds_out_the_last_two_targets_and_leaves_out_the_future():
    starts, lengths = np.array([0, 9]), np.array([9, 3])
    is_target = np.array([0, 0, 1, 0, 0, 1, 0, 1, 0, 1, 0, 1], bool)
    train_len, valid_at, test_at, has_valid, has_test = behavior_split(starts, lengths, is_target)
    assert list(train_len) == [5, 2] and list(test_at) == [7, 11] and valid_at[0] == 5
    assert list(has_valid) == [True, False] and list(has_test) == [True, True]


def test_targets_are_the_target_behaviours_and_every_behaviour_is_input(tmp_path):
    config, dataset, (train, valid, test) = build(write_log(tmp_path))
    buy = dataset.field2token_id["behavior"]["buy"]
    assert (test.inter_feat["behavior"].numpy() == buy).all() and (valid.inter_feat["behavior"].numpy() == buy).all()
    histories = test.inter_feat["behavior_list"].numpy()
    assert (histories[histories > 0] != buy).any()  # views and carts are in the histories
    # the test target is each user's last buy: at offset 20 (t = 21, 22 come after it, left out)
    raw = dataset.raw_inter_feat
    first = np.searchsorted(raw["user_id"].numpy(), test.inter_feat["user_id"].numpy())
    assert (test.inter_feat["item_length"].numpy() == np.minimum(20, config["MAX_ITEM_LIST_LENGTH"])).all()
    assert (test.inter_feat["item_id"].numpy() == raw["item_id"].numpy()[first + 20]).all()
    targets = train.inter_feat["target_item_id_list"].numpy()
    inputs = train.inter_feat["behavior_list"].numpy()
    kept = targets > 0
    # a window's target at position p is the next interaction: a buy
    next_behavior = np.concatenate([inputs[:, 1:], np.zeros((len(inputs), 1), int)], axis=1)
    inner = kept[:, :-1]
    assert (next_behavior[:, :-1][inner] == buy).all() and kept.sum() > 0


@pytest.mark.parametrize("model,mode", [("LSRM", "none"), ("LSRM", "embed"), ("LSRM", "token"), ("HSTU", "token"),
                                        ("Llama", "token")])
def test_a_model_trains_on_the_target_behaviour(model, mode, tmp_path):
    summary = run(model, "mb", options={**TINY, **BEHAVIORS, "behavior_mode": mode, "data_path": str(write_log(tmp_path)),
                                        "checkpoint_dir": str(tmp_path / "saved"), "topk": [5, 10]})
    assert summary["test"]["ndcg@10"] > 0


@pytest.mark.parametrize("model", ["LSRM", "HSTU", "Llama"])
def test_behaviour_tokens_double_the_row_and_keep_it_causal(model, tmp_path):
    from recbole_lsrm.model.decoder import SideInputs

    config, dataset, (train, _, _) = build(write_log(tmp_path), behavior_mode="token")
    net = get_model_class(model)(config, train).eval()
    assert net.token_length == 2 * config["MAX_ITEM_LIST_LENGTH"]
    items = torch.randint(1, 20, (2, 8))
    behaviors = torch.randint(1, 4, (2, 8))
    times = torch.arange(8, dtype=torch.float64).expand(2, 8) + 1000.0
    batch = {"item_id_list": items, "behavior_list": behaviors, "timestamp_list": times, "item_length": torch.tensor([8, 8])}
    changed = dict(batch, behavior_list=behaviors.clone())
    changed["behavior_list"][:, 5] = behaviors[:, 5] % 3 + 1
    with torch.no_grad():
        before, after = net.hidden_states(batch), net.hidden_states(changed)
    assert before.shape == (2, 8, config["d_model"])
    assert torch.equal(before[:, :5], after[:, :5]) and not torch.allclose(before[:, 5:], after[:, 5:])


def test_behaviour_tokens_need_room_in_the_attention_divisor(tmp_path):
    with pytest.raises(ConfigError, match="attention_divisor=60 is below the 100 tokens of a row"):
        run("HSTU", "mb", options={**TINY, **BEHAVIORS, "behavior_mode": "token", "attention_divisor": 60,
                                   "data_path": str(write_log(tmp_path)), "checkpoint_dir": str(tmp_path / "saved"), "topk": [5, 10]})


def test_behavior_order_orders_interactions_of_the_same_time(tmp_path):
    """A log with dates only: a buy listed before the view of the same item on its day. In file
    order the view follows the buy (after the test target, so left out); with the funnel order
    the buy comes last on its day and its day's view and cart are history."""
    lines = ["user_id:token\titem_id:token\tbehavior:token\ttimestamp:float"]
    for u in range(3):
        lines += [f"u{u}\ti5\tview\t10", f"u{u}\ti6\tbuy\t10", f"u{u}\ti7\tbuy\t20",
                  f"u{u}\ti1\tbuy\t30", f"u{u}\ti1\tview\t30", f"u{u}\ti2\tcart\t30"]
    (tmp_path / "mb").mkdir()
    (tmp_path / "mb" / "mb.inter").write_text("\n".join(lines) + "\n")

    def test_history(**options):
        _, dataset, (_, _, test) = build(tmp_path, MAX_ITEM_LIST_LENGTH=10, **options)
        items = test.inter_feat["item_id_list"][0].tolist()
        return [dataset.id2token("item_id", i) for i in items if i], dataset.id2token("item_id", int(test.inter_feat["item_id"][0]))

    assert test_history() == (["i5", "i6", "i7"], "i1")
    assert test_history(behavior_order=["view", "cart", "buy"]) == (["i5", "i6", "i7", "i1", "i2"], "i1")
    assert test_history(behavior_order=["view", "cart", "buy"], input_behaviors=["buy", "view"]) == (["i5", "i6", "i7", "i1"], "i1")


def test_behavior_loss_all_trains_on_every_next_interaction(tmp_path):
    root = write_log(tmp_path)
    _, dataset, (target_only, _, _) = build(root)
    _, _, (every, _, _) = build(root, behavior_loss="all")
    field = dataset.target_list_field
    positions = int(every.inter_feat[dataset.item_list_length_field].sum())
    assert int((every.inter_feat[field] > 0).sum()) == positions  # a target at every input position
    # buys are every third interaction: a third of the positions predict one
    assert int((target_only.inter_feat[field] > 0).sum()) in range(positions // 3 - 40, positions // 3 + 41)


def test_recent_items_ranks_the_users_own_items_latest_first(tmp_path):
    model_class = get_model_class("RecentItems")
    config = LSRMConfig(model_class, "mb", None, {**BEHAVIORS, "data_path": str(write_log(tmp_path)), "MAX_ITEM_LIST_LENGTH": 8})
    train, _, test = create_dataset(config, model_class).build()
    model = model_class(config, train).eval()
    rows = test.inter_feat
    scores = model.full_sort_predict(rows)
    counts = torch.as_tensor(train.train_item_counts, dtype=torch.float)
    for row in range(len(rows)):
        history = rows["item_id_list"][row, : int(rows["item_length"][row])].tolist()
        latest_first = list(dict.fromkeys(reversed(history)))
        ranked = scores[row, 1:].argsort(descending=True, stable=True) + 1
        assert ranked[: len(latest_first)].tolist() == latest_first
        rest = ranked[len(latest_first):]
        assert torch.all(counts[rest][:-1] >= counts[rest][1:])  # then by training popularity


def test_recent_items_reads_no_behaviour_input(tmp_path):
    with pytest.raises(ConfigError, match="behavior_mode: embed feeds side information or behaviours"):
        LSRMConfig(get_model_class("RecentItems"), "mb", None,
                   {**BEHAVIORS, "behavior_mode": "embed", "data_path": str(write_log(tmp_path))})


def test_input_behaviors_leave_the_others_out_and_say_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        _, dataset, _ = build(write_log(tmp_path), input_behaviors=["buy", "cart"])
    assert set(dataset.field2id_token["behavior"][1:]) == {"buy", "cart"}
    assert "interactions are of behaviours outside input_behaviors ['buy', 'cart'] and are left out" in caplog.text


@pytest.mark.parametrize("options,message", [
    ({"target_behavior": "fav"}, "behaviour(s) fav never occur in mb.inter (its behavior values: buy, cart, view)"),
    ({"input_behaviors": ["view"]}, "input_behaviors ['view'] must include the target behaviour 'buy'"),
    ({"behavior_field": None}, "target_behavior need behavior_field"),
    ({"target_behavior": None}, "behavior_field: behavior needs target_behavior"),
    ({"behavior_field": "action"}, "behavior_field: mb.inter has no column 'action'"),
    ({"tasks": "trajectory"}, "the trajectory task"),
    ({"behavior_order": ["view", "buy"]}, "behavior_order ['view', 'buy'] must name each behaviour of mb.inter once"),
    ({"behavior_order": ["view", "cart", "buy", "fav"]}, "must name each behaviour of mb.inter once"),
    ({"behavior_field": None, "target_behavior": None, "behavior_order": ["view"]}, "behavior_order need behavior_field"),
    ({"behavior_field": None, "target_behavior": None, "behavior_loss": "all"}, "behavior_loss need behavior_field"),
])
def test_bad_behaviour_settings_are_named(options, message, tmp_path):
    with pytest.raises(ConfigError) as caught:
        build(write_log(tmp_path), **options)
    assert message in str(caught.value)


def test_recboles_own_models_refuse_behaviours(tmp_path):
    with pytest.raises(ConfigError, match="SASRec reads item ids only"):
        LSRMConfig(get_model_class("SASRec"), "mb", None, {**BEHAVIORS, "data_path": str(write_log(tmp_path))})


def test_a_given_test_file_holds_the_test_items(tmp_path, caplog):
    root = write_log(tmp_path)
    lines = ["user_id:token\titem_id:token\tbehavior:token"] + [f"u{u}\ti{(u * 7) % 20}\tbuy" for u in range(40)]
    lines.append("ghost\ti1\tbuy")  # a user with no history
    (root / "mb" / "mb.test.inter").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        _, dataset, (_, valid, test) = build(root, test_inter=True)
    tokens = dataset.field2id_token
    users = [tokens["user_id"][u] for u in test.inter_feat["user_id"].numpy()]
    items = [tokens["item_id"][i] for i in test.inter_feat["item_id"].numpy()]
    assert items == [f"i{(int(u[1:]) * 7) % 20}" for u in users] and len(users) == 40
    # the validation target is each user's last buy of the .inter (offset 20), the test row's input is all of it
    assert (valid.inter_feat["item_length"].numpy() == 20).all() and (test.inter_feat["item_length"].numpy() == 23).all()
    assert "1 test rows of users without interactions are left out" in caplog.text
    with pytest.raises(Exception, match="mb.test.inter not found"):
        (root / "mb" / "mb.test.inter").unlink()
        build(root, test_inter=True)


@pytest.mark.parametrize("rows, message", [
    (["user_id:token\titem_id:token"] + [f"u{u}\ti1" for u in range(40)], "no column(s) behavior (each held-out row"),
    (["user_id:token\titem_id:token\tbehavior:token", "u1\ti1\tbuy", "u2\ti2\tbuy", "u1\ti3\tbuy"],
     "user(s) u1 have more than one row"),
])
def test_a_test_file_without_behaviours_or_with_a_user_twice_is_refused(tmp_path, rows, message):
    root = write_log(tmp_path)
    (root / "mb" / "mb.test.inter").write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match=re.escape(message)):
        build(root, test_inter=True)


def test_a_target_behaviour_that_leaves_nothing_to_test_is_refused(tmp_path):
    root = write_log(tmp_path)
    inter = root / "mb" / "mb.inter"
    lines = inter.read_text().splitlines()
    first_buy = next(i for i, line in enumerate(lines) if "\tbuy\t" in line)
    lines = [line.replace("\tbuy\t", "\tview\t") if i != first_buy else line for i, line in enumerate(lines)]
    inter.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="target_behavior buy: nothing to test on. It occurs 1 time"):
        build(root)
