"""The one box type: where a face is in an image.

A box is ``(x, y, w, h)`` in pixels of the full image, top-left corner first: the detector's
output, the faces.json files, the journal's label records and the crops all use this convention,
so it is defined once, apart from any reader or detector that produces boxes.
"""

from __future__ import annotations

Box = tuple[int, int, int, int]

SAME_FACE_IOU = 0.4
"""Two boxes whose intersection over union reaches this frame the same face: a detection hits a
labelled face (the benchmarks), a labelled box takes the detector's framing (training), a cascade
proposal is a face sample (the verifier's training). Detection boxes are loose enough that a
stricter rule would call right boxes misses."""


def mostly_outside(box: Box, shape: tuple[int, ...]) -> bool:
    """Does less than half of ``box`` lie in an image of ``shape`` (height, width, ...)? A labelled
    box so placed (a faces.json of other screenshots, or of the images before a crop) frames the
    padding beyond the image's edge, not a face: it was trained on as one."""
    x, y, w, h = box
    inside_w = max(0, min(x + w, shape[1]) - max(x, 0))
    inside_h = max(0, min(y + h, shape[0]) - max(y, 0))
    return 2 * inside_w * inside_h < w * h
