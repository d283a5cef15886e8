"""A labelled file's face, kept in the state folder and read back for a retrain, is the face a model
sees when it sorts the screenshot."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import BrightBlobDetector, draw_face, draw_screenshot

from facesortd import config
from facesortd.config import Settings
from facesortd.faces import FaceSpec, crop_face, cut_face_crop, normalise_face
from facesortd.images import to_gray
from facesortd.learn import kept_faces

SPEC = FaceSpec(size=48)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return config.load_settings(state_dir=tmp_path / "state")


def test_a_kept_face_normalises_exactly_like_the_face_at_run_time(settings: Settings) -> None:
    """A label's face is cut with the run-time box, kept, and read back for a retrain: unless it had
    to be shrunk, the retrain sees exactly the face a model sees when it sorts the screenshot."""
    image, _ = draw_screenshot("sad", np.random.default_rng(0), face=90)
    gray = to_gray(image)
    box = max(BrightBlobDetector().detect(gray), key=lambda f: f.area).box
    path = kept_faces.keep_face(settings, "abc", gray, box)
    assert path == settings.state_dir / "faces" / "abc.png"
    assert cut_face_crop(gray, box).shape[0] <= kept_faces.KEEP_SIDE  # kept as cut
    for spec in (SPEC, FaceSpec(), FaceSpec(margin=0.3)):
        assert np.array_equal(kept_faces.kept_face(path, spec), normalise_face(image, box, spec))


def test_a_big_kept_face_is_shrunk_and_normalises_nearly_like_the_original(settings: Settings) -> None:
    img = np.full((300, 300), 50, np.uint8)
    img[80:200, 90:210] = draw_face("sad", 120, np.random.default_rng(0))
    path = kept_faces.keep_face(settings, "abc", img, (90, 80, 120, 120))
    assert cv2.imread(str(path)).shape[:2] == (kept_faces.KEEP_SIDE, kept_faces.KEEP_SIDE)
    direct = normalise_face(img, (90, 80, 120, 120), SPEC)
    assert np.abs(kept_faces.kept_face(path, SPEC) - direct).mean() < 0.05  # 0.02 on the seed faces


def test_faces_kept_the_old_way_still_read(settings: Settings) -> None:
    """Kept faces were cut by ``crop_face`` with a margin of 0.5 until 2026-11-30."""
    img = np.full((300, 300), 50, np.uint8)
    img[80:200, 90:210] = draw_face("sad", 120, np.random.default_rng(0))
    old = cv2.resize(
        crop_face(img, (90, 80, 120, 120), FaceSpec(margin=0.5)), (192, 192), interpolation=cv2.INTER_AREA
    )
    old_path = settings.state_dir / "old.png"
    old_path.parent.mkdir(parents=True)
    cv2.imwrite(str(old_path), old)
    new_path = kept_faces.keep_face(settings, "new", img, (90, 80, 120, 120))
    assert np.array_equal(kept_faces.kept_face(old_path, SPEC), kept_faces.kept_face(new_path, SPEC))
