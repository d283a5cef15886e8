"""The coarse-to-fine scan: the same faces as the fine scan, regions inside the image, no window twice."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
from synthetic import draw_face

from facesortd import coarse_to_fine
from facesortd.config import DetectionSettings
from facesortd.detect import FaceDetector, iou


def _faces_on_a_backdrop() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A 1280x720 picture with four drawn faces of 100-280 px, one touching the right edge and one
    the top: the sizes the coarse scan takes over (scale 2 and up in the 640-px copy)."""
    rng = np.random.default_rng(3)
    image = cv2.resize(
        rng.integers(60, 120, (12, 24)).astype(np.uint8), (1280, 720), interpolation=cv2.INTER_CUBIC
    )
    boxes = [(60, 130, 200, 200), (470, 200, 280, 280), (1000, 400, 170, 170), (1130, 0, 150, 150)]
    for x, y, w, h in boxes:
        image[y : y + h, x : x + w] = draw_face("happy", w, rng)
    return image, boxes


def test_it_finds_the_faces_the_fine_scan_finds() -> None:
    image, boxes = _faces_on_a_backdrop()
    fine = FaceDetector(DetectionSettings()).detect(image)
    coarse = FaceDetector(DetectionSettings(coarse_to_fine=True)).detect(image)
    assert len(fine) == len(boxes)
    assert len(coarse) == len(fine)
    for truth in boxes:
        assert max(iou(truth, f.box) for f in coarse) >= 0.6


def test_regions_are_clipped_to_the_image_and_never_overlap() -> None:
    """A window scanned twice would count as its own neighbour in grouping."""
    shape = (360, 640)
    hits = [
        (0, 0, 60, 60),
        (600, 320, 60, 60),
        (30, 20, 70, 70),
        (300, 100, 50, 50),
        (340, 100, 50, 50),
        (500, 10, 100, 100),
    ]
    regions = coarse_to_fine._merged([coarse_to_fine._region(h, shape) for h in hits])
    assert all(0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0] for x0, y0, x1, y1 in regions)
    for a, b in itertools.combinations(regions, 2):
        assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
    for x, y, w, h in hits:  # every hit lies in a region, with its padding as far as the image goes
        assert any(
            x0 <= max(0, x - w // 2)
            and min(shape[1], x + w) <= x1
            and y0 <= max(0, y - h // 2)
            and min(shape[0], y + h) <= y1
            for x0, y0, x1, y1 in regions
        )
    assert len(regions) == 4  # the two pairs of neighbours merged, the rest apart


def test_its_windows_are_the_fine_scans_own() -> None:
    """Below scale 2 every window, from 2 up the ones in regions: the same places, sizes and
    weights as the whole image's scan (a cut-out scanned on its own would give others)."""
    image, _boxes = _faces_on_a_backdrop()
    small = cv2.equalizeHist(cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA))
    cascade = FaceDetector(DetectionSettings(verify=False))._cascades[0]
    rects, _levels, weights = cascade.detectMultiScale3(
        small, scaleFactor=1.1, minNeighbors=0, minSize=(29, 29), outputRejectLevels=True
    )
    fine = dict(zip(map(tuple, np.asarray(rects).tolist()), np.ravel(weights).tolist(), strict=True))
    windows, found = coarse_to_fine.raw_windows(cascade, small, 1.1, 29)
    ours = dict(zip(map(tuple, windows.tolist()), found.tolist(), strict=True))
    assert len(ours) == len(windows)  # no window twice
    assert {r: w for r, w in fine.items() if r[2] < 48} == {r: w for r, w in ours.items() if r[2] < 48}
    big = {r: w for r, w in ours.items() if r[2] >= 48}
    assert len(big) > 10 and all(fine.get(r) == w for r, w in big.items())
