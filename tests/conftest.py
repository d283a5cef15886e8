"""Shared fixtures: where ../shared is (or a clean skip), synthetic faces and datasets."""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import copy
import functools
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import EMOTIONS, BrightBlobDetector, draw_face

from facesortd import ensemble
from facesortd.emotion import read_model_file
from facesortd.model_store import shipped_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MEMORY = Path("/dev/shm")


MEMORY_ROOM = 2 << 30
"""Free bytes ``/dev/shm`` needs to take the tests' folders: a run writes some 300 MB there, and a
container's ``/dev/shm`` is often 64 MB, where the tests would fail as on a full disk."""


def in_memory() -> bool:
    """Whether this machine has a folder in memory (``/dev/shm``) the tests may write to, with room."""
    if not (MEMORY.is_dir() and os.access(MEMORY, os.W_OK)):
        return False
    st = os.statvfs(MEMORY)
    return st.f_bavail * st.f_frsize >= MEMORY_ROOM


def pytest_configure(config: pytest.Config) -> None:
    """Every test's ``tmp_path`` in memory where there is one (unless ``--basetemp`` or
    ``PYTEST_DEBUG_TEMPROOT`` says where): each move, label, undo and journal write is fsynced, and
    on the shared VM's disk those waits measured the disk and whatever else wrote to it, not
    facesortd. The files, names and folders are the same in memory; a test that needs another
    filesystem beside the temporary folder (test_crash_safety) still has one, ``/tmp``."""
    if config.option.basetemp is None and "PYTEST_DEBUG_TEMPROOT" not in os.environ and in_memory():
        os.environ["PYTEST_DEBUG_TEMPROOT"] = str(MEMORY)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` next to the checkout; tests using it skip cleanly on a user's machine."""
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not present (only CI and developers have it)")
    return SHARED


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """Config, state and pictures under ``home``, no FACESORTD_* from the developer's shell."""
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_PICTURES_DIR", "Pictures"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    for var in [v for v in list(__import__("os").environ) if v.startswith("FACESORTD_")]:
        monkeypatch.delenv(var)


@pytest.fixture(autouse=True)
def _isolated_xdg(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the developer's real config or write to their real state/picture folders."""
    isolate(monkeypatch, tmp_path_factory.mktemp("home"))


@pytest.fixture(autouse=True)
def _quick_daemon_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon under test notices what fell due (a rescan, a learning look, a dead watcher) within
    0.1 s rather than 1 s: the tests wait on those conditions, and the intervals are their own."""
    monkeypatch.setattr("facesortd.service.TICK_S", 0.1)


@pytest.fixture(autouse=True)
def _default_config_advice() -> None:
    """cli.main remembers its --config for the commands messages advise; a test that calls the
    library directly, after one that ran main with --config, must not inherit it."""
    from facesortd.advice import advise_with

    advise_with(None)


def _lib_dirs_asked_once() -> None:
    """loguru works out the standard library's folders (sysconfig, path by path and scheme by scheme)
    for every sink added, to tell its frames in a traceback: every test adds one (below) and every
    cli.main it calls another, thousands a run, and those folders do not change within it. Asked
    once. A private name of loguru's: should a release rename it, the suite is slower, not broken."""
    try:
        from loguru._better_exceptions import ExceptionFormatter
    except ImportError:
        return
    lib_dirs = getattr(ExceptionFormatter, "_get_lib_dirs", None)
    if callable(lib_dirs):
        ExceptionFormatter._get_lib_dirs = staticmethod(functools.cache(lib_dirs))


_lib_dirs_asked_once()


SHIPPED_MODEL = shipped_model()


@functools.cache
def _shipped_model_file(
    path: Path, version: tuple[int, int, int], readable: tuple[int, ...]
) -> tuple[dict[str, Any], dict[str, np.ndarray], bytes]:
    chunks: list[bytes] = []
    meta, arrays = read_model_file(path, readable, seen=chunks.append)
    return meta, arrays, b"".join(chunks)


@pytest.fixture(autouse=True)
def _shipped_model_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every sort, daemon start and model command a test runs loads the model in force, the shipped
    one unless the test trained another: hundreds of times a run, each decompressing the same
    megabytes. Its file is read once per worker (and again should it change: inode, time, size) and
    each load gets a copy of what it holds, so no test shares an array with another; every other
    model file is read as ever."""
    real = ensemble.read_model_file

    def read(path: Path, readable: tuple[int, ...], with_arrays: bool = True, seen: Any = None) -> Any:
        if SHIPPED_MODEL is None or not with_arrays or Path(path) != SHIPPED_MODEL:
            return real(path, readable, with_arrays, seen)
        st = os.stat(path)
        meta, arrays, content = _shipped_model_file(
            SHIPPED_MODEL, (st.st_ino, st.st_mtime_ns, st.st_size), readable
        )
        if seen is not None:  # the bytes a caller hashes to know which model it loaded
            seen(content)
        return copy.deepcopy(meta), {name: array.copy() for name, array in arrays.items()}

    monkeypatch.setattr(ensemble, "read_model_file", read)


@pytest.fixture(autouse=True)
def _fresh_log_sink() -> None:
    """cli.main points loguru at the stderr of the test that called it; give every test its own."""
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="INFO")


def write_crop_dataset(root: Path, per_class: int, size: int = 80, seed: int = 0) -> Path:
    """``root/<emotion>/<group>_<k>.png`` synthetic face crops; 'groups' mimic characters."""
    rng = np.random.default_rng(seed)
    for emotion in EMOTIONS:
        (root / emotion).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            cv2.imwrite(
                str(root / emotion / f"char{'abcdefg'[k % 7]}_{k}.png"), draw_face(emotion, size, rng)
            )
    return root


@pytest.fixture
def crop_dataset(tmp_path: Path) -> Path:
    return write_crop_dataset(tmp_path / "crops", per_class=30)


def use_fake_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    monkeypatch.setattr("facesortd.doctor.FaceDetector", BrightBlobDetector)


@pytest.fixture
def fake_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detection by the synthetic-face test double (the real cascade is tested elsewhere)."""
    use_fake_detector(monkeypatch)


TINY_WINDOW = (20, 20)


@pytest.fixture(scope="session")
def tiny_cascade(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (weak) OpenCV cascade trained by facesortd's own trainer on drawn faces, in seconds.

    For tests that run the daemon as a subprocess, which needs a cascade file to start; what it
    detects does not matter there. Its window is smaller than the shipped one: half the LBP
    features, so half the training time, and it still proposes a drawn face.
    """
    from synthetic import draw_screenshot

    from facesortd.cascade_train.samples import BoxedImage
    from facesortd.cascade_train.trainer import TrainParams, train_cascade

    rng = np.random.default_rng(0)
    faces = [
        cv2.resize(draw_face(EMOTIONS[i % 4], 96, rng), TINY_WINDOW, interpolation=cv2.INTER_AREA)
        for i in range(200)
    ]
    backgrounds = []
    for i in range(20):
        img, box = draw_screenshot(EMOTIONS[i % 4], rng)
        backgrounds.append(BoxedImage(f"bg{i}", cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (box,)))
    out = tmp_path_factory.mktemp("cascade") / "tiny.xml"
    train_cascade(
        np.stack(faces),
        backgrounds,
        TrainParams(window=TINY_WINDOW, stages=2, num_pos=200, num_neg=300, max_trees=5),
        out,
    )
    return out


@pytest.fixture
def daemon_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Folders for a daemon under test: quick settling, no periodic rescans, no wait on unreadable
    files (the tests that need those set them)."""
    from facesortd.config import load_settings

    return load_settings(
        inbox=tmp_path / "inbox",
        library=tmp_path / "lib",
        state_dir=tmp_path / "state",
        watch={"settle_s": 0.2, "rescan_interval_s": 0, "unreadable_settle_s": 0},
    )


@pytest.fixture
def cli_settings(daemon_settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The daemon's folders, which the CLI sees too (its inbox made), and the drawn faces' detector."""
    for key in ("inbox", "library", "state_dir"):
        monkeypatch.setenv(f"FACESORTD_{key.upper()}", str(getattr(daemon_settings, key)))
    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    daemon_settings.inbox.mkdir(parents=True)
    return daemon_settings
