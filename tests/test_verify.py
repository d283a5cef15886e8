"""The verifier's runtime (numpy only): crops boxes as it was trained on them, scores boxes in an
image, round-trips through its file, and refuses files it cannot run with the fix named, the HOG
verifier's of before 2026-11-30 among them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import draw_face, draw_textures

from facesortd import cli
from facesortd.config import DetectionSettings
from facesortd.conv_net import ConvNet
from facesortd.detect import SHIPPED_CASCADE, SHIPPED_VERIFIER, DetectorError, FaceDetector, shipped_file
from facesortd.verify import (
    CNN_CROP,
    HOG_KIND,
    MARGIN,
    CnnVerifier,
    VerifierError,
    crop_box,
    load_verifier,
    platt_probability,
)


def _random_verifier(seed: int = 0) -> CnnVerifier:
    """A tiny untrained net: enough for plumbing (what it says about faces does not matter)."""
    rng = np.random.default_rng(seed)
    conv = [(rng.normal(0, 0.3, (9, 4)).astype(np.float32), rng.normal(0, 0.1, 4).astype(np.float32))]
    flat = 4 * (CNN_CROP // 2) ** 2
    dense = [(rng.normal(0, 0.05, (flat, 1)).astype(np.float32), np.zeros(1, np.float32))]
    return CnnVerifier(ConvNet(conv, dense), (0.8, -0.2))


def _hog_file(path: Path) -> Path:
    """A verifier file as facesortd wrote them until 2026-11-30 (HOG + logistic model)."""
    zeros = np.zeros(900, np.float32)
    np.savez(
        path, kind=np.array(HOG_KIND), crop=np.array([48, MARGIN]), mean=zeros, scale=zeros + 1,
        weights=zeros, bias=np.array(0.0), platt=np.array([1.0, 0.0]),
    )  # fmt: skip
    return path


def test_scores_boxes_in_an_image_including_boxes_at_the_border_and_round_trips(tmp_path: Path) -> None:
    verifier = _random_verifier()
    rng = np.random.default_rng(4)
    scene = rng.integers(0, 256, (200, 240), dtype=np.uint8)
    boxes = [(106, 56, 48, 48), (-20, -10, 48, 48), (200, 170, 60, 60)]
    scores = verifier.score(scene, boxes)
    assert scores.shape == (3,) and np.all((scores > 0) & (scores < 1))
    crops = np.stack([crop_box(scene, b, CNN_CROP) for b in boxes])
    assert np.allclose(scores, verifier.probability(crops))
    assert verifier.score(scene, []).shape == (0,)
    verifier.save(tmp_path / "v.npz")
    assert np.allclose(load_verifier(tmp_path / "v.npz").score(scene, boxes), scores)


def test_a_face_probability_is_platts_logistic_of_the_nets_logit() -> None:
    """Training fits (a, b) of p = 1 / (1 + exp(-(a z + b))); the verifier must score with the same."""
    z = np.array([2.0, 0.0, -4.0])
    assert np.allclose(platt_probability(z, (1.5, -3.0)), [0.5, 1 / (1 + np.exp(3)), 1 / (1 + np.exp(9))])
    verifier = _random_verifier()
    crops = np.random.default_rng(6).integers(0, 256, (5, CNN_CROP, CNN_CROP), dtype=np.uint8)
    logits = verifier.logits(crops)
    assert np.allclose(verifier.probability(crops), 1 / (1 + np.exp(-(0.8 * logits - 0.2))))


def test_big_boxes_are_cut_from_the_shrunk_copy_and_score_as_from_the_original() -> None:
    """Detection hands the verifier its shrunk copy of the picture: a big box is cut from it (area
    averaging the original region read every pixel), a small one still from the original."""
    verifier = load_verifier(shipped_file(SHIPPED_VERIFIER))
    rng = np.random.default_rng(5)
    scene = cv2.resize(draw_textures(1, 60, rng)[0], (600, 600))
    scene[150:390, 150:390] = cv2.resize(draw_face("happy", 60, rng), (240, 240))
    big, small = (150, 150, 240, 240), (20, 20, 40, 40)
    alone = verifier.score(scene, [big, small])
    shrunk = cv2.resize(scene, None, fx=1 / 3, fy=1 / 3, interpolation=cv2.INTER_AREA)
    faithful = verifier.score(scene, [big, small], (shrunk, 1 / 3))
    blank = verifier.score(scene, [big, small], (np.zeros_like(shrunk), 1 / 3))
    assert faithful[1] == alone[1] == blank[1]  # too small for the shrunk copy
    assert blank[0] != alone[0]  # the big box really came from the shrunk copy
    assert abs(faithful[0] - alone[0]) < 0.05


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
        interp = cv2.INTER_AREA if region.shape[1] > CNN_CROP else cv2.INTER_LINEAR
        expected = cv2.resize(region, (CNN_CROP, CNN_CROP), interpolation=interp)
        assert np.array_equal(crop_box(gray, box, CNN_CROP), expected), box


def test_files_it_cannot_run_are_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "x.npz").write_bytes(b"not a verifier")
    with pytest.raises(VerifierError, match="not a facesortd verifier"):
        load_verifier(tmp_path / "x.npz")
    with pytest.raises(VerifierError, match="not a facesortd verifier"):
        load_verifier(tmp_path / "missing.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))  # np.load gives a bare array: a TypeError before
    with pytest.raises(VerifierError, match="not a facesortd verifier"):
        load_verifier(tmp_path / "array.npy")
    with pytest.raises(VerifierError, match=r"HOG verifier, which facesortd no longer runs.*train-detector"):
        load_verifier(_hog_file(tmp_path / "hog.npz"))
    np.savez(tmp_path / "future.npz", kind=np.array("facesortd-verifier-cnn-v9"), crop=np.array([64, 0.2]))
    with pytest.raises(VerifierError, match="another version; retrain it"):
        load_verifier(tmp_path / "future.npz")


def test_a_hog_verifier_named_in_the_config_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any cascade will do beside it: the shipped one, there to load. (conftest's tiny_cascade, until
    2026-12-03, was trained for this test alone in the test worker whose other tests need none.)"""
    hog = _hog_file(tmp_path / "old_verifier.npz")
    cascade = shipped_file(SHIPPED_CASCADE)
    assert cascade is not None
    with pytest.raises(DetectorError, match=r"remove detection\.verifier"):
        FaceDetector(DetectionSettings(verifier=hog), [cascade])
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[detection]\nverifier = "{hog}"\ncascades = ["{cascade}"]\n')
    shot = tmp_path / "shot.png"
    cv2.imwrite(str(shot), np.full((120, 160, 3), 128, np.uint8))
    assert cli.main(["--config", str(cfg), "sort", "--dry-run", str(shot)]) == 2
    err = capsys.readouterr().err
    assert "is a HOG verifier" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
