"""Face / non-face verification of candidate boxes (with a little context), calibrated on samples
the model was not fitted on: a small CNN, trained by ``train-detector --verifier-out``
(cascade_train/cnn_verifier.py). The HOG verifier before it is no longer run: its file is refused
with the fix named.

The cascade is run permissively for recall; this second look rejects its false alarms and gives
every face a probability that means what it says, which the cascade's stage sum does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesortd.advice import advised
from facesortd.boxes import Box
from facesortd.conv_net import ConvNet
from facesortd.durable import read_npz, write_npz

MARGIN = 0.15
"""Context added around the box on each side, relative to its side: hair and outline help."""


class VerifierError(ValueError):
    """A verifier file is missing or not one of ours; the message says which."""


def crop_box(gray: np.ndarray, box: Sequence[float], side: int) -> np.ndarray:
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


def platt_probability(logits: np.ndarray, platt: Sequence[float] | np.ndarray) -> np.ndarray:
    """p = 1 / (1 + exp(-(a z + b))) for Platt's (a, b): the one formula the calibration is fitted
    by (cascade_train/cnn_verifier.py) and the verifier scores with, so the two cannot drift."""
    a, b = platt
    return 0.5 * (1.0 + np.tanh(0.5 * (a * logits + b)))  # the same, without exp's overflow far out


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
        return platt_probability(self.logits(crops), self.platt)

    def score(self, gray: np.ndarray, boxes: Sequence[Box], shrunk: Shrunk | None = None) -> np.ndarray:
        """(N,) face probabilities for boxes (x, y, w, h) in a grayscale image (big boxes cut from
        ``shrunk``, a shrunk copy of it, if given)."""
        return self.probability(_crops(gray, boxes, CNN_CROP, shrunk))

    def save(self, path: Path) -> None:
        """Whole or not at all: a half-written verifier file would stop the detector at the next start."""
        write_npz(
            path,
            {
                "kind": np.array(CNN_KIND),
                "crop": np.array([CNN_CROP, MARGIN]),
                "platt": np.array(self.platt),
                **self.net.arrays(),
            },
        )


HOG_KIND = "facesortd-verifier-hog-v1"


def load_verifier(path: Path) -> CnnVerifier:
    """The verifier in a file; a HOG verifier's file (shipped until 2026-11-30) or any other is
    refused with a message that says what to do."""
    try:
        with read_npz(Path(path)) as data:
            kind = str(data["kind"])
            if kind == CNN_KIND and tuple(data["crop"]) == (CNN_CROP, MARGIN):
                platt = (float(data["platt"][0]), float(data["platt"][1]))
                return CnnVerifier(ConvNet.from_arrays({k: data[k] for k in data.files}), platt)
    except (OSError, KeyError, ValueError, TypeError) as exc:  # TypeError: a bare .npy array
        raise VerifierError(f"{path} is not a facesortd verifier file: {exc}") from exc
    if kind == HOG_KIND:
        raise VerifierError(
            f"{path} is a HOG verifier, which facesortd no longer runs: remove detection.verifier from "
            f"the config to use the shipped CNN verifier, or train one with `{advised('train-detector')} "
            "--verifier-out`"
        )
    raise VerifierError(
        f"{path} is a verifier of another version; retrain it (train-detector --verifier-out)"
    )
