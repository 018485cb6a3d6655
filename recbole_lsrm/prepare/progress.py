"""Progress output for the long steps of a conversion: log lines, and byte bars on a terminal.

Everything goes to stderr, so the statistics printed on stdout can be piped or compared.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

from tqdm import tqdm


def log(message: str) -> None:
    """One progress line on stderr, flushed at once (conversions of ML-20M take tens of seconds)."""
    print(f"[prepare] {message}", file=sys.stderr, flush=True)


@contextmanager
def step(message: str) -> Iterator[None]:
    """Log ``message ...`` before a step and ``message: N.N s`` after it."""
    start = time.perf_counter()
    log(f"{message} ...")
    yield
    log(f"{message}: {time.perf_counter() - start:.1f} s")


def byte_bar(description: str, total: int | None) -> tqdm:
    """A bytes-read bar, shown only on a terminal (in logs and CI the step lines are enough)."""
    return tqdm(
        total=total,
        desc=description,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
    )
