"""Scenes composed from a vn_faces-like folder: true boxes where the faces were pasted, face-free
scenes empty, only the chosen repositories used, folds that never split a repository."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import EMOTIONS, draw_face

from facesortd.cascade_train.scenes import SceneMaker, Sources, below_face, jittered
from facesortd.detect import iou

REPOS = {"a/one": 6, "b/two": 2, "c/three": 3, "d/four": 1}
"""Repository -> character groups in the fake vn_faces."""


@pytest.fixture(scope="module")
def vn_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Drawn faces as RGBA crops (face box = middle half, transparent around the character)."""
    root = tmp_path_factory.mktemp("vn_faces")
    rng = np.random.default_rng(0)
    index: dict = {"groups": {}, "backgrounds": {}}
    for repo, groups in REPOS.items():
        for g in range(groups):
            name = f"{repo.replace('/', '__')}__{g}"
            (root / "faces" / name).mkdir(parents=True)
            files = {}
            for k in range(2):
                crop = np.zeros((192, 192, 4), np.uint8)
                crop[48:144, 48:144, :3] = cv2.cvtColor(draw_face(EMOTIONS[k], 96, rng), cv2.COLOR_GRAY2BGR)
                crop[48:190, 40:152, 3] = 255  # the character: face and body below it
                cv2.imwrite(str(root / "faces" / name / f"e{k}.webp"), crop, [cv2.IMWRITE_WEBP_QUALITY, 101])
                files[f"e{k}"] = {"emotion": EMOTIONS[k]}
            index["groups"][name] = {"repo": repo, "files": files}
    (root / "backgrounds").mkdir()
    for repo in ("a/one", "e/backgrounds-only"):
        name = f"{repo.replace('/', '_')}.jpg"
        cv2.imwrite(str(root / "backgrounds" / name), rng.integers(0, 256, (300, 500, 3), dtype=np.uint8))
        index["backgrounds"][name] = {"repo": repo}
    (root / "index.json").write_text(json.dumps(index))
    return root


def test_folds_split_by_repository_and_balance_faces(vn_faces: Path) -> None:
    sources = Sources.load(vn_faces)
    folds = sources.folds(2)
    assert sorted(r for f in folds for r in f) == sorted([*REPOS, "e/backgrounds-only"])
    assert folds == Sources.load(vn_faces).folds(2)  # deterministic
    assert ["a/one"] in [[r for r in f if r in REPOS and REPOS[r] > 3] for f in folds]
    assert all(f for f in folds)


def test_scenes_hold_faces_where_the_boxes_say(vn_faces: Path) -> None:
    sources = Sources.load(vn_faces)
    maker = SceneMaker(sources, ["b/two", "c/three"], seed=3, size=(640, 360))
    scenes = maker.scenes(30, "t")
    assert sum(len(s.boxes) for s in scenes) >= 30
    for s in scenes:
        assert s.image.shape == (360, 640, 3)
        assert s.repos <= {"b/two", "c/three"}  # never another source's crops or backgrounds
        for x, y, w, h in s.boxes:
            assert x >= 0 and y >= 0 and x + w <= 640 and y + h <= 360 and min(w, h) > 0
            # a drawn face is bright skin with dark features: its box is not the flat background
            assert s.image[y : y + h, x : x + w].std() > 20
        for i, a in enumerate(s.boxes):
            assert all(iou(a, b) == 0 for b in s.boxes[i + 1 :])  # no character hides another's face
    free = maker.scene("free", face_free=True)
    assert free.boxes == []


def test_hard_negatives_and_jitter_stay_near_the_face() -> None:
    rng = np.random.default_rng(1)
    face = (100, 100, 80, 80)
    for _ in range(50):
        assert iou(below_face(face, rng), face) < 0.25  # on the neck or chest, not the face
        assert iou(jittered(face, rng), face) > 0.6


def test_verifier_samples_label_the_cascades_proposals_by_the_true_boxes() -> None:
    """Proposals on a face are positives, far from it negatives, half-on ones left out; every face
    adds jittered positives and negatives on the body below it."""
    from facesortd.cascade_train.cnn_verifier import Samples, _boxed
    from facesortd.detect import Face

    face = (100, 100, 80, 80)

    class Proposals:
        def detect(self, gray: np.ndarray) -> list[Face]:
            return [Face((102, 98, 80, 80), 0.9), Face((400, 50, 80, 80), 0.8), Face((140, 100, 80, 80), 0.7)]

    samples = Samples([], [], [], [])
    gray = np.random.default_rng(0).integers(0, 256, (360, 640), dtype=np.uint8)
    _boxed(samples, gray, [face], "repo", Proposals(), np.random.default_rng(1))  # type: ignore[arg-type]
    crops, labels, groups, proposal = samples.arrays()
    assert list(labels[proposal]) == [1, 0]  # the half-on box (IoU 0.33) teaches nothing clear
    assert (labels[~proposal] == 1).sum() == 3 and (labels[~proposal] == 0).sum() >= 2
    assert set(groups) == {"repo"} and crops.shape[1:] == (32, 32)
