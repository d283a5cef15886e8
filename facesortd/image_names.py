"""Which file names are images: the one list the daemon, `sort`, the review and the readers share.

Kept in one place because two lists drifted apart: the daemon sorted GIFs that `sort DIR` skipped,
and a GIF a person moved was never recorded as a label. ``watch.extensions`` defaults to it.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def is_image_name(path: Path) -> bool:
    """True for the file name endings facesortd reads as images."""
    return path.suffix.lower() in IMAGE_SUFFIXES
