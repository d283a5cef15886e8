"""Training crops for the verifier: faces framed as at run time, and the cascade's own mistakes.

The verifier only ever sees boxes the cascade proposes, so its negatives are exactly those: what
the trained cascade finds in the training screenshots away from the faces (or badly placed on
them) and in the negative images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facesortd.boxes import Box
from facesortd.cascade_train.samples import BoxedImage
from facesortd.config import DetectionSettings
from facesortd.detect import FaceDetector, iou
from facesortd.verify import CROP, crop_box

MATCH_IOU = 0.4
"""A proposal overlapping a true face at least this much counts as found (as in the benchmark)."""


def _misplaced(box: Box, rng: np.random.Generator) -> Box:
    """The box shifted by a third to a half of its side: overlapping the face but not framing it."""
    x, y, w, h = box
    angle = rng.uniform(0, 2 * np.pi)
    shift = rng.uniform(0.35, 0.5)
    return (round(x + np.cos(angle) * shift * w), round(y + np.sin(angle) * shift * h), w, h)


def _stack(crops: list[np.ndarray]) -> np.ndarray:
    return np.stack(crops) if crops else np.empty((0, CROP, CROP), np.uint8)


def cascade_proposals(
    cascade: Path,
    settings: DetectionSettings,
    images: Sequence[BoxedImage],
    rng: np.random.Generator,
    misplaced_per_face: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Verifier crops (faces, non-faces) of what the cascade proposes: its hits on known faces, and
    its false alarms plus boxes misplaced around the known faces.

    The cascade runs alone (no verifier, no score floor) whatever ``settings`` say: a verifier
    already in place would hide exactly the proposals the new one has to learn to reject.
    """
    raw = settings.model_copy(update={"verify": False, "min_score": 0.0})
    detector = FaceDetector(raw, [cascade])
    faces: list[np.ndarray] = []
    others: list[np.ndarray] = []
    for im in images:
        for face in detector.detect(im.gray):
            hit = any(iou(face.box, t) >= MATCH_IOU for t in im.boxes)
            (faces if hit else others).append(crop_box(im.gray, face.box))
        for t in im.boxes:
            others.extend(crop_box(im.gray, _misplaced(t, rng)) for _ in range(misplaced_per_face))
    return _stack(faces), _stack(others)
