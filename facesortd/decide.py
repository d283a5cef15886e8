"""image -> Decision: sorted(emotion, confidence) or quarantined(reason). Decides, never moves.

A third kind, ``labelled``, is a person's decision carried out by facesortd (a key press on the
review page): it moves like a sorted file but is journaled as what it is, so ``status`` never
counts it as a file facesortd sorted.

Decisions are values so that ``--dry-run``, the journal, ``--json`` output and tests all see
exactly what would happen; ``library.apply`` is the only thing that acts on one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from facesortd.boxes import Box
from facesortd.config import ImageLimits, RecognitionSettings, Settings
from facesortd.detect import Candidates, Face, FaceDetector
from facesortd.ensemble import Model
from facesortd.faces import normalise_face
from facesortd.images import UnreadableImage, read_image, to_gray
from facesortd.quarantine import Reason


@dataclass(frozen=True)
class FaceResult:
    """One face of an image: where, how face-like, and what the model thinks of it."""

    box: Box
    score: float
    emotion: str | None
    confidence: float | None

    def to_json(self) -> dict[str, object]:
        return {
            "box": list(self.box),
            "score": round(self.score, 4),
            "emotion": self.emotion,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
        }


@dataclass(frozen=True)
class Decision:
    """What should happen to one file, and why."""

    action: Literal["sorted", "quarantined", "labelled"]
    emotion: str | None = None
    reason: Reason | None = None
    confidence: float | None = None
    faces: tuple[FaceResult, ...] = ()
    detail: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)

    @classmethod
    def quarantine(cls, reason: Reason, **kw: object) -> Decision:
        return cls("quarantined", reason=reason, **kw)  # type: ignore[arg-type]

    @classmethod
    def label(cls, emotion: str) -> Decision:
        """A person's label: the file goes into ``<emotion>/`` because a person said so."""
        return cls("labelled", emotion=emotion, detail="a person's label")

    @property
    def to_emotion_folder(self) -> bool:
        """Sorted by facesortd or labelled by a person: either way the file goes into its emotion's folder."""
        return self.action != "quarantined"

    def describe(self) -> str:
        """``happy 0.91`` or ``quarantined: unsure (best guess sad 0.41)``: the words every log line uses."""
        if self.action == "sorted":
            text = f"{self.emotion} {self.confidence:.2f}"
        elif self.action == "labelled":
            return f"{self.emotion}: {self.detail}"
        else:
            text = f"quarantined: {self.reason}"
            if self.confidence is not None:
                text += f" (best guess {self.emotion} {self.confidence:.2f})"
        return text + (f" - {self.detail}" if self.detail else "")

    @property
    def outcome(self) -> str:
        """``happy`` or ``quarantine/no-face``: the key counts are kept under (status, summaries)."""
        return str(self.emotion) if self.to_emotion_folder else f"quarantine/{self.reason}"


def choose(faces: Sequence[FaceResult], threshold: float, policy: str) -> Decision:
    """Turn the analysed faces of one image into a decision.

    ``largest``: the biggest face decides (a reaction image is about its main face; small
    background faces should not veto it). ``agree``: every face at or above the threshold must
    share one emotion, else the file goes to ``mixed``. Either way a file is sorted only on a
    confidence at or above ``threshold``; no face at all is ``no-face``.
    """
    faces = tuple(faces)
    if not faces:
        return Decision.quarantine("no-face")
    if policy == "largest":
        main = max(faces, key=lambda f: f.box[2] * f.box[3])
        if main.emotion is None or main.confidence is None or main.confidence < threshold:
            return Decision.quarantine(
                "unsure", emotion=main.emotion, confidence=main.confidence, faces=faces
            )
        return Decision("sorted", emotion=main.emotion, confidence=main.confidence, faces=faces)
    confident = [f for f in faces if f.confidence is not None and f.confidence >= threshold]
    if not confident:
        best = max(faces, key=lambda f: f.confidence or 0.0)
        return Decision.quarantine("unsure", emotion=best.emotion, confidence=best.confidence, faces=faces)
    emotions = {f.emotion for f in confident}
    if len(emotions) > 1:
        return Decision.quarantine(
            "mixed", faces=faces, detail="confident faces disagree: " + ", ".join(sorted(emotions))
        )  # type: ignore[arg-type]
    return Decision(
        "sorted", emotion=confident[0].emotion, confidence=min(f.confidence for f in confident), faces=faces
    )  # type: ignore[type-var]


class Pipeline:
    """detect -> normalise -> recognise -> choose, for one image at a time.

    Holds the loaded detector and model so a batch or the daemon pays their start-up once.
    ``model`` may be None (nothing trained yet): faces are then found but every file is 'unsure'.
    """

    def __init__(
        self,
        detector: FaceDetector,
        model: Model | None,
        recognition: RecognitionSettings,
        limits: ImageLimits,
    ) -> None:
        self.detector = detector
        self.model = model
        self.recognition = recognition
        self.limits = limits

    @classmethod
    def for_settings(
        cls, settings: Settings, model: Model | None, detector: FaceDetector | None = None
    ) -> Pipeline:
        """The pipeline these settings make, the daemon's workers' and the commands' alike (one per
        thread: the detector is not shareable); ``detector`` if a command gives its own (which the
        tests replace), else one of ``settings.detection``."""
        return cls(detector or FaceDetector(settings.detection), model, settings.recognition, settings.images)

    def analyse(self, image: np.ndarray) -> tuple[list[FaceResult], Candidates]:
        """Faces of a decoded image with their predicted emotions, and what the detector's passes
        proposed: ``detect`` (the command) says from it why no face was kept."""
        gray = to_gray(image)
        found = self.detector.candidates(gray)
        return self._recognised(gray, self.detector.select(gray, found)), found

    def decide(self, path: Path) -> Decision:
        """The decision for one file; unreadable input becomes a quarantine decision, never an exception."""
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        try:
            image = read_image(path, self.limits)
        except UnreadableImage as exc:
            return Decision.quarantine("unreadable", detail=str(exc), timings_ms=timings)
        timings["decode"] = (time.perf_counter() - t0) * 1000
        try:
            faces = self._analyse(to_gray(image), timings)
        except cv2.error as exc:  # e.g. 1x10000 pixels: too thin for OpenCV to scale
            shape = f"{image.shape[1]}x{image.shape[0]}"
            return Decision.quarantine(
                "unreadable", detail=f"OpenCV cannot process a {shape} image ({exc.func}: {exc.err})"
            )
        decision = choose(faces, self.recognition.threshold, self.recognition.multi_face)
        return Decision(**{**decision.__dict__, "timings_ms": timings})

    def _analyse(self, gray: np.ndarray, timings: dict[str, float]) -> list[FaceResult]:
        t0 = time.perf_counter()
        found = self.detector.detect(gray)
        t1 = time.perf_counter()
        timings["detect"] = (t1 - t0) * 1000
        faces = self._recognised(gray, found)
        timings["recognise"] = (time.perf_counter() - t1) * 1000 if found and self.model is not None else 0.0
        return faces

    def _recognised(self, gray: np.ndarray, found: list[Face]) -> list[FaceResult]:
        if self.model is None or not found:
            return [FaceResult(f.box, f.score, None, None) for f in found]
        batch = np.stack([normalise_face(gray, f.box, self.model.spec) for f in found])
        predictions = self.model.predict(batch)
        return [FaceResult(f.box, f.score, e, c) for f, (e, c) in zip(found, predictions, strict=True)]
