"""Reporting metrics to Ray Tune from inside a trial, on ray 2.6.3 and on newer ray.

The function moved: ray 2.6.3 (RecBole 1.2.1 pins ray<=2.6.3) has ``ray.air.session.report``
and an old keyword-style ``ray.tune.report``; ray 2.7-2.x has ``ray.train.report``; recent
ray has ``ray.tune.report(metrics)`` again for Tune's function trainables. Ray is imported
here, at call time, so that nothing else in the plugin needs it installed.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable


def _reporter() -> Callable[[dict[str, Any]], None]:
    from ray import tune  # Ray on use: seconds of start-up

    tune_report = getattr(tune, "report", None)
    if tune_report is not None:
        try:
            params = inspect.signature(tune_report).parameters
        except (TypeError, ValueError):
            params = {}
        if "metrics" in params:  # the new tune.report(metrics, *, checkpoint=None)
            return tune_report
    try:
        from ray import train  # Ray on use: seconds of start-up

        if hasattr(train, "report"):
            return train.report
    except ImportError:
        pass
    from ray.air import session  # Ray on use: seconds of start-up

    return session.report


def report(metrics: dict[str, Any]) -> None:
    """Send one result (one row of the trial's curve) to Ray Tune."""
    _reporter()(metrics)
