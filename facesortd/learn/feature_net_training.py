"""Training the emotion FeatureNet with PyTorch, once, then freezing it into the model file.

The net learns to tell the emotions apart (features, dropout, one linear layer to the classes) and
is shipped without that last layer: its features feed the PCA/LDA head, which is what a user's
labels update. What it must learn is the expression, not the artist: each batch draws every data
source equally and every emotion within a source equally (the many crops of one illustration set
must not drown the fewer faces of many artists: README, "Emotion model"), and every face is redrawn
(torch_training.style_augment) with new backgrounds behind transparent sprites, new tones, blur,
JPEG and small moves.

PyTorch is imported only when a net is trained (the ``train`` extra); a missing PyTorch is a
one-line message. Settings and their measured effect: README, "Emotion model".
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from facesortd.faces import chroma
from facesortd.feature_net import INPUT_SIZE, FeatureNet
from facesortd.learn.backdrops import Backdrops
from facesortd.learn.loop_settings import LoopSettings

if TYPE_CHECKING:
    from facesortd.learn.training import FaceSet

BACKGROUND_POOL = 512
"""Background patches made once per net and drawn from at random."""


@dataclass(frozen=True)
class NetSettings:
    """How a FeatureNet is trained (the defaults are the measured ones)."""

    widths: tuple[int, ...] = (16, 32, 64, 128)
    dropout: float = 0.2
    input_size: int = INPUT_SIZE
    source_weights: tuple[tuple[str, float], ...] = ()
    """(data source, factor) pairs that draw a source's faces more or less often than an equal share."""
    loop: LoopSettings = field(default_factory=LoopSettings)
    backdrops: Backdrops | None = field(default=None, compare=False)
    """Pictures to put behind transparent faces (made backgrounds only when None)."""


def torch_installed() -> bool:
    """Whether a net can be trained here (PyTorch is the optional ``train`` extra)."""
    return importlib.util.find_spec("torch") is not None


def sampling_weights(
    labels: list[str], sources: list[str], factors: dict[str, float] | None = None
) -> np.ndarray:
    """Probability of drawing each face: sources equal (times their ``factors``), emotions equal
    within a source."""
    pairs = list(zip(sources, labels, strict=True))
    per_source: dict[str, set[str]] = {}
    for s, lbl in pairs:
        per_source.setdefault(s, set()).add(lbl)
    counts: dict[tuple[str, str], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    factor = factors or {}
    w = np.array(
        [factor.get(s, 1.0) / (len(per_source) * len(per_source[s]) * counts[s, lbl]) for s, lbl in pairs]
    )
    return w / w.sum()


def background_patches(
    backdrops: Backdrops, size: int, rng: np.random.Generator, colour: bool = False
) -> np.ndarray:
    """(BACKGROUND_POOL, size, size) grey scenes in [0, 1], or (..., 3) grey + chroma for colour
    faces (faces.normalise_face's planes)."""
    patches = np.empty(
        (BACKGROUND_POOL, size, size, 3) if colour else (BACKGROUND_POOL, size, size), np.float32
    )
    for i in range(BACKGROUND_POOL):
        scene = backdrops.random(rng, (size, size))
        grey = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
        patches[i] = np.dstack([grey, chroma(scene)]) if colour else grey
    return patches


def train_feature_net(data: FaceSet, settings: NetSettings | None = None) -> FeatureNet:
    """A FeatureNet trained on ``data`` (faces, labels, sources, opacity); needs PyTorch."""
    from facesortd.learn.torch_training import export_feature_net  # the train extra: never at run time

    return export_feature_net(*train_emotion_net(data, settings))


def train_emotion_net(data: FaceSet, settings: NetSettings | None = None) -> tuple[Any, dict[str, Any]]:
    """The PyTorch ConvNet, classifier layer included, trained on ``data``, and what to record of
    it (the classes are its outputs, in this order); needs PyTorch."""
    from facesortd.learn.torch_training import Augmentation, ConvNet, style_augment, train_classifier

    s = settings or NetSettings()
    names = sorted(set(data.labels))
    y = np.array([names.index(lbl) for lbl in data.labels])
    p = sampling_weights(data.labels, data.sources, dict(s.source_weights))
    alpha = data.opacity()
    rng = np.random.default_rng(s.loop.seed)
    colour = data.faces.ndim == 4
    backgrounds = background_patches(s.backdrops or Backdrops(), data.faces.shape[1], rng, colour)
    aug = Augmentation()

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        idx = rng.choice(len(y), size=n, p=p)
        return style_augment(data.faces[idx], alpha[idx], backgrounds, rng, aug), y[idx]

    channels = data.faces.shape[3] if colour else 1
    net = train_classifier(
        partial(ConvNet, s.widths, len(names), s.dropout, channels, s.input_size),
        draw,
        s.loop,
        f"training a feature net on {len(y)} faces",
    )
    info = {
        "widths": list(s.widths),
        "colour": colour,
        "classes": names,
        "epochs": s.loop.epochs,
        "steps_per_epoch": s.loop.steps_per_epoch,
        "batch": s.loop.batch,
        "trained_on": len(y),
        "sources": sorted(set(data.sources)),
        **({"source_weights": dict(s.source_weights)} if s.source_weights else {}),
    }
    return net, info
