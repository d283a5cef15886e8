"""Training-set building and the grouped split that keeps measurements honest."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from synthetic import BrightBlobDetector, draw_face

from facesortd.datasets import LabelledItem
from facesortd.faces import FaceSpec, normalise_face
from facesortd.training import FaceSet, collect_faces, grouped_folds, holdout_split


def test_grouped_folds_keep_characters_together_and_split_naming_schemes() -> None:
    groups = [f"char{i % 10}" for i in range(100)] + ["happy_train"] * 100
    labels = ["a" if i % 2 else "b" for i in range(200)]
    folds = grouped_folds(labels, groups, 5)
    for g in {f"char{i}" for i in range(10)}:
        assert len({folds[i] for i in range(200) if groups[i] == g}) == 1
    assert len({folds[i] for i in range(100, 200)}) == 5  # 100 files of one "group": spread out
    assert max(np.bincount(folds)) - min(np.bincount(folds)) <= 20


def test_typical_framing_recovers_crops_the_detector_missed(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    items = []
    for k in range(6):
        face = draw_face("happy", 80, rng)
        if k >= 4:  # too dark for the test detector: "missed"
            face = (face * 0.5).astype(np.uint8)
        cv2.imwrite(str(tmp_path / f"f{k}.png"), face)
        items.append(LabelledItem(tmp_path / f"f{k}.png", "happy"))
    spec = FaceSpec(size=32)
    dropped = collect_faces(items, BrightBlobDetector(), spec, "t", "crops", "drop")
    assert len(dropped.labels) == 4 and dropped.skipped[("happy", "no face found")] == 2
    typical = collect_faces(items, BrightBlobDetector(), spec, "t", "crops", "typical")
    assert len(typical.labels) == 6 and not typical.skipped


def test_known_box_is_replaced_by_the_matching_detection(tmp_path: Path) -> None:
    img = np.full((200, 300), 40, np.uint8)
    img[50:150, 100:200] = draw_face("sad", 100, np.random.default_rng(1))
    cv2.imwrite(str(tmp_path / "s.png"), img)
    spec = FaceSpec(size=32)
    item = LabelledItem(tmp_path / "s.png", "sad", (98, 48, 104, 104))
    got = collect_faces([item], BrightBlobDetector(), spec, "t")
    detected = BrightBlobDetector().detect(img)[0].box

    assert np.allclose(got.faces[0], normalise_face(img, detected, spec))


def test_holdout_split_keeps_characters_whole_and_a_saved_set_reads_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    labels = ["happy", "sad"] * 50
    faces = np.stack(
        [normalise_face(draw_face(e, 80, rng), (0, 0, 80, 80), FaceSpec(size=32)) for e in labels]
    )
    groups = [f"char{i % 20}" for i in range(100)]
    data = FaceSet(faces, labels, groups, [tmp_path / f"{i}.png" for i in range(100)], ["seed"] * 100)
    rest, held = holdout_split(data, 0.2)
    assert held is not None and 10 <= len(held.labels) <= 30 and len(rest.labels) + len(held.labels) == 100
    assert not set(rest.groups) & set(held.groups) and set(held.labels) == {"happy", "sad"}
    back = FaceSet.load(held.save(tmp_path / "held.validation.npz"))
    assert back.labels == held.labels and back.groups == held.groups and back.sources == held.sources
    assert np.array_equal(back.faces, held.faces)  # normalised faces are whole steps of 1/255
    assert holdout_split(data, 0.0) == (data, None)
