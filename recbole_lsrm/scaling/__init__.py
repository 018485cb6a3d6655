"""Scaling laws (paper IV): power-law fits, shape building, and the report of a sweep.

- :mod:`recbole_lsrm.scaling.fit`: L(N) = E + (N0/N)^alpha with confidence intervals;
- :mod:`recbole_lsrm.scaling.shapes`: shapes of a fixed non-embedding size (IV-D);
- :mod:`recbole_lsrm.scaling.report`: results.csv -> fits.json, report.md, PNG plots.

``python -m recbole_lsrm.scaling fit results.csv --predict=l24,l48`` writes the report;
``python -m recbole_lsrm.scaling shapes --size=l8`` prints the shapes of a shape study.
Nothing here needs Ray.
"""

from recbole_lsrm.scaling.fit import PAPER_FIT, FitError, PowerLawFit, fit_power_law, power_law
from recbole_lsrm.scaling.shapes import Shape, build_shapes, choose_n_heads, shape_for_ratio, target_size

__all__ = [
    "PAPER_FIT", "FitError", "PowerLawFit", "Shape", "build_shapes", "choose_n_heads", "fit_power_law",
    "power_law", "shape_for_ratio", "target_size",
]
