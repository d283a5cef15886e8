"""Safe image reading: every way a file can fail to be a usable picture becomes one exception.

Users drop whatever their tools produce: zero-byte files, half-downloaded PNGs, text files named
``.png``, 100-megapixel decompression bombs. None of these may crash the caller; they become
:class:`UnreadableImage` with a reason that ends up in the log next to the quarantined file.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from facesortd.config import ImageLimits
from facesortd.durable import NOT_REGULAR, atomic_writer, open_regular

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8"
"""The bytes a PNG and a JPEG begin with: the header size, truncation and damage checks each tell
the formats apart by them."""


class UnreadableImage(Exception):
    """The file cannot be used as an image; ``str(exc)`` says why in plain words."""


def read_image(path: Path, limits: ImageLimits) -> np.ndarray:
    """Decode ``path`` to a BGR uint8 array, or raise UnreadableImage.

    The pixel count is read from the header before decoding, so a bomb is refused without
    allocating its pixels; for a format whose header is not parsed here, OpenCV's own limit
    (``OPENCV_IO_MAX_IMAGE_PIXELS``, set from images.max_pixels in ``facesortd/__init__``) refuses
    it instead, and anything OpenCV raises while decoding becomes UnreadableImage too.
    """
    try:
        with open_regular(path) as fh:  # a FIFO is said to be one, not waited on
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise UnreadableImage("empty file (0 bytes)")
            if size > limits.max_bytes:
                raise UnreadableImage(
                    f"file is {size:,} bytes, more than images.max_bytes={limits.max_bytes:,}"
                )
            data = fh.read()
    except OSError as exc:
        if exc.strerror == NOT_REGULAR:
            raise UnreadableImage(NOT_REGULAR) from None
        raise UnreadableImage(f"cannot read file: {exc.strerror or exc}") from exc
    if damage := _png_damage(data):  # before libpng, which prints its own "libpng error:" line
        raise UnreadableImage(damage)
    dims = header_size(data)
    if dims is not None and dims[0] * dims[1] > limits.max_pixels:
        raise UnreadableImage(
            f"image is {dims[0]}x{dims[1]} pixels, more than images.max_pixels={limits.max_pixels:,}"
        )
    if _looks_truncated(data):
        raise UnreadableImage("file is truncated (incomplete download or copy?)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise UnreadableImage(f"OpenCV refused to decode it ({exc.err})") from None
    if image is None or image.size == 0:
        raise UnreadableImage("not an image OpenCV can decode")
    if image.shape[0] * image.shape[1] > limits.max_pixels:
        raise UnreadableImage(f"image has more than images.max_pixels={limits.max_pixels:,} pixels")
    return image


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grayscale view used by detection and recognition (both work on luminance only)."""
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of any format OpenCV reads (PNG, GIF, BMP, WebP, JPEG, TIFF,
    PNM/PAM/PFM, Sun raster, Radiance HDR, OpenEXR, JPEG 2000); None if not known or unreadable."""
    try:
        return _header_size(data)
    except (struct.error, ValueError, IndexError):
        return None


def _header_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:2] == b"BM" and len(data) >= 26:
        w, h = struct.unpack("<ii", data[18:26])
        return abs(w), abs(h)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        return _webp_size(data)
    if data.startswith(_JPEG_START):
        return _jpeg_size(data)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff_size(data)
    if data[:1] == b"P" and data[1:2] in b"1234567fF" and len(data) > 2:
        return _pnm_size(data)
    if data[:4] == b"\x59\xa6\x6a\x95" and len(data) >= 12:
        return struct.unpack(">II", data[4:12])
    if data[:2] == b"#?":
        return _hdr_size(data)
    if data[:4] == b"\x76\x2f\x31\x01":
        return _exr_size(data)
    if data[:4] == b"\xff\x4f\xff\x51" and len(data) >= 24:  # JPEG 2000 codestream: SIZ segment
        w, h, x0, y0 = struct.unpack(">IIII", data[8:24])
        return w - x0, h - y0
    if (at := data.find(b"ihdr", 0, 256)) > 0:  # JPEG 2000 (JP2) header box
        h, w = struct.unpack(">II", data[at + 4 : at + 12])
        return w, h
    return None


_TIFF_TYPES = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth (256) and ImageLength (257) of the first IFD (what OpenCV decodes), TIFF or BigTIFF."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    if big:
        ifd = struct.unpack(order + "Q", data[8:16])[0]
        count, ifd = struct.unpack(order + "Q", data[ifd : ifd + 8])[0], ifd + 8
        size, head = 20, "HHQ"
    else:
        ifd = struct.unpack(order + "I", data[4:8])[0]
        count, ifd = struct.unpack(order + "H", data[ifd : ifd + 2])[0], ifd + 2
        size, head = 12, "HHI"
    found: dict[int, int] = {}
    for k in range(min(count, 4096)):
        entry = data[ifd + k * size : ifd + (k + 1) * size]
        tag, kind, _n = struct.unpack(order + head, entry[: struct.calcsize(order + head)])
        if tag in (256, 257) and kind in _TIFF_TYPES:
            fmt, width = _TIFF_TYPES[kind]
            at = struct.calcsize(order + head)
            found[tag] = struct.unpack(order + fmt, entry[at : at + width])[0]
    return (found[256], found[257]) if 256 in found and 257 in found else None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    """PBM/PGM/PPM (P1-P6) and PFM: width and height are the first numbers; PAM (P7): WIDTH/HEIGHT."""
    head = re.sub(rb"#[^\n]*", b"", data[:1024])
    if data[1:2] == b"7":
        w, h = re.search(rb"WIDTH\s+(\d+)", head), re.search(rb"HEIGHT\s+(\d+)", head)
        return (int(w.group(1)), int(h.group(1))) if w and h else None
    numbers = head[2:].split()
    return (int(numbers[0]), int(numbers[1])) if len(numbers) >= 2 else None


def _hdr_size(data: bytes) -> tuple[int, int] | None:
    """Radiance: after the header lines, ``-Y rows +X columns`` (or a rotated order)."""
    found = re.search(rb"\n([-+])([XY]) (\d+) ([-+])([XY]) (\d+)", data[:4096])
    if not found:
        return None
    first, second = int(found.group(3)), int(found.group(6))
    return (second, first) if found.group(2) == b"Y" else (first, second)


def _exr_size(data: bytes) -> tuple[int, int] | None:
    """OpenEXR: the ``dataWindow`` attribute (box2i: xMin, yMin, xMax, yMax) of the header."""
    at = data.find(b"dataWindow\x00box2i\x00", 8, 65536)
    if at < 0:
        return None
    start = at + len(b"dataWindow\x00box2i\x00") + 4
    x0, y0, x1, y1 = struct.unpack("<iiii", data[start : start + 16])
    return x1 - x0 + 1, y1 - y0 + 1


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


_JPEG_SOS = 0xDA


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int]]:
    """(marker, offset) of each segment of a JPEG's header, up to its first scan (SOS) included."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        yield marker, i
        if marker == _JPEG_SOS:
            return
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    for marker, i in _jpeg_segments(data):
        if marker in _JPEG_SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
    return None


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, end of its data) of each whole chunk of a PNG, up to IEND included."""
    at = 8
    while at + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        end = at + 8 + length
        if end + 4 > len(data):
            return
        yield kind, at, end
        if kind == b"IEND":
            return
        at = end + 4


def _looks_truncated(data: bytes) -> bool:
    """PNG without its IEND chunk or JPEG without its end marker after its first scan: the writer
    did not finish.

    OpenCV decodes such files partially (grey bottom half) instead of failing, which would feed
    garbage to the detector. The end is looked for where it belongs, not among the last bytes:
    data after it (a video or trailer that phones append to photos) does not make a file unfinished,
    and a JPEG's thumbnail, which has an end marker of its own, lies before the scan.
    """
    if data.startswith(_PNG_SIGNATURE):
        return not any(kind == b"IEND" for kind, _, _ in _png_chunks(data))
    if data.startswith(_JPEG_START):
        scan = next((i for marker, i in _jpeg_segments(data) if marker == _JPEG_SOS), None)
        if scan is None:  # a header this walk cannot follow (libjpeg skips stray bytes): its end, then
            return b"\xff\xd9" not in data[-64:]
        return data.rfind(b"\xff\xd9", scan) < 0  # from the end, where the marker is: a tenth of find's time
    return False


def _png_damage(data: bytes) -> str | None:
    """Which critical chunk of a PNG fails its checksum, in words; None if none does (or not a PNG).

    libpng writes its own ``libpng error: IHDR: CRC error`` to the process's stderr, past our log
    (OpenCV gives it no error handler, and its log level does not reach it); a damaged chunk found
    here never gets to libpng. Only the checksums are read: a CRC over the file costs next to
    nothing beside decoding it. An ancillary chunk (text, profile, time) that fails is libpng's to
    drop: it still decodes the picture, which must not go to quarantine over a comment.
    Truncation is :func:`_looks_truncated`'s to say.
    """
    if not data.startswith(_PNG_SIGNATURE):
        return None
    view = memoryview(data)
    for kind, at, end in _png_chunks(data):
        critical = not kind[0] & 0x20  # upper-case first letter: libpng refuses the file over it
        if critical and zlib.crc32(view[at + 4 : end]) != struct.unpack_from(">I", data, end)[0]:
            return f"damaged: its {kind.decode('ascii', 'backslashreplace')} chunk fails its checksum"
    return None


def imread_file(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray | None:
    """``cv2.imread`` for any file name, None where it gives None. OpenCV handed a name that is not
    UTF-8 (Python keeps its stray bytes as lone surrogates) kills the whole process with a
    segmentation fault, so Python reads the bytes and OpenCV only decodes them. For files
    facesortd or a dataset made; a user's dropped file goes through :func:`read_image`."""
    try:
        with open_regular(Path(path)) as fh:
            data = fh.read()
        return cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    except (OSError, cv2.error):
        return None


def imwrite_file(path: Path, image: np.ndarray) -> None:
    """``cv2.imwrite`` for any file name (see :func:`imread_file`), encoded by the name's ending,
    written whole or not at all."""
    ok, encoded = cv2.imencode(Path(path).suffix or ".png", image)
    if not ok:
        raise ValueError(f"OpenCV cannot encode an image as {Path(path).suffix!r}")
    with atomic_writer(Path(path)) as fh:
        fh.write(encoded.tobytes())
