"""Shared fixtures: where ../shared is (or a clean skip), synthetic faces and datasets."""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import EMOTIONS, draw_face

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` next to the checkout; tests using it skip cleanly on a user's machine."""
    if not (SHARED / "data").is_dir():
        pytest.skip("../shared is not present (only CI and developers have it)")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_xdg(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the developer's real config or write to their real state/picture folders."""
    home = tmp_path_factory.mktemp("home")
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_PICTURES_DIR", "Pictures"),
    ):
        monkeypatch.setenv(var, str(home / sub))
    for var in [v for v in list(__import__("os").environ) if v.startswith("FACESORTD_")]:
        monkeypatch.delenv(var)


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
