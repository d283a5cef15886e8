"""A labelled file's face, kept in the state folder and read back for a retrain, is the face a model
sees when it sorts the screenshot."""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import BrightBlobDetector, draw_face, draw_screenshot, screenshot_png
from waiting import HUNG_S, wait_until

from facesortd import config
from facesortd.config import Settings
from facesortd.content import file_hash
from facesortd.faces import FaceSpec, crop_face, cut_face_crop, normalise_face
from facesortd.images import to_gray
from facesortd.journal import Journal
from facesortd.learn import kept_faces
from facesortd.learn.review import Reviewer

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


def test_a_refused_recording_leaves_the_crop_another_label_of_the_picture_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes recording a label of the same picture at once (the review page's key press and
    the daemon's label scan, or two pages), one refused (its journal full, or locked by the other):
    the refused one removed the crop it had found missing as it began, which the other had kept
    meanwhile and recorded its label with; the retrain found that label's face gone. Each records
    under the move lock now, so the second begins once the first is done."""
    settings = config.load_settings(
        inbox=tmp_path / "inbox", library=tmp_path / "lib", state_dir=tmp_path / "state"
    )
    monkeypatch.setattr("facesortd.learn.review.FaceDetector", BrightBlobDetector)
    picture = settings.library / "happy" / "a.png"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(screenshot_png(1))
    digest = file_hash(picture)
    refused, recorded = Journal.for_state_dir(settings.state_dir), Journal.for_state_dir(settings.state_dir)
    inside, go, waits, failed = threading.Event(), threading.Event(), threading.Event(), []

    def full(*args: object, **kwargs: object) -> None:
        inside.set()
        assert go.wait(HUNG_S)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(refused, "add_label", full)
    real_flock = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        if threading.current_thread() is second and operation == fcntl.LOCK_EX:
            waits.set()  # about to wait for the first's lock
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)

    def first_records() -> None:
        with contextlib.suppress(sqlite3.OperationalError):
            Reviewer(settings, refused).record(picture, digest, "happy")
            failed.append("recorded despite the full journal")

    first = threading.Thread(target=first_records)
    second = threading.Thread(target=lambda: Reviewer(settings, recorded).record(picture, digest, "happy"))
    first.start()
    wait_until(inside.is_set)  # the first has looked for the crop, made it, and is recording
    second.start()
    wait_until(lambda: waits.is_set() or not second.is_alive())
    go.set()
    first.join(HUNG_S)
    second.join(HUNG_S)
    assert not failed and not first.is_alive() and not second.is_alive()
    assert recorded.label_for_hash(digest) is not None
    assert (kept_faces.faces_dir(settings) / f"{digest}.png").is_file()  # the recorded label's face
    refused.close()
    recorded.close()
