"""The CNN verifier's net in PyTorch: its layout, the batches it is trained on and its export to
the numpy runtime (conv_net.py).

The loop and the batch-norm folding are the emotion net's (torch_training.train_classifier and
fold_conv_blocks): one PyTorch training path. What is the verifier's own: the head keeps the
spatial layout of the last map (flattened, then a hidden layer; the emotion net averages over
positions), batches are half faces and half non-faces (the classes weigh equally, as rare faces
among many proposals need), and its two class outputs are exported as one face logit.

Only for the training extra (``pip install facesortd[train]``); nothing the service runs imports
this module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from facesortd.conv_net import ConvNet
from facesortd.learn.loop_settings import LoopSettings
from facesortd.learn.torch_training import conv_blocks, fold_conv_blocks, train_classifier

BATCH = 128
GAIN = 0.25
"""Augmentation: contrast and brightness changed by up to this much (inputs are standardised)."""
HARD_SHARE = 0.5
"""With --verifier-augment: the share of samples given each of the three changes below."""
TILT = 15.0
"""Rotation by up to this many degrees (a tilted head)."""
GAMMA = 3.0
"""Tone curve x ** g with g between 1 / GAMMA and GAMMA: unlike a gain, which the per-crop
standardisation undoes, it changes which parts of the crop are dark (dark skin, deep shadow)."""
COVER = (0.25, 0.5)
"""A flat rectangle of this share of the side (a hand, a hood, an eye patch, glasses' frame)."""


def harder(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, s, s, 1) standardised inputs with the faces the fold nets rejected in mind: tilted,
    re-toned and partly covered, each change on HARD_SHARE of the samples, faces and non-faces
    alike (so that a covered patch says nothing of the class). Each crop keeps its mean and
    spread, as the runtime's standardisation would give it."""
    out = x[..., 0].copy()
    n, side = len(out), out.shape[1]
    for i in np.flatnonzero(rng.random(n) < HARD_SHARE):
        turn = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), rng.uniform(-TILT, TILT), 1.0)
        out[i] = cv2.warpAffine(out[i], turn, (side, side), borderMode=cv2.BORDER_REFLECT)
    for i in np.flatnonzero(rng.random(n) < HARD_SHARE):
        lo, hi = out[i].min(), out[i].max()
        out[i] = ((out[i] - lo) / (hi - lo + 1e-6)) ** (GAMMA ** rng.uniform(-1, 1))
    for i in np.flatnonzero(rng.random(n) < HARD_SHARE):
        h, w = (rng.uniform(*COVER, 2) * side).astype(int)
        top, left = rng.integers(0, side - h + 1), rng.integers(0, side - w + 1)
        out[i, top : top + h, left : left + w] = rng.uniform(-1.5, 1.5)
    axes = (1, 2, 3)
    standard = (out[..., None] - out.mean(axis=(1, 2))[:, None, None, None]) / (
        out.std(axis=(1, 2))[:, None, None, None] + 1e-6
    )
    return (standard * x.std(axis=axes, keepdims=True) + x.mean(axis=axes, keepdims=True)).astype(np.float32)


def verifier_loop(samples: int, epochs: int, seed: int = 0) -> LoopSettings:
    """The verifier's training: ``epochs`` passes' worth of batches over ``samples`` inputs (the
    default length is cnn_verifier.NetShape's)."""
    return LoopSettings(
        epochs=epochs,
        steps_per_epoch=max(1, -(-samples // BATCH)),
        batch=BATCH,
        learning_rate=3e-3,
        weight_decay=5e-4,
        label_smoothing=0.0,
        seed=seed,
    )


class TorchConvNet(nn.Module):
    """The training twin of conv_net.ConvNet, with two outputs (non-face, face)."""

    def __init__(self, widths: Sequence[int], side: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.features = conv_blocks(widths)
        flat = widths[-1] * (side // 2 ** len(widths)) ** 2
        self.head = nn.Sequential(
            nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1, s, s) -> (n, 2); flattened (row, column, channel) as the numpy runtime does."""
        return self.head(self.features(x).permute(0, 2, 3, 1).flatten(1))


def _as_tensor(x: np.ndarray) -> torch.Tensor:
    """(n, s, s, 1) prepared inputs (verify.cnn_input) -> (n, 1, s, s)."""
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32))


def fit(
    make_net: Callable[[], TorchConvNet],
    x: np.ndarray,
    y: np.ndarray,
    loop: LoopSettings,
    augment: bool = False,
) -> TorchConvNet:
    """A net from ``make_net`` trained on (n, s, s, 1) inputs (verify.cnn_input) and 0/1 labels
    (1 = face); built after seeding, so its start is ``loop.seed``'s. ``augment``: batches also
    go through ``harder``."""
    faces, others = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
    if not len(faces) or not len(others):
        raise ValueError(f"the verifier needs faces and non-faces ({len(faces)} and {len(others)} given)")

    def draw(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.concatenate([rng.choice(faces, batch // 2), rng.choice(others, batch - batch // 2)])
        xb = harder(x[idx], rng) if augment else x[idx]
        flip = rng.random(len(idx)) < 0.5
        xb = np.where(flip[:, None, None, None], xb[:, :, ::-1], xb)
        scale = 1 + GAIN * rng.uniform(-1, 1, (len(idx), 1, 1, 1))
        shift = GAIN * rng.uniform(-1, 1, (len(idx), 1, 1, 1))
        return (xb * scale + shift).astype(np.float32), (y[idx] == 1).astype(np.int64)

    return train_classifier(make_net, draw, loop, "verifier", to_input=_as_tensor)


def predict(net: TorchConvNet, x: np.ndarray) -> np.ndarray:
    """(n,) face logits of the trained net (what the exported net's single output gives)."""
    batch = 1024
    net.eval()
    with torch.no_grad():
        out = torch.cat([net(_as_tensor(x[i : i + batch])) for i in range(0, len(x), batch)])
    return (out[:, 1] - out[:, 0]).numpy()


def export(net: TorchConvNet) -> ConvNet:
    """The numpy runtime's net; the two class outputs become one face logit (their difference,
    which is what the softmax compares)."""
    dense = [
        (m.weight.detach().numpy().T.astype(np.float32).copy(), m.bias.detach().numpy().astype(np.float32))
        for m in net.head
        if isinstance(m, nn.Linear)
    ]
    w, b = dense[-1]
    dense[-1] = (w[:, 1:] - w[:, :1], b[1:] - b[:1])
    return ConvNet(fold_conv_blocks(net.features), dense)
