"""A cascade's raw windows, scanned finely only where a coarse scan found something.

OpenCV steps the search window by 2 px of the scaled image below scale 2 and by 1 px from scale 2
up, so the big windows cost most of a scan. Here the scales below 2 are scanned as
``detectMultiScale`` does; the scales from 2 up are first scanned coarsely (each octave on the
image halved again, so the step stays 2 px there), then only the windows of the whole image's
fine scan that lie in regions around the coarse hits are scanned. The coarse grid alone puts a
window near almost every face but lacks the fine grid's neighbours and framing, which grouping
and the verifier need (cascade_classifier/README.md).
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np

from facesortd.boxes import Box

ROI_PAD = 0.5
"""A region reaches this share of its coarse hit's side beyond the hit on every side."""
ROI_SIZES = (0.7, 1.4)
"""A region is scanned with the windows of these shares of its coarse hit's side and between."""

Region = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in pixels of the scanned image."""


def raw_windows(
    cascade: cv2.CascadeClassifier, image: np.ndarray, scale_factor: float, min_side: int
) -> tuple[np.ndarray, np.ndarray]:
    """Windows (n x 4) and last-stage weights (n) of an ungrouped scan of ``image`` from
    ``min_side`` up: those of ``detectMultiScale3`` with minNeighbors 0, bar the big windows
    away from every coarse hit."""
    sides = _sides(cascade.getOriginalWindowSize()[0], scale_factor)
    fine = next(side for side, factor in sides if factor >= 2.0)
    found = [_scan(cascade, image, scale_factor, min_side, fine - 1)]
    hits = _coarse_hits(cascade, image, scale_factor, min_side)
    for side, factor in sides:
        near = [h for h in hits if ROI_SIZES[0] * h[2] <= side <= ROI_SIZES[1] * h[2]]
        if side >= max(fine, min_side) and near:
            found += _on_grid(cascade, image, factor, _merged([_region(h, image.shape) for h in near]))
    return np.concatenate([r for r, _w in found]), np.concatenate([w for _r, w in found])


def _on_grid(
    cascade: cv2.CascadeClassifier, image: np.ndarray, factor: float, regions: list[Region]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The windows and weights of one scale of the whole image's scan that lie in ``regions``.

    A scan of a cut-out is not the same: OpenCV resizes the image it is given, and a window
    resampled a fraction of a pixel apart passes or fails the cascade differently. So the image
    is resized as OpenCV does for this scale, the regions are cut from that and each is scanned
    at the cascade's own size, where OpenCV steps by 2 px: the four cuts shifted by a pixel make
    up the 1-px grid it uses from scale 2 up.
    """
    f = float(np.float32(factor))  # OpenCV keeps its scales as floats
    height, width = image.shape[:2]
    scaled = cv2.resize(image, (round(width / f), round(height / f)), interpolation=cv2.INTER_LINEAR_EXACT)
    window = cascade.getOriginalWindowSize()[0]
    found = []
    for x0, y0, x1, y1 in regions:
        sx, sy = int(x0 // f), int(y0 // f)
        for dx, dy in itertools.product((0, 1), (0, 1)):
            part = scaled[sy + dy : math.ceil(y1 / f), sx + dx : math.ceil(x1 / f)]
            rects, weights = _scan(cascade, part, 2.0, window, window)
            rects[:, :2] = np.rint((rects[:, :2] + (sx + dx, sy + dy)) * f)
            rects[:, 2] = np.minimum(round(window * factor), width - rects[:, 0])  # OpenCV clips too
            rects[:, 3] = np.minimum(round(window * factor), height - rects[:, 1])
            found.append((rects, weights))
    return found


def _sides(window: int, scale_factor: float) -> list[tuple[int, float]]:
    """Every window side OpenCV scans (up to 4096 px) with its scale, smallest first."""
    sides, factor = [], 1.0
    while window * factor <= 4096:
        sides.append((round(window * factor), factor))
        factor *= scale_factor
    return sides


def _scan(
    cascade: cv2.CascadeClassifier, image: np.ndarray, scale_factor: float, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Ungrouped windows of sides lo..hi and their weights, as arrays (empty ones shaped alike).

    OpenCV scans some other scale when none lies in lo..hi, so that case is caught here."""
    window, factor = cascade.getOriginalWindowSize()[0], 1.0
    while round(window * factor) < lo:
        factor *= scale_factor
    if round(window * factor) > min(hi, *image.shape[:2]):
        return np.empty((0, 4), np.int32), np.empty(0)
    rects, _levels, weights = cascade.detectMultiScale3(
        image,
        scaleFactor=scale_factor,
        minNeighbors=0,
        minSize=(lo, lo),
        maxSize=(hi, hi),
        outputRejectLevels=True,
    )
    return np.asarray(rects, np.int32).reshape(-1, 4), np.ravel(weights).astype(float)


def _coarse_hits(
    cascade: cv2.CascadeClassifier, image: np.ndarray, scale_factor: float, min_side: int
) -> list[Box]:
    """Windows of twice the cascade's side and up, found on copies halved per octave (scales 1
    to 2 in each, where the step is 2 px), in ``image``'s pixels. Every hit gets a region: the
    cascade's weights hardly tell the hits on faces from the others (README figures)."""
    window = cascade.getOriginalWindowSize()[0]
    below_two = next(side for side, factor in _sides(window, scale_factor) if factor >= 2.0) - 1
    hits: list[Box] = []
    octave, f = image, 1
    while min(octave.shape[:2]) >= 2 * window:
        half = (octave.shape[1] // 2, octave.shape[0] // 2)
        octave = cv2.resize(octave, half, interpolation=cv2.INTER_AREA)
        f *= 2
        rects, _weights = _scan(cascade, octave, scale_factor, max(window, -(-min_side // f)), below_two)
        hits += [(int(x) * f, int(y) * f, int(w) * f, int(h) * f) for x, y, w, h in rects]
    return hits


def _region(hit: Box, shape: tuple[int, ...]) -> Region:
    """The hit padded by ROI_PAD of its side, clipped to the image."""
    x, y, w, h = hit
    return (
        max(0, round(x - ROI_PAD * w)),
        max(0, round(y - ROI_PAD * h)),
        min(shape[1], round(x + (1 + ROI_PAD) * w)),
        min(shape[0], round(y + (1 + ROI_PAD) * h)),
    )


def _merged(regions: list[Region]) -> list[Region]:
    """Overlapping regions joined (their bounding box) until none overlap: a window found twice
    would count as its own neighbour in grouping."""
    merged: list[Region] = []
    while regions:
        a = regions.pop()
        touching = [b for b in merged if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
        if not touching:
            merged.append(a)
            continue
        for b in touching:
            merged.remove(b)
            a = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
        regions.append(a)  # the grown region may now overlap others
    return merged
