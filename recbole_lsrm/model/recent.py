"""RecentItems: a reference that learns nothing, "recommend what the user just touched".

In logs where users come back to items (e-commerce: an item clicked, carted, then bought), many
targets sit in the user's own input, and a model can score well by little more than repeating
it. ``RecentItems`` ranks the items of the input window by recency (the last input item first),
then every other item by its training popularity: a study that runs it beside HSTU, LSRM or
Llama on the same data shows what training adds to that. It reads the same windows, splits and
behaviours as the all-position models; its one epoch trains nothing (a zero loss). Its CE is
that of its ranking scores (recency positions and popularities), not a likelihood: compare it
by HR and NDCG only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType


class RecentItems(SequentialRecommender):
    """The input items, the most recent first, then the rest by training popularity."""

    all_position_training = True  # the all-position models' data path: windows, behaviours, splits
    input_type = InputType.POINTWISE  # no negatives are drawn

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        counts = getattr(dataset, "train_item_counts", None)
        counts = torch.as_tensor(np.zeros(self.n_items) if counts is None else counts[: self.n_items], dtype=torch.float)
        # in [0, 1): below the recency score (>= 1) of any input item
        self.register_buffer("popularity", counts / (counts.max() + 1.0), persistent=False)
        self.unused = nn.Parameter(torch.zeros(1))  # RecBole's trainer builds an optimizer over the parameters

    def calculate_loss(self, interaction) -> torch.Tensor:
        return self.unused.sum() * 0.0

    def full_sort_predict(self, interaction) -> torch.Tensor:
        items, length = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        position = torch.arange(1, items.shape[1] + 1, device=items.device, dtype=torch.float)
        recency = torch.where(position[None, :] <= length[:, None], position[None, :], 0.0)  # the last input highest
        scores = self.popularity.to(items.device).expand(len(items), -1).clone()
        return scores.scatter_reduce_(1, items, recency + 1.0, reduce="amax")

    def predict(self, interaction) -> torch.Tensor:
        return self.full_sort_predict(interaction).gather(1, interaction[self.ITEM_ID][:, None]).squeeze(1)
