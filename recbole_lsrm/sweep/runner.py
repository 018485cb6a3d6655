"""Running a sweep with Ray Tune: the pending trials, progress lines, then results and report.

Ray is imported inside :func:`run_sweep` only. Locally, a Ray instance is started on this
machine and trials run in parallel as its CPUs and GPUs allow; with ``address`` the same
trials go to an existing cluster (every node needs recbole_lsrm installed and the data at
the same absolute path). Trials that finished in an earlier run of the sweep are not given
to Tune at all; interrupted ones resume from their last epoch's checkpoint. Several sweeps
(a study's) can share one Tune run, so that one-trial sweeps fill the machine together.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, TextIO

from recbole_lsrm.commands import sigterm_received
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.io import FolderLock
from recbole_lsrm.scaling.report import write_report
from recbole_lsrm.sweep.plan import SweepPlan, TrialSpec
from recbole_lsrm.sweep.results import (
    check_sweep_record,
    finished_keys,
    gather,
    last_error,
    record_external_failure,
    unfinished_checkpoint,
    write_results_csv,
)
from recbole_lsrm.sweep.trainable import train_trial
from recbole_lsrm.tables import format_table


@dataclass
class SweepOutcome:
    """What a sweep did: trials run now, skipped as finished, failed (with their errors)."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    terminated: bool = False  # the interruption was SIGTERM (exit status 143), not Ctrl-C
    results: Path | None = None
    report: Path | None = None
    notes: list[str] = field(default_factory=list)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def describe(plan: SweepPlan, done: set[str], stream: TextIO | None = None) -> None:
    """Print the plan: one line per trial with its size, N, data, seed, epochs and status."""
    stream = stream or sys.stdout
    rows = []
    for t in plan.trials:
        status = "finished" if t.key in done else "resume" if unfinished_checkpoint(t.trial_dir) else "to run"
        rows.append((t.key, t.size, t.planned_N or "counted", t.dataset, str(t.seed), t.planned_epochs, status))
    table = format_table(("trial", "size", "N", "dataset", "seed", "epochs", "status"), rows, align="left")
    print("\n".join("  " + line for line in table.splitlines()), file=stream)


class _QuietTrialFailures(logging.Filter):
    """Drop Tune's own lines about failed trials: the progress callback reports each failure
    once, with the plugin's message (or the full traceback for an unexpected error)."""

    _PREFIXES = ("Trial task failed for trial", "Trials did not complete", "Failed to read the results for")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("ray.tune") and str(record.msg).startswith(self._PREFIXES))


def _trial_folder(trial) -> str:
    """A Tune trial's folder, as TrialSpec.trial_dir names it: keys repeat across sweeps, folders do not."""
    return str(Path(trial.config["trial"]["options"]["checkpoint_dir"]))


def _progress_callback_class():
    """A Tune callback printing one line per trial event (defined lazily: it subclasses Ray's)."""
    from ray import tune  # Ray on use: seconds of start-up

    class SweepProgress(tune.Callback):
        def __init__(self, specs: dict[str, TrialSpec], stream: TextIO, on_finished=None) -> None:
            self.specs = specs  # label -> trial
            self.labels = {str(spec.trial_dir): label for label, spec in specs.items()}
            self.stream = stream
            self.on_finished = on_finished
            self.start = time.time()
            self.started = 0
            self.finished = 0

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its callbacks with the experiment state; a stream does not pickle.
            return {**self.__dict__, "stream": None, "on_finished": None}

        def _say(self, text: str) -> None:
            print(f"[{_clock(time.time() - self.start)}] {text}", file=self.stream or sys.stdout, flush=True)

        def _key(self, trial) -> str:
            return self.labels[_trial_folder(trial)]

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            self.started += 1
            spec = self.specs[self._key(trial)]
            resumed = " (resuming its last checkpoint)" if unfinished_checkpoint(spec.trial_dir) else ""
            self._say(f"{self._key(trial)} started{resumed} ({self.started}/{len(self.specs)})")

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            spec = self.specs[self._key(trial)]
            if result.get("trial_finished"):
                ndcg = result.get("test_ndcg@10")
                figures = (f"test AUC {_fmt(result.get('test_auc'))}, LogLoss {_fmt(result.get('test_logloss'))}"
                           if result.get("test_auc") is not None else  # a ranker
                           f"test CE {_fmt(result.get('test_ce_loss'))}"
                           + (f", NDCG@10 {_fmt(ndcg)}" if ndcg is not None else ""))
                self._say(f"{self._key(trial)} tested: {figures}  ({result.get('run_dir')})")
                return
            total = f"/{spec.planned_epochs}" if spec.planned_epochs else ""
            took = result.get("time_this_iter_s")  # Tune's time since the trial's last report
            self._say(
                f"{self._key(trial)} epoch {result.get('epoch')}{total}: train loss {_fmt(result.get('train_loss'))}, "
                + (f"valid AUC {_fmt(result.get('valid_auc'))}" if result.get("valid_auc") is not None
                   else f"valid CE {_fmt(result.get('valid_celoss'))}")
                + f" [{result.get('phase', '')}"
                + (f", {took:.0f}s" if isinstance(took, (int, float)) else "") + "]"
            )

        def on_trial_complete(self, iteration, trials, trial, **info) -> None:
            self.finished += 1
            self._say(f"{self._key(trial)} finished ({self.finished}/{len(self.specs)} done)")
            if self.on_finished is not None:
                self.on_finished(self._key(trial))

        def on_trial_error(self, iteration, trials, trial, **info) -> None:
            spec = self.specs[self._key(trial)]
            error = last_error(spec.trial_dir) or record_external_failure(spec.trial_dir, trial.error_file)
            if error.startswith("Traceback"):  # not a plugin error: show where it came from
                self._say(f"{self._key(trial)} FAILED:\n" + "\n".join("    " + line for line in error.splitlines()))
            else:
                self._say(f"{self._key(trial)} FAILED: {error}")

    return SweepProgress


def _ray_config_classes():
    """RunConfig and FailureConfig from wherever this ray keeps them (air on 2.6.3)."""
    from ray import tune  # Ray on use: seconds of start-up

    if hasattr(tune, "RunConfig"):
        return tune.RunConfig, tune.FailureConfig
    try:
        from ray.train import FailureConfig, RunConfig  # Ray on use: seconds of start-up

        return RunConfig, FailureConfig
    except ImportError:
        from ray.air import FailureConfig, RunConfig  # Ray on use: seconds of start-up

        return RunConfig, FailureConfig


def _run_tune(plans: list[SweepPlan], pending: dict[str, TrialSpec], ray_init: dict[str, Any] | None, stream: TextIO,
              on_trial_finished: Callable[[str], None] | None = None) -> str | None:
    """Give the pending trials (by label) of one or more sweeps that share their resources to
    one Tune run; returns "interrupted" (Ctrl-C), "terminated" (SIGTERM) or None."""
    plan = plans[0]  # resources, Ray's address and verbosity: the same for every plan (checked)
    # Importing Ray (and ray.init) installs a handler that exits the driver on SIGTERM: ours is
    # put back, so that SIGTERM stops the sweep as Ctrl-C does.
    on_sigterm = signal.getsignal(signal.SIGTERM)
    import ray  # Ray on use: seconds of start-up
    from ray import tune  # Ray on use: seconds of start-up


    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": plan.verbose, "logging_level": logging.WARNING}
        if plan.address is not None:
            kwargs["address"] = plan.address
        elif plan.num_cpus is not None:
            kwargs["num_cpus"] = plan.num_cpus
        kwargs.update(ray_init or {})
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f"the Ray cluster at {plan.address}" if plan.address else "a local Ray instance"
            raise ConfigError(f"cannot start or reach {where}: {err}") from None

    if on_sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        total = ray.cluster_resources()
        cpus, gpus_total = float(total.get("CPU", 0)), float(total.get("GPU", 0))
        gpus = plan.gpus_per_trial if plan.gpus_per_trial is not None else (1.0 if gpus_total >= 1 else 0.0)
        if plan.cpus_per_trial > cpus:
            raise ConfigError(f"each trial asks for {plan.cpus_per_trial:g} CPUs, Ray has {cpus:g}: lower --cpus-per-trial")
        if gpus > gpus_total:
            raise ConfigError(f"each trial asks for {gpus:g} GPUs, Ray has {gpus_total:g}: lower --gpus-per-trial")
        at_once = math.floor(cpus / plan.cpus_per_trial)
        if gpus > 0:
            at_once = min(at_once, math.floor(gpus_total / gpus))
        if plan.max_concurrent:
            at_once = min(at_once, plan.max_concurrent)
        where = f"cluster at {plan.address}" if plan.address else "local"
        print(
            f"Ray ({where}): {cpus:g} CPUs, {gpus_total:g} GPUs; each trial {plan.cpus_per_trial:g} CPUs, "
            f"{gpus:g} GPUs -> {min(at_once, len(pending))} trial(s) at a time",
            file=stream, flush=True,
        )

        labels = {str(spec.trial_dir): label for label, spec in pending.items()}

        def name_of(trial) -> str:
            return labels[_trial_folder(trial)]

        RunConfig, FailureConfig = _ray_config_classes()
        tuner = tune.Tuner(
            tune.with_resources(train_trial, {"cpu": plan.cpus_per_trial, "gpu": gpus}),
            param_space={
                "trial": tune.grid_search([t.to_dict() for t in pending.values()]),
                "threads": max(1, int(plan.cpus_per_trial)),
            },
            tune_config=tune.TuneConfig(
                max_concurrent_trials=plan.max_concurrent,
                trial_name_creator=name_of,
                trial_dirname_creator=lambda trial: name_of(trial).replace("/", "-"),
            ),
            run_config=RunConfig(
                name=f"tune-{datetime.now():%Y%m%d-%H%M%S}",
                storage_path=os.path.join(os.path.commonpath([str(p.out) for p in plans]), "ray"),
                callbacks=[_progress_callback_class()(pending, stream, on_trial_finished)],
                failure_config=FailureConfig(max_failures=0),
                verbose=0,  # the callback prints the progress; Tune's tables would repeat it
            ),
        )
        quiet = _QuietTrialFailures()
        handlers = logging.getLogger("ray").handlers + logging.getLogger().handlers
        for handler in handlers:
            handler.addFilter(quiet)
        # Ctrl+C should stop the sweep at once: Tune's own handler would instead end the run
        # quietly and suggest Tuner.restore, while our restart is simply the same command
        # (every trial has a checkpoint per epoch).
        previous = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        try:
            tuner.fit()
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (Terminated, or re-raised as a plain KeyboardInterrupt)
            return "terminated" if sigterm_received() else "interrupted"
        finally:
            for handler in handlers:
                handler.removeFilter(quiet)
            if previous is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous
        return None
    finally:
        if started_here:
            ray.shutdown()


def run_sweep(plan: SweepPlan, ray_init: dict[str, Any] | None = None, stream: TextIO | None = None,
              on_trial_finished: Callable[[str], None] | None = None, report: bool = True) -> SweepOutcome:
    """Run the plan's unfinished trials, then write results.csv and the scaling report.

    ``ray_init`` adds keyword arguments to ``ray.init`` (tests pass ``num_cpus``); a Ray
    instance already running in this process is used as it is and left running.
    ``on_trial_finished(key)`` is called as each trial finishes (a study saves its results
    then); ``report=False`` writes results.csv but no report.
    """
    return run_sweeps([plan], ray_init=ray_init, stream=stream, on_trial_finished=on_trial_finished, report=report)[0]


_SHARED = ("cpus_per_trial", "gpus_per_trial", "num_cpus", "max_concurrent", "address", "verbose")


def run_sweeps(plans: list[SweepPlan], ray_init: dict[str, Any] | None = None, stream: TextIO | None = None,
               on_trial_finished: Callable[[str], None] | None = None, report: bool = True,
               titles: list[str] | None = None) -> list[SweepOutcome]:
    """:func:`run_sweep` for several sweeps at once: their unfinished trials share one Tune run
    (so that sweeps of one or two trials keep every CPU busy), each sweep keeps its folder, lock,
    results.csv and outcome. The plans must ask for the same resources. ``titles``: a line
    printed before each plan's description. Trials are named ``<sweep folder>/<key>`` when
    there is more than one plan, else by their key.
    """
    stream = stream or sys.stdout  # looked up now: pytest and others swap sys.stdout
    for name in _SHARED:
        values = {getattr(p, name) for p in plans}
        if len(values) > 1:
            shown = sorted(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
            raise ConfigError(f"sweeps run together must share {name}; these ask for {' and '.join(shown)}")
    outcomes, todo = [], []
    for i, plan in enumerate(plans):
        check_sweep_record(plan.out, plan.fingerprint(), write=not plan.dry_run)
        done = finished_keys(plan.out)
        todo.append([t for t in plan.trials if t.key not in done])
        outcomes.append(SweepOutcome(skipped=[t.key for t in plan.trials if t.key in done]))
        if titles:
            print(titles[i], file=stream, flush=True)
        print(
            f"sweep {plan.model} on {plan.dataset}: {len(plan.trials)} trials, {len(outcomes[-1].skipped)} finished "
            f"earlier, {len(todo[-1])} to run\nfolder {plan.out}",
            file=stream, flush=True,
        )
        describe(plan, done, stream)
    if any(plan.dry_run for plan in plans):
        return outcomes
    pending = {(f"{plan.out.name}/{t.key}" if len(plans) > 1 else t.key): t
               for plan, trials in zip(plans, todo) for t in trials}
    with ExitStack() as locks:
        for plan in plans:
            locks.enter_context(FolderLock(plan.out, lambda pid, out=plan.out: (
                f"another sweep (process {pid}) is running in {out}: wait for it to finish or stop it, then run "
                "this command again (finished trials are skipped)"), name=".sweep.lock"))
        start = time.time()
        stopped = _run_tune(plans, pending, ray_init, stream, on_trial_finished) if pending else None
        for plan, trials, outcome in zip(plans, todo, outcomes):
            outcome.interrupted, outcome.terminated = stopped is not None, stopped == "terminated"
            _conclude(plan, trials, outcome, start, stream, report, named=len(plans) > 1)
    return outcomes


def _conclude(plan: SweepPlan, pending: list[TrialSpec], outcome: SweepOutcome, start: float, stream: TextIO,
              report: bool, named: bool) -> None:
    """Fill the outcome from the trial folders; write results.csv (and the report); print a summary."""
    done = finished_keys(plan.out)
    outcome.ran = [t.key for t in pending if t.key in done]
    outcome.failed = {
        t.key: last_error(t.trial_dir) or ("interrupted" if outcome.interrupted else "no result (see its run.log)")
        for t in pending if t.key not in done
    }
    rows = gather(plan.out)
    if rows:
        outcome.results = write_results_csv(plan.out, rows)
        if report:
            written = write_report(outcome.results, plan.out, predict=plan.predict)
            outcome.report = written.markdown
            outcome.notes = written.notes
    print(
        ("" if not named else f"{plan.out.name}: ")
        + f"sweep {'interrupted after' if outcome.interrupted else 'done in'} {_clock(time.time() - start)}: "
        f"{len(outcome.ran)} run, {len(outcome.skipped)} skipped (finished earlier), "
        f"{len(outcome.failed)} {'unfinished' if outcome.interrupted else 'failed'}",
        file=stream, flush=True,
    )
    for key, error in outcome.failed.items():
        lines = error.splitlines() or [""]
        print(f"  {key}: {lines[-1] if lines[0].startswith('Traceback') else lines[0]}", file=stream)
    for note in outcome.notes:
        print(f"  note: {note}", file=stream)
    if outcome.results:
        print(f"results: {outcome.results}" + (f"\nreport:  {outcome.report}" if outcome.report else ""),
              file=stream, flush=True)
