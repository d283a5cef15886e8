"""Scenes composed from a vn_faces-like folder: true boxes where the faces were pasted, face-free
scenes empty, only the chosen repositories used, folds that never split a repository."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import EMOTIONS, draw_face

from facesortd.cascade_train.scenes import (
    VN_FACE_FRAME,
    Composites,
    SceneMaker,
    Sources,
    below_face,
    jittered,
)
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


def test_composites_keep_the_face_at_the_middle_half_over_new_backgrounds(vn_faces: Path) -> None:
    sources = Sources.load(vn_faces)
    grey = Composites(sources, ["b/two"], seed=3).grey_crops(2)
    assert len(grey) == 2 * 2 * 2  # 2 groups x 2 crops, each composited twice
    x, y, w, h = (round(v * 192) for v in VN_FACE_FRAME)
    for first, second in zip(grey[0::2], grey[1::2], strict=True):
        assert first.shape == (192, 192)
        assert np.array_equal(first[y : y + h, x : x + w], second[y : y + h, x : x + w])  # the opaque face
        assert not np.array_equal(first[:40], second[:40])  # what shows around the character differs


def test_train_detector_takes_vn_faces_without_the_left_out_fold(vn_faces: Path) -> None:
    """Positives from the kept repositories' crops, negatives from their scenes and backgrounds;
    --leave-out-fold K keeps fold K's crops and backgrounds out (what the bench judges it on)."""
    import argparse

    from facesortd.cascade_train.command import add_arguments, vn_faces_data
    from facesortd.cascade_train.trainer import TrainingError

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--out", "x.xml", "--vn-faces", str(vn_faces), "--folds", "2", "--vn-composites", "1"]
    base += ["--vn-scenes", "2", "--mining-sizes", "320"]
    folds = Sources.load(vn_faces).folds(2)
    for k, fold in enumerate(folds):
        crops, negatives = vn_faces_data(parser.parse_args([*base, "--leave-out-fold", str(k)]))
        kept = [r for r in [*REPOS, "e/backgrounds-only"] if r not in fold]
        assert len(crops) == sum(2 * REPOS.get(r, 0) for r in kept)
        backgrounds = sum(r in ("a/one", "e/backgrounds-only") for r in kept)
        assert len(negatives) == 2 * len(kept) + backgrounds
        assert all(max(n.gray.shape) == 320 for n in negatives)
    crops, _ = vn_faces_data(parser.parse_args(base))
    assert len(crops) == 2 * sum(REPOS.values())
    with pytest.raises(TrainingError, match="only 2 folds"):
        vn_faces_data(parser.parse_args([*base, "--leave-out-fold", "2"]))
