"""Top-k items for users (their whole history as input) or for histories given directly.

The plugin's models rank in item chunks (:func:`~recbole_lsrm.model.next_item.rank_items`), so
memory stays bounded for any catalogue; RecBole's models through their ``full_sort_predict``.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from recbole.data.interaction import Interaction

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model.contract import is_plugin_model
from recbole_lsrm.model.next_item import rank_items
from recbole_lsrm.options import setting
from recbole_lsrm.recommend.loading import TrainedRun


def _ids(run: TrainedRun, field: str, tokens: Iterable, what: str) -> list[int]:
    """Internal ids of raw ids; every unknown one named in one error."""
    known = run.dataset.field2token_id[field]
    tokens = [str(t) for t in tokens]
    unknown = [t for t in tokens if t not in known or known[t] == 0]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise ConfigError(f"unknown {what}(s) in {run.config['dataset']}: {shown}")
    return [known[t] for t in tokens]


def user_histories(run: TrainedRun, users: Sequence) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Each user's items (internal ids) and times, oldest first: every interaction of the data."""
    uids = _ids(run, run.user_field, users, "user")
    feat = run.dataset.raw_inter_feat
    all_users = feat[run.user_field].numpy()
    items = feat[run.item_field].numpy()
    time_field = run.config["TIME_FIELD"]
    times = feat[time_field].numpy() if time_field in feat.columns else None
    starts = np.searchsorted(all_users, uids, side="left")  # raw_inter_feat is sorted by user, then time
    ends = np.searchsorted(all_users, uids, side="right")
    return [(items[s:e], None if times is None else times[s:e]) for s, e in zip(starts, ends)]


def user_behaviors(run: TrainedRun, users: Sequence) -> list[np.ndarray] | None:
    """Each user's behaviour ids, aligned with :func:`user_histories`; None without behaviours."""
    seq_field = getattr(run.model, "BEHAVIOR_SEQ", None)
    if getattr(run.model, "behavior_embedding", None) is None or seq_field is None:
        return None
    field = seq_field[: -len(run.config["LIST_SUFFIX"])]
    uids = _ids(run, run.user_field, users, "user")
    feat = run.dataset.raw_inter_feat
    all_users, values = feat[run.user_field].numpy(), feat[field].numpy()
    starts, ends = np.searchsorted(all_users, uids, side="left"), np.searchsorted(all_users, uids, side="right")
    return [values[s:e] for s, e in zip(starts, ends)]


def _interaction(run: TrainedRun, histories: list[tuple[np.ndarray, np.ndarray | None]],
                 users: Sequence[int] | None = None, behaviors: list[np.ndarray] | None = None) -> Interaction:
    """Rows as the evaluation builds them: the last MAX_ITEM_LIST_LENGTH items, padded at the end
    (and the rows' users, internal ids, which user features read)."""
    config = run.config
    length = config["MAX_ITEM_LIST_LENGTH"]
    item_seq = torch.zeros((len(histories), length), dtype=torch.long)
    lengths = torch.zeros(len(histories), dtype=torch.long)
    time_seq_field = config["TIME_FIELD"] + config["LIST_SUFFIX"]
    uses_time = time_seq_field in run.dataset.field2type and all(t is not None for _, t in histories)
    time_seq = torch.zeros((len(histories), length), dtype=torch.float64)
    last_time = torch.zeros(len(histories), dtype=torch.float64)
    for row, (items, times) in enumerate(histories):
        items = np.asarray(items)[-length:]
        item_seq[row, : len(items)] = torch.as_tensor(items, dtype=torch.long)
        lengths[row] = len(items)
        if uses_time:
            times = np.asarray(times, dtype=np.float64)[-length:]
            time_seq[row, : len(times)] = torch.as_tensor(times)
            last_time[row] = float(times[-1])
    data = {config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]: item_seq, config["ITEM_LIST_LENGTH_FIELD"]: lengths}
    if uses_time:
        data[time_seq_field] = time_seq
        data[config["TIME_FIELD"]] = last_time  # the request's time: the last input's
    if users is not None:
        data[config["USER_ID_FIELD"]] = torch.as_tensor(list(users), dtype=torch.long)
    if behaviors is not None:
        behavior_seq = torch.zeros((len(histories), length), dtype=torch.long)
        for row, values in enumerate(behaviors):
            values = np.asarray(values)[-length:]
            behavior_seq[row, : len(values)] = torch.as_tensor(values, dtype=torch.long)
        data[run.model.BEHAVIOR_SEQ] = behavior_seq
    return Interaction(data).to(run.device)


@torch.no_grad()
def top_items(run: TrainedRun, histories: list[tuple[np.ndarray, np.ndarray | None]], k: int,
              exclude_history: bool = True, users: Sequence[int] | None = None,
              behaviors: list[np.ndarray] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores (B, k), internal item ids (B, k)) after each history; -inf where fewer than k items remain."""
    model, config = run.model, run.config
    n_items = run.dataset.item_num - 1
    if not 1 <= k <= n_items:
        raise ConfigError(f"k must be in [1, {n_items}] (the items of {config['dataset']}), got {k}")
    scores, ids = [], []
    batch = int(config["eval_batch_size"])
    for start in range(0, len(histories), batch):
        interaction = _interaction(run, histories[start : start + batch],
                                   None if users is None else users[start : start + batch],
                                   None if behaviors is None else behaviors[start : start + batch])
        seq = interaction[config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]]
        if is_plugin_model(model):
            top_scores, top_ids, _ = rank_items(
                model.full_sort_hidden(interaction).float(), model.item_table().float(), k,
                exclude=seq if exclude_history else None, chunk=setting(config, "eval_item_chunk"),
            )
        else:
            all_scores = model.full_sort_predict(interaction).view(len(seq), -1).float()
            all_scores[:, 0] = float("-inf")
            if exclude_history:
                all_scores.scatter_(1, seq, float("-inf"))
            top_scores, top_ids = torch.topk(all_scores, k, dim=1)
        scores.append(top_scores.cpu())
        ids.append(top_ids.cpu())
    return torch.cat(scores), torch.cat(ids)


def recommend(
    run: TrainedRun,
    users: Sequence | None = None,
    k: int = 10,
    exclude_history: bool = True,
    histories: Mapping[str, Sequence] | None = None,
    times: Mapping[str, Sequence[float]] | None = None,
) -> pd.DataFrame:
    """The top-k items for raw ``users`` (their whole history as input), or for ``histories``
    given directly (a name -> raw item ids, oldest first, e.g. a new session; ``times`` gives
    their timestamps in seconds, which a model with a time bias needs): a DataFrame of
    ``user, rank, item, score`` (raw ids; rank from 1). Items already in the input are left
    out with ``exclude_history``. Unknown users and items are refused by name.
    """
    if (users is None) == (histories is None):
        raise ConfigError("give users or histories (one of them)")
    user_ids = behaviors = None
    if users is not None:
        names = [str(u) for u in users]
        inputs = user_histories(run, names)
        user_ids = _ids(run, run.user_field, names, "user")
        behaviors = user_behaviors(run, names)
    else:
        names = [str(n) for n in histories]
        if getattr(run.model, "behavior_embedding", None) is not None:
            raise ConfigError("this model reads each input's behaviour (behavior_mode: embed): recommend for "
                              "users (their logged behaviours), not for histories of items alone")
        times = times or {}
        untimed = [n for n in names if n not in times]
        if getattr(run.model, "num_time_buckets", None) is not None and untimed:
            raise ConfigError(
                f"this model's relative attention bias reads the time of every input item (rab: position_time), "
                f"and {', '.join(untimed[:10])} has none: give one timestamp in seconds per item, oldest first "
                "(--times=T1,T2,... beside --history; times={name: [...]} in Python)")
        inputs = [(np.asarray(_ids(run, run.item_field, items, "item")),
                   None if name not in times else np.asarray(times[name], dtype=np.float64))
                  for name, items in histories.items()]
        unmatched = [n for n, (items, when) in zip(names, inputs) if when is not None and len(when) != len(items)]
        if unmatched:
            raise ConfigError(f"times of {', '.join(unmatched[:10])}: one timestamp per item is needed")
    empty = [n for n, (items, _) in zip(names, inputs) if len(items) == 0]
    if empty:
        raise ConfigError(f"no items in the history of {', '.join(empty[:10])}: a model ranks after at least one")
    scores, ids = top_items(run, inputs, k, exclude_history, user_ids, behaviors)
    item_tokens = run.dataset.field2id_token[run.item_field]
    rows = [
        (name, rank + 1, item_tokens[int(item)], float(score))
        for name, row_scores, row_ids in zip(names, scores, ids)
        for rank, (score, item) in enumerate(zip(row_scores, row_ids))
        if torch.isfinite(score)
    ]
    return pd.DataFrame(rows, columns=["user", "rank", "item", "score"])


# Columns of a dataset's .item file that name an item for people, first found wins.
TITLE_COLUMNS = ("title", "movie_title", "name", "item_name")


def item_titles(run: TrainedRun) -> dict[str, str]:
    """Raw item id -> its title, from the dataset's ``.item`` file where it has a title column
    (ml-100k's ``movie_title``, ML-1M's ``title``); empty where there is none."""
    config = run.config
    path = os.path.join(config["data_path"], f"{config['dataset']}.item")
    separator = config["field_separator"]
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split(separator)
            names = [h.split(":", 1)[0] for h in header]
            item = names.index(config["ITEM_ID_FIELD"])
            title = next(names.index(c) for c in TITLE_COLUMNS if c in names)
            rows = (line.rstrip("\n").split(separator) for line in f)
            return {row[item]: row[title] for row in rows if len(row) > max(item, title)}
    except (OSError, UnicodeDecodeError, ValueError, StopIteration):
        return {}  # no .item file, no id or title column: ids alone
