"""Anime-face detection: cascade(s) on a downscaled image -> boxes in the original image, scored.

Boxes follow one convention everywhere (roughly square, forehead/bangs line to chin, cheek to
cheek, as in the seed's faces.json) because the emotion model is trained on faces framed that way.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from facesortd import region_scan
from facesortd.advice import advised
from facesortd.boxes import Box
from facesortd.config import GATE_SHIPPED, DetectionSettings
from facesortd.durable import NOT_REGULAR
from facesortd.gate import Gate, GateError, Mark, load_gate
from facesortd.verify import CnnVerifier, Shrunk, VerifierError, load_verifier

SHIPPED_CASCADE = "facesortd_anime_face.xml"
SHIPPED_VERIFIER = "facesortd_verifier.npz"
SHIPPED_GATE = "facesortd_gate.npz"

CLOSE_UP_SIDES = (64, 128)
"""Shorter side (px) the image is shrunk to for the close-up passes: big faces need no detail."""
CLOSE_UP_PADS = (0.2, 0.4)
"""Border added on every side for the close-up passes, as a share of the shrunk shorter side. Each
size and border puts the search grid elsewhere on the face: one of each alone finds some close-ups
and misses others, two of each find them all (cascade_classifier/README.md, "Measured")."""
CLOSE_UP_MIN = 0.45
"""Close-up passes only look for faces at least this share of the image's shorter side."""
CUT_FACE_SIDE = 180
"""Shorter side (px) of the copy the cut-face pass scans: half the full-size pass's, so its grid is
coarser and its cost a fraction; faces of CUT_FACE_MIN and more keep enough detail there."""
CUT_FACE_PAD = 0.12
"""Border of the cut-face pass, as a share of its shorter side: room for a window to reach past
the frame over a face cut by it."""
CUT_FACE_MIN = 0.15
"""Smallest face the cut-face pass looks for, as a share of the image's shorter side (below it,
the full-size pass and the lone windows; above CLOSE_UP_MIN, the close-ups as well)."""
CUT_FACE_SCALE_FACTOR = 1.2
"""The cut-face pass's step between window sizes, coarser than the full-size pass's: as a rescue at
the frame's edge it finds as many faces so, at a lower cost; a coarser step loses most of them
(cascade_classifier/README.md, "A pass for faces cut by the frame")."""


LONE_WINDOWS = 10
"""How many of the strongest ungrouped windows, away from the faces found, the verifier looks at:
the strongest carry most of the faces grouping dropped, and every window verified costs time (the
curve of faces, false faces and cost: cascade_classifier/README.md)."""
GROUP_EPS = 0.2
"""How similar windows must be to form a group: OpenCV's own value in detectMultiScale."""


@dataclass(frozen=True)
class Face:
    """A detected face: its box (x, y, w, h) in the original image and a score in [0, 1]."""

    box: Box
    score: float

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


@dataclass(frozen=True)
class Candidates:
    """What the passes of one image propose: the grouped boxes of the full-size and close-up
    passes (scored), the full-size pass's raw windows before grouping (strongest first by the
    cascade's score; empty unless lone windows are looked at) and the shrunk copy of the image."""

    full: list[Face]
    close: list[Face]
    windows: list[Face]
    shrunk: Shrunk


class DetectorError(Exception):
    """The detector cannot be set up (missing or broken cascade file); the message says how to fix it."""


def shipped_file(name: str) -> Path | None:
    """A file bundled in the cascade_classifier data package, or None if this installation lacks it."""
    try:
        path = Path(str(resources.files("cascade_classifier").joinpath(name)))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def _cascade_from(path: Path) -> cv2.CascadeClassifier:
    """OpenCV opens the file itself where it can. Handed a name that is not UTF-8 (a folder so named
    on the way to it: a virtual environment, a config's path) it kills the whole process with a
    segmentation fault, so such a file is read by Python and parsed by OpenCV from memory."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        storage = cv2.FileStorage(
            path.read_bytes().decode("utf-8"), cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY
        )
        cascade = cv2.CascadeClassifier()
        cascade.read(storage.getFirstTopLevelNode())
        return cascade
    return cv2.CascadeClassifier(str(path))


def load_cascade(path: Path) -> cv2.CascadeClassifier:
    """Load one cascade, turning OpenCV's silent failure (an empty classifier) into a clear error."""
    if not path.is_file():  # a folder or a FIFO "did not exist"
        why = f"is {NOT_REGULAR}" if path.exists() else "does not exist"
        why = "is a folder" if path.is_dir() else why
        raise DetectorError(f"cascade file {path} {why} (check detection.cascades in the config)")
    try:
        cascade = _cascade_from(path)
    except (cv2.error, SystemError, UnicodeDecodeError) as exc:  # OpenCV 5: SystemError on malformed XML
        raise DetectorError(f"cascade file {path} is not an OpenCV cascade (cannot be parsed)") from exc
    if cascade.empty():
        raise DetectorError(f"cascade file {path} is not an OpenCV cascade (empty or wrong format)")
    return cascade


def _intersection(a: Box, b: Box) -> int:
    """The area two boxes share (0 when apart)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    inter = _intersection(a, b)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def non_max_suppression(faces: Sequence[Face], max_iou: float) -> list[Face]:
    """Keep the best-scoring face of every group overlapping by more than ``max_iou``.

    Needed when several cascades (or scales) report the same face; also drops a box lying mostly
    inside a bigger, better one.
    """
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if not any(_overlap(face.box, k.box, max_iou) for k in kept):
            kept.append(face)
    return kept


def _overlap(a: Box, b: Box, max_iou: float) -> bool:
    """Do the boxes overlap more than ``max_iou``, or does ``a`` lie mostly inside ``b``?"""
    return iou(a, b) > max_iou or _mostly_inside(a, b)


def _mostly_inside(inner: Box, outer: Box) -> bool:
    """Does more than 0.8 of ``inner`` lie inside ``outer`` (a part of a face, or the same face
    framed tighter)?"""
    return _intersection(inner, outer) > 0.8 * inner[2] * inner[3]


class FaceDetector:
    """Runs the configured cascade(s) and returns scored boxes in original-image coordinates.

    Large images are shrunk to ``max_side`` first: the scan's cost grows with the pixels scanned,
    and faces worth sorting are large enough to survive it (the cost and the faces lost at other
    sides: cascade_classifier/README.md, "Measured").
    """

    def __init__(self, settings: DetectionSettings, cascades: Sequence[Path] | None = None) -> None:
        paths = list(cascades if cascades is not None else settings.cascades)
        if not paths:
            shipped = shipped_file(SHIPPED_CASCADE)
            if shipped is None:
                raise DetectorError(
                    "no face cascade: this installation ships none and detection.cascades is empty; set "
                    f"detection.cascades to a cascade XML file (or train one: {advised('train-detector')})"
                )
            paths = [shipped]
        self.settings = settings
        self.paths = paths
        self._cascades = [load_cascade(p) for p in paths]
        self.verifier_path = (
            (settings.verifier or shipped_file(SHIPPED_VERIFIER)) if settings.verify else None
        )
        self._verifier = _load_verifier(self.verifier_path) if self.verifier_path else None
        self.gate_path = gate_file(settings.gate) if settings.gate else None
        self._gate = _load_gate(self.gate_path) if self.gate_path else None

    def detect(self, gray: np.ndarray, padded: bool = False) -> list[Face]:
        """Faces in a grayscale image, best first; boxes are clipped to the image.

        ``padded=True`` is for a caller that has padded the image itself, so that no face touches
        its frame: the close-up passes and the lone windows are both there for faces cut by the
        frame, so they are skipped even when the settings ask for them.
        """
        return self.select(gray, self.candidates(gray, padded))

    def select(self, gray: np.ndarray, found: Candidates) -> list[Face]:
        """The faces :meth:`detect` keeps of ``found`` (this image's :meth:`candidates`)."""
        faces = self._kept(found.full)
        for close in self._kept(found.close):
            faces = self._with_close_up(close, faces)
        faces += self._lone_windows(gray, found, faces)
        return [Face(clipped(f.box, gray.shape), f.score) for f in sorted(faces, key=lambda f: -f.score)]

    def candidates(self, gray: np.ndarray, padded: bool = False) -> Candidates:
        """What the passes propose, the grouped proposals scored (by the verifier, if there is
        one), before weak ones are dropped and overlaps merged; boxes unclipped (``padded``: as
        :meth:`detect`). Public so that the benchmark can tell where a missed face was lost, and
        ``detect`` (the command) why none was kept, without running the passes a second time."""
        s = self.settings
        scale = min(1.0, s.max_side / max(gray.shape[:2]))
        shrunk = (
            gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        small = cv2.equalizeHist(shrunk) if s.equalize else shrunk
        smallest = max(s.min_size, s.min_size_share * min(gray.shape[:2]))
        rescues = self._rescues and not padded
        marks = self._gate.marks(shrunk) if self._gate else None
        full, windows = self._scan(small, scale, 0, max(1, round(smallest * scale)), rescues, marks)
        close = self._close_ups(small, scale) if s.close_ups and not padded else []
        if s.cut_faces and not padded:
            close += self._cut_faces(small, scale, gray.shape)
        scored = self._verified(gray, full + close, (shrunk, scale))  # one verifier call for both passes
        return Candidates(scored[: len(full)], scored[len(full) :], windows, (shrunk, scale))

    @property
    def _rescues(self) -> bool:
        """Are lone windows looked at (they need the verifier and a grouping that drops some)?"""
        s = self.settings
        return self._verifier is not None and s.min_neighbors > 0 and s.lone_window_score < 1.0

    def _lone_windows(self, gray: np.ndarray, found: Candidates, faces: list[Face]) -> list[Face]:
        """Faces among the raw windows of the full-size pass that grouping dropped.

        OpenCV keeps a window only with min_neighbors similar ones beside it, and at the frame's
        edge the search grid cannot shift past the border: many missed faces, most of all faces
        cut by the frame, had a window framing them that grouping dropped
        (cascade_classifier/README.md). The LONE_WINDOWS strongest windows that overlap no face
        found are verified; a face needs the stricter lone_window_score, since a window on its
        own has no neighbours to vouch for it.
        """
        if not found.windows:
            return []
        lone = list(itertools.islice((w for w in found.windows if not self._near(w, faces)), LONE_WINDOWS))
        scored = self._verified(gray, lone, found.shrunk)
        return self._kept(scored, self.settings.lone_window_score)

    def _with_close_up(self, close: Face, faces: list[Face]) -> list[Face]:
        """``faces`` with a close-up box added where the full-size pass found nothing.

        The coarse close-up grid frames a face more loosely than the full-size pass, so a close-up
        box loses to a face it overlaps or lies mostly inside. A face lying mostly inside it is
        either the same face framed tighter (the close-up box would be a second, false face) or a
        part of a face too big for the full-size pass: the better-scored of the two stays (on a
        tie, which only unverified scores reach, the close-up box that holds the other).
        """
        if any(_overlap(close.box, f.box, self.settings.nms_iou) for f in faces):
            return faces
        inside = [f for f in faces if _mostly_inside(f.box, close.box)]
        if any(f.score > close.score for f in inside):
            return faces
        return [f for f in faces if f not in inside] + [close]

    def _near(self, face: Face, faces: list[Face]) -> bool:
        """Does ``face`` overlap any of ``faces`` (either lying mostly inside the other)?"""
        t = self.settings.nms_iou
        return any(_overlap(face.box, f.box, t) or _overlap(f.box, face.box, t) for f in faces)

    def _verified(self, gray: np.ndarray, faces: list[Face], shrunk: Shrunk) -> list[Face]:
        """Candidates rescored by the verifier, if there is one."""
        if self._verifier is None or not faces:
            return faces
        probability = self._verifier.score(gray, [f.box for f in faces], shrunk)
        return [Face(f.box, float(p)) for f, p in zip(faces, probability, strict=True)]

    def _kept(self, faces: list[Face], min_score: float | None = None) -> list[Face]:
        """Weak candidates dropped, overlaps merged."""
        s = self.settings
        floor = s.min_score if min_score is None else min_score
        return non_max_suppression([f for f in faces if f.score >= floor], s.nms_iou)

    def _scan(
        self,
        image: np.ndarray,
        scale: float,
        pad: int,
        min_side: int,
        windows: bool = False,
        marks: list[Mark] | None = None,
        scale_factor: float | None = None,
    ) -> tuple[list[Face], list[Face]]:
        """Every cascade over ``image`` (the original scaled by ``scale``, then padded by ``pad``
        pixels on each side): the grouped boxes and, if ``windows``, the raw windows before
        grouping, strongest first; boxes in original-image coordinates, possibly reaching outside it.

        For the raw windows the scan runs ungrouped and the windows are grouped here as OpenCV
        groups them (region_scan.groups: OpenCV hands them out clipped to the image, but groups
        them before clipping): one scan instead of two. Those groups are then
        scored by the verifier only, so they carry no cascade score. With the gate's ``marks``
        the scan is ungrouped and only where the gate asks (nearly the whole scan's windows there:
        cascade_classifier/README.md); without raw windows wanted its groups carry OpenCV's weight.
        ``scale_factor``: the step between window sizes, if not the settings' (the cut-face pass).
        """
        s = self.settings
        factor = scale_factor or s.scale_factor
        grouped: list[Face] = []
        raw: list[Face] = []
        for cascade in self._cascades:
            scan = region_scan.Scan(cascade, image.shape, factor, min_side, s.min_neighbors, GROUP_EPS)
            if marks is None:
                rects, _levels, weights = cascade.detectMultiScale3(
                    image,
                    scaleFactor=factor,
                    minNeighbors=0 if windows else s.min_neighbors,
                    minSize=(min_side, min_side),
                    outputRejectLevels=True,
                )
            else:
                rects, weights = self._gated_windows(cascade, image, min_side, marks)
                if not windows:
                    rects, weights = region_scan.grouped(rects, weights, scan)
            found = [
                Face(box, _squash(w))
                for box, w in zip(_in_original(rects, scale, pad), np.ravel(weights).tolist(), strict=True)
            ]
            if not windows:
                grouped += found
                continue
            raw += found
            groups = region_scan.groups(rects, scan)
            grouped += [Face(box, 0.0) for box in _in_original(groups, scale, pad)]
        return grouped, sorted(raw, key=lambda f: -f.score)

    def _gated_windows(
        self, cascade: cv2.CascadeClassifier, image: np.ndarray, min_side: int, marks: list[Mark]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The raw windows of the whole scan that lie where the gate's ``marks`` ask for them, and
        (if the gate completes them) every window grouping could join with those, so that a
        cluster is grouped whole."""
        gate = self._gate
        assert gate is not None  # marks come from it
        return region_scan.raw_windows(
            cascade,
            image,
            self.settings.scale_factor,
            min_side,
            lambda side: gate.regions(marks, side, image.shape),
            GROUP_EPS if gate.complete else None,
        )

    def _close_ups(self, small: np.ndarray, scale: float) -> list[Face]:
        """Big faces, including those larger than the frame or cut by it.

        The typical reaction screenshot is a close-up: the face fills the picture and its chin or
        hair runs off the edge, so no detection window fits inside the image. The image is shrunk
        (big faces need no detail, which keeps this cheap) and given a replicated border the
        window can reach into. Replicated, not mirrored: a mirrored border makes a second
        half-face that the cascade takes for a face.
        """
        short = min(small.shape[:2])
        faces: list[Face] = []
        for f in sorted({min(1.0, side / short) for side in CLOSE_UP_SIDES}):  # small images: one size
            tiny = small if f == 1.0 else cv2.resize(small, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            for share in CLOSE_UP_PADS:
                faces += self._bordered(tiny, scale * f, share, max(1, round(CLOSE_UP_MIN * short * f)))
        return faces

    def _cut_faces(self, small: np.ndarray, scale: float, shape: tuple[int, ...]) -> list[Face]:
        """Mid-size faces cut by the frame, the boxes that run off it only.

        At the frame's edge the full-size pass's grid cannot shift past the border, so a cut face
        gets few windows or none (the misses of cascade_classifier/README.md). A half-size copy
        with a thin replicated border gives windows there; what lies inside the frame is the
        full-size pass's to find, so only boxes reaching past it are kept, which spares the
        verifier and adds no false face inside the picture. The whole copy is scanned all the
        same: a third of its windows reach into the border, and scanning only the windows that can
        make a kept box (with their clusters completed, as exactness needs) costs more than the
        whole scan and still misses OpenCV's windows here and there (cascade_classifier/README.md).
        """
        short = min(small.shape[:2])
        f = min(1.0, CUT_FACE_SIDE / short)
        tiny = small if f == 1.0 else cv2.resize(small, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        min_side = max(1, round(CUT_FACE_MIN * short * f))
        found = self._bordered(tiny, scale * f, CUT_FACE_PAD, min_side, CUT_FACE_SCALE_FACTOR)
        return [face for face in found if clipped(face.box, shape) != face.box]

    def _bordered(
        self, tiny: np.ndarray, scale: float, share: float, min_side: int, scale_factor: float | None = None
    ) -> list[Face]:
        """The grouped faces of ``tiny`` (the original scaled by ``scale``) given a replicated border
        of ``share`` of its shorter side on every side, in original-image coordinates."""
        pad = round(share * min(tiny.shape[:2]))
        padded = cv2.copyMakeBorder(tiny, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        return self._scan(padded, scale, pad, min_side, scale_factor=scale_factor)[0]


def gate_file(gate: str | Path) -> Path:
    """The file detection.gate names: ``shipped`` is the gate bundled beside the cascade."""
    if gate != GATE_SHIPPED:
        return Path(gate)
    shipped = shipped_file(SHIPPED_GATE)
    if shipped is None:
        raise DetectorError(
            f'detection.gate = "{GATE_SHIPPED}", but this installation ships no gate ({SHIPPED_GATE}); '
            "set detection.gate to a gate file, or to off"
        )
    return shipped


def _load_gate(path: Path) -> Gate:
    try:
        return load_gate(path)
    except GateError as exc:
        raise DetectorError(str(exc)) from exc


def _load_verifier(path: Path) -> CnnVerifier:
    try:
        return load_verifier(path)
    except VerifierError as exc:
        raise DetectorError(
            f"{exc} (set detection.verifier to another file, or detection.verify = false)"
        ) from exc


def clipped(box: Box, shape: tuple[int, ...]) -> Box:
    """The part of ``box`` inside an image of ``shape``: the faces.json convention for cut faces."""
    x, y, w, h = box
    x0, y0 = min(max(0, x), shape[1] - 1), min(max(0, y), shape[0] - 1)
    return (x0, y0, max(1, min(shape[1], x + w) - x0), max(1, min(shape[0], y + h) - y0))


def _in_original(rects: Sequence[Sequence[int]] | np.ndarray, scale: float, pad: int) -> list[Box]:
    """Windows of a scan over the image scaled by ``scale`` and padded by ``pad``, in the original.

    All at once: a busy picture's full-size pass has about a thousand raw windows, and rounding
    them one by one in Python cost a tenth of its detection time. ``np.rint`` rounds halves to even
    as ``round`` does, on the same float64 quotients, so the boxes are the same to the pixel."""
    r = np.asarray(rects, np.float64).reshape(-1, 4)
    r[:, :2] -= pad
    return [tuple(box) for box in np.rint(r / scale).astype(np.int64).tolist()]


def _squash(weight: float) -> float:
    """Map the cascade's last-stage sum to (0, 1): higher means further past the stage threshold."""
    return 1.0 / (1.0 + math.exp(-weight))
