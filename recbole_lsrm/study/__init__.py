"""Studies: several scaling sweeps from one YAML file, one table and one report.

``python -m recbole_lsrm.study studies/ml-1m.yaml`` runs the study's sweeps in order through
:mod:`recbole_lsrm.sweep` (resumable), saves ``results.csv`` as each trial finishes and
writes ``report.md``, ``fits.json`` and the figures (:mod:`recbole_lsrm.study.report`).
"""

from recbole_lsrm.study.spec import StudySpec, SweepSpec, load_study

__all__ = ["StudySpec", "SweepSpec", "load_study"]
