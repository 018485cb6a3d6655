"""Scaling-law fitting, shape building and the report: no training, no Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recbole_lsrm.errors import ConfigError, LSRMError
from recbole_lsrm.scaling.__main__ import main as scaling_main
from recbole_lsrm.scaling.fit import PAPER_FIT, FitError, fit_power_law, power_law
from recbole_lsrm.scaling.report import write_report
from recbole_lsrm.scaling.shapes import (
    DEFAULT_TOLERANCE,
    build_shapes,
    choose_n_heads,
    shape_for_ratio,
    shape_from_pair,
    target_size,
)

PAPER = (PAPER_FIT["E"], PAPER_FIT["N0"], PAPER_FIT["alpha"])
TABLE_IV_N = [98_304, 786_432, 1_572_864, 9_437_184, 75_497_472, 829_440_000]


def noisy_law(E: float, N0: float, alpha: float, N: np.ndarray, seed: int, noise: float = 0.01) -> np.ndarray:
    """Losses on the law with multiplicative Gaussian noise of ``noise`` (1% = 0.01)."""
    rng = np.random.default_rng(seed)
    return power_law(N, E, N0, alpha) * (1 + noise * rng.standard_normal(N.size))


# --- fit ------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
def test_fit_recovers_known_constants_from_points_with_one_percent_noise(seed):
    # 13 sizes over six decades, 4 seeds each: a sweep's worth of points.
    N = np.repeat(np.logspace(4, 10, 13), 4)
    fit = fit_power_law(N, noisy_law(2.0, 1e6, 0.5, N, seed))
    assert fit.E == pytest.approx(2.0, rel=0.03)
    assert fit.alpha == pytest.approx(0.5, rel=0.03)
    assert fit.N0 == pytest.approx(1e6, rel=0.10)  # N0 moves most: ln N0 is divided by alpha
    for name, value in (("E", 2.0), ("N0", 1e6), ("alpha", 0.5)):
        lo, hi = fit.ci95[name]
        assert lo <= getattr(fit, name) <= hi


def test_fit_recovers_the_papers_constants_exactly_without_noise():
    N = np.array(TABLE_IV_N, dtype=float)
    fit = fit_power_law(N, power_law(N, *PAPER))
    assert (fit.E, fit.N0, fit.alpha) == pytest.approx(PAPER, rel=1e-3)
    assert fit.rmse < 1e-6


def test_fit_confidence_intervals_cover_the_papers_flat_law():
    # With alpha = 0.121 a 1% loss error hides N0 within tens of percent; the intervals must
    # say so, i.e. contain the truth about 95% of the time, and predictions stay close.
    N = np.logspace(4, 10, 12)
    covered, worst_prediction = 0, 0.0
    for seed in range(30):
        fit = fit_power_law(N, noisy_law(*PAPER, N, seed))
        covered += all(fit.ci95[k][0] <= v <= fit.ci95[k][1] for k, v in zip(("E", "N0", "alpha"), PAPER))
        big = np.array([75_497_472, 829_440_000])
        worst_prediction = max(worst_prediction, np.max(np.abs(fit.predict(big) / power_law(big, *PAPER) - 1)))
    assert covered >= 24  # 80% of 30; nominal 95%, the Wald interval of a nonlinear fit is a bit short
    assert worst_prediction < 0.03


def test_bootstrap_intervals_contain_the_estimate():
    N = np.repeat(np.logspace(4, 9, 8), 2)
    fit = fit_power_law(N, noisy_law(2.0, 1e6, 0.5, N, seed=1), bootstrap=60)
    assert fit.ci_method.startswith("bootstrap")
    for name in ("E", "N0", "alpha"):
        lo, hi = fit.ci95[name]
        assert lo <= getattr(fit, name) <= hi


def test_fit_with_as_many_sizes_as_constants_is_exact_and_has_no_interval():
    N = np.array(TABLE_IV_N[:3], dtype=float)
    L = np.array([6.2, 5.9, 5.85])
    fit = fit_power_law(N, L)
    assert fit.predict(N) == pytest.approx(L, abs=1e-6)
    assert fit.ci95 == {} and fit.ci_method.startswith("none")
    assert fit.predict_interval(N) is None


def test_fit_refuses_fewer_sizes_than_constants():
    with pytest.raises(FitError, match="at least 3 different model sizes; got 2"):
        fit_power_law([98_304, 98_304, 786_432], [6.2, 6.21, 5.9])
    assert issubclass(FitError, ValueError) and issubclass(FitError, LSRMError)
    # With E held, two sizes determine N0 and alpha.
    fit = fit_power_law([98_304, 786_432], [6.2, 5.9], fix_E=5.0)
    assert fit.E == 5.0 and fit.predict([98_304, 786_432]) == pytest.approx([6.2, 5.9], abs=1e-6)
    with pytest.raises(FitError, match="at least 2"):
        fit_power_law([98_304], [6.2], fix_E=5.0)


@pytest.mark.parametrize(
    "N, L, message",
    [
        ([1e5, 0, 1e7], [6.0, 5.8, 5.6], "N must be a positive"),
        ([1e5, -1e6, 1e7], [6.0, 5.8, 5.6], "N must be a positive"),
        ([1e5, 1e6, 1e7], [6.0, float("nan"), 5.6], "not a finite number"),
        ([1e5, 1e6], [6.0, 5.8, 5.6], "same length"),
        ([], [], "no points"),
    ],
)
def test_fit_rejects_bad_points(N, L, message):
    with pytest.raises(FitError, match=message):
        fit_power_law(N, L)


# --- shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["l2", "l4", "l8", "l12", "l24", "l48", "1.57e6", "5e5", "3e7"])
@pytest.mark.parametrize("ratios", [None, [1.0, 4.0, 16.0, 64.0], [2.0, 16.0, 128.0], [3.3, 27.0]])
def test_every_shape_is_within_tolerance_with_valid_heads(size, ratios):
    target = target_size(size)
    if ratios is None and target.reference is None:
        ratios = [2.0, 16.0]
    try:
        shapes = build_shapes(target, ratios)
    except ConfigError as err:
        assert "out of reach" in str(err)  # e.g. R = 128 at 98K parameters needs under one layer
        return
    assert shapes
    for shape in shapes:
        assert abs(shape.non_embedding_params - target.N) <= DEFAULT_TOLERANCE * target.N
        assert shape.d_model % shape.n_heads == 0
        assert shape.n_layers >= 1


def test_shapes_of_the_paper_at_1_57M():
    target = target_size("l8")
    shapes = build_shapes(target, [2, 16, 128])
    assert [(s.n_layers, s.d_model) for s in shapes] == [(8, 128), (32, 64), (2, 256)]
    assert shapes[0] == target.reference  # the Table IV shape comes first
    # default ratios: R/8, R, 8R around the Table IV shape give the same three
    assert build_shapes(target) == shapes


def test_head_counts_follow_table_iv():
    assert [choose_n_heads(d) for d in (64, 128, 256, 512)] == [2, 4, 8, 8]
    for d in (16, 44, 90, 200, 600, 1200, 2400):
        assert d % choose_n_heads(d) == 0


def test_shape_errors_are_clear():
    with pytest.raises(ConfigError, match="away from the target"):
        shape_from_pair(1_572_864, 8, 256)
    with pytest.raises(ConfigError, match="out of reach"):
        shape_for_ratio(98_304, 1024)
    with pytest.raises(ConfigError, match="must be positive"):
        shape_for_ratio(98_304, -2)
    with pytest.raises(ConfigError, match="unknown size 'l5'"):
        target_size("l5")
    with pytest.raises(ConfigError, match="not a Table IV size"):
        build_shapes(target_size("5e5"))


# --- report ------------------------------------------------------------------------------------
def _results_table(path: Path, sizes: dict[str, int], fractions=(1.0,), seeds=(0, 1)) -> Path:
    rows = []
    rng = np.random.default_rng(0)
    for fraction in fractions:
        for size, N in sizes.items():
            for seed in seeds:
                loss = power_law(N, PAPER[0] + (1 - fraction), PAPER[1], PAPER[2]) * (1 + 0.002 * rng.standard_normal())
                rows.append({
                    "key": f"{size}-f{round(100 * fraction)}-s{seed}", "size": size, "model": "LSRM",
                    "dataset": "ml-20m", "base_dataset": "ml-20m", "fraction": fraction, "seed": seed, "N": N,
                    "test_ce_loss": loss, "shape_group": "", "reference_shape": False,
                    "valid_celoss_by_epoch": json.dumps([loss + 1.0, loss + 0.2, loss + 0.1]),
                })
    # a shape study at l8: the Table IV shape and two others, 2% and 1% worse
    for row in rows:
        if row["size"] == "l8" and row["fraction"] == 1.0:
            row.update(shape_group="l8", reference_shape=True, aspect_ratio=16.0, n_layers=8, d_model=128)
    reference = np.mean([r["test_ce_loss"] for r in rows if r["reference_shape"]])
    for (L, d), worse in (((32, 64), 1.02), ((2, 256), 1.01)):
        rows.append({"key": f"L{L}-d{d}", "size": f"L{L}-d{d}", "model": "LSRM", "base_dataset": "ml-20m",
                     "fraction": 1.0, "seed": 0, "N": 1_572_864, "test_ce_loss": reference * worse,
                     "shape_group": "l8", "reference_shape": False, "aspect_ratio": d / L, "n_layers": L, "d_model": d})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_report_fits_predicts_and_plots(tmp_path):
    sizes = dict(zip(["l2", "l4", "l8", "l12", "l24", "l48"], TABLE_IV_N))
    results = _results_table(tmp_path / "results.csv", sizes, fractions=(0.1, 1.0))
    report = write_report(results, predict=["l24", "l48"])
    fits = json.loads((tmp_path / "fits.json").read_text())
    assert fits["paper"] == PAPER_FIT
    assert [f["fraction"] for f in fits["size_fits"]] == [0.1, 1.0]  # one fit per data fraction
    full = fits["size_fits"][1]
    assert full["status"] == "ok" and full["fit_on"] == ["l2", "l4", "l8", "l12"]
    held = {p["size"]: p for p in full["points"] if p["role"] == "held out"}
    assert set(held) == {"l24", "l48"}
    for p in held.values():
        assert p["error_pct"] == pytest.approx(100 * (p["predicted"] - p["loss"]) / p["loss"])
        assert abs(p["error_pct"]) < 5
    shapes = {s["size"]: s["increase_pct"] for s in fits["shapes"][0]["shapes"]}
    assert shapes["l8"] == 0.0
    assert shapes["L32-d64"] == pytest.approx(2.0) and shapes["L2-d256"] == pytest.approx(1.0)
    assert len(fits["repetition"]) == 12
    markdown = report.markdown.read_text()
    assert "| paper: ML-20M |" in markdown and "0.121" in markdown and "6.8e+05" in markdown
    for png in ("fit-lsrm-ml-20m-f10.png", "fit-lsrm-ml-20m-f100.png", "data_size.png", "repetition.png", "shapes.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
        assert f"]({png})" in markdown
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_fit_command_line(tmp_path, capsys):
    results = _results_table(tmp_path / "results.csv", dict(zip(["l2", "l4", "l8", "l12"], TABLE_IV_N)))
    out = tmp_path / "report"
    assert scaling_main(["fit", str(results), "--predict=l12", f"--out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "l12: predicted" in printed and "error" in printed
    assert (out / "fits.json").is_file() and (out / "report.md").is_file()

    # Only two sizes left to fit: refused with the reason (error: ..., exit status 2), report still written.
    assert scaling_main(["fit", str(results), "--predict=l8,l12", f"--out={out}"]) == 2
    err = capsys.readouterr().err
    assert "needs at least 3 different model sizes" in err and "Traceback" not in err
    assert "fit refused" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "{missing}"], "results file not found"),
        (["fit", "{results}", "--predict=l99"], "no size l99"),
        (["fit", "{results}", "--metric=nope"], "has no column 'nope'"),
        (["shapes", "--size=l7"], "unknown size 'l7'"),
        (["shapes", "--size=l8", "--pairs=8x"], "is not n_layers x d_model"),
    ],
)
def test_command_line_bad_input_is_a_clear_error(tmp_path, capsys, args, message):
    results = _results_table(tmp_path / "results.csv", {"l2": TABLE_IV_N[0], "l4": TABLE_IV_N[1], "l8": TABLE_IV_N[2]})
    args = [a.format(missing=tmp_path / "none.csv", results=results) for a in args]
    assert scaling_main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_malformed_table_is_a_clear_error(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("size,N,test_ce_loss\nl2,98304,6.1\nl4,many,5.9\n")
    with pytest.raises(ConfigError, match=r"row 3: column 'N' holds 'many'"):
        write_report(path)


def test_a_log_axis_within_one_decade_labels_only_2_and_5_times_a_power(tmp_path):
    from recbole_lsrm.scaling.plots import figure

    with figure(tmp_path / "sizes.png", "sizes", "N", "loss", xlog=True) as (_, ax):
        ax.plot([3e3, 4e3, 6e3, 9e3], [6.1, 6.0, 5.9, 5.8], "o", label="points")
        shown = ax
    shown.figure.canvas.draw()
    labels = [t.get_text() for t in shown.xaxis.get_minorticklabels() if t.get_text()]
    assert labels and all(label.startswith(("$2", "$5")) for label in labels), labels
    assert (tmp_path / "sizes.png").is_file()
