"""Scaling sweeps with Ray Tune (paper IV): one trial per size, data fraction and seed.

``python -m recbole_lsrm.sweep --dataset=ml-1m --scales=l2,l4,l8`` runs the trials through
:func:`recbole_lsrm.pipeline.run`, gathers their summaries into ``results.csv`` and writes the
scaling report (:mod:`recbole_lsrm.scaling`). Ray is imported only when trials run, so the
plan, the results and the report work without it.
"""

from recbole_lsrm.sweep.plan import Resources, SweepPlan, SweepRequest, TrialSpec, build_plan, request_from_argv
from recbole_lsrm.sweep.results import gather, write_results_csv
from recbole_lsrm.sweep.runner import run_sweep

__all__ = ["Resources", "SweepPlan", "SweepRequest", "TrialSpec", "build_plan", "gather", "request_from_argv",
           "run_sweep", "write_results_csv"]
