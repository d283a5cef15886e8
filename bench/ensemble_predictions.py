"""Would averaging two emotion configurations beat either one? Measured on saved predictions.

Each input is a ``predictions_<descriptor>.npz`` of `bench/bench_emotion.py` over the same faces in
the same order (e.g. ``hog+lbp`` and ``cnn`` at one margin). Their out-of-fold probabilities are
combined as `train --descriptor A --descriptor B` combines its members (facesortd/ensemble.py): a
weighted mean of log-probabilities, then one temperature fitted on those same out-of-fold faces.
This predicts what such an ensemble would score without training its members again.
Figures are printed like bench_emotion's, and the combination is saved as
``predictions_ensemble.npz`` so `bench/compare_predictions.py` can pair it with either member.

    python bench/ensemble_predictions.py OUT/predictions_hog+lbp.npz OUT/predictions_cnn.npz \\
        [--weight 0.5] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from emotion_report import print_header, report
from prediction_runs import Run

from facesortd.cli.arg_types import number_between
from facesortd.config import Settings
from facesortd.emotion import fit_temperature, softmax
from facesortd.ensemble import combine
from facesortd.learn.figures import draw_curves, save_predictions
from facesortd.learn.training import Predictions

FLOOR = 1e-12
"""Probabilities are clipped here before the logarithm: a label a fold never saw has probability 0,
whose logarithm would turn the whole mean into -inf or NaN."""


def combine_runs(runs: list[Run], weights: list[float]) -> tuple[Predictions, float]:
    """The runs' probabilities combined as an ensemble model combines its members' (each run is
    calibrated already), given one temperature fitted on them; and that temperature."""
    log_probs = [np.log(np.clip(r.proba, FLOOR, 1.0)) for r in runs]
    log_mean = combine(log_probs, weights, [1.0] * len(runs))
    temperature = fit_temperature(log_mean, runs[0].truth)
    names = [str(n) for n in runs[0].names]
    return Predictions(names, runs[0].truth, softmax(log_mean / temperature)), temperature


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("first", type=Path, help="predictions file of the first member")
    parser.add_argument("second", type=Path, help="predictions file of the second member")
    parser.add_argument(
        "--weight",
        type=number_between(0.0, 1.0),
        default=0.5,
        help="weight of the first member's log-probabilities, the second gets the rest (default 0.5)",
    )
    parser.add_argument(
        "--target", type=float, default=0.9, help="accuracy the auto-sorted files should reach (default 0.9)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("bench/out"), help="folder for the PNGs and predictions_ensemble.npz"
    )
    args = parser.parse_args()
    runs = [Run.load(args.first), Run.load(args.second)]
    if not runs[0].same_faces(runs[1]):
        print("the two runs did not score the same faces in the same order", file=sys.stderr)
        return 2
    predictions, temperature = combine_runs(runs, [args.weight, 1.0 - args.weight])
    sources = [str(s) for s in runs[0].sources]
    args.out.mkdir(parents=True, exist_ok=True)
    save_predictions(args.out / "predictions_ensemble.npz", predictions, sources)
    threshold = Settings().recognition.threshold
    print_header(args.target)
    curves = {}
    for name, run in (("first", runs[0]), ("second", runs[1])):
        member = Predictions([str(n) for n in run.names], run.truth, run.proba)
        curves.update(report(name, member, sources, threshold, args.target, args.out))
    curves.update(report("ensemble", predictions, sources, threshold, args.target, args.out))
    print(f"ensemble: weight {args.weight:g} on {args.first}, temperature {temperature:.2f}")
    for name, ev in curves.items():
        if name.endswith(" all"):
            print(
                f"{name}: at threshold {threshold:.2f} auto-sorts {ev.coverage:.1%}, "
                f"{ev.accuracy_at_threshold:.1%} right, ECE {ev.ece:.3f}"
            )
    draw_curves(curves, args.out / "ensemble_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
