"""Safe image reading: every way a file can fail to be a usable picture becomes one exception.

Users drop whatever their tools produce: zero-byte files, half-downloaded PNGs, text files named
``.png``, 100-megapixel decompression bombs. None of these may crash the caller; they become
:class:`UnreadableImage` with a reason that ends up in the log next to the quarantined file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from facesortd.config import ImageLimits


class UnreadableImage(Exception):
    """The file cannot be used as an image; ``str(exc)`` says why in plain words."""


def read_image(path: Path, limits: ImageLimits) -> np.ndarray:
    """Decode ``path`` to a BGR uint8 array, or raise UnreadableImage.

    The pixel count is read from the header before decoding, so a bomb is refused without
    allocating its pixels.
    """
    try:
        size = path.stat().st_size
        if size == 0:
            raise UnreadableImage("empty file (0 bytes)")
        if size > limits.max_bytes:
            raise UnreadableImage(f"file is {size:,} bytes, more than images.max_bytes={limits.max_bytes:,}")
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableImage(f"cannot read file: {exc.strerror or exc}") from exc
    dims = header_size(data)
    if dims is not None and dims[0] * dims[1] > limits.max_pixels:
        raise UnreadableImage(
            f"image is {dims[0]}x{dims[1]} pixels, more than images.max_pixels={limits.max_pixels:,}"
        )
    if _looks_truncated(data):
        raise UnreadableImage("file is truncated (incomplete download or copy?)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise UnreadableImage("not an image OpenCV can decode")
    if image.shape[0] * image.shape[1] > limits.max_pixels:
        raise UnreadableImage(f"image has more than images.max_pixels={limits.max_pixels:,} pixels")
    return image


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grayscale view used by detection and recognition (both work on luminance only)."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, BMP, WebP or JPEG header; None if the format is not known."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def _looks_truncated(data: bytes) -> bool:
    """PNG without its IEND chunk or JPEG without its end marker: the writer did not finish.

    OpenCV decodes such files partially (grey bottom half) instead of failing, which would feed
    garbage to the detector.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in data[-32:]
    if data[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in data[-64:]
    return False
