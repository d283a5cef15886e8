"""Screenshot-like scenes composed from many artists' face crops, for detector training and for
validation across sources.

vn_faces holds RGBA crops of characters from many game repositories (face box = the middle half of
each crop) and face-free backgrounds of those games. The repository is the unit of independence
(one artist or studio), so scenes are always built from a chosen set of repositories: a benchmark
fold composes scenes only from repositories its detector never saw. The seed screenshots alone
(few, of a few characters: cascade_classifier/README.md, "Measured") cannot tell whether a detector
carries to art it has not seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from facesortd.boxes import Box
from facesortd.images import imread_file
from facesortd.learn.backdrops import composite, picture_window, read_rgba
from facesortd.learn.datasets import VN_BACKGROUNDS, VN_BOX, VN_CROP_SIDE, VN_FACES, VN_INDEX

SCENE_SIZE = (1280, 720)
"""Width, height of a composed scene: a 720p screenshot."""
FACE_SHARE = (0.1, 0.55)
"""Face side as a share of the scene's height, drawn log-uniformly: the range of reaction
screenshots (the smallest seed faces: cascade_classifier/README.md, "How the detector runs")."""
MAX_CUT = 0.3
"""At most this share of a face's side may run off the frame (a face cut by the edge)."""
FACE_FREE_SHARE = 0.12
"""Share of scenes with no character at all: what false faces per face-free image is measured on."""
FOLDS = 3
"""The folds of vn_faces repositories (:meth:`Sources.folds`) the scenes bench judges by
(bench_detect_scenes.py): a fold net (cascade, verifier, gate) must be trained without its fold."""


@dataclass(frozen=True)
class Crop:
    """One vn_faces crop: its file and the repository (source) it comes from."""

    path: Path
    repo: str


@dataclass
class Sources:
    """The crops and backgrounds of vn_faces, grouped by repository."""

    root: Path
    crops: dict[str, list[list[Crop]]] = field(default_factory=dict)
    """repo -> character groups -> crops."""
    backgrounds: dict[str, list[Path]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Sources:
        index = json.loads((root / VN_INDEX).read_text(encoding="utf-8"))
        sources = cls(root)
        for group, info in sorted(index["groups"].items()):
            crops = [
                Crop(root / VN_FACES / group / f"{stem}.webp", info["repo"]) for stem in sorted(info["files"])
            ]
            sources.crops.setdefault(info["repo"], []).append(crops)
        for name, info in sorted(index["backgrounds"].items()):
            sources.backgrounds.setdefault(info["repo"], []).append(root / VN_BACKGROUNDS / name)
        return sources

    @cached_property
    def repos(self) -> list[str]:
        return sorted(set(self.crops) | set(self.backgrounds))

    def folds(self, k: int) -> list[list[str]]:
        """Repositories in ``k`` folds of about equal face counts (largest first, each to the
        lightest fold), so no fold is one big repository's alone. Deterministic."""
        weight = {r: sum(len(g) for g in self.crops.get(r, [])) for r in self.repos}
        folds: list[list[str]] = [[] for _ in range(k)]
        load = [0] * k
        for repo in sorted(self.repos, key=lambda r: (-weight[r], r)):
            i = min(range(k), key=lambda j: (load[j], len(folds[j])))
            folds[i].append(repo)
            load[i] += max(1, weight[repo])
        return [sorted(f) for f in folds]


@dataclass
class Scene:
    """A composed screenshot (BGR), its true face boxes (clipped to the frame, faces.json
    convention) and the repositories its crops and background came from."""

    image: np.ndarray
    boxes: list[Box]
    repos: frozenset[str]
    name: str


def made_background(rng: np.random.Generator, size: tuple[int, int], photo: np.ndarray | None) -> np.ndarray:
    """A background: a game's picture (as it is or blurred), smoothed colour noise, or a flat or
    graded colour; made ones keep a scene possible when a source has no pictures of its own."""
    w, h = size
    kind = rng.choice(["photo", "blurred", "noise", "flat"], p=[0.55, 0.15, 0.15, 0.15])
    if photo is not None and kind in ("photo", "blurred"):
        out = picture_window(photo, rng, (h, w), (1.0, 1.4), cv2.INTER_LINEAR)
        return cv2.GaussianBlur(out, (0, 0), rng.uniform(4, 12)) if kind == "blurred" else out
    if kind == "noise":
        small = rng.integers(0, 256, (int(rng.integers(4, 40)), int(rng.integers(4, 40)), 3), dtype=np.uint8)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        out = out * rng.uniform(0.2, 1.0) + rng.uniform(0, 128)  # less garish than raw noise
        return np.clip(out + rng.normal(0, rng.uniform(2, 15), out.shape), 0, 255).astype(np.uint8)
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, h)[:, None, None] if rng.random() < 0.5 else np.zeros((h, 1, 1))
    return np.broadcast_to((a * (1 - t) + b * t).astype(np.uint8), (h, w, 3)).copy()


def _clip(box: tuple[float, float, float, float], size: tuple[int, int]) -> Box:
    x, y, w, h = box
    x0, y0 = max(0, round(x)), max(0, round(y))
    return (x0, y0, min(size[0], round(x + w)) - x0, min(size[1], round(y + h)) - y0)


def _intersects(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


class SceneMaker:
    """Composes scenes from a chosen set of repositories' crops and backgrounds.

    One, two side by side (30 %) or three characters per scene at sizes drawn from FACE_SHARE, a
    third of them reaching past the frame; a share of scenes with none. A character is a crop whose
    face box is the middle half, so the region below the face (neck, clothes) comes with it, as
    on a screen.
    """

    def __init__(
        self, sources: Sources, repos: Iterable[str], seed: int, size: tuple[int, int] = SCENE_SIZE
    ) -> None:
        self.repos = sorted(set(repos))
        self.groups = [(r, g) for r in self.repos for g in sources.crops.get(r, [])]
        self.backgrounds = [(r, p) for r in self.repos for p in sources.backgrounds.get(r, [])]
        self.rng = np.random.default_rng(seed)
        self.size = size
        self._photos: dict[Path, np.ndarray] = {}

    def scenes(self, count: int, prefix: str) -> list[Scene]:
        return [
            self.scene(f"{prefix}{i:04d}", face_free=self.rng.random() < FACE_FREE_SHARE)
            for i in range(count)
        ]

    def photo(self, repos: set[str] | None = None) -> np.ndarray | None:
        """A random background picture of the chosen repositories (None if they have none); its
        repository is added to ``repos``."""
        if not self.backgrounds:
            return None
        repo, path = self.backgrounds[int(self.rng.integers(len(self.backgrounds)))]
        if path not in self._photos:
            self._photos[path] = imread_file(path, cv2.IMREAD_COLOR)
        if repos is not None:
            repos.add(repo)
        return self._photos[path]

    def scene(self, name: str, face_free: bool = False) -> Scene:
        rng, (w, h) = self.rng, self.size
        repos: set[str] = set()
        photo = self.photo(repos)
        image = made_background(rng, self.size, photo)
        boxes: list[tuple[float, float, float, float]] = []
        crops: list[tuple[float, float, float, float]] = []
        if not face_free and self.groups:
            count = int(rng.choice([1, 2, 3], p=[0.55, 0.3, 0.15]))
            side = h * float(np.exp(rng.uniform(*np.log(FACE_SHARE))))
            if count > 1:
                side = min(side, w / (2.2 * count))
            x = None
            for _ in range(count):
                s = side * rng.uniform(0.85, 1.15)
                for _attempt in range(20):
                    if x is None or rng.random() < 0.3:
                        fx = rng.uniform(-MAX_CUT * s, w - (1 - MAX_CUT) * s)
                    else:  # beside the previous character
                        fx = x + rng.uniform(1.6, 2.2) * s * (1 if rng.random() < 0.5 else -1)
                    fy = rng.uniform(-MAX_CUT * s, h - (1 - MAX_CUT) * s)
                    box, crop = (fx, fy, s, s), (fx - s / 2, fy - s / 2, 2 * s, 2 * s)
                    inside = fx >= -MAX_CUT * s and fx + s <= w + MAX_CUT * s
                    if inside and not any(
                        _intersects(crop, b) or _intersects(box, c) for b, c in zip(boxes, crops, strict=True)
                    ):
                        break
                else:
                    continue
                repo, group = self.groups[int(rng.integers(len(self.groups)))]
                rgba = read_rgba(group[int(rng.integers(len(group)))].path, need_alpha=True)
                if rng.random() < 0.5:
                    rgba = rgba[:, ::-1]
                side_px = max(2, round(2 * s))
                interp = cv2.INTER_AREA if side_px < rgba.shape[0] else cv2.INTER_LINEAR
                image = composite(
                    cv2.resize(rgba, (side_px, side_px), interpolation=interp),
                    image,
                    (round(crop[0]), round(crop[1])),
                )
                boxes.append(box)
                crops.append(crop)
                repos.add(repo)
                x = fx
        return Scene(image, [_clip(b, self.size) for b in boxes], frozenset(repos), name)


def below_face(box: Box, rng: np.random.Generator) -> Box:
    """A face-sized box under the face, on the neck, collar or chest: a natural hard negative."""
    x, y, w, h = box
    return (round(x + rng.uniform(-0.25, 0.25) * w), round(y + rng.uniform(0.6, 1.1) * h), w, h)


def jittered(box: Box, rng: np.random.Generator, amount: float = 0.08) -> Box:
    """The box moved and resized by up to ``amount`` of its side: how cascade boxes sit on a face."""
    x, y, w, h = box
    s = 1 + rng.uniform(-amount, amount)
    nw, nh = w * s, h * s
    return (
        round(x + (w - nw) / 2 + rng.uniform(-amount, amount) * w),
        round(y + (h - nh) / 2 + rng.uniform(-amount, amount) * h),
        round(nw),
        round(nh),
    )


VN_FACE_FRAME = (
    VN_BOX[0] / VN_CROP_SIDE,
    VN_BOX[1] / VN_CROP_SIDE,
    VN_BOX[2] / VN_CROP_SIDE,
    VN_BOX[3] / VN_CROP_SIDE,
)
"""Where the face box sits in a vn_faces crop (its middle half), as fractions of the crop: the
faces.json convention, as the shipped cascade sees it too (README of cascade_classifier)."""


class Composites:
    """vn_faces crops of a chosen set of repositories, each composited over a background of those
    repositories (or a made one), in grey: positives cut at VN_FACE_FRAME, and the regions around
    the face (hair, ears, neck, clothes) as hard negatives."""

    def __init__(self, sources: Sources, repos: Iterable[str], seed: int) -> None:
        self.maker = SceneMaker(sources, repos, seed)

    def grey_crops(self, per_crop: int) -> list[np.ndarray]:
        """``per_crop`` composites of every crop, each over its own background."""
        out = []
        for _repo, group in self.maker.groups:
            for crop in group:
                rgba = read_rgba(crop.path, need_alpha=True)
                for _ in range(per_crop):
                    image = composite(
                        rgba, made_background(self.maker.rng, rgba.shape[1::-1], self.maker.photo())
                    )
                    out.append(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        return out
