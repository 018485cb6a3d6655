"""benchmarks/gpu_suite.sh --smoke: the GPU machine's one command runs on a CPU too, so it
cannot rot between the rare sessions that have a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_gpu_suite_smoke_run_writes_its_figures(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--smoke", "--out", str(out)],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads((out / "figures.json").read_text())
    assert {"versions", "gpu_tests", "throughput_lsrm", "throughput_hstu", "throughput_llama"} <= set(figures["steps"])
    assert all(step["exit"] == 0 for step in figures["steps"].values())
    for name, model in (("throughput_lsrm", "LSRM"), ("throughput_hstu", "HSTU"), ("throughput_llama", "Llama")):
        (row,) = figures[name]
        assert row["model"] == model and row["tokens_per_s"] > 0
    assert "recbole 1.2.1" in figures["versions"][0]
    assert (out / "suite.log").read_text().count("== ") >= 8


def test_gpu_suite_refuses_unknown_arguments(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--fast"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown argument --fast" in result.stderr
