"""ML-1M for the benchmarks: read from the shared datasets folder, unpacked into a temporary folder.

The file may not be redistributed, so it is never copied into the project: each benchmark
unpacks ``ml-1m/ml-1m.inter.xz`` into a folder of its own and removes it when done.
"""

from __future__ import annotations

import contextlib
import lzma
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def ml1m_source(datasets: Path) -> Path | None:
    """The packed file, or None after saying why the benchmark is skipped."""
    source = datasets / "ml-1m" / "ml-1m.inter.xz"
    if not source.is_file():
        print(f"skipped: {source} not found (pass --datasets=FOLDER holding ml-1m/ml-1m.inter.xz)")
        return None
    return source


@contextlib.contextmanager
def unpacked_ml1m(source: Path, prefix: str, side_information: bool = False) -> Iterator[tuple[Path, Path]]:
    """``(work, data_path)``: a temporary folder, and its ``data/`` holding ``ml-1m/ml-1m.inter``
    (and, with ``side_information``, the ``.item`` and ``.user`` files found beside the source)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        data_path = work / "data"
        (data_path / "ml-1m").mkdir(parents=True)
        kinds = ["inter"] + (["item", "user"] if side_information else [])
        for kind in kinds:
            packed_path = source.with_name(f"ml-1m.{kind}.xz")
            if not packed_path.is_file():
                raise FileNotFoundError(f"{packed_path} not found (the ML-1M side information)")
            with lzma.open(packed_path) as packed, open(data_path / "ml-1m" / f"ml-1m.{kind}", "wb") as out:
                shutil.copyfileobj(packed, out)
        yield work, data_path
    finally:
        shutil.rmtree(work, ignore_errors=True)


class BudgetStop:
    """An epoch callback that stops a run before an epoch would end past ``budget`` seconds of
    training (None: never), judging from the mean epoch time so far. A resumed run's clock
    starts at the training time its checkpoint recorded."""

    def __init__(self, budget: float | None) -> None:
        self.budget = budget
        self.start: float | None = None
        self.first_epoch = 0

    def __call__(self, epoch: int, record: dict) -> bool:
        now = time.perf_counter()
        if self.start is None:
            self.start, self.first_epoch = now - record["train_time_s"], epoch
        if self.budget is None:
            return False
        elapsed = now - self.start
        return elapsed + elapsed / (epoch + 1 - self.first_epoch) > self.budget
