"""FeatureNet: a small convolutional network that turns a normalised face into 128 numbers.

The net is only a feature extractor: its output feeds the same PCA/LDA head as every other
descriptor, so a model still updates exactly from class statistics when the user labels faces.
It is trained with PyTorch (`facesortd train --descriptor cnn --train-features`, the ``train``
extra; learn/feature_net_training.py), exported to the arrays below and kept frozen inside the model
file. What it is trained on and how well it carries to unseen artists: README, "Emotion model".

Inference is plain numpy (no deep-learning dependency at run time): each 3x3 convolution is one
matrix product over nine shifted copies of the input, with batch normalisation folded into its
weights (tests/test_torch_training.py checks it against PyTorch's forward pass). A face and its
mirror image are averaged, so the features do not depend on which way it looks.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from facesortd.durable import read_npz
from facesortd.package_data import SHIPPED_MODEL, data_file

INPUT_SIZE = 48
"""Side a net sees unless it was trained at another (its info's ``input_size``): 64-px faces are
shrunk to it, (64/48)^2 = 1.8x less work than full size."""
BATCH = 64
"""Faces per forward pass: bounds the shifted copies of the widest layer to ~40 MB."""
NET_PREFIX = "net_"
"""A ``cnn`` model file stores its net's arrays under this prefix."""


class FeatureNetError(Exception):
    """No usable feature net (the shipped model has none, or a model's is damaged)."""


def net_input(faces: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(n, s, s) grey or (n, s, s, c) colour faces in [0, 1] -> (n, size, size, c) float32,
    centred and scaled as in training (grey: c = 1)."""
    faces = np.asarray(faces, dtype=np.float32)
    if faces.shape[1] != size:
        side = (size, size)
        faces = np.stack([cv2.resize(f, side, interpolation=cv2.INTER_AREA) for f in faces])
    x = (faces - 0.5) / 0.25
    return x if x.ndim == 4 else x[..., None]


def shifted_columns(x: np.ndarray) -> np.ndarray:
    """(n, h, w, c) -> (n*h*w, 9c): each pixel's 3x3 neighbourhood (zero-padded) as one row.

    Several channels: one copy of the zero-padded input's 3x3 windows (a view) in the row's order;
    writing nine shifts of a few channels each into place moved them in small strided pieces, four
    times slower on a busy picture's candidates. One channel (the first layer): the nine shifts
    written straight into place, which is faster there than copying the view's three-pixel runs.
    Either way the same values in the same places, so the product after it is the same to the bit.
    """
    n, h, w, c = x.shape
    if c > 1:
        padded = np.zeros((n, h + 2, w + 2, c), x.dtype)
        padded[:, 1:-1, 1:-1] = x
        windows = sliding_window_view(padded, (3, 3), axis=(1, 2))  # (n, h, w, c, 3, 3)
        return windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * h * w, 9 * c)
    out = np.zeros((n, h, w, 9, c), x.dtype)
    for k, (dy, dx) in enumerate(itertools.product((-1, 0, 1), repeat=2)):
        out[:, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx), k] = x[
            :, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)
        ]
    return out.reshape(n * h * w, 9 * c)


def max_pool(x: np.ndarray) -> np.ndarray:
    """2x2 max pooling of (n, h, w, c) with even h and w (four strided views: much faster than
    numpy's reduction over two inner axes)."""
    return np.maximum(
        np.maximum(x[:, 0::2, 0::2], x[:, 0::2, 1::2]), np.maximum(x[:, 1::2, 0::2], x[:, 1::2, 1::2])
    )


def conv_block(x: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(n, h, w, c) -> (n, h/2, w/2, out): 3x3 convolution, bias, ReLU, 2x2 max pool.

    Pooled before the bias and ReLU: both commute with the maximum exactly (rounding is
    monotonic), so they run on a quarter of the values and the result is the same to the bit.
    """
    n, h, w, _ = x.shape
    y = max_pool((shifted_columns(x) @ weights).reshape(n, h, w, -1))
    y += bias
    return np.maximum(y, 0.0, out=y)


@dataclass
class FeatureNet:
    """Convolution blocks (3x3 conv with folded batch norm, ReLU, 2x2 max pool), then the mean over
    the remaining positions. ``weights[i]`` is (9 * in_channels, out_channels)."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        """Length of the feature vector of one face."""
        return int(self.weights[-1].shape[1])

    @property
    def input_size(self) -> int:
        """Side of the faces the net was trained on (they are resized to it)."""
        return int(self.info.get("input_size", INPUT_SIZE))

    @property
    def channels(self) -> int:
        """Input planes: 1 for a grey net, 3 for a colour one (grey + chroma, faces.normalise_face)."""
        return int(self.weights[0].shape[0]) // 9

    def features(self, faces: np.ndarray) -> np.ndarray:
        """(n, s, s) grey or (n, s, s, 3) colour normalised faces -> (n, width) float32 features,
        mirror-averaged. A grey net given colour faces reads their grey rendering; a colour net
        given grey faces is a framing error, never a guess."""
        if faces.ndim == 4 and self.channels == 1:
            faces = faces[..., 0]
        elif faces.ndim == 3 and self.channels != 1:
            raise FeatureNetError(f"a net of {self.channels} planes was given grey faces")
        out = np.zeros((len(faces), self.width), np.float32)
        for start in range(0, len(faces), BATCH):
            x = net_input(faces[start : start + BATCH], self.input_size)
            out[start : start + len(x)] = 0.5 * (self._forward(x) + self._forward(x[:, :, ::-1]))
        return out

    def _forward(self, x: np.ndarray) -> np.ndarray:
        for w, b in zip(self.weights, self.biases, strict=True):
            x = conv_block(x, w, b)
        return x.mean(axis=(1, 2))

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The weights as named arrays, to be stored in an emotion model file."""
        named = {f"{prefix}w{i}": w for i, w in enumerate(self.weights)}
        named.update({f"{prefix}b{i}": b for i, b in enumerate(self.biases)})
        return named

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], info: dict[str, Any], prefix: str) -> FeatureNet:
        count = sum(1 for k in arrays if k.startswith(f"{prefix}w"))
        if count == 0:
            raise FeatureNetError("no feature-net weights found")
        # Fresh copies: arrays read from a model file may sit unaligned in memory, which makes each
        # matrix product many times slower (README, "The feature net").
        weights = [np.array(arrays[f"{prefix}w{i}"], np.float32) for i in range(count)]
        biases = [np.array(arrays[f"{prefix}b{i}"], np.float32) for i in range(count)]
        return cls(weights, biases, info)


def net_source_path() -> Path:
    """The shipped default model: the net of its ``cnn`` member is the default net of ``cnn``."""
    return data_file(SHIPPED_MODEL)


@cache
def shipped_net() -> FeatureNet:
    """The net inside the shipped default model's ``cnn`` member (one copy of the weights, not two).

    Used by `train --descriptor cnn` without --train-features, to learn only the emotion head from
    a user's faces; facesortd/data/README.md says how the net was trained.
    """
    path = net_source_path()
    try:
        with read_npz(path) as data:
            prefix, info = _where_the_net_is(json.loads(str(data["meta"])), data.files)
            arrays = {k: data[k] for k in data.files if k.startswith(prefix)}
    except (OSError, ValueError, KeyError) as exc:
        raise FeatureNetError(f"cannot read the feature net of the shipped model {path} ({exc})") from exc
    if not arrays:
        raise FeatureNetError(f"{path} has no feature net: add --train-features to train one")
    return FeatureNet.from_arrays(arrays, info, prefix)


def _where_the_net_is(meta: dict[str, Any], names: list[str]) -> tuple[str, dict[str, Any]]:
    """(array prefix, net info) of the net in a model file: a ``cnn`` model keeps it under ``net_``,
    an ensemble under ``m<i>_net_`` for its ``cnn`` member i. ``net_`` and no info when there is none."""
    members = meta.get("members")
    places = [(f"m{i}_{NET_PREFIX}", m) for i, m in enumerate(members)] if members else [(NET_PREFIX, meta)]
    for prefix, owner in places:
        if f"{prefix}w0" in names:
            return prefix, owner.get("net_info") or {}
    return NET_PREFIX, {}
