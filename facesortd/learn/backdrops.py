"""Backgrounds behind transparent face crops (vn_faces' RGBA sprites).

A sprite's face has no scene around it; a screenshot's has. Putting a background behind each crop
makes training and validation faces look like run-time faces, and changing it at random while a
net trains teaches the net that the scene is not the expression. Backgrounds are the data's own
face-free pictures plus made ones (flat colour, blurred noise, a gradient), so a set without
pictures still gets varied scenes.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

from facesortd.images import imread_file
from facesortd.learn.datasets import DatasetError

MADE_KINDS = 3
"""Flat colour, blurred colour noise, linear gradient."""


def read_rgba(path: Path, need_alpha: bool = False) -> np.ndarray:
    """A BGRA uint8 image. An opaque image gets a full alpha channel, or with ``need_alpha`` is
    refused: a scene pastes a character by its transparency, so an opaque crop would paste its
    whole square, background and all."""
    image = imread_file(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"{path}: not an image OpenCV can decode")
    if image.ndim == 3 and image.shape[2] == 4:
        return image
    if need_alpha:
        raise DatasetError(
            f"{path}: no transparency; a character crop must be RGBA (save it with an alpha channel)"
        )
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])


def composite(bgra: np.ndarray, background: np.ndarray, at: tuple[int, int] = (0, 0)) -> np.ndarray:
    """BGR copy of ``background`` with ``bgra`` laid over it, its top-left at ``at`` (x, y): a face
    crop over a backdrop, or a character pasted into a scene. Parts of ``bgra`` outside the
    background are dropped (a character cut by the frame)."""
    out = background.copy()
    (x, y), (h, w) = at, bgra.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(out.shape[1], x + w), min(out.shape[0], y + h)
    if x1 <= x0 or y1 <= y0:
        return out
    part = bgra[y0 - y : y1 - y, x0 - x : x1 - x]
    alpha = part[..., 3:4].astype(np.float32) / 255.0
    mixed = part[..., :3].astype(np.float32) * alpha + out[y0:y1, x0:x1].astype(np.float32) * (1.0 - alpha)
    out[y0:y1, x0:x1] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    return out


def picture_window(
    picture: np.ndarray,
    rng: np.random.Generator,
    shape: tuple[int, int],
    zoom: tuple[float, float],
    interpolation: int,
) -> np.ndarray:
    """A random (h, w) window of ``picture``, enlarged by a random factor in ``zoom`` beyond the
    size that just covers the window: a background behind a sprite, or behind a whole scene.
    Sprite backdrops shrink pictures (``cv2.INTER_AREA``), scenes mostly enlarge them
    (``cv2.INTER_LINEAR``)."""
    h, w = shape
    scale = max(h / picture.shape[0], w / picture.shape[1]) * rng.uniform(*zoom)
    big = cv2.resize(picture, None, fx=scale, fy=scale, interpolation=interpolation)
    y = int(rng.integers(big.shape[0] - h + 1))
    x = int(rng.integers(big.shape[1] - w + 1))
    return big[y : y + h, x : x + w].copy()


class Backdrops:
    """Background pictures (read once) and made ones, cut to any size.

    ``for_key`` gives the same background for the same key (validation faces must not change from
    run to run); ``random`` a fresh one (augmentation while training).
    """

    def __init__(self, pictures: list[Path] | None = None) -> None:
        self.pictures = [p for p in (imread_file(path) for path in pictures or []) if p is not None]

    def for_key(self, key: str, shape: tuple[int, int]) -> np.ndarray:
        return self.random(np.random.default_rng(zlib.crc32(key.encode("utf-8"))), shape)

    def random(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """A (h, w, 3) BGR background: a picture's random window half the time, else a made one."""
        h, w = shape
        if self.pictures and rng.random() < 0.5:
            picture = self.pictures[int(rng.integers(len(self.pictures)))]
            return picture_window(picture, rng, shape, (1.0, 3.0), cv2.INTER_AREA)
        kind = int(rng.integers(MADE_KINDS))
        colour = rng.integers(0, 256, 3).astype(np.float32)
        if kind == 0:
            return np.broadcast_to(colour, (h, w, 3)).astype(np.uint8)
        if kind == 1:
            noise = rng.normal(colour, 60.0, (max(2, h // 16), max(2, w // 16), 3)).astype(np.float32)
            return np.clip(cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)
        other = rng.integers(0, 256, 3).astype(np.float32)
        ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
        row = colour * (1.0 - ramp) + other * ramp
        return np.broadcast_to(row, (h, w, 3)).astype(np.uint8)
