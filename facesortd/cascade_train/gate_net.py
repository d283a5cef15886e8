"""Training of the detection gate (needs PyTorch): a small fully convolutional net that marks, on
a 320-px-wide grey copy, the 16-px cells holding a face centre and each face's side, so that the
cascade's full-size pass scans only there (facesortd/gate.py runs it without torch).

It learns from composed scenes (cascade_train/scenes.py) of the repositories given, plus busy
face-free pictures of smooth colour noise: in the feasibility study such pictures were the worst
case, where two nets of one recipe kept very different shares of the cascade's positions
(cascade_classifier/README.md, "A net in front of the cascade").

    python -m facesortd.cascade_train gate --vn-faces DIR --out gate.npz [--fold K]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from loguru import logger

from facesortd.advice import INSTALL_TRAIN_EXTRA
from facesortd.boxes import Box
from facesortd.cascade_train.scenes import FOLDS, SceneMaker, Sources
from facesortd.cli.arg_types import file_to_replace, read_by
from facesortd.gate import CELL, GATE_WIDTH, WIDTHS, GateError, GateNet, standardised
from facesortd.learn.datasets import is_vn_faces
from facesortd.progress import Progress

try:
    import torch
    from torch import nn

    from facesortd.learn.torch_training import conv_blocks, fold_conv_blocks, optimiser_step
except ImportError as exc:  # pragma: no cover - the training extra is missing
    raise ImportError(f"training the gate needs PyTorch: {INSTALL_TRAIN_EXTRA}") from exc

TRAIN_HEIGHT = 176
"""The training pictures' height at GATE_WIDTH: a 16:9 scene, rounded down to whole cells."""
NOISE_SHARE = 0.1
"""Share of the training pictures that are smooth noise without faces (see the module docstring)."""
POS_WEIGHT = 4.0
"""Weight of a face-centre cell in the loss: about one cell in 200 holds one."""
SIDE_WEIGHT = 0.5
"""Weight of the log-side regression against the centre loss."""


def picture(image: np.ndarray, boxes: Sequence[Box]) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    """A BGR scene as the net sees it in training (grey, GATE_WIDTH x TRAIN_HEIGHT) and its boxes there."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    fx, fy = GATE_WIDTH / grey.shape[1], TRAIN_HEIGHT / grey.shape[0]
    small = cv2.resize(grey, (GATE_WIDTH, TRAIN_HEIGHT), interpolation=cv2.INTER_AREA)
    return small, [(x * fx, y * fy, w * fx, h * fy) for x, y, w, h in boxes]


def smooth_noise(rng: np.random.Generator) -> np.ndarray:
    """A busy face-free picture like bench_sort_process.py's (colour noise blown up smoothly), at
    a random grain, in grey at the training size."""
    cols = int(rng.integers(12, 120))
    coarse = rng.integers(0, 255, (max(2, cols * 9 // 16), cols, 3), np.uint8)
    big = cv2.resize(coarse, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    return picture(big, [])[0]


def pictures(
    sources: Sources, repos: Sequence[str], count: int, seed: int
) -> tuple[np.ndarray, list[list[tuple[float, ...]]]]:
    """``count`` training pictures: scenes of ``repos`` and NOISE_SHARE smooth-noise ones."""
    maker = SceneMaker(sources, repos, seed)
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    progress = Progress(count, "gate pictures")
    for i in range(count):
        if rng.random() < NOISE_SHARE:
            images.append(smooth_noise(rng))
            boxes.append([])
        else:
            scene = maker.scene(f"gate{i}", face_free=maker.rng.random() < 0.12)
            image, scene_boxes = picture(scene.image, scene.boxes)
            images.append(image)
            boxes.append(scene_boxes)
        progress.step()
    return np.stack(images), boxes


def targets(boxes: Sequence[tuple[float, ...]], shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Per cell: the centre target (1 in a face centre's cell, -1 = left out of the loss in its 8
    neighbours, which a centre near a cell edge makes ambiguous, 0 elsewhere), the log side and
    where the side counts (the 3x3 cells around a centre). Smaller faces win shared cells."""
    gh, gw = shape[0] // CELL, shape[1] // CELL
    centre = np.zeros((gh, gw), np.float32)
    side = np.zeros((gh, gw), np.float32)
    sized = np.zeros((gh, gw), np.float32)
    for x, y, w, h in sorted(boxes, key=lambda b: -max(b[2], b[3])):
        if min(w, h) < 4:
            continue
        cx = min(max(int((x + w / 2) // CELL), 0), gw - 1)
        cy = min(max(int((y + h / 2) // CELL), 0), gh - 1)
        ys, xs = slice(max(0, cy - 1), cy + 2), slice(max(0, cx - 1), cx + 2)
        centre[ys, xs] = np.where(centre[ys, xs] == 1, 1, -1)
        side[ys, xs], sized[ys, xs] = np.log(max(w, h)), 1
        centre[cy, cx] = 1
    return centre, side, sized


class GateTorch(nn.Module):
    """The gate as trained: WIDTHS conv blocks (cells of 16 px) and a 1x1 head of two outputs per
    cell, the face-centre logit and the log of the face's side in GATE_WIDTH pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.body = conv_blocks(WIDTHS)
        self.head = nn.Conv2d(WIDTHS[-1], 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def to_input(images: np.ndarray) -> torch.Tensor:
    """(n, h, w) uint8 -> (n, 1, h, w), standardised as at run time."""
    return torch.from_numpy(standardised(images))[:, None]


def train(
    images: np.ndarray, boxes: Sequence[Sequence[tuple[float, ...]]], steps: int, seed: int, batch: int = 32
) -> GateTorch:
    """Train on the pictures with random contrast, brightness and horizontal flips (320 px = 20
    cells, so a flip keeps the cells aligned). Reproducible from ``seed`` on one thread."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    t = [targets(b, images.shape[1:]) for b in boxes]
    centre, side, sized = (torch.from_numpy(np.stack([x[i] for x in t])) for i in range(3))
    net = GateTorch()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps, pct_start=0.05)
    bce = nn.BCEWithLogitsLoss(reduction="none", pos_weight=torch.tensor(POS_WEIGHT))
    progress = Progress(steps, "gate training steps")
    net.train()
    order, at = rng.permutation(len(images)), 0
    for _ in range(steps):
        if at + batch > len(order):
            order, at = rng.permutation(len(images)), 0
        idx = order[at : at + batch]
        at += batch
        x = to_input(images[idx])
        contrast = rng.uniform(0.6, 1.4, (len(idx), 1, 1, 1)).astype(np.float32)
        shift = rng.uniform(-0.8, 0.8, (len(idx), 1, 1, 1)).astype(np.float32)
        x = x * torch.from_numpy(contrast) + torch.from_numpy(shift)
        c, s, m = centre[idx], side[idx], sized[idx]
        if rng.random() < 0.5:
            x, c, s, m = x.flip(-1), c.flip(-1), s.flip(-1), m.flip(-1)
        out = net(x)
        keep = (c >= 0).float()
        loss_centre = (bce(out[:, 0], c.clamp(min=0)) * keep).sum() / keep.sum()
        loss_side = ((out[:, 1] - s) ** 2 * m).sum() / m.sum().clamp(min=1)
        optimiser_step(loss_centre + SIDE_WEIGHT * loss_side, opt, schedule)
        progress.step()
    net.eval()
    return net


def exported(net: GateTorch, info: dict[str, object]) -> GateNet:
    """The trained net as the numpy runtime's arrays (batch norm folded)."""
    blocks = fold_conv_blocks(net.body)
    head_w = net.head.weight.detach().numpy()[:, :, 0, 0].T.astype(np.float32)
    head_b = net.head.bias.detach().numpy().astype(np.float32)
    return GateNet([w for w, _ in blocks], [b for _, b in blocks], head_w, head_b, info)


def torch_outputs(net: GateTorch, images: np.ndarray) -> np.ndarray:
    """(n, h/16, w/16, 2) by PyTorch, to check the export."""
    with torch.no_grad():
        return net(to_input(images)).numpy().transpose(0, 2, 3, 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vn-faces", type=Path, required=True, metavar="DIR", help="vn_faces data folder")
    parser.add_argument(
        "--out",
        type=file_to_replace("gate file", read_by(GateNet.load, GateError)),
        required=True,
        help="gate file to write (.npz); a gate file there is replaced, any other file is refused",
    )
    parser.add_argument(
        "--fold",
        type=int,
        choices=range(FOLDS),
        help=f"leave this fold of Sources.folds({FOLDS}) out (a fold net for bench_detect_scenes.py "
        "--fold-gates); default: train on every repository",
    )
    parser.add_argument(
        "--pictures",
        type=int,
        default=6000,
        help="training pictures (default %(default)s; how long they take: cascade_classifier/README.md)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=1000,
        help="batches of 32 (default %(default)s; how long they take: cascade_classifier/README.md)",
    )
    parser.add_argument("--seed", type=int, default=11, help="same data + seed = same net (one thread)")


def run(args: argparse.Namespace) -> int:
    if not is_vn_faces(args.vn_faces):
        print(f"error: {args.vn_faces} is not a vn_faces folder (index.json beside faces/)", file=sys.stderr)
        return 2
    sources = Sources.load(args.vn_faces)
    folds = sources.folds(FOLDS)
    repos = [r for k, fold in enumerate(folds) if k != args.fold for r in fold]
    logger.info(
        "gate: {} repositories{}", len(repos), "" if args.fold is None else f" (fold {args.fold} left out)"
    )
    images, boxes = pictures(sources, repos, args.pictures, args.seed)
    net = train(images, boxes, args.steps, args.seed)
    info = {
        "repos": repos,
        "fold_left_out": args.fold,
        "pictures": args.pictures,
        "steps": args.steps,
        "seed": args.seed,
        "command": " ".join(sys.argv),
    }
    gate = exported(net, info)
    check = np.abs(gate.outputs(images[:4]) - torch_outputs(net, images[:4])).max()
    logger.info("numpy forward matches torch to {:.1e}", check)
    gate.save(args.out)
    logger.info("gate written to {}", args.out)
    print(json.dumps({"out": str(args.out), "max_diff": float(check)}))
    return 0
