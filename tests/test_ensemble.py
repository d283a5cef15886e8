"""Ensembles: averaged members that predict, calibrate, store, update and retrain like one model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import EMOTIONS, draw_face, draw_screenshot, normalised_face

from facesortd import cli, feature_net, model_store
from facesortd.config import load_settings
from facesortd.descriptors import describe
from facesortd.emotion import EmotionModel, ModelError, softmax
from facesortd.ensemble import EnsembleModel, combine, load_model, log_softmax, model_info
from facesortd.faces import FaceSpec
from facesortd.learn import kept_faces, retrain
from facesortd.learn.datasets import EMOTIONS as DATASET_EMOTIONS
from facesortd.learn.training import FaceSet, cross_validate, described_mirrors, emotion_fitter, mirrored_name

SPEC = FaceSpec(size=48)


def _faces(n_per: int, seed: int, emotions: list[str] = EMOTIONS) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    labels = [e for e in emotions for _ in range(n_per)]
    return np.stack([normalised_face(e, SPEC, rng) for e in labels]), labels


def _ensemble(n_per: int = 10, seed: int = 1, emotions: list[str] = EMOTIONS) -> EnsembleModel:
    x, y = _faces(n_per, seed, emotions)
    return EnsembleModel.of([EmotionModel.fit(x, y, SPEC, d) for d in ("hog", "lbp")])


def test_combination_is_the_weighted_mean_of_calibrated_log_probabilities() -> None:
    a = np.array([[2.0, 0.0], [0.0, 1.0]])
    b = np.array([[0.0, 4.0], [3.0, 0.0]])
    got = combine([a, b], [0.25, 0.75], [1.0, 2.0])
    assert np.allclose(got, 0.25 * log_softmax(a) + 0.75 * log_softmax(b / 2.0))
    assert np.allclose(np.exp(log_softmax(a)).sum(axis=1), 1.0)


def test_an_ensemble_predicts_stores_and_reads_back(tmp_path: Path) -> None:
    model = _ensemble()
    model.temperature = 0.8
    model.members[1].temperature = 1.7
    xt, yt = _faces(6, seed=2)
    assert np.mean([e == t for (e, _), t in zip(model.predict(xt), yt, strict=True)]) >= 0.95
    assert model.labels == sorted(EMOTIONS) and model.weights == [0.5, 0.5]
    assert model.descriptor == "hog | lbp"  # for logs and listings

    path = model.save(tmp_path / "ens.fsm.npz")
    loaded = load_model(path)
    assert isinstance(loaded, EnsembleModel)
    assert [m.descriptor for m in loaded.members] == ["hog", "lbp"] and loaded.spec == SPEC
    assert np.allclose(loaded.predict_proba(xt), model.predict_proba(xt))
    assert model_info(path)["descriptors"] == ["hog", "lbp"]
    assert model_info(path)["counts"] == {e: 10 for e in EMOTIONS}
    single = load_model(model.members[0].save(tmp_path / "one.fsm.npz"))
    assert isinstance(single, EmotionModel) and single.descriptor == "hog"


def test_damaged_or_misread_ensemble_files_say_what_is_wrong(tmp_path: Path) -> None:
    path = _ensemble().save(tmp_path / "ens.fsm.npz")
    with pytest.raises(ModelError, match="format version 3"):  # what a single-model reader says
        EmotionModel.load(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if not k.startswith("m1_")}
    np.savez(tmp_path / "cut.fsm.npz", **arrays)
    with pytest.raises(ModelError, match="corrupt"):
        load_model(tmp_path / "cut.fsm.npz")
    meta = json.loads(str(arrays["meta"]))
    meta["members"][1]["labels"] = ["happy", "sad"]
    arrays["meta"] = np.array(json.dumps(meta))
    with np.load(path) as data:
        arrays.update({k: data[k] for k in data.files if k.startswith("m1_")})
    np.savez(tmp_path / "mixed.fsm.npz", **arrays)
    with pytest.raises(ModelError, match="same emotions"):
        load_model(tmp_path / "mixed.fsm.npz")


def test_every_member_learns_a_new_emotion_from_user_labels() -> None:
    three = [e for e in EMOTIONS if e != "surprised"]
    model = _ensemble(15, seed=3, emotions=three)
    x, y = _faces(6, seed=4, emotions=["surprised"])
    grown = model.updated(x, y, weight=2.0)
    assert all(m.labels == sorted(EMOTIONS) for m in grown.members)
    assert grown.info["counts"]["surprised"] == 6 and grown.weights == model.weights
    xt, _ = _faces(6, seed=5, emotions=["surprised"])
    assert np.mean([e == "surprised" for e, _ in grown.predict(xt)]) >= 0.8


def test_cross_validation_calibrates_each_member_then_the_mean() -> None:
    x, y = _faces(12, seed=6)
    noisy = np.clip(x + np.random.default_rng(0).normal(0, 0.35, x.shape), 0, 1).astype(np.float32)
    data = FaceSet(noisy, y, [f"g{i % 6}" for i in range(len(y))], [Path("f")] * len(y), ["s"] * len(y))
    fit = emotion_fitter(SPEC, ["hog", "lbp"], 150)
    predictions, calibration = cross_validate(data, fit, folds=3)
    hog, hog_cal = cross_validate(data, emotion_fitter(SPEC, ["hog"], 150), folds=3)
    lbp, lbp_cal = cross_validate(data, emotion_fitter(SPEC, ["lbp"], 150), folds=3)
    assert hog_cal.members == [hog_cal.temperature]  # a single model is its own only member
    assert calibration.members == pytest.approx([hog_cal.temperature, lbp_cal.temperature])
    mean = 0.5 * np.log(hog.proba) + 0.5 * np.log(lbp.proba)  # the calibrated members, averaged...
    assert np.allclose(predictions.proba, softmax(mean / calibration.temperature), atol=1e-6)  # recalibrated
    assert calibration.temperature != pytest.approx(1.0, abs=0.02)
    assert list(predictions.members) == ["hog", "lbp"]  # each alone, as `train` reports them
    assert np.allclose(predictions.members["lbp"].proba, lbp.proba)
    data.features = {d: describe(noisy, d) for d in ("hog", "lbp")}  # as `train` computes them once
    assert np.allclose(cross_validate(data, fit, folds=3)[0].proba, predictions.proba, atol=1e-6)
    model = fit(data)
    calibration.apply(model)
    assert isinstance(model, EnsembleModel) and model.temperature == calibration.temperature
    assert [m.temperature for m in model.members] == calibration.members


def test_a_retrain_from_an_ensemble_in_force_stays_an_ensemble(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state")
    current = _ensemble(10, seed=7, emotions=["angry", "happy", "sad"])
    model_store.adopt(settings, current.save(model_store.models_dir(settings) / "20260101-000000.fsm.npz"))
    labels = []
    rng = np.random.default_rng(8)
    for e in ["angry", "happy", "sad", "surprised"]:
        for k in range(6):
            img = np.full((300, 300), 50, np.uint8)
            img[80:200, 90:210] = draw_face(e, 120, rng)
            face = kept_faces.keep_face(settings, f"{e}{k}", img, (90, 80, 120, 120))
            labels.append(retrain.UserLabel(face, e, group=f"shot{k % 4}"))
    result = retrain.retrain(settings, labels, current)
    assert result.adopted and result.path is not None
    retrained = load_model(result.path)
    assert isinstance(retrained, EnsembleModel) and "surprised" in retrained.labels
    assert model_store.model_in_force(settings) == result.path  # adopted: the daemon sorts by it now


@pytest.mark.usefixtures("fake_detector")
def test_train_with_two_descriptors_writes_an_ensemble_that_eval_and_sort_use(
    crop_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", str(crop_dataset), "--kind", "crops", "--folds", "3", "--activate"]
    assert cli.main([*args, "--descriptor", "hog", "--descriptor", "lbp"]) == 0
    path = model_store.model_in_force(load_settings())
    assert path is not None and path.parent == model_store.models_dir(load_settings())
    model = load_model(path)
    assert isinstance(model, EnsembleModel) and [m.descriptor for m in model.members] == ["hog", "lbp"]
    assert model.info["held_out"]["balanced_accuracy"] >= 0.9
    assert set(model.info["members_held_out"]) == {"hog", "lbp"}
    report = capsys.readouterr().out
    assert "each member of the ensemble alone" in report and "\nlbp: balanced accuracy" in report
    assert cli.main(["eval", str(crop_dataset), "--kind", "crops"]) == 0  # the model in force
    assert "balanced accuracy" in capsys.readouterr().out
    assert cli.main(["model"]) == 0
    assert "an ensemble of: hog, lbp" in capsys.readouterr().out
    inbox, lib, rng = tmp_path / "inbox", tmp_path / "lib", np.random.default_rng(3)
    inbox.mkdir()
    for emotion in EMOTIONS:
        cv2.imwrite(str(inbox / f"{emotion}.png"), draw_screenshot(emotion, rng)[0])
    assert cli.main(["sort", str(inbox), "--library", str(lib)]) == 0
    assert all((lib / emotion / f"{emotion}.png").is_file() for emotion in EMOTIONS)
    assert cli.main([*args, "--descriptor", "hog", "--descriptor", "hog"]) == 2
    assert "each --descriptor may be given once" in capsys.readouterr().err


def test_the_shipped_default_model_is_an_ensemble_that_predicts_and_lends_its_net() -> None:
    """What a user gets out of the box (provenance: facesortd/data/README.md)."""
    path = model_store.shipped_model()
    assert path is not None
    model = load_model(path)
    assert isinstance(model, EnsembleModel) and [m.descriptor for m in model.members] == ["cnn", "hog+lbp"]
    assert model.spec == FaceSpec(size=64, margin=0.2)
    assert model.labels == sorted(DATASET_EMOTIONS)
    rng = np.random.default_rng(6)
    faces = np.stack([normalised_face(e, model.spec, rng) for e in EMOTIONS])
    assert all(e in model.labels and 0 < p <= 1 for e, p in model.predict(faces))
    net = model.members[0].net
    assert net is not None and all(  # the cnn descriptor's default net is this one, not a second copy
        np.array_equal(a, b) for a, b in zip(net.weights, feature_net.shipped_net().weights, strict=True)
    )


def test_a_mirrored_fit_learns_from_each_face_and_its_mirror_but_scores_the_faces_alone() -> None:
    """`train --mirror`: the mirrors are training rows only, the same with the features computed
    up front (as `train` and the benchmark do) or on the fly."""
    x, y = _faces(8, seed=7)
    data = FaceSet(x, y, [f"g{i % 4}" for i in range(len(y))], [Path("f")] * len(y), ["s"] * len(y))
    model = emotion_fitter(SPEC, ["hog"], 150, mirror=True)(data)
    both = EmotionModel.fit(x, y, SPEC, "hog", mirror=True)
    assert np.allclose(model.projection, both.projection) and model.info["mirrored"]
    plain = emotion_fitter(SPEC, ["hog"], 150)(data)
    assert not np.allclose(model.projection, plain.projection)
    data.features = {"hog": describe(x, "hog")} | described_mirrors(x, ["hog", "cnn"])
    assert set(data.features) == {"hog", mirrored_name("hog")}  # a net's features need no mirrors
    upfront = emotion_fitter(SPEC, ["hog"], 150, mirror=True)(data.features_only())
    assert np.allclose(upfront.projection, model.projection, atol=1e-5)
    predictions, _ = cross_validate(data, emotion_fitter(SPEC, ["hog"], 150, mirror=True), folds=2)
    assert predictions.proba.shape == (len(y), len(EMOTIONS))  # the faces, not their mirrors
