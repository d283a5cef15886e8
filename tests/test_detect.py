"""Detection plumbing: cascade loading errors, downscaling, verifier re-scoring, NMS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facesortd import detect
from facesortd.config import DetectionSettings
from facesortd.detect import DetectorError, Face, FaceDetector, non_max_suppression


def test_missing_or_broken_cascade_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="does not exist"):
        FaceDetector(DetectionSettings(), [tmp_path / "none.xml"])
    (tmp_path / "bad.xml").write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(DetectorError, match="not an OpenCV cascade"):
        FaceDetector(DetectionSettings(), [tmp_path / "bad.xml"])


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    faces = [Face((0, 0, 100, 100), 0.6), Face((5, 5, 100, 100), 0.9), Face((300, 0, 50, 50), 0.5)]
    kept = non_max_suppression(faces, 0.3)
    assert [f.score for f in kept] == [0.9, 0.5]
    inner = [Face((0, 0, 200, 200), 0.9), Face((50, 50, 60, 60), 0.8)]  # small box inside a big one
    assert non_max_suppression(inner, 0.3) == [inner[0]]


class _Cascade:
    """Stands in for cv2.CascadeClassifier: reports two boxes in the (downscaled) image it gets."""

    def __init__(self) -> None:
        self.seen: tuple[int, ...] = ()
        self.min_size: object = None

    def detectMultiScale3(self, img: np.ndarray, **kw: object):
        self.seen = img.shape
        self.min_size = kw["minSize"]
        return np.array([[10, 10, 50, 50], [200, 100, 40, 40]]), np.array([20, 20]), np.array([1.5, 0.2])


class _Verifier:
    def score(self, gray: np.ndarray, boxes: list, shrunk: tuple[np.ndarray, float]) -> np.ndarray:
        assert gray.shape == (1080, 1920)  # the verifier looks at the original pixels
        assert shrunk[0].shape == (360, 640) and shrunk[1] == 1 / 3  # and detection's shrunk copy
        return np.array([0.95, 0.1])


def test_downscaled_detection_maps_boxes_back_and_verifier_rescores(monkeypatch: pytest.MonkeyPatch) -> None:
    cascade = _Cascade()
    monkeypatch.setattr(detect, "load_cascade", lambda _p: cascade)
    monkeypatch.setattr(detect, "_load_verifier", lambda _p: _Verifier())
    settings = DetectionSettings(max_side=640, verifier=Path("v.npz"), close_ups=False)
    faces = FaceDetector(settings, [Path("c.xml")]).detect(np.zeros((1080, 1920), np.uint8))
    assert cascade.seen == (360, 640)
    assert faces == [Face((30, 30, 150, 150), 0.95)]  # x3 back to full size; the 0.1 box is dropped
    plain = FaceDetector(DetectionSettings(verify=False, min_score=0.0, close_ups=False), [Path("c.xml")])
    assert [round(f.score, 2) for f in plain.detect(np.zeros((1080, 1920), np.uint8))] == [0.82, 0.55]


def test_smallest_face_searched_grows_with_the_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reaction face is the subject of its picture: in a 1080p screenshot faces under 8 % of the
    shorter side (86 px) are not searched, which saves the costliest scales of the scan."""
    cascade = _Cascade()
    monkeypatch.setattr(detect, "load_cascade", lambda _p: cascade)
    big = np.zeros((1080, 1920), np.uint8)
    FaceDetector(DetectionSettings(verify=False, close_ups=False), [Path("c.xml")]).detect(big)
    assert cascade.min_size == (29, 29)  # 0.08 * 1080 = 86 px, shrunk x1/3 for the scan
    FaceDetector(
        DetectionSettings(verify=False, close_ups=False, min_size_share=0.0), [Path("c.xml")]
    ).detect(big)
    assert cascade.min_size == (10, 10)  # min_size 30 px, shrunk x1/3
    small = np.zeros((300, 400), np.uint8)
    FaceDetector(DetectionSettings(verify=False, close_ups=False), [Path("c.xml")]).detect(small)
    assert cascade.min_size == (30, 30)  # 8 % of 300 is 24 px: min_size 30 is the larger


def test_boxes_reaching_outside_the_image_are_clipped_to_it() -> None:
    """Close-up boxes may reach past the frame; callers get the faces.json convention (the visible part)."""
    assert detect.clipped((-10, 5, 50, 50), (40, 30)) == (0, 5, 30, 35)
    assert detect.clipped((3, 4, 10, 10), (40, 30)) == (3, 4, 10, 10)
    assert detect.clipped((100, 100, 20, 20), (40, 30)) == (29, 39, 1, 1)  # never starts outside


def test_detection_never_imports_torch() -> None:
    """PyTorch is a training-only extra: the service runs CNN verifiers with numpy."""
    import subprocess
    import sys

    code = "import sys, facesortd.cli, facesortd.detect, facesortd.verify; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
