"""Plots for the tasks and for the side-by-side comparison of runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from recbole_lsrm.io import atomic_write


def save_plot(draw: Callable, path: Path, ncols: int = 1, nrows: int = 1, size=(7, 4.5)) -> None:
    """Draw into a figure and write it as a PNG atomically."""
    import matplotlib  # imported on use: matplotlib adds a second to every command's start

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # no font-cache chatter in run logs
    import matplotlib.pyplot as plt  # imported on use, as above

    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    draw(axes[0, 0] if nrows * ncols == 1 else axes)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)
