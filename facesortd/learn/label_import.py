"""Labelled datasets as labels in the journal (``facesortd import-labels``), beside a person's own.

A public dataset (such as the seed screenshots' faces.json) or a folder sorted by hand long ago
can join retraining without becoming the bootstrap model: each face is found the way
`facesortd train` finds it, kept as a crop in the state folder and recorded with the source
``dataset``. Such labels weigh like bootstrap faces, not like a person's decisions, and never
replace a label a person gave.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from loguru import logger

from facesortd.boxes import mostly_outside
from facesortd.config import Settings
from facesortd.content import file_hash
from facesortd.detect import FaceDetector
from facesortd.images import UnreadableImage, read_image, to_gray
from facesortd.journal import Journal
from facesortd.learn.datasets import LabelledItem, source_group
from facesortd.learn.kept_faces import keep_face, kept_if_recorded
from facesortd.learn.training import BOX_OUTSIDE, Kind, Undetected, training_box
from facesortd.progress import Progress


def import_labels(
    settings: Settings,
    journal: Journal,
    items: list[LabelledItem],
    detector: FaceDetector | None,
    kind: Kind = "auto",
    undetected: Undetected = "drop",
    outcome: Counter[str] | None = None,
) -> Counter[str]:
    """Record every usable labelled face; returns counts of what happened ("imported", "no face" ...),
    kept in ``outcome`` as they come (a caller stopped by Ctrl-C says what was done).

    A screenshot may hold several labelled faces, so a dataset label is keyed by the content hash
    plus the face box; importing the same dataset twice adds nothing.
    """
    if undetected == "typical":
        raise ValueError("import-labels frames each face on its own; use --undetected drop or whole")
    outcome = Counter() if outcome is None else outcome
    progress = Progress(len(items), "importing labels")
    digests: dict[Path, str] = {}
    gray_of: tuple[Path, np.ndarray] | None = None  # a screenshot's faces come one after another
    for item in items:
        progress.step()
        try:
            if item.path not in digests:
                digests[item.path] = file_hash(item.path)
            if journal.label_for_hash(digests[item.path]) is not None:
                outcome["labelled by you already"] += 1
                continue
            if gray_of is None or gray_of[0] != item.path:
                gray_of = (item.path, to_gray(read_image(item.path, settings.images)))
        except (OSError, UnreadableImage) as exc:
            logger.warning("skipping {}: {}", item.path, exc)
            outcome["unreadable"] += 1
            continue
        gray = gray_of[1]
        if item.box is not None and mostly_outside(item.box, gray.shape):
            outcome[BOX_OUTSIDE] += 1
            continue
        box, _crop = training_box(gray, item.box, detector, kind, undetected)
        if box is None:
            outcome["no face found"] += 1
            continue
        key = f"{digests[item.path]}#{','.join(str(round(v)) for v in box)}"
        if journal.label_for_hash(key) is not None:
            outcome["imported before"] += 1
            continue
        name = key.replace("#", "-").replace(",", "_")
        with kept_if_recorded(settings, name):
            crop = keep_face(settings, name, gray, box)
            journal.add_label(
                key, item.label, "dataset", (crop, box), source_group(Path(item.path).name), item.path
            )
        outcome["imported"] += 1
    return outcome
