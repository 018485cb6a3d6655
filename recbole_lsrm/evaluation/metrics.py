"""Metrics the paper reports that RecBole lacks, registered in RecBole's metric registry.

After :func:`register_metrics`, ``metrics: [Hit, NDCG, CELoss, Coverage]`` works in any
property file and ``valid_metric: CELoss`` drives early stopping on the validation loss.

- ``CELoss``: cross-entropy of the held-out item over all items (LSRM paper III-D), the y-axis of every
  scaling law. Computed from the raw scores, before any history masking.
- ``Coverage@N``: distinct items in all top-N lists / number of items (padding excluded).
"""

from __future__ import annotations

import numpy as np
import torch

from recbole.evaluator import register
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType

CE_KEY = "rec.ce"


class CELoss(AbstractMetric):
    """Mean cross-entropy of the target item over all items (smaller is better)."""

    metric_type = EvaluatorType.RANKING  # RecBole may not mix value and ranking metrics
    metric_need = [CE_KEY]
    smaller = True

    def calculate_metric(self, dataobject) -> dict[str, float]:
        ce = dataobject.get(CE_KEY)
        return {"celoss": round(float(ce.mean()), self.decimal_place)}


class Coverage(AbstractMetric):
    """Item coverage of the top-N lists over the catalogue."""

    metric_type = EvaluatorType.RANKING
    metric_need = ["rec.items", "data.num_items"]

    def __init__(self, config) -> None:
        super().__init__(config)
        self.topk = config["topk"]

    def calculate_metric(self, dataobject) -> dict[str, float]:
        items = dataobject.get("rec.items").numpy()
        n_items = dataobject.get("data.num_items") - 1  # id 0 is padding
        return {
            f"coverage@{k}": round(np.unique(items[:, :k]).size / n_items, self.decimal_place)
            for k in self.topk
        }


PLUGIN_METRICS = (CELoss, Coverage)


def register_metrics() -> None:
    """Add the plugin's metrics to RecBole's registry (idempotent)."""
    for metric in PLUGIN_METRICS:
        name = metric.__name__.lower()
        register.metrics_dict[name] = metric
        register.metric_information[name] = metric.metric_need
        register.metric_types[name] = metric.metric_type
        if metric.smaller and name not in register.smaller_metrics:
            register.smaller_metrics.append(name)


def cross_entropy_of_targets(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-row CE of ``targets`` under ``scores``: (B, n_items), (B,) -> (B,)."""
    scores = scores.float()
    return torch.logsumexp(scores, dim=-1) - scores.gather(1, targets.view(-1, 1)).squeeze(1)
