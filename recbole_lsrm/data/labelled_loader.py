"""RecBole's training loader for its pointwise rankers (DIN, DIEN), drawing negatives as the
plugin's rankers do.

RecBole's pointwise negative sampling (``train_neg_sample_args``) labels every observed row 1 and
every sampled item 0, so with labels from the data (``threshold: {rating: 4}`` or a ``label``
column) a disliked item would be trained as liked; and its sampler for sequential data only avoids
the row's own item, so a "negative" can be an item the user had. Under ``objective: ranking`` the
plugin's rankers learn from the real labels plus uniform negatives among the items the user never
had, labelled 0; :class:`LabelledTrainDataLoader` gives RecBole's rankers the same rows.
"""

from __future__ import annotations

import torch
from recbole.data.dataloader import TrainDataLoader
from recbole.data.interaction import Interaction

from recbole_lsrm.data.negatives import sample_negatives, user_item_keys


class LabelledTrainDataLoader(TrainDataLoader):
    """A :class:`~recbole.data.dataloader.TrainDataLoader` whose sampled negatives (uniform, never
    had by the user) are added to the observed rows, which keep their real labels."""

    def __init__(self, config, dataset, sampler, shuffle=False):
        history = getattr(dataset, "raw_inter_feat", None)  # every interaction of the data
        history = history if history is not None else dataset.inter_feat
        self._keys = user_item_keys(history[dataset.uid_field], history[dataset.iid_field], dataset.item_num)
        super().__init__(config, dataset, sampler, shuffle=shuffle)

    def _neg_sampling(self, inter_feat):
        args = self.neg_sample_args
        if args["distribution"] != "uniform" or args.get("dynamic", False) or args["sample_num"] == "none":
            return super()._neg_sampling(inter_feat)  # RecBole's own draws (labels still kept below)
        users = inter_feat[self.uid_field].repeat(self.neg_sample_num)
        return self.sampling_func(inter_feat, sample_negatives(users, self._dataset.item_num, self._keys))

    def _neg_sample_by_point_wise_sampling(self, inter_feat, neg_item_ids):
        observed = len(inter_feat)
        labels = inter_feat[self.label_field].float().clone()
        rows = super()._neg_sample_by_point_wise_sampling(inter_feat, neg_item_ids)
        target = torch.zeros(observed * self.times)
        target[:observed] = labels
        rows.update(Interaction({self.label_field: target}))
        return rows
