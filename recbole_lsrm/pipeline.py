"""One run: config -> data -> model -> LSRMTrainer -> test -> summary.json.

RecBole's ``run_recbole`` only finds RecBole's own classes, so the plugin builds the same
pipeline from RecBole's parts: its Config (as :class:`LSRMConfig`), its datasets and
dataloaders (with the plugin's windowed dataset for LSRM), and the plugin's trainer.
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import datetime
from logging import getLogger
from pathlib import Path
from typing import Any

import torch
from recbole.utils import init_seed, set_color

from recbole_lsrm import distributed
from recbole_lsrm.config import DEFAULT_DATASET, DEFAULT_MODEL, LSRMConfig, check_keys, fixed_on_resume
from recbole_lsrm.cpu_allocator import keep_freed_memory
from recbole_lsrm.data import check_distributed, check_labels, create_dataset, prepare_dataloaders
from recbole_lsrm.data.domains import item_domains
from recbole_lsrm.data.fields import DOMAIN_FIELD
from recbole_lsrm.errors import CheckpointError, ConfigError
from recbole_lsrm.evaluation import register_metrics
from recbole_lsrm.evaluation.candidates import save_candidates
from recbole_lsrm.evaluation.intervals import bootstrap_intervals, metrics_by_group, save_per_user
from recbole_lsrm.io import make_dir, write_json
from recbole_lsrm.logging_setup import ESSENTIAL, attach_run_log, init_logging, to_run_log_only
from recbole_lsrm.model import get_model_class
from recbole_lsrm.model.contract import parameter_counts
from recbole_lsrm.options import SPLIT_SETTINGS, parse_tasks, setting
from recbole_lsrm.tasks import TaskContext, run_tasks
from recbole_lsrm.trainer import LSRMTrainer, checkpoint
from recbole_lsrm.trainer.lsrm_trainer import EpochCallback
from recbole_lsrm.trainer.run_log import save_curves


def _new_run_dir(config) -> Path:
    """An absolute, unique folder: parallel runs (Ray trials, pytest) never collide."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = f"{config['model']}-{config['dataset']}-{stamp}-{uuid.uuid4().hex[:6]}"
    return Path(config["checkpoint_dir"]) / name


def _checkpoint_run(path: str) -> tuple[dict, dict]:
    """The run a checkpoint belongs to (model, dataset, config files, options) and its training state."""
    state = checkpoint.load(path)
    if not isinstance(state, dict) or state.get("format") != checkpoint.FORMAT or "run" not in state:
        raise CheckpointError(f"{path} is not a recbole_lsrm checkpoint")
    return state["run"], state


def _check_resume(config, stored_config, options: dict[str, Any], new_files: list[str], state: dict) -> None:
    """Refuse, by name, a setting a resumed run could not apply, whether it comes from the
    command line or a config file given with --checkpoint (it would be recorded in summary.json
    without having had any effect)."""
    for key in fixed_on_resume():
        given, was = config[key], stored_config[key]
        if given != was:
            source = f"--{key}" if key in options else f"{key} (set to {given!r} in {', '.join(new_files)})"
            raise ConfigError(
                f"{source} cannot change when resuming: the checkpoint continues with {key}={was!r}, not "
                f"{given!r}; start a new run to train with it"
            )
    if state.get("finished") and config["epochs"] != stored_config["epochs"]:
        ran = len(state.get("history") or [])
        raise ConfigError(
            f"--epochs={config['epochs']}: the checkpoint's run has finished ({ran} epochs of {stored_config['epochs']}, "
            "ended by its epochs or by early stopping), and a finished run is only tested again; start a new run "
            "to train longer"
        )


def cpu_threads(config) -> int:
    """``cpu_threads``, or the CPUs this process may use (its affinity: a job given 2 of 64 cores
    gets 2), at most torch's own default. More threads than cores makes every OpenMP barrier wait
    for a descheduled thread: an epoch can take 10x longer."""
    if config["cpu_threads"]:
        return int(config["cpu_threads"])
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(torch.get_num_threads(), allowed))


def _test_by_domain(data, test_dataset, per_user: dict, config) -> dict[str, dict]:
    """Every test metric per domain of the held-out item, where items have a domain."""
    domains = item_domains(data)
    if domains is None:
        return {}
    targets = test_dataset.inter_feat[config["ITEM_ID_FIELD"]].numpy()
    if len(targets) != len(next(iter(per_user.values()))):
        return {}
    names = dict(enumerate(data.field2id_token[DOMAIN_FIELD]))
    return metrics_by_group(per_user, domains[targets], names)


def _nothing_to_train(config, data) -> str:
    """Why a split left no training row: the data's size, and what each setting took away."""
    raw = getattr(data, "raw_inter_feat", None)
    total = len(raw) if raw is not None else data.inter_num
    kept = data.inter_num
    takers = []
    if config["cold_start_users"]:
        takers.append(f"cold_start_users={config['cold_start_users']} ({len(data.cold_start_users):,} users)")
    if config["trajectory_holdout"]:
        takers.append(f"trajectory_holdout={config['trajectory_holdout']} (each user's last "
                      f"{config['trajectory_holdout']} items)")
    held = f"; {total - kept:,} of them are held out by {' and '.join(takers)}" if takers else ""
    split = config["eval_args"]["split"]
    return (
        f"nothing to train on: {config['dataset']} has {total:,} interactions of {data.user_num - 1:,} users{held}, "
        f"and the {split} split keeps each user's last items for validation and test, so no user has an item left "
        "to train on. Use data with longer sequences"
        + (", or lower " + " and ".join(t.split("=")[0] for t in takers) if takers else "")
    )


def run(
    model: str | None = None,
    dataset: str | None = None,
    config_files: list[str] | None = None,
    options: dict[str, Any] | None = None,
    checkpoint_path: str | None = None,
    epoch_callback: EpochCallback | None = None,
) -> dict[str, Any]:
    """Train (or resume) and test one model; returns the run summary also written as JSON.

    ``options`` are config keys with typed values (``{"epochs": 3, "scale": "l4"}``).
    With ``checkpoint_path``, the run's own model, dataset and options are read from the
    checkpoint, ``options`` override them, and training continues in the same folder.

    Under torchrun every process calls this; they train one model together (see
    :mod:`recbole_lsrm.distributed`) and process 0 writes the run folder.
    """
    options = dict(options or {})
    config_files = [os.path.abspath(f) for f in (config_files or [])]
    if checkpoint_path is not None:
        checkpoint_path = os.path.abspath(checkpoint_path)
        info, state = _checkpoint_run(checkpoint_path)
        for given, stored, what in ((model, info["model"], "model"), (dataset, info["dataset"], "dataset")):
            if given is not None and given != stored:
                raise ConfigError(f"--{what}={given} does not match the checkpoint's {what} {stored}")
        model, dataset = info["model"], info["dataset"]
        new_files, given_options = config_files, options
        config_files = list(info["config_files"]) + config_files
        options = {**info["options"], **options}
    model = model or DEFAULT_MODEL
    dataset = dataset or DEFAULT_DATASET

    register_metrics()
    model_class = get_model_class(model)
    check_keys(options, model, dataset, config_files)
    config = LSRMConfig(model_class, dataset, config_files, options)  # task settings resolved
    if checkpoint_path is not None:
        stored = LSRMConfig(model_class, dataset, list(info["config_files"]), dict(info["options"]))
        _check_resume(config, stored, given_options, new_files, state)
    task_names, _ = parse_tasks(config["tasks"])
    # The resolved split is stored with the run: a checkpoint is tested on the split it was trained on.
    options = {**options, **{key: config[key] for key in SPLIT_SETTINGS}}
    group = config["process_group"]
    check_distributed(config, model_class)  # before joining: a refusal must not leave others waiting
    init_logging(config["state"] if group.is_main else "ERROR", essentials=group.is_main)  # one log: process 0's
    distributed.init(group, config["device"])
    try:
        return _train_and_test(config, model_class, model, dataset, config_files, options,
                               checkpoint_path, epoch_callback, task_names)
    finally:
        distributed.shutdown()


def _dataset_line(name: str, data) -> str:
    """The dataset's own counts (RecBole's statistics count the padding user and item 0 as well)."""
    users, items, inters = data.user_num - 1, data.item_num - 1, data.inter_num
    density = inters / max(users * items, 1)
    return (set_color(name, "pink") + f": {users:,} users, {items:,} items, {inters:,} interactions "
            f"(sparsity {100 * (1 - density):.2f}%, {inters / max(users, 1):.1f} per user); "
            f"fields: {', '.join(data.field2type)}")


def _train_and_test(config, model_class, model, dataset, config_files, options,
                    checkpoint_path, epoch_callback, task_names) -> dict[str, Any]:
    logger = getLogger()
    group = config["process_group"]
    if torch.device(config["device"]).type == "cpu":
        keep_freed_memory()  # large tensors reused instead of faulted in every step
        torch.set_num_threads(cpu_threads(config))
    init_seed(config["seed"], config["reproducibility"])
    data = create_dataset(config, model_class)
    if setting(config, "objective", "retrieval") != "ranking" and max(config["topk"]) > data.item_num - 1:
        raise ConfigError(f"topk {config['topk']} asks for more items than {dataset} has ({data.item_num - 1})")
    check_labels(config, data)
    logger.info(_dataset_line(dataset, data))
    try:
        train_data, valid_data, test_data = prepare_dataloaders(config, data, model_class)
    except MemoryError as err:  # numpy's _ArrayMemoryError: the windows' arrays do not fit
        raise ConfigError(
            f"not enough memory for the training windows ({err}): MAX_ITEM_LIST_LENGTH="
            f"{config['MAX_ITEM_LIST_LENGTH']:,} makes every window that long; lower it"
        ) from None
    if len(train_data.dataset) == 0:
        raise ConfigError(_nothing_to_train(config, data))
    init_seed(config["seed"], config["reproducibility"])
    net = model_class(config, train_data.dataset).to(config["device"])
    if group.enabled:
        torch.manual_seed(config["seed"] + group.rank)  # same initial weights, own dropout masks

    run_dir = Path(checkpoint_path).parent if checkpoint_path else _new_run_dir(config)
    run_dir = Path(distributed.broadcast_text(str(run_dir)))  # process 0's folder
    run_info = {"model": model, "dataset": dataset, "config_files": config_files, "options": options}
    trainer = LSRMTrainer(config, net, run_dir, run_info)
    if checkpoint_path:
        trainer.resume_checkpoint(checkpoint_path)

    if group.is_main:
        make_dir(run_dir)
        attach_run_log(run_dir)
    if config["show_config"]:
        logger.info(config)
    else:
        to_run_log_only(str(config))
    to_run_log_only(str(net))  # the full module tree: run.log only (the console gets the counts below)
    counts = parameter_counts(net, config)
    logger.info(
        set_color("parameters", "blue") + f": {counts['total_params']:,} total, "
        f"{counts['non_embedding_params_counted']:,} non-embedding"
        + (f" (paper's N = {counts['non_embedding_params']:,})" if counts["non_embedding_params"] else "")
    )
    logger.info(
        set_color("training rows", "blue") + f": {len(train_data.dataset):,} per epoch, "
        f"{len(train_data)} batches; run folder {run_dir}"
        + (f"; {group.world_size} processes share each batch" if group.world_size > 1 else "")
        + ("; torchrun with one process" if group.enabled and group.world_size == 1 else ""),
        extra=ESSENTIAL,
    )

    # Progress bars redraw their line: only on a terminal, never into a redirected log.
    progress_bars = bool(config["show_progress"]) and hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    try:
        trainer.fit(
            train_data, valid_data, saved=True, show_progress=progress_bars, callback_fn=epoch_callback
        )
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: the last epoch's checkpoint stays valid
        if Path(trainer.checkpoint_file).is_file():
            stop.resume_hint = f"resume with: python run_recbole_lsrm.py --checkpoint={trainer.checkpoint_file}"
        raise
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=progress_bars)
    test_result = {k: float(v) for k, v in (test_result or {}).items()}
    per_user = trainer.last_per_user
    test_intervals = bootstrap_intervals(per_user) if per_user else trainer.last_intervals
    test_by_domain = _test_by_domain(data, test_data.dataset, per_user, config) if per_user else {}
    for domain, figures in test_by_domain.items():
        logger.info(set_color(f"test, {domain}", "yellow") + f" ({figures['users']:,} users): "
                    + ", ".join(f"{k} {figures[k]:.4f}" for k in ("hit@10", "ndcg@10", "celoss") if k in figures))
    logger.info(set_color("best valid ", "yellow") + f": {trainer.best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}", extra=ESSENTIAL)
    if test_intervals:
        shown = ", ".join(f"{k} [{lo:.4f}, {hi:.4f}]" for k, (lo, hi) in test_intervals.items()
                          if k.endswith("@10") or k in ("celoss", "auc", "logloss", "gauc", "heldout_auc"))
        users = len(next(iter(per_user.values()))) if per_user else len(test_data.dataset)
        logger.info(set_color("test 95% intervals", "yellow") + f" (bootstrap over {users} users): {shown}")

    tasks_file = None
    if task_names:
        run_tasks(TaskContext(config, trainer, data, train_data.dataset, test_data.dataset), run_dir,
                  write=group.is_main)
        tasks_file = str(run_dir / "tasks.json")

    summary = {
        "model": model,
        "dataset": dataset,
        "scale": config["scale"],
        "recipe": config["recipe"] or "plugin",
        "n_layers": config["n_layers"],
        "d_model": config["d_model"] if config["d_model"] is not None else config["hidden_size"],
        "n_heads": config["n_heads"],
        **counts,
        "max_seq_length": config["MAX_ITEM_LIST_LENGTH"],
        "train_rows": len(train_data.dataset),
        "epochs": config["epochs"],
        **trainer.training_summary(),
        "valid_metric": config["valid_metric"],
        "best_valid": trainer.best_valid_result,
        "test": test_result,
        "test_ce_loss": test_result.get("celoss"),
        "test_intervals": test_intervals,  # 95% bootstrap over test users
        "test_by_domain": test_by_domain,  # the test users grouped by their target item's domain
        "eval_mask_history": bool(config["eval_mask_history"]),
        "seed": config["seed"],
        "device": str(config["device"]),
        "precision": trainer.precision.describe(),  # bf16 or fp32 (this session's; each epoch's in history)
        "processes": group.world_size,
        "run_dir": str(run_dir),
        "checkpoint": str(trainer.checkpoint_file),
        "best_model": str(trainer.best_model_file),
        "options": options,
        "config_files": config_files,
        "data_path": os.path.dirname(config["data_path"]),  # where the data was read (load_run reads it there)
        "tasks_file": tasks_file,
        "history": trainer.history,
    }
    if group.is_main:
        summary["curves"] = str(save_curves(trainer.history, run_dir / "curves.png", summary["switch_epoch"],
                                            summary["best_epoch"], title=f"{model} on {dataset}"))
        if per_user:
            save_per_user(per_user, run_dir)
        if trainer.last_candidates is not None:  # a ranker's: for paired differences between runs
            save_candidates(trainer.last_candidates, run_dir)
        summary_path = run_dir / "summary.json"
        write_json(summary, summary_path)
        logger.info(set_color("summary", "green") + f": {summary_path}", extra=ESSENTIAL)
    return summary
