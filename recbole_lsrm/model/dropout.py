"""Layer-wise adaptive dropout (LAD, paper III-B1) and its schedule over training.

One mechanism covers LAD, its schedule and turning it off:

- ``layer_dropout`` gives each layer its rate: a list with one rate per layer (bottom first),
  a ``{start: a, end: b}`` pair interpolated linearly from the bottom layer to the top, or a
  single number (the same rate everywhere, i.e. LAD off).
- ``dropout_schedule`` says when those rates apply ("Dropout reduces underfitting", the
  paper's [16]): ``constant`` (always), ``early`` (only during the first
  ``dropout_schedule_epochs`` epochs, then 0) or ``late`` (0 for those epochs, then the rates).
"""

from __future__ import annotations

from numbers import Real
from typing import Any

from recbole_lsrm.errors import ConfigError


def _check_rate(rate: Any, what: str) -> float:
    if isinstance(rate, bool) or not isinstance(rate, Real) or not 0.0 <= float(rate) < 1.0:
        raise ConfigError(f"{what} must be a number in [0, 1), got {rate!r}")
    return float(rate)


def resolve_layer_dropout(layer_dropout: Any, n_layers: int) -> list[float]:
    """Turn the ``layer_dropout`` option into one rate per layer, bottom layer first."""
    if isinstance(layer_dropout, dict):
        if set(layer_dropout) != {"start", "end"}:
            raise ConfigError(
                f"layer_dropout as a pair needs exactly the keys start and end, got {sorted(layer_dropout)}"
            )
        start = _check_rate(layer_dropout["start"], "layer_dropout.start")
        end = _check_rate(layer_dropout["end"], "layer_dropout.end")
        if n_layers == 1:
            return [start]
        return [start + (end - start) * i / (n_layers - 1) for i in range(n_layers)]
    if isinstance(layer_dropout, (list, tuple)):
        if len(layer_dropout) != n_layers:
            raise ConfigError(
                f"layer_dropout has {len(layer_dropout)} rates but the model has n_layers={n_layers}: "
                "give one rate per layer, a {start: a, end: b} pair, or a single rate"
            )
        return [_check_rate(r, f"layer_dropout[{i}]") for i, r in enumerate(layer_dropout)]
    return [_check_rate(layer_dropout, "layer_dropout")] * n_layers


def rates_for_epoch(rates: list[float], schedule: str, epoch: int, schedule_epochs: int) -> list[float]:
    """The per-layer rates in force during ``epoch`` (0-based) under ``schedule``."""
    if schedule == "early":
        return list(rates) if epoch < schedule_epochs else [0.0] * len(rates)
    if schedule == "late":
        return [0.0] * len(rates) if epoch < schedule_epochs else list(rates)
    return list(rates)
