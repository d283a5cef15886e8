"""Every kind of bad file becomes UnreadableImage with a reason, never a crash."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from facesortd.config import ImageLimits
from facesortd.images import UnreadableImage, header_size, read_image


def _png(path: Path, shape: tuple[int, int] = (40, 60)) -> Path:
    cv2.imwrite(str(path), np.full((*shape, 3), 128, np.uint8))
    return path


def _bomb_png(path: Path, w: int, h: int) -> Path:
    """A tiny PNG whose header claims w x h pixels (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )
    return path


def test_reads_png_and_jpeg(tmp_path: Path) -> None:
    img = read_image(_png(tmp_path / "a b ü.png"), ImageLimits())
    assert img.shape == (40, 60, 3)
    cv2.imwrite(str(tmp_path / "b.jpg"), np.full((30, 20, 3), 90, np.uint8))
    assert read_image(tmp_path / "b.jpg", ImageLimits()).shape == (30, 20, 3)
    assert header_size((tmp_path / "b.jpg").read_bytes()) == (20, 30)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("hello, I am text"), "not an image"),
        (lambda p: p.write_bytes(_png(p).read_bytes()[:-30]), "truncated"),
        (lambda p: _bomb_png(p, 100_000, 100_000), "more than images.max_pixels"),
    ],
    ids=["zero-byte", "text", "truncated", "bomb"],
)
def test_bad_files_are_unreadable_with_reason(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / "x.png"
    make(path)
    with pytest.raises(UnreadableImage, match=reason):
        read_image(path, ImageLimits())


def test_size_limits_and_missing_file(tmp_path: Path) -> None:
    path = _png(tmp_path / "a.png")
    with pytest.raises(UnreadableImage, match="max_bytes"):
        read_image(path, ImageLimits(max_bytes=10))
    with pytest.raises(UnreadableImage, match="max_pixels"):
        read_image(path, ImageLimits(max_pixels=100))
    with pytest.raises(UnreadableImage, match="cannot read"):
        read_image(tmp_path / "missing.png", ImageLimits())
