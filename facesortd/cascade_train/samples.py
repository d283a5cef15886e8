"""Training windows: positives cut from boxed screenshots or face crops (with augmentation), and
the images negatives are mined from.

Every positive is cut so that the window covers the faces.json box convention (forehead/bangs line
to chin, cheek to cheek): the detector's boxes come out in the framing it was trained on, and the
emotion recognizer downstream relies on that framing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesortd.boxes import Box
from facesortd.config import ImageLimits
from facesortd.images import UnreadableImage, read_image, to_gray
from facesortd.learn.datasets import DatasetError, images_below, load_faces_json


@dataclass(frozen=True)
class Augmentation:
    """Random variations applied to positives; each variant draws every parameter independently."""

    flip: bool = True
    max_rotation: float = 10.0  # degrees, either way
    brightness: float = 25.0  # added grey levels, either way
    contrast: float = 0.25  # relative gain change, either way
    jitter: float = 0.05  # shift and scale of the box, relative to its side

    def draw(self, rng: np.random.Generator) -> tuple[bool, float, float, float, float, float, float]:
        """(flip, angle, gain, offset, dx, dy, scale) for one variant."""
        return (
            self.flip and bool(rng.random() < 0.5),
            float(rng.uniform(-self.max_rotation, self.max_rotation)),
            float(1.0 + rng.uniform(-self.contrast, self.contrast)),
            float(rng.uniform(-self.brightness, self.brightness)),
            float(rng.uniform(-self.jitter, self.jitter)),
            float(rng.uniform(-self.jitter, self.jitter)),
            float(1.0 + rng.uniform(-self.jitter, self.jitter)),
        )


@dataclass(frozen=True)
class BoxedImage:
    """A grayscale image and the face boxes in it (empty for a face-free negative image)."""

    name: str
    gray: np.ndarray
    boxes: tuple[Box, ...] = ()


def read_gray(path: Path) -> np.ndarray:
    """Grayscale pixels decoded exactly as the detector gets them at run time (images.read_image)."""
    try:
        return to_gray(read_image(path, ImageLimits()))
    except UnreadableImage as exc:
        raise DatasetError(f"{path}: {exc}") from exc


def image_files(folder: Path) -> list[Path]:
    """The image files in a folder tree (:func:`images_below`); a folder that is none or holds none
    is refused, since a training option names it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder")
    files = images_below(folder)
    if not files:
        raise DatasetError(f"{folder} holds no images")
    return files


def boxed_screenshots(faces_json: Path, keep: Callable[[str], bool]) -> list[BoxedImage]:
    """The screenshots of a faces.json file (looked up in ``screenshots/`` beside it, else beside it)
    for which ``keep(file name)`` holds, with their boxes."""
    faces_json = Path(faces_json)
    folder = faces_json.parent / "screenshots"
    folder = folder if folder.is_dir() else faces_json.parent
    out = [
        BoxedImage(name, read_gray(folder / name), tuple(f.box for f in faces))
        for name, faces in sorted(load_faces_json(faces_json).items())
        if keep(name)
    ]
    if not out:
        raise DatasetError(f"{faces_json}: no screenshots left to train on")
    return out


def cut_window(
    gray: np.ndarray, box: Sequence[float], window: tuple[int, int], angle: float = 0.0, flip: bool = False
) -> np.ndarray:
    """The box, rotated by ``angle`` degrees about its centre, resampled to ``window`` (w, h).

    Shrinks with area averaging first and only then rotates; the border is replicated where the
    box leaves the image. Positives and mined negatives are both cut this way.
    """
    x, y, w, h = box
    win_w, win_h = window
    # Region twice the box around its centre, shrunk so the box becomes window-sized.
    cx, cy = x + w / 2, y + h / 2
    sx, sy = win_w / w, win_h / h
    x0, y0 = int(np.floor(cx - w)), int(np.floor(cy - h))
    x1, y1 = int(np.ceil(cx + w)), int(np.ceil(cy + h))
    pad = max(0, -x0, -y0, x1 - gray.shape[1], y1 - gray.shape[0])
    src = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else gray
    region = src[y0 + pad : y1 + pad, x0 + pad : x1 + pad]
    size = (max(1, round(region.shape[1] * sx)), max(1, round(region.shape[0] * sy)))
    small = cv2.resize(region, size, interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
    scx, scy = (cx - x0) * size[0] / region.shape[1], (cy - y0) * size[1] / region.shape[0]
    m = cv2.getRotationMatrix2D((scx, scy), angle, 1.0)
    m[:, 2] += (win_w / 2 - scx, win_h / 2 - scy)
    out = cv2.warpAffine(small, m, (win_w, win_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.flip(out, 1) if flip else out


def augmented_windows(
    gray: np.ndarray,
    box: Sequence[float],
    window: tuple[int, int],
    variants: int,
    aug: Augmentation,
    rng: np.random.Generator,
    margin: float = 0.0,
) -> list[np.ndarray]:
    """The box (grown by ``margin`` of its side on each side) as is, plus ``variants - 1`` randomly
    varied copies."""
    x, y, w, h = box
    x, y, w, h = x - margin * w, y - margin * h, w * (1 + 2 * margin), h * (1 + 2 * margin)
    out = [cut_window(gray, (x, y, w, h), window)]
    for _ in range(variants - 1):
        flip, angle, gain, offset, dx, dy, scale = aug.draw(rng)
        side_w, side_h = w * scale, h * scale
        jittered = (x + w / 2 + dx * w - side_w / 2, y + h / 2 + dy * h - side_h / 2, side_w, side_h)
        win = cut_window(gray, jittered, window, angle, flip).astype(np.float32)
        out.append(np.clip((win - win.mean()) * gain + win.mean() + offset, 0, 255).astype(np.uint8))
    return out


def positives(
    screenshots: Iterable[BoxedImage],
    crops: Iterable[np.ndarray],
    crop_frame: tuple[float, float, float, float],
    window: tuple[int, int],
    variants: tuple[int, int],
    aug: Augmentation,
    rng: np.random.Generator,
    margin: float = 0.0,
) -> np.ndarray:
    """(N, h, w) uint8 positive windows: ``variants[0]`` per screenshot box, ``variants[1]`` per crop,
    each box grown by ``margin`` (the verifier looks at a little context around the face).

    ``crop_frame`` (x, y, w, h as fractions of the crop) says where the box convention sits in a
    face crop, e.g. crops framed around the whole head hold the face in their middle part.
    """
    out: list[np.ndarray] = []
    for shot in screenshots:
        for box in shot.boxes:
            out.extend(augmented_windows(shot.gray, box, window, variants[0], aug, rng, margin))
    for crop in crops:
        ch, cw = crop.shape[:2]
        fx, fy, fw, fh = crop_frame
        frame = (fx * cw, fy * ch, fw * cw, fh * ch)
        out.extend(augmented_windows(crop, frame, window, variants[1], aug, rng, margin))
    if not out:
        raise DatasetError("no positive samples: give --faces-json with boxes or a folder of face crops")
    return np.stack(out)
