"""Checkpoints written by earlier versions of the trainer still resume to the same result.

The fixture (tests/fixtures/checkpoint_v1/, made by its make_fixture.py) is a tiny LSRM run
killed after epoch 2 of 4, in its SGD phase, with layer-wise dropout on an ``early`` schedule.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import cyclic_sequences, write_inter
from recbole_lsrm.errors import CheckpointError
from recbole_lsrm.pipeline import run

FIXTURE = Path(__file__).parent / "fixtures" / "checkpoint_v1"


@pytest.fixture
def old_run(tmp_path: Path) -> tuple[Path, dict]:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("checkpoint.pth", "best_model.pth"):
        shutil.copy(FIXTURE / name, run_dir / name)
    write_inter(tmp_path / "data" / "cyclic" / "cyclic.inter", cyclic_sequences())
    # The fixture was trained in fp32 (CPUs had no bf16 then): resumed in fp32, it must repeat itself exactly.
    options = {"data_path": str(tmp_path / "data"), "checkpoint_dir": str(tmp_path / "saved"), "bf16": False}
    return run_dir, options


def test_a_version_1_checkpoint_resumes_to_the_uninterrupted_result(old_run):
    run_dir, options = old_run
    expected = json.loads((FIXTURE / "expected.json").read_text())
    resumed = run(checkpoint_path=str(run_dir / "checkpoint.pth"), options=options)
    assert resumed["run_dir"] == str(run_dir)
    assert resumed["epochs_run"] == 4
    assert resumed["switch_epoch"] == expected["switch_epoch"] and resumed["final_phase"] == "sgd"
    assert resumed["best_epoch"] == expected["best_epoch"]
    assert [h["train_loss"] for h in resumed["history"]] == pytest.approx(expected["train_loss"], rel=1e-6)
    assert resumed["test"] == pytest.approx(expected["test"], abs=1e-4)


def test_a_checkpoint_missing_a_key_is_refused_by_name(old_run, tmp_path):
    run_dir, options = old_run
    state = torch.load(run_dir / "checkpoint.pth", weights_only=True)
    del state["best_epoch"]
    torch.save(state, run_dir / "checkpoint.pth")
    with pytest.raises(CheckpointError, match="best_epoch"):
        run(checkpoint_path=str(run_dir / "checkpoint.pth"), options=options)
