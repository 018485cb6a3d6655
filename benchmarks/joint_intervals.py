"""How often the joint law's 95% intervals hold the truth: the bootstrap against the covariance.

    python benchmarks/joint_intervals.py [--draws=100] [--samples=400] [--noise=0.003]

Losses are made from a known law L(N, D') (E 3, A 40, alpha 0.35, B 300, beta 0.4, R* 8) on
45 trials: 5 sizes (N 1e4 ... 1e6) x 3 data sizes (U 1e5, 5e5, 1e6) x 3 epochs (1, 4, 16), plus
Gaussian noise of sd ``--noise`` (tests/test_joint.py's setting). Each of ``--draws`` noise
draws is fitted once with each interval method of ``fit_joint``; the table gives, per
constant, the share of draws whose interval holds the true value (95% intervals should hold
it in about 95% of them) and the intervals' median width relative to the true value. Both
methods see the same draws.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

TRUE = {"E": 3.0, "A": 40.0, "alpha": 0.35, "B": 300.0, "beta": 0.4, "R_star": 8.0}


def trials(noise: float, rng: np.random.Generator):
    from recbole_lsrm.scaling.joint import JointFit

    grid = [(N, U, epochs) for N in (1e4, 3e4, 1e5, 3e5, 1e6) for U in (1e5, 5e5, 1e6) for epochs in (1, 4, 16)]
    N, U, epochs = (np.array(c, dtype=float) for c in zip(*grid))
    law = JointFit(**TRUE, n_points=0, rmse=0.0, ranges={})
    return N, U, epochs, law.predict(N, U, epochs) + rng.normal(0, noise, N.size)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=100, help="noise draws (fits per method)")
    parser.add_argument("--samples", type=int, default=400, help="bootstrap refits (and covariance draws) per fit")
    parser.add_argument("--noise", type=float, default=0.003, help="sd of the noise on each loss")
    args = parser.parse_args()
    if args.draws < 1 or args.samples < 1 or not args.noise > 0:
        parser.error("--draws and --samples must be >= 1 and --noise > 0")

    from recbole_lsrm.scaling.joint import INTERVALS, PARAMETERS, fit_joint

    names = list(PARAMETERS)
    print(f"{args.draws} noise draws of sd {args.noise:g} on 45 trials of a known law; {args.samples} samples per fit")
    print(f"{'method':>10} {'seconds':>8}  " + " ".join(f"{n:>14}" for n in names))
    for method in INTERVALS:
        rng = np.random.default_rng(0)  # the same draws for each method
        held = np.zeros(len(names))
        widths = []
        start = time.perf_counter()
        for draw in range(args.draws):
            fit = fit_joint(*trials(args.noise, rng), samples=args.samples, seed=draw, intervals=method)
            intervals = np.array([fit.ci95[n] for n in names])
            truth = np.array([TRUE[n] for n in names])
            held += (intervals[:, 0] <= truth) & (truth <= intervals[:, 1])
            widths.append((intervals[:, 1] - intervals[:, 0]) / truth)
        seconds = time.perf_counter() - start
        width = np.median(widths, axis=0)
        cells = " ".join(f"{h / args.draws:>6.2f} (w {w:>4.2f})" for h, w in zip(held, width))
        print(f"{method:>10} {seconds:>8.1f}  {cells}")
    print("cells: share of draws whose 95% interval holds the true constant (w: median width / true value)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
