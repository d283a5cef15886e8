"""Training-set building and the grouped split that keeps measurements honest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import BrightBlobDetector, draw_face, normalised_face

from facesortd.descriptors import describe
from facesortd.faces import FaceSpec, normalise_face
from facesortd.learn.datasets import LabelledItem, labelled_images, load_items, source_group
from facesortd.learn.training import (
    CROP_FACE_SHARE,
    FaceSet,
    collect_faces,
    cross_validate,
    described,
    described_mirrors,
    emotion_fitter,
    face_in_crop,
    fit_and_validate,
    grouped_folds,
    holdout_split,
    independent_units,
    source_weights,
)


def _set(sources: list[str], groups: list[str], labels: list[str]) -> FaceSet:
    n = len(labels)
    return FaceSet(np.zeros((n, 4, 4), np.float32), labels, groups, [Path("x")] * n, sources)


def test_a_library_trains_on_its_emotion_folders_only(tmp_path: Path) -> None:
    """`train <library>`: its quarantine, hidden folders and files and other names are no labels."""
    labels = ("happy/a.png", "happy/deep/b.PNG", "sad/c.jpg")
    others = ("happy/.d.png", "happy/notes.txt", "_quarantine/unsure/e.png", ".trash/f.png")
    for name in labels + others:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert labelled_images(tmp_path) == {
        "happy": [tmp_path / "happy/a.png", tmp_path / "happy/deep/b.PNG"],
        "sad": [tmp_path / "sad/c.jpg"],
    }


def test_a_source_group_shows_stray_bytes_as_every_output_does() -> None:
    """A group is text (the journal keeps it): a name's stray byte is ``\\xNN``, as shown_names shows it."""
    assert source_group(os.fsdecode(b"Ali\xffa12.png")) == "ali\\xffa"


def test_validation_never_splits_a_repository_and_holds_out_an_ungrouped_source_whole() -> None:
    """The issue's first bug: anime_expressions' file names made one 'group' per label, so a fold
    held a whole label. A source without groups is now held out whole; a repository never splits."""
    labels = ["a" if i % 2 else "b" for i in range(300)]
    sources = ["vn"] * 100 + ["illustrations"] * 200
    groups = [f"vn:repo{i % 10}" for i in range(100)] + [f"illustrations:{i}.jpg" for i in range(200)]
    data = _set(sources, groups, labels)
    units = independent_units(data)
    folds = grouped_folds(labels, units, 4)
    assert len({folds[i] for i in range(100, 300)}) == 1  # the illustration set: one fold, whole
    for g in {f"vn:repo{i}" for i in range(10)}:
        assert len({folds[i] for i in range(100) if groups[i] == g}) == 1
    assert len({folds[i] for i in range(100)} - {folds[100]}) == 3  # repos spread over the others
    alone = _set(["illustrations"] * 200, groups[100:], labels[100:])
    assert len(set(grouped_folds(alone.labels, independent_units(alone), 4))) == 4  # one source: files


def test_source_weights_move_from_pooling_to_equal_sources() -> None:
    sources = ["big"] * 90 + ["small"] * 10
    pooled, half, equal = (source_weights(sources, p) for p in (0.0, 0.5, 1.0))
    assert np.allclose(pooled, 1.0) and np.isclose(equal[:90].sum(), equal[90:].sum())
    assert equal[:90].sum() < half[:90].sum() < pooled[:90].sum() and np.isclose(half.mean(), 1.0)


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
    faces = np.stack([normalised_face(e, FaceSpec(size=32), rng, 80) for e in labels])
    groups = [f"char{i % 20}" for i in range(100)]
    data = FaceSet(faces, labels, groups, [tmp_path / f"{i}.png" for i in range(100)], ["seed"] * 100)
    rest, held = holdout_split(data, 0.2)
    assert held is not None and 10 <= len(held.labels) <= 30 and len(rest.labels) + len(held.labels) == 100
    assert not set(rest.groups) & set(held.groups) and set(held.labels) == {"happy", "sad"}
    back = FaceSet.load(held.save(tmp_path / "held.validation.npz"))
    assert back.labels == held.labels and back.groups == held.groups and back.sources == held.sources
    assert np.array_equal(back.faces, held.faces)  # normalised faces are whole steps of 1/255
    assert holdout_split(data, 0.0) == (data, None)


def test_a_labelled_folder_is_split_the_same_wherever_it_lies(tmp_path: Path) -> None:
    """The held-out split is seeded by the groups' names: a name that carried the folder's location
    gave `train` another split on another machine or checkout (and other figures)."""
    rng = np.random.default_rng(5)
    here = tmp_path / "here" / "faces"
    for k in range(30):
        label = ["happy", "sad", "angry"][k % 3]
        (here / label).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(here / label / f"f{k}.png"), draw_face(label, 64, rng))
    there = tmp_path / "elsewhere" / "deeper" / "faces"
    shutil.copytree(here, there)

    def held_out(root: Path) -> list[str]:
        data = collect_faces(load_items(root), None, FaceSpec(size=32), "faces", "crops", "whole")
        _, held = holdout_split(data, 0.2)
        assert held is not None
        return sorted(f.relative_to(root).as_posix() for f in held.files)

    assert held_out(here) == held_out(there)
    assert {i.group for i in load_items(here)} == {
        f"{e}/f{k}.png" for k, e in enumerate(["happy", "sad", "angry"] * 10)
    }


def test_reading_on_several_threads_gives_the_same_faces_in_the_same_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    items = []
    for k in range(12):
        face = draw_face(["happy", "sad", "angry"][k % 3], 80, rng)
        if k % 5 == 4:  # too dark for the test detector: framed typically, after the others
            face = (face * 0.5).astype(np.uint8)
        cv2.imwrite(str(tmp_path / f"f{k}.png"), face)
        items.append(LabelledItem(tmp_path / f"f{k}.png", ["happy", "sad", "angry"][k % 3]))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    items.insert(5, LabelledItem(tmp_path / "broken.png", "sad"))
    spec = FaceSpec(size=32)
    one, three = (
        collect_faces(items, BrightBlobDetector(), spec, "t", "crops", "typical", workers=n) for n in (1, 3)
    )
    assert len(one.labels) == 12 and one.skipped == three.skipped == {("sad", "unreadable"): 1}
    assert one.files == three.files and one.labels == three.labels
    assert np.array_equal(one.faces, three.faces)


class _Recording(BrightBlobDetector):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, ...]] = []

    def detect(self, gray: np.ndarray, padded: bool = False) -> list:
        self.seen.append(gray.shape)
        return super().detect(gray, padded)


def test_a_big_crop_is_scanned_where_its_smallest_possible_face_is_the_detectors_smallest() -> None:
    """Scales finer than that could only find faces too small to be the crop's own; the box found
    on the shrunk copy comes back in the crop's own pixels."""
    crop = np.full((300, 300), 30, np.uint8)
    crop[75:225, 75:225] = draw_face("happy", 150, np.random.default_rng(2))
    detector = _Recording()
    face = face_in_crop(crop, detector)
    side = round(450 * detector.settings.min_size / (CROP_FACE_SHARE * 300))
    assert detector.seen == [(side, side)]
    at_full_size = BrightBlobDetector().detect(crop)[0].box
    assert face is not None and np.abs(np.subtract(face.box, at_full_size)).max() <= 300 / side + 1


def _three_emotions(seed: int, noise: float = 0.0) -> FaceSet:
    """36 drawn 32-px faces of three emotions in nine groups of one source (``noise``: with a
    Gaussian noise of that deviation, so that the folds disagree)."""
    rng = np.random.default_rng(seed)
    labels = [e for e in ("happy", "sad", "angry") for _ in range(12)]
    faces = np.stack([normalised_face(e, FaceSpec(size=32), rng, 80) for e in labels])
    if noise:
        faces = np.clip(faces + rng.normal(0, noise, faces.shape), 0, 1).astype(np.float32)
    return FaceSet(faces, labels, [f"g{i % 9}" for i in range(36)], [Path("f")] * 36, ["s"] * 36)


def test_describing_and_cross_validating_on_several_threads_gives_the_same_figures() -> None:
    data = _three_emotions(7, noise=0.3)
    faces = data.faces
    one = described(faces, ["hog", "lbp"], workers=1)
    assert all(np.array_equal(one[d], describe(faces, d)) for d in ("hog", "lbp"))
    three = described(faces, ["hog", "lbp"], workers=3)
    assert all(np.array_equal(one[d], three[d]) for d in ("hog", "lbp"))
    data.features = three
    fit = emotion_fitter(FaceSpec(size=32), ["hog", "lbp"], 20)
    alone, _ = cross_validate(data, fit, 3, workers=1)
    side_by_side, _ = cross_validate(data, fit, 3, workers=3)
    assert np.array_equal(alone.proba, side_by_side.proba) and len(set(alone.proba.argmax(1))) > 1


def test_the_model_fitted_beside_its_folds_is_the_one_fitted_after_them() -> None:
    data = _three_emotions(8)
    faces = data.faces
    fit = emotion_fitter(FaceSpec(size=32), ["hog", "lbp"], 20)
    model, predictions = fit_and_validate(data, fit, 3, workers=2)
    alone, calibration = cross_validate(data, fit, 3)
    after = fit(data)
    calibration.apply(after)
    assert np.array_equal(predictions.proba, alone.proba)
    assert np.array_equal(model.predict_proba(faces), after.predict_proba(faces))


def test_a_screenshot_with_several_labelled_faces_is_searched_once(tmp_path: Path) -> None:
    img = np.full((200, 420), 40, np.uint8)
    img[50:150, 20:120] = draw_face("sad", 100, np.random.default_rng(1))
    img[50:150, 260:360] = draw_face("happy", 100, np.random.default_rng(2))
    cv2.imwrite(str(tmp_path / "two.png"), img)
    items = [
        LabelledItem(tmp_path / "two.png", "sad", (18, 48, 104, 104)),
        LabelledItem(tmp_path / "two.png", "happy", (258, 48, 104, 104)),
    ]
    detector = _Recording()
    both = collect_faces(items, detector, FaceSpec(size=32), "t", workers=1)
    assert len(detector.seen) == 1 and both.labels == ["sad", "happy"]
    for k, item in enumerate(items):
        assert np.array_equal(
            both.faces[k], collect_faces([item], BrightBlobDetector(), FaceSpec(size=32), "t").faces[0]
        )


def test_fits_from_described_features_need_no_images_and_give_the_same_model() -> None:
    """`train` cross-validates a set without its images (each fold's part would copy them): the
    same figures and model; a fit that would need the images refuses such a set."""
    data = _three_emotions(9)
    faces = data.faces
    data.features = described(faces, ["hog", "lbp"])
    fit = emotion_fitter(FaceSpec(size=32), ["hog", "lbp"], 20, mirror=True)
    with pytest.raises(ValueError, match="without images"):  # the mirrors' features are missing
        fit(data.features_only())
    data.features |= described_mirrors(faces, ["hog", "lbp"])
    lean = data.features_only()
    assert lean.subset(np.arange(30)).faces.nbytes == 0 and data.faces.nbytes > 0
    model, predictions = fit_and_validate(data, fit, 3, workers=2)
    lean_model, lean_predictions = fit_and_validate(lean, fit, 3, workers=2)
    assert np.array_equal(predictions.proba, lean_predictions.proba)
    assert np.array_equal(model.predict_proba(faces), lean_model.predict_proba(faces))
    with pytest.raises(ValueError, match="without images"):
        emotion_fitter(FaceSpec(size=32), ["pixels"], 20)(lean)
