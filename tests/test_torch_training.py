"""Training the feature net with PyTorch (the ``train`` extra) and exporting it to the numpy forward.

Skipped where PyTorch is not installed: run time never needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import EMOTIONS, draw_face, normalised_face

pytest.importorskip("torch")

from facesortd import cli
from facesortd.emotion import EmotionModel
from facesortd.faces import FaceSpec, normalise_face
from facesortd.feature_net import FeatureNet
from facesortd.learn import training
from facesortd.learn.feature_net_training import NetSettings, sampling_weights, train_feature_net
from facesortd.learn.torch_training import (
    Augmentation,
    ConvNet,
    LoopSettings,
    export_feature_net,
    style_augment,
    to_tensor,
    train_classifier,
)
from facesortd.learn.training import FaceSet

SPEC = FaceSpec(size=64)
SMALL = NetSettings(
    widths=(8, 16), loop=LoopSettings(epochs=8, steps_per_epoch=15, batch=16, learning_rate=1e-2)
)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Nets trained on several threads sum in a varying order, so their figures move from run to run
    (a net that scores 1.0 alone scored 0.85 on a loaded machine); one thread makes them repeat."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def torch_features(net: ConvNet, faces: np.ndarray) -> np.ndarray:
    """The features by PyTorch, mirror-averaged like FeatureNet.features (to check the export)."""
    import torch

    with torch.no_grad():
        x = to_tensor(faces, net.input_size)
        return (0.5 * (net.features(x) + net.features(torch.flip(x, dims=[3])))).numpy()


def _faces(n_per: int, seed: int) -> FaceSet:
    rng = np.random.default_rng(seed)
    faces = [normalised_face(e, SPEC, rng) for e in EMOTIONS for _ in range(n_per)]
    labels = [e for e in EMOTIONS for _ in range(n_per)]
    n = len(labels)
    return FaceSet(np.stack(faces), labels, [str(i) for i in range(n)], [Path("x")] * n, ["drawn"] * n)


def test_a_small_net_trained_with_torch_separates_drawn_emotions() -> None:
    net = train_feature_net(_faces(20, seed=1), SMALL)
    model = EmotionModel.fit(_faces(20, seed=1).faces, _faces(20, seed=1).labels, SPEC, "cnn", net=net)
    test = _faces(10, seed=2)
    predicted = [e for e, _ in model.predict(test.faces)]
    assert np.mean(np.array(predicted) == np.array(test.labels)) >= 0.9
    assert net.info["classes"] == sorted(EMOTIONS) and net.width == 16


def test_a_net_comes_from_its_seed_whatever_the_process_drew_before() -> None:
    """Fold nets of one run, and the same command in two processes, must train the same net from the
    same seed: the net is built after seeding, so torch's global draws before it do not matter."""
    import torch

    data = _faces(4, seed=3)
    tiny = NetSettings(widths=(4, 8), loop=LoopSettings(epochs=1, steps_per_epoch=3, batch=8))
    first = train_feature_net(data, tiny)
    torch.rand(1000)  # what another fold or an import would have drawn
    second = train_feature_net(data, tiny)
    assert np.array_equal(first.features(data.faces), second.features(data.faces))
    other = train_feature_net(data, replace(tiny, loop=replace(tiny.loop, seed=1)))
    assert not np.array_equal(first.features(data.faces), other.features(data.faces))


@pytest.mark.parametrize("planes", [(), (3,)], ids=["grey", "colour"])
def test_the_numpy_forward_computes_what_torch_computes(planes: tuple[int, ...]) -> None:
    """Folding batch norm and reordering the weights must not change a feature: the shipped net runs
    in numpy at run time, so this is what makes the training figures hold there (grey faces, and
    colour ones: the grey plane and two chroma planes)."""
    rng = np.random.default_rng(0)
    faces = rng.random((32, 64, 64, *planes)).astype(np.float32)
    labels = np.array([0, 1] * 16)
    # a few steps move the weights, norm scales and running statistics away from their start
    net = train_classifier(
        lambda: ConvNet((4, 8, 8), classes=2, dropout=0.0, channels=planes[0] if planes else 1),
        lambda r, n: (faces[:n], labels[:n]),
        LoopSettings(1, 5, 16),
        "test",
    )
    exported = export_feature_net(net, {})
    assert isinstance(exported, FeatureNet) and exported.channels == (planes[0] if planes else 1)
    assert np.allclose(exported.features(faces), torch_features(net, faces), atol=1e-4)


def test_sources_weigh_the_same_and_emotions_within_them() -> None:
    sources = ["big"] * 90 + ["big"] * 10 + ["small"] * 5 + ["small"] * 5
    labels = ["a"] * 90 + ["b"] * 10 + ["a"] * 5 + ["b"] * 5
    p = sampling_weights(labels, sources)
    by = lambda s, lbl: p[[i for i in range(len(p)) if sources[i] == s and labels[i] == lbl]].sum()  # noqa: E731
    assert all(np.isclose(by(s, lbl), 0.25) for s in ("big", "small") for lbl in ("a", "b"))


def test_style_augmentation_puts_new_scenes_only_behind_transparent_faces() -> None:
    rng = np.random.default_rng(0)
    faces = np.full((2, 64, 64), 0.5, np.float32)
    alpha = np.zeros((2, 64, 64), np.uint8)
    alpha[1] = 255  # an opaque face: its scene is its own
    alpha[0, 16:48, 16:48] = 255
    backgrounds = np.zeros((1, 64, 64), np.float32)
    still = Augmentation(rotate_deg=0, scale=0, shift=0, tone=0, blur=0, jpeg=0, noise=0, mirror=False)
    out = style_augment(faces, alpha, backgrounds, rng, still)
    assert np.allclose(out[1], 0.5) and np.allclose(out[0, 16:48, 16:48], 0.5) and np.allclose(out[0, :8], 0)
    moved = style_augment(faces, alpha, backgrounds, rng, Augmentation())
    assert moved.shape == faces.shape and moved.min() >= 0.0 and moved.max() <= 1.0


def test_train_with_train_features_trains_one_net_per_fold_and_one_for_the_model(
    crop_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A net that saw the held-out faces would make the cross-validated figures lie."""
    trained_on: list[int] = []
    real = training.train_feature_net

    def counting(data: FaceSet, settings: NetSettings | None) -> FeatureNet:
        trained_on.append(len(data.labels))
        assert settings is not None
        return real(
            data, replace(settings, widths=(4, 8), loop=replace(settings.loop, steps_per_epoch=3))
        )  # fast: counting only

    monkeypatch.setattr(training, "train_feature_net", counting)
    out = tmp_path / "m.fsm.npz"
    args = ["train", str(crop_dataset), "--no-detect", "--descriptor", "cnn", "--train-features"]
    assert (
        cli.main([*args, "--epochs", "1", "--folds", "3", "--validation-share", "0", "--out", str(out)]) == 0
    )
    *folds, whole = sorted(trained_on)  # one net per fold and one on all faces, in any order
    assert len(folds) == 3 and max(folds) < whole == 4 * 30
    model = EmotionModel.load(out)
    assert model.descriptor == "cnn" and model.net is not None and model.net.info["epochs"] == 1


def test_a_colour_model_keeps_its_colour_spec_and_three_plane_net_through_save_and_load(
    tmp_path: Path,
) -> None:
    """The model file says colour, so whoever loads it renders faces as its net was trained on them
    (bench_emotion.py --colour; README, "Emotion model")."""
    spec = replace(SPEC, colour=True)
    rng = np.random.default_rng(4)
    images = [cv2.cvtColor(draw_face(e, 90, rng), cv2.COLOR_GRAY2BGR) for e in EMOTIONS for _ in range(8)]
    for image in images[::2]:
        cv2.circle(image, (25, 60), 8, (150, 150, 255), -1)  # a blush on some
    faces = np.stack([normalise_face(image, (0, 0, 90, 90), spec) for image in images])
    labels = [e for e in EMOTIONS for _ in range(8)]
    n = len(labels)
    data = FaceSet(faces, labels, [str(i) for i in range(n)], [Path("x")] * n, ["drawn"] * n)
    settings = replace(SMALL, loop=replace(SMALL.loop, epochs=1))
    model = training.emotion_fitter(spec, ["cnn"], 20, settings)(data)
    loaded = EmotionModel.load(model.save(tmp_path / "m.fsm.npz"))
    assert loaded.spec.colour and loaded.net is not None and loaded.net.channels == 3
    assert faces.shape[1:] == (64, 64, 3) and loaded.predict(faces) == model.predict(faces)
