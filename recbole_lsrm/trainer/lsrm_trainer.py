"""LSRMTrainer: RecBole's Trainer with the paper's training procedure (III-B).

- Switching optimizer (Algorithm 1, :class:`~recbole_lsrm.trainer.policies.OptimizerSwitch`):
  Adam(W) until the validation metric has not improved for ``switch_patience`` evaluations
  (or until ``switch_epoch``), then restore the best weights and continue with SGD until
  RecBole's early stopping ends the run.
- Layer-wise adaptive dropout and its schedule (:class:`~recbole_lsrm.trainer.policies.DropoutSchedule`):
  each epoch starts by setting every layer's rate from ``layer_dropout`` and ``dropout_schedule``.
- Warm-up + cosine learning rate per step, weight decay on matrices only.
- bf16 autocast where the device multiplies bf16 fast (:mod:`recbole_lsrm.precision`: CUDA, a
  CPU with AMX or AVX-512 BF16); fp32 weights and optimizer state; gradient clipping (``clip_grad_norm``) on every device; gradient
  accumulation over ``gradient_accumulation_steps`` micro-batches per batch;
  ``compile: True`` compiles the model; no host sync per step (losses add up on the device).
- Data-parallel under torchrun: the loss goes through DistributedDataParallel, weighted so that
  K processes compute the gradient of one global batch's mean; evaluation splits each batch of
  users between processes and gathers the collected rows; only process 0 writes files.
- Full-sort evaluation (:mod:`recbole_lsrm.trainer.evaluation`): the plugin's models are
  ranked in item chunks, with no (users, n_items) score matrix.
- Checkpoints (:mod:`recbole_lsrm.trainer.state`: the ``TrainingState`` plus model, optimizer,
  schedule and RNG states): a killed run resumes to the same result. Evaluation adds the held-out item's CE loss and, with
  ``eval_mask_history``, masks the input items out of the ranking.

It trains any RecBole sequential model: models without layer-wise dropout skip that step,
and with ``optimizer_switch: False`` and ``lr_scheduler: constant`` it is RecBole's recipe.
"""

from __future__ import annotations

import contextlib
import math
from logging import getLogger
from pathlib import Path
from time import time
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import clip_grad_norm_
from tqdm import tqdm

from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.evaluator import Evaluator
from recbole.trainer import Trainer
from recbole.trainer.trainer import AbstractTrainer
from recbole.utils import WandbLogger, dict2str, early_stopping, set_color

from recbole_lsrm import distributed
from recbole_lsrm.data.fields import target_list_field
from recbole_lsrm.distributed import ProcessGroup
from recbole_lsrm.errors import CheckpointError, ConfigError, TrainingDiverged
from recbole_lsrm.evaluation import LSRMCollector
from recbole_lsrm.model.contract import is_plugin_model
from recbole_lsrm.trainer import checkpoint
from recbole_lsrm.trainer.evaluation import EvalSettings, FullSortEvaluation
from recbole_lsrm.trainer.optim import WarmupCosine
from recbole_lsrm.options import setting
from recbole_lsrm.trainer.policies import DropoutSchedule, OptimizerSwitch
from recbole_lsrm.trainer.ranking import RankingEvaluation
from recbole_lsrm.trainer.run_log import TensorBoardLog
from recbole_lsrm.trainer.state import TrainingState, read_training_checkpoint, training_checkpoint

# A CPU run's epoch time is projected from this many steps of its first epoch.
ESTIMATE_AFTER_STEPS = 10
# A mean loss above this many nats has diverged even where it stays finite (bf16 products can keep a
# blown-up model's scores finite where fp32 overflows): a uniform guess costs log(n_items) nats,
# under 20 for any catalogue of fewer than 400M items, and BCE's costs 0.69.
DIVERGED_LOSS = 1e3
# Called after each epoch with (epoch, record); returning True stops training there.
EpochCallback = Callable[[int, dict], "bool | None"]


def _plain(result: dict | None) -> dict | None:
    return None if result is None else {k: float(v) for k, v in result.items()}


class _TrainingLoss(nn.Module):
    """The model's loss as a forward(), so that DistributedDataParallel sees the whole step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, interaction) -> torch.Tensor:
        return self.model.calculate_loss(interaction)


class LSRMTrainer(Trainer):
    """RecBole's Trainer, with the switching optimizer, the dropout schedule and resumable checkpoints.

    Its parts, each built once from the config: ``switch`` (:class:`OptimizerSwitch`: both
    phases' optimizers and schedules, and when to switch), ``dropout`` (:class:`DropoutSchedule`),
    ``full_sort`` (:class:`FullSortEvaluation`) and ``state`` (:class:`TrainingState`: what a
    checkpoint holds). RecBole's hooks are overridden: ``_train_epoch``, ``_save_checkpoint``,
    ``resume_checkpoint``, ``fit`` and ``evaluate``.
    """

    def __init__(self, config, model, run_dir: str | Path, run_info: dict[str, Any]) -> None:
        # Trainer.__init__ is not called: it creates checkpoint_dir and a TensorBoard folder in the
        # working directory and builds RecBole's optimizer, none of which this trainer uses (its
        # files live in run_dir, its optimizers come from OptimizerSwitch). What RecBole's own
        # methods read (evaluate() for sampled ranking, _generate_train_loss_output) is set below.
        AbstractTrainer.__init__(self, config, model)
        self.logger = getLogger()
        self.wandblogger = WandbLogger(config)
        self.run_dir = Path(run_dir)
        self.run_info = run_info  # how to rebuild this run's config: stored in checkpoints
        self.checkpoint_file = self.run_dir / "checkpoint.pth"
        self.best_model_file = self.run_dir / "best_model.pth"
        self.saved_model_file = str(self.best_model_file)

        self.switch = OptimizerSwitch.from_config(config)
        self.dropout = DropoutSchedule.from_config(config)
        self.epochs = self.switch.epochs
        self.eval_step = min(config["eval_step"], self.epochs)
        self.stopping_step = config["stopping_step"]
        self.clip_grad_norm = config["clip_grad_norm"]
        self.valid_metric = config["valid_metric"].lower()
        self.valid_metric_bigger = config["valid_metric_bigger"]
        self.test_batch_size = config["eval_batch_size"]
        self.device = config["device"]
        self.gpu_available = self.device.type == "cuda"
        self.group = config["process_group"] or ProcessGroup()
        self.is_main = self.group.is_main
        self.precision = config["precision"].for_model(is_plugin_model(model))
        if self.is_main:
            self.logger.info(set_color("precision", "blue") + f": {self.precision.describe()}")
        self.compile = config["compile"]
        # Each batch in K micro-batches, one optimizer step: the batch, not the memory, is train_batch_size.
        self.accumulation_steps = config["gradient_accumulation_steps"] or 1
        self.target_field = target_list_field(config)
        self._loss_module = None  # what training calls: the model, compiled and/or in DDP
        self._saved = True
        self.log_tensorboard = bool(setting(config, "log_tensorboard", False)) and self.is_main
        self.board: TensorBoardLog | None = None  # opened by fit(): a run refused earlier writes nothing

        self.state = TrainingState(bigger_is_better=self.valid_metric_bigger)
        self.optimizer = self.switch.optimizer(model, "adam")
        self.scheduler = None
        self._train_generator = None
        self._pending = None  # scheduler and RNG state of a resumed run, applied in fit()
        self._first_epoch = None  # the first epoch this fit() trains: its time is projected once

        self.eval_type = config["eval_type"]
        self.eval_collector = LSRMCollector(config)
        self.evaluator = Evaluator(config)
        if setting(config, "objective", "retrieval") == "ranking":  # a candidate's score, not the next item's rank
            self.full_sort = RankingEvaluation(model, config, self.device)
        else:
            self.full_sort = FullSortEvaluation(model, self.eval_collector, self.evaluator,
                                                EvalSettings.from_config(config, self.precision), self.group, self.device)
        self.item_tensor = None
        self.tot_item_num = None

    # What the rest of the project reads of the training state.
    @property
    def history(self) -> list[dict]:
        return self.state.history

    @property
    def best_valid_result(self) -> dict | None:
        return self.state.best_valid_result

    @property
    def last_per_user(self) -> dict | None:
        """The last full-sort evaluation's per-user figures (evaluation/intervals.py)."""
        return self.full_sort.last_per_user

    @property
    def last_intervals(self) -> dict:
        """A ranker's last evaluation's 95% intervals (a retriever's come from last_per_user)."""
        return getattr(self.full_sort, "last_intervals", {})

    @property
    def last_candidates(self) -> dict | None:
        """A ranker's last evaluation's scored candidates (evaluation/candidates.py); None for a retriever."""
        return getattr(self.full_sort, "last_candidates", None)

    # --- training ---------------------------------------------------------------------
    def build_scheduler(self, steps_per_epoch: int) -> WarmupCosine:
        """The current phase's learning-rate schedule for ``self.optimizer``."""
        return self.switch.scheduler(self.optimizer, self.state, steps_per_epoch)

    def _positions(self, interaction) -> torch.Tensor:
        """Trained next-item predictions in a batch (on the device): every target of a window, or one per row."""
        if self.target_field in interaction:
            return (interaction[self.target_field] > 0).sum()
        return torch.full((), len(interaction), dtype=torch.long, device=self.device)  # a fill, not a copy

    def _micro_batches(self, interaction) -> list:
        """The batch cut into ``gradient_accumulation_steps`` consecutive parts (none empty)."""
        rows = len(interaction)
        if self.accumulation_steps == 1 or rows <= 1:
            return [interaction]
        size = -(-rows // self.accumulation_steps)
        return [interaction[start:start + size] for start in range(0, rows, size)]

    def _build_loss_module(self) -> None:
        """Compile the model if asked, and wrap its loss in DDP when there are several processes."""
        if self._loss_module is not None:
            return
        if self.compile:
            self.model.compile()  # compiles __call__: the models' hidden_states() go through it
        module = _TrainingLoss(self.model)
        if self.group.enabled:
            device_ids = [self.device] if self.device.type == "cuda" else None
            module = DistributedDataParallel(module, device_ids=device_ids)
        self._loss_module = module

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """One epoch; returns (mean loss per trained position, positions), over all processes."""
        self.model.train()
        self._build_loss_module()
        loss_func = loss_func or self._loss_module
        show_progress = show_progress and self.is_main
        # Sums stay on the device: reading them every step would stall the GPU.
        loss_sum = torch.zeros((), device=self.device)
        positions = torch.zeros((), dtype=torch.long, device=self.device)
        logging_steps = self.board is not None and self.board.enabled
        step_losses: list[torch.Tensor] = []  # per step, read once at the end (no sync per step)
        step_lrs: list[float] = []
        iter_data = (
            tqdm(train_data, total=len(train_data), ncols=100, desc=set_color(f"Train {epoch_idx:>5}", "pink"))
            if show_progress
            else train_data
        )
        # Once a session: in the first epoch that this fit() trains (next_epoch moves on every epoch).
        estimate = self.device.type == "cpu" and epoch_idx == self._first_epoch and self.is_main
        started = time()
        for step, interaction in enumerate(iter_data):
            if estimate and step == ESTIMATE_AFTER_STEPS:
                self._say_epoch_time((time() - started) / step * len(train_data))
                estimate = False
            interaction = interaction.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            count = self._positions(interaction)
            micro_batches = self._micro_batches(interaction)
            scale = None  # one batch in one process: its mean as it is
            if len(micro_batches) > 1 or self.group.enabled:
                # Each micro-batch's mean is weighted by its share of the batch's positions over all
                # processes (DDP averages gradients over K processes), so the summed gradient is
                # the gradient of the whole global batch's mean.
                total = distributed.all_reduce_sum(count.detach().float().clone()) if self.group.enabled else count.float()
                scale = self.group.world_size / total.clamp(min=1)
            before = loss_sum.clone() if logging_steps else None
            no_sync = getattr(loss_func, "no_sync", None)  # DDP: gradients exchanged after the last only
            for i, micro in enumerate(micro_batches):
                last = i == len(micro_batches) - 1
                with contextlib.nullcontext() if last or no_sync is None else no_sync():
                    with self.precision.autocast():
                        losses = loss_func(micro)
                    loss = sum(losses) if isinstance(losses, tuple) else losses
                    micro_count = count if len(micro_batches) == 1 else self._positions(micro)
                    (loss if scale is None else loss * (micro_count * scale)).backward()
                loss_sum += loss.detach().float() * micro_count
            positions += count
            if logging_steps:
                step_losses.append((loss_sum - before) / count.clamp(min=1))
                step_lrs.append(self.optimizer.param_groups[0]["lr"])
            if self.clip_grad_norm:
                clip_grad_norm_(self.model.parameters(), **self.clip_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            if show_progress and step % 20 == 0:
                lr = self.optimizer.param_groups[0]["lr"]
                iter_data.set_postfix_str(f"loss={float(loss_sum / positions.clamp(min=1)):.4f} lr={lr:.2e}")
        if logging_steps and step_losses:
            self.board.steps(epoch_idx * len(train_data), torch.stack(step_losses).tolist(), step_lrs)
        totals = distributed.all_reduce_sum(torch.stack([loss_sum, positions.float()]))
        mean_loss, n_positions = float(totals[0] / totals[1].clamp(min=1)), int(totals[1])
        if not math.isfinite(mean_loss) or mean_loss > DIVERGED_LOSS:
            lr_key, lr = self.switch.learning_rate_of(self.state.phase)
            if self.checkpoint_file.is_file():
                how = (f"the checkpoint of the last finished epoch is kept: resume it with "
                       f"--checkpoint={self.checkpoint_file} --{lr_key}=<smaller>")
            else:
                how = f"no epoch finished, so there is nothing to resume: start again with a smaller {lr_key}"
            message = (
                f"training diverged: the loss is {mean_loss} in epoch {epoch_idx} ({self.state.phase} phase, "
                f"{lr_key}={lr:g}). Lower {lr_key}, or check the data; {how}"
            )
            self.logger.error(message)
            raise TrainingDiverged(message)
        return mean_loss, n_positions

    def _apply_configured_hyperparameters(self) -> None:
        """After a resume: the phase's learning rate, weight decay and momentum are the
        configured ones (options given with --checkpoint override the run's), and the rate
        is put back where the schedule had reached. Each change is logged."""
        lr_key, base_lr = self.switch.learning_rate_of(self.state.phase)
        wanted = {"weight_decay": self.switch.weight_decay}
        if self.state.phase == "sgd":
            wanted["momentum"] = self.switch.sgd_momentum
        decay_group = self.optimizer.param_groups[0]  # optim.param_groups: matrices first
        stored_lr = self.scheduler.base_lrs[0]
        changes = [f"{lr_key} {stored_lr:g} -> {base_lr:g}"] if stored_lr != base_lr else []
        for key, value in wanted.items():
            if decay_group.get(key) != value:
                changes.append(f"{'sgd_' if key == 'momentum' else ''}{key} {decay_group.get(key):g} -> {value:g}")
                decay_group[key] = value
        if "momentum" in wanted:
            self.optimizer.param_groups[1]["momentum"] = wanted["momentum"]
        step = self.scheduler.last_epoch
        self.scheduler.base_lrs = [base_lr] * len(self.optimizer.param_groups)
        for group, factor in zip(self.optimizer.param_groups, self.scheduler.lr_lambdas):
            group["initial_lr"] = base_lr
            group["lr"] = base_lr * factor(step)
        if changes:
            self.logger.info(set_color("Resumed with new settings", "yellow") + ": " + ", ".join(changes))

    def _switch_to_sgd(self, epoch: int, steps_per_epoch: int) -> None:
        """Algorithm 1, line 5: Adam has converged; go on from its best weights with SGD."""
        state = self.state
        if self._saved and state.best_epoch is not None:  # the same decision in every process
            self._load_weights(self.best_model_file)
        state.phase = "sgd"
        state.switch_epoch = epoch + 1
        state.evals_since_best = 0
        self.optimizer = self.switch.optimizer(self.model, "sgd")
        self.scheduler = self.build_scheduler(steps_per_epoch)
        self.logger.info(
            set_color("Switching optimizer", "yellow")
            + f": Adam converged (best {self.valid_metric} {state.best_valid_score:.4f} at epoch {state.best_epoch}); "
            f"restored those weights, SGD (lr={self.switch.sgd_lr}, momentum={self.switch.sgd_momentum}) "
            f"from epoch {state.switch_epoch}"
        )

    def fit(
        self,
        train_data,
        valid_data=None,
        verbose: bool = True,
        saved: bool = True,
        show_progress: bool = False,
        callback_fn: EpochCallback | None = None,
    ):
        """Train until ``epochs`` or early stopping; returns (best valid score, best valid result)."""
        self._saved = saved
        state = self.state
        if not valid_data and self.switch.needs_validation:
            split = self.config["eval_args"]["split"]
            raise ConfigError(
                "optimizer_switch waits for the validation metric to stop improving, and there is no validation "
                f"item (eval_args split {split}): set switch_epoch, or optimizer_switch: False"
            )
        self.eval_collector.data_collect(train_data)
        self._train_generator = train_data.generator  # batch order: saved with every checkpoint
        steps_per_epoch = len(train_data)
        self.scheduler = self.build_scheduler(steps_per_epoch)
        if self._pending is not None:
            self.scheduler.load_state_dict(self._pending["scheduler"])
            self._apply_configured_hyperparameters()
            checkpoint.restore_rng(self._pending["rng"], train_data.generator)
            if self.group.enabled:  # process 0's state is now everywhere: own dropout masks again
                torch.manual_seed(int(torch.randint(2**62, (1,))) + self.group.rank)
            self._pending = None
        if state.finished:
            return state.best_valid_score, state.best_valid_result
        self.board = TensorBoardLog(self.run_dir / "log_tensorboard", self.log_tensorboard)
        try:
            return self._train_epochs(train_data, valid_data, verbose, saved, show_progress, callback_fn, steps_per_epoch)
        finally:
            self.board.close()

    def _say_epoch_time(self, seconds: float) -> None:
        """On a CPU, an epoch over a minute is announced with its projected length (from its first steps)."""
        if seconds < 60:
            return
        left = self.epochs - self.state.next_epoch
        self.logger.info(
            set_color("expected time", "yellow") + f": about {seconds / 60:.1f} min an epoch on this CPU; at most "
            f"{left} epochs (about {seconds * left / 3600:.1f} h, less with early stopping). --epochs=N bounds it"
        )

    def _train_epochs(self, train_data, valid_data, verbose, saved, show_progress, callback_fn, steps_per_epoch):
        """The epochs from the state's next one until the last, early stopping, or the callback."""
        state = self.state
        self._first_epoch = state.next_epoch
        for epoch in range(state.next_epoch, self.epochs):
            self.dropout.apply(self.model, epoch)
            start = time()
            train_loss, positions = self._train_epoch(train_data, epoch, show_progress=show_progress)
            elapsed = time() - start
            state.train_time += elapsed
            state.train_positions += positions
            record = {
                "epoch": epoch,
                "phase": state.phase,
                "precision": "bf16" if self.precision.bf16 else "fp32",
                "lr": self.optimizer.param_groups[0]["lr"],
                "train_loss": train_loss,
                "train_time_s": elapsed,
            }
            if verbose:
                self.logger.info(self._generate_train_loss_output(epoch, start, start + elapsed, train_loss))

            stop = False
            if valid_data and (epoch + 1) % self.eval_step == 0:
                start = time()
                valid_score, valid_result = self._valid_epoch(valid_data, show_progress=show_progress)
                state.best_valid_score, state.evals_since_best, stop, improved = early_stopping(
                    valid_score, state.best_valid_score, state.evals_since_best,
                    max_step=self.stopping_step, bigger=self.valid_metric_bigger,
                )
                record.update(valid_score=valid_score, valid=_plain(valid_result))
                if verbose:
                    self.logger.info(
                        set_color(f"epoch {epoch} evaluating", "green")
                        + f" [{set_color('time', 'blue')}: {time() - start:.2f}s, "
                        + f"{set_color('valid_score', 'blue')}: {valid_score:f}]"
                    )
                    self.logger.info(set_color("valid result", "blue") + ": \n" + dict2str(valid_result))
                if improved:
                    state.best_valid_result = _plain(valid_result)
                    state.best_epoch = epoch
                    if saved:
                        self._save_best(epoch)
                if self.switch.enabled and state.phase == "adam":
                    stop = False  # with switching on, the Adam phase ends in a switch, not a stop
                    if self.switch.should_switch(state, epoch):
                        self._switch_to_sgd(epoch, steps_per_epoch)
            elif not valid_data:
                state.best_epoch = epoch
                if saved:
                    self._save_best(epoch)

            state.history.append(record)
            self.board.epoch(record)
            self.wandblogger.log_metrics({"epoch": epoch, "train_loss": train_loss, "train_step": epoch}, head="train")
            state.last_epoch = epoch
            state.finished = stop or epoch + 1 == self.epochs
            if saved:
                self._save_checkpoint(epoch)
            if callback_fn is not None and callback_fn(epoch, record):
                stop = True  # the caller asked to stop (a time budget, a tuner's scheduler)
                state.finished = True
                if saved:
                    self._save_checkpoint(epoch)
            if stop:
                if verbose:
                    self.logger.info(f"Finished training, best eval result in epoch {state.best_epoch}")
                break
        return state.best_valid_score, state.best_valid_result

    # --- checkpoints ------------------------------------------------------------------
    def _load_weights(self, path: Path) -> None:
        """Load weights written by process 0 there, and copy them to the other processes."""
        if self.is_main:
            state = checkpoint.load(path)
            try:
                self.model.load_state_dict(state["model"])
            except (KeyError, RuntimeError) as err:
                raise CheckpointError(f"{path} does not fit this model: {err}") from err
        distributed.broadcast_module(self.model)

    def _save_best(self, epoch: int) -> None:
        if not self.is_main:
            return
        checkpoint.save(
            {"format": checkpoint.FORMAT, "kind": "best_model", "epoch": epoch, "run": self.run_info,
             "model": self.model.state_dict()},
            self.best_model_file,
        )

    def _save_checkpoint(self, epoch, verbose=False, **kwargs) -> None:
        if not self.is_main:
            return
        stored = training_checkpoint(
            self.state, self.run_info,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            rng=checkpoint.rng_state(self._train_generator),
        )
        checkpoint.save(stored, self.checkpoint_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {self.checkpoint_file}")

    def resume_checkpoint(self, resume_file) -> None:
        """Restore a training state written by ``_save_checkpoint``; fit() then continues it."""
        state = self.state
        parts = read_training_checkpoint(resume_file, state)
        try:
            self.model.load_state_dict(parts["model"])
        except RuntimeError as err:
            raise CheckpointError(f"{resume_file} does not fit this model: {err}") from err
        self.optimizer = self.switch.optimizer(self.model, state.phase)
        self.optimizer.load_state_dict(parts["optimizer"])
        self._pending = {"scheduler": parts["scheduler"], "rng": parts["rng"]}
        self.logger.info(
            set_color("Resuming", "yellow") + f" {resume_file}: epoch {state.next_epoch}, phase {state.phase}"
            + (" (training had finished)" if state.finished else "")
        )

    # --- summary ----------------------------------------------------------------------
    def training_summary(self) -> dict[str, Any]:
        return self.state.summary()

    # --- evaluation -------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if not eval_data:
            return None
        if load_best_model:
            self._load_weights(Path(model_file) if model_file else self.best_model_file)
        if not isinstance(eval_data, FullSortEvalDataLoader):  # sampled ranking: RecBole's own loop
            if self.group.enabled:
                raise ConfigError("several processes evaluate with full ranking only: set eval_args mode: full")
            return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        self.tot_item_num = eval_data._dataset.item_num
        result = self.full_sort.evaluate(eval_data, show_progress=show_progress)
        self.wandblogger.log_eval_metrics(result, head="eval")
        return result
