"""A finished run, loaded back: its config, its dataset (the id mappings and every user's whole
history) and its model with the best weights, on the device asked for.

Only tensors and plain data are read (``summary.json``, and ``best_model.pth`` with
``weights_only=True``); the run is rebuilt from the options it recorded, through the same
config, data and model code that trained it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recbole_lsrm.compat import safe_torch_load
from recbole_lsrm.config import LSRMConfig
from recbole_lsrm.data import create_dataset
from recbole_lsrm.errors import CheckpointError, ConfigError
from recbole_lsrm.io import read_json
from recbole_lsrm.model import get_model_class
from recbole_lsrm.trainer.checkpoint import FORMAT

# What a summary.json must hold to rebuild its run.
SUMMARY_KEYS = ("model", "dataset", "options", "config_files")


@dataclass
class TrainedRun:
    """A run rebuilt from its folder; ``model`` is in eval mode on ``device``."""

    run_dir: Path
    summary: dict[str, Any]
    config: LSRMConfig
    dataset: Any  # the run's dataset: field2id_token maps ids, raw_inter_feat holds every interaction
    model: torch.nn.Module
    device: torch.device

    @property
    def user_field(self) -> str:
        return self.config["USER_ID_FIELD"]

    @property
    def item_field(self) -> str:
        return self.config["ITEM_ID_FIELD"]


def _weights(run_dir: Path) -> dict:
    path = run_dir / "best_model.pth"
    if not path.is_file():
        raise ConfigError(f"{run_dir} has a summary.json but no best_model.pth (the run's best weights): the file "
                          "was removed or moved, and the run cannot be rebuilt without it")
    stored = safe_torch_load(str(path))
    found = stored.get("format") if isinstance(stored, dict) else type(stored).__name__
    if not isinstance(stored, dict) or found != FORMAT or not isinstance(stored.get("model"), dict):
        raise CheckpointError(
            f"{path} is not a {FORMAT} weights file (found format {found!r}): written by another version of "
            "recbole_lsrm, or not by it"
        )
    return stored["model"]


def _device(device: str | torch.device) -> torch.device:
    """The device asked for, refused by name where it is not a device or not on this machine."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"--device must be cpu, cuda or cuda:N, got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device={device}: this machine has no CUDA GPU (use cpu)")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device={device}: this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu, cuda or cuda:N, got {str(device)!r}")
    return device


def load_run(run_dir: str | Path, device: str | torch.device = "cpu", data_path: str | Path | None = None) -> TrainedRun:
    """Rebuild the run in ``run_dir`` (``saved/<model>-<dataset>-...``).

    ``data_path`` says where the run's dataset folder is now (default: where the run read it).
    Raises :class:`ConfigError` naming what is missing for an unfinished or foreign folder.
    """
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise ConfigError(f"run folder not found: {run_dir}")
    if not (run_dir / "summary.json").is_file():
        resume = (f"; it has a checkpoint.pth: finish it with python run_recbole_lsrm.py "
                  f"--checkpoint={run_dir / 'checkpoint.pth'}") if (run_dir / "checkpoint.pth").is_file() else ""
        raise ConfigError(f"{run_dir} has no summary.json: not a finished recbole_lsrm run{resume}")
    summary = read_json(run_dir / "summary.json", "a run summary", required=SUMMARY_KEYS)
    for key, kind, what in (("options", dict, "a mapping of option: value"), ("config_files", list, "a list of paths"),
                            ("model", str, "a model name"), ("dataset", str, "a dataset name")):
        if not isinstance(summary[key], kind):
            raise ConfigError(f"{run_dir / 'summary.json'}: {key} must be {what}, got {summary[key]!r}: "
                              "the file was edited or not written by recbole_lsrm")
    device = _device(device)
    weights = _weights(run_dir)
    options = {**summary["options"], "state": "WARNING", "show_progress": False, "use_gpu": device.type == "cuda"}
    folder = data_path or summary.get("data_path")
    if folder is not None:
        options["data_path"] = str(folder)
    model_class = get_model_class(summary["model"])
    config = LSRMConfig(model_class, summary["dataset"], list(summary["config_files"]), options)
    config["device"] = device
    dataset = create_dataset(config, model_class)
    model = model_class(config, dataset.build()[0])
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(f"{run_dir / 'best_model.pth'} does not fit the run's model: {err}") from None
    return TrainedRun(run_dir, summary, config, dataset, model.to(device).eval(), device)
