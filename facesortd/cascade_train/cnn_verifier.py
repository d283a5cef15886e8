"""Training the CNN verifier (``train-detector --verifier-out``): samples from the cascade's own
proposals, folds by source, a calibration fitted on out-of-source predictions.

The verifier only ever sees boxes the cascade proposes, so most of its negatives are exactly those:
the cascade (alone, as configured for the service) runs over scenes composed from each vn_faces
repository (scenes.py) and over the training screenshots; what it proposes away from the faces
are the negatives, what it finds on them the positives. Added to them: faces with the box
jittered, the region below each face (neck, collar, chest), random windows of the images, and
face crops and face-free patches. The net is trained once per fold without that fold's sources;
its predictions on them (out of source) fit the Platt calibration of the net trained on
everything. Needs the training extra (PyTorch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from loguru import logger

from facesortd.boxes import SAME_FACE_IOU, Box
from facesortd.cascade_train.samples import BoxedImage
from facesortd.cascade_train.scenes import SceneMaker, Sources, below_face, jittered
from facesortd.cascade_train.trainer import TrainingError
from facesortd.conv_net import ConvNet
from facesortd.detect import FaceDetector, iou
from facesortd.progress import Progress
from facesortd.verify import CNN_CROP, CnnVerifier, cnn_input, crop_box, platt_probability

MISS_IOU = 0.25
"""Below this it is a non-face; proposals in between teach nothing clear and are left out."""
WIDTHS = (16, 32, 64)
"""Channels of the convolution blocks (the default; --verifier-widths)."""
HIDDEN = 64
DROPOUT = 0.3
PATCHES = "patches"
"""The group of face crops and face-free patches: in every fold's training, never held out."""


@dataclass
class Samples:
    crops: list[np.ndarray]
    labels: list[int]
    groups: list[str]
    proposal: list[bool]
    """True for the cascade's own proposals: the population the calibration is fitted on."""

    def add(self, crop: np.ndarray, label: int, group: str, proposal: bool) -> None:
        self.crops.append(crop)
        self.labels.append(label)
        self.groups.append(group)
        self.proposal.append(proposal)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return np.stack(self.crops), np.array(self.labels), np.array(self.groups), np.array(self.proposal)


def _boxed(
    samples: Samples,
    gray: np.ndarray,
    truth: list[Box],
    group: str,
    detector: FaceDetector,
    rng: np.random.Generator,
) -> None:
    """Proposals of the cascade on one image, labelled by the true boxes, and the extra samples."""
    for face in detector.detect(gray):
        best = max((iou(face.box, t) for t in truth), default=0.0)
        if best >= SAME_FACE_IOU or best < MISS_IOU:
            samples.add(crop_box(gray, face.box, CNN_CROP), int(best >= SAME_FACE_IOU), group, True)
    h, w = gray.shape
    for t in truth:
        for _ in range(3):
            samples.add(crop_box(gray, jittered(t, rng), CNN_CROP), 1, group, False)
        for _ in range(2):
            samples.add(crop_box(gray, below_face(t, rng), CNN_CROP), 0, group, False)
    for _ in range(4):
        side = int(rng.uniform(0.1, 0.5) * min(h, w))
        box = (int(rng.integers(0, w - side)), int(rng.integers(0, h - side)), side, side)
        if all(iou(box, t) < MISS_IOU for t in truth):
            samples.add(crop_box(gray, box, CNN_CROP), 0, group, False)


def collect(
    detector: FaceDetector,
    boxed: Iterable[tuple[str, BoxedImage]],
    images: int,
    faces: Iterable[tuple[np.ndarray, Box]],
    non_faces: Iterable[np.ndarray],
    seed: int,
) -> Samples:
    """All training samples, each tagged with its group (its source): the cascade's proposals on
    every (group, image) of ``boxed`` (``images`` of them) with the extra samples around its
    faces, then face crops (image, face box) and face-free patches, both in the group "patches"."""
    rng = np.random.default_rng(seed)
    samples = Samples([], [], [], [])
    progress = Progress(images, "verifier samples")
    for group, image in boxed:
        _boxed(samples, image.gray, list(image.boxes), group, detector, rng)
        progress.step()
    for gray, box in faces:
        samples.add(crop_box(gray, box, CNN_CROP), 1, PATCHES, False)
    for gray in non_faces:
        samples.add(crop_box(gray, (0, 0, gray.shape[1], gray.shape[0]), CNN_CROP), 0, PATCHES, False)
    return samples


def repo_scenes(
    sources: Sources, repos: Iterable[str], per_repo: int, seed: int
) -> Iterator[tuple[str, BoxedImage]]:
    """``per_repo`` scenes of each repository alone (its own seed), in grey: samples grouped by
    repository, so that folds can leave a source out."""
    for repo in repos:
        repo_seed = int.from_bytes(hashlib.sha256(f"{seed}:{repo}".encode()).digest()[:4], "big")
        for scene in SceneMaker(sources, [repo], repo_seed).scenes(per_repo, "train"):
            yield (
                repo,
                BoxedImage(scene.name, cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY), tuple(scene.boxes)),
            )


def group_folds(groups: Iterable[str], k: int) -> list[list[str]]:
    """``groups`` (sources) in ``k`` folds by a hash of their names: stable between runs."""
    order = sorted(set(groups), key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    return [order[i::k] for i in range(k)]


def fit_platt(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) of p = 1 / (1 + exp(-(a z + b))), maximum likelihood, unweighted: the probability is
    then right for the share of faces among the proposals it was fitted on. Newton steps halved
    until the likelihood improves: a net's logits reach +-30, where plain Newton overshoots."""
    t = np.where(y > 0, 1.0, 0.0)
    prior = (t.sum() + 1) / (len(t) + 2)
    params = np.array([0.0, np.log(prior / (1 - prior))])

    def nll(ab: np.ndarray) -> float:
        m = ab[0] * z + ab[1]
        return float(np.sum(np.logaddexp(0, m) - t * m))

    for _ in range(100):
        p = platt_probability(z, params)
        g = np.array([np.sum((p - t) * z), np.sum(p - t)])
        r = p * (1 - p) + 1e-12
        hess = np.array([[np.sum(r * z * z), np.sum(r * z)], [np.sum(r * z), np.sum(r)]]) + 1e-9 * np.eye(2)
        step, before = np.linalg.solve(hess, g), nll(params)
        while nll(params - step) > before and np.abs(step).max() > 1e-12:
            step = step / 2
        params = params - step
        if np.abs(step).max() < 1e-9:
            break
    return float(params[0]), float(params[1])


def _train_net(x: np.ndarray, y: np.ndarray, shape: NetShape, seed: int) -> ConvNet:
    from facesortd.cascade_train.verifier_net import TorchConvNet, export, fit, verifier_loop

    make_net = partial(TorchConvNet, shape.widths, CNN_CROP, HIDDEN, DROPOUT)
    return export(fit(make_net, x, y, verifier_loop(len(x), shape.epochs, seed), shape.augment))


def _logits(net: ConvNet, x: np.ndarray) -> np.ndarray:
    batch = 512
    return np.concatenate([net.forward(x[i : i + batch])[:, 0] for i in range(0, len(x), batch)])


@dataclass(frozen=True)
class NetShape:
    widths: tuple[int, ...] = WIDTHS
    epochs: int = 12
    augment: bool = False
    """Train on tilted, re-toned and partly covered crops too (verifier_net.harder)."""


def train(
    samples: Samples, folds: list[list[str]], shape: NetShape, seed: int, folds_out: Path | None = None
) -> CnnVerifier:
    """One net per fold trained without that fold's groups; their predictions on its proposals
    (out of source) fit the Platt calibration of the net trained on everything, which is returned.
    ``folds_out`` also gets each fold's net (with that calibration) as fold<k>.npz, for the bench.
    Needs PyTorch."""
    crops, y, groups, proposal = samples.arrays()
    logger.info(
        "{} samples ({} faces), {} proposals ({} faces)",
        len(y), int(y.sum()), int(proposal.sum()), int(y[proposal].sum()),
    )  # fmt: skip
    x = cnn_input(crops)
    oof_z, oof_y, fold_nets = [], [], []
    for k, fold in enumerate(folds):
        held = np.isin(groups, fold)
        if not (held & proposal).any():
            raise TrainingError(f"calibration fold {k} holds no cascade proposals: give more sources")
        net = _train_net(x[~held], y[~held], shape, seed + k)
        oof_z.append(_logits(net, x[held & proposal]))
        oof_y.append(y[held & proposal])
        fold_nets.append(net)
        logger.info("fold {}: {} held-out proposals", k, int((held & proposal).sum()))
    z, yy = np.concatenate(oof_z), np.concatenate(oof_y)
    platt = fit_platt(z, yy)
    p = platt_probability(z, platt)
    logger.info(
        "calibration on {} out-of-source proposals ({} faces): a {:.4f}, b {:.4f}; at p >= 0.5 "
        "{:.3f} of face proposals kept, {:.4f} of non-face ones; mean p {:.3f} vs face share {:.3f}",
        len(z), int(yy.sum()), *platt, float(np.mean(p[yy > 0] >= 0.5)), float(np.mean(p[yy == 0] >= 0.5)),
        float(p.mean()), float(yy.mean()),
    )  # fmt: skip
    if folds_out is not None:
        for k, net in enumerate(fold_nets):
            CnnVerifier(net, platt).save(folds_out / f"fold{k}.npz")
    return CnnVerifier(_train_net(x, y, shape, seed), platt)
