"""Evaluation: the plugin's metrics and collector on top of RecBole's evaluator."""

from recbole_lsrm.evaluation.collector import LSRMCollector
from recbole_lsrm.evaluation.metrics import CELoss, Coverage, register_metrics

__all__ = ["CELoss", "Coverage", "LSRMCollector", "register_metrics"]
