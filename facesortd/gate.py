"""The detection gate: a small net that says where the cascade's full-size pass looks.

The full-size pass costs most of a screenshot's CPU and every cheaper scan of the cascade alone
lost faces (cascade_classifier/README.md). The gate runs a fully convolutional net (numpy, no
torch) on the 640-px copy detection already makes, shrunk by 2 and by 4, marks the 16-px cells
that may hold a face centre with the face's side, and turns them into square regions per window
size. The cascade still proposes and the verifier still accepts; the gate only narrows where the
cascade looks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facesortd.durable import read_npz, write_npz
from facesortd.feature_net import conv_block

WIDTHS = (8, 16, 32, 32)
"""Channels of the gate's four conv blocks: four 2x2 poolings make cells of 16 px."""
CELL = 2 ** len(WIDTHS)
GATE_WIDTH = 320
"""Width of the pictures the net is trained on (the 640-px copy shrunk by 2)."""
LEVELS = (2, 4)
"""Shrink factors of the 640-px copy the net runs on: faces of the seed's close-ups are too big
for cells at 320 px alone (feasibility study, cascade_classifier/README.md)."""
THRESHOLD = 0.05
"""A cell is marked from this face-centre probability up (picked on held-out folds' worst)."""
SIDE_RANGE = (0.5, 2.0)
"""A marked cell asks for windows of these multiples of its predicted face side and between."""
REACH = 1.0
"""A marked cell asks for windows centred in its square: the cell widened by this share of the
predicted face side (half of it on each side)."""
WHOLE_BELOW = 0
"""Windows smaller than this (px of the 640-px copy) are scanned everywhere: the net misses most
of the faces it loses among the smallest, and the small windows, stepped by 2 px, are cheap."""
WHOLE_ABOVE = float("inf")
"""Windows from this size up (px of the 640-px copy) are scanned everywhere: OpenCV's grouping
drops a small group lying inside a bigger, better-supported one, so a group's fate depends on the
big windows around it; the big windows are few (large steps on a small resized picture)."""
COMPLETE = True
"""Complete the neighbourhoods of the windows found (region_scan.raw_windows): grouping then sees
each cluster the gate touched whole, which brings the gated scan's faces nearer the whole scan's
and costs much of the gate's saving on busy pictures (cascade_classifier/README.md)."""

Region = tuple[int, int, int, int]
"""(x0, y0, x1, y1) in pixels of the image the regions are for."""


class GateError(Exception):
    """A gate file cannot be used; the message says how to fix it."""


def standardised(images: np.ndarray) -> np.ndarray:
    """uint8 grey -> float32 around 0, as the net was trained."""
    return (images.astype(np.float32) / 255.0 - 0.5) / 0.25


@dataclass(frozen=True)
class Mark:
    """A marked cell: the centre of its square and the predicted face side, in the image's pixels."""

    x: float
    y: float
    side: float
    half: float
    """Half the square's side (the cell widened by REACH of the face's side)."""


@dataclass
class GateNet:
    """The folded conv blocks (``weights[i]`` (9 * in, out)) and the 1x1 head (centre logit, log side)."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    head_w: np.ndarray
    head_b: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def outputs(self, images: np.ndarray) -> np.ndarray:
        """(n, h, w) uint8, sides multiples of CELL -> (n, h/CELL, w/CELL, 2): logit, log side."""
        x = standardised(images)[..., None]
        for w, b in zip(self.weights, self.biases, strict=True):
            x = conv_block(x, w, b)
        return x @ self.head_w + self.head_b

    def save(self, path: Path) -> None:
        """Under exactly ``path`` (a detection.gate names it), whole or not at all."""
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)} | {
            f"b{i}": b for i, b in enumerate(self.biases)
        }
        info = np.array(json.dumps(self.info))
        write_npz(path, {"head_w": self.head_w, "head_b": self.head_b, "info": info, **arrays})

    @classmethod
    def load(cls, path: Path) -> GateNet:
        try:
            with read_npz(path) as z:
                n = sum(1 for k in z.files if k.startswith("w"))
                return cls(
                    [z[f"w{i}"] for i in range(n)],
                    [z[f"b{i}"] for i in range(n)],
                    z["head_w"],
                    z["head_b"],
                    json.loads(str(z["info"])),
                )
        except (OSError, KeyError, ValueError, TypeError) as exc:  # TypeError: a bare .npy array
            raise GateError(
                f"gate file {path} cannot be read ({exc}); set detection.gate to a file written by "
                "`python -m facesortd.cascade_train gate`, or to off"
            ) from exc


class Gate:
    """Marks where faces may be in the 640-px copy and which windows each place asks for."""

    def __init__(
        self,
        net: GateNet,
        threshold: float = THRESHOLD,
        side_range: tuple[float, float] = SIDE_RANGE,
        reach: float = REACH,
        whole_below: int = WHOLE_BELOW,
        whole_above: float = WHOLE_ABOVE,
        complete: bool = COMPLETE,
    ) -> None:
        self.net = net
        self.threshold = threshold
        self.side_range = side_range
        self.reach = reach
        self.whole_below = whole_below
        self.whole_above = whole_above
        self.complete = complete

    def marks(self, small: np.ndarray) -> list[Mark]:
        """The marked cells of ``small`` (grey, not equalised: the net learnt unequalised pictures)
        at every level, in ``small``'s pixels."""
        logit = float(np.log(self.threshold / (1.0 - self.threshold)))
        found: list[Mark] = []
        for level in LEVELS:
            h, w = small.shape[0] // level, small.shape[1] // level
            if min(h, w) < CELL:
                continue
            shrunk = cv2.resize(small, (w, h), interpolation=cv2.INTER_AREA)
            padded = cv2.copyMakeBorder(shrunk, 0, -h % CELL, 0, -w % CELL, cv2.BORDER_REPLICATE)
            out = self.net.outputs(padded[None])[0]
            for cy, cx in zip(*np.nonzero(out[..., 0] >= logit), strict=True):
                side = float(np.exp(out[cy, cx, 1])) * level
                found.append(
                    Mark(
                        (cx + 0.5) * CELL * level,
                        (cy + 0.5) * CELL * level,
                        side,
                        (CELL * level + self.reach * side) / 2,
                    )
                )
        return found

    def regions(self, marks: Sequence[Mark], window: float, shape: tuple[int, ...]) -> list[Region]:
        """Where windows of side ``window`` are scanned: the squares of the marks asking for that
        size, widened by half a window (a window is scanned when its centre lies in a square),
        clipped to ``shape`` and merged until none overlap (a window scanned twice would
        count as its own neighbour in grouping)."""
        if window < self.whole_below or window >= self.whole_above:
            return [(0, 0, shape[1], shape[0])]
        lo, hi = self.side_range
        squares = [
            (
                max(0, int(m.x - m.half - window / 2)),
                max(0, int(m.y - m.half - window / 2)),
                min(shape[1], int(np.ceil(m.x + m.half + window / 2))),
                min(shape[0], int(np.ceil(m.y + m.half + window / 2))),
            )
            for m in marks
            if lo * m.side <= window <= hi * m.side
        ]
        return merged([s for s in squares if s[0] < s[2] and s[1] < s[3]])


def merged(regions: list[Region]) -> list[Region]:
    """Overlapping regions joined (their bounding box) until none overlap."""
    done: list[Region] = []
    todo = list(regions)
    while todo:
        a = todo.pop()
        touching = [b for b in done if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]]
        if not touching:
            done.append(a)
            continue
        for b in touching:
            done.remove(b)
            a = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
        todo.append(a)
    return done


def load_gate(path: Path) -> Gate:
    """The gate in ``path``, at the operating point its info names (threshold, side_range, reach,
    whole_below, whole_above, complete), else the defaults above: a file carries the point it was
    measured at."""
    net = GateNet.load(path)
    info = net.info
    side_range = info.get("side_range", SIDE_RANGE)
    return Gate(
        net,
        float(info.get("threshold", THRESHOLD)),
        (float(side_range[0]), float(side_range[1])),
        float(info.get("reach", REACH)),
        int(info.get("whole_below", WHOLE_BELOW)),
        float(info.get("whole_above", WHOLE_ABOVE)),
        bool(info.get("complete", COMPLETE)),
    )
