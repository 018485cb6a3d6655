"""ML-1M for the benchmarks: read from the shared datasets folder, unpacked into a temporary folder.

The file may not be redistributed, so it is never copied into the project: each benchmark
unpacks ``ml-1m/ml-1m.inter.xz`` into a folder of its own and removes it when done.
"""

from __future__ import annotations

import contextlib
import lzma
import shutil
import tempfile
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
def unpacked_ml1m(source: Path, prefix: str) -> Iterator[tuple[Path, Path]]:
    """``(work, data_path)``: a temporary folder, and its ``data/`` holding ``ml-1m/ml-1m.inter``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        data_path = work / "data"
        (data_path / "ml-1m").mkdir(parents=True)
        with lzma.open(source) as packed, open(data_path / "ml-1m" / "ml-1m.inter", "wb") as out:
            shutil.copyfileobj(packed, out)
        yield work, data_path
    finally:
        shutil.rmtree(work, ignore_errors=True)
