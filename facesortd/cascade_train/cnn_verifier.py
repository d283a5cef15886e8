"""Training the CNN verifier: samples from many artists' scenes, folds by repository, a calibration
fitted on out-of-source predictions.

    python -m facesortd.cascade_train.cnn_verifier --out cascade_classifier/facesortd_verifier.npz \\
        --folds-out /tmp/verifier_folds

The verifier only ever sees boxes the cascade proposes, so most of its negatives are exactly those:
the cascade (alone, as configured for the service) runs over scenes composed from each vn_faces
repository (scenes.py) and over the seed's training screenshots; what it proposes away from the
faces are the negatives, what it finds on them the positives. Added to them: faces with the box
jittered, the region below each face (neck, collar, chest), random windows of the backgrounds, and
face_patches' faces and non-faces. The net is trained once per fold without that fold's
repositories; its predictions on them (out of source) fit the Platt calibration of the net
trained on everything. Needs the training extra (PyTorch).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from loguru import logger

from facesortd.boxes import Box
from facesortd.cascade_train.samples import image_files, read_gray
from facesortd.cascade_train.scenes import SceneMaker, Sources, below_face, jittered
from facesortd.cascade_train.split import is_held_out
from facesortd.config import DetectionSettings
from facesortd.conv_net import ConvNet
from facesortd.datasets import load_faces_json
from facesortd.detect import SHIPPED_CASCADE, FaceDetector, iou, shipped_file
from facesortd.verify import CNN_CROP, CnnVerifier, cnn_input, crop_box, load_verifier

HIT_IOU = 0.4
"""A proposal this close to a true face is a face (the benchmark's criterion)."""
MISS_IOU = 0.25
"""Below this it is a non-face; proposals in between teach nothing clear and are left out."""
WIDTHS = (16, 32, 64)
"""Channels of the convolution blocks (the default; --widths)."""
HIDDEN = 64
MIXED = ("seed", "patches")
"""Sample groups that are in every fold's training (not vn_faces repositories)."""


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
    samples: Samples, gray: np.ndarray, truth: list[Box], group: str, detector: FaceDetector, rng
) -> None:
    """Proposals of the cascade on one image, labelled by the true boxes, and the extra samples."""
    for face in detector.detect(gray):
        best = max((iou(face.box, t) for t in truth), default=0.0)
        if best >= HIT_IOU or best < MISS_IOU:
            samples.add(crop_box(gray, face.box, CNN_CROP), int(best >= HIT_IOU), group, True)
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


def collect(shared: Path, scenes_per_repo: int, settings: DetectionSettings, seed: int) -> Samples:
    """All training samples, each tagged with its group (a vn_faces repository, seed or patches)."""
    rng = np.random.default_rng(seed)
    detector = FaceDetector(settings.model_copy(update={"verify": False, "min_score": 0.0, "nms_iou": 0.99}))
    samples = Samples([], [], [], [])
    sources = Sources.load(shared / "vn_faces")
    for repo in sources.repos:
        repo_seed = int.from_bytes(hashlib.sha256(f"{seed}:{repo}".encode()).digest()[:4], "big")
        for scene in SceneMaker(sources, [repo], repo_seed).scenes(scenes_per_repo, "train"):
            gray = cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY)
            _boxed(samples, gray, scene.boxes, repo, detector, rng)
        logger.info("{}: {} samples so far", repo, len(samples.labels))
    truth = load_faces_json(shared / "seed" / "faces.json")
    for name, faces in sorted(truth.items()):
        if not is_held_out(name):
            gray = read_gray(shared / "seed" / "screenshots" / name)
            _boxed(samples, gray, [f.box for f in faces], "seed", detector, rng)
    for label, folder in ((1, "positive"), (0, "negative")):
        for path in image_files(shared / "face_patches" / folder):
            gray = read_gray(path)
            samples.add(
                crop_box(gray, (0, 0, gray.shape[1], gray.shape[0]), CNN_CROP), label, "patches", False
            )
    return samples


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
        p = 1.0 / (1.0 + np.exp(-(params[0] * z + params[1])))
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


def _net(
    path: Path | None, reuse: bool, x: np.ndarray, y: np.ndarray, args: argparse.Namespace, seed: int
) -> ConvNet:
    """The net of the verifier in ``path`` if asked to reuse it, else one trained now (PyTorch)."""
    if reuse and path is not None and path.is_file():
        logger.info("reusing the net of {}", path)
        verifier = load_verifier(path)
        if not isinstance(verifier, CnnVerifier):
            raise SystemExit(f"{path} is not a CNN verifier")
        return verifier.net
    from facesortd.cascade_train.verifier_net import FitSettings, TorchConvNet, export, fit

    net = TorchConvNet(args.widths, CNN_CROP, HIDDEN, 1, 0.3)
    return export(fit(net, x, y, FitSettings(epochs=args.epochs, seed=seed)))


def _logits(net: ConvNet, x: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([net.forward(x[i : i + batch])[:, 0] for i in range(0, len(x), batch)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="verifier file to write (.npz)")
    parser.add_argument("--folds-out", type=Path, help="also write each fold's verifier here (for the bench)")
    parser.add_argument("--folds", type=int, default=3, help="folds of vn_faces repositories")
    parser.add_argument("--scenes-per-repo", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--min-neighbors",
        type=int,
        default=DetectionSettings().min_neighbors,
        help="minNeighbors of the cascade whose proposals are collected: the detection.min_neighbors "
        "the verifier will run behind (default %(default)s)",
    )
    parser.add_argument(
        "--widths", type=int, nargs="+", default=WIDTHS, help="channels per convolution block"
    )
    parser.add_argument(
        "--reuse-nets",
        action="store_true",
        help="take the nets of verifiers already in --folds-out and --out instead of training them "
        "(recalibrates them; resumes an interrupted run)",
    )
    parser.add_argument(
        "--samples", type=Path, help="cache of the collected samples (.npz): reused if present"
    )
    args = parser.parse_args(argv)
    if not args.reuse_nets:
        import torch

        torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if shipped_file(SHIPPED_CASCADE) is None:
        print("no shipped cascade to collect proposals with", file=sys.stderr)
        return 1
    t0 = time.time()
    if args.samples and args.samples.is_file():
        with np.load(args.samples) as d:
            crops, y, groups, proposal = d["crops"], d["y"], d["groups"], d["proposal"]
    else:
        crops, y, groups, proposal = collect(
            args.shared, args.scenes_per_repo, DetectionSettings(min_neighbors=args.min_neighbors), args.seed
        ).arrays()
        if args.samples:
            np.savez_compressed(args.samples, crops=crops, y=y, groups=groups, proposal=proposal)
    logger.info(
        "{} samples ({} faces), {} proposals ({} faces), {:.0f} s",
        len(y),
        int(y.sum()),
        int(proposal.sum()),
        int(y[proposal].sum()),
        time.time() - t0,
    )
    x = cnn_input(crops)
    folds = Sources.load(args.shared / "vn_faces").folds(args.folds)
    oof_z, oof_y = [], []
    fold_nets = []
    for k, repos in enumerate(folds):
        held = np.isin(groups, repos)
        path = args.folds_out / f"fold{k}.npz" if args.folds_out else None
        net = _net(path, args.reuse_nets, x[~held], y[~held], args, args.seed + k)
        oof_z.append(_logits(net, x[held & proposal]))
        oof_y.append(y[held & proposal])
        fold_nets.append(net)
        logger.info(
            "fold {}: {} held-out proposals, {:.0f} s", k, int((held & proposal).sum()), time.time() - t0
        )
    z, yy = np.concatenate(oof_z), np.concatenate(oof_y)
    platt = fit_platt(z, yy)
    p = 1.0 / (1.0 + np.exp(-(platt[0] * z + platt[1])))
    logger.info(
        "calibration on {} out-of-source proposals ({} faces): a {:.4f}, b {:.4f}; at p >= 0.5 "
        "{:.3f} of face proposals kept, {:.4f} of non-face ones; mean p {:.3f} vs face share {:.3f}",
        len(z), int(yy.sum()), *platt, float(np.mean(p[yy > 0] >= 0.5)), float(np.mean(p[yy == 0] >= 0.5)),
        float(p.mean()), float(yy.mean()),
    )  # fmt: skip
    if args.folds_out:
        for k, net in enumerate(fold_nets):
            CnnVerifier(net, platt).save(args.folds_out / f"fold{k}.npz")
    final = _net(args.out, args.reuse_nets, x, y, args, args.seed)
    CnnVerifier(final, platt).save(args.out)
    logger.info("wrote {} ({:.0f} s in all)", args.out, time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
