"""Training a FeatureNet from labelled faces: backpropagation in numpy, run once, then frozen.

The net is trained as an emotion classifier (its features, then dropout and one linear layer to
the classes) and shipped without that last layer. Settings are the ones measured on grouped folds
of anime_expressions (README, "Emotion model"): widths 32-64-128-128, batch norm, AdamW with a
cosine learning-rate schedule, label smoothing 0.1, and augmentation by mirroring, small shifts,
rotations and scalings, since one face box differs from the next by about that much.
About 30 s per epoch for 7,000 faces on one core; 36 epochs is 18 minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from loguru import logger

from facesortd.feature_net import INPUT_SIZE, FeatureNet, net_input, shifted_columns
from facesortd.progress import Progress

F32 = np.float32


@dataclass(frozen=True)
class NetSettings:
    """How a FeatureNet is trained (the defaults are the measured ones)."""

    widths: tuple[int, ...] = (32, 64, 128, 128)
    epochs: int = 36
    batch: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    dropout: float = 0.2
    rotate_deg: float = 6.0
    scale: float = 0.06
    shift: float = 0.04
    seed: int = 0


class _Layer:
    """A training layer: forward keeps what backward needs; backward sets ``grads`` per param."""

    def __init__(self, *params: np.ndarray) -> None:
        self.params = list(params)
        self.grads: list[np.ndarray] = []

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, g: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _he(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    return (rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype(F32)


class _Conv(_Layer):
    """3x3 convolution, stride 1, zero padding: a matrix product over shifted copies."""

    def __init__(self, cin: int, cout: int, rng: np.random.Generator) -> None:
        super().__init__(_he(rng, 9 * cin, cout), np.zeros(cout, F32))

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self.shape = x.shape
        self.cols = shifted_columns(x)
        return (self.cols @ self.params[0] + self.params[1]).reshape(*x.shape[:3], -1)

    def backward(self, g: np.ndarray) -> np.ndarray:
        n, h, w, c = self.shape
        g2 = g.reshape(n * h * w, -1)
        self.grads = [self.cols.T @ g2, g2.sum(axis=0)]
        dcols = (g2 @ self.params[0].T).reshape(n, h, w, 9, c)
        self.cols = None
        dx = np.zeros((n, h + 2, w + 2, c), F32)
        for k in range(9):
            i, j = divmod(k, 3)
            dx[:, i : i + h, j : j + w, :] += dcols[:, :, :, k, :]
        return dx[:, 1:-1, 1:-1, :]


class _BatchNorm(_Layer):
    def __init__(self, channels: int, momentum: float = 0.9) -> None:
        super().__init__(np.ones(channels, F32), np.zeros(channels, F32))
        self.running_mean = np.zeros(channels, F32)
        self.running_var = np.ones(channels, F32)
        self.momentum = momentum

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        axes = tuple(range(x.ndim - 1))
        if train:
            mean, var = x.mean(axes), x.var(axes)
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mean
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            mean, var = self.running_mean, self.running_var
        self.inv = (1.0 / np.sqrt(var + 1e-5)).astype(F32)
        self.xhat = (x - mean) * self.inv
        return self.xhat * self.params[0] + self.params[1]

    def backward(self, g: np.ndarray) -> np.ndarray:
        axes = tuple(range(g.ndim - 1))
        m = g.size // g.shape[-1]
        self.grads = [(g * self.xhat).sum(axes), g.sum(axes)]
        dxhat = g * self.params[0]
        return (self.inv / m) * (m * dxhat - dxhat.sum(axes) - self.xhat * (dxhat * self.xhat).sum(axes))

    def folded_into(self, conv: _Conv) -> tuple[np.ndarray, np.ndarray]:
        """The convolution's weight and bias with this normalisation (inference form) applied."""
        scale = self.params[0] / np.sqrt(self.running_var + 1e-5)
        w, b = conv.params
        return (w * scale).astype(F32), ((b - self.running_mean) * scale + self.params[1]).astype(F32)


class _ReLU(_Layer):
    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self.mask = x > 0
        return x * self.mask

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g * self.mask


class _MaxPool(_Layer):
    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        n, h, w, c = x.shape
        blocks = x.reshape(n, h // 2, 2, w // 2, 2, c)
        out = blocks.max(axis=(2, 4))
        self.mask = blocks == out[:, :, None, :, None, :]
        self.shape = x.shape
        return out

    def backward(self, g: np.ndarray) -> np.ndarray:
        return (self.mask * g[:, :, None, :, None, :]).reshape(self.shape)


class _MeanPool(_Layer):
    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self.shape = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, g: np.ndarray) -> np.ndarray:
        h, w = self.shape[1:3]
        return np.broadcast_to(g[:, None, None, :] / (h * w), self.shape).astype(F32)


class _Dropout(_Layer):
    def __init__(self, p: float, rng: np.random.Generator) -> None:
        super().__init__()
        self.p, self.rng = p, rng

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self.mask = (self.rng.random(x.shape) > self.p).astype(F32) / (1 - self.p) if train else None
        return x if self.mask is None else x * self.mask

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g if self.mask is None else g * self.mask


class _Linear(_Layer):
    def __init__(self, cin: int, cout: int, rng: np.random.Generator) -> None:
        super().__init__(_he(rng, cin, cout), np.zeros(cout, F32))

    def forward(self, x: np.ndarray, train: bool) -> np.ndarray:
        self.x = x
        return x @ self.params[0] + self.params[1]

    def backward(self, g: np.ndarray) -> np.ndarray:
        self.grads = [self.x.T @ g, g.sum(axis=0)]
        return g @ self.params[0].T


class _AdamW:
    """Adam with decoupled weight decay on weight matrices (not on biases or norm scales)."""

    def __init__(self, layers: list[_Layer], weight_decay: float) -> None:
        self.pairs = [(layer, i) for layer in layers for i in range(len(layer.params))]
        self.m = [np.zeros_like(layer.params[i]) for layer, i in self.pairs]
        self.v = [np.zeros_like(layer.params[i]) for layer, i in self.pairs]
        self.weight_decay, self.t = weight_decay, 0

    def step(self, lr: float, b1: float = 0.9, b2: float = 0.999) -> None:
        self.t += 1
        for (layer, i), m, v in zip(self.pairs, self.m, self.v, strict=True):
            p, g = layer.params[i], layer.grads[i].astype(F32)
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            if p.ndim > 1:
                p -= lr * self.weight_decay * p
            p -= lr * (m / (1 - b1**self.t)) / (np.sqrt(v / (1 - b2**self.t)) + 1e-8)


def _smoothed_cross_entropy(logits: np.ndarray, y: np.ndarray, smoothing: float) -> tuple[float, np.ndarray]:
    """Mean loss and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n, k = logits.shape
    target = np.full((n, k), smoothing / k, F32)
    target[np.arange(n), y] += 1 - smoothing
    return float(-(target * np.log(p + 1e-12)).sum() / n), ((p - target) / n).astype(F32)


def _augmented(faces: np.ndarray, rng: np.random.Generator, s: NetSettings) -> np.ndarray:
    """Each face randomly rotated, scaled, shifted and mirrored, resized to the net's input side."""
    side = faces.shape[1]
    out = np.empty((len(faces), INPUT_SIZE, INPUT_SIZE), F32)
    for k, face in enumerate(faces):
        zoom = rng.uniform(1 - s.scale, 1 + s.scale) * INPUT_SIZE / side
        m = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(-s.rotate_deg, s.rotate_deg), zoom)
        m[:, 2] += (INPUT_SIZE - side) / 2 + rng.uniform(-s.shift, s.shift, 2) * INPUT_SIZE
        warped = cv2.warpAffine(face, m, (INPUT_SIZE, INPUT_SIZE), borderMode=cv2.BORDER_REFLECT)
        out[k] = warped[:, ::-1] if rng.random() < 0.5 else warped
    return out


class _Classifier:
    """The feature layers plus dropout and a linear layer to the classes: what training optimises."""

    def __init__(self, classes: int, s: NetSettings, rng: np.random.Generator) -> None:
        self.blocks: list[tuple[_Conv, _BatchNorm]] = []
        self.features: list[_Layer] = []
        cin = 1
        for width in s.widths:
            conv, norm = _Conv(cin, width, rng), _BatchNorm(width)
            self.blocks.append((conv, norm))
            self.features += [conv, norm, _ReLU(), _MaxPool()]
            cin = width
        self.features.append(_MeanPool())
        self.layers = [*self.features, _Dropout(s.dropout, rng), _Linear(cin, classes, rng)]

    def forward(self, x: np.ndarray, train: bool, layers: list[_Layer] | None = None) -> np.ndarray:
        for layer in self.layers if layers is None else layers:
            x = layer.forward(x, train)
        return x

    def backward(self, g: np.ndarray) -> None:
        for layer in reversed(self.layers):
            g = layer.backward(g)

    def frozen(self, info: dict[str, Any]) -> FeatureNet:
        """The feature layers in inference form (batch norm folded into each convolution)."""
        weights, biases = zip(*(norm.folded_into(conv) for conv, norm in self.blocks), strict=True)
        return FeatureNet(list(weights), list(biases), info)


def train_feature_net(
    faces: np.ndarray, labels: Sequence[str], settings: NetSettings | None = None
) -> FeatureNet:
    """Train on (n, s, s) normalised faces and their emotions; return the frozen feature layers."""
    s = settings or NetSettings()
    names = sorted(set(labels))
    if len(names) < 2:
        raise ValueError(f"need faces of at least 2 emotions to train a feature net, got {names}")
    y = np.array([names.index(lbl) for lbl in labels])
    faces = np.asarray(faces, F32)
    rng = np.random.default_rng(s.seed)
    net = _Classifier(len(names), s, rng)
    optimiser = _AdamW(net.layers, s.weight_decay)
    per_epoch = -(-len(y) // s.batch)
    total = s.epochs * per_epoch
    progress = Progress(total, "training the feature net (batches)")
    for epoch in range(s.epochs):
        order = rng.permutation(len(y))
        loss_sum, right = 0.0, 0
        for b, start in enumerate(range(0, len(y), s.batch)):
            idx = order[start : start + s.batch]
            logits = net.forward(net_input(_augmented(faces[idx], rng, s)), True)
            loss, g = _smoothed_cross_entropy(logits, y[idx], s.label_smoothing)
            net.backward(g)
            step = epoch * per_epoch + b
            optimiser.step(s.learning_rate * 0.5 * (1 + np.cos(np.pi * step / total)))
            loss_sum += loss * len(idx)
            right += int((logits.argmax(axis=1) == y[idx]).sum())
            progress.step()
        logger.info(
            "feature net epoch {}/{}: loss {:.3f}, training accuracy {:.3f}",
            epoch + 1,
            s.epochs,
            loss_sum / len(y),
            right / len(y),
        )
    info = {"labels": names, "counts": {n: int((y == i).sum()) for i, n in enumerate(names)}}
    info["settings"] = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(s).items()}
    return net.frozen(info)
