"""The one face normalisation: fixed size, same output for the same face, safe at image edges."""

from __future__ import annotations

import numpy as np
from synthetic import draw_face

from facesortd.faces import FaceSpec, crop_face, normalise_face


def test_normalised_face_shape_range_and_lighting_invariance() -> None:
    face = draw_face("happy", 120, np.random.default_rng(0))
    spec = FaceSpec(size=32)
    a = normalise_face(face, (10, 10, 100, 100), spec)
    assert a.shape == (32, 32) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    darker = (face * 0.6).astype(np.uint8)
    b = normalise_face(darker, (10, 10, 100, 100), spec)
    assert np.abs(a - b).mean() < 0.08  # lighting normalisation evens out exposure


def test_face_cut_by_the_frame_keeps_its_framing() -> None:
    gray = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100).astype(np.uint8)
    crop = crop_face(gray, (-20, 70, 50, 50), FaceSpec(margin=0.1))
    assert crop.shape == (60, 60)
