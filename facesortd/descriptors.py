"""Face descriptors: what an emotion model looks at in a normalised face.

``pixels`` is the classic Fisherface input. ``hog`` (gradient orientation histograms) and ``lbp``
(local binary pattern histograms) are tried beside it because anime expressions live in line art
(eye and mouth shapes) rather than in shading; ``hog+lbp`` gives PCA both views. ``cnn`` is a
small convolutional net learnt from labelled faces of many artists (feature_net.py). Which one
wins is measured (README, `bench/bench_emotion.py`). The name of the descriptor is stored in the
model file so run time matches training; a model using ``cnn`` carries its net's weights too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from functools import cache

import cv2
import numpy as np

from facesortd.feature_net import FeatureNet, shipped_net


def _pixels(faces: np.ndarray) -> np.ndarray:
    """Each face's pixels centred and scaled to unit length: brightness and contrast drop out."""
    flat = faces.reshape(len(faces), -1).astype(np.float32)
    return _unit_rows(flat - flat.mean(axis=1, keepdims=True))


@cache
def _hog(size: int) -> cv2.HOGDescriptor:
    cell = max(4, size // 8)  # about 8 cells across, at least 4 pixels each
    window = size - size % cell  # OpenCV needs whole cells; a face of another size loses < 1 cell
    return cv2.HOGDescriptor((window, window), (2 * cell, 2 * cell), (cell, cell), (cell, cell), 9)


def _hog_features(faces: np.ndarray) -> np.ndarray:
    size = faces.shape[1]
    hog = _hog(size)
    lo = (size - hog.winSize[0]) // 2  # centred, so the lost rim is split between the sides
    hi = lo + hog.winSize[0]
    u8 = np.clip(faces[:, lo:hi, lo:hi] * 255.0, 0, 255).astype(np.uint8)
    return np.stack([hog.compute(f).ravel() for f in u8]).astype(np.float32)


@cache
def _uniform_bins() -> np.ndarray:
    """8-bit LBP code -> histogram bin: one per uniform code (<= 2 bit changes around), 58 for the rest."""
    bins = np.full(256, 58, np.int64)
    uniform = [c for c in range(256) if sum(((c >> i) ^ (c >> ((i + 1) % 8))) & 1 for i in range(8)) <= 2]
    bins[uniform] = np.arange(len(uniform))
    return bins


LBP_GRID = 6


def _lbp_features(faces: np.ndarray) -> np.ndarray:
    """Square-rooted uniform-LBP histograms (8 neighbours, radius 1) in a 6x6 grid of cells.

    LBP codes say which neighbours are brighter than the centre: line-art shapes (the curve of a
    closed eye, a mouth corner) rather than the gradient strength HOG measures.
    """
    u8 = np.clip(faces * 255.0, 0, 255).astype(np.uint8).astype(np.int16)
    n, h, w = u8.shape
    centre = u8[:, 1:-1, 1:-1]
    code = np.zeros(centre.shape, np.int64)
    for bit, (dy, dx) in enumerate(((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))):
        code |= (u8[:, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] >= centre).astype(np.int64) << bit
    codes = _uniform_bins()[code]
    edges = np.linspace(0, codes.shape[1], LBP_GRID + 1).round().astype(int)
    cells = []
    rows = np.arange(n)[:, None] * 59
    for (y0, y1), (x0, x1) in itertools.product(itertools.pairwise(edges), repeat=2):
        block = codes[:, y0:y1, x0:x1].reshape(n, -1)
        hist = np.bincount((rows + block).ravel(), minlength=n * 59).reshape(n, 59)
        cells.append(np.sqrt(hist / block.shape[1]).astype(np.float32))
    return np.concatenate(cells, axis=1)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)


def _hog_lbp_features(faces: np.ndarray) -> np.ndarray:
    """HOG and LBP, each scaled to unit length per face so neither dominates the PCA that follows."""
    return np.concatenate([_unit_rows(_hog_features(faces)), _unit_rows(_lbp_features(faces))], axis=1)


DEFAULT_DESCRIPTOR = "hog+lbp"
"""What a model is built from when there is no model to start from: needs no net."""
DEFAULT_ENSEMBLE = ("hog+lbp", "cnn")
"""What `train` fits unless told otherwise: those two averaged; out of source on vn_faces the mean
was a little better than either alone (README, "Emotion model")."""

DESCRIPTORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "pixels": _pixels,
    "hog": _hog_features,
    "lbp": _lbp_features,
    "hog+lbp": _hog_lbp_features,
    "cnn": lambda faces: shipped_net().features(faces),
}
LEARNT = "cnn"
"""The descriptor whose features come from a FeatureNet (the shipped one unless a net is given)."""


def describe(faces: np.ndarray, name: str, net: FeatureNet | None = None) -> np.ndarray:
    """(n, size, size) grey or (n, size, size, 3) colour faces in [0, 1] -> (n, d) float32 rows.

    ``net`` replaces the shipped net for the ``cnn`` descriptor (a model's own, or one trained on
    the training part of a cross-validation fold).
    """
    try:
        fn = net.features if net is not None and name == LEARNT else DESCRIPTORS[name]
    except KeyError:
        raise ValueError(f"unknown descriptor {name!r}; known: {', '.join(DESCRIPTORS)}") from None
    if faces.ndim == 4 and name != LEARNT:
        faces = faces[..., 0]  # colour faces: hand-made descriptors read their grey rendering
    if len(faces) == 0:
        return np.zeros((0, fn(np.zeros((1, *faces.shape[1:]), np.float32)).shape[1]), np.float32)
    return fn(faces)
