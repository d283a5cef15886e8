"""The face/non-face verifier on synthetic faces and textures: separates them, round-trips through
its file, scores boxes in an image, and refuses files that are not verifiers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import EMOTIONS, draw_face, draw_textures

from facesortd.verify import CROP, MARGIN, Verifier, VerifierError, crop_box, train_verifier


def _faces(n: int, rng: np.random.Generator) -> np.ndarray:
    size = 60
    faces = [draw_face(EMOTIONS[k % len(EMOTIONS)], size, rng) for k in range(n)]
    return np.stack([crop_box(f, (6, 6, size - 12, size - 12)) for f in faces])


def _textures(n: int, rng: np.random.Generator) -> np.ndarray:
    return draw_textures(n, CROP, rng)


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    rng = np.random.default_rng(0)
    return train_verifier(_faces(200, rng), _textures(300, rng), seed=1)


def test_separates_unseen_faces_from_textures(verifier: Verifier) -> None:
    rng = np.random.default_rng(99)
    p_face, p_other = verifier.probability(_faces(60, rng)), verifier.probability(_textures(60, rng))
    assert np.mean(p_face > 0.5) > 0.95
    assert np.mean(p_other < 0.5) > 0.95


def test_round_trips_through_its_file(verifier: Verifier, tmp_path: Path) -> None:
    crops = _faces(10, np.random.default_rng(3))
    verifier.save(tmp_path / "v.npz")
    again = Verifier.load(tmp_path / "v.npz")
    assert np.allclose(again.probability(crops), verifier.probability(crops))


def test_scores_boxes_in_an_image_including_boxes_at_the_border(verifier: Verifier) -> None:
    rng = np.random.default_rng(4)
    scene = _textures(1, rng)[0]
    scene = cv2.resize(scene, (200, 200))
    scene[50:110, 100:160] = draw_face("happy", 60, rng)
    scores = verifier.score(scene, [(106, 56, 48, 48), (0, 0, 48, 48), (170, 170, 40, 40)])
    assert scores.shape == (3,)
    assert scores[0] > 0.5 > scores[1]
    assert verifier.score(scene, []).shape == (0,)


def test_big_boxes_are_cut_from_the_shrunk_copy_and_score_as_from_the_original(verifier: Verifier) -> None:
    """Detection hands the verifier its shrunk copy of the picture: a big box is cut from it (area
    averaging the original region read every pixel), a small one still from the original."""
    rng = np.random.default_rng(5)
    scene = cv2.resize(_textures(1, rng)[0], (600, 600))
    scene[150:390, 150:390] = cv2.resize(draw_face("happy", 60, rng), (240, 240))
    big, small = (150, 150, 240, 240), (20, 20, 40, 40)
    alone = verifier.score(scene, [big, small])
    shrunk = cv2.resize(scene, None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA)
    faithful = verifier.score(scene, [big, small], (shrunk, 1 / 3))
    blank = verifier.score(scene, [big, small], (np.zeros_like(shrunk), 1 / 3))
    assert faithful[1] == alone[1] == blank[1]  # too small for the shrunk copy
    assert blank[0] != alone[0]  # the big box really came from the shrunk copy
    assert faithful[0] > 0.5 and abs(faithful[0] - alone[0]) < 0.05


def test_crops_of_boxes_leaving_the_image_replicate_its_edges() -> None:
    """Boxes partly or wholly outside the image (close-up candidates) are cut as if the whole image
    had been extended by replicating its edge pixels."""
    rng = np.random.default_rng(8)
    gray = rng.integers(0, 256, (90, 140), dtype=np.uint8)
    big = 400
    extended = cv2.copyMakeBorder(gray, big, big, big, big, cv2.BORDER_REPLICATE)
    boxes = [(10, 10, 40, 40), (-30, 20, 60, 60), (100, 60, 70, 50), (-80, -70, 30, 30), (150, 95, 20, 40)]
    boxes += [
        tuple(int(v) for v in rng.integers(-120, 160, 2)) + (int(rng.integers(5, 150)),) * 2
        for _ in range(40)
    ]
    for box in boxes:
        x, y, w, h = box
        x0, y0 = round(x - w * MARGIN) + big, round(y - h * MARGIN) + big
        x1, y1 = round(x + w + w * MARGIN) + big, round(y + h + h * MARGIN) + big
        region = extended[y0:y1, x0:x1]
        interp = cv2.INTER_AREA if region.shape[1] > CROP else cv2.INTER_LINEAR
        assert np.array_equal(crop_box(gray, box), cv2.resize(region, (CROP, CROP), interpolation=interp)), (
            box
        )


def test_bad_files_and_too_little_data_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "x.npz").write_bytes(b"not a verifier")
    with pytest.raises(VerifierError, match="not a facesortd verifier"):
        Verifier.load(tmp_path / "x.npz")
    with pytest.raises(VerifierError):
        Verifier.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match=">= 10 crops"):
        train_verifier(np.zeros((3, CROP, CROP), np.uint8), np.zeros((30, CROP, CROP), np.uint8))
