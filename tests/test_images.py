"""Every kind of bad file becomes UnreadableImage with a reason, never a crash."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
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
    bgr = np.array([200, 90, 30], np.uint8)
    cv2.imwrite(str(tmp_path / "b.jpg"), np.broadcast_to(bgr, (30, 20, 3)).copy())
    jpeg = read_image(tmp_path / "b.jpg", ImageLimits())
    assert jpeg.shape == (30, 20, 3) and np.abs(jpeg.astype(int) - bgr).max() <= 3  # BGR, as written
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


def test_images_facesortd_writes_and_reads_under_names_that_are_not_utf8(tmp_path: Path) -> None:
    """`eval --plots DIR` (or `train --report DIR`) into a folder whose name is not UTF-8 killed the
    process with a segmentation fault: OpenCV's imwrite and imread crash on such a name (so do kept
    faces under such a state folder, and dataset backgrounds). Run in a child process, which the
    old code crashed, with the figures written and a kept face read back."""
    folder = os.fsdecode(os.fsencode(tmp_path) + b"/pl\xffots")
    code = f"""
import os
from pathlib import Path
import numpy as np
from facesortd.faces import FaceSpec
from facesortd.learn.figures import draw_confusion, draw_curves
from facesortd.learn.metrics import Evaluation
from facesortd.learn.kept_faces import kept_face
folder = Path(os.fsdecode({os.fsencode(folder)!r}))
folder.mkdir()
ev = Evaluation.of(["a", "b"], np.array([0, 1, 1]), np.array([0, 1, 0]), np.array([0.9, 0.8, 0.6]), 0.7)
draw_confusion(ev, folder / "confusion.png", "a title")
draw_curves({{"all": ev}}, folder / "curves.png")
face = kept_face(folder / "confusion.png", FaceSpec(size=32))
print(sorted(p.name for p in folder.iterdir()), face.shape)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['confusion.png', 'curves.png'] (32, 32)"


def test_a_png_whose_only_damage_is_in_a_side_chunk_is_still_read(tmp_path: Path) -> None:
    """libpng drops an ancillary chunk (text, colour profile, time) whose checksum fails and decodes
    the picture; refusing such a file before libpng would send a readable screenshot to quarantine."""
    data = _png(tmp_path / "a.png", (50, 50)).read_bytes()
    iend = data.index(b"IEND") - 4
    text = b"Comment\x00made by a careless tool"
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text) ^ 1)
    (tmp_path / "a.png").write_bytes(data[:iend] + chunk + data[iend:])
    assert read_image(tmp_path / "a.png", ImageLimits()).shape[:2] == (50, 50)


def test_a_damaged_png_is_said_by_us_alone(tmp_path: Path) -> None:
    """libpng printed its own `libpng error: IHDR: CRC error` (or `IDAT: incorrect data check`) on
    stderr, beside our "not an image OpenCV can decode". The chunks' checksums are now checked
    first: one reason, ours, naming the chunk, and nothing from libpng (a process of its own, one
    for both files: libpng writes to file descriptor 2, which capsys does not see)."""
    chunks = ["IHDR", "IDAT"]
    for at in chunks:
        data = bytearray(_png(tmp_path / f"{at}.png", (50, 50)).read_bytes())
        start = data.index(at.encode())
        data[start + 3 + int.from_bytes(data[start - 4 : start])] ^= 0xFF  # the chunk's last data byte
        (tmp_path / f"{at}.png").write_bytes(bytes(data))
    code = f"""
from pathlib import Path
from facesortd.config import ImageLimits
from facesortd.images import UnreadableImage, read_image
for at in {chunks!r}:
    try:
        read_image(Path({str(tmp_path)!r}) / f"{{at}}.png", ImageLimits())
    except UnreadableImage as exc:
        print(exc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    said = "".join(f"damaged: its {at} chunk fails its checksum\n" for at in chunks)
    assert done.stdout == said and done.stderr == "", (done.stdout, done.stderr)
