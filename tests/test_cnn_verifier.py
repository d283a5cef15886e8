"""The CNN verifier's training (PyTorch, the shared loop of torch_training): its numpy runtime
computes what the PyTorch net computes, it learns faces from non-faces, its file round-trips, and
``train-detector --verifier-out`` trains it behind the new cascade."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import EMOTIONS, draw_face, draw_textures
from torch_nets import as_if_trained

from facesortd.config import DetectionSettings
from facesortd.detect import FaceDetector
from facesortd.verify import CNN_CROP, CnnVerifier, cnn_input, crop_box, load_verifier

torch = pytest.importorskip("torch")  # the training extra; the runtime itself never needs it

from facesortd.cascade_train.verifier_net import TorchConvNet, export, fit, predict, verifier_loop  # noqa: E402


def _faces(n: int, rng: np.random.Generator) -> np.ndarray:
    size = 60
    faces = [draw_face(EMOTIONS[k % len(EMOTIONS)], size, rng) for k in range(n)]
    return np.stack([crop_box(f, (6, 6, size - 12, size - 12), CNN_CROP) for f in faces])


def test_numpy_runtime_matches_torch() -> None:
    """Batch norm folded, (row, column, channel) layout: the exported net gives torch's outputs."""
    torch.manual_seed(0)
    net = as_if_trained(TorchConvNet((8, 16, 16), CNN_CROP, 12, 0.3))
    x = np.random.default_rng(0).standard_normal((7, CNN_CROP, CNN_CROP, 1)).astype(np.float32)
    assert np.allclose(export(net).forward(x)[:, 0], predict(net, x), atol=1e-4)


@pytest.fixture(scope="module")
def cnn_verifier() -> CnnVerifier:
    """Four epochs: drawn faces and textures part that soon (every held-out one on its side), and
    more only cost the module's setup time."""
    rng = np.random.default_rng(0)
    crops = np.concatenate([_faces(150, rng), draw_textures(150, CNN_CROP, rng)])
    y = np.array([1] * 150 + [0] * 150)
    net = fit(
        lambda: TorchConvNet((8, 16), CNN_CROP, 16, 0.1), cnn_input(crops), y, verifier_loop(len(y), epochs=4)
    )
    return CnnVerifier(export(net), (1.0, 0.0))


def test_learns_faces_from_textures(cnn_verifier: CnnVerifier) -> None:
    rng = np.random.default_rng(9)
    assert np.mean(cnn_verifier.probability(_faces(40, rng)) > 0.5) > 0.9
    assert np.mean(cnn_verifier.probability(draw_textures(40, CNN_CROP, rng)) < 0.5) > 0.9


def test_file_round_trips(cnn_verifier: CnnVerifier, tmp_path: Path) -> None:
    crops = _faces(5, np.random.default_rng(3))
    cnn_verifier.save(tmp_path / "cnn.npz")
    again = load_verifier(tmp_path / "cnn.npz")
    assert np.allclose(again.probability(crops), cnn_verifier.probability(crops))


def test_detector_scores_its_proposals_by_the_cnn_verifier_of_its_file(
    cnn_verifier: CnnVerifier, tiny_cascade: Path, tmp_path: Path
) -> None:
    """Every proposal's score is the verifier's probability of its box (not the cascade's), and the
    faces kept carry those scores."""
    cnn_verifier.save(tmp_path / "cnn.npz")
    rng = np.random.default_rng(1)
    scene = draw_textures(1, 200, rng)[0]
    scene[60:108, 80:128] = draw_face("happy", 48, rng)
    settings = DetectionSettings(verifier=tmp_path / "cnn.npz", min_score=0.0, lone_window_score=1.0)
    detector = FaceDetector(settings, [tiny_cascade])
    found = detector.candidates(scene)
    proposals = found.full + found.close
    assert proposals, "the check needs proposals"
    expected = cnn_verifier.score(scene, [f.box for f in proposals], found.shrunk)
    assert np.array_equal([f.score for f in proposals], expected)
    kept = detector.select(scene, found)
    assert kept and {f.score for f in kept} <= {float(p) for p in expected}


def test_calibration_recovers_a_known_link_and_survives_confident_logits() -> None:
    from facesortd.cascade_train.cnn_verifier import fit_platt

    rng = np.random.default_rng(0)
    z = rng.normal(0, 5, 20000)
    y = (rng.random(len(z)) < 1 / (1 + np.exp(-(0.7 * z - 1.2)))).astype(int)
    a, b = fit_platt(z, y)
    assert abs(a - 0.7) < 0.05 and abs(b + 1.2) < 0.1
    # A trained net's logits reach +-30 with few mistakes: plain Newton steps diverged here
    z = np.concatenate([rng.normal(-20, 3, 5000), rng.normal(20, 3, 1000), [0.5, -0.5]])
    a, b = fit_platt(z, np.concatenate([np.zeros(5000), np.ones(1000), [0, 1]]))
    assert 0 < a < 10 and abs(b) < 10


@pytest.mark.slow
def test_train_detector_fits_the_cnn_verifier_behind_a_cascade(tiny_cascade: Path, tmp_path: Path) -> None:
    """The verifier learns from the cascade's proposals on the screenshots, is calibrated by folds
    of characters (no vn_faces given), and the bench gets each fold's net."""
    import argparse
    import json

    import cv2
    from synthetic import draw_screenshot

    from facesortd.cascade_train.command import add_arguments, run

    rng = np.random.default_rng(2)
    for sub in ("shots", "pos", "neg"):
        (tmp_path / sub).mkdir()
    truth = {}
    for k in range(12):
        name = f"{'abcdef'[k % 6]}{k}.png"
        img, box = draw_screenshot(EMOTIONS[k % len(EMOTIONS)], rng, (240, 320), 90)
        cv2.imwrite(str(tmp_path / "shots" / name), img)
        truth[name] = [{"box": list(box)}]
    (tmp_path / "shots" / "faces.json").write_text(json.dumps(truth))
    for k in range(60):
        cv2.imwrite(str(tmp_path / "pos" / f"f{k}.png"), draw_face(EMOTIONS[k % len(EMOTIONS)], 48, rng))
    for k, texture in enumerate(draw_textures(30, 96, rng)):
        cv2.imwrite(str(tmp_path / "neg" / f"n{k}.png"), texture)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        f"--faces-json {tmp_path}/shots/faces.json --include-held-out --pos-crops {tmp_path}/pos "
        f"--negatives {tmp_path}/neg --out {tiny_cascade} --verifier-only --variants 1 1 "
        f"--verifier-out {tmp_path}/v.npz --verifier-epochs 3 "
        f"--verifier-widths 4 8 --verifier-folds-out {tmp_path}/folds".split()
    )
    assert run(args) == 0
    verifier = load_verifier(tmp_path / "v.npz")
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == ["fold0.npz", "fold1.npz", "fold2.npz"]
    assert load_verifier(tmp_path / "folds" / "fold0.npz").platt == verifier.platt  # one calibration
    faces, textures = _faces(40, rng), draw_textures(40, CNN_CROP, rng)
    assert verifier.probability(faces).mean() > verifier.probability(textures).mean()


def test_harder_crops_stay_as_the_runtime_standardises_them() -> None:
    """--verifier-augment's tilted, re-toned, covered crops keep each crop's mean and spread (the
    net never sees a crop the runtime could not give it), change most crops, and some carry a
    flat cover."""
    from facesortd.cascade_train.verifier_net import harder

    rng = np.random.default_rng(1)
    x = cnn_input(_faces(64, rng))
    out = harder(x, rng)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.allclose(out.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), atol=1e-4)
    assert np.allclose(out.std(axis=(1, 2, 3)), x.std(axis=(1, 2, 3)), atol=1e-3)
    changed = np.abs(out - x).max(axis=(1, 2, 3)) > 1e-3
    assert 0.7 < changed.mean() < 1.0  # each of three changes on half: 1 - 1/8 expected

    def flat(a: np.ndarray) -> np.ndarray:
        return (np.abs(np.diff(a[..., 0], axis=2)) < 1e-5).sum(axis=(1, 2))

    covered = flat(out) - flat(x) >= 7 * 7  # at least an 8x8 cover
    assert 0.2 < covered.mean() < 0.8


def test_augmented_training_still_parts_faces_from_textures() -> None:
    rng = np.random.default_rng(0)
    crops = np.concatenate([_faces(150, rng), draw_textures(150, CNN_CROP, rng)])
    y = np.array([1] * 150 + [0] * 150)
    net = fit(
        lambda: TorchConvNet((8, 16), CNN_CROP, 16, 0.1),
        cnn_input(crops),
        y,
        verifier_loop(len(y), epochs=4),
        augment=True,
    )
    verifier, rng = CnnVerifier(export(net), (1.0, 0.0)), np.random.default_rng(9)
    assert np.mean(verifier.probability(_faces(40, rng)) > 0.5) > 0.9
    assert np.mean(verifier.probability(draw_textures(40, CNN_CROP, rng)) < 0.5) > 0.9
