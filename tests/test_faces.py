"""The one face normalisation: fixed size, same output for the same face, safe at image edges."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import EMOTIONS, BrightBlobDetector, draw_face, draw_screenshot

from facesortd.boxes import Box
from facesortd.emotion import EmotionModel
from facesortd.faces import FaceSpec, box_in_crop, crop_face, cut_face_crop, normalise_face
from facesortd.images import to_gray
from facesortd.learn.datasets import load_items
from facesortd.learn.training import FaceSet, collect_faces


def test_normalised_face_shape_range_and_lighting_invariance() -> None:
    face = draw_face("happy", 120, np.random.default_rng(0))
    spec = FaceSpec(size=32)
    a = normalise_face(face, (10, 10, 100, 100), spec)
    assert a.shape == (32, 32) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    darker = (face * 0.6).astype(np.uint8)
    b = normalise_face(darker, (10, 10, 100, 100), spec)
    assert np.abs(a - b).mean() < 0.08  # lighting normalisation evens out exposure


def test_face_cut_by_the_frame_keeps_its_framing() -> None:
    """The crop stays centred on the box (not shifted back inside the image); what lies past the
    frame is the image mirrored at its edge."""
    gray = np.random.default_rng(2).integers(0, 256, (100, 100), dtype=np.uint8)
    crop = crop_face(gray, (-20, 70, 50, 50), FaceSpec(margin=0.1))  # centre (5, 95), side 60
    assert crop.shape == (60, 60)
    assert crop[30, 30] == gray[95, 5]  # the box's centre is the crop's
    assert np.array_equal(crop[:30, 25:55], gray[65:95, 0:30])  # inside the frame: as it is
    assert np.array_equal(crop[:, 20:25], crop[:, 30:25:-1])  # left of it: mirrored about column 0


@pytest.mark.parametrize(
    "box", [(-20, 70, 50, 50), (80, -30, 40, 60), (-5, -5, 110, 110), (90, 90, 30, 30), (-300, 10, 20, 20)]
)
def test_edge_crops_mirror_exactly_as_a_reflected_border_would(box: Box) -> None:
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


@pytest.mark.parametrize("colour", [False, True], ids=["grey", "colour"])
def test_a_face_crop_folder_is_framed_exactly_like_the_screenshots_it_was_cut_from(
    tmp_path: Path, colour: bool
) -> None:
    """Evaluating a folder of crops must say what sorting the screenshots says: crops cut with the
    run-time box are read back (collect_faces, as `train` and `eval` read folders) to the same face."""
    rng = np.random.default_rng(3)
    detector = BrightBlobDetector()
    spec = FaceSpec(size=48, colour=colour)
    shots = [draw_screenshot(e, rng) for e in EMOTIONS for _ in range(6)]
    labels = [e for e in EMOTIONS for _ in range(6)]
    at_run_time = []
    for k, (image, _) in enumerate(shots):
        box = max(detector.detect(to_gray(image)), key=lambda f: f.area).box
        at_run_time.append(normalise_face(image, box, spec))
        (tmp_path / labels[k]).mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / labels[k] / f"{k}.png"), cut_face_crop(image, box))
    items = sorted(load_items(tmp_path), key=lambda item: int(item.path.stem))
    from_crops = collect_faces(items, detector, spec, "crops")  # type: ignore[arg-type]
    assert np.allclose(from_crops.faces, np.stack(at_run_time), atol=1e-6)
    model = EmotionModel.fit(np.stack(at_run_time), labels, spec, "hog")
    assert model.predict(from_crops.faces) == model.predict(np.stack(at_run_time))


def test_the_face_box_of_a_crop_is_its_middle_half() -> None:
    gray = np.zeros((300, 400), np.uint8)
    assert cut_face_crop(gray, (100, 50, 80, 80)).shape == (160, 160)
    assert box_in_crop((160, 160)) == (40, 40, 80, 80)


def test_a_colour_face_is_the_grey_face_plus_the_chroma_of_the_same_crop() -> None:
    """Grey and colour are two renderings of one crop: a colour model's grey plane is exactly what a
    grey model sees, and a blush shows in the red-difference plane."""
    image, box = draw_screenshot("happy", np.random.default_rng(5))
    x, y, w, h = box
    cheek = (x + w // 4, y + 2 * h // 3)
    cv2.circle(image, cheek, w // 10, (150, 150, 255), -1)  # a pink blush (BGR)
    grey = normalise_face(image, box, FaceSpec(size=64))
    colour = normalise_face(image, box, FaceSpec(size=64, colour=True))
    assert grey.shape == (64, 64) and colour.shape == (64, 64, 3)
    assert np.array_equal(colour[..., 0], grey)
    assert np.array_equal(grey, normalise_face(to_gray(image), box, FaceSpec(size=64)))
    scale = 64 / (w * 1.4)  # the default margin 0.2 widens the box by 0.2 per side
    cy, cx = round((cheek[1] - y + 0.2 * h) * scale), round((cheek[0] - x + 0.2 * w) * scale)
    assert colour[cy, cx, 1] > 0.55 > colour[: cy - 12, :, 1].mean()  # Cr: red shows, the rest is greyer
    neutral = normalise_face(to_gray(image), box, FaceSpec(size=64, colour=True))
    assert np.array_equal(neutral[..., 0], grey) and np.all(neutral[..., 1:] == 0.5)


def test_the_face_spec_a_model_stores_says_grey_or_colour() -> None:
    spec = FaceSpec(colour=True)
    assert FaceSpec.from_dict(spec.to_dict()) == spec
    stored_before_colour = {"size": 64, "margin": 0.2, "clahe_clip": 2.0}
    assert FaceSpec.from_dict(stored_before_colour) == FaceSpec()


def test_colour_faces_of_sprites_and_of_opaque_images_pool_into_one_set() -> None:
    """A transparent sprite set and an opaque one are trained together; opacity is per pixel, not
    per plane, whichever rendering the faces have."""
    faces = np.full((2, 8, 8, 3), 0.5, np.float32)
    sprites = FaceSet(
        faces, ["a", "b"], ["g", "h"], [Path("s")] * 2, ["vn"], alpha=np.zeros((2, 8, 8), np.uint8)
    )
    opaque = FaceSet(faces, ["a", "b"], ["i", "j"], [Path("o")] * 2, ["seed"])
    pooled = FaceSet.concat([sprites, opaque])
    assert pooled.faces.shape == (4, 8, 8, 3) and pooled.opacity().shape == (4, 8, 8)
    assert pooled.opacity()[:2].max() == 0 and pooled.opacity()[2:].min() == 255
