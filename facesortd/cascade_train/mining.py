"""Negative windows for each stage: random windows first, then hard negatives that the partial
cascade, run by OpenCV over the negative images at every scale, still takes for faces.

Windows overlapping a known face box are never negatives: a screenshot's face-free regions are
useful negatives precisely because they look like the images the detector will run on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facesortd.boxes import Box
from facesortd.cascade_train.cascade import Cascade
from facesortd.cascade_train.samples import BoxedImage, cut_window
from facesortd.detect import iou, load_cascade

MAX_FACE_IOU = 0.2
"""A window overlapping a face box more than this is neither a face nor a clean negative."""
PER_IMAGE_CAP = 8
"""Fewest windows taken from one image per stage (more if the quota needs it): hard negatives
cluster in a few busy images, and taking them all would make a stage learn only those (a cap of
40, tried together with windows cut exactly from OpenCV's bilinear pyramid, lost held-out recall)."""


@dataclass(frozen=True)
class Mined:
    """Negative windows found; windows scanned and accepted on the way (their ratio: the cascade's
    false-alarm rate on the negative images)."""

    windows: np.ndarray
    scanned: int
    accepted: int
    offered: int  # windows OpenCV accepted that were re-checked by the trainer's evaluator


def _clear_of_faces(box: Box, faces: Sequence[Box]) -> bool:
    return all(iou(box, f) <= MAX_FACE_IOU for f in faces)


def _clear_rects(rects: np.ndarray, faces: Sequence[Box]) -> np.ndarray:
    """(n, 4) rects sorted (OpenCV scans in parallel threads, so the order it returns windows in
    varies) and without those overlapping a face: _clear_of_faces over arrays, since a weak early
    cascade accepts too many windows of one scene to check them one by one in Python
    (cascade_classifier/README.md)."""
    rects = rects[np.lexsort(rects.T[::-1])]
    x, y, w, h = rects.T
    keep = np.ones(len(rects), dtype=bool)
    for fx, fy, fw, fh in faces:
        ix = np.clip(np.minimum(x + w, fx + fw) - np.maximum(x, fx), 0, None)
        iy = np.clip(np.minimum(y + h, fy + fh) - np.maximum(y, fy), 0, None)
        inter = ix * iy
        union = w * h + fw * fh - inter
        keep &= inter <= MAX_FACE_IOU * union
    return rects[keep]


def random_windows(
    images: Sequence[BoxedImage], n: int, window: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """``n`` windows of random position and size (log-uniform, window size up to the image side)."""
    out: list[np.ndarray] = []
    usable = [im for im in images if min(im.gray.shape) >= max(window)]
    if not usable:
        return np.empty((0, window[1], window[0]), dtype=np.uint8)
    attempts = 0
    while len(out) < n and attempts < 20 * n:
        attempts += 1
        im = usable[int(rng.integers(len(usable)))]
        h, w = im.gray.shape
        side = int(np.exp(rng.uniform(np.log(max(window)), np.log(min(h, w) + 1))))
        side = min(side, h, w)
        box = (int(rng.integers(w - side + 1)), int(rng.integers(h - side + 1)), side, side)
        if _clear_of_faces(box, im.boxes):
            out.append(cut_window(im.gray, box, window))
    return np.stack(out) if out else np.empty((0, window[1], window[0]), dtype=np.uint8)


def _windows_scanned(shape: tuple[int, int], window: tuple[int, int], scale_factor: float) -> int:
    """How many windows OpenCV's detectMultiScale tests on an image (step 2 below scale 2, else 1)."""
    h, w = shape
    total, scale = 0, 1.0
    while w / scale >= window[0] and h / scale >= window[1]:
        step = 1 if scale >= 2 else 2
        total += (int(w / scale - window[0]) // step + 1) * (int(h / scale - window[1]) // step + 1)
        scale *= scale_factor
    return total


def mine_hard_negatives(
    cascade: Cascade,
    xml_path: Path,
    images: Sequence[BoxedImage],
    n: int,
    rng: np.random.Generator,
    scale_factor: float,
) -> Mined:
    """Up to ``n`` windows that the cascade (already written to ``xml_path``) accepts.

    Images are visited in a random order with a cap per image, so one busy image cannot fill the
    whole quota; every mined window is re-checked by the trainer's own evaluator.
    """
    detector = load_cascade(xml_path)  # any name: OpenCV opening one that is not UTF-8 is a SIGSEGV
    cap = max(PER_IMAGE_CAP, 3 * n // max(1, len(images)))
    found: list[np.ndarray] = []
    scanned = accepted = offered = 0
    for i in rng.permutation(len(images)):
        im = images[int(i)]
        scanned += _windows_scanned(im.gray.shape, cascade.window, scale_factor)
        rects = detector.detectMultiScale(
            im.gray, scaleFactor=scale_factor, minNeighbors=0, minSize=cascade.window
        )
        rects = _clear_rects(np.asarray(rects, dtype=np.int64).reshape(-1, 4), im.boxes)
        accepted += len(rects)
        if not len(rects):
            continue
        pick = rng.permutation(len(rects))[:cap]
        # Cut as the positives are cut, so that resampling can never tell the two apart.
        wins = np.stack([cut_window(im.gray, tuple(int(v) for v in rects[k]), cascade.window) for k in pick])
        offered += len(wins)
        found.extend(wins[cascade.accepts(wins)])
        if len(found) >= n:
            break
    windows = np.stack(found[:n]) if found else np.empty((0, cascade.window[1], cascade.window[0]), np.uint8)
    return Mined(windows, scanned, accepted, offered)
