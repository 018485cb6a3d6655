"""The fast path: torchrun with gloo on CPUs, the window batches' split, bf16 and compile switches."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from recbole.data.interaction import Interaction

from recbole_lsrm import distributed, precision
from recbole_lsrm.data.window_loader import WindowBatches, _stored, place_on_device
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.pipeline import run
from recbole_lsrm.trainer import checkpoint

ROOT = Path(__file__).resolve().parent.parent

# Dropout off: with it, K processes draw other masks than one process would.
DDP_RUN = {
    "n_layers": 1, "d_model": 16, "n_heads": 2, "epochs": 2, "train_batch_size": 64,
    "learning_rate": 0.002, "warmup_steps": 5, "layer_dropout": 0.0, "optimizer_switch": False,
    "show_progress": False, "state": "INFO", "seed": 7, "topk": [10],
    "bf16": False,  # the processes' sums must equal one process's to 1e-4: bf16 rounds each half apart
}


class _Windows:
    def __init__(self, n: int) -> None:
        self.inter_feat = Interaction({"item_id_list": torch.arange(n)[:, None].repeat(1, 3)})


def _batches(n_windows: int, batch: int, world: int, rank: int) -> list[torch.Tensor]:
    config = {"train_batch_size": batch, "shuffle": True, "seed": 3, "windows_on_device": None}
    loader = WindowBatches(config, _Windows(n_windows), torch.device("cpu"), distributed.ProcessGroup(rank, rank, world))
    batches = [b["item_id_list"][:, 0] for b in loader]
    assert len(batches) == len(loader)
    return batches


def test_processes_split_each_global_batch():
    single = _batches(25, 10, 1, 0)
    parts = [_batches(25, 10, 3, rank) for rank in range(3)]
    assert len(single) == 3
    for step, whole in enumerate(single):
        assert torch.equal(torch.cat([p[step] for p in parts]), whole)  # same windows, same order
    assert [len(b) for b in _batches(22, 10, 3, 0)] == [4, 4]  # a last batch of 2 < 3 windows is dropped
    assert [len(b) for b in _batches(22, 10, 1, 0)] == [10, 10, 2]
    with pytest.raises(ConfigError, match="at least the number of processes"):
        _batches(25, 2, 3, 0)


def test_window_placement_options():
    windows = _Windows(5).inter_feat
    assert place_on_device(True, windows, torch.device("cpu")) is False  # nothing to move to
    ids = torch.tensor([[0, 5, 2**31 - 1]])
    assert _stored(ids, compact=True).dtype == torch.int32
    assert torch.equal(_stored(ids, compact=True).long(), ids)
    assert _stored(ids + 1, compact=True).dtype == torch.int64  # does not fit int32: kept
    assert _stored(ids, compact=False).dtype == torch.int64


def test_windows_go_to_the_gpu_when_they_take_under_an_eighth_of_its_free_memory(monkeypatch):
    windows = _Windows(1000).inter_feat  # 1000 x 3 int64: 24,000 bytes
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 24_000, 10**9))
    assert place_on_device(None, windows, gpu) is True
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 24_000 - 8, 10**9))
    assert place_on_device(None, windows, gpu) is False
    assert place_on_device(True, windows, gpu) is True  # forced


def test_process_group_from_torchrun_environment():
    assert distributed.from_env({}) == distributed.ProcessGroup(0, 0, 1)
    group = distributed.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (group.rank, group.local_rank, group.world_size, group.enabled, group.is_main) == (3, 1, 4, True, False)
    alone = distributed.from_env({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"})
    assert alone.enabled and alone.is_main  # torchrun with one process: the data-parallel path
    with pytest.raises(ConfigError, match="WORLD_SIZE not set"):
        distributed.from_env({"RANK": "0", "LOCAL_RANK": "0"})
    with pytest.raises(ConfigError, match="not within"):
        distributed.from_env({"RANK": "4", "LOCAL_RANK": "0", "WORLD_SIZE": "4"})


def test_recbole_models_are_refused_under_torchrun(tiny_dataset, run_options, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="torchrun trains the plugin's all-position models"):
        run("SASRec", "cyclic", options={**run_options, **tiny_dataset})
    with pytest.raises(ConfigError, match="torchrun --nproc_per_node"):
        run("LSRM", "cyclic", options={**run_options, **tiny_dataset, "nproc": 2})


def test_bf16_auto_changes_nothing_on_a_cpu_without_bf16_units(tiny_dataset, run_options, monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    options = {**run_options, **tiny_dataset, "epochs": 1}
    with_bf16 = run("LSRM", "cyclic", options={**options, "bf16": "auto"})
    without = run("LSRM", "cyclic", options={**options, "bf16": False})
    assert with_bf16["precision"].startswith("fp32 (bf16: auto, this CPU has neither")
    assert with_bf16["history"][0]["train_loss"] == without["history"][0]["train_loss"]
    assert with_bf16["test"] == without["test"]


@pytest.mark.slow
def test_compiled_model_trains_like_the_eager_one(tiny_dataset, run_options):
    options = {**run_options, **tiny_dataset, "epochs": 1, "layer_dropout": 0.0}
    eager = run("LSRM", "cyclic", options=options)
    compiled = run("LSRM", "cyclic", options={**options, "compile": True})
    assert compiled["history"][0]["train_loss"] == pytest.approx(eager["history"][0]["train_loss"], rel=1e-4)
    assert compiled["test"]["celoss"] == pytest.approx(eager["test"]["celoss"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("accumulation", [1, 3])
def test_two_gloo_processes_match_one_process(tmp_path, accumulation):
    """torchrun --nproc_per_node=2 on ml-100k: the same losses, metrics and weights as one process
    (with accumulation: each process's half batch in 3 micro-batches, gradients exchanged once)."""
    ddp_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    ddp_options = {**DDP_RUN, "gradient_accumulation_steps": accumulation}
    args = [f"--{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in ddp_options.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        env.pop(key, None)
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "run_recbole_lsrm.py"), "--model=LSRM", "--dataset=ml-100k",
         f"--checkpoint_dir={ddp_dir}", *args],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = ddp_dir.iterdir()  # one run folder, written by process 0
    assert result.stdout.count("test result") == 1  # one log
    ddp = json.loads((run_dir / "summary.json").read_text())
    assert ddp["processes"] == 2

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = run("LSRM", "ml-100k", options={**DDP_RUN, "checkpoint_dir": str(single_dir)})
    finally:
        torch.set_num_threads(threads)

    assert ddp["train_positions"] == single["train_positions"]
    for a, b in zip(ddp["history"], single["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["valid_score"] == pytest.approx(b["valid_score"], rel=1e-4)
    for key, value in single["test"].items():
        assert ddp["test"][key] == pytest.approx(value, abs=2e-4), key
    ddp_weights = checkpoint.load(ddp["checkpoint"])["model"]
    single_weights = checkpoint.load(single["checkpoint"])["model"]
    for name, tensor in single_weights.items():
        torch.testing.assert_close(ddp_weights[name], tensor, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.slow
def test_a_compiled_model_trains_with_dropout_on_cpu(tiny_dataset, run_options):
    # The CPU dropout draws its masks with numpy, which torch.compile cannot trace: a compiled
    # graph must use PyTorch's own dropout (other masks, so the losses agree only loosely).
    options = {**run_options, **tiny_dataset, "epochs": 1, "layer_dropout": 0.3}
    eager = run("LSRM", "cyclic", options=options)
    compiled = run("LSRM", "cyclic", options={**options, "compile": True})
    assert math.isfinite(compiled["history"][0]["train_loss"])
    assert compiled["history"][0]["train_loss"] == pytest.approx(eager["history"][0]["train_loss"], rel=0.05)
