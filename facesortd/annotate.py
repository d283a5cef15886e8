"""An image with the faces found in it drawn on: each box, and its emotion (or "face") with the
confidence, for `facesortd detect --draw`, the tool for a file that went where it should not."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from facesortd.decide import FaceResult

RED = (0, 0, 255)


def draw_faces(image: np.ndarray, faces: Iterable[FaceResult]) -> None:
    """Draw onto ``image`` (BGR) in place, line and text sized to each face so both stay readable."""
    for f in faces:
        x, y, w, h = f.box
        cv2.rectangle(image, (x, y), (x + w, y + h), RED, max(2, w // 60))
        text = f"{f.emotion or 'face'} {f.confidence or f.score:.2f}"
        cv2.putText(image, text, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, max(0.5, w / 300), RED, 2)
