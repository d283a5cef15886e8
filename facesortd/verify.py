"""Face / non-face verification of candidate boxes (with a little context), calibrated on samples
the model was not fitted on. Two kinds: a small CNN (shipped; trained by
cascade_train/cnn_verifier.py) and HOG with a logistic model (what `train-detector` fits without
PyTorch). A file records its kind; load_verifier reads either.

The cascade is run permissively for recall; this second look rejects its false alarms and gives
every face a probability that means what it says, which the cascade's stage sum does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesortd.boxes import Box
from facesortd.conv_net import ConvNet

CROP = 48
"""Side of the square the box (plus margin) is resampled to before HOG."""
MARGIN = 0.15
"""Context added around the box on each side, relative to its side: hair and outline help."""


class VerifierError(ValueError):
    """A verifier file is missing or not one of ours; the message says which."""


def _hog() -> cv2.HOGDescriptor:
    return cv2.HOGDescriptor((CROP, CROP), (16, 16), (8, 8), (8, 8), 9)


def crop_box(gray: np.ndarray, box: Sequence[float], side: int = CROP) -> np.ndarray:
    """The box plus MARGIN as a ``side`` x ``side`` patch; the border is replicated where it leaves the image.

    Only the part inside the image is copied and then extended: close-up boxes often reach
    outside, and padding the whole picture for each of them copied two megapixels per box at 1080p.
    """
    x, y, w, h = box
    mx, my = w * MARGIN, h * MARGIN
    ys, top, bottom = _span(round(y - my), round(y + h + my), gray.shape[0])
    xs, left, right = _span(round(x - mx), round(x + w + mx), gray.shape[1])
    region = gray[ys, xs]
    if top or bottom or left or right:
        region = cv2.copyMakeBorder(region, top, bottom, left, right, cv2.BORDER_REPLICATE)
    shrink = region.shape[1] > side
    return cv2.resize(region, (side, side), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _span(a0: int, a1: int, n: int) -> tuple[slice, int, int]:
    """For [a0, a1) along an axis of length n: the slice inside 0..n to copy (at least one pixel,
    the nearest edge when the span lies wholly outside) and how many edge pixels to add before and
    after it, so the result is what replicating the image's edges would give."""
    s0 = min(max(a0, 0), n - 1)
    s1 = max(min(a1, n), s0 + 1)
    missing = (a1 - a0) - (s1 - s0)
    before = min(max(0, s0 - a0), missing)
    return slice(s0, s1), before, missing - before


SHRUNK_MIN = 2
"""A box is cut from the detector's shrunk copy of the image when its crop region there still
spans at least this many crop sides (README, "Performance": the effect on the scores measured)."""

Shrunk = tuple[np.ndarray, float]
"""A shrunk copy of a grayscale image and its scale (its side / the original's)."""


def _crops(gray: np.ndarray, boxes: Sequence[Box], side: int, shrunk: Shrunk | None = None) -> np.ndarray:
    """Every box's crop. Area-averaging a big box down to ``side`` reads every pixel of its region,
    a large share of detection's time at 1080p (README, "Performance"), so a big box is cut from
    ``shrunk`` instead."""

    def crop(box: Box) -> np.ndarray:
        if shrunk is not None and box[2] * (1 + 2 * MARGIN) * shrunk[1] >= SHRUNK_MIN * side:
            return crop_box(shrunk[0], [v * shrunk[1] for v in box], side)
        return crop_box(gray, box, side)

    return np.stack([crop(b) for b in boxes]) if boxes else np.zeros((0, side, side), np.uint8)


def _save(path: Path, **arrays: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.savez(fh, **arrays)


def features(crops: np.ndarray) -> np.ndarray:
    """(N, D) float32 HOG descriptors of (N, CROP, CROP) uint8 crops."""
    hog = _hog()
    return np.stack([hog.compute(c).ravel() for c in crops]).astype(np.float32)


@dataclass
class Verifier:
    """Standardised HOG -> logistic score -> Platt-calibrated probability of a face."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    platt: tuple[float, float]

    def probability(self, crops: np.ndarray) -> np.ndarray:
        """(N,) probabilities that the crops (from crop_box) are faces."""
        if not len(crops):
            return np.zeros(0)
        z = ((features(crops) - self.mean) / self.scale) @ self.weights + self.bias
        a, b = self.platt
        return 1.0 / (1.0 + np.exp(-(a * z + b)))

    def score(self, gray: np.ndarray, boxes: Sequence[Box], shrunk: Shrunk | None = None) -> np.ndarray:
        """(N,) face probabilities for boxes (x, y, w, h) in a grayscale image."""
        return self.probability(_crops(gray, boxes, CROP, shrunk))

    def save(self, path: Path) -> None:
        _save(
            path,
            kind=np.array("facesortd-verifier-hog-v1"),
            crop=np.array([CROP, MARGIN]),
            mean=self.mean,
            scale=self.scale,
            weights=self.weights,
            bias=np.array(self.bias),
            platt=np.array(self.platt),
        )

    @classmethod
    def load(cls, path: Path) -> Verifier:
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                if str(data["kind"]) != "facesortd-verifier-hog-v1" or tuple(data["crop"]) != (CROP, MARGIN):
                    raise VerifierError(f"{path} is a verifier of another version; retrain it")
                return cls(
                    data["mean"],
                    data["scale"],
                    data["weights"],
                    float(data["bias"]),
                    (float(data["platt"][0]), float(data["platt"][1])),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise VerifierError(f"{path} is not a facesortd verifier file: {exc}") from exc


CNN_CROP = 32
"""Side of the patch the CNN verifier sees (box plus MARGIN)."""
CNN_KIND = "facesortd-verifier-cnn-v1"


def cnn_input(crops: np.ndarray) -> np.ndarray:
    """(n, CNN_CROP, CNN_CROP) uint8 crops -> (n, s, s, 1) float32, each standardised on its own so
    that a dark or washed-out scene looks like any other to the net."""
    x = crops.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    std = x.std(axis=(1, 2), keepdims=True)
    return ((x - mean) / (std + 8.0))[..., None]


@dataclass
class CnnVerifier:
    """A small CNN (trained with PyTorch, run in numpy) -> Platt-calibrated probability of a face.

    The linear HOG verifier let through windows, tree trunks and clothes on unseen art; a net
    trained on many artists' faces and the cascade's own false alarms on composed scenes separates
    them (cascade_classifier/README.md)."""

    net: ConvNet
    platt: tuple[float, float]

    def logits(self, crops: np.ndarray) -> np.ndarray:
        return self.net.forward(cnn_input(crops))[:, 0] if len(crops) else np.zeros(0)

    def probability(self, crops: np.ndarray) -> np.ndarray:
        """(N,) probabilities that the crops (crop_box at CNN_CROP) are faces."""
        a, b = self.platt
        return 1.0 / (1.0 + np.exp(-(a * self.logits(crops) + b)))

    def score(self, gray: np.ndarray, boxes: Sequence[Box], shrunk: Shrunk | None = None) -> np.ndarray:
        """(N,) face probabilities for boxes (x, y, w, h) in a grayscale image (big boxes cut from
        ``shrunk``, a shrunk copy of it, if given)."""
        return self.probability(_crops(gray, boxes, CNN_CROP, shrunk))

    def save(self, path: Path) -> None:
        _save(
            path,
            kind=np.array(CNN_KIND),
            crop=np.array([CNN_CROP, MARGIN]),
            platt=np.array(self.platt),
            **self.net.arrays(),
        )


def load_verifier(path: Path) -> Verifier | CnnVerifier:
    """Either kind of verifier file, told apart by the kind it records."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            kind = str(data["kind"])
            if kind == CNN_KIND and tuple(data["crop"]) == (CNN_CROP, MARGIN):
                platt = (float(data["platt"][0]), float(data["platt"][1]))
                return CnnVerifier(ConvNet.from_arrays({k: data[k] for k in data.files}), platt)
    except (OSError, KeyError, ValueError) as exc:
        raise VerifierError(f"{path} is not a facesortd verifier file: {exc}") from exc
    return Verifier.load(path)


def _logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 300) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by gradient descent with Nesterov momentum; classes are
    weighted equally so the many negatives do not drown the positives."""
    d = x.shape[1]
    sw = np.where(y > 0, 0.5 / max(1, (y > 0).sum()), 0.5 / max(1, (y <= 0).sum()))
    w, b = np.zeros(d), 0.0
    vw, vb = np.zeros(d), 0.0
    lipschitz = 0.25 * float(np.max(np.sum(x**2, axis=1))) + l2
    step = 1.0 / lipschitz
    for _ in range(iters):
        lw, lb = w + 0.9 * vw, b + 0.9 * vb
        p = 1.0 / (1.0 + np.exp(-(x @ lw + lb)))
        g = sw * (p - (y > 0))
        vw = 0.9 * vw - step * (x.T @ g + l2 * lw)
        vb = 0.9 * vb - step * float(g.sum())
        w, b = w + vw, b + vb
    return w, b


def train_verifier(
    pos_crops: np.ndarray, neg_crops: np.ndarray, seed: int = 0, l2: float = 1e-3, calibration: float = 0.25
) -> Verifier:
    """Fit on (1 - calibration) of the crops, Platt-calibrate on the rest (both split at random)."""
    if len(pos_crops) < 10 or len(neg_crops) < 10:
        raise ValueError(
            f"the verifier needs >= 10 crops of each kind ({len(pos_crops)}, {len(neg_crops)} given)"
        )
    x = features(np.concatenate([pos_crops, neg_crops]))
    y = np.concatenate([np.ones(len(pos_crops)), -np.ones(len(neg_crops))])
    rng = np.random.default_rng(seed)
    held = rng.random(len(y)) < calibration
    mean, scale = x[~held].mean(axis=0), x[~held].std(axis=0) + 1e-6
    xs = (x - mean) / scale
    w, b = _logistic(xs[~held], y[~held], l2)
    z = xs[held] @ w + b
    a, c = _logistic(z[:, None], y[held], 1e-6, iters=500)
    return Verifier(
        mean.astype(np.float32), scale.astype(np.float32), w.astype(np.float32), b, (float(a[0]), c)
    )
