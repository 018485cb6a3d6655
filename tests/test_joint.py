"""The joint law L(N, D') and the planner: recovery on known laws, refusals, the command line."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from recbole_lsrm.scaling.fit import FitError
from recbole_lsrm.scaling.joint import PARAMETERS, JointFit, effective_data, fit_joint, holdout_errors, plan

TRUE = {"E": 3.0, "A": 40.0, "alpha": 0.35, "B": 300.0, "beta": 0.4, "R_star": 8.0}


def known_law(N, U, epochs):
    return JointFit(**TRUE, n_points=0, rmse=0.0, ranges={}).predict(N, U, epochs)


def synthetic_trials(noise: float = 0.003, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for N in (1e4, 3e4, 1e5, 3e5, 1e6):
        for U in (1e5, 5e5, 1e6):
            for epochs in (1, 4, 16):
                rows.append((N, U, epochs, U / 1e6))
    N, U, epochs, fraction = (np.array(c, dtype=float) for c in zip(*rows))
    L = known_law(N, U, epochs) + rng.normal(0, noise, N.size)
    return N, U, epochs, fraction, L


def test_effective_data_follows_muennighoff():
    assert effective_data(1000, 1, 5.0) == pytest.approx(1000)
    assert effective_data(1000, 0.5, 5.0) == pytest.approx(500)
    # repeated epochs are worth less than fresh data and saturate at U (1 + R*)
    assert effective_data(1000, 2, 5.0) == pytest.approx(1000 + 5000 * (1 - math.exp(-1 / 5)))
    assert 1000 < effective_data(1000, 4, 5.0) < 4000
    assert effective_data(1000, 1e6, 5.0) == pytest.approx(6000)


@pytest.mark.slow
@pytest.mark.parametrize("intervals", ["bootstrap", "covariance"])
def test_fit_recovers_a_known_law_within_its_intervals(intervals):
    draws, unseen = 40, (2e5, 7e5, 8)
    covered = {name: 0 for name in PARAMETERS}
    predicted = 0
    for seed in range(draws):
        N, U, epochs, _, L = synthetic_trials(seed=seed)
        fit = fit_joint(N, U, epochs, L, seed=seed, samples=100, intervals=intervals)
        assert fit.ci_method.startswith(intervals)
        assert fit.rmse < 0.006
        for name in PARAMETERS:
            assert getattr(fit, name) == pytest.approx(TRUE[name], rel=0.05)
            lo, hi = fit.ci95[name]
            covered[name] += lo <= TRUE[name] <= hi
        lo, hi = fit.predict_interval(*unseen)
        predicted += lo <= known_law(*unseen) <= hi
    # 95% intervals: each constant's truth inside in most of the noise draws (about 80-95% of
    # these 40, benchmarks/joint_intervals.py measures it over more), and the prediction
    # interval of an unseen combination holds its true loss as often
    assert all(count >= 0.75 * draws for count in covered.values()), covered
    assert predicted >= 0.75 * draws, predicted
    assert fit.predict(*unseen) == pytest.approx(known_law(*unseen), abs=0.02)


def test_bootstrap_intervals_come_from_refits_and_unknown_methods_are_refused():
    N, U, epochs, _, L = synthetic_trials()
    boot = fit_joint(N, U, epochs, L, samples=30)
    wald = fit_joint(N, U, epochs, L, samples=30, intervals="covariance")
    assert boot.ci_method.startswith("bootstrap: 30 refits") and len(boot.samples) == 30
    # the same estimate, other intervals: each bootstrap interval is the percentiles of its refits
    assert boot.constants() == pytest.approx(wald.constants())
    assert boot.ci95 != wald.ci95
    refits = np.array(boot.samples)
    for i, name in enumerate(PARAMETERS):
        assert boot.ci95[name] == pytest.approx(list(np.percentile(refits[:, i], [2.5, 97.5])), rel=1e-3)
    none = fit_joint(N, U, epochs, L, samples=0)
    assert none.ci95 == {} and none.samples == [] and none.predict_interval(1e5, 5e5, 4) is None
    with pytest.raises(FitError, match="intervals must be one of bootstrap, covariance"):
        fit_joint(N, U, epochs, L, intervals="jackknife")


def test_planner_picks_the_known_optimum():
    N, U, epochs, _, L = synthetic_trials(noise=0.0)
    fit = fit_joint(N, U, epochs, L, samples=0)
    D, C = 5e5, 6 * 1e5 * 5e5 * 4  # enough for a 1e5 model on 4 epochs
    result = plan(fit, D, C)
    grid = np.logspace(2, 8, 20001)
    truth = known_law(grid, D, C / (6 * grid * D))
    best = grid[np.argmin(truth)]
    assert result["best"]["N"] == pytest.approx(best, rel=0.1)
    assert result["best"]["epochs"] == pytest.approx(C / (6 * result["best"]["N"] * D))
    assert all(r["loss"] >= result["best"]["loss"] for r in result["runners_up"])
    # restricted to named sizes, it picks the best of those
    sizes = {"small": 1e4, "medium": 1e5, "large": 1e6}
    named = plan(fit, D, C, sizes=sizes)
    truth = {k: known_law(n, D, C / (6 * n * D)) for k, n in sizes.items()}
    assert named["best"]["label"] == min(truth, key=truth.get)


def test_planner_refuses_to_extrapolate_far():
    N, U, epochs, _, L = synthetic_trials(noise=0.0)
    fit = fit_joint(N, U, epochs, L, samples=0)
    with pytest.raises(FitError, match="outside the fitted data"):
        plan(fit, 1e9, 1e18)
    with pytest.raises(FitError, match="out of reach|epochs"):
        plan(fit, 5e5, 1e25)  # a budget for a model far beyond the fitted sizes


def test_too_few_points_or_one_data_size_are_refused():
    N, U, epochs, _, L = synthetic_trials()
    with pytest.raises(FitError, match="at least 8 trials"):
        fit_joint(N[:5], U[:5], epochs[:5], L[:5])
    one = U == 1e6
    with pytest.raises(FitError, match="at least 2 data sizes"):
        fit_joint(N[one], U[one], epochs[one], L[one])
    with pytest.raises(FitError, match="U \\(unique training targets\\) must be positive"):
        fit_joint(N, np.where(one, 0, U), epochs, L)


@pytest.mark.slow
def test_holdout_errors_compare_with_per_fraction_fits():
    N, U, epochs, fraction, L = synthetic_trials()
    entries = holdout_errors(N, U, epochs, L, fraction)
    sizes = [e for e in entries if e["left_out"] == "size"]
    fractions = [e for e in entries if e["left_out"] == "fraction"]
    assert len(sizes) == 5 and len(fractions) == 3
    assert all(e["joint_error_pct"] < 1 for e in entries)
    # a per-fraction L(N) ignores the epochs its trials ran: the joint law predicts far better
    assert all(e["per_fraction_error_pct"] > 3 * e["joint_error_pct"] for e in sizes)
    assert all(e["per_fraction_error_pct"] is None for e in fractions)  # no data of that fraction to fit


@pytest.mark.slow
def test_fit_joint_and_plan_commands(tmp_path, capsys):
    from recbole_lsrm.scaling.__main__ import main

    N, U, epochs, fraction, L = synthetic_trials()
    table = tmp_path / "results.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["size", "N", "fraction", "epochs_run", "best_epoch", "train_positions", "test_ce_loss"])
        for i, row in enumerate(zip(N, U, epochs, fraction, L)):
            n, u, e, fr, loss = row
            writer.writerow([f"s{int(n)}", n, fr, int(e), int(e) - 1, u * e, loss])
    assert main(["fit-joint", str(table), "--samples=0"]) == 2
    assert "--samples must be >= 1" in capsys.readouterr().err and not (tmp_path / "fits.json").exists()
    assert main(["fit-joint", str(table), "--samples=20"]) == 0
    printed = capsys.readouterr().out
    assert "alpha" in printed and "left out" in printed
    fits = json.loads((tmp_path / "fits.json").read_text())
    assert fits["joint"]["n_points"] == N.size
    assert (tmp_path / "joint.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "iso_compute.png").read_bytes()[:4] == b"\x89PNG"

    assert main(["plan", f"--fits={tmp_path / 'fits.json'}", "--interactions=5e5", "--budget=1.2e12"]) == 0
    printed = capsys.readouterr().out
    assert "best:" in printed and "epochs" in printed
    assert main(["plan", f"--fits={tmp_path / 'fits.json'}", "--interactions=5e5", "--budget=0.001gpuh", "--mfu=0.4",
                 "--peak-flops=1e12"]) == 0
    capsys.readouterr()
    assert main(["plan", f"--fits={tmp_path / 'fits.json'}", "--interactions=5e9", "--budget=1e15"]) == 2
    assert "outside the fitted data" in capsys.readouterr().err
    assert main(["plan", f"--fits={tmp_path / 'fits.json'}", "--interactions=5e5", "--budget=lots"]) == 2
    assert "--budget" in capsys.readouterr().err


def test_a_law_that_the_trials_leave_open_is_named_and_not_planned_from():
    # Losses that do not depend on N at all: the N term cannot be determined.
    N, U, epochs, _, _ = synthetic_trials()
    flat = JointFit(**{**TRUE, "A": 0.0}, n_points=0, rmse=0.0, ranges={}).predict(N, U, epochs)
    L = flat + np.random.default_rng(1).normal(0, 0.003, N.size)
    fit = fit_joint(N, U, epochs, L, samples=20)
    assert {"A", "alpha"} <= set(fit.undetermined), fit.undetermined  # a term stands or falls whole
    assert not {"B", "beta"} & set(fit.undetermined)
    assert any("not determined" in note for note in fit.notes)
    with pytest.raises(FitError, match="does not determine how the loss depends on N"):
        plan(fit, 5e5, 6 * 1e5 * 5e5 * 4)
    anyway = plan(fit, 5e5, 6 * 1e5 * 5e5 * 4, allow_undetermined=True)
    assert anyway["warnings"] and anyway["best"]["N"] > 0
    # the known law leaves nothing open, and its plan has no warnings
    known = fit_joint(*(synthetic_trials()[i] for i in (0, 1, 2, 4)), samples=0)
    assert known.undetermined == []
    assert plan(known, 5e5, 6 * 1e5 * 5e5 * 4)["warnings"] == []
    # the list survives fits.json
    assert JointFit.from_dict(fit.to_dict()).undetermined == fit.undetermined


def test_an_undetermined_repetition_term_keeps_the_plan_within_the_fitted_epochs():
    N, U, epochs, _, L = synthetic_trials(noise=0.0)
    fit = fit_joint(N, U, epochs, L, samples=0)
    fit.undetermined = ["R_star"]
    budget, only = 6 * 1e4 * 5e5 * 100, {"small": 1e4}  # 100 epochs: far more than the 16 fitted
    assert plan(fit, 5e5, budget, sizes=only, allow_undetermined=True)["best"]["epochs"] == pytest.approx(100)
    with pytest.raises(FitError, match="R\\* \\(what a repeated epoch is worth\\) is not determined"):
        plan(fit, 5e5, budget, sizes=only)
    fit.undetermined = []  # determined: up to 10x the fitted epochs may be planned
    assert plan(fit, 5e5, budget, sizes=only)["best"]["epochs"] == pytest.approx(100)
