"""Training small convolutional nets with PyTorch, and exporting them to the numpy forward pass.

Generic on purpose: the emotion feature net (learn/feature_net_training.py) and any other net over
normalised grayscale faces (a face verifier) share the same pieces:

- :class:`ConvNet`: 3x3 convolution + batch norm + ReLU + 2x2 max pool blocks, then the mean over
  positions (the features), then dropout and one linear layer (the classes while training);
- :func:`style_augment`: changes in drawing style and scene rather than in pose (backgrounds
  behind transparent faces, tone, blur, JPEG, noise, small scale/shift/rotation, mirroring);
- :func:`train_classifier`: AdamW, cosine learning rate, label smoothing, over batches a caller
  draws (so it decides how sources and classes are balanced, and how inputs are augmented);
- :func:`fold_conv_blocks`: batch norm folded into the convolutions, as the numpy runtimes
  (:class:`facesortd.feature_net.FeatureNet`, :class:`facesortd.conv_net.ConvNet`) run them
  without PyTorch; :func:`export_feature_net` for the emotion net.

PyTorch is the ``train`` extra: importing this module without it raises a TrainingDependencyError
whose message says what to install. Run time never imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from facesortd.advice import INSTALL_TRAIN_EXTRA
from facesortd.feature_net import INPUT_SIZE, FeatureNet, net_input
from facesortd.learn.loop_settings import LoopSettings
from facesortd.progress import Progress


class TrainingDependencyError(ImportError):
    """PyTorch is missing; only training a net needs it."""


try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise TrainingDependencyError(
        f"training a feature net needs PyTorch: {INSTALL_TRAIN_EXTRA} "
        "(or train without --train-features to use the shipped net)"
    ) from exc


@dataclass(frozen=True)
class Augmentation:
    """How far :func:`style_augment` may move a face (defaults: what one face box differs from the
    next by, and the range of tones and line quality between artists and video encoders)."""

    rotate_deg: float = 8.0
    scale: float = 0.08
    shift: float = 0.05
    tone: float = 0.25
    blur: float = 0.3
    jpeg: float = 0.3
    noise: float = 0.2
    mirror: bool = True


def style_augment(
    faces: np.ndarray,
    alpha: np.ndarray,
    backgrounds: np.ndarray,
    rng: np.random.Generator,
    aug: Augmentation,
) -> np.ndarray:
    """(n, s, s) grey or (n, s, s, 3) colour normalised faces in [0, 1] -> the same faces drawn
    differently.

    ``alpha`` (uint8, 255 = drawn) says where a face may get a new scene behind it, taken at
    random from ``backgrounds`` (rendered like the faces) ; opaque faces keep theirs. Tone, blur
    and JPEG act on the grey plane (a colour face's first); the chroma planes get the same moves
    and a saturation change, never a hue shift (a blush must stay red).
    """
    out = np.empty_like(faces, dtype=np.float32)
    s = faces.shape[1]
    for i, face in enumerate(faces):
        a = alpha[i].astype(np.float32) / 255.0
        a = a if face.ndim == 2 else a[..., None]
        if a.min() < 1.0 and len(backgrounds):
            face = face * a + backgrounds[int(rng.integers(len(backgrounds)))] * (1.0 - a)
        angle = rng.uniform(-aug.rotate_deg, aug.rotate_deg)
        scale = 1.0 + rng.uniform(-aug.scale, aug.scale)
        m = cv2.getRotationMatrix2D((s / 2.0, s / 2.0), angle, scale)
        m[:, 2] += rng.uniform(-aug.shift, aug.shift, 2) * s
        face = cv2.warpAffine(face.astype(np.float32), m, (s, s), borderMode=cv2.BORDER_REFLECT_101)
        if aug.mirror and rng.random() < 0.5:
            face = face[:, ::-1]
        grey = face if face.ndim == 2 else face[..., 0]
        gamma = np.exp(rng.uniform(-aug.tone, aug.tone))
        grey = np.clip(grey, 0.0, 1.0) ** gamma
        grey = (
            (grey - 0.5) * (1.0 + rng.uniform(-aug.tone, aug.tone)) + 0.5 + rng.uniform(-0.1, 0.1) * aug.tone
        )
        blur = rng.uniform(0.4, 1.2) if rng.random() < aug.blur else 0.0
        if blur:
            grey = cv2.GaussianBlur(grey, (0, 0), blur)
        if rng.random() < aug.jpeg:
            u8 = np.clip(grey * 255.0, 0, 255).astype(np.uint8)
            _, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 70))])
            grey = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
        if rng.random() < aug.noise:
            grey = grey + rng.normal(0.0, rng.uniform(0.01, 0.05), grey.shape)
        if face.ndim == 2:
            out[i] = np.clip(grey, 0.0, 1.0)
            continue
        colour = 0.5 + (face[..., 1:] - 0.5) * (1.0 + rng.uniform(-aug.tone, aug.tone))
        if blur:
            colour = cv2.GaussianBlur(colour, (0, 0), blur)
        out[i] = np.clip(np.dstack([grey, colour]), 0.0, 1.0)
    return out


def conv_blocks(widths: Sequence[int], channels: int = 1) -> nn.Sequential:
    """The convolution stack both shipped nets share (``channels`` in: 1 grey, 3 grey + chroma):
    per width a 3x3 convolution without bias (batch norm brings its own), batch norm, ReLU and 2x2
    max pooling — the layout the numpy runtime folds and runs."""
    layers: list[nn.Module] = []
    cin = channels
    for cout in widths:
        conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        layers += [conv, nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
        cin = cout
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """The architecture :class:`FeatureNet` runs: blocks of 3x3 conv (no bias) + batch norm + ReLU +
    2x2 max pool, the mean over positions as features, then dropout and a linear classifier."""

    def __init__(
        self, widths: tuple[int, ...], classes: int, dropout: float, channels: int = 1, size: int = INPUT_SIZE
    ) -> None:
        super().__init__()
        self.input_size = size
        self.body = conv_blocks(widths, channels)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def to_tensor(faces: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """(n, s, s[, c]) normalised faces -> (n, c, size, size) net input, prepared exactly as at run time."""
    return torch.from_numpy(np.ascontiguousarray(net_input(faces, size).transpose(0, 3, 1, 2)))


Batch = tuple[np.ndarray, np.ndarray]
NetT = TypeVar("NetT", bound=nn.Module)


def train_classifier(
    make_net: Callable[[], NetT],
    draw: Callable[[np.random.Generator, int], Batch],
    loop: LoopSettings,
    what: str,
    to_input: Callable[[np.ndarray], torch.Tensor] | None = None,
) -> NetT:
    """Build a net with ``make_net`` and train it on batches ``draw(rng, batch)`` -> (faces (n, s,
    s), class indices (n,)).

    The net is built here, after seeding, so that its starting weights come from ``loop.seed`` and
    not from whatever the process drew before (fold nets of one run, or the same command in two
    processes, would otherwise differ). ``to_input`` turns a drawn batch into the net's input
    (default: the emotion net's, to_tensor at the net's input size); the verifier draws inputs
    already prepared. Reproducible from ``seed`` (on one thread: OMP_NUM_THREADS=1).
    """
    torch.manual_seed(loop.seed)
    net = make_net()
    rng = np.random.default_rng(loop.seed)
    steps = loop.epochs * loop.steps_per_epoch
    opt = torch.optim.AdamW(net.parameters(), lr=loop.learning_rate, weight_decay=loop.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, loop.learning_rate, total_steps=steps, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=loop.label_smoothing)
    progress = Progress(steps, what)
    net.train()
    for _ in range(steps):
        faces, labels = draw(rng, loop.batch)
        x = to_input(faces) if to_input else to_tensor(faces, net.input_size)
        optimiser_step(loss_fn(net(x), torch.from_numpy(labels.astype(np.int64))), opt, schedule)
        progress.step()
    net.eval()
    return net


def optimiser_step(
    loss: torch.Tensor, opt: torch.optim.Optimizer, schedule: torch.optim.lr_scheduler.LRScheduler
) -> None:
    """One step of gradient descent on ``loss`` and of the learning-rate schedule."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    schedule.step()


def fold_conv_blocks(blocks: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weights, bias) per block of a trained :func:`conv_blocks` stack: batch norm folded into the
    convolution, weights laid out as (9 * in, out) rows in the numpy runtimes' shifted-column order
    (row, column, channel)."""
    out = []
    layers = list(blocks)
    for conv, bn in zip(layers[0::4], layers[1::4], strict=True):
        w = conv.weight.detach().double()
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        shift = bn.bias.detach().double() - bn.running_mean.double() * scale
        folded = w * scale[:, None, None, None]  # (out, in, 3, 3)
        out.append(
            (
                folded.permute(2, 3, 1, 0).reshape(-1, w.shape[0]).numpy().astype(np.float32),
                shift.numpy().astype(np.float32),
            )
        )
    return out


def export_feature_net(net: ConvNet, info: dict[str, object]) -> FeatureNet:
    """The trained body as FeatureNet arrays (:func:`fold_conv_blocks`)."""
    blocks = fold_conv_blocks(net.body)
    return FeatureNet([w for w, _ in blocks], [b for _, b in blocks], {**info, "input_size": net.input_size})
