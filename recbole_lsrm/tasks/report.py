"""Readable tables and plots for the tasks, and the side-by-side comparison of runs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from recbole_lsrm.io import atomic_write


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:,.1f}"
    return str(value)


def format_table(rows: list[list]) -> str:
    """Rows of cells (the first is the header) as an aligned text table."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_plot(draw: Callable, path: Path, ncols: int = 1, nrows: int = 1, size=(7, 4.5)) -> None:
    """Draw into a figure and write it as a PNG atomically."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # no font-cache chatter in run logs
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    draw(axes[0, 0] if nrows * ncols == 1 else axes)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)
