"""From a labelled folder to faces, and from faces to a measured, calibrated model.

Both kinds of folder a user has are accepted: whole screenshots (faces are detected, the largest
one carries the label) and ready face crops (re-framed through the same detector, so training
faces are cut exactly like run-time faces). Held-out figures come from grouped cross-validation:
screenshots of one character never sit on both sides of a split.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from loguru import logger

from facesortd.config import ImageLimits
from facesortd.datasets import Box, source_group
from facesortd.detect import Face, FaceDetector
from facesortd.emotion import EmotionModel, fit_temperature
from facesortd.faces import FaceSpec, normalise_face
from facesortd.images import UnreadableImage, read_image, to_gray
from facesortd.metrics import Evaluation
from facesortd.progress import Progress

Kind = Literal["auto", "screenshots", "crops"]
Undetected = Literal["drop", "whole"]


@dataclass
class FaceSet:
    """Normalised faces with their labels, source groups and files, plus what was skipped and why."""

    faces: np.ndarray
    labels: list[str]
    groups: list[str]
    files: list[Path]
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    def subset(self, idx: np.ndarray) -> FaceSet:
        return FaceSet(
            self.faces[idx],
            [self.labels[i] for i in idx],
            [self.groups[i] for i in idx],
            [self.files[i] for i in idx],
        )


def is_crop(shape: tuple[int, ...]) -> bool:
    """A small, nearly square image is taken for a face crop; anything else for a screenshot."""
    h, w = shape[:2]
    return max(h, w) <= 512 and 0.8 <= w / h <= 1.25


def face_in_crop(gray: np.ndarray, detector: FaceDetector) -> Face | None:
    """The face of a crop, found by the detector on the crop padded with its mean edge colour.

    Crops often end at the face's edge, where a detector window cannot fit; padding lets it see
    the whole face, and taking the detection closest to the centre ignores partial neighbours.
    A flat border (not a replicated one) avoids smearing skin or hair into face-like streaks.
    """
    h, w = gray.shape
    pad = max(h, w) // 4
    edge = float(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).mean())
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=edge)
    faces = [f for f in detector.detect(padded) if f.box[2] >= 0.3 * w]
    if not faces:
        return None
    cx, cy = padded.shape[1] / 2, padded.shape[0] / 2
    best = min(faces, key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2)
    x, y, bw, bh = best.box
    return Face((x - pad, y - pad, bw, bh), best.score)


def collect_faces(
    by_label: dict[str, list[Path]],
    detector: FaceDetector | None,
    spec: FaceSpec,
    kind: Kind = "auto",
    undetected: Undetected = "drop",
    limits: ImageLimits | None = None,
) -> FaceSet:
    """Read labelled files (see datasets.labelled_images) into normalised faces.

    Each skipped file is counted by label and reason, so `train` can say what it could not use.

    ``detector`` may be None only for crops with ``undetected='whole'`` (the crop is the face).
    """
    limits = limits or ImageLimits()
    total = sum(len(v) for v in by_label.values())
    progress = Progress(total, "reading faces")
    faces: list[np.ndarray] = []
    labels: list[str] = []
    groups: list[str] = []
    files: list[Path] = []
    skipped: Counter[tuple[str, str]] = Counter()
    for label, paths in by_label.items():
        for path in paths:
            progress.step()
            try:
                gray = to_gray(read_image(path, limits))
            except UnreadableImage as exc:
                logger.warning("skipping {}: {}", path, exc)
                skipped[label, "unreadable"] += 1
                continue
            box = _training_box(gray, detector, kind, undetected)
            if box is None:
                skipped[label, "no face found"] += 1
                continue
            faces.append(normalise_face(gray, box, spec))
            labels.append(label)
            groups.append(source_group(path.name))
            files.append(path)
    stack = np.stack(faces) if faces else np.zeros((0, spec.size, spec.size), np.float32)
    return FaceSet(stack, labels, groups, files, skipped)


def _training_box(
    gray: np.ndarray, detector: FaceDetector | None, kind: Kind, undetected: Undetected
) -> Box | None:
    crop = kind == "crops" or (kind == "auto" and is_crop(gray.shape))
    whole: Box = (0, 0, gray.shape[1], gray.shape[0])
    if detector is None:
        return whole if crop and undetected == "whole" else None
    if crop:
        face = face_in_crop(gray, detector)
        if face is not None:
            return face.box
        return whole if undetected == "whole" else None
    found = detector.detect(gray)
    return max(found, key=lambda f: f.area).box if found else None


def grouped_folds(labels: list[str], groups: list[str], k: int, seed: int = 0) -> np.ndarray:
    """Fold index per sample; whole groups go to one fold, folds kept near equal in size.

    Groups larger than half a fold are split into files (see below). Groups are dealt largest
    first (ties broken by a seeded hash of the name) to the fold that has the fewest samples of
    that group's majority label, which keeps every fold's label mix close to the whole set's.
    """
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    too_big = len(labels) / (2 * k)
    for g in [g for g, idx in members.items() if len(idx) > too_big]:
        # A "group" this large is not a character but a naming scheme (happy_train_1002.jpg):
        # keeping it whole would put a whole label in one fold, so its files go one by one.
        for i in members.pop(g):
            members[f"{g}\0{i}"] = [i]
    fold_of = np.zeros(len(labels), dtype=np.int64)
    per_label = np.zeros((k, len(set(labels)) or 1))
    names = {lbl: i for i, lbl in enumerate(sorted(set(labels)))}
    order = sorted(members, key=lambda g: (-len(members[g]), zlib.crc32(f"{seed}:{g}".encode())))
    for g in order:
        idx = members[g]
        major = names[Counter(labels[i] for i in idx).most_common(1)[0][0]]
        fold = int(np.lexsort((per_label.sum(axis=1), per_label[:, major]))[0])
        fold_of[idx] = fold
        for i in idx:
            per_label[fold, names[labels[i]]] += 1
    return fold_of


FitFn = Callable[[FaceSet], EmotionModel]


def cross_validate(data: FaceSet, fit: FitFn, folds: int, threshold: float) -> tuple[Evaluation, float]:
    """Grouped k-fold: out-of-fold predictions for every face, a temperature fitted on them, figures.

    Folds whose training part lacks a label still predict (that label is then never chosen),
    which is the honest outcome of having too few examples of it.
    """
    names = sorted(set(data.labels))
    truth = np.array([names.index(lbl) for lbl in data.labels])
    fold_of = grouped_folds(data.labels, data.groups, folds)
    logits = np.full((len(truth), len(names)), -np.inf)
    progress = Progress(folds, "cross-validation folds")
    for f in range(folds):
        test = np.flatnonzero(fold_of == f)
        train = np.flatnonzero(fold_of != f)
        if len(test) == 0 or len({data.labels[i] for i in train}) < 2:
            progress.step()
            continue
        model = fit(data.subset(train))
        cols = [names.index(lbl) for lbl in model.labels]
        logits[np.ix_(test, cols)] = model.logits(data.faces[test])
        progress.step()
    scored = np.isfinite(logits).any(axis=1)
    logits, truth = logits[scored], truth[scored]
    safe = np.where(np.isfinite(logits), logits, -1e9)
    temperature = fit_temperature(safe, truth)
    proba = np.exp((safe - safe.max(axis=1, keepdims=True)) / temperature)
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    conf = proba[np.arange(len(pred)), pred]
    return Evaluation.of(names, truth, pred, conf, threshold), temperature


def evaluate(model: EmotionModel, data: FaceSet, threshold: float) -> Evaluation:
    """Figures of a fixed model on labelled faces; labels the model does not know count as errors."""
    names = sorted(set(model.labels) | set(data.labels))
    truth = np.array([names.index(lbl) for lbl in data.labels], dtype=np.int64)
    proba = model.predict_proba(data.faces) if len(data.labels) else np.zeros((0, len(model.labels)))
    best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=np.int64)
    pred = np.array([names.index(model.labels[b]) for b in best], dtype=np.int64)
    conf = proba[np.arange(len(best)), best] if len(best) else np.zeros(0)
    return Evaluation.of(names, truth, pred, conf, threshold)
