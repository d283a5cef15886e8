"""The convolutional feature net: learns drawn expressions, exports exactly, travels inside models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import EMOTIONS, draw_face

from facesortd import cli, feature_net, training
from facesortd.emotion import EmotionModel, ModelError
from facesortd.ensemble import EnsembleModel
from facesortd.faces import FaceSpec, normalise_face
from facesortd.feature_net import FeatureNet, FeatureNetError, net_input
from facesortd.feature_net_training import (
    NetSettings,
    _AdamW,
    _Classifier,
    _smoothed_cross_entropy,
    train_feature_net,
)
from facesortd.training import FaceSet, cross_validate

SPEC = FaceSpec(size=64)
SMALL = NetSettings(widths=(8, 16), epochs=6, batch=16, learning_rate=1e-2)


def _faces(n_per: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    faces = [
        normalise_face(draw_face(e, 90, rng), (0, 0, 90, 90), SPEC) for e in EMOTIONS for _ in range(n_per)
    ]
    return np.stack(faces), [e for e in EMOTIONS for _ in range(n_per)]


@pytest.fixture(scope="module")
def small_net() -> FeatureNet:
    faces, labels = _faces(20, seed=1)
    return train_feature_net(faces, labels, SMALL)


def test_features_of_a_small_trained_net_separate_drawn_emotions(small_net: FeatureNet) -> None:
    faces, labels = _faces(20, seed=1)
    model = EmotionModel.fit(faces, labels, SPEC, "cnn", net=small_net)
    test, truth = _faces(10, seed=2)
    predicted = [e for e, _ in model.predict(test)]
    assert np.mean(np.array(predicted) == np.array(truth)) >= 0.9
    assert small_net.info["labels"] == sorted(EMOTIONS) and small_net.width == 16


def test_exported_net_computes_what_the_trained_layers_compute() -> None:
    """Folding batch norm into the convolutions must not change a single feature."""
    rng = np.random.default_rng(0)
    net = _Classifier(2, NetSettings(widths=(4, 8)), rng)
    optimiser = _AdamW(net.layers, 5e-4)
    x = net_input(rng.random((16, 64, 64)).astype(np.float32))
    y = np.array([0, 1] * 8)
    for _ in range(5):  # moves weights, norm scales and running statistics away from their start
        _, grad = _smoothed_cross_entropy(net.forward(x, True), y, 0.1)
        net.backward(grad)
        optimiser.step(1e-2)
    trained = net.forward(x, False, net.features)
    assert np.allclose(net.frozen({})._forward(x), trained, atol=1e-5)


def test_features_do_not_depend_on_which_way_a_face_looks(small_net: FeatureNet) -> None:
    faces, _ = _faces(2, seed=3)
    assert np.allclose(small_net.features(faces), small_net.features(faces[:, :, ::-1]), atol=1e-5)


def test_without_a_net_in_the_shipped_model_cnn_training_says_what_to_do(
    crop_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    faces, labels = _faces(5, seed=3)
    plain = EmotionModel.fit(faces, labels, SPEC, "hog").save(tmp_path / "plain.fsm.npz")
    monkeypatch.setattr(feature_net, "net_source_path", lambda: plain)
    feature_net.shipped_net.cache_clear()
    try:
        with pytest.raises(FeatureNetError, match="--train-features"):
            feature_net.shipped_net()
        args = [
            "train",
            str(crop_dataset),
            "--no-detect",
            "--descriptor",
            "cnn",
            "--out",
            str(tmp_path / "m"),
        ]
        assert cli.main(args) == 2
        assert "no feature net" in capsys.readouterr().err
    finally:
        feature_net.shipped_net.cache_clear()


def test_the_shipped_net_is_found_in_a_cnn_model_or_in_an_ensembles_cnn_member(
    small_net: FeatureNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faces, labels = _faces(5, seed=3)
    members = [EmotionModel.fit(faces, labels, SPEC, d, net=small_net) for d in ("hog", "cnn")]
    files = [
        members[1].save(tmp_path / "cnn.fsm.npz"),
        EnsembleModel.of(members).save(tmp_path / "ens.fsm.npz"),
    ]
    for path in files:
        monkeypatch.setattr(feature_net, "net_source_path", lambda path=path: path)
        feature_net.shipped_net.cache_clear()
        try:
            found = feature_net.shipped_net()
        finally:
            feature_net.shipped_net.cache_clear()
        assert all(np.array_equal(a, b) for a, b in zip(found.weights, small_net.weights, strict=True))
        assert found.info == small_net.info


def test_a_cnn_model_keeps_its_net_through_save_load_and_update(
    small_net: FeatureNet, tmp_path: Path
) -> None:
    """A model keeps the net it was trained with, so a new shipped net cannot change old models."""
    faces, labels = _faces(10, seed=4)
    model = EmotionModel.fit(faces, labels, SPEC, "cnn", net=small_net)
    loaded = EmotionModel.load(model.save(tmp_path / "m.fsm.npz"))
    assert loaded.net is not None and np.allclose(loaded.predict_proba(faces), model.predict_proba(faces))
    grown = loaded.updated(faces[:5], ["smug"] * 5)
    assert grown.net is loaded.net and "smug" in grown.labels
    assert EmotionModel.fit(faces, labels, SPEC, "hog").save(tmp_path / "h.fsm.npz")
    assert EmotionModel.load(tmp_path / "h.fsm.npz").net is None


def test_a_cnn_model_file_without_its_net_is_reported_corrupt(small_net: FeatureNet, tmp_path: Path) -> None:
    faces, labels = _faces(5, seed=4)
    path = EmotionModel.fit(faces, labels, SPEC, "cnn", net=small_net).save(tmp_path / "m.fsm.npz")
    with np.load(path) as data:
        kept = {k: data[k] for k in data.files if not k.startswith("net_")}
    np.savez(path.with_name("cut.npz"), **kept)
    with pytest.raises(ModelError, match="corrupt"):
        EmotionModel.load(path.with_name("cut.npz"))


def test_cross_validation_on_features_computed_once_equals_describing_per_fold(
    small_net: FeatureNet,
) -> None:
    faces, labels = _faces(12, seed=5)
    data = FaceSet(
        faces, labels, [f"g{i % 6}" for i in range(len(labels))], [Path("x")] * len(labels), ["s"] * 12 * 4
    )

    def fit(part: FaceSet) -> EmotionModel:
        features = part.features.get("cnn")
        return EmotionModel.fit(part.faces, part.labels, SPEC, "cnn", net=small_net, features=features)

    per_fold, _ = cross_validate(data, fit, 3)
    data.features = {"cnn": small_net.features(faces)}
    once, _ = cross_validate(data, fit, 3)
    assert np.allclose(per_fold.proba, once.proba, atol=1e-6)


def test_train_cnn_on_own_faces_uses_the_shipped_net_as_it_is(
    crop_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast way: only the emotion head learns; the model keeps a copy of the shipped net."""
    monkeypatch.setattr(training, "train_feature_net", None)  # must not be called
    out = tmp_path / "m.fsm.npz"
    args = ["train", str(crop_dataset), "--no-detect", "--descriptor", "cnn", "--folds", "3"]
    assert cli.main([*args, "--out", str(out)]) == 0
    model, shipped = EmotionModel.load(out), feature_net.shipped_net()
    assert shipped.width == 128 and model.net is not None
    assert all(np.array_equal(a, b) for a, b in zip(model.net.weights, shipped.weights, strict=True))


def test_train_with_train_features_trains_one_net_per_fold_and_one_for_the_model(
    crop_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A net that saw the held-out faces would make the cross-validated figures lie."""
    trained_on: list[int] = []
    real = training.train_feature_net

    def counting(faces: np.ndarray, labels: list[str], settings: NetSettings | None) -> FeatureNet:
        trained_on.append(len(labels))
        return real(faces, labels, settings)

    monkeypatch.setattr(training, "train_feature_net", counting)
    out = tmp_path / "m.fsm.npz"
    args = ["train", str(crop_dataset), "--no-detect", "--descriptor", "cnn", "--train-features"]
    assert (
        cli.main([*args, "--epochs", "1", "--folds", "3", "--validation-share", "0", "--out", str(out)]) == 0
    )
    assert len(trained_on) == 4 and max(trained_on[:3]) < trained_on[3] == 4 * 30
    model = EmotionModel.load(out)
    assert model.descriptor == "cnn" and model.net is not None and model.net.info["settings"]["epochs"] == 1
