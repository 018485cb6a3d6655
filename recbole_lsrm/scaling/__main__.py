"""``python -m recbole_lsrm.scaling fit results.csv ...`` and ``... shapes --size=l8 ...``.

fit     fits L(N) = E + (N0/N)^alpha per model, dataset and data fraction on the sizes not
        named by --predict, predicts those, and writes fits.json, report.md and PNG plots
        next to results.csv (or into --out).
fit-joint  fits one law L(N, D') over model size, unique data and repetition, with held-out
        errors next to the per-fraction fits; writes it into fits.json, plus joint.png and
        iso_compute.png.
plan    the compute-optimal (N, epochs) for D interactions and a budget, from fits.json's joint law.
study   rewrites a study's report (report.md, fits.json, PNGs) from its results.csv alone.
shapes  prints the shapes a shape study at a fixed N would train (n_layers, d_model, n_heads).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recbole_lsrm.commands import run_command
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.io import read_json
from recbole_lsrm.scaling.analysis import load_results
from recbole_lsrm.scaling.joint import DEFAULT_SAMPLES, INTERVALS, JointFit, plan
from recbole_lsrm.scaling.joint_report import run_joint, save_joint
from recbole_lsrm.scaling.report import write_report
from recbole_lsrm.scaling.scales import scales
from recbole_lsrm.scaling.shapes import DEFAULT_TOLERANCE, build_shapes, parse_pairs, parse_ratios, target_size
from recbole_lsrm.study.report import write_study_report
from recbole_lsrm.tables import format_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recbole_lsrm.scaling", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="fit the scaling law to a results table and write the report")
    fit.add_argument("results", help="results.csv of a sweep (or any CSV with columns N and the loss)")
    fit.add_argument("--predict", default="", help="sizes held out of the fit and predicted, e.g. l24,l48")
    fit.add_argument("--out", default=None, help="folder for fits.json, report.md and plots (default: next to results)")
    fit.add_argument("--metric", default="test_ce_loss", help="the loss column (default test_ce_loss)")
    fit.add_argument("--fix-E", type=float, default=None, dest="fix_E",
                     help="hold the irreducible loss E at this value (fits N0 and alpha; two sizes suffice)")
    fit.add_argument("--bootstrap", type=int, default=0,
                     help="confidence intervals from this many residual-bootstrap refits (default: covariance)")

    joint = commands.add_parser("fit-joint", help="fit L(N, D') with data repetition to a results table")
    joint.add_argument("results", help="results.csv of a sweep or study (columns N, train_positions, epochs_run, test_ce_loss)")
    joint.add_argument("--out", default=None, help="folder for fits.json and the figures (default: next to results)")
    joint.add_argument("--intervals", choices=INTERVALS, default="bootstrap",
                       help="95%% intervals from a residual bootstrap (default) or from the estimate's covariance")
    joint.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                       help="bootstrap refits (or covariance draws) behind the intervals")

    planner = commands.add_parser("plan", help="which model size and how many epochs for a dataset and a budget")
    planner.add_argument("--fits", required=True, help="fits.json holding a joint law (fit-joint writes it)")
    planner.add_argument("--interactions", required=True, type=float, help="unique training interactions D")
    planner.add_argument("--budget", required=True, help="FLOPs (1e18) or GPU-hours (8gpuh, with --mfu and --peak-flops)")
    planner.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation for GPU-hour budgets (default 0.4)")
    planner.add_argument("--peak-flops", type=float, default=989e12, dest="peak_flops",
                         help="the GPU's peak FLOP/s for GPU-hour budgets (default 989e12: H100 dense bf16)")
    planner.add_argument("--scales", action="store_true", help="choose among the Table IV scales only")
    planner.add_argument("--allow-undetermined", action="store_true", dest="allow_undetermined",
                         help="plan even when the fit leaves its N or data term undetermined (the choice is then the fit's, not the trials')")
    planner.add_argument("--extrapolation", type=float, default=10.0,
                         help="how many times beyond the fitted N, data and epochs the planner may go (default 10)")

    study = commands.add_parser("study", help="rewrite a study's report from its results.csv")
    study.add_argument("results", help="results.csv of a study (python -m recbole_lsrm.study writes it)")
    study.add_argument("--out", default=None, help="folder for report.md, fits.json and plots (default: next to results)")
    study.add_argument("--title", default=None, help="the report's title (default: the folder's name)")

    shapes = commands.add_parser("shapes", help="print the shapes of a shape study at a fixed N")
    shapes.add_argument("--size", required=True, help="a Table IV scale (l8) or a number of parameters (1.57e6)")
    shapes.add_argument("--ratios", default=None, help="aspect ratios d_model/n_layers, e.g. 2,16,128")
    shapes.add_argument("--pairs", default=None, help="explicit shapes n_layers x d_model, e.g. 32x64,2x256")
    shapes.add_argument("--shape-tolerance", type=float, default=None, dest="tolerance",
                        help="largest relative difference from N (default 0.05)")
    return parser


def _fit(args: argparse.Namespace) -> int:
    if args.bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    predict = [p.strip() for p in args.predict.split(",") if p.strip()]
    report = write_report(args.results, args.out, predict, args.metric, args.fix_E, args.bootstrap)
    for entry in report.size_fits:
        if entry.ok:
            fit = entry.fit
            print(f"{entry.name}: E = {fit.E:.4f}, N0 = {fit.N0:.4g}, alpha = {fit.alpha:.4f} "
                  f"(fitted on {', '.join(entry.fit_on)})")
            for p in entry.points:
                if p.role == "held out":
                    print(f"  {p.size}: predicted {p.predicted:.4f}, actual {p.loss:.4f}, error {p.error_pct:+.2f}%")
        else:
            print(f"{entry.name}: fit refused: {entry.reason}", file=sys.stderr)
    print(f"wrote {report.fits_json}\nwrote {report.markdown}")
    if not report.any_fit:
        reasons = "; ".join(f"{e.name}: {e.reason}" for e in report.size_fits if not e.ok)
        finite = int(load_results(args.results, args.metric)[args.metric].notna().sum())
        raise ConfigError("no scaling law could be fitted: " + (
            reasons or f"{args.results} has {finite} row(s) with a finite {args.metric} (a fit needs two sizes)"))
    return 0


def _shapes(args: argparse.Namespace) -> int:
    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if not tolerance > 0:
        raise ConfigError(f"--shape-tolerance must be > 0, got {tolerance}")
    target = target_size(args.size, tolerance)
    ratios = parse_ratios(args.ratios) if args.ratios else None
    pairs = parse_pairs(args.pairs) if args.pairs else None
    print(f"N = {target.N:,}" + (f" (Table IV {target.scale})" if target.scale else ""))
    rows = []
    for shape in build_shapes(target, ratios, pairs, tolerance):
        n = shape.non_embedding_params
        rows.append((shape.n_layers, shape.d_model, shape.n_heads, f"{shape.aspect_ratio:.3g}", n,
                     f"{100 * (n - target.N) / target.N:+.1f}%", "Table IV" if shape == target.reference else ""))
    print(format_table(("n_layers", "d_model", "n_heads", "R", "N", "off", ""), rows))
    return 0


def _fit_joint(args: argparse.Namespace) -> int:
    if args.samples < 1:
        raise ConfigError(f"--samples must be >= 1, got {args.samples}: fits.json needs the intervals that plan reports and checks")
    results = Path(args.results).resolve()
    out = Path(args.out).resolve() if args.out else results.parent
    if (out / "fits.json").is_file():  # checked before the fit: the fit is kept in it
        read_json(out / "fits.json", "a scaling report's fits")
    result = run_joint(load_results(results), out, samples=args.samples, intervals=args.intervals)
    save_joint(result, out / "fits.json")
    if result.fit is None:
        print(f"error: joint law not fitted: {result.reason}", file=sys.stderr)
        return 1
    fit = result.fit
    print(f"L(N, D') = {fit.E:.4f} + {fit.A:.4g} / N^{fit.alpha:.4f} + {fit.B:.4g} / D'^{fit.beta:.4f}, "
          f"R* = {fit.R_star:.3g} ({fit.n_points} trials, rmse {fit.rmse:.4f})")
    for name, (lo, hi) in fit.ci95.items():
        print(f"  {name}: 95% [{lo:.4g}, {hi:.4g}]" + ("  undetermined" if name in fit.undetermined else ""))
    for note in fit.notes:
        print(f"  note: {note}")
    for e in result.holdout:
        joint = "refused" if e["joint_error_pct"] is None else f"{e['joint_error_pct']:.2f}%"
        per = "-" if e["per_fraction_error_pct"] is None else f"{e['per_fraction_error_pct']:.2f}%"
        print(f"  left out {e['left_out']} {e['value']:g} ({e['trials']} trials): joint {joint}, per-fraction L(N) {per}")
    print(f"wrote {out / 'fits.json'}" + "".join(f"\nwrote {p}" for p in result.plots))
    return 0


def _budget_flops(args: argparse.Namespace) -> float:
    text = args.budget.strip().lower()
    try:
        if text.endswith("gpuh"):
            hours = float(text[:-4])
            if not (args.mfu > 0 and args.peak_flops > 0):
                raise ConfigError("--mfu and --peak-flops must be positive")
            return hours * 3600 * args.mfu * args.peak_flops
        return float(text)
    except ValueError:
        raise ConfigError(f"--budget must be FLOPs (1e18) or GPU-hours (8gpuh), got {args.budget!r}") from None


def _plan(args: argparse.Namespace) -> int:
    if not args.interactions > 0:
        raise ConfigError(f"--interactions must be a positive number of training interactions, got {args.interactions:g}")
    if not args.extrapolation >= 1:
        raise ConfigError(f"--extrapolation must be at least 1 (how many times beyond the fitted N, data and "
                          f"epochs the planner may go), got {args.extrapolation:g}")
    path = Path(args.fits)
    document = read_json(path, "a scaling report's fits (fits.json)")
    joint = document.get("joint")
    if not isinstance(joint, dict) or joint.get("status") != "ok":
        reason = joint.get("reason", "no joint law in it") if isinstance(joint, dict) else "no joint law in it"
        raise ConfigError(f"{path}: {reason}; write one with: python -m recbole_lsrm.scaling fit-joint RESULTS.csv")
    fit = JointFit.from_dict(joint)
    budget = _budget_flops(args)
    sizes = None
    if args.scales:
        sizes = {s.name: float(s.non_embedding_params) for s in scales()}
    result = plan(fit, args.interactions, budget, sizes=sizes, extrapolation=args.extrapolation,
                  allow_undetermined=args.allow_undetermined)

    def line(c: dict) -> str:
        ci = c["loss_ci95"]
        return (f"N = {c['N']:,.0f}{' (' + c['label'] + ')' if c['label'] else ''}, {c['epochs']:.3g} epochs "
                f"({c['targets']:.3g} targets): predicted test CE {c['loss']:.4f}"
                + (f" [95% {ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))

    print(f"D = {args.interactions:,.0f} interactions, C = {budget:.3g} FLOPs ({result['flops_rule']})")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    print("best: " + line(result["best"]))
    for c in result["runners_up"]:
        print("then: " + line(c))
    if result["sizes_outside_range"]:
        print(f"not considered (over {args.extrapolation:g}x outside the fitted N): {', '.join(result['sizes_outside_range'])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    commands = {"fit": _fit, "shapes": _shapes, "fit-joint": _fit_joint, "plan": _plan, "study": _study}
    return run_command(lambda: commands[args.command](args))


def _study(args: argparse.Namespace) -> int:
    report = write_study_report(args.results, args.out, title=args.title)
    print(f"wrote {report.markdown}\nwrote {report.fits_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
