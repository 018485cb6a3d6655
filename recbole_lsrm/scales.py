"""The six LSRM scales of Table IV, read from ``properties/scale/*.yaml``.

``python -m recbole_lsrm.scales`` prints the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from recbole_lsrm.config import available_scales, read_yaml, scale_file
from recbole_lsrm.scaling.shapes import Shape


@dataclass(frozen=True)
class Scale(Shape):
    """A Table IV shape with its name and the paper's training length and batch."""

    name: str = ""
    epochs: int = 0
    batch_size: int = 0


def load_scale(name: str) -> Scale:
    values = read_yaml(scale_file(name))
    return Scale(n_layers=values["n_layers"], d_model=values["d_model"], n_heads=values["n_heads"], name=name,
                 epochs=values["epochs"], batch_size=values["train_batch_size"])


def scales() -> list[Scale]:
    return [load_scale(name) for name in available_scales()]


def format_table(rows: list[Scale]) -> str:
    header = ("scale", "n_layers", "d_model", "n_heads", "non-emb params", "epochs", "batch")
    cells = [header] + [
        (s.name, str(s.n_layers), str(s.d_model), str(s.n_heads), f"{s.non_embedding_params:,}", str(s.epochs), str(s.batch_size))
        for s in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    print("Table IV: LSRM scales (non-embedding parameters N = 12 * n_layers * d_model^2)\n")
    print(format_table(scales()))
