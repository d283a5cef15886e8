"""The one face normalisation: fixed size, same output for the same face, safe at image edges."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import EMOTIONS, BrightBlobDetector, draw_face, draw_screenshot

from facesortd.datasets import load_items
from facesortd.emotion import EmotionModel
from facesortd.faces import FaceSpec, box_in_crop, crop_face, cut_face_crop, normalise_face
from facesortd.images import to_gray
from facesortd.training import collect_faces


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


@pytest.mark.parametrize(
    "box", [(-20, 70, 50, 50), (80, -30, 40, 60), (-5, -5, 110, 110), (90, 90, 30, 30), (-300, 10, 20, 20)]
)
def test_edge_crops_mirror_exactly_as_a_reflected_border_would(box: tuple[int, int, int, int]) -> None:
    """The crop gathers only its own pixels; they must be the ones a padded copy of the image gives."""
    gray = np.random.default_rng(1).integers(0, 256, (100, 120), dtype=np.uint8)
    spec = FaceSpec(margin=0.2)
    crop = crop_face(gray, box, spec)
    x, y, w, h = box
    side = max(w, h) * 1.4
    x0, y0, s = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2), round(side)
    pad = max(0, -x0, -y0, x0 + s - 120, y0 + s - 100)  # the far-out box is reflected several times
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    assert np.array_equal(crop, padded[y0 + pad : y0 + pad + s, x0 + pad : x0 + pad + s])


def test_a_face_crop_folder_is_framed_exactly_like_the_screenshots_it_was_cut_from(tmp_path: Path) -> None:
    """Evaluating a folder of crops must say what sorting the screenshots says: crops cut with the
    run-time box are read back (collect_faces, as `train` and `eval` read folders) to the same face."""
    rng = np.random.default_rng(3)
    detector = BrightBlobDetector()
    spec = FaceSpec(size=48)
    shots = [draw_screenshot(e, rng) for e in EMOTIONS for _ in range(6)]
    labels = [e for e in EMOTIONS for _ in range(6)]
    at_run_time = []
    for k, (image, _) in enumerate(shots):
        gray = to_gray(image)
        box = max(detector.detect(gray), key=lambda f: f.area).box
        at_run_time.append(normalise_face(gray, box, spec))
        (tmp_path / labels[k]).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / labels[k] / f"{k}.png"), cut_face_crop(gray, box))
    items = sorted(load_items(tmp_path), key=lambda item: int(item.path.stem))
    from_crops = collect_faces(items, detector, spec, "crops")  # type: ignore[arg-type]
    assert np.allclose(from_crops.faces, np.stack(at_run_time), atol=1e-6)
    model = EmotionModel.fit(np.stack(at_run_time), labels, spec, "hog")
    assert model.predict(from_crops.faces) == model.predict(np.stack(at_run_time))


def test_the_face_box_of_a_crop_is_its_middle_half() -> None:
    gray = np.zeros((300, 400), np.uint8)
    assert cut_face_crop(gray, (100, 50, 80, 80)).shape == (160, 160)
    assert box_in_crop((160, 160)) == (40, 40, 80, 80)
