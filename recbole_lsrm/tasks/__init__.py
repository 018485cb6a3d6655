"""The five challenge tasks of the paper (SPEC 5), run after the test on the trained model.

``--tasks=longtail,coldstart,crossdomain,robustness,trajectory`` (or ``all``: every task the
dataset supports) prints a table per task and writes ``tasks.json`` and ``task_<name>.png``
into the run folder. ``python -m recbole_lsrm.tasks compare RUN_DIR ...`` puts runs side by
side.
"""

from __future__ import annotations

from logging import getLogger
from pathlib import Path
from types import ModuleType
from typing import Any

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.tasks import coldstart, crossdomain, longtail, robustness, trajectory
from recbole_lsrm.tasks.context import TaskContext
from recbole_lsrm.tasks.report import format_table, save_plot

TASKS: dict[str, ModuleType] = {
    "longtail": longtail,
    "coldstart": coldstart,
    "crossdomain": crossdomain,
    "robustness": robustness,
    "trajectory": trajectory,
}
# The data split settings the tasks resolve (stored with a run, fixed when it resumes).
SPLIT_SETTINGS = ("cold_start_users", "trajectory_holdout")
# Metrics every task reads from the run's evaluation.
NEEDED_METRICS = ("hit", "ndcg", "coverage")

__all__ = ["SPLIT_SETTINGS", "TASKS", "TaskContext", "parse_tasks", "resolve_task_settings", "run_tasks"]


def parse_tasks(value: Any) -> tuple[list[str], bool]:
    """``"longtail,coldstart"``, a list, or ``"all"`` -> (task names, whether "all" was asked)."""
    if value in (None, "", []):
        return [], False
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else [str(n) for n in value]
    if names == ["all"]:
        return list(TASKS), True
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ConfigError(f"unknown task(s) {', '.join(unknown)}: choose from {', '.join(TASKS)} or all")
    return names, False


def resolve_task_settings(config: dict) -> list[str]:
    """Check ``tasks`` and settle the data settings they need, while the config is built.

    ``cold_start_users`` and ``trajectory_holdout`` left at ~ become 0.2 and 10 when the
    coldstart and trajectory tasks run (0 otherwise). ``config`` is the final config dict that
    :class:`~recbole_lsrm.config.LSRMConfig` is building; nothing edits a built config.
    """
    names, _ = parse_tasks(config["tasks"])
    if config["cold_start_users"] is None:
        config["cold_start_users"] = 0.2 if "coldstart" in names else 0.0
    if config["trajectory_holdout"] is None:
        config["trajectory_holdout"] = trajectory.MAX_STEPS if "trajectory" in names else 0
    if "coldstart" in names and not config["cold_start_users"]:
        raise ConfigError("the coldstart task needs users held out of training, but cold_start_users is 0 "
                          "(a checkpoint trained on all users cannot be tested on cold-start users)")
    if "trajectory" in names and not config["trajectory_holdout"]:
        raise ConfigError("the trajectory task needs held-out items, but trajectory_holdout is 0 "
                          "(a checkpoint trained on whole sequences cannot be tested on their end)")
    if names:
        metrics = {m.lower() for m in config["metrics"]}
        missing = [m for m in NEEDED_METRICS if m not in metrics]
        if missing or 10 not in config["topk"]:
            raise ConfigError(f"the tasks report Hit, NDCG and Coverage at 10: add {missing or ''} to metrics "
                              f"and 10 to topk (metrics {config['metrics']}, topk {config['topk']})")
    return names


def run_tasks(ctx: TaskContext, run_dir: Path, write: bool = True) -> dict[str, Any]:
    """Run the configured tasks; print a table each, write tasks.json and one PNG per task.

    Under torchrun every process runs them (their evaluations are shared), one writes.
    """
    from recbole_lsrm.io import write_json

    logger = getLogger()
    names, asked_all = parse_tasks(ctx.config["tasks"])
    results: dict[str, Any] = {}
    for name in names:
        module = TASKS[name]
        if asked_all and hasattr(module, "supported") and not module.supported(ctx.dataset):
            logger.info(f"task {name}: skipped, dataset {ctx.config['dataset']} has no item domain field")
            continue
        logger.info(f"task {name}: running")
        results[name] = module.run(ctx)
        logger.info(f"task {name}:\n" + format_table(module.table(results[name])))
        if write:
            save_plot(lambda ax, m=module, r=results[name]: m.plot(r, ax), Path(run_dir) / f"task_{name}.png")
    path = Path(run_dir) / "tasks.json"
    if write:
        write_json(results, path)
        logger.info(f"tasks: {path}")
    return results
