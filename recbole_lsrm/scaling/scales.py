"""Table IV: a transformer's shape and the six LSRM scales, read from ``properties/scale/*.yaml``."""

from __future__ import annotations

from dataclasses import dataclass

from recbole_lsrm.config import available_scales, read_yaml, scale_file
from recbole_lsrm.model.lsrm import non_embedding_params
from recbole_lsrm.tables import format_table


@dataclass(frozen=True)
class Shape:
    """One transformer shape: depth, width and heads."""

    n_layers: int
    d_model: int
    n_heads: int

    @property
    def non_embedding_params(self) -> int:
        return non_embedding_params(self.n_layers, self.d_model)

    @property
    def aspect_ratio(self) -> float:
        """R = d_model / n_layers (paper eq. 3)."""
        return self.d_model / self.n_layers

    @property
    def label(self) -> str:
        return f"L{self.n_layers}-d{self.d_model}"

    def options(self) -> dict[str, int]:
        """The config keys that set this shape."""
        return {"n_layers": self.n_layers, "d_model": self.d_model, "n_heads": self.n_heads}


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


def scales_table(rows: list[Scale]) -> str:
    return format_table(
        ("scale", "n_layers", "d_model", "n_heads", "non-emb params", "epochs", "batch"),
        [(s.name, s.n_layers, s.d_model, s.n_heads, s.non_embedding_params, s.epochs, s.batch_size) for s in rows],
    )
