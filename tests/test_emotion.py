"""The Fisherface model: learns real differences, agrees with OpenCV's, is calibrated, stores safely."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import EMOTIONS, draw_face, normalised_face

from facesortd.descriptors import describe
from facesortd.emotion import ClassStats, EmotionModel, ModelError, fit_temperature, softmax
from facesortd.faces import FaceSpec, mirror_faces, normalise_face
from facesortd.learn.metrics import expected_calibration_error

SPEC = FaceSpec(size=48)


def _faces(n_per: int, seed: int, noise: float = 0.0) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    faces, labels = [], []
    for e in EMOTIONS:
        for _ in range(n_per):
            img = draw_face(e, 90, rng).astype(np.float32)
            img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
            faces.append(normalise_face(img, (0, 0, 90, 90), SPEC))
            labels.append(e)
    return np.stack(faces), labels


@pytest.mark.parametrize("descriptor", ["pixels", "hog", "lbp", "hog+lbp"])
def test_learns_synthetic_emotions(descriptor: str) -> None:
    x, y = _faces(25, seed=1)
    model = EmotionModel.fit(x, y, SPEC, descriptor)
    xt, yt = _faces(10, seed=2)
    predicted = [e for e, _ in model.predict(xt)]
    assert np.mean(np.array(predicted) == np.array(yt)) >= 0.95
    assert model.labels == sorted(EMOTIONS)


def test_agrees_with_opencv_fisherfaces() -> None:
    """Same method as cv2.face.FisherFaceRecognizer: on a small set both give the same answers."""
    x, y = _faces(12, seed=3, noise=25)
    xt, _ = _faces(8, seed=4, noise=25)
    ours = [e for e, _ in EmotionModel.fit(x, y, SPEC, "pixels", pca_components=10_000).predict(xt)]
    cv = cv2.face.FisherFaceRecognizer_create()
    names = sorted(set(y))
    cv.train([(f * 255).astype(np.uint8) for f in x], np.array([names.index(v) for v in y]))
    theirs = [names[cv.predict((f * 255).astype(np.uint8))[0]] for f in xt]
    assert np.mean(np.array(ours) == np.array(theirs)) >= 0.9


def test_temperature_calibrates_overconfident_scores() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 2000)
    logits = rng.normal(0, 1, (2000, 3))
    logits[np.arange(2000), truth] += 1.0  # right ~60 % of the time
    logits *= 8  # ...but raw softmax claims ~100 %
    raw = softmax(logits)
    t = fit_temperature(logits, truth)
    cal = softmax(logits / t)
    ece_raw = expected_calibration_error(raw.argmax(1) == truth, raw.max(1))
    ece_cal = expected_calibration_error(cal.argmax(1) == truth, cal.max(1))
    assert t > 2 and ece_cal < 0.05 < ece_raw


def test_save_load_roundtrip_and_clear_errors(tmp_path: Path) -> None:
    x, y = _faces(10, seed=5)
    model = EmotionModel.fit(x, y, SPEC, "hog")
    model.temperature = 0.7
    path = model.save(tmp_path / "m.fsm.npz")
    loaded = EmotionModel.load(path)
    assert loaded.labels == model.labels and loaded.spec == SPEC and loaded.descriptor == "hog"
    assert np.allclose(loaded.predict_proba(x), model.predict_proba(x))
    assert loaded.info["counts"] == {e: 10 for e in EMOTIONS}

    with pytest.raises(ModelError, match="does not exist"):
        EmotionModel.load(tmp_path / "none.fsm.npz")
    os.mkfifo(tmp_path / "fifo.fsm.npz")  # np.load would wait for a writer for ever
    with pytest.raises(ModelError, match="is not a regular file"):
        EmotionModel.load(tmp_path / "fifo.fsm.npz")
    (tmp_path / "bad.fsm.npz").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="corrupt"):
        EmotionModel.load(tmp_path / "bad.fsm.npz")
    with np.load(path) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays["meta"]))
    meta["format_version"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "future.fsm.npz", **arrays)
    with pytest.raises(ModelError, match="format version 99"):
        EmotionModel.load(tmp_path / "future.fsm.npz")

    # A version 1 file (one scatter matrix per class; models saved before 2026-11-27) still loads
    # and predicts the same: only the pooled sum of those matrices matters.
    pooled = arrays["class_scatter"]
    arrays["class_scatter"] = np.stack([pooled * 0.25, pooled * 0.75, *[np.zeros_like(pooled)] * 2])
    meta["format_version"] = 1
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "v1.fsm.npz", **arrays)
    assert np.allclose(EmotionModel.load(tmp_path / "v1.fsm.npz").predict_proba(x), model.predict_proba(x))


def test_update_equals_training_on_both_sets_in_the_same_basis() -> None:
    from facesortd.descriptors import describe
    from facesortd.emotion import ClassStats

    xa, ya = _faces(10, seed=6)
    xb, yb = _faces(5, seed=7)
    base = EmotionModel.fit(xa, ya, SPEC, "hog")
    updated = base.updated(xb, yb, weight=3.0)
    x = np.concatenate([xa, xb])
    y = np.array([updated.labels.index(v) for v in ya + yb])
    w = np.r_[np.ones(len(ya)), np.full(len(yb), 3.0)]
    z = (describe(x, "hog").astype(np.float64) - base.mean) @ base.pca
    direct = EmotionModel(updated.labels, SPEC, "hog", base.mean, base.pca, ClassStats.of(z, y, w, 4))
    assert np.allclose(updated.logits(xb), direct.logits(xb), rtol=1e-4, atol=1e-3)
    assert updated.info["counts"] == {e: 15 for e in EMOTIONS}


def test_a_mirrored_fit_learns_each_face_both_ways_and_updates_a_persons_labels_alike(tmp_path: Path) -> None:
    """`train`'s default: the mirrors are training faces (same label, same weight) without being
    counted as faces, and a person's labels added later are mirrored too, so they weigh what the
    faces the model was fitted on weigh. A ``cnn`` model's net sees both ways already."""
    xa, ya = _faces(10, seed=6)
    xb, yb = _faces(5, seed=7)
    w = np.linspace(0.5, 2.0, len(ya))
    model = EmotionModel.fit(xa, ya, SPEC, "hog", weights=w, mirror=True)
    rows = describe(np.concatenate([xa, mirror_faces(xa)]), "hog").astype(np.float64)
    assert np.allclose(model.mean, np.r_[w, w] @ rows / (2 * w.sum()), atol=1e-6)
    z = (rows - model.mean) @ model.pca
    y = np.array([model.labels.index(v) for v in ya + ya])
    both = ClassStats.of(z, y, np.r_[w, w], 4)
    assert np.allclose(model.stats.mean, both.mean) and np.allclose(model.stats.scatter, both.scatter)
    assert np.allclose(model.stats.weight, both.weight)
    assert model.info["mirrored"] and model.info["counts"] == {e: 10 for e in EMOTIONS}
    assert not np.allclose(model.projection, EmotionModel.fit(xa, ya, SPEC, "hog", weights=w).projection)

    updated = EmotionModel.load(model.save(tmp_path / "m.fsm.npz")).updated(xb, yb, 3.0)
    x = np.concatenate([xb, mirror_faces(xb)])
    y = np.array([updated.labels.index(v) for v in yb + yb])
    z = (describe(x, "hog").astype(np.float64) - model.mean) @ model.pca
    added = ClassStats.of(z, y, np.full(len(y), 3.0), 4)
    direct = EmotionModel(updated.labels, SPEC, "hog", model.mean, model.pca, model.stats.merged(added))
    assert np.allclose(updated.logits(xb), direct.logits(xb), rtol=1e-4, atol=1e-3)
    assert updated.info["counts"] == {e: 15 for e in EMOTIONS} and updated.info["mirrored"]
    assert "mirrored" not in EmotionModel.fit(xa, ya, SPEC, "cnn", mirror=True).info


def test_update_adds_a_new_emotion() -> None:
    three = [e for e in EMOTIONS if e != "surprised"]
    x, y = _faces(15, seed=8)
    keep = [i for i, v in enumerate(y) if v in three]
    base = EmotionModel.fit(x[keep], [y[i] for i in keep], SPEC, "hog")
    assert "surprised" not in base.labels
    new = [i for i, v in enumerate(y) if v == "surprised"][:6]
    grown = base.updated(x[new], ["surprised"] * len(new), weight=2.0)
    xt, yt = _faces(6, seed=9)
    got = [e for e, _ in grown.predict(xt)]
    assert grown.labels == sorted(EMOTIONS)
    assert np.mean([g == t for g, t in zip(got, yt, strict=True) if t == "surprised"]) >= 0.8


def test_lbp_sees_shapes_not_brightness() -> None:
    """LBP compares each pixel with its neighbours: a brighter screenshot gives the same features."""
    from facesortd.descriptors import describe

    faces, _ = _faces(2, seed=9)
    dim = np.round(faces * 0.5 * 255.0) / 255.0  # whole grey levels, as normalise_face produces
    assert np.array_equal(describe(dim, "lbp"), describe(dim + 60.0 / 255.0, "lbp"))
    assert not np.array_equal(describe(dim, "lbp"), describe(dim[:, :, ::-1], "lbp"))
    both = describe(dim, "hog+lbp")
    assert np.allclose(np.linalg.norm(both, axis=1), np.sqrt(2.0), atol=1e-3)  # each part counts equally


@pytest.mark.parametrize("size", [47, 100])
def test_any_face_size_trains_with_hog(size: int) -> None:
    """`train --face-size` takes any side: HOG, which needs whole cells, used to crash on 47 or 100."""
    spec = FaceSpec(size=size)
    rng = np.random.default_rng(4)
    faces = np.stack([normalised_face(e, spec, rng) for e in EMOTIONS * 6])
    model = EmotionModel.fit(faces, list(EMOTIONS) * 6, spec, "hog+lbp")
    assert [e for e, _ in model.predict(faces[: len(EMOTIONS)])] == list(EMOTIONS)
