"""Fitting the model-size scaling law L(N) = E + (N0 / N)^alpha (paper IV-A, eq. 2).

A table in, fits out: plain arrays of non-embedding parameters ``N`` and losses ``L``; no Ray,
no RecBole. The fit is a bounded least-squares problem in ``(E, ln N0, alpha)``, started
from several points because the three constants trade off against each other (a flatter
curve with a lower ``E`` fits almost as well), with confidence intervals from the
covariance of the estimate or from a residual bootstrap.

Identifiability, in numbers: for the paper's flat ML-20M law (alpha = 0.121), a 1% error in
``alpha`` moves ``N0`` by tens of percent, so ``N0`` is the least certain constant even when
the curve itself (and hence every prediction) is pinned down well. The intervals show this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import stats
from scipy.optimize import least_squares

from recbole_lsrm.errors import LSRMError

#: The paper's fit on MovieLens-20M, four models from 98.3K to 9.4M (IV-A).
PAPER_FIT = {"dataset": "ML-20M", "E": 4.9, "N0": 6.8e5, "alpha": 0.121}

PARAMETERS = ("E", "N0", "alpha")

# Bounds of alpha: below 1e-3 the curve is flat over any range of N a sweep can cover;
# above 5 it is a step. Both ends are far outside what scaling studies report (0.05-0.5).
_ALPHA_BOUNDS = (1e-3, 5.0)
# N0 may lie far outside the fitted sizes (the paper's 6.8e5 lies inside them, NLP's
# 8.8e13 does not; with E held at 0, a flat curve puts it beyond 1e25): allow 40 decades.
_LN_N0_MARGIN = math.log(1e40)


class FitError(LSRMError, ValueError):
    """Data a scaling law cannot be fitted to (too few sizes, non-positive N, NaN losses)."""


def power_law(N: np.ndarray | float, E: float, N0: float, alpha: float) -> np.ndarray:
    """L(N) = E + (N0 / N)^alpha, elementwise."""
    return E + (N0 / np.asarray(N, dtype=float)) ** alpha


@dataclass
class PowerLawFit:
    """The fitted constants of L(N) = E + (N0 / N)^alpha and how well they are determined.

    ``ci95`` holds a 95% interval per constant, or is empty where the data cannot give one
    (as many sizes as free constants: the curve passes through every point).
    ``fixed`` names the constants held at a given value (``{"E": 0.0}``).
    """

    E: float
    N0: float
    alpha: float
    n_points: int
    n_sizes: int
    rmse: float
    ci95: dict[str, tuple[float, float]] = field(default_factory=dict)
    ci_method: str = ""
    fixed: dict[str, float] = field(default_factory=dict)
    at_bound: list[str] = field(default_factory=list)
    # Covariance of the free constants in the fitted parametrisation (E, ln N0, alpha),
    # kept for prediction intervals (delta method).
    _cov: np.ndarray | None = field(default=None, repr=False)

    def predict(self, N: np.ndarray | float) -> np.ndarray:
        """The law's loss at ``N`` non-embedding parameters."""
        return power_law(N, self.E, self.N0, self.alpha)

    def predict_interval(self, N: np.ndarray | float) -> tuple[np.ndarray, np.ndarray] | None:
        """95% interval of the fitted curve at ``N`` (delta method), or None without a covariance."""
        if self._cov is None:
            return None
        N = np.atleast_1d(np.asarray(N, dtype=float))
        grad = _jacobian(self._theta(), np.log(N), self.fixed)  # (n, p)
        se = np.sqrt(np.einsum("ij,jk,ik->i", grad, self._cov, grad))
        t = stats.t.ppf(0.975, max(self.n_points - self.n_free, 1))
        centre = self.predict(N)
        return centre - t * se, centre + t * se

    @property
    def n_free(self) -> int:
        return len(PARAMETERS) - len(self.fixed)

    def _theta(self) -> np.ndarray:
        return _pack(self.E, math.log(self.N0), self.alpha, self.fixed)

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers for fits.json."""
        return {
            "E": self.E,
            "N0": self.N0,
            "alpha": self.alpha,
            "ci95": {k: [lo, hi] for k, (lo, hi) in self.ci95.items()},
            "ci_method": self.ci_method,
            "fixed": dict(self.fixed),
            "at_bound": list(self.at_bound),
            "n_points": self.n_points,
            "n_sizes": self.n_sizes,
            "rmse": self.rmse,
        }


# --- the least-squares problem in theta = (E, ln N0, alpha), minus fixed constants ----------
def _pack(E: float, ln_n0: float, alpha: float, fixed: dict[str, float]) -> np.ndarray:
    return np.array(([] if "E" in fixed else [E]) + [ln_n0, alpha], dtype=float)


def _unpack(theta: np.ndarray, fixed: dict[str, float]) -> tuple[float, float, float]:
    if "E" in fixed:
        return fixed["E"], theta[0], theta[1]
    return theta[0], theta[1], theta[2]


def _curve(theta: np.ndarray, ln_n: np.ndarray, fixed: dict[str, float]) -> np.ndarray:
    E, ln_n0, alpha = _unpack(theta, fixed)
    return E + np.exp(alpha * (ln_n0 - ln_n))


def _jacobian(theta: np.ndarray, ln_n: np.ndarray, fixed: dict[str, float]) -> np.ndarray:
    _, ln_n0, alpha = _unpack(theta, fixed)
    r = np.exp(alpha * (ln_n0 - ln_n))  # the reducible loss (N0 / N)^alpha
    columns = [alpha * r, (ln_n0 - ln_n) * r]
    if "E" not in fixed:
        columns.insert(0, np.ones_like(r))
    return np.stack(columns, axis=1)


def _check_points(N: Iterable[float], L: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    N = np.asarray(list(N), dtype=float)
    L = np.asarray(list(L), dtype=float)
    if N.shape != L.shape or N.ndim != 1:
        raise FitError(f"N and L must be two lists of the same length; got {N.shape} and {L.shape}")
    if N.size == 0:
        raise FitError("no points to fit")
    bad_n = np.flatnonzero(~np.isfinite(N) | (N <= 0))
    if bad_n.size:
        raise FitError(
            f"N must be a positive number of non-embedding parameters; point {int(bad_n[0])} has N = {N[bad_n[0]]!r}"
        )
    bad_l = np.flatnonzero(~np.isfinite(L))
    if bad_l.size:
        raise FitError(f"the loss of point {int(bad_l[0])} (N = {N[bad_l[0]]:,.0f}) is not a finite number: {L[bad_l[0]]!r}")
    return N, L


def _solve(
    ln_n: np.ndarray, L: np.ndarray, starts: Sequence[np.ndarray], bounds: tuple[np.ndarray, np.ndarray], fixed: dict[str, float]
):
    best = None
    for x0 in starts:
        result = least_squares(
            lambda th: _curve(th, ln_n, fixed) - L,
            np.clip(x0, bounds[0], bounds[1]),
            jac=lambda th: _jacobian(th, ln_n, fixed),
            bounds=bounds,
            method="trf",
            x_scale="jac",
            max_nfev=2000,
        )
        if best is None or result.cost < best.cost:
            best = result
    return best


def _starts(ln_n: np.ndarray, L: np.ndarray, fixed: dict[str, float]) -> list[np.ndarray]:
    """Start points spread over E and alpha; N0 from the smallest model's loss given those."""
    smallest = int(np.argmin(ln_n))
    floor = float(L.min())
    e_values = [fixed["E"]] if "E" in fixed else [0.0, 0.5 * floor, 0.9 * floor]
    starts = []
    for E in e_values:
        for alpha in (0.05, 0.15, 0.5, 1.0):
            reducible = max(float(L[smallest]) - E, 1e-6)
            ln_n0 = float(ln_n[smallest]) + math.log(reducible) / alpha
            starts.append(_pack(E, ln_n0, alpha, fixed))
    return starts


def fit_power_law(
    N: Iterable[float],
    L: Iterable[float],
    fix_E: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
) -> PowerLawFit:
    """Fit L(N) = E + (N0 / N)^alpha to the points ``(N[i], L[i])``.

    Several points may share one N (seeds). ``fix_E`` holds the irreducible loss at a given
    value and fits ``N0`` and ``alpha`` only (two sizes are then enough). ``bootstrap`` > 0
    gives percentile intervals from that many refits on resampled residuals instead of the
    covariance intervals.

    Raises :class:`FitError` for non-positive or non-finite input, or for fewer distinct
    model sizes than free constants (the curve would not be determined).
    """
    N, L = _check_points(N, L)
    fixed = {} if fix_E is None else {"E": float(fix_E)}
    n_free = len(PARAMETERS) - len(fixed)
    sizes = np.unique(N)
    if sizes.size < n_free:
        shown = ", ".join(f"{n:,.0f}" for n in sizes)
        hint = " or hold E fixed (--fix-E)" if "E" not in fixed else ""
        raise FitError(
            f"fitting L(N) = E + (N0/N)^alpha with {n_free} free constants needs at least {n_free} "
            f"different model sizes; got {sizes.size} ({shown}). Add sizes{hint}."
        )
    if "E" in fixed and np.any(L <= fixed["E"]):
        raise FitError(f"with E fixed at {fixed['E']}, every loss must be above it; the lowest is {L.min():.4f}")

    ln_n = np.log(N)
    lower = [ln_n.min() - _LN_N0_MARGIN, _ALPHA_BOUNDS[0]]
    upper = [_LN_N0_MARGIN + ln_n.max(), _ALPHA_BOUNDS[1]]
    if "E" not in fixed:
        # E is the irreducible part of a cross-entropy: not negative, and below every loss.
        lower.insert(0, 0.0)
        upper.insert(0, float(L.min()))
    bounds = (np.array(lower), np.array(upper))
    best = _solve(ln_n, L, _starts(ln_n, L, fixed), bounds, fixed)
    theta = best.x
    E, ln_n0, alpha = _unpack(theta, fixed)
    residuals = _curve(theta, ln_n, fixed) - L
    n = N.size
    dof = n - n_free
    names = [p for p in PARAMETERS if p not in fixed]
    scale = np.maximum(np.abs(bounds[1] - bounds[0]), 1e-12)
    at_bound = [
        name for name, x, lo, hi, s in zip(names, theta, bounds[0], bounds[1], scale)
        if min(x - lo, hi - x) < 1e-6 * s
    ]

    result = PowerLawFit(
        E=float(E), N0=float(math.exp(ln_n0)), alpha=float(alpha), n_points=int(n), n_sizes=int(sizes.size),
        rmse=float(np.sqrt(np.mean(residuals**2))), fixed=fixed, at_bound=at_bound,
    )
    if dof < 1:
        result.ci_method = (
            f"none: {n} points for {n_free} free constants leave no degree of freedom to estimate the error"
        )
        return result

    J = _jacobian(theta, ln_n, fixed)
    sigma2 = float(np.sum(residuals**2)) / dof
    try:
        cov = sigma2 * np.linalg.inv(J.T @ J)
    except np.linalg.LinAlgError:
        cov = None
    if cov is not None and np.all(np.isfinite(cov)) and np.all(np.diag(cov) >= 0):
        result._cov = cov
    if bootstrap > 0:
        result.ci95 = _bootstrap_ci(ln_n, L, theta, residuals, bounds, fixed, bootstrap, seed)
        result.ci_method = f"bootstrap: {bootstrap} refits on resampled residuals, 2.5-97.5 percentiles"
    elif result._cov is not None:
        t = float(stats.t.ppf(0.975, dof))
        se = np.sqrt(np.diag(result._cov))
        # Wald intervals, cut to the fit's bounds (E >= 0, alpha > 0): outside them the law
        # is not a scaling law, and the cut shows where the data say little.
        lo = np.maximum(theta - t * se, bounds[0])
        hi = np.minimum(theta + t * se, bounds[1])
        result.ci95 = {name: _natural(name, a, b) for name, a, b in zip(names, lo, hi)}
        result.ci_method = (
            f"covariance: estimate +- t(0.975, {dof} dof) x standard error, N0 on the log scale, "
            f"cut to the fit's bounds"
        )
    else:
        result.ci_method = "none: the covariance of the estimate is singular"
    return result


def _bootstrap_ci(
    ln_n: np.ndarray,
    L: np.ndarray,
    theta: np.ndarray,
    residuals: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    fixed: dict[str, float],
    n_resamples: int,
    seed: int,
) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    fitted = _curve(theta, ln_n, fixed)
    samples = []
    for _ in range(n_resamples):
        resampled = fitted - rng.choice(residuals, size=residuals.size, replace=True)
        if "E" not in fixed:
            # the bound E <= min(L) moves with the resampled losses
            bounds = (bounds[0], np.concatenate([[resampled.min()], bounds[1][1:]]))
        start = np.clip(theta, bounds[0], bounds[1])
        samples.append(_solve(ln_n, resampled, [start], bounds, fixed).x)
    samples = np.array(samples)
    names = [p for p in PARAMETERS if p not in fixed]
    ci = {}
    for i, name in enumerate(names):
        lo, hi = np.percentile(samples[:, i], [2.5, 97.5])
        ci[name] = _natural(name, lo, hi)
    return ci


def _natural(name: str, lo: float, hi: float) -> tuple[float, float]:
    """An interval of the fitted parametrisation in the law's own terms (N0 from ln N0)."""
    if name == "N0":
        with np.errstate(over="ignore"):
            return float(np.exp(lo)), float(np.exp(hi))
    return float(lo), float(hi)
