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
