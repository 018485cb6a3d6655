"""One law over model size, unique data and repetition, and the compute-optimal plan under it.

    L(N, D') = E + A / N^alpha + B / D'^beta,
    D' = U + U R* (1 - exp(-R / R*)),   R = epochs - 1,

with U the unique training targets (interactions predicted once per epoch) and D' the
effective data after repetition as Muennighoff et al. (2023, "Scaling Data-Constrained
Language Models") define it: the R repeated epochs are worth less than fresh data, and R*
(fitted) is how many repetitions are worth having. One epoch or less (R <= 0) gives D' = the
data seen.

:func:`fit_joint` fits the six constants by least squares (several starts) with 95%
intervals from a residual bootstrap (or from the estimate's covariance), and names the
constants the trials do not determine (the estimate at a bound of the fit, or an interval
from one bound to the other); :func:`holdout_errors` refits without one model size or one
data fraction at a time and predicts it, next to what the per-fraction L(N) fits
(:mod:`recbole_lsrm.scaling.fit`) can predict; :func:`plan` answers "which N and
how many epochs for D interactions and a budget of C FLOPs" (C = 6 N x trained targets, the
usual transformer count), refusing to extrapolate far beyond the fitted range, and to choose
a size (or an amount of data) when the law's N term (or D' term) is undetermined: the choice
would then be an artefact of the fit, not something the trials show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
from scipy import stats
from scipy.optimize import least_squares

from recbole_lsrm.scaling.fit import FitError, fit_power_law

PARAMETERS = ("E", "A", "alpha", "B", "beta", "R_star")
MIN_POINTS = 8  # six constants and at least two degrees of freedom
DEFAULT_SAMPLES = 200
INTERVALS = ("bootstrap", "covariance")
# Which constants each choice of the planner rests on.
SIZE_TERM = ("A", "alpha")
DATA_TERM = ("B", "beta")
AT_BOUND = 1e-3  # an estimate this close to a bound (in the fitted parametrisation) sits on it
DEFAULT_EXTRAPOLATION = 10.0  # how far past the fitted N, U and epochs the planner goes
FLOPS_PER_PARAMETER_AND_TARGET = 6  # forward + backward


def effective_data(U: np.ndarray | float, epochs: np.ndarray | float, r_star: float) -> np.ndarray:
    """D' for U unique targets seen ``epochs`` times (fractional epochs < 1: the part seen)."""
    U, epochs = np.asarray(U, dtype=float), np.asarray(epochs, dtype=float)
    repeats = np.maximum(epochs - 1.0, 0.0)
    seen = U * np.minimum(epochs, 1.0)
    return seen + U * r_star * (1.0 - np.exp(-repeats / r_star))


@dataclass
class JointFit:
    E: float
    A: float
    alpha: float
    B: float
    beta: float
    R_star: float
    n_points: int
    rmse: float
    ranges: dict[str, list[float]]  # the fitted N, U and epochs: [min, max]
    ci95: dict[str, list[float]] = field(default_factory=dict)
    samples: list[list[float]] = field(default_factory=list)  # constants drawn for prediction intervals
    notes: list[str] = field(default_factory=list)
    ci_method: str = ""  # how ci95 and the samples were made
    undetermined: list[str] = field(default_factory=list)  # constants the trials leave open

    def constants(self) -> np.ndarray:
        return np.array([getattr(self, p) for p in PARAMETERS])

    def predict(self, N, U, epochs, constants: np.ndarray | None = None) -> np.ndarray:
        E, A, alpha, B, beta, r_star = self.constants() if constants is None else constants
        D = effective_data(U, epochs, r_star)
        return E + A / np.asarray(N, dtype=float) ** alpha + B / D**beta

    def predict_interval(self, N, U, epochs) -> tuple[np.ndarray, np.ndarray] | None:
        """2.5 and 97.5 percentiles of the predictions of the sampled constants (see ``ci_method``)."""
        if not self.samples:
            return None
        predictions = np.array([self.predict(N, U, epochs, np.array(s)) for s in self.samples])
        return np.percentile(predictions, 2.5, axis=0), np.percentile(predictions, 97.5, axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "law": "L(N, D') = E + A / N^alpha + B / D'^beta, D' = U + U R* (1 - exp(-(epochs - 1) / R*))",
            **{p: getattr(self, p) for p in PARAMETERS},
            "ci95": self.ci95, "n_points": self.n_points, "rmse": self.rmse, "ranges": self.ranges,
            "ci_method": self.ci_method, "samples": self.samples, "notes": self.notes,
            "undetermined": self.undetermined,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "JointFit":
        try:
            return cls(**{p: float(data[p]) for p in PARAMETERS}, n_points=int(data["n_points"]),
                       rmse=float(data["rmse"]), ranges=data["ranges"], ci95=data.get("ci95", {}),
                       samples=data.get("samples", []), notes=data.get("notes", []), ci_method=data.get("ci_method", ""),
                       undetermined=list(data.get("undetermined", [])))
        except (KeyError, TypeError, ValueError) as err:
            raise FitError(f"not a joint fit (missing or bad {err}); write one with: python -m recbole_lsrm.scaling fit-joint") from None


# --- fitting ---------------------------------------------------------------------------------
def _unpack(theta: np.ndarray) -> np.ndarray:
    E, ln_a, alpha, ln_b, beta, ln_r = theta
    with np.errstate(over="ignore"):
        return np.array([E, np.exp(ln_a), alpha, np.exp(ln_b), beta, np.exp(ln_r)], dtype=float)


def _residuals(theta, ln_n, U, epochs, L):
    E, ln_a, alpha, ln_b, beta, ln_r = theta
    D = effective_data(U, epochs, math.exp(ln_r))
    return E + np.exp(ln_a - alpha * ln_n) + np.exp(ln_b - beta * np.log(D)) - L


def _solve(starts, ln_n, U, epochs, L, bounds):
    best = None
    for x0 in starts:
        result = least_squares(_residuals, np.clip(x0, bounds[0] + 1e-9, bounds[1] - 1e-9), args=(ln_n, U, epochs, L),
                               bounds=bounds, method="trf", x_scale="jac", max_nfev=3000)
        if best is None or result.cost < best.cost:
            best = result
    return best


def _check(N, U, epochs, L) -> tuple[np.ndarray, ...]:
    arrays = [np.asarray(list(x), dtype=float) for x in (N, U, epochs, L)]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise FitError("N, U, epochs and the losses must be lists of one length")
    for name, a in zip(("N", "U (unique training targets)", "epochs"), arrays[:3]):
        bad = np.flatnonzero(~np.isfinite(a) | (a <= 0))
        if bad.size:
            raise FitError(f"{name} must be positive; point {int(bad[0])} has {a[bad[0]]!r}")
    if not np.all(np.isfinite(arrays[3])):
        raise FitError("every loss must be a finite number")
    return tuple(arrays)


def fit_joint(N: Iterable[float], U: Iterable[float], epochs: Iterable[float], L: Iterable[float],
              samples: int = DEFAULT_SAMPLES, seed: int = 0, intervals: str = "bootstrap") -> JointFit:
    """Fit the joint law to trials (N, U, epochs) -> loss; refuses too few or one-axis data.

    ``intervals="bootstrap"`` (the default): ``samples`` refits on the fitted losses plus
    residuals resampled with replacement (scaled by 1 / sqrt(1 - leverage), so that they are as
    large as the noise, and centred); a constant's 95% interval is the 2.5-97.5 percentiles of
    its refits, and the refits' constants give the prediction intervals
    (:meth:`JointFit.predict_interval`). ``intervals="covariance"``: estimate +- t(0.975, n - 6)
    standard errors from the covariance of the estimate, and ``samples`` constant sets drawn from
    that normal approximation. ``samples=0``: no intervals (a fit to predict from, as
    :func:`holdout_errors` needs).
    """
    if intervals not in INTERVALS:
        raise FitError(f"intervals must be one of {', '.join(INTERVALS)}, got {intervals!r}")
    N, U, epochs, L = _check(N, U, epochs, L)
    if N.size < MIN_POINTS:
        raise FitError(f"the joint law has 6 constants: it needs at least {MIN_POINTS} trials, got {N.size}")
    if np.unique(N).size < 3:
        raise FitError(f"the joint law needs at least 3 model sizes, got {np.unique(N).size}")
    if np.unique(np.round(U)).size < 2:
        raise FitError("the joint law needs at least 2 data sizes (sweep --fractions); with one, fit L(N)")
    notes = []
    repeated = epochs > 1
    if not repeated.any():
        notes.append("no trial repeats its data (all epochs <= 1): R* is not determined by these trials")
    ln_n = np.log(N)
    bounds = _bounds(L)
    lower, upper = bounds
    floor = upper[0]
    starts = []
    for E in (0.0, 0.5 * floor, 0.9 * floor):
        for alpha in (0.1, 0.5):
            for beta in (0.1, 0.5):
                for r in (3.0, 30.0):
                    part = max(float(np.median(L)) - E, 1e-3) / 2
                    starts.append(np.array([
                        E, math.log(part) + alpha * float(np.median(ln_n)), alpha,
                        math.log(part) + beta * float(np.median(np.log(U))), beta, math.log(r),
                    ]))
    best = _solve(starts, ln_n, U, epochs, L, bounds)
    residuals = best.fun
    constants = _unpack(best.x)
    fit = JointFit(
        *constants.tolist(), n_points=int(N.size), rmse=float(np.sqrt(np.mean(residuals**2))),
        ranges={"N": [float(N.min()), float(N.max())], "U": [float(U.min()), float(U.max())],
                "epochs": [float(epochs.min()), float(epochs.max())]},
        notes=notes,
    )
    at_bound = (best.x - lower < AT_BOUND) | (upper - best.x < AT_BOUND)
    if samples <= 0:
        _name_undetermined(fit, at_bound)
        return fit
    dof = N.size - len(PARAMETERS)
    try:
        inverse = np.linalg.inv(best.jac.T @ best.jac)
    except np.linalg.LinAlgError:
        inverse = None
    if inverse is None or not np.all(np.isfinite(inverse)) or np.any(np.diag(inverse) < 0):
        fit.notes.append("the covariance of the estimate is singular: no intervals")
        _name_undetermined(fit, at_bound)
        return fit
    rng = np.random.default_rng(seed)
    if intervals == "bootstrap":
        draws = _bootstrap(best, inverse, ln_n, U, epochs, L, samples, rng)
        lo, hi = np.percentile(draws, 2.5, axis=0), np.percentile(draws, 97.5, axis=0)
        fit.ci_method = (f"bootstrap: {samples} refits on resampled residuals (leverage-corrected), "
                         "2.5-97.5 percentiles")
    else:
        # Wald intervals in the fitted parametrisation (A, B and R* on the log scale), cut to
        # the fit's bounds: where a cut shows, the trials say little about that constant.
        cov = float(np.sum(residuals**2)) / dof * inverse
        t = float(stats.t.ppf(0.975, dof))
        se = np.sqrt(np.diag(cov))
        lo, hi = np.maximum(best.x - t * se, lower), np.minimum(best.x + t * se, upper)
        draws = np.clip(rng.multivariate_normal(best.x, cov, size=samples, check_valid="ignore"), lower, upper)
        fit.ci_method = f"covariance: estimate +- t(0.975, {dof} dof) x standard error, cut to the fit's bounds"
    fit.ci95 = {p: [float(a), float(b)] for p, a, b in zip(PARAMETERS, _unpack(lo), _unpack(hi))}
    fit.samples = [_unpack(d).tolist() for d in draws]
    _name_undetermined(fit, at_bound | ((lo - lower < AT_BOUND) & (upper - hi < AT_BOUND)))
    return fit


def _bounds(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fit's bounds in its parametrisation (E, ln A, alpha, ln B, beta, ln R*); E <= min(L)."""
    lower = np.array([0.0, -50.0, 0.01, -50.0, 0.01, math.log(0.05)])
    upper = np.array([float(L.min()), 80.0, 3.0, 80.0, 3.0, math.log(1e4)])
    return lower, upper


def _bootstrap(best, inverse, ln_n, U, epochs, L, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Constants refitted to the fitted losses plus resampled residuals, one row per refit.

    A least-squares residual is smaller than the noise behind it by sqrt(1 - leverage); dividing
    by that (and centring) makes the resampled noise as large as the trials' own.
    """
    jac = best.jac
    leverage = np.clip(np.einsum("ij,jk,ik->i", jac, inverse, jac), 0.0, 0.99)
    noise = best.fun / np.sqrt(1.0 - leverage)
    noise -= noise.mean()
    fitted = L + best.fun  # best.fun = law - L
    draws = np.empty((samples, best.x.size))
    for i in range(samples):
        resampled = fitted + rng.choice(noise, size=noise.size, replace=True)
        draws[i] = _solve([best.x], ln_n, U, epochs, resampled, _bounds(resampled)).x
    return draws


def _name_undetermined(fit: JointFit, undetermined: np.ndarray) -> None:
    """Record (and explain in the notes) the constants the trials leave open.

    A term's two constants stand or fall together: with alpha open, A / N^alpha pins no A (and
    the other way round), so the partner of an open constant is named too.
    """
    flags = dict(zip(PARAMETERS, (bool(f) for f in undetermined)))
    partner = {}
    for term in (SIZE_TERM, DATA_TERM):
        for name in term:
            if not flags[name] and any(flags[other] for other in term):
                flags[name], partner[name] = True, next(other for other in term if flags[other])
    fit.undetermined = [name for name in PARAMETERS if flags[name]]
    explain = {
        "A": "how much the loss falls with N", "alpha": "how fast the loss falls with N",
        "B": "how much the loss falls with data", "beta": "how fast the loss falls with data",
        "R_star": "how much a repeated epoch is worth", "E": "the loss's floor",
    }
    for name in fit.undetermined:
        why = (f"its term's {partner[name]} is open" if name in partner
               else "at a bound of the fit, or an interval from one bound to the other")
        fit.notes.append(f"{name} is not determined by these trials ({why}): they do not show {explain[name]}")


# --- held-out prediction ---------------------------------------------------------------------------
def holdout_errors(N, U, epochs, L, fraction) -> list[dict[str, Any]]:
    """Leave one model size out, then one data fraction out: refit, predict the left-out trials.

    Each entry: what was left out, the joint law's mean |error| in % over those trials, and
    the per-fraction L(N) fit's (on the other sizes of the same fraction; None where it has
    fewer than 3 sizes to fit or, for a left-out fraction, no data of that fraction at all).
    """
    N, U, epochs, L = _check(N, U, epochs, L)
    fraction = np.asarray(list(fraction), dtype=float)
    out = []
    for axis, values in (("size", N), ("fraction", fraction)):
        for value in np.unique(values):
            left = values == value
            entry: dict[str, Any] = {"left_out": axis, "value": float(value), "trials": int(left.sum())}
            try:
                fit = fit_joint(N[~left], U[~left], epochs[~left], L[~left], samples=0)
                predicted = fit.predict(N[left], U[left], epochs[left])
                entry["joint_error_pct"] = float(np.mean(np.abs(predicted - L[left]) / L[left]) * 100)
            except FitError as err:
                entry["joint_error_pct"], entry["joint_refused"] = None, str(err)
            entry["per_fraction_error_pct"] = _per_fraction_error(N, L, fraction, left) if axis == "size" else None
            out.append(entry)
    return out


def _per_fraction_error(N, L, fraction, left) -> float | None:
    errors = []
    for f in np.unique(fraction[left]):
        rows = fraction == f
        train = rows & ~left
        try:
            fit = fit_power_law(N[train], L[train])
        except FitError:
            return None
        test = rows & left
        errors.extend(np.abs(fit.predict(N[test]) - L[test]) / L[test] * 100)
    return float(np.mean(errors)) if errors else None


# --- planning ----------------------------------------------------------------------------------
@dataclass
class Choice:
    N: float
    epochs: float
    targets: float  # trained targets: epochs x D
    loss: float
    interval: list[float] | None
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"N": self.N, "epochs": self.epochs, "targets": self.targets, "loss": self.loss,
                "loss_ci95": self.interval, "label": self.label}


def plan(fit: JointFit, interactions: float, budget_flops: float, sizes: dict[str, float] | None = None,
         extrapolation: float = DEFAULT_EXTRAPOLATION, runners_up: int = 4,
         allow_undetermined: bool = False) -> dict[str, Any]:
    """The N (and epochs = C / (6 N D)) with the lowest predicted loss for budget C and data D.

    ``sizes`` restricts N to named sizes (Table IV scales); otherwise a log grid of N within
    ``extrapolation`` times the fitted range. Refuses (FitError) data or epochs more than
    ``extrapolation`` times outside the fitted range, and an optimum at the grid's edge. Unless
    ``allow_undetermined``, it also refuses a fit whose N term or D' term is undetermined
    (:attr:`JointFit.undetermined`), and with R* undetermined it stays within the fitted epochs.
    """
    D = float(interactions)
    if not (D > 0 and budget_flops > 0):
        raise FitError(f"--interactions and --budget must be positive, got {interactions} and {budget_flops}")
    open_terms = [n for n in SIZE_TERM + DATA_TERM if n in fit.undetermined]
    if open_terms and not allow_undetermined:
        what = " or ".join(w for term, w in ((SIZE_TERM, "how the loss depends on N"), (DATA_TERM, "how the loss depends on data"))
                           if set(term) & set(open_terms))
        raise FitError(f"the fitted law does not determine {what} ({', '.join(open_terms)}: at a bound of the fit, or "
                       "an interval from one bound to the other, or the partner of such a constant), so its choice would be an artefact of the fit, not "
                       "of the trials; add trials that vary that axis where it matters, or pass --allow-undetermined "
                       "to see the fit's choice anyway")
    warnings = [f"{n} is undetermined: the choice rests on a constant the trials do not show"
                for n in fit.undetermined if n != "E"] if allow_undetermined else []
    lo_u, hi_u = fit.ranges["U"]
    if not lo_u / extrapolation <= D <= hi_u * extrapolation:
        raise FitError(f"{D:,.0f} interactions is more than {extrapolation:g}x outside the fitted data "
                       f"({lo_u:,.0f} ... {hi_u:,.0f} unique targets): the law would be extrapolated too far")
    lo_n, hi_n = fit.ranges["N"]
    if sizes:
        names = {float(n): name for name, n in sizes.items()}
        grid = np.array(sorted(names))
        outside = [names[n] for n in grid if not lo_n / extrapolation <= n <= hi_n * extrapolation]
        grid = grid[(grid >= lo_n / extrapolation) & (grid <= hi_n * extrapolation)]
        if grid.size == 0:
            raise FitError(f"none of the sizes is within {extrapolation:g}x of the fitted N ({lo_n:,.0f} ... {hi_n:,.0f})")
    else:
        names, outside = {}, []
        grid = np.logspace(math.log10(lo_n / extrapolation), math.log10(hi_n * extrapolation), 241)
    targets = budget_flops / (FLOPS_PER_PARAMETER_AND_TARGET * grid)
    epochs = targets / D
    losses = fit.predict(grid, D, epochs)
    order = np.argsort(losses)
    best = int(order[0])
    most_fitted = fit.ranges["epochs"][1]
    if "R_star" in fit.undetermined and not allow_undetermined:
        if epochs[best] > most_fitted:
            raise FitError(f"the best choice trains {epochs[best]:.0f} epochs, more than the most epochs fitted "
                           f"({most_fitted:g}), and R* (what a repeated epoch is worth) is not determined by the "
                           "trials: no repetition beyond them can be predicted; pass --allow-undetermined to see it anyway")
    elif epochs[best] > most_fitted * extrapolation:
        raise FitError(f"the best choice trains {epochs[best]:.0f} epochs, more than {extrapolation:g}x the most "
                       f"epochs fitted ({most_fitted:g}): the repetition term would be extrapolated too far")
    if not sizes and best in (0, grid.size - 1):
        edge = "smallest" if best == 0 else "largest"
        raise FitError(f"the lowest predicted loss is at the {edge} N the planner may consider ({grid[best]:,.0f}, "
                       f"{extrapolation:g}x outside the fitted N {lo_n:,.0f} ... {hi_n:,.0f}): the optimum is out of reach")

    def choice(i: int) -> Choice:
        interval = fit.predict_interval(grid[i], D, epochs[i])
        return Choice(float(grid[i]), float(epochs[i]), float(targets[i]), float(losses[i]),
                      None if interval is None else [float(interval[0]), float(interval[1])], names.get(float(grid[i]), ""))

    picked = [choice(best)]
    # runners-up: the best choices at least a factor 1.5 in N away from every one shown
    for i in order[1:]:
        if len(picked) > runners_up:
            break
        if all(abs(math.log(grid[i] / c.N)) >= math.log(1.5) for c in picked):
            picked.append(choice(int(i)))
    return {"interactions": D, "budget_flops": float(budget_flops), "best": picked[0].to_dict(),
            "runners_up": [c.to_dict() for c in picked[1:]], "sizes_outside_range": outside,
            "flops_rule": "C = 6 N x (epochs x interactions)", "warnings": warnings}
