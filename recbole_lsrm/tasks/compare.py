"""Several runs' task results side by side, with each run's ratio to the smallest model."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from recbole_lsrm.errors import ConfigError, LSRMError
from recbole_lsrm.io import make_dir, read_json, write_json
from recbole_lsrm.options import TASK_NAMES
from recbole_lsrm.tables import format_table
from recbole_lsrm.tasks.report import save_plot


def key_figures(task: str, result: dict) -> dict[str, float]:
    """The numbers the paper compares across model sizes, by a readable key."""
    if task == "longtail":
        return {f"{g} NDCG@10": m.get("ndcg@10", float("nan")) for g, m in result["groups"].items()}
    if task == "coldstart":
        return {f"k={k} NDCG@10": m["ndcg@10"] for k, m in result["by_input_length"].items()}
    if task == "crossdomain":
        return {f"{c} NDCG@10": m.get("ndcg@10", float("nan")) for c, m in result["classes"].items()}
    if task == "robustness":
        return {
            f"{r['kind']}{' consec.' if r['consecutive'] else ''} p={r['p']} NDCG@10 drop %": r["drop_percent"]["ndcg@10"]
            for r in result["perturbed"]
        }
    if task == "trajectory":
        return {f"TR@{k}": v for k, v in result["tr"].items()}
    return {}


def key_intervals(task: str, result: dict) -> dict[str, list[float]]:
    """95% intervals of :func:`key_figures` where the task recorded them (same keys)."""
    def ci(metrics: dict, name: str = "ndcg@10") -> list[float] | None:
        return (metrics.get("ci95") or {}).get(name)

    if task == "longtail":
        found = {f"{g} NDCG@10": ci(m) for g, m in result["groups"].items()}
    elif task == "coldstart":
        found = {f"k={k} NDCG@10": ci(m) for k, m in result["by_input_length"].items()}
    elif task == "crossdomain":
        found = {f"{c} NDCG@10": ci(m) for c, m in result["classes"].items()}
    elif task == "robustness":
        found = {
            f"{r['kind']}{' consec.' if r['consecutive'] else ''} p={r['p']} NDCG@10 drop %": (r.get("drop_ci95") or {}).get("ndcg@10")
            for r in result["perturbed"]
        }
    elif task == "trajectory":
        found = {f"TR@{k}": v for k, v in (result.get("tr_ci95") or {}).items()}
    else:
        found = {}
    return {k: v for k, v in found.items() if v}


def load_run(run_dir: Path) -> dict[str, Any]:
    summary_path, tasks_path = run_dir / "summary.json", run_dir / "tasks.json"
    for path in (summary_path, tasks_path):
        if not path.is_file():
            raise LSRMError(f"{path} not found: compare needs run folders whose runs used --tasks")
    summary = read_json(summary_path, "a run summary", required=("model",))
    tasks = read_json(tasks_path, "a run's task results")
    unknown = sorted(set(tasks) - set(TASK_NAMES))
    if unknown or not all(isinstance(result, dict) for result in tasks.values()):
        raise ConfigError(f"{tasks_path} is not a run's task results (tasks: {', '.join(TASK_NAMES)}; found "
                          f"{', '.join(map(str, tasks)) or 'none'})")
    size = summary.get("non_embedding_params") or summary.get("non_embedding_params_counted") or 0
    label = summary["model"] + (f" {summary['scale']}" if summary.get("scale") else f" L{summary.get('n_layers')} d{summary.get('d_model')}")
    return {"label": label, "size": size, "tasks": tasks, "dir": str(run_dir)}


def compare(run_dirs: list[str], out: str | None = None) -> dict[str, Any]:
    runs = sorted((load_run(Path(d)) for d in run_dirs), key=lambda r: r["size"])
    if not any(run["tasks"] for run in runs):
        raise ConfigError(
            "none of these runs has task results (their tasks.json are empty): train them with "
            "--tasks=longtail,coldstart,... (or --tasks=all), or re-test a run with --checkpoint=... --tasks=all"
        )
    labels = [r["label"] for r in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{r['label']} ({Path(r['dir']).name[-6:]})" for r in runs]
    tasks = [t for t in ("longtail", "coldstart", "crossdomain", "robustness", "trajectory") if any(t in r["tasks"] for r in runs)]
    table: dict[str, dict[str, dict[str, float]]] = {}
    for task in tasks:
        figures = {label: key_figures(task, run["tasks"][task]) for label, run in zip(labels, runs) if task in run["tasks"]}
        table[task] = figures
        keys = list(next(iter(figures.values())))
        header = ["", *figures] + [f"{label} / {labels[0]}" for label in list(figures)[1:]]
        rows = [header]
        base = figures.get(labels[0], {})
        for key in keys:
            values = [figures[label].get(key, float("nan")) for label in figures]
            ratios = [(v / base[key]) if base.get(key) else float("nan") for v in values[1:]]
            rows.append([key, *values, *ratios])
        print(f"\n{task} (runs ordered by size; ratios to the smallest)\n" + format_table(rows[0], rows[1:]))

    out_dir = Path(out) if out else Path("saved") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"
    make_dir(out_dir)
    write_json({"runs": [{"label": l, "dir": r["dir"], "size": r["size"]} for l, r in zip(labels, runs)], "tasks": table},
              out_dir / "compare.json")

    def draw(axes) -> None:
        for ax, task in zip(axes.ravel(), tasks):
            figures = table[task]
            keys = list(next(iter(figures.values())))
            width = 0.8 / len(figures)
            for i, (label, values) in enumerate(figures.items()):
                ax.bar([x + i * width for x in range(len(keys))], [values.get(k, 0.0) for k in keys], width, label=label)
            ax.set_xticks([x + 0.4 - width / 2 for x in range(len(keys))], [k.replace(" NDCG@10", "") for k in keys],
                          rotation=45 if len(keys) > 6 else 0, ha="right" if len(keys) > 6 else "center", fontsize=8)
            ax.set_title(task + (" (NDCG@10 drop %)" if task == "robustness" else " (TR@k)" if task == "trajectory" else " (NDCG@10)"))
            ax.legend(fontsize=8)
        for ax in axes.ravel()[len(tasks):]:
            ax.axis("off")

    save_plot(draw, out_dir / "compare.png", ncols=min(2, len(tasks)), nrows=(len(tasks) + 1) // 2)
    print(f"\ncomparison: {out_dir / 'compare.json'}, {out_dir / 'compare.png'}")
    return table
