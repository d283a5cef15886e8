"""The ONE face normalisation used by training, prediction and evaluation alike.

Framing is the biggest accuracy lever there is: a model scores far worse on crops framed another
way than it was trained on (README, "Framing is one function"). So every face a model
sees, at training or at run time, comes out of :func:`normalise_face` with the same spec, and the
spec is stored in the model file so a model is never fed faces prepared differently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from facesortd.boxes import Box
from facesortd.images import to_gray


@dataclass(frozen=True)
class FaceSpec:
    """How a face box becomes the fixed-size array a model sees.

    ``margin`` widens the box on each side (fraction of its size) so the hair line and chin are
    included even when the detector's box is a little tight; wider crops take in the scene around
    a screenshot face. The default got the most seed screenshot faces right (README, "Framing is
    one function"). Each model stores its own.
    """

    size: int = 64
    margin: float = 0.2
    clahe_clip: float = 2.0
    colour: bool = False
    """Colour rendering: the grey face plus two chroma planes (blush, tears and anger marks are
    colours). Models stored before colour existed are grey."""

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, float | int | bool]) -> FaceSpec:
        return cls(
            size=int(data["size"]),
            margin=float(data["margin"]),
            clahe_clip=float(data["clahe_clip"]),
            colour=bool(data.get("colour", False)),
        )


CROP_MARGIN = 0.5
"""A face crop, as facesortd cuts and reads them, spans twice the face box: the box is its middle
half (vn_faces' crops are cut this way too). Every spec's margin (at most this) then finds the
same pixels around the face in the crop as in the screenshot it was cut from."""


def cut_face_crop(image: np.ndarray, box: Box) -> np.ndarray:
    """The face crop of ``box``: read back through :func:`box_in_crop`, it normalises exactly as the
    face in the screenshot does (whole pixels on every side, so no rounding moves the face)."""
    x, y, w, h = box
    side = max(w, h)
    pad = side // 2
    x0, y0 = x + (w - side) // 2 - pad, y + (h - side) // 2 - pad
    return _window(image, x0, y0, side + 2 * pad)


def box_in_crop(shape: tuple[int, ...]) -> Box:
    """The face box of a crop cut by :func:`cut_face_crop`: its middle half."""
    side = (min(shape[:2]) + 1) // 2
    return (side // 2, side // 2, side, side)


def crop_face(image: np.ndarray, box: Box, spec: FaceSpec) -> np.ndarray:
    """Square crop of a grey or BGR image around ``box`` widened by ``spec.margin``; parts outside
    the image are mirrored in.

    Faces cut by the frame are common in screenshots; mirroring keeps the crop the same shape and
    framing instead of shifting the face off-centre. Only the crop's own pixels are gathered (as
    OpenCV's BORDER_REFLECT_101 would mirror them), not a padded copy of the whole screenshot.
    """
    x, y, w, h = box
    side = max(w, h) * (1.0 + 2.0 * spec.margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    return _window(image, x0, y0, max(1, round(side)))


def _window(image: np.ndarray, x0: int, y0: int, s: int) -> np.ndarray:
    """The s x s square at (x0, y0); parts outside the image mirrored in."""
    if x0 >= 0 and y0 >= 0 and x0 + s <= image.shape[1] and y0 + s <= image.shape[0]:
        return image[y0 : y0 + s, x0 : x0 + s]
    rows = _mirrored(np.arange(y0, y0 + s), image.shape[0])
    cols = _mirrored(np.arange(x0, x0 + s), image.shape[1])
    # Rows, then columns: the same pixels as image[np.ix_(rows, cols)], gathered several times faster.
    return image.take(rows, axis=0).take(cols, axis=1)


def _mirrored(index: np.ndarray, n: int) -> np.ndarray:
    """Indices outside 0..n-1 reflected back in without repeating the edge (BORDER_REFLECT_101)."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    folded = np.abs(index) % period
    return np.where(folded >= n, period - folded, folded)


def normalise_face(image: np.ndarray, box: Box, spec: FaceSpec) -> np.ndarray:
    """Crop, resize to ``spec.size`` squared and even out lighting; returns float32 in [0, 1].

    ``image`` is a screenshot in BGR or grey. The crop is cut once; the grey face is its luminance
    (size x size) and, when ``spec.colour``, the colour face is that same grey face with the crop's
    chroma behind it (size x size x 3; a grey image has neutral chroma). So a colour model's
    luminance is exactly what a grey model sees.

    A percentile stretch removes exposure and contrast differences between screenshots; then
    CLAHE rather than global equalisation: anime faces have large flat skin areas and strong line
    art, and a global histogram stretch lets the hair colour dominate.
    """
    crop = crop_face(image, box, spec)
    side = (spec.size, spec.size)
    interp = cv2.INTER_AREA if crop.shape[0] > spec.size else cv2.INTER_LINEAR
    face = cv2.resize(to_gray(crop), side, interpolation=interp).astype(np.float32)
    lo, hi = np.percentile(face, (1, 99))
    stretched = np.clip((face - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255).astype(np.uint8)
    clahe = cv2.createCLAHE(clipLimit=spec.clahe_clip, tileGridSize=(4, 4))
    grey = clahe.apply(stretched).astype(np.float32) / 255.0
    if not spec.colour:
        return grey
    return np.dstack([grey, chroma(cv2.resize(crop, side, interpolation=interp))])


def mirror_faces(faces: np.ndarray) -> np.ndarray:
    """Normalised faces (grey or colour) mirrored left to right: an expression reads the same
    either way, so a fit can learn from both (EmotionModel.fit's ``mirror``)."""
    return np.ascontiguousarray(faces[:, :, ::-1])


def chroma(image: np.ndarray) -> np.ndarray:
    """(h, w, 2) float32 in [0, 1]: the red and blue difference planes (YCrCb's Cr, Cb) of a BGR
    image, 0.5 where it is grey. Not stretched: exposure moves luminance, not these."""
    if image.ndim == 2:
        return np.full((*image.shape, 2), 0.5, np.float32)
    return cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(np.float32) / 255.0
