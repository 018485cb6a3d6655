"""What a run shows of its training besides run.log: TensorBoard scalars and ``curves.png``.

TensorBoard (``log_tensorboard``, on by default as in RecBole) gets, under
``<run>/log_tensorboard``: ``train/loss`` and ``train/lr`` per optimizer step, ``train/epoch_loss``
and every validation metric (``valid/<metric>``) per epoch, and ``train/sgd`` (0 in the Adam
phase, 1 from the switch on). ``curves.png`` beside ``summary.json`` draws the training loss and
the validation CE per epoch with the switch and the best epoch marked.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from recbole_lsrm.io import atomic_write


class TensorBoardLog:
    """One run's TensorBoard writer; nothing is written (or imported) when it is off."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.writer = None
        if enabled:
            # imported on use: TensorBoard's writer adds seconds of start-up, and a run with it off needs none
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(folder))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def steps(self, first_step: int, losses: list[float], lrs: list[float]) -> None:
        if self.writer is None:
            return
        for offset, (loss, lr) in enumerate(zip(losses, lrs)):
            self.writer.add_scalar("train/loss", loss, first_step + offset)
            self.writer.add_scalar("train/lr", lr, first_step + offset)

    def epoch(self, record: dict[str, Any]) -> None:
        if self.writer is None:
            return
        epoch = record["epoch"]
        self.writer.add_scalar("train/epoch_loss", record["train_loss"], epoch)
        self.writer.add_scalar("train/sgd", 1.0 if record.get("phase") == "sgd" else 0.0, epoch)
        for name, value in (record.get("valid") or {}).items():
            self.writer.add_scalar(f"valid/{name}", value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def save_curves(history: list[dict], path: Path, switch_epoch: int | None, best_epoch: int | None,
                title: str = "") -> Path | None:
    """Training loss and validation CE (or the validation score) per epoch, as a PNG."""
    if not history:
        return None
    import matplotlib  # imported on use (start-up time)

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib.pyplot as plt  # imported on use (start-up time)

    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="training loss")
    valid = [(r["epoch"], (r.get("valid") or {}).get("celoss", r.get("valid_score"))) for r in history]
    valid = [(e, v) for e, v in valid if v is not None]
    if valid:
        name = "validation CE" if any("celoss" in (r.get("valid") or {}) for r in history) else "validation score"
        ax.plot([e for e, _ in valid], [v for _, v in valid], marker="s", label=name)
    if switch_epoch is not None:
        ax.axvline(switch_epoch - 0.5, color="grey", linestyle="--", label=f"Adam -> SGD (epoch {switch_epoch})")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="green", linestyle=":", label=f"best epoch {best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)
    return path
