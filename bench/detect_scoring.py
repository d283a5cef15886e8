"""What the detection benchmarks share: a detector as a function, its score against true boxes, and
the two reference cascades run as their authors advise.

Run a benchmark as ``python bench/NAME.py`` from the repository root; this module sits beside it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np
from pydantic import ValidationError
from shared_data import SHARED, match_boxes

from facesortd.boxes import SAME_FACE_IOU, Box
from facesortd.config import DetectionSettings
from facesortd.detect import iou, load_cascade

REFERENCES = SHARED / "reference_cascades"
ANIMEFACE_SHRINK = 0.62
"""lbpcascade_animeface's boxes cover the whole head: shrunk around their centre to a face box."""

Detect = Callable[[np.ndarray], list[Box]]
LOOSE_IOU = 0.25
"""The loose criterion the benchmarks report beside SAME_FACE_IOU: a box this close is near the face."""


@dataclass
class Score:
    """Counts over a set of screenshots, and the time spent detecting in them."""

    truth: int = 0
    found: int = 0
    hits: int = 0
    hits_loose: int = 0
    ms: float = 0.0
    images: int = 0
    free_images: int = 0
    free_found: int = 0
    """Face-free images, and the false faces reported on them."""

    def add(self, found: list[Box], truth: list[Box], ms: float) -> None:
        if not truth:
            self.free_images += 1
            self.free_found += len(found)
        self.truth += len(truth)
        self.found += len(found)
        self.hits += match_boxes(found, truth, SAME_FACE_IOU)
        self.hits_loose += match_boxes(found, truth, LOOSE_IOU)
        self.ms += ms
        self.images += 1

    def merge(self, other: Score) -> None:
        """Add another set's counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def row(self, timed: bool = True) -> str:
        rec, prec = self.hits / max(1, self.truth), self.hits / max(1, self.found)
        rec_l, prec_l = self.hits_loose / max(1, self.truth), self.hits_loose / max(1, self.found)
        row = (
            f"{rec:6.3f} {prec:6.3f} {self.hits:3d}/{self.truth:<3d} {self.found - self.hits:3d} FA  "
            f"{rec_l:6.3f} {prec_l:6.3f}"
        )
        if self.free_images:
            row += f"  {self.free_found / self.free_images:5.3f} ({self.free_found}/{self.free_images})"
        return row + (f"  {self.ms / max(1, self.images):7.1f} ms" if timed else "")


def misses_and_false(found: list[Box], truth: list[Box]) -> tuple[list[Box], list[Box]]:
    """The true faces no box found frames, and the boxes found that frame no true face."""
    missed = [t for t in truth if all(iou(t, f) < SAME_FACE_IOU for f in found)]
    false = [f for f in found if all(iou(t, f) < SAME_FACE_IOU for t in truth)]
    return missed, false


def shrink(box: Box, factor: float) -> Box:
    x, y, w, h = box
    nw, nh = w * factor, h * factor
    return (round(x + (w - nw) / 2), round(y + (h - nh) / 2), round(nw), round(nh))


def reference(
    name: str, equalize: bool, scale: float, neighbors: int, min_size: int, factor: float
) -> Detect:
    """A reference cascade at full resolution with its authors' settings, boxes shrunk by ``factor``."""
    cascade = load_cascade(REFERENCES / name)

    def detect(gray: np.ndarray) -> list[Box]:
        img = cv2.equalizeHist(gray) if equalize else gray
        rects = cascade.detectMultiScale(
            img, scaleFactor=scale, minNeighbors=neighbors, minSize=(min_size,) * 2
        )
        return [shrink(tuple(int(v) for v in r), factor) for r in rects]  # type: ignore[arg-type]

    return detect


def references() -> dict[str, Detect]:
    """animeface (equalizeHist, 1.1, 5, 24x24, boxes shrunk) and syncopika (1.05, 3, 30x30)."""
    return {
        "animeface": reference("lbpcascade_animeface.xml", True, 1.1, 5, 24, ANIMEFACE_SHRINK),
        "syncopika": reference("syncopika_anime_face_classifier_cascade.xml", False, 1.05, 3, 30, 1.0),
    }


def gate_option(value: str) -> str | Path | None:
    """A --gate value read as detection.gate reads it (``shipped``, ``off`` or a gate file's path),
    so that a benchmark runs the gate the config would, and a misspelt name is refused by argparse."""
    try:
        return DetectionSettings(gate=value).gate
    except ValidationError as exc:
        raise argparse.ArgumentTypeError(exc.errors()[0]["msg"]) from exc
