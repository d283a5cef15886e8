"""Figures of out-of-source predictions as files: confusion matrices and coverage curves (PNG),
and the predictions themselves (npz), for `facesortd train --report` and the benchmarks.

Drawn with OpenCV, which facesortd has anyway, rather than a plotting library.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facesortd.durable import write_npz
from facesortd.images import imwrite_file
from facesortd.learn.metrics import Evaluation
from facesortd.learn.training import Predictions, source_masks
from facesortd.plots import confusion_image, put_text


def save_predictions(path: Path, predictions: Predictions, sources: list[str]) -> None:
    """Out-of-source probabilities per face (bench/compare_predictions.py and ensemble_predictions.py
    read them back), whole or not at all, under exactly ``path``."""
    write_npz(
        path,
        {
            "names": np.array(predictions.names),
            "truth": predictions.truth,
            "proba": predictions.proba,
            "sources": np.array(sources),
        },
    )


def draw_confusion(ev: Evaluation, path: Path, title: str) -> None:
    imwrite_file(path, confusion_image(ev.labels, ev.confusion, title=f"{title} (rows true)"))


def draw_curves(curves: dict[str, Evaluation], path: Path) -> None:
    """Accuracy of auto-sorted faces (y) against coverage (x), one line per source/config."""
    w, h, m = 520, 380, 50
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(img, (m, 20), (w - 20, h - m), (0, 0, 0), 1)
    to_px = lambda c, a: (int(m + c * (w - 20 - m)), int(h - m - a * (h - m - 20)))  # noqa: E731
    for frac in (0.6, 0.9):
        cv2.line(img, to_px(frac, 0), to_px(frac, 1), (200, 200, 200), 1)
        cv2.line(img, to_px(0, frac), to_px(1, frac), (200, 200, 200), 1)
    colours = [(200, 0, 0), (0, 150, 0), (0, 0, 200), (150, 0, 150), (0, 120, 160), (100, 100, 0)]
    for k, (name, ev) in enumerate(curves.items()):
        pts = np.array([to_px(c, a) for _, c, a in ev.curve], np.int32)
        cv2.polylines(img, [pts], False, colours[k % len(colours)], 2)
        put_text(img, name, (m + 10, 40 + 18 * k), color=colours[k % len(colours)])
    put_text(img, "coverage (share auto-sorted)", (m + 120, h - 15))
    put_text(img, "accuracy", (2, 15))
    imwrite_file(path, img)


def write_report(predictions: Predictions, sources: list[str], threshold: float, out: Path) -> list[Path]:
    """Per source and over all: a confusion PNG; one coverage-curve PNG; the predictions (npz)."""
    out.mkdir(parents=True, exist_ok=True)
    curves = {}
    written = []
    masks: dict[str, np.ndarray | None] = {**source_masks(sources), "all": None}
    for source, mask in masks.items():
        ev = predictions.evaluation(threshold, mask)
        curves[source] = ev
        written.append(out / f"confusion_{source}.png")
        draw_confusion(ev, written[-1], f"{source}: out of source, {ev.confusion.sum()} faces")
    draw_curves(curves, out / "coverage_curves.png")
    save_predictions(out / "predictions.npz", predictions, sources)
    return [*written, out / "coverage_curves.png", out / "predictions.npz"]
