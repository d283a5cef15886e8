"""A library with a quarantine of drawn screenshots, a model that knows the drawn emotions and the
review page serving them in this process (shared by the HTTP and the browser tests of the page)."""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import MEMORY, in_memory
from synthetic import EMOTIONS, BrightBlobDetector, draw_screenshot

from facesortd import model_store
from facesortd.config import Settings, load_settings
from facesortd.emotion import EmotionModel
from facesortd.faces import FaceSpec, normalise_face
from facesortd.journal import Journal
from facesortd.learn.metrics import Evaluation
from facesortd.review_page.server import ReviewServer

SPEC = FaceSpec(size=48)


@contextmanager
def scratch_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder in memory (/dev/shm) where there is one, else ``tmp_path``.

    Every decision fsyncs the journal, the moved file and the kept face, and the paging test makes
    10,000 files: on the shared VM's disk that costs seconds which measure the disk, not the page.
    """
    if not in_memory():
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=MEMORY, prefix="facesortd-test-") as folder:
        yield Path(folder)


def review_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings over folders in ``tmp_path``; drawn faces are found by the test double, no shipped model."""
    monkeypatch.setattr(model_store, "shipped_model", lambda: None)
    monkeypatch.setattr("facesortd.learn.review.FaceDetector", BrightBlobDetector)
    monkeypatch.setattr("facesortd.review_page.cache.FaceDetector", BrightBlobDetector)
    # In the environment too, so that `facesortd` commands run by a test see the same folders.
    for key, folder in (("INBOX", "inbox"), ("LIBRARY", "lib"), ("STATE_DIR", "state")):
        monkeypatch.setenv(f"FACESORTD_{key}", str(tmp_path / folder))
    return load_settings(learning={"retrain_after_labels": 20, "min_per_class": 3})


def install_model(settings: Settings) -> EmotionModel:
    """A model of the four drawn emotions, framed as the test detector frames faces, in force."""
    model = _drawn_model()
    path = model.save(model_store.models_dir(settings) / "20260101-000000.fsm.npz")
    model_store.adopt(settings, path)
    return model


@functools.cache
def _drawn_model() -> EmotionModel:
    """Drawn and fitted once per session: the same for every test that puts it in force."""
    rng = np.random.default_rng(3)
    faces, labels = [], []
    for i in range(60):
        emotion = EMOTIONS[i % 4]
        img, _ = draw_screenshot(emotion, rng)
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        box = max(BrightBlobDetector().detect(gray), key=lambda f: f.area).box
        faces.append(normalise_face(gray, box, SPEC))
        labels.append(emotion)
    model = EmotionModel.fit(np.stack(faces), labels, SPEC, "hog")
    truth = np.array([model.labels.index(x) for x in labels])
    proba = model.predict_proba(np.stack(faces))
    model.info["held_out"] = Evaluation.of(
        model.labels, truth, proba.argmax(axis=1), proba.max(axis=1), 0.7
    ).summary()
    return model


def quarantine(
    settings: Settings, reason: str, names_emotions: list[tuple[str, str]], seed: int = 0
) -> dict[str, Path]:
    """Drawn screenshots in ``_quarantine/<reason>/``, the first named the newest; {name: path}. The
    library is as the daemon or `sort` made it, with a folder for each emotion the screenshots are
    drawn with (the classes a label may name without asking for a new one)."""
    folder = settings.library / "_quarantine" / reason
    folder.mkdir(parents=True, exist_ok=True)
    emotion_folders(settings)
    rng = np.random.default_rng(seed)
    out = {}
    for name, emotion in reversed(names_emotions):  # written last = arrived last = listed first
        path = folder / name
        assert cv2.imwrite(str(path), draw_screenshot(emotion, rng)[0])
        out[name] = path
    return out


def emotion_folders(settings: Settings) -> None:
    """The library's emotion folders as the daemon or `sort` makes them, one for each emotion the
    screenshots are drawn with: the classes a label may name without asking for a new one."""
    for emotion in EMOTIONS:
        (settings.library / emotion).mkdir(parents=True, exist_ok=True)


@contextmanager
def serving(settings: Settings) -> Iterator[ReviewServer]:
    server = ReviewServer(settings, 0)
    # shutdown() waits for the serving loop's next poll: every 0.5 s by default, a wait per test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.close()


def journal_labels(settings: Settings) -> list[str]:
    """The labels the journal holds, in the order given: what a retrain would learn from."""
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        return [label for _hash, label, *_ in journal.labels()]
    finally:
        journal.close()
