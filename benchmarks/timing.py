"""Timing helpers shared by the benchmarks: the best of several runs, and the matmul rate they are set against."""

from __future__ import annotations

import time

import torch


def best_time(step, reps: int) -> float:
    """Seconds of the fastest of ``reps`` calls of ``step()``, after one untimed call."""
    step()
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_rate(size: int = 2048, reps: int = 5, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of a size^3 ``torch.mm`` in ``dtype`` (fp32 unless given) on ``device`` (best of ``reps``)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    return 2 * size**3 / best_time(lambda: a @ a, reps)


def cpu_name() -> str:
    """The CPU's model name and its bf16 unit, e.g. "AMD EPYC (avx512_bf16)", for a benchmark's header."""
    from recbole_lsrm.precision import cpu_bf16_unit

    name = "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, bf16 unit: {cpu_bf16_unit() or 'none'}, {torch.get_num_threads()} threads"
