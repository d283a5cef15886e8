"""Face descriptors: what an emotion model looks at in a normalised face.

``pixels`` is the classic Fisherface input. ``hog`` (gradient orientation histograms) is tried
beside it because anime expressions live in line art (eye and mouth shapes) rather than in
shading. The name of the descriptor is stored in the model file so run time matches training.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import cv2
import numpy as np


def _pixels(faces: np.ndarray) -> np.ndarray:
    flat = faces.reshape(len(faces), -1).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True) + 1e-6
    return flat


@cache
def _hog(size: int) -> cv2.HOGDescriptor:
    cell = max(4, size // 8)
    return cv2.HOGDescriptor((size, size), (2 * cell, 2 * cell), (cell, cell), (cell, cell), 9)


def _hog_features(faces: np.ndarray) -> np.ndarray:
    hog = _hog(faces.shape[1])
    u8 = np.clip(faces * 255.0, 0, 255).astype(np.uint8)
    return np.stack([hog.compute(f).ravel() for f in u8]).astype(np.float32)


DESCRIPTORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"pixels": _pixels, "hog": _hog_features}


def describe(faces: np.ndarray, name: str) -> np.ndarray:
    """(n, size, size) float faces in [0, 1] -> (n, d) float32 feature rows."""
    try:
        fn = DESCRIPTORS[name]
    except KeyError:
        raise ValueError(f"unknown descriptor {name!r}; known: {', '.join(DESCRIPTORS)}") from None
    if len(faces) == 0:
        return np.zeros((0, fn(np.zeros((1, *faces.shape[1:]), np.float32)).shape[1]), np.float32)
    return fn(faces)
