"""From a labelled folder to faces, and from faces to a measured, calibrated model.

Both kinds of folder a user has are accepted: whole screenshots (faces are detected, the largest
one carries the label) and ready face crops (re-framed through the same detector, so training
faces are cut exactly like run-time faces). Held-out figures come from grouped cross-validation:
screenshots of one character never sit on both sides of a split.
"""

from __future__ import annotations

import itertools
import os
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from loguru import logger

from facesortd.boxes import SAME_FACE_IOU, Box, mostly_outside
from facesortd.config import ImageLimits
from facesortd.cores import share_cores, usable_cores
from facesortd.descriptors import LEARNT, describe
from facesortd.detect import Face, FaceDetector, iou
from facesortd.durable import read_npz, write_npz
from facesortd.emotion import EmotionModel, fit_temperature, mirror_adds, softmax
from facesortd.ensemble import EnsembleModel, Model, combine
from facesortd.faces import FaceSpec, box_in_crop, crop_face, mirror_faces, normalise_face
from facesortd.images import UnreadableImage, read_image, to_gray
from facesortd.learn.backdrops import Backdrops, composite, read_rgba
from facesortd.learn.datasets import DatasetError, LabelledItem
from facesortd.learn.feature_net_training import NetSettings, train_feature_net
from facesortd.learn.metrics import Evaluation
from facesortd.progress import Progress
from facesortd.workers import in_order

Kind = Literal["auto", "screenshots", "crops"]
Undetected = Literal["drop", "whole", "typical"]


@dataclass
class FaceSet:
    """Normalised faces with their labels, groups, files and data source, plus what was skipped.

    ``alpha``: how opaque each pixel of each face is (uint8, 255 = drawn), for faces cut from
    transparent sprites; a net in training puts new backgrounds behind them. None: all opaque.
    ``features``: the faces as each descriptor sees them, by descriptor name, when computed once up
    front (a cross-validation would otherwise describe every face once per fold).
    """

    faces: np.ndarray
    labels: list[str]
    groups: list[str]
    files: list[Path]
    sources: list[str]
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    features: dict[str, np.ndarray] = field(default_factory=dict)
    alpha: np.ndarray | None = None

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels).items()))

    def opacity(self) -> np.ndarray:
        """``alpha``, or all 255 when every face is opaque."""
        return self.alpha if self.alpha is not None else np.full(self.faces.shape[:3], 255, np.uint8)

    def subset(self, idx: np.ndarray) -> FaceSet:
        pick = lambda values: [values[i] for i in idx]  # noqa: E731
        return FaceSet(
            self.faces[idx],
            pick(self.labels),
            pick(self.groups),
            pick(self.files),
            pick(self.sources),
            features={name: x[idx] for name, x in self.features.items()},
            alpha=None if self.alpha is None else self.alpha[idx],
        )

    def features_only(self) -> FaceSet:
        """These faces without their images (an empty one each, no opacity), for fits that read only
        ``features``: a cross-validation fold's part then copies its features, not the images as well
        (see README, "`train` on 20,000 faces"). A fit that needs the images refuses it
        (:func:`emotion_fitter`)."""
        return replace(self, faces=self.faces[:, :0], alpha=None)

    def save(self, path: Path) -> Path:
        """Write faces (as bytes: normalised faces are k/255 exactly), labels and groups atomically."""
        return write_npz(
            path,
            {
                "faces": np.round(self.faces * 255.0).astype(np.uint8),
                "labels": np.array(self.labels, dtype=str),
                "groups": np.array(self.groups, dtype=str),
                "sources": np.array(self.sources, dtype=str),
                "alpha": self.opacity(),
            },
            compressed=True,
        )

    @classmethod
    def load(cls, path: Path) -> FaceSet:
        """Read a set written by :meth:`save` (files are not kept: only the faces matter then)."""
        try:
            with read_npz(path) as npz:
                faces = npz["faces"].astype(np.float32) / 255.0
                labels, groups, sources = (npz[k].tolist() for k in ("labels", "groups", "sources"))
                alpha = npz["alpha"] if "alpha" in npz.files else None
        except (OSError, KeyError, ValueError) as exc:
            raise DatasetError(f"{path}: not a face set written by facesortd ({exc})") from exc
        return cls(faces, labels, groups, [path] * len(labels), sources, alpha=alpha)

    @classmethod
    def concat(cls, parts: list[FaceSet]) -> FaceSet:
        skipped: Counter[tuple[str, str]] = Counter()
        for part in parts:
            skipped.update(part.skipped)
        any_alpha = any(p.alpha is not None for p in parts)
        return cls(
            np.concatenate([p.faces for p in parts]),
            [v for p in parts for v in p.labels],
            [v for p in parts for v in p.groups],
            [v for p in parts for v in p.files],
            [v for p in parts for v in p.sources],
            skipped,
            alpha=np.concatenate([p.opacity() for p in parts]) if any_alpha else None,
        )


def is_crop(shape: tuple[int, ...]) -> bool:
    """A small, nearly square image is taken for a face crop; anything else for a screenshot."""
    h, w = shape[:2]
    return max(h, w) <= 512 and 0.8 <= w / h <= 1.25


CROP_FACE_SHARE = 0.3
"""A crop's own face spans at least this share of its width; smaller detections are neighbours."""


def face_in_crop(gray: np.ndarray, detector: FaceDetector) -> Face | None:
    """The face of a crop, found by the detector on the crop padded with its mean edge colour.

    Crops often end at the face's edge, where a detector window cannot fit; padding lets it see
    the whole face, and taking the detection closest to the centre ignores partial neighbours.
    A flat border (not a replicated one) avoids smearing skin or hair into face-like streaks.
    The detector's own close-up passes and lone windows are skipped (``padded``): this padding
    does their job, and they would make reading a dataset much slower (README, "Performance").

    The padded crop is scanned shrunk so that the smallest face it can hold is the smallest face
    the detector looks for, as a screenshot is scanned on its shrunk copy: the finer scales of a
    bigger copy could only find faces too small to be the crop's (README, "Performance").
    """
    h, w = gray.shape
    pad = max(h, w) // 4
    edge = float(np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]]).mean())
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=edge)
    scale = min(1.0, detector.settings.min_size / (CROP_FACE_SHARE * w))
    if scale < 1.0:
        padded = cv2.resize(padded, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    found = detector.detect(padded, padded=True)
    faces = [f for f in found if f.box[2] >= CROP_FACE_SHARE * w * scale]
    if not faces:
        return None
    cx, cy = padded.shape[1] / 2, padded.shape[0] / 2
    best = min(faces, key=lambda f: (f.box[0] + f.box[2] / 2 - cx) ** 2 + (f.box[1] + f.box[3] / 2 - cy) ** 2)
    x, y, bw, bh = (round(v / scale) for v in best.box)
    return Face((x - pad, y - pad, bw, bh), best.score)


@dataclass
class _Read:
    """One labelled example as read: its face and opacity, or why it has none."""

    face: np.ndarray | None = None
    opacity: np.ndarray | None = None
    relative: tuple[float, float, float, float] | None = None
    """A crop's face box as shares of the crop's width and height (for typical framing)."""
    missed: np.ndarray | None = None
    """The image of a crop the detector found no face in, kept to be framed typically."""
    skipped: str | None = None


def collect_faces(
    items: list[LabelledItem],
    detector: FaceDetector | None,
    spec: FaceSpec,
    source: str,
    kind: Kind = "auto",
    undetected: Undetected = "drop",
    limits: ImageLimits | None = None,
    backdrops: Backdrops | None = None,
    workers: int | None = None,
) -> FaceSet:
    """Read labelled examples (see datasets.load_items) into normalised faces, in their order.

    With ``backdrops`` the images are transparent sprites: each is laid over a background chosen
    by its file name (the same on every run) and its opacity is kept in the face set's ``alpha``.

    Each skipped file is counted by label and reason, so `train` can say what it could not use.
    ``detector`` may be None only for crops with ``undetected='whole'`` (the crop is the face).
    ``undetected='typical'`` frames a crop the detector missed like the median of the crops it
    found in the same source: crops of one dataset share their framing, so this recovers them
    without mixing framings.

    Files are read on ``workers`` threads (default: one per usable core), each with a detector
    of its own; a screenshot with several labelled faces is read once.
    """
    limits = limits or ImageLimits()
    runs = [list(run) for _, run in itertools.groupby(items, key=lambda item: item.path)]
    threads = max(1, min(len(runs), workers or usable_cores()))
    detectors = [detector] + [_twin(detector) for _ in range(threads - 1)]

    def read(det: FaceDetector | None, run: list[LabelledItem]) -> list[_Read]:
        return _read_run(run, det, spec, kind, undetected, limits, backdrops)

    progress = Progress(len(items), f"reading faces from {source}")
    faces: list[np.ndarray] = []
    alphas: list[np.ndarray] = []
    kept: list[LabelledItem] = []
    missed: list[tuple[LabelledItem, np.ndarray]] = []
    relative: list[tuple[float, float, float, float]] = []
    skipped: Counter[tuple[str, str]] = Counter()
    opencv_threads = cv2.getNumThreads()
    share_cores(threads)
    try:
        for run, reads in zip(runs, in_order(read, runs, detectors), strict=True):
            progress.step(len(run))
            for item, got in zip(run, reads, strict=True):
                if got.skipped:
                    skipped[item.label, got.skipped] += 1
                elif got.missed is not None:
                    missed.append((item, got.missed))
                else:
                    assert got.face is not None and got.opacity is not None
                    faces.append(got.face)
                    alphas.append(got.opacity)
                    kept.append(item)
                    if got.relative is not None:
                        relative.append(got.relative)
    finally:
        cv2.setNumThreads(opencv_threads)
    if missed:
        if not relative:
            raise DatasetError(
                f"{source}: no face detected in any crop, so there is no typical framing to copy"
            )
        rx, ry, rw, rh = np.median(np.array(relative), axis=0)
        logger.info("{}: {} crops without a detected face framed like the median crop", source, len(missed))
        for item, image in missed:
            h, w = image.shape[:2]
            box = (round(rx * w), round(ry * h), round(rw * w), round(rh * h))
            faces.append(normalise_face(image, box, spec))
            alphas.append(np.full((spec.size, spec.size), 255, np.uint8))
            kept.append(item)
    empty = (0, spec.size, spec.size)
    stack = np.stack(faces) if faces else np.zeros(empty + ((3,) if spec.colour else ()), np.float32)
    return FaceSet(
        stack,
        [i.label for i in kept],
        [f"{source}:{i.group if i.group is not None else i.path}" for i in kept],
        [i.path for i in kept],
        [source] * len(kept),
        skipped,
        alpha=(np.stack(alphas) if alphas else np.zeros(empty, np.uint8)) if backdrops else None,
    )


def _twin(detector: FaceDetector | None) -> FaceDetector | None:
    """A detector set up like ``detector``, for another thread (OpenCV's cascades are not shareable)."""
    return None if detector is None else type(detector)(detector.settings, detector.paths)


def _read_run(
    run: list[LabelledItem],
    detector: FaceDetector | None,
    spec: FaceSpec,
    kind: Kind,
    undetected: Undetected,
    limits: ImageLimits,
    backdrops: Backdrops | None,
) -> list[_Read]:
    """The labelled faces of one file, read once."""
    try:
        image, alpha = _image_and_alpha(run[0].path, limits, backdrops)
    except (UnreadableImage, DatasetError) as exc:
        logger.warning("skipping {}: {}", run[0].path, exc)
        return [_Read(skipped="unreadable") for _ in run]
    gray = to_gray(image)
    # A screenshot with several labelled faces is searched once for all of them.
    several = len(run) > 1 and all(item.box is not None for item in run)
    detected = detector.detect(gray) if detector is not None and several else None
    reads = []
    for item in run:
        if item.box is not None and mostly_outside(item.box, gray.shape):
            reads.append(_Read(skipped=BOX_OUTSIDE))
            continue
        box, crop = training_box(gray, item.box, detector, kind, undetected, detected)
        if box is None:
            no_face = (
                _Read(missed=image) if crop and undetected == "typical" else _Read(skipped="no face found")
            )
            reads.append(no_face)
            continue
        h, w = gray.shape
        share = (box[0] / w, box[1] / h, box[2] / w, box[3] / h) if crop else None
        reads.append(_Read(normalise_face(image, box, spec), face_opacity(alpha, box, spec), share))
    return reads


def _image_and_alpha(
    path: Path, limits: ImageLimits, backdrops: Backdrops | None
) -> tuple[np.ndarray, np.ndarray]:
    """The image a model's faces are cut from and its opacity (all 255 unless a sprite over a
    ``backdrops`` scene)."""
    if backdrops is None:
        image = read_image(path, limits)
        return image, np.full(image.shape[:2], 255, np.uint8)
    bgra = read_rgba(path)
    return composite(bgra, backdrops.for_key(path.name, bgra.shape[:2])), bgra[..., 3]


def face_opacity(alpha: np.ndarray, box: Box, spec: FaceSpec) -> np.ndarray:
    """The opacity of a face framed exactly as :func:`normalise_face` frames it (uint8)."""
    crop = crop_face(alpha, box, spec)
    interp = cv2.INTER_AREA if crop.shape[0] > spec.size else cv2.INTER_LINEAR
    return cv2.resize(crop, (spec.size, spec.size), interpolation=interp)


BOX_OUTSIDE = "its box lies outside the image"
"""Why a labelled face whose box is mostly beyond its image's edge is skipped (boxes.mostly_outside)."""

CROP_MATCH_IOU = 0.7
"""A face found this close to a crop's middle half is taken to be that middle half."""


def training_box(
    gray: np.ndarray,
    known: Box | None,
    detector: FaceDetector | None,
    kind: Kind,
    undetected: Undetected,
    detected: Sequence[Face] | None = None,
) -> tuple[Box | None, bool]:
    """Where the labelled face is, framed the way the detector frames faces at run time; is it a crop?

    A known box (faces.json) is replaced by the detection that overlaps it, if any, so training
    sees the detector's framing; the box itself is used when the detector misses the face.
    ``detected``: the detector's faces in ``gray``, when the caller has them already.
    """
    whole: Box = (0, 0, gray.shape[1], gray.shape[0])
    if known is not None:
        faces = detected if detected is not None else detector.detect(gray) if detector else []
        found = [f.box for f in faces]
        best = max(found, key=lambda b: iou(b, known), default=None)
        return (best if best is not None and iou(best, known) >= SAME_FACE_IOU else known), False
    crop = kind == "crops" or (kind == "auto" and is_crop(gray.shape))
    if not crop:
        found = detector.detect(gray) if detector else []
        return (max(found, key=lambda f: f.area).box if found else None), False
    face = face_in_crop(gray, detector) if detector else None
    if face is not None:
        middle = box_in_crop(gray.shape)
        # A crop facesortd's way (the face its middle half) is read back exactly as it was cut, so
        # it is framed like the run-time face it came from; others keep the detector's box.
        return (middle if iou(face.box, middle) >= CROP_MATCH_IOU else face.box), True
    return (whole if undetected == "whole" else None), True


def grouped_folds(labels: list[str], groups: list[str], k: int, seed: int = 0) -> np.ndarray:
    """Fold index per sample; whole groups go to one fold, folds kept near equal in size.

    Groups are dealt largest first (ties broken by a seeded hash of the name) to the fold that has
    the fewest samples of that group's majority label, which keeps every fold's label mix close to
    the whole set's. A group is never split: a group larger than a fold makes that fold larger.
    """
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    fold_of = np.zeros(len(labels), dtype=np.int64)
    per_label = np.zeros((k, len(set(labels)) or 1))
    names = {lbl: i for i, lbl in enumerate(sorted(set(labels)))}
    # a group named after a file or folder not named in UTF-8 holds its stray bytes as surrogates:
    # hashed as those bytes (.encode() refused them, a traceback)
    order = sorted(members, key=lambda g: (-len(members[g]), zlib.crc32(os.fsencode(f"{seed}:{g}"))))
    for g in order:
        idx = members[g]
        major = names[Counter(labels[i] for i in idx).most_common(1)[0][0]]
        fold = int(np.lexsort((per_label.sum(axis=1), per_label[:, major]))[0])
        fold_of[idx] = fold
        for i in idx:
            per_label[fold, names[labels[i]]] += 1
    return fold_of


def independent_units(data: FaceSet) -> list[str]:
    """What validation must never split, per face: the data's own groups (a vn_faces repository,
    a seed character), or, when several sources are pooled, the whole source for a source that
    carries no groups (a folder of crops from one illustration set, like anime_expressions).

    Such a source says nothing about which of its files are related, so only holding it out as a
    whole measures what a model does on art it has not seen. A source alone keeps one unit per
    file: there is nothing else to hold it out from.
    """
    if len(set(data.sources)) < 2:
        return list(data.groups)
    sizes = Counter(data.groups)
    grouped = {s for s, g in zip(data.sources, data.groups, strict=True) if sizes[g] > 1}
    return [g if s in grouped else s for s, g in zip(data.sources, data.groups, strict=True)]


def holdout_split(data: FaceSet, share: float) -> tuple[FaceSet, FaceSet | None]:
    """(rest, held out): about ``share`` of the faces, whole groups, label mix kept; share 0: none."""
    if share <= 0.0:
        return data, None
    fold_of = grouped_folds(data.labels, data.groups, max(2, round(1.0 / share)))
    return data.subset(np.flatnonzero(fold_of != 0)), data.subset(np.flatnonzero(fold_of == 0))


def described(faces: np.ndarray, names: Sequence[str], workers: int = 1) -> dict[str, np.ndarray]:
    """Each named descriptor's features of ``faces``, by name, for a cross-validation to compute
    once rather than once per fold; ``workers`` threads each describe a share of the faces (every
    face's row is its own: the same rows as on one thread)."""
    bounds = np.linspace(0, len(faces), max(1, min(workers, len(faces))) + 1).astype(int)
    shares = list(itertools.pairwise(bounds))

    def part(_: None, share: tuple[int, int]) -> dict[str, np.ndarray]:
        return {d: describe(faces[share[0] : share[1]], d) for d in names}

    parts = list(in_order(part, shares, [None] * len(shares)))
    return {d: np.concatenate([p[d] for p in parts]) for d in names}


FitFn = Callable[[FaceSet], Model]


@dataclass
class Predictions:
    """Probabilities for labelled faces, kept whole so figures can be cut by source afterwards."""

    names: list[str]
    truth: np.ndarray
    proba: np.ndarray
    members: dict[str, Predictions] = field(default_factory=dict)
    """An ensemble's members on their own, by descriptor: what averaging them gained."""

    def evaluation(self, threshold: float, mask: np.ndarray | None = None) -> Evaluation:
        """Figures over all faces, or over those selected by ``mask`` (e.g. one data source)."""
        sel = np.ones(len(self.truth), bool) if mask is None else mask
        proba, truth = self.proba[sel], self.truth[sel]
        pred = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=np.int64)
        conf = proba[np.arange(len(pred)), pred] if len(pred) else np.zeros(0)
        return Evaluation.of(self.names, truth, pred, conf, threshold)


SOURCE_BALANCE = 0.5
"""Default of :func:`source_weights`' ``power``: halfway (in log terms) between pooling the faces of
all sources and giving every source the same total weight (README, "Emotion model")."""


def source_masks(sources: Sequence[str]) -> dict[str, np.ndarray]:
    """One face mask per data source, in name order, to give each source's figures apart."""
    return {name: np.array([s == name for s in sources]) for name in sorted(set(sources))}


def source_weights(sources: list[str], power: float = SOURCE_BALANCE) -> np.ndarray:
    """Weight per face so that a source of n faces weighs n^(1 - power) in total (mean weight 1).

    Pooling lets the many crops of one illustration set decide every class mean and direction, and
    what they teach did not carry to other artists' faces (README); weighting every source equally
    (power 1) lets a source of a few dozen faces count as much as one of thousands.
    """
    count = Counter(sources)
    w = np.array([count[s] ** -power for s in sources], dtype=np.float64)
    return w * (len(w) / w.sum()) if len(w) else w


def mirrored_name(descriptor: str) -> str:
    """The key of a descriptor's features of the mirrored faces in ``FaceSet.features``."""
    return f"{descriptor} mirrored"


def described_mirrors(faces: np.ndarray, names: Sequence[str], workers: int = 1) -> dict[str, np.ndarray]:
    """:func:`described` of the faces' mirror images, keyed by :func:`mirrored_name`, for the
    descriptors whose fit learns from mirrors (see :func:`emotion_fitter`)."""
    adds = [d for d in names if mirror_adds(d)]
    if not adds:
        return {}
    return {mirrored_name(d): x for d, x in described(mirror_faces(faces), adds, workers).items()}


def emotion_fitter(
    spec: FaceSpec,
    descriptors: Sequence[str],
    pca: int,
    net_settings: NetSettings | None = None,
    balance: float = SOURCE_BALANCE,
    mirror: bool = False,
) -> FitFn:
    """How `train` and the benchmark fit a model to part of the faces: one model per descriptor,
    an equal-weight ensemble of them when there are several; faces weighted by ``source_weights``.

    ``mirror`` (`train --mirror`; off by default, README "Mirrored faces in the Fisherface fit"): a
    hand-made descriptor's model is fitted on every face and its mirror image too
    (EmotionModel.fit), the mirrors as training rows only: the test side of a fold is the faces as
    they are. Their features are read from ``part.features`` under :func:`mirrored_name` when
    computed up front.

    With ``net_settings`` a ``cnn`` model gets a feature net trained on that part alone. A net
    that has seen the held-out faces makes cross-validation lie, flattering the balanced accuracy
    and fitting a temperature so low that the threshold auto-sorts far too much (README, "The
    feature net"). Otherwise a ``cnn`` model uses the shipped net as it is, and a descriptor's
    precomputed ``part.features`` are used when present.
    """

    def fit_one(part: FaceSet, descriptor: str) -> EmotionModel:
        trains_net = net_settings is not None and descriptor == LEARNT
        features = None if trains_net else part.features.get(descriptor)
        unmirrored = mirror and mirror_adds(descriptor) and mirrored_name(descriptor) not in part.features
        if (features is None or unmirrored) and not part.faces.size:
            raise ValueError(f"{descriptor}: faces without images (features_only) and no such features")
        own = train_feature_net(part, net_settings) if trains_net else None
        return EmotionModel.fit(
            part.faces,
            part.labels,
            spec,
            descriptor,
            pca,
            weights=source_weights(part.sources, balance),
            net=own,
            features=features,
            mirror=mirror,
            mirrored_features=part.features.get(mirrored_name(descriptor)),
        )

    def fit(part: FaceSet) -> Model:
        members = [fit_one(part, d) for d in descriptors]
        return members[0] if len(members) == 1 else EnsembleModel.of(members)

    return fit


@dataclass(frozen=True)
class Calibration:
    """Temperatures fitted on out-of-fold predictions: one per member (a single model is its own
    only member), and the one the model itself applies (for an ensemble: to the members' mean)."""

    members: list[float]
    temperature: float

    def apply(self, model: Model) -> None:
        """Give the model fitted on all faces the temperatures its cross-validation measured."""
        model.temperature = self.temperature
        if isinstance(model, EnsembleModel):
            for member, t in zip(model.members, self.members, strict=True):
                member.temperature = t


def cross_validate(
    data: FaceSet, fit: FitFn, folds: int, workers: int = 1
) -> tuple[Predictions, Calibration]:
    """Grouped k-fold: out-of-fold probabilities for every face, with temperatures fitted on them.

    Folds whose training part lacks a label still predict (that label is then never chosen),
    which is the honest outcome of having too few examples of it. When ``data.features`` has a
    member's descriptor, ``fit`` must train that member on ``part.features``: its test faces are
    scored from those same features.
    An ensemble's members are scored apart, so each gets its own temperature before they are
    combined, exactly as the model fitted on all faces will combine them.
    Folds are fitted on ``workers`` threads (the same figures: each fold is fitted alone); only
    for a ``fit`` that is deterministic on its own thread (a net seeds PyTorch's global generator).
    """
    _, predictions, calibration = _validated(data, fit, folds, workers, whole=False)
    return predictions, calibration


def fit_and_validate(data: FaceSet, fit: FitFn, folds: int, workers: int = 1) -> tuple[Model, Predictions]:
    """The model fitted on all faces, calibrated by :func:`cross_validate`, and its figures.

    The whole fit is one more task beside the folds (first: it is the biggest), so on two cores
    six fits take three rounds rather than four; the same model as fitting it afterwards.
    """
    model, predictions, calibration = _validated(data, fit, folds, workers, whole=True)
    assert model is not None
    calibration.apply(model)
    return model, predictions


def _validated(
    data: FaceSet, fit: FitFn, folds: int, workers: int, whole: bool
) -> tuple[Model | None, Predictions, Calibration]:
    names = sorted(set(data.labels))
    truth = np.array([names.index(lbl) for lbl in data.labels])
    fold_of = grouped_folds(data.labels, independent_units(data), folds)

    def task(_: None, f: int | None) -> tuple[np.ndarray, Model, list[np.ndarray]] | Model | None:
        if f is None:
            return fit(data)
        test = np.flatnonzero(fold_of == f)
        train = np.flatnonzero(fold_of != f)
        if not len(test) or len({data.labels[i] for i in train}) < 2:
            return None
        model = fit(data.subset(train))
        logits = []
        for member in model.members if isinstance(model, EnsembleModel) else [model]:
            known = data.features.get(member.descriptor)
            logits.append(member.logits(data.faces[test], None if known is None else known[test]))
        return test, model, logits

    tasks: list[int | None] = ([None] if whole else []) + list(range(folds))
    fitted: Model | None = None
    member_logits: list[np.ndarray] = []
    weights: list[float] = [1.0]
    descriptors: list[str] = []
    progress = Progress(len(tasks), "cross-validation folds" + (" and the model" if whole else ""))
    for done in in_order(task, tasks, [None] * max(1, min(workers, len(tasks)))):
        progress.step()
        if done is None:  # a fold whose training part lacks labels: its faces stay unpredicted
            continue
        if not isinstance(done, tuple):  # the fit on all faces
            fitted = done
            continue
        test, model, logits = done
        members = model.members if isinstance(model, EnsembleModel) else [model]
        weights = model.weights if isinstance(model, EnsembleModel) else [1.0]
        descriptors = [m.descriptor for m in members]
        member_logits = member_logits or [np.full((len(truth), len(names)), -np.inf) for _ in members]
        for into, member, z in zip(member_logits, members, logits, strict=True):
            into[np.ix_(test, [names.index(lbl) for lbl in member.labels])] = z
    if not member_logits:  # an ensemble's members then had no temperatures: a traceback in `train`
        raise DatasetError(
            f"too few faces to measure a model on faces it did not see: none of the {folds} "
            "cross-validation folds kept faces of two emotions to learn from (faces of one screenshot, "
            "character or dataset are held out together); add faces"
        )
    member_logits = [np.where(np.isfinite(z), z, -1e9) for z in member_logits]
    temperatures = [fit_temperature(z, truth) for z in member_logits]
    if len(member_logits) == 1:
        predictions = Predictions(names, truth, softmax(member_logits[0] / temperatures[0]))
        return fitted, predictions, Calibration(temperatures, temperatures[0])
    combined = combine(member_logits, weights, temperatures)
    temperature = fit_temperature(combined, truth)
    alone = {
        d: Predictions(names, truth, softmax(z / t))
        for d, z, t in zip(descriptors, member_logits, temperatures, strict=True)
    }
    predictions = Predictions(names, truth, softmax(combined / temperature), alone)
    return fitted, predictions, Calibration(temperatures, temperature)


def predict_set(model: Model, data: FaceSet) -> Predictions:
    """A fixed model's probabilities on labelled faces; labels it does not know can never be right."""
    names = sorted(set(model.labels) | set(data.labels))
    truth = np.array([names.index(lbl) for lbl in data.labels], dtype=np.int64)
    proba = np.zeros((len(truth), len(names)))
    if len(truth):
        proba[:, [names.index(lbl) for lbl in model.labels]] = model.predict_proba(data.faces)
    return Predictions(names, truth, proba)
