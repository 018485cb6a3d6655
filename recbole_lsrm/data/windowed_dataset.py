"""All-position training data: one row per window of a user's training items.

RecBole's ``SequentialDataset`` copies every prefix of every sequence into its own row
(ml-100k: 99,057 rows for 943 users) so that each row trains one next-item prediction. A
causal decoder predicts the next item at every position in one pass, so LSRM needs only one
row per window of ``MAX_ITEM_LIST_LENGTH + 1`` items:

    items  i0 i1 i2 i3 i4 i5 i6 i7        (a user's training part, L = 3, stride 3)
    rows   [i4 i5 i6] -> [i5 i6 i7]       windows cut from the end of the sequence,
           [i1 i2 i3] -> [i2 i3 i4]       neighbours share one item, so every
           [i0]       -> [i1]             transition is a target exactly once

A smaller ``window_stride`` overlaps windows more (more rows, targets seen with other
contexts). Rows and memory grow with the number of interactions, not interactions x L.

With cut-apart windows a target sees on average half a window of history. ``window_loss:
new`` keeps the overlap but trains each target once, in the window where it has the most
history: a window's targets that the window before it (earlier in time, same user) also
holds are set to padding, so they count for nothing in the loss::

    items  i0 .. i7, L = 4, stride 2, window_loss new (targets in capitals, x = not trained)
    rows   [i3 i4 i5 i6] -> [x  x  I6 I7]
           [i1 i2 i3 i4] -> [x  x  I4 I5]
           [i0 i1 i2]    -> [I1 I2 I3]

Every target but a user's first L - stride then has at least L - stride items of history.

``train_windows: last`` keeps only each user's most recent window (one row per user, as
HSTU's reference trains): a user's earlier items are then never targets.

Validation and test rows are exactly RecBole's leave-one-out rows (last item test,
second-to-last validation, with the up to L items before each as history), so full-sort
evaluation is unchanged and comparable with RecBole's models. ``split: {LS: test_only}``
holds out the last item only (HSTU's reference split): the second-to-last is then trained on,
there is no validation set, and training runs its ``epochs`` and keeps the last weights.

Timestamps stay float64 here (RecBole keeps float fields as float32, which at Unix times near
1e9 s steps by 64 s), so HSTU's time buckets see gaps of single seconds. By default
(``time_order: recbole``) sequences are still ordered as RecBole orders them (by the float32
time, ties in file order), so every model trains and is tested on the same targets as RecBole's
own models; ``time_order: exact`` orders by the exact seconds (ties in file order), as HSTU's
reference sorts.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import pandas as pd
import torch

from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_lsrm.data.atomic_file import AtomicFileMixin
from recbole_lsrm.data.behaviors import behavior_split
from recbole_lsrm.data.fields import DOMAIN_FIELD
from recbole_lsrm.data.fields import target_list_field, target_time_list_field
from recbole_lsrm.data.task_split import TaskHoldOutMixin, user_spans
from recbole_lsrm.errors import ConfigError, DatasetError


class ValidatedSequentialDataset(TaskHoldOutMixin, AtomicFileMixin, SequentialDataset):
    """RecBole's SequentialDataset (prefix rows, for RecBole's models) with validated loading."""

    def data_augmentation(self) -> None:
        self._hold_out_for_tasks()
        super().data_augmentation()

    def _filter_interactions(self) -> None:
        """Interactions left out before the feature files are matched to what remains (none here)."""

    def _keep_domains(self) -> None:
        """``domains``: only the interactions whose item is of one of them (one domain's own
        sequences, to set against a model trained on the mix)."""
        wanted = self.config["domains"] if "domains" in self.config else None
        if not wanted:
            return
        feat = getattr(self, "item_feat", None)
        if feat is not None and DOMAIN_FIELD in feat:
            source = feat
        elif DOMAIN_FIELD in self.inter_feat:
            source = self.inter_feat
        else:
            raise ConfigError(f"domains {wanted} needs each item's '{DOMAIN_FIELD}': an item field in "
                              f"{self.dataset_name}.item (and load_col item: [{self.iid_field}, {DOMAIN_FIELD}]) "
                              f"or a {DOMAIN_FIELD} column in the .inter")
        known = sorted(set(source[DOMAIN_FIELD].astype(str)))
        unknown = [d for d in wanted if str(d) not in known]
        if unknown:
            raise ConfigError(f"domains: {', '.join(map(str, unknown))} not among {self.dataset_name}'s domains "
                              f"({', '.join(known)})")
        items = set(source.loc[source[DOMAIN_FIELD].astype(str).isin([str(d) for d in wanted]), self.iid_field])
        keep = self.inter_feat[self.iid_field].isin(items).to_numpy()
        self.logger.warning(f"domains {wanted}: {int(keep.sum()):,} of {len(keep):,} interactions kept")
        self.inter_feat = self.inter_feat[keep].reset_index(drop=True)

    def _data_filtering(self) -> None:
        """RecBole's filters, the ``domains`` asked for, the interactions a subclass leaves out
        (:meth:`_filter_interactions`), then the ``.item`` and ``.user`` rows of items and users
        that have no interaction left (counted in the log): they would enter the catalogue as items
        no one ever chose, ranked with all others."""
        super()._data_filtering()
        self._keep_domains()
        self._filter_interactions()
        for feat_name, field in (("item_feat", self.iid_field), ("user_feat", self.uid_field)):
            feat = getattr(self, feat_name, None)
            if feat is None or field not in feat:
                continue
            keep = feat[field].isin(set(self.inter_feat[field]))
            if not keep.all():
                self.logger.warning(f"{self.dataset_name}.{feat_name[:4]}: {int((~keep).sum()):,} of {len(feat):,} rows "
                                 f"have no interaction and are left out")
                setattr(self, feat_name, feat[keep].reset_index(drop=True))


# eval_args split -> items held out at the end of each user's sequence.
LEAVE_ONE_OUT = {"valid_and_test": 2, "test_only": 1}


def split_points(lengths: np.ndarray, held: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user, RecBole's leave-one-out split of a sequence of ``n`` items.

    Returns ``(train_len, has_valid, has_test)``: the first ``train_len`` items are the
    training part; the test target is the last item and (``held=2``) the validation target
    the one before, when the user has enough items (RecBole keeps at least one training row).
    """
    rows = np.maximum(lengths - 1, 0)  # RecBole's prefix rows per user
    held_out = np.clip(rows - 1, 0, held)  # leave-one-out keeps >= 1 training row
    train_len = np.where(rows > 0, lengths - held_out, lengths)
    return train_len, held_out >= 2, held_out >= 1


def window_bounds(
    starts: np.ndarray, train_len: np.ndarray, max_len: int, stride: int, last_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end offsets (into the sorted interactions) of every training window.

    A window has at most ``max_len + 1`` items; windows are cut from the end of each user's
    training part, ``stride`` items apart, until one starts at the user's first item (or,
    ``last_only``, after the first: each user's most recent window).
    """
    usable = train_len >= 2
    extra = np.maximum(train_len - max_len - 1, 0)
    n_windows = np.where(usable, 1 + -(-extra // stride), 0)  # ceil division
    if last_only:
        n_windows = np.minimum(n_windows, 1)
    user = np.repeat(np.arange(len(train_len)), n_windows)
    first_row = np.cumsum(n_windows) - n_windows
    k = np.arange(len(user)) - first_row[user]  # window index from the end
    end = starts[user] + train_len[user] - k * stride
    start = np.maximum(starts[user], end - max_len - 1)
    return start, end


def gather_padded(values: torch.Tensor, index: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """``values[index]`` with zeros where ``mask`` is False: (R, T) from (N,)."""
    out = values[torch.from_numpy(np.where(mask, index, 0))]
    return out.masked_fill(~torch.from_numpy(mask), 0)


class WindowedSequentialDataset(ValidatedSequentialDataset):
    """A RecBole Dataset whose training rows are windows with the loss at every position."""

    def __init__(self, config) -> None:
        self.window_stride = config["window_stride"] or config["MAX_ITEM_LIST_LENGTH"]
        self.window_loss = config["window_loss"] or "all"
        self.train_windows = config["train_windows"] or "all"
        self.time_order = config["time_order"] or "recbole"
        self.target_list_field = target_list_field(config)
        # HSTU's time_query: target reads the time of every target of a window.
        self.target_time_list_field = target_time_list_field(config) if config["time_query"] == "target" else None
        # Several behaviours: every interaction is input, the target behaviour's are predicted.
        self.behavior_field = config["behavior_field"] if "behavior_field" in config else None
        self.target_behavior = config["target_behavior"] if self.behavior_field else None
        self.input_behaviors = (config["input_behaviors"] or None) if self.behavior_field else None
        self.behavior_order = (config["behavior_order"] or None) if self.behavior_field else None
        self.behavior_loss = (config["behavior_loss"] or "target") if self.behavior_field else "target"
        self.test_inter = bool(config["test_inter"]) if "test_inter" in config else False
        # objective: ranking reads the label of every target of a window.
        ranking = ("objective" in config and config["objective"] == "ranking")
        self.target_label_list_field = f"target_{config['LABEL_FIELD']}{config['LIST_SUFFIX']}" if ranking else None
        super().__init__(config)

    def _load_inter_feat(self, token, dataset_path) -> None:
        """The ``.inter``, and with ``test_inter`` the given test rows of ``<dataset>.test.inter``
        placed after each user's last interaction (their own timestamps, if any, are not used): the
        leave-one-out split then takes them as the test targets, as the logs' papers evaluate."""
        super()._load_inter_feat(token, dataset_path)
        if not self.test_inter:
            return
        path = os.path.join(dataset_path, f"{token}.test.inter")
        if not os.path.isfile(path):
            raise DatasetError(f"test_inter: {path} not found (each user's held-out item: user_id, item_id, ...)")
        test = self._load_feat(path, FeatureSource.INTERACTION)
        inter, uid, time = self.inter_feat, self.uid_field, self.time_field
        missing = [c for c in (uid, self.iid_field) if c not in test.columns]
        if self.behavior_field and self.behavior_field not in test.columns:
            missing.append(self.behavior_field)  # else every row gets behaviour '' and none is a target
        if missing:
            raise DatasetError(f"{path}: no column(s) {', '.join(missing)}"
                               + (f" (each held-out row says its behaviour, e.g. {self.target_behavior})"
                                  if self.behavior_field in missing else ""))
        repeated = test[uid][test[uid].duplicated()].unique()
        if len(repeated):
            shown = ", ".join(map(str, repeated[:5])) + (f" and {len(repeated) - 5} more" if len(repeated) > 5 else "")
            raise DatasetError(f"{path}: user(s) {shown} have more than one row; the file holds one held-out "
                               "interaction per user")
        last = inter.groupby(uid)[time].max()
        known = test[uid].isin(last.index).to_numpy()
        if not known.all():
            self.logger.warning(f"{path}: {int((~known).sum()):,} test rows of users without interactions are left out")
            test = test[known]
        unseen = int((~test[self.iid_field].isin(set(inter[self.iid_field]))).sum())
        if unseen:
            self.logger.warning(f"{path}: {unseen:,} test items never occur in {token}.inter (no model can rank them high)")
        test = test.assign(**{time: test[uid].map(last).to_numpy() + 1.0})
        for column in inter.columns:
            if column not in test.columns:
                test[column] = 0.0 if inter[column].dtype.kind == "f" else ""
        self.inter_feat = pd.concat([inter, test[list(inter.columns)]], ignore_index=True)

    def _filter_interactions(self) -> None:
        """With several behaviours: the named field must be there, the target behaviour must occur,
        and only ``input_behaviors`` (all by default) are kept, counted in the log."""
        if not self.behavior_field:
            return
        inter = f"{self.dataset_name}.inter"
        if self.behavior_field not in self.inter_feat:
            raise ConfigError(f"behavior_field: {inter} has no column {self.behavior_field!r} "
                              f"(columns: {', '.join(map(str, self.inter_feat.columns))})")
        values = self.inter_feat[self.behavior_field].astype(str)
        known = sorted(set(values))
        unknown = [b for b in [self.target_behavior, *(self.input_behaviors or [])] if str(b) not in known]
        if unknown:
            raise ConfigError(f"behaviour(s) {', '.join(map(str, unknown))} never occur in {inter} "
                              f"(its {self.behavior_field} values: {', '.join(known)})")
        if self.behavior_order:
            order = [str(b) for b in self.behavior_order]
            named = [b for b in order if b not in known]
            unnamed = [b for b in known if b not in order]
            if named or unnamed or len(set(order)) != len(order):
                raise ConfigError(f"behavior_order {self.behavior_order} must name each behaviour of {inter} once "
                                  f"(its {self.behavior_field} values: {', '.join(known)})")
        if self.input_behaviors:
            keep = values.isin([str(b) for b in self.input_behaviors]).to_numpy()
            if not keep.all():
                self.logger.warning(f"{inter}: {int((~keep).sum()):,} of {len(keep):,} interactions are of behaviours "
                                    f"outside input_behaviors {self.input_behaviors} and are left out")
                self.inter_feat = self.inter_feat[keep].reset_index(drop=True)

    def _dataframe_to_interaction(self, data):
        """RecBole's conversion, but the time field in float64 (see the module docstring)."""
        interaction = super()._dataframe_to_interaction(data)
        time_field = self.config["TIME_FIELD"]
        if time_field in data and time_field in interaction.interaction:
            interaction.interaction[time_field] = torch.from_numpy(data[time_field].to_numpy(dtype=np.float64))
        return interaction

    def sort(self, by, ascending=True) -> None:
        """RecBole's sort; with ``time_order: recbole`` float64 times compare as the float32 values
        RecBole sorts by. With ``behavior_order``, interactions of equal time follow it (RecBole's
        sort is stable and sorts by its last key first)."""
        keys = [by] if isinstance(by, str) else list(by)
        if self.behavior_order and self.time_field in keys:
            rank_of = torch.zeros(len(self.field2id_token[self.behavior_field]), dtype=torch.long)
            ids = self.field2token_id[self.behavior_field]
            for rank, behavior in enumerate(self.behavior_order, start=1):
                if str(behavior) in ids:  # not those input_behaviors left out
                    rank_of[ids[str(behavior)]] = rank
            rank_field = "__behavior_rank"
            self.inter_feat.interaction[rank_field] = rank_of[self.inter_feat[self.behavior_field]]
            try:
                self._sort_by_time(keys + [rank_field], ascending if isinstance(ascending, bool) else [*ascending, True])
            finally:
                self.inter_feat.interaction.pop(rank_field)
            return
        self._sort_by_time(by, ascending)

    def _sort_by_time(self, by, ascending) -> None:
        times = self.inter_feat.interaction.get(self.time_field)
        if (
            self.time_order == "exact" or times is None or times.dtype != torch.float64
            or self.time_field not in ([by] if isinstance(by, str) else by)
        ):
            return super().sort(by, ascending)
        row = "__row"
        self.inter_feat.interaction[self.time_field] = times.float()
        self.inter_feat.interaction[row] = torch.arange(len(times))
        try:
            super().sort(by, ascending)
        finally:
            order = self.inter_feat.interaction.pop(row)
            self.inter_feat.interaction[self.time_field] = times[order]

    def _change_feat_format(self) -> None:
        # DataFrame -> Interaction only: no prefix augmentation.
        super(SequentialDataset, self)._change_feat_format()

    def build(self) -> list:
        """Split into [train windows, validation rows, test rows] (leave-one-out by time)."""
        eval_args = self.config["eval_args"]
        split = eval_args["split"] or {}
        if list(split) != ["LS"] or split["LS"] not in LEAVE_ONE_OUT or eval_args["order"] != "TO":
            raise ConfigError(
                "all-position training uses leave-one-out by time: set eval_args "
                "split: {LS: valid_and_test} (or {LS: test_only}: no validation item) and order: TO"
            )
        self._change_feat_format()
        self._aug_presets()
        self.set_field_property(self.target_list_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, self.max_item_list_len)
        if self.target_time_list_field is not None:
            self.set_field_property(
                self.target_time_list_field, FeatureType.FLOAT_SEQ, FeatureSource.INTERACTION, self.max_item_list_len
            )
        if self.target_label_list_field is not None:
            if self.label_field not in self.inter_feat:
                raise ConfigError(f"objective: ranking needs the '{self.label_field}' column (or threshold: {{rating: 4}})")
            self.set_field_property(
                self.target_label_list_field, FeatureType.FLOAT_SEQ, FeatureSource.INTERACTION, self.max_item_list_len
            )
        self._check_field("uid_field", "time_field")
        self._hold_out_for_tasks()

        uids = self.inter_feat[self.uid_field].numpy()
        starts, lengths = user_spans(uids)
        if self.behavior_field:
            target_id = self.field2token_id[self.behavior_field][str(self.target_behavior)]
            is_target = self.inter_feat[self.behavior_field].numpy() == target_id
            train_len, valid_at, test_at, has_valid, has_test = behavior_split(
                starts, lengths, is_target, LEAVE_ONE_OUT[split["LS"]])
            if not has_test.any():
                raise ConfigError(
                    f"target_behavior {self.target_behavior}: nothing to test on. It occurs {int(is_target.sum()):,} "
                    f"time(s) in {self.dataset_name}.inter, and no user has one to hold out after some history: "
                    f"name a behaviour that users repeat, or give the test rows in {self.dataset_name}.test.inter")
            train = self._windows(starts, train_len, is_target if self.behavior_loss == "target" else None)
            valid = self._eval_rows(valid_at[has_valid])
            test = self._eval_rows(test_at[has_test])
        else:
            train_len, has_valid, has_test = split_points(lengths, LEAVE_ONE_OUT[split["LS"]])
            train = self._windows(starts, train_len)
            valid = self._eval_rows(starts[has_valid] + lengths[has_valid] - 2)
            test = self._eval_rows(starts[has_test] + lengths[has_test] - 1)
        self._drop_unused_col()
        train_dataset = self.copy(train)
        in_train = np.arange(len(uids)) - np.repeat(starts, lengths) < np.repeat(train_len, lengths)
        train_items = self.inter_feat[self.iid_field].numpy()[in_train]
        train_dataset.train_item_counts = np.bincount(train_items, minlength=self.item_num)
        return [train_dataset, self.copy(valid), self.copy(test)]

    def _list_fields(self):
        for field in self.inter_feat:
            if field != self.uid_field:
                yield field, getattr(self, f"{field}_list_field")

    def _windows(self, starts: np.ndarray, train_len: np.ndarray, is_target: np.ndarray | None = None) -> Interaction:
        """Training windows; with ``is_target`` (per interaction) only targets of the target behaviour count."""
        L = self.max_item_list_len
        start, end = window_bounds(starts, train_len, L, self.window_stride, last_only=self.train_windows == "last")
        index = start[:, None] + np.arange(L)[None, :]  # (R, L) input positions
        length = end - start - 1  # inputs per window (= targets)
        mask = np.arange(L)[None, :] < length[:, None]
        target_mask = mask
        if is_target is not None:  # only the target behaviour is predicted; every behaviour is input
            target_mask = mask & is_target[np.minimum(index + 1, len(is_target) - 1)]
        if self.window_loss == "new":
            # Targets the previous window of the same user (the next row: windows are cut
            # from the end) also holds: its end is the first target this window keeps.
            uids = self.inter_feat[self.uid_field].numpy()
            same_user = np.append(uids[start[1:]] == uids[start[:-1]], False)
            previous_end = np.where(same_user, np.append(end[1:], 0), 0)
            target_mask = target_mask & (index + 1 >= previous_end[:, None])
        rows = {
            self.uid_field: self.inter_feat[self.uid_field][torch.from_numpy(start)],
            self.item_list_length_field: torch.from_numpy(length),
            self.target_list_field: gather_padded(self.inter_feat[self.iid_field], index + 1, target_mask),
        }
        if self.target_time_list_field is not None:
            rows[self.target_time_list_field] = gather_padded(self.inter_feat[self.time_field], index + 1, target_mask)
        if self.target_label_list_field is not None:
            rows[self.target_label_list_field] = gather_padded(self.inter_feat[self.label_field], index + 1, target_mask)
        for field, list_field in self._list_fields():
            rows[list_field] = gather_padded(self.inter_feat[field], index, mask)
        return Interaction(rows)

    def _eval_rows(self, target: np.ndarray) -> Interaction:
        """RecBole's rows: the target interaction plus lists of the up to L items before it."""
        L = self.max_item_list_len
        user_start = np.searchsorted(
            self.inter_feat[self.uid_field].numpy(), self.inter_feat[self.uid_field].numpy()[target], side="left"
        )
        first = np.maximum(user_start, target - L)
        length = target - first
        index = first[:, None] + np.arange(L)[None, :]
        mask = np.arange(L)[None, :] < length[:, None]
        rows = self.inter_feat[torch.from_numpy(target)]
        lists = {self.item_list_length_field: torch.from_numpy(length)}
        for field, list_field in self._list_fields():
            lists[list_field] = gather_padded(self.inter_feat[field], index, mask)
        rows.update(Interaction(lists))
        return rows

    def counter(self, field):
        """Training popularity: each item of the training part once, not once per row."""
        counts = getattr(self, "train_item_counts", None)
        if field == self.iid_field and counts is not None:
            nonzero = np.flatnonzero(counts)
            return Counter(dict(zip(nonzero.tolist(), counts[nonzero].tolist())))
        return super().counter(field)
