"""The faces of labelled files, kept as crops in the state folder: retraining must not depend on the
person keeping the file (moved on, renamed or deleted), so it reads the crop in the file's stead.
Kept by the review (`learn/review.py`) and by `import-labels` (`learn/label_import.py`); read back
by each retrain (`learn/retrain.py`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from facesortd.boxes import Box
from facesortd.config import Settings
from facesortd.durable import atomic_writer
from facesortd.faces import FaceSpec, box_in_crop, cut_face_crop, normalise_face
from facesortd.images import imread_file
from facesortd.state import FACES_DIR, move_lock

KEEP_SIDE = 192
"""Kept crops larger than this are shrunk to it: a face box of up to half this side is kept as cut."""


def faces_dir(settings: Settings) -> Path:
    """Where the kept crops live: in the state folder, private like the journal that holds their
    labels, and never in the library, whose files a person moves, renames and deletes."""
    return settings.state_dir / FACES_DIR


def _crop_path(settings: Settings, content_hash: str) -> Path:
    return faces_dir(settings) / f"{content_hash}.png"


@contextlib.contextmanager
def kept_if_recorded(settings: Settings, content_hash: str) -> Iterator[None]:
    """Around keeping a label's face (:func:`keep_face`) and recording the label: a crop made inside
    is removed again if the recording fails (the journal full, read-only, locked), so faces/ holds
    no crop of a label never recorded (it stayed there for good once the file moved on). A crop
    there before belongs to an earlier label of the same content, and stays.

    Held under the state folder's move lock, as the label scan looks at a file under it: the review
    page, the daemon's label scan and `import-labels` record in other processes, and one refused
    removed the crop it had found missing as it began, which another had kept meanwhile and recorded
    its label with (the retrain then found that label's face gone)."""
    crop = _crop_path(settings, content_hash)
    with move_lock(settings.state_dir):
        there = crop.exists()
        try:
            yield
        except BaseException:
            if not there:
                with contextlib.suppress(OSError):  # the failure said is the recording's
                    crop.unlink(missing_ok=True)
            raise


def keep_face(settings: Settings, content_hash: str, gray: np.ndarray, box: Box) -> Path:
    """Store the face of a labelled file as ``<state_dir>/faces/<hash>.png`` (atomic; kept once).

    Cut like every face crop (:func:`faces.cut_face_crop`: the box is its middle half), wider than
    any model's margin, so a later model can re-normalise it its own way and, unless the crop had
    to be shrunk to ``KEEP_SIDE``, gets exactly the face it would get from the screenshot."""
    path = _crop_path(settings, content_hash)
    if not path.exists():
        crop = cut_face_crop(gray, box)
        if crop.shape[0] > KEEP_SIDE:
            crop = cv2.resize(crop, (KEEP_SIDE, KEEP_SIDE), interpolation=cv2.INTER_AREA)
        ok, png = cv2.imencode(".png", crop)
        if not ok:
            raise OSError(f"could not encode the face crop for {content_hash}")
        with atomic_writer(path) as fh:
            fh.write(png.tobytes())
    return path


def kept_face(path: Path, spec: FaceSpec) -> np.ndarray:
    """A kept crop normalised with ``spec``: its face box is the middle half (:func:`faces.box_in_crop`).

    Crops kept before 2026-11-30 were cut by ``crop_face`` with a margin of 0.5; read this way their
    face box lies at most one pixel off where it was."""
    gray = imread_file(path, cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise OSError(f"kept face {path} is missing or unreadable")
    return normalise_face(gray, box_in_crop(gray.shape), spec)
