"""Scaling sweeps with Ray Tune (SPEC 4): one trial per size, data fraction and seed.

``python -m recbole_lsrm.sweep --dataset=ml-1m --scales=l2,l4,l8`` runs the trials through
:func:`recbole_lsrm.pipeline.run`, gathers their summaries into ``results.csv`` and writes the
scaling report (:mod:`recbole_lsrm.scaling`). Ray is imported only when trials run, so the
plan, the results and the report work without it.
"""

from recbole_lsrm.sweep.plan import SweepPlan, TrialSpec, build_plan, subset_dataset
from recbole_lsrm.sweep.results import gather, write_results_csv

__all__ = ["SweepPlan", "TrialSpec", "build_plan", "gather", "run_sweep", "subset_dataset", "write_results_csv"]


def run_sweep(*args, **kwargs):
    """See :func:`recbole_lsrm.sweep.runner.run_sweep` (imported on use: it needs Ray)."""
    from recbole_lsrm.sweep.runner import run_sweep as _run_sweep

    return _run_sweep(*args, **kwargs)
