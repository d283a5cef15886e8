"""Which file names are images: the one list the daemon, `sort`, the review and the readers share.

Kept in one place because two lists drifted apart: the daemon sorted GIFs that `sort DIR` skipped,
and a GIF a person moved was never recorded as a label. ``watch.extensions`` defaults to it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def is_image_name(path: Path, suffixes: Collection[str] = IMAGE_SUFFIXES) -> bool:
    """True for the file name endings facesortd reads as images (``suffixes``: ``watch.extensions``
    where the person may have set them; any case, as cameras and Windows write ``.PNG``)."""
    return path.suffix.lower() in {s.lower() for s in suffixes}


def not_an_image_name(suffixes: Collection[str] = IMAGE_SUFFIXES) -> str:
    """Why a file of another name is left where it is: said by `sort` for a file named to it (a glob
    such as ``~/screens/*`` takes in ``notes.txt`` and ``shot.png.part``), which went to
    ``_quarantine/unreadable/`` as if it were a broken picture until 2026-12-02."""
    return f"not an image name (only names ending in {', '.join(suffixes)} are sorted: watch.extensions)"
