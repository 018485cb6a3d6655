"""Layer-wise adaptive dropout (LAD, paper III-B1) and its schedule over training.

One mechanism covers LAD, its schedule and turning it off:

- ``layer_dropout`` gives each layer its rate: a list with one rate per layer (bottom first),
  a ``{start: a, end: b}`` pair interpolated linearly from the bottom layer to the top, or a
  single number (the same rate everywhere, i.e. LAD off); it is read, once, by
  :func:`recbole_lsrm.options.resolve_layer_dropout`.
- ``dropout_schedule`` says when those rates apply ("Dropout reduces underfitting", the
  paper's [16]): ``constant`` (always), ``early`` (only during the first
  ``dropout_schedule_epochs`` epochs, then 0) or ``late`` (0 for those epochs, then the rates).
"""

from __future__ import annotations



def rates_for_epoch(rates: list[float], schedule: str, epoch: int, schedule_epochs: int) -> list[float]:
    """The per-layer rates in force during ``epoch`` (0-based) under ``schedule``."""
    if schedule == "early":
        return list(rates) if epoch < schedule_epochs else [0.0] * len(rates)
    if schedule == "late":
        return [0.0] * len(rates) if epoch < schedule_epochs else list(rates)
    return list(rates)
