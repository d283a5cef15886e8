"""A cascade's raw windows of the whole image's scan, scanned only inside given regions per window size.

A scan of a cut-out is not the same as the whole image's: OpenCV resizes the image it is given
for every scale, and a window resampled a fraction of a pixel apart passes or fails the cascade
differently (cascade_classifier/README.md, "Coarse-to-fine scan"). So each scale's image is
resized as OpenCV resizes it, the regions are cut from that and scanned at the cascade's own
window size, on the whole scan's grid: OpenCV steps 2 px of the scaled image below scale 2 (cuts
start on even pixels) and 1 px from 2 up (four cuts shifted by a pixel, each stepped by 2).

The windows are nearly, not exactly, the whole scan's, even where a cut is the whole picture.
One reason is known: after a position rejected at the cascade's first stage OpenCV skips the next
one of its row, so which positions it visits depends on the row from its start, and a cut starting
elsewhere, or four cuts stepped by 2 where OpenCV steps by 1, visit others. So a scan of regions
cannot promise the whole scan's decisions to the bit (cascade_classifier/README.md, "A pass for
faces cut by the frame").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from facesortd.gate import Region, merged

FINE_FROM = 2.0
"""From this scale up OpenCV steps its window by 1 px of the scaled image, below it by 2."""


def sides(window: int, scale_factor: float, shape: tuple[int, ...]) -> list[tuple[int, float]]:
    """Every (window side, scale) OpenCV scans on an image of ``shape``, smallest first."""
    found, factor = [], 1.0
    while round(window * factor) <= min(shape[:2]):
        found.append((round(window * factor), factor))
        factor *= scale_factor
    return found


def raw_windows(
    cascade: cv2.CascadeClassifier,
    image: np.ndarray,
    scale_factor: float,
    min_side: int,
    regions: Callable[[int], list[Region]],
    eps: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Windows (n x 4) and last-stage weights (n) of an ungrouped ``detectMultiScale3`` of
    ``image`` from ``min_side`` up, bar those outside ``regions(side)`` (non-overlapping regions
    in ``image``'s pixels for windows of that side).

    With ``eps`` (grouping's similarity) the windows' neighbourhoods are completed: wherever a
    window was found, every window of any size grouping could join with it is scanned too, and so
    on from the windows that adds. Grouping (and its mean box) then sees each cluster of windows
    the gate touched whole, as the whole scan shows it, not cut at a region's edge or size range.
    Windows of a size scanned everywhere have their own size's neighbours already and start no
    completion: on busy pictures the small windows, found everywhere, would spread it over the
    whole picture."""
    window = cascade.getOriginalWindowSize()[0]
    scales = scan_scales(window, scale_factor, image.shape, min_side)
    found: list[dict[tuple[int, ...], float]] = [{} for _ in scales]
    scanned: list[list[Region]] = [[] for _ in scales]
    todo = [regions(side) for side, _factor in scales]
    everywhere = [wanted == [(0, 0, image.shape[1], image.shape[0])] for wanted in todo]
    while any(todo):
        new: list[tuple[int, ...]] = []
        for i, wanted in enumerate(todo):
            if not wanted:
                continue
            scanned[i] += wanted
            for rects, weights in _on_grid(cascade, image, scales[i][1], wanted):
                for rect, weight in zip(map(tuple, rects.tolist()), weights.tolist(), strict=True):
                    if rect not in found[i]:  # a window in two overlapping cut-outs counts once
                        found[i][rect] = weight
                        if not everywhere[i]:
                            new.append(rect)
        todo = _neighbourhoods(new, scales, scanned, eps, image.shape) if eps else []
    rects = [np.asarray(list(f), np.int32).reshape(-1, 4) for f in found]
    weights = [np.asarray(list(f.values()), float) for f in found]
    return np.concatenate([np.empty((0, 4), np.int32), *rects]), np.concatenate([np.empty(0), *weights])


def _neighbourhoods(
    windows: list[tuple[int, ...]],
    scales: list[tuple[int, float]],
    scanned: list[list[Region]],
    eps: float,
    shape: tuple[int, ...],
) -> list[list[Region]]:
    """Per scale, the regions not yet scanned that hold a window grouping would call similar to
    one of ``windows`` (cv2.groupRectangles: corners within ``eps`` of the smaller sides)."""
    todo: list[list[Region]] = [[] for _ in scales]
    for x, y, w, h in windows:
        for i, (side, _factor) in enumerate(scales):
            delta = eps * (min(w, side) + min(h, side)) / 2
            if abs(w - side) > 2 * delta or abs(h - side) > 2 * delta:
                continue
            box = (
                max(0, math.floor(x - delta)),
                max(0, math.floor(y - delta)),
                min(shape[1], math.ceil(x + delta) + side),
                min(shape[0], math.ceil(y + delta) + side),
            )
            inside = any(
                a[0] <= box[0] and a[1] <= box[1] and box[2] <= a[2] and box[3] <= a[3] for a in scanned[i]
            )
            if not inside and box[2] - box[0] >= side and box[3] - box[1] >= side:
                todo[i].append(box)
    return [merged(t) for t in todo]


def _on_grid(
    cascade: cv2.CascadeClassifier, image: np.ndarray, factor: float, regions: list[Region]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The windows and weights of one scale of the whole image's scan that lie in ``regions``."""
    f = float(np.float32(factor))  # OpenCV keeps its scales as floats
    height, width = image.shape[:2]
    scaled = cv2.resize(image, (round(width / f), round(height / f)), interpolation=cv2.INTER_LINEAR_EXACT)
    window = cascade.getOriginalWindowSize()[0]
    shifts = (0, 1) if f >= FINE_FROM else (0,)
    side = round(window * factor)
    found = []
    for x0, y0, x1, y1 in regions:
        sx, sy = int(x0 // f), int(y0 // f)
        if f < FINE_FROM:
            sx, sy = sx - sx % 2, sy - sy % 2
        for dx, dy in itertools.product(shifts, shifts):
            part = scaled[sy + dy : math.ceil(y1 / f), sx + dx : math.ceil(x1 / f)]
            if min(part.shape[:2]) < window:
                continue
            rects, _levels, weights = cascade.detectMultiScale3(
                part,
                scaleFactor=2.0,
                minNeighbors=0,
                minSize=(window, window),
                maxSize=(window, window),
                outputRejectLevels=True,
            )
            rects = np.asarray(rects, np.int32).reshape(-1, 4)
            rects[:, :2] = np.rint((rects[:, :2] + (sx + dx, sy + dy)) * f)
            rects[:, 2] = np.minimum(side, width - rects[:, 0])  # OpenCV clips too
            rects[:, 3] = np.minimum(side, height - rects[:, 1])
            found.append((rects, np.ravel(weights).astype(float)))
    return found


def scan_scales(
    window: int, scale_factor: float, shape: tuple[int, ...], min_side: int
) -> list[tuple[int, float]]:
    """The (window side, scale) pairs a scan of an image of ``shape`` from ``min_side`` up visits."""
    return [(side, factor) for side, factor in sides(window, scale_factor, shape) if side >= min_side]


def unclipped(
    rects: np.ndarray,
    shape: tuple[int, ...],
    cascade: cv2.CascadeClassifier,
    scale_factor: float,
    min_side: int,
) -> np.ndarray:
    """Raw windows (n x 4) of an ungrouped ``detectMultiScale3`` of ``cascade`` over an image of
    ``shape`` (``scale_factor``, from ``min_side`` up), as they were before OpenCV clipped them.

    OpenCV groups its windows before clipping them, so grouping the clipped windows it hands out
    puts a group at the right or bottom edge a few pixels off its own (cascade_classifier/README.md,
    "Grouping as OpenCV groups"). A window reaches past the image only to the right and
    down, and is square: one cut on one side keeps its side in the other. One cut on both (in the
    bottom-right corner) takes the smallest side scanned whose grid holds its corner and which,
    clipped, gives its box."""
    height, width = shape[:2]
    found = np.asarray(rects, np.int32).reshape(-1, 4)
    right = found[:, 0] + found[:, 2] >= width
    corners = np.flatnonzero(right & (found[:, 1] + found[:, 3] >= height))
    whole = found.copy()
    whole[:, 2] = whole[:, 3] = np.where(right, found[:, 3], found[:, 2])
    if not len(corners):
        return whole
    window = cascade.getOriginalWindowSize()[0]
    scales = scan_scales(window, scale_factor, shape, min_side)
    for i in corners:
        x, y, w, h = found[i].tolist()
        whole[i, 2:] = next(
            (
                side
                for side, factor in scales
                if (min(side, width - x), min(side, height - y)) == (w, h)
                and _on_scale_grid(x, width, factor, window)
                and _on_scale_grid(y, height, factor, window)
            ),
            max(w, h),
        )
    return whole


def _on_scale_grid(position: int, length: int, factor: float, window: int) -> bool:
    """Can a window of the scan at ``factor`` start at ``position`` of a side ``length`` long? OpenCV
    places it at the rounded position of a window lying wholly inside the image scaled by it."""
    f = float(np.float32(factor))  # OpenCV keeps its scales as floats
    last = round(length / f) - window
    return any(
        0 <= i <= last and round(i * f) == position
        for i in (math.floor(position / f), math.ceil(position / f))
    )


@dataclass(frozen=True)
class Scan:
    """The ungrouped ``detectMultiScale3`` raw windows come from, and the grouping ``detectMultiScale``
    would give them: ``cascade`` over an image of ``shape``, window sides from ``min_side`` up,
    ``scale_factor`` apart; grouped with ``min_neighbors`` and ``eps`` (cv2.groupRectangles)."""

    cascade: cv2.CascadeClassifier
    shape: tuple[int, ...]
    scale_factor: float
    min_side: int
    min_neighbors: int
    eps: float


def groups(rects: np.ndarray, scan: Scan) -> np.ndarray:
    """Raw windows of ``scan`` (as :func:`unclipped` takes them) grouped as ``detectMultiScale`` groups
    them: unclipped, grouped (cv2.groupRectangles), then clipped to the image."""
    _whole, found = _grouped_whole(rects, scan)
    return _clipped(found, scan.shape)


def grouped(rects: np.ndarray, weights: np.ndarray, scan: Scan) -> tuple[np.ndarray, np.ndarray]:
    """:func:`groups`, each group with the highest weight of the windows its unclipped box is
    similar to. Near OpenCV's weight, not equal: OpenCV reports the highest weight of the group's
    own windows, which OpenCV's Python binding does not hand out (cascade_classifier/README.md,
    "Grouping as OpenCV groups")."""
    whole, found = _grouped_whole(rects, scan)
    best = np.zeros(len(found))
    for i, g in enumerate(found):
        delta = scan.eps * (np.minimum(g[2], whole[:, 2]) + np.minimum(g[3], whole[:, 3])) * 0.5
        ends = whole[:, :2] + whole[:, 2:] - g[:2] - g[2:]
        close = np.all(np.abs(np.column_stack([whole[:, :2] - g[:2], ends])) <= delta[:, None], axis=1)
        best[i] = weights[close].max() if close.any() else 0.0
    return _clipped(found, scan.shape), best


def _grouped_whole(rects: np.ndarray, scan: Scan) -> tuple[np.ndarray, np.ndarray]:
    """The windows unclipped and their groups, unclipped."""
    whole = unclipped(rects, scan.shape, scan.cascade, scan.scale_factor, scan.min_side)
    if not len(whole):
        return whole, whole
    found, _counts = cv2.groupRectangles(whole.tolist(), scan.min_neighbors, scan.eps)
    return whole, np.asarray(found, np.int32).reshape(-1, 4)


def _clipped(rects: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Windows cut to the image, as OpenCV hands them out (they never start outside it)."""
    height, width = shape[:2]
    cut = rects.copy()
    cut[:, 2] = np.minimum(rects[:, 0] + rects[:, 2], width) - rects[:, 0]
    cut[:, 3] = np.minimum(rects[:, 1] + rects[:, 3], height) - rects[:, 1]
    return cut
