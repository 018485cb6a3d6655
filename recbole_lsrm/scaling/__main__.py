"""``python -m recbole_lsrm.scaling fit results.csv ...`` and ``... shapes --size=l8 ...``.

fit     fits L(N) = E + (N0/N)^alpha per model, dataset and data fraction on the sizes not
        named by --predict, predicts those, and writes fits.json, report.md and PNG plots
        next to results.csv (or into --out).
study   rewrites a study's report (report.md, fits.json, PNGs) from its results.csv alone.
shapes  prints the shapes a shape study at a fixed N would train (n_layers, d_model, n_heads).
"""

from __future__ import annotations

import argparse
import sys

from recbole_lsrm.errors import LSRMError


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
    from recbole_lsrm.scaling.report import write_report

    if args.bootstrap < 0:
        raise SystemExit("error: --bootstrap must be >= 0")
    predict = [p.strip() for p in args.predict.split(",") if p.strip()]
    report = write_report(args.results, args.out, predict, args.metric, args.fix_E, args.bootstrap)
    for entry in report.size_fits:
        if entry["status"] == "ok":
            fit = entry["fit"]
            print(f"{entry['name']}: E = {fit['E']:.4f}, N0 = {fit['N0']:.4g}, alpha = {fit['alpha']:.4f} "
                  f"(fitted on {', '.join(entry['fit_on'])})")
            for p in entry["points"]:
                if p["role"] == "held out":
                    print(f"  {p['size']}: predicted {p['predicted']:.4f}, actual {p['loss']:.4f}, error {p['error_pct']:+.2f}%")
        else:
            print(f"{entry['name']}: fit refused: {entry['reason']}", file=sys.stderr)
    print(f"wrote {report.fits_json}\nwrote {report.markdown}")
    if not report.any_fit:
        print("error: no scaling law could be fitted (see above)", file=sys.stderr)
        return 1
    return 0


def _shapes(args: argparse.Namespace) -> int:
    from recbole_lsrm.scaling.shapes import DEFAULT_TOLERANCE, build_shapes, parse_pairs, parse_ratios, target_size

    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if not tolerance > 0:
        raise SystemExit("error: --shape-tolerance must be > 0")
    target = target_size(args.size, tolerance)
    ratios = parse_ratios(args.ratios) if args.ratios else None
    pairs = parse_pairs(args.pairs) if args.pairs else None
    print(f"N = {target.N:,}" + (f" (Table IV {target.scale})" if target.scale else ""))
    print(f"{'n_layers':>8} {'d_model':>7} {'n_heads':>7} {'R':>7} {'N':>13} {'off':>6}")
    for shape in build_shapes(target, ratios, pairs, tolerance):
        mark = "  Table IV" if shape == target.reference else ""
        n = shape.non_embedding_params
        print(f"{shape.n_layers:>8} {shape.d_model:>7} {shape.n_heads:>7} {shape.aspect_ratio:>7.3g} "
              f"{n:>13,} {100 * (n - target.N) / target.N:>+5.1f}%{mark}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "study":
            from recbole_lsrm.study.report import write_study_report

            report = write_study_report(args.results, args.out, title=args.title)
            print(f"wrote {report.markdown}\nwrote {report.fits_json}")
            return 0
        return _fit(args) if args.command == "fit" else _shapes(args)
    except LSRMError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
