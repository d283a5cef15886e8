"""How the emotion benchmarks print and draw one configuration's figures: per data source,
balanced accuracy and accuracy at coverage (never plain accuracy), with a confusion PNG each.
`bench/bench_emotion.py` reports its runs with it, `bench/ensemble_predictions.py` its combinations.

Run a benchmark as ``python bench/NAME.py`` from the repository root; this module sits beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesortd.learn.figures import draw_confusion
from facesortd.learn.metrics import Evaluation
from facesortd.learn.training import Predictions


def curve_point(ev: Evaluation, coverage: float = 0.6, accuracy: float = 0.9) -> tuple[float, float, float]:
    """(accuracy at ``coverage``, largest coverage with accuracy >= ``accuracy``, its threshold)."""
    acc_at = next((a for _, c, a in ev.curve if c >= coverage), float("nan"))
    return (acc_at, *ev.coverage_at(accuracy))


SOURCES = ("vn_faces", "seed", "anime_expressions", "vn_faces+seed")
"""Figures per source, and over the two that stand for a user's art (the issue's targets)."""


def print_header(target: float) -> None:
    header = ("config", "source", "n", "bal.acc", "acc@60%cov", f"cov@{target:.0%}acc", "thr")
    print("\n{:<10} {:<18} {:>5} {:>7} {:>10} {:>10} {:>5}".format(*header))


def report(
    name: str, predictions: Predictions, sources: list[str], threshold: float, target: float, out: Path
) -> dict[str, Evaluation]:
    """Print one configuration's figures per data source, draw its confusion PNGs into ``out`` and
    return its evaluations, for the coverage-curve PNG that puts all configurations side by side."""
    curves = {}
    for source in SOURCES:
        mask = np.array([s in source.split("+") for s in sources])
        ev = predictions.evaluation(threshold, mask)
        acc60, cov90, thr = curve_point(ev, accuracy=target)
        print(
            f"{name:<10} {source:<18} {ev.confusion.sum():>5} {ev.balanced_accuracy:>7.3f} "
            f"{acc60:>10.3f} {cov90:>10.3f} {thr:>5.2f}"
        )
        print(f"{'':<10} {'':<18} right by confidence: {ev.reliability_text()}")
        if source != "anime_expressions":
            curves[f"{name} {source}"] = ev
        draw_confusion(ev, out / f"confusion_{name}_{source}.png", f"{name}, {source}")
    return curves
