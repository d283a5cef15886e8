"""Decisions: the multi-face policies, thresholds, and bad files going to 'unreadable'."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facesortd.config import ImageLimits, RecognitionSettings
from facesortd.decide import FaceResult, Pipeline, choose
from facesortd.detect import Face

BIG = FaceResult((0, 0, 200, 200), 0.9, "happy", 0.9)
SMALL_SURE = FaceResult((300, 0, 60, 60), 0.9, "sad", 0.95)
SMALL_UNSURE = FaceResult((300, 0, 60, 60), 0.9, "sad", 0.3)


def test_no_faces_is_no_face() -> None:
    d = choose([], 0.6, "largest")
    assert (d.action, d.reason) == ("quarantined", "no-face")


def test_largest_face_decides() -> None:
    d = choose([SMALL_SURE, BIG], 0.6, "largest")
    assert (d.action, d.emotion, d.confidence) == ("sorted", "happy", 0.9)
    d = choose([FaceResult(BIG.box, 0.9, "happy", 0.5), SMALL_SURE], 0.6, "largest")
    assert (d.action, d.reason, d.emotion) == ("quarantined", "unsure", "happy")


def test_agree_policy_quarantines_disagreement() -> None:
    d = choose([BIG, SMALL_SURE], 0.6, "agree")
    assert (d.action, d.reason) == ("quarantined", "mixed") and "happy" in d.detail
    d = choose([BIG, SMALL_UNSURE], 0.6, "agree")
    assert (d.action, d.emotion) == ("sorted", "happy")


def test_faces_without_a_model_are_unsure() -> None:
    d = choose([FaceResult((0, 0, 50, 50), 0.9, None, None)], 0.6, "largest")
    assert (d.action, d.reason) == ("quarantined", "unsure")


class _OneFace:
    def detect(self, gray: np.ndarray) -> list[Face]:
        return [Face((0, 0, gray.shape[1], gray.shape[0]), 0.8)]


def test_pipeline_sends_bad_files_to_unreadable(tmp_path: Path) -> None:
    pipe = Pipeline(_OneFace(), None, RecognitionSettings(), ImageLimits())  # type: ignore[arg-type]
    (tmp_path / "text.png").write_text("not an image")
    d = pipe.decide(tmp_path / "text.png")
    assert (d.action, d.reason) == ("quarantined", "unreadable") and "decode" in d.detail
    cv2.imwrite(str(tmp_path / "ok.png"), np.zeros((20, 20, 3), np.uint8))
    d = pipe.decide(tmp_path / "ok.png")
    assert d.reason == "unsure" and len(d.faces) == 1 and {"decode", "detect"} <= d.timings_ms.keys()
