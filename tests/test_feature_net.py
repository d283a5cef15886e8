"""The convolutional feature net: learns drawn expressions, exports exactly, travels inside models."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import EMOTIONS, normalised_face

from facesortd import cli, feature_net
from facesortd.emotion import EmotionModel, ModelError
from facesortd.ensemble import EnsembleModel
from facesortd.faces import FaceSpec
from facesortd.feature_net import FeatureNet, FeatureNetError
from facesortd.learn import training
from facesortd.learn.training import FaceSet, cross_validate

SPEC = FaceSpec(size=64)


def _faces(n_per: int, seed: int) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    faces = [normalised_face(e, SPEC, rng) for e in EMOTIONS for _ in range(n_per)]
    return np.stack(faces), [e for e in EMOTIONS for _ in range(n_per)]


@pytest.fixture(scope="module")
def small_net() -> FeatureNet:
    """An untrained net of the run-time kind: what these tests check does not depend on training
    (training is tests/test_torch_training.py's, where PyTorch is installed)."""
    rng = np.random.default_rng(0)
    widths = [1, 8, 16]
    weights = [rng.normal(0, 0.3, (9 * a, b)).astype(np.float32) for a, b in itertools.pairwise(widths)]
    biases = [rng.normal(0, 0.1, b).astype(np.float32) for b in widths[1:]]
    return FeatureNet(weights, biases, {"widths": widths[1:]})


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


def test_training_a_net_without_pytorch_says_what_to_install(
    crop_dataset: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("facesortd.cli.train.torch_installed", lambda: False)
    args = ["train", str(crop_dataset), "--no-detect", "--descriptor", "cnn", "--train-features"]
    assert cli.main(args) == 2
    assert "pip install 'facesortd[train]'" in capsys.readouterr().err


def test_run_time_and_training_the_head_never_import_pytorch() -> None:
    code = (
        "import sys, facesortd.cli, facesortd.service; "
        "import facesortd.learn.training, facesortd.learn.feature_net_training; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_colour_net_refuses_grey_faces_and_a_grey_net_reads_colour_faces_grey(
    small_net: FeatureNet,
) -> None:
    """Chroma guessed as neutral would be a silent wrong answer; grey is always inside colour."""
    colour_net = FeatureNet([np.zeros((27, 4), np.float32)], [np.zeros(4, np.float32)])
    with pytest.raises(FeatureNetError, match="3 planes"):
        colour_net.features(np.zeros((1, 64, 64), np.float32))
    faces = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    assert np.array_equal(small_net.features(faces), small_net.features(faces[..., 0]))
