"""Pictures of a model's held-out figures: the confusion matrix and the reliability curve.

Drawn with OpenCV from the JSON-ready figures a model file keeps (``Evaluation.summary()``), so
`train --plots`, `eval --plots` and the review page draw the same pictures without matplotlib at
run time and without the faces the figures were measured on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from facesortd.durable import atomic_writer

CONFUSION_PNG = "confusion.png"
RELIABILITY_PNG = "reliability.png"
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK = (40, 40, 40)
BLUE = (200, 110, 30)
GRID = (215, 215, 215)


Colour = tuple[int, int, int]
"""BGR, as OpenCV draws."""


def put_text(
    img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45, color: Colour = INK
) -> None:
    cv2.putText(img, text, org, FONT, scale, color, 1, cv2.LINE_AA)


def _centred(
    img: np.ndarray, text: str, centre: tuple[int, int], scale: float = 0.45, color: Colour = INK
) -> None:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
    put_text(img, text, (centre[0] - w // 2, centre[1] + h // 2), scale, color)


def confusion_image(
    labels: list[str], confusion: np.ndarray, cell: int = 56, title: str = "true (rows) / predicted (columns)"
) -> np.ndarray:
    """Rows true, columns predicted; each cell shaded by its share of the row (its recall for the
    diagonal), so a rare emotion's mistakes show as clearly as a common one's."""
    confusion = np.asarray(confusion, dtype=np.int64)
    n = len(labels)
    left, top = 110, 70
    img = np.full((top + n * cell + 40, left + n * cell + 20, 3), 255, np.uint8)
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    for i in range(n):
        for j in range(n):
            x, y = left + j * cell, top + i * cell
            tint = np.array([255, 255, 255]) - share[i, j] * (np.array([255, 255, 255]) - BLUE)
            cv2.rectangle(img, (x, y), (x + cell - 1, y + cell - 1), tuple(int(c) for c in tint), -1)
            ink = (255, 255, 255) if share[i, j] > 0.55 else INK
            _centred(img, str(confusion[i, j]), (x + cell // 2, y + cell // 2 - 6), 0.45, ink)
            _centred(img, f"{share[i, j]:.0%}", (x + cell // 2, y + cell // 2 + 12), 0.35, ink)
        put_text(img, labels[i][:12], (6, top + i * cell + cell // 2 + 5))
    for j, label in enumerate(labels):
        _centred(img, label[:7], (left + j * cell + cell // 2, top - 14), 0.4)
    put_text(img, title, (6, 22), 0.5)
    put_text(img, "shade: share of the row", (6, top + n * cell + 26), 0.4)
    return img


def reliability_image(bins: list[list[float]], ece: float | None) -> np.ndarray:
    """Accuracy against confidence per bin (dots sized by how many faces), with the diagonal where a
    calibrated model lies: above it the model is modest, below it over-confident."""
    side, margin = 360, 50
    img = np.full((side + 2 * margin, side + 2 * margin, 3), 255, np.uint8)

    def at(conf: float, acc: float) -> tuple[int, int]:
        return margin + round(conf * side), margin + side - round(acc * side)

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        cv2.line(img, at(tick, 0), at(tick, 1), GRID, 1)
        cv2.line(img, at(0, tick), at(1, tick), GRID, 1)
        _centred(img, f"{tick:g}", (at(tick, 0)[0], margin + side + 14), 0.4)
        put_text(img, f"{tick:g}", (8, at(0, tick)[1] + 5), 0.4)
    cv2.rectangle(img, at(0, 1), at(1, 0), INK, 1)
    cv2.line(img, at(0, 0), at(1, 1), (150, 150, 150), 1, cv2.LINE_AA)
    total = max(1, sum(int(b[2]) for b in bins))
    points = [at(float(b[0]), float(b[1])) for b in bins]
    if len(points) > 1:
        cv2.polylines(img, [np.array(points, np.int32)], False, BLUE, 2, cv2.LINE_AA)
    for (x, y), b in zip(points, bins, strict=True):
        cv2.circle(img, (x, y), 3 + round(9 * (int(b[2]) / total) ** 0.5), BLUE, -1, cv2.LINE_AA)
    _centred(img, "confidence", (margin + side // 2, margin + side + 36), 0.45)
    title = "accuracy per confidence bin" + (f" (ECE {ece:.3f})" if ece is not None else "")
    put_text(img, title, (margin, 30), 0.5)
    return img


def figure_images(summary: Mapping[str, object]) -> dict[str, np.ndarray]:
    """The pictures a stored summary allows: the confusion matrix always, the reliability curve when
    the model kept its bins (models trained before they were recorded did not)."""
    out = {CONFUSION_PNG: confusion_image(list(summary["labels"]), np.array(summary["confusion"]))}  # type: ignore[call-overload]
    bins = summary.get("reliability")
    if bins:
        ece = summary.get("ece")
        out[RELIABILITY_PNG] = reliability_image(bins, float(ece) if ece is not None else None)  # type: ignore[arg-type]
    return out


def png_bytes(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError("OpenCV could not encode a plot as PNG")
    return data.tobytes()


def write_plots(summary: Mapping[str, object], folder: Path) -> list[Path]:
    """Write the pictures of ``summary`` into ``folder`` (atomically); returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, image in figure_images(summary).items():
        with atomic_writer(folder / name) as fh:
            fh.write(png_bytes(image))
        written.append(folder / name)
    return written
