"""The five challenge tasks of the paper (LSRM paper V), run after the test on the trained model.

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

from recbole_lsrm.io import write_json
from recbole_lsrm.options import TASK_NAMES, parse_tasks
from recbole_lsrm.tasks import coldstart, crossdomain, longtail, robustness, trajectory
from recbole_lsrm.tasks.context import TaskContext
from recbole_lsrm.tables import format_table
from recbole_lsrm.tasks.report import save_plot

_MODULES: dict[str, ModuleType] = {module.__name__.rpartition(".")[2]: module for module in (
    longtail, coldstart, crossdomain, robustness, trajectory)}
# In the order of the option's names (options.TASK_NAMES, the one list of them).
TASKS: dict[str, ModuleType] = {name: _MODULES[name] for name in TASK_NAMES}

__all__ = ["TASKS", "TaskContext", "run_tasks"]


def run_tasks(ctx: TaskContext, run_dir: Path, write: bool = True) -> dict[str, Any]:
    """Run the configured tasks; print a table each, write tasks.json and one PNG per task.

    Under torchrun every process runs them (their evaluations are shared), one writes.
    """
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
        table = module.table(results[name])  # header first
        logger.info(f"task {name}:\n" + format_table(table[0], table[1:]))
        if write:
            save_plot(lambda ax, m=module, r=results[name]: m.plot(r, ax), Path(run_dir) / f"task_{name}.png")
    path = Path(run_dir) / "tasks.json"
    if write:
        write_json(results, path)
        logger.info(f"tasks: {path}")
    return results
