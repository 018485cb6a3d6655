"""bf16 on the CPU: which devices get it, that it trains as fp32 does, and that checkpoints cross modes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from recbole_lsrm import precision
from recbole_lsrm.cli import main
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model.next_item import softmax_ce
from recbole_lsrm.pipeline import run
from recbole_lsrm.trainer import checkpoint

HAS_BF16 = precision.cpu_bf16_unit() is not None
needs_bf16 = pytest.mark.skipif(not HAS_BF16, reason="this CPU has neither amx_bf16 nor avx512_bf16")

AMX = frozenset({"avx512f", "amx_tile", "amx_bf16", "avx512_bf16"})
ZEN4 = frozenset({"avx512f", "avx512_bf16"})
AVX2_ONLY = frozenset({"avx", "avx2", "fma"})


@pytest.mark.parametrize("flags, unit", [(AMX, "AMX (amx_bf16)"), (ZEN4, "AVX-512 BF16 (avx512_bf16)"), (AVX2_ONLY, None)])
def test_auto_uses_bf16_where_the_cpu_multiplies_it(flags, unit):
    chosen = precision.resolve("auto", "cpu", flags)
    assert chosen.bf16 is (unit is not None)
    if unit:
        assert unit in chosen.reason
    else:
        assert "neither amx_bf16 nor avx512_bf16" in chosen.reason


def test_forced_bf16_on_a_cpu_without_bf16_units_is_refused_by_name():
    with pytest.raises(ConfigError, match="bf16: True, but this CPU has neither amx_bf16 nor avx512_bf16"):
        precision.resolve(True, "cpu", AVX2_ONLY)
    assert not precision.resolve(False, "cpu", AMX).bf16
    assert precision.resolve(True, "cpu", ZEN4).bf16


def test_the_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
    assert precision.cpu_flags(str(tmp_path / "absent")) == frozenset()


def test_recbole_models_stay_fp32_on_a_cpu():
    chosen = precision.resolve(True, "cpu", ZEN4)
    assert chosen.for_model(plugin_model=True).bf16
    assert not chosen.for_model(plugin_model=False).bf16


@pytest.mark.parametrize("value", ["maybe", "fast", 1, [True]])
def test_an_unknown_bf16_value_exits_2_naming_the_choices(value, capsys, tmp_path):
    code = main(["--model=LSRM", "--dataset=ml-100k", f"--bf16={value}", f"--checkpoint_dir={tmp_path}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "bf16 must be" in err and "true" in err and "auto" in err


@needs_bf16
def test_the_bf16_loss_matches_fp32_in_value_and_gradients():
    torch.manual_seed(0)
    hidden = torch.randn(700, 32, requires_grad=True)
    items = (0.3 * torch.randn(900, 32)).requires_grad_()
    targets = torch.randint(0, 900, (700,))
    fp32 = softmax_ce(hidden, targets, items, chunk=256)
    grads32 = torch.autograd.grad(fp32, (hidden, items))
    with torch.autocast("cpu", torch.bfloat16):
        bf16 = softmax_ce(hidden, targets, items, chunk=256)
    grads16 = torch.autograd.grad(bf16, (hidden, items))
    assert bf16.dtype == torch.float32
    # bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2%); the softmax and the sums are
    # fp32, so the loss keeps far more than that, and each gradient stays within about 1%.
    assert bf16.item() == pytest.approx(fp32.item(), rel=2e-3)
    for g16, g32 in zip(grads16, grads32):
        assert g16.dtype == torch.float32
        assert (g16 - g32).norm() / g32.norm() < 0.01


def _steps(tiny_dataset, run_options, bf16: bool) -> list[float]:
    """Per-epoch training losses of a tiny LSRM trained 50 steps (10 epochs of 5 batches)."""
    options = {**run_options, **tiny_dataset, "bf16": bf16, "epochs": 10, "train_batch_size": 12,
               "layer_dropout": 0.0, "learning_rate": 0.003, "d_model": 32, "n_layers": 2}
    summary = run("LSRM", "cyclic", options=options)
    return [r["train_loss"] for r in summary["history"]], summary


@needs_bf16
def test_fifty_bf16_steps_train_as_fp32_does(tiny_dataset, run_options, one_thread):
    fp32, fp32_run = _steps(tiny_dataset, run_options, bf16=False)
    bf16, bf16_run = _steps(tiny_dataset, run_options, bf16=True)
    assert len(fp32) == len(bf16) == 10
    # The cyclic data is learnable: both fall far (from about log 30 = 3.4).
    assert fp32[-1] < fp32[0] - 1.0 and bf16[-1] < bf16[0] - 1.0
    # Same weights, same batches: the first epoch differs only by bf16 rounding of the products
    # (2^-9 = 0.2% each, averaging out over thousands of them, the softmax and loss in fp32);
    # later epochs by where that rounding has moved the weights. Measured on this data: at most
    # 0.03% apart in any epoch and the same test CE to 4 decimals; the bounds leave 10x room for
    # other CPUs' kernels, and stay far below the 1.9 nats the loss falls.
    assert bf16[0] == pytest.approx(fp32[0], rel=1e-3)
    for a, b in zip(fp32, bf16):
        assert b == pytest.approx(a, rel=5e-3)
    assert bf16_run["test"]["celoss"] == pytest.approx(fp32_run["test"]["celoss"], rel=5e-3)


class _Killed(Exception):
    pass


def _kill_after_epoch_1(epoch, record):
    if epoch == 1:
        raise _Killed


def _killed_run(options) -> Path:
    with pytest.raises(_Killed):
        run("LSRM", "cyclic", options=options, epoch_callback=_kill_after_epoch_1)
    return max(Path(options["checkpoint_dir"]).iterdir(), key=lambda p: p.stat().st_mtime) / "checkpoint.pth"


@needs_bf16
def test_a_resumed_bf16_run_equals_the_uninterrupted_one(tiny_dataset, run_options):
    options = {**run_options, **tiny_dataset, "bf16": True, "epochs": 4, "n_layers": 2, "layer_dropout": [0.3, 0.1]}
    full = run("LSRM", "cyclic", options=options)
    resumed = run(checkpoint_path=str(_killed_run(options)))
    assert [r["train_loss"] for r in resumed["history"]] == [r["train_loss"] for r in full["history"]]
    assert resumed["test"] == full["test"]


@needs_bf16
@pytest.mark.parametrize("first, then", [(True, False), (False, True)], ids=["bf16-then-fp32", "fp32-then-bf16"])
def test_checkpoints_stay_fp32_and_resume_in_the_other_mode(tiny_dataset, run_options, first, then):
    options = {**run_options, **tiny_dataset, "bf16": first, "epochs": 4}
    path = _killed_run(options)
    stored = checkpoint.load(path)
    assert all(t.dtype in (torch.float32, torch.int64) for t in stored["model"].values())
    resumed = run(checkpoint_path=str(path), options={"bf16": then})
    assert resumed["epochs_run"] == 4
    losses = [r["train_loss"] for r in resumed["history"]]
    assert all(loss == loss for loss in losses) and losses[-1] < losses[0]  # finite, still learning
    final = checkpoint.load(resumed["checkpoint"])
    assert all(t.dtype in (torch.float32, torch.int64) for t in final["model"].values())
    modes = ["bf16" if first else "fp32"] * 2 + ["bf16" if then else "fp32"] * 2
    assert [r["precision"] for r in resumed["history"]] == modes
    assert resumed["precision"].startswith(modes[-1])
