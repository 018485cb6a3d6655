"""Model shapes at a fixed non-embedding size, for the shape study (paper IV-D, Figure 4).

Following Kaplan et al., the paper holds N = 12 * n_layers * d_model^2 fixed and varies the
aspect ratio R = d_model / n_layers; at N = 1.57M its shapes are (n_layers, d_model) =
(32, 64), (8, 128) and (2, 256), i.e. R = 2, 16 and 128 around the Table IV shape (8, 128).
A ratio rarely gives whole numbers exactly, so :func:`shape_for_ratio` picks the nearest
shape whose N stays within a tolerance, with a head count that divides d_model.

``python -m recbole_lsrm.scaling shapes --size=l8 --ratios=2,16,128`` prints them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from recbole_lsrm.config import available_scales
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model.lsrm import non_embedding_params
from recbole_lsrm.scaling.scales import Shape, load_scale, scales

#: Shapes in a shape sweep differ from the target N by at most this fraction.
DEFAULT_TOLERANCE = 0.05
#: Ratios of the paper's 1.57M transformations to the Table IV shape's R = 16: 2/16, 1, 128/16.
DEFAULT_RATIO_FACTORS = (1 / 8, 1.0, 8.0)


@dataclass(frozen=True)
class TargetSize:
    """A shape study's fixed N, and the Table IV shape of that size if there is one."""

    name: str  # the scale name (l8) or N as written
    N: int
    reference: Shape | None
    scale: str | None


def choose_n_heads(d_model: int) -> int:
    """A head count dividing ``d_model``: heads of 32 up to d_model 256, of 64 above.

    Table IV uses head size 32 for d_model 64-256 and 64 for 512; where no divisor gives
    exactly that, the head size closest to it (on a log scale) is taken.
    """
    if d_model < 1:
        raise ConfigError(f"d_model must be positive, got {d_model}")
    target = 32 if d_model <= 256 else 64
    divisors = [h for h in range(1, d_model + 1) if d_model % h == 0 and (d_model // h >= 8 or h == 1)]
    return min(divisors, key=lambda h: (abs(math.log(d_model / h / target)), -h))


def _within(n: int, N: int, tolerance: float) -> bool:
    return abs(n - N) <= tolerance * N


def shape_for_ratio(N: int, ratio: float, tolerance: float = DEFAULT_TOLERANCE) -> Shape:
    """The shape with aspect ratio closest to ``ratio`` whose N is within ``tolerance``.

    12 * L * d^2 = N with d = R * L gives L = (N / (12 R^2))^(1/3); the whole numbers around
    it are tried, with d_model a multiple of 8 where possible (even otherwise), so that the
    head count divides it.
    """
    if not N > 0:
        raise ConfigError(f"the target size N must be positive, got {N}")
    if not ratio > 0:
        raise ConfigError(f"an aspect ratio d_model / n_layers must be positive, got {ratio}")
    depth = (N / (12 * ratio * ratio)) ** (1 / 3)
    candidates = set()
    for n_layers in range(max(1, math.floor(depth) - 1), math.ceil(depth) + 2):
        width = math.sqrt(N / (12 * n_layers))
        for step in (8, 2, 1):
            base = int(width // step) * step
            for d_model in (base - step, base, base + step, base + 2 * step):
                if d_model >= 1 and _within(non_embedding_params(n_layers, d_model), N, tolerance):
                    candidates.add((n_layers, d_model))
    if not candidates:
        raise ConfigError(
            f"no shape with aspect ratio near {ratio:g} has N within {tolerance:.0%} of {N:,}; "
            f"try another ratio or a larger --shape-tolerance"
        )

    def cost(shape: tuple[int, int]) -> tuple:
        n_layers, d_model = shape
        miss = abs(math.log(d_model / n_layers / ratio))
        # Within 15% of the ratio, a d_model divisible by 8 (heads of a sensible size) wins.
        granularity = 8 if d_model % 8 == 0 else 2 if d_model % 2 == 0 else 1
        return (0.0 if miss < 0.15 else miss, -granularity, miss, abs(non_embedding_params(*shape) - N))

    n_layers, d_model = min(candidates, key=cost)
    if abs(math.log(d_model / n_layers / ratio)) > math.log(2):
        raise ConfigError(
            f"aspect ratio {ratio:g} is out of reach at N = {N:,}: the nearest shape with N within "
            f"{tolerance:.0%} is ({n_layers}, {d_model}) with R = {d_model / n_layers:.3g}"
        )
    return Shape(n_layers, d_model, choose_n_heads(d_model))


def shape_from_pair(N: int, n_layers: int, d_model: int, tolerance: float = DEFAULT_TOLERANCE) -> Shape:
    """An explicit (n_layers, d_model), checked against the target N."""
    if n_layers < 1 or d_model < 1:
        raise ConfigError(f"n_layers and d_model must be positive, got ({n_layers}, {d_model})")
    n = non_embedding_params(n_layers, d_model)
    if not _within(n, N, tolerance):
        raise ConfigError(
            f"shape ({n_layers}, {d_model}) has N = {n:,}, {abs(n - N) / N:.0%} away from the target "
            f"{N:,} (tolerance {tolerance:.0%}): a shape study compares shapes of one size"
        )
    return Shape(n_layers, d_model, choose_n_heads(d_model))


def target_size(spec: str, tolerance: float = DEFAULT_TOLERANCE) -> TargetSize:
    """``l8`` (a Table IV scale) or a number of parameters (``1.57e6``, ``1572864``).

    A number within ``tolerance`` of a Table IV size takes that scale's shape as reference.
    """
    spec = str(spec).strip()
    if spec in available_scales():
        scale = load_scale(spec)
        reference = Shape(scale.n_layers, scale.d_model, scale.n_heads)
        return TargetSize(spec, reference.non_embedding_params, reference, spec)
    try:
        N = float(spec)
    except ValueError:
        raise ConfigError(
            f"unknown size {spec!r}: give a scale ({', '.join(available_scales())}) or a number of "
            f"non-embedding parameters such as 1.57e6"
        ) from None
    if not (math.isfinite(N) and N >= 12):
        raise ConfigError(f"a target size must be at least 12 parameters (one layer of width 1), got {spec}")
    N = int(round(N))
    for scale in scales():
        if _within(scale.non_embedding_params, N, tolerance):
            reference = Shape(scale.n_layers, scale.d_model, scale.n_heads)
            return TargetSize(spec, N, reference, scale.name)
    return TargetSize(spec, N, None, None)


def build_shapes(
    target: TargetSize,
    ratios: list[float] | None = None,
    pairs: list[tuple[int, int]] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> list[Shape]:
    """The shapes of one shape study, reference first, then by aspect ratio.

    Without ``ratios`` or ``pairs``, the ratios are the reference's R / 8, R and 8 R, the
    spread of the paper's transformations (those out of reach at this N are left out).
    Shapes that coincide are listed once.
    """
    explicit_ratios = ratios is not None
    if ratios is None and not pairs:
        if target.reference is None:
            raise ConfigError(
                f"{target.name} is not a Table IV size: give the aspect ratios (--ratios=...) or "
                f"shapes (--pairs=32x64,...) to compare"
            )
        ratios = [target.reference.aspect_ratio * f for f in DEFAULT_RATIO_FACTORS]
    shapes = []
    for ratio in ratios or []:
        try:
            shapes.append(shape_for_ratio(target.N, ratio, tolerance))
        except ConfigError:
            if explicit_ratios:
                raise
            # a default ratio beyond reach (R * 8 at l2 needs less than one layer) is left out
    shapes += [shape_from_pair(target.N, L, d, tolerance) for L, d in pairs or []]
    unique: dict[tuple[int, int], Shape] = {}
    if target.reference is not None:
        unique[(target.reference.n_layers, target.reference.d_model)] = target.reference
    for shape in sorted(shapes, key=lambda s: s.aspect_ratio):
        unique.setdefault((shape.n_layers, shape.d_model), shape)
    return list(unique.values())


def parse_ratios(text: str) -> list[float]:
    """``"2,16,128"`` -> ``[2.0, 16.0, 128.0]``, with a clear error for anything else."""
    values = []
    for part in _split(text, "--ratios"):
        try:
            value = float(part)
        except ValueError:
            raise ConfigError(f"--ratios: {part!r} is not a number (write --ratios=2,16,128)") from None
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--ratios: an aspect ratio must be positive, got {part}")
        values.append(value)
    return values


def parse_pairs(text: str) -> list[tuple[int, int]]:
    """``"32x64,8x128"`` -> ``[(32, 64), (8, 128)]`` as (n_layers, d_model)."""
    pairs = []
    for part in _split(text, "--pairs"):
        layers, sep, width = part.lower().partition("x")
        if not sep or not layers.strip().isdigit() or not width.strip().isdigit():
            raise ConfigError(f"--pairs: {part!r} is not n_layers x d_model (write --pairs=32x64,8x128,2x256)")
        pairs.append((int(layers), int(width)))
    return pairs


def _split(text: str, option: str) -> list[str]:
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ConfigError(f"{option} is empty")
    return parts
