"""CUDA paths (marked ``gpu``; skipped without a CUDA device): bf16 through the chunked CE and
the sampled softmax, chunked ranking, GPU-resident windows, compile, whole runs and NCCL.

Run on a GPU machine with ``python -m pytest -m gpu tests`` (``benchmarks/gpu_suite.sh`` does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from recbole.data.interaction import Interaction

from recbole_lsrm import distributed
from recbole_lsrm.data.window_loader import WindowBatches
from recbole_lsrm.model.next_item import rank_items, sampled_softmax_ce, softmax_ce, tied_item_logits
from recbole_lsrm.pipeline import run
from recbole_lsrm.trainer import checkpoint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ROOT = Path(__file__).resolve().parent.parent
CUDA = torch.device("cuda")
SMALL = {"n_layers": 2, "d_model": 64, "n_heads": 2, "epochs": 2, "train_batch_size": 128, "warmup_steps": 0,
         "show_progress": False, "state": "WARNING", "topk": [10], "layer_dropout": 0.0}


def _problem(positions: int = 3000, n_items: int = 26_745, d: int = 64, seed: int = 0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    hidden = torch.randn(positions, d, device=CUDA, generator=g).requires_grad_()
    weight = (0.05 * torch.randn(n_items, d, device=CUDA, generator=g)).requires_grad_()
    targets = torch.randint(0, n_items, (positions,), device=CUDA, generator=g)  # some 0: padding
    return hidden, weight, targets


def _loss_and_grads(fn, hidden, weight, bf16: bool):
    hidden.grad = weight.grad = None
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        loss = fn()
    loss.backward()
    return loss.detach().float(), hidden.grad.clone(), weight.grad.clone()


@pytest.mark.parametrize("chunk", [None, 700])  # one chunk (softmax kept) and several (recomputed)
def test_chunked_ce_in_bf16_is_fp32_within_bf16_tolerance(chunk):
    hidden, weight, targets = _problem()
    fp32 = _loss_and_grads(lambda: softmax_ce(hidden, targets, weight, chunk), hidden, weight, bf16=False)
    bf16 = _loss_and_grads(lambda: softmax_ce(hidden, targets, weight, chunk), hidden, weight, bf16=True)
    plain = F.cross_entropy(tied_item_logits(hidden, weight).float(), targets, ignore_index=0)
    torch.testing.assert_close(fp32[0], plain.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bf16[0], fp32[0], rtol=1e-2, atol=1e-2)
    for got, want in zip(bf16[1:], fp32[1:]):
        assert F.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.999
        torch.testing.assert_close(got, want, rtol=5e-2, atol=5e-3 * want.abs().max().item())


def test_sampled_softmax_in_bf16_is_fp32_within_bf16_tolerance():
    hidden, weight, targets = _problem()

    def loss():
        torch.manual_seed(3)  # the same negatives in both precisions
        return sampled_softmax_ce(hidden, targets, weight, 128)

    fp32 = _loss_and_grads(loss, hidden, weight, bf16=False)
    bf16 = _loss_and_grads(loss, hidden, weight, bf16=True)
    torch.testing.assert_close(bf16[0], fp32[0], rtol=1e-2, atol=1e-2)
    for got, want in zip(bf16[1:], fp32[1:]):
        assert F.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.999


@pytest.mark.parametrize("chunk", [1000, None])
def test_ranking_on_cuda_equals_topk(chunk):
    g = torch.Generator(device="cuda").manual_seed(1)
    hidden = torch.randn(512, 64, device=CUDA, generator=g)
    weight = torch.randn(26_745, 64, device=CUDA, generator=g)
    targets = torch.randint(1, 26_745, (512,), device=CUDA, generator=g)
    exclude = torch.randint(0, 26_745, (512, 50), device=CUDA, generator=g)
    scores, ids, ce = rank_items(hidden, weight, 50, targets=targets, exclude=exclude, chunk=chunk)
    full = tied_item_logits(hidden, weight).float()
    want_ce = torch.logsumexp(full, 1) - full.gather(1, targets[:, None]).squeeze(1)
    full[:, 0] = float("-inf")
    full.scatter_(1, exclude, float("-inf"))
    want = torch.topk(full, 50, dim=1)
    torch.testing.assert_close(scores, want.values, rtol=1e-4, atol=1e-4)  # cuBLAS may split K otherwise
    assert (ids == want.indices).float().mean() > 0.999  # near-ties may swap
    torch.testing.assert_close(ce, want_ce, rtol=1e-4, atol=1e-4)


class _Windows:
    def __init__(self, n: int) -> None:
        ids = torch.arange(n)[:, None] * 10 + torch.arange(4)[None, :]
        self.inter_feat = Interaction({"item_id_list": ids, "target_item_list": ids + 1})


def test_windows_on_the_device_give_the_cpu_batches():
    config = {"train_batch_size": 64, "shuffle": True, "seed": 5}
    on_gpu = WindowBatches({**config, "windows_on_device": True}, _Windows(1000), CUDA, distributed.ProcessGroup())
    on_cpu = WindowBatches({**config, "windows_on_device": False}, _Windows(1000), CUDA, distributed.ProcessGroup())
    for epoch in range(2):
        for a, b in zip(on_gpu, on_cpu):
            for name in ("item_id_list", "target_item_list"):
                assert a[name].device.type == "cuda"
                assert a[name].dtype == b[name].dtype == torch.int64
                assert torch.equal(a[name], b[name].to(CUDA)), (epoch, name)


def test_a_compiled_lsrm_step_equals_the_eager_one(tmp_path):
    options = {**SMALL, "epochs": 1, "bf16": False, "checkpoint_dir": str(tmp_path / "saved")}
    eager = run("LSRM", "ml-100k", options=options)
    compiled = run("LSRM", "ml-100k", options={**options, "compile": True})
    assert compiled["history"][0]["train_loss"] == pytest.approx(eager["history"][0]["train_loss"], rel=1e-3)
    a = checkpoint.load(eager["checkpoint"])["model"]
    b = checkpoint.load(compiled["checkpoint"])["model"]
    for name in a:  # fused kernels round differently; Adam turns that into small weight changes
        assert F.cosine_similarity(b[name].flatten().float(), a[name].flatten().float(), dim=0) > 0.999, name


@pytest.mark.parametrize("options", [{"compile": True}, {"windows_on_device": True}], ids=["compile", "windows"])
def test_two_epochs_on_ml100k_end_to_end(tmp_path, options):
    summary = run("LSRM", "ml-100k", options={**SMALL, **options, "checkpoint_dir": str(tmp_path / "saved")})
    assert summary["device"].startswith("cuda") and summary["epochs_run"] == 2
    assert summary["history"][1]["train_loss"] < summary["history"][0]["train_loss"]
    assert summary["test"]["celoss"] < 7.43  # log(1682): better than the uniform model


def test_torchrun_with_one_process_and_nccl(tmp_path):
    env = {**os.environ}
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        env.pop(key, None)
    args = [f"--{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in SMALL.items()]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
         str(ROOT / "run_recbole_lsrm.py"), f"--checkpoint_dir={tmp_path / 'saved'}", *args],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run_dir,) = (tmp_path / "saved").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["device"].startswith("cuda") and summary["epochs_run"] == 2
    assert torch.distributed.is_nccl_available()
