"""EnsembleModel: emotion models over different descriptors, averaged; and reading any model file.

Why: HOG + LBP and the small CNN get different faces wrong. On held-out anime_expressions faces the
equal-weight mean of their calibrated log-probabilities beat both members (README, "Emotion
model"), while the seed screenshots stayed level. Each member keeps its own PCA/LDA head, so the
ensemble still updates exactly from class statistics when the user labels faces: every member
absorbs them.

Combination: ``sum_i w_i * log_softmax(logits_i / T_i)``, each member calibrated on its own
out-of-fold predictions, then one more temperature for the mean. A mean of calibrated members is
not calibrated itself: it is under-confident where they disagree (README, "Training an emotion
model").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facesortd.emotion import (
    FORMAT_VERSION,
    Calibrated,
    EmotionModel,
    ModelError,
    read_model_file,
    write_model_file,
)
from facesortd.faces import FaceSpec
from facesortd.feature_net import FeatureNetError
from facesortd.quarantine import not_a_folder_of_its_own

ENSEMBLE_FORMAT_VERSION = 3
"""Ensembles get their own format version, so a facesortd that predates them says which version it
cannot read instead of calling the file corrupt; single models keep version 2."""


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def combine(member_logits: list[np.ndarray], weights: list[float], temperatures: list[float]) -> np.ndarray:
    """The ensemble's un-tempered logits from its members' (same columns in every array)."""
    return sum(
        (w * log_softmax(z / t) for z, w, t in zip(member_logits, weights, temperatures, strict=True)),
        start=np.zeros_like(member_logits[0]),
    )


@dataclass
class EnsembleModel(Calibrated):
    """Members with the same emotions and face framing; ``weights`` sum to 1."""

    members: list[EmotionModel]
    weights: list[float]
    temperature: float = 1.0
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.members) < 2 or len(self.weights) != len(self.members):
            raise ValueError("an ensemble needs at least two members and one weight per member")
        first = self.members[0]
        if any(m.labels != first.labels or m.spec != first.spec for m in self.members):
            raise ValueError("ensemble members must know the same emotions and frame faces the same way")
        total = float(sum(self.weights))
        self.weights = [float(w) / total for w in self.weights]

    @classmethod
    def of(cls, members: list[EmotionModel]) -> EnsembleModel:
        """Equal weights: the measured choice (README), and the one that needs no extra data to tune."""
        info = {
            "counts": members[0].info.get("counts", {}),
            "descriptors": [m.descriptor for m in members],
        }
        return cls(members, [1.0] * len(members), info=info)

    @property
    def labels(self) -> list[str]:
        return self.members[0].labels

    @property
    def spec(self) -> FaceSpec:
        return self.members[0].spec

    @property
    def descriptor(self) -> str:
        """The members' descriptors, for logs and listings ("hog+lbp | cnn"); not a descriptor name."""
        return " | ".join(m.descriptor for m in self.members)

    def logits(self, faces: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """(n, classes) un-tempered ensemble logits; each member describes the faces its own way."""
        if features is not None:
            raise ValueError("an ensemble describes faces itself: pass faces, not features")
        return combine(
            [m.logits(faces) for m in self.members], self.weights, [m.temperature for m in self.members]
        )

    def updated(
        self, faces: np.ndarray, labels: list[str], weight: float | np.ndarray = 1.0
    ) -> EnsembleModel:
        """Every member updated with the same labelled faces (see EmotionModel.updated)."""
        members = [m.updated(faces, labels, weight) for m in self.members]
        info = {**self.info, "counts": members[0].info["counts"]}
        info.pop("created", None)
        return EnsembleModel(members, self.weights, self.temperature, info)

    def save(self, path: Path) -> Path:
        """One file holding every member (atomic, like a single model)."""
        self.info.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
        metas, arrays = [], {}
        for i, member in enumerate(self.members):
            meta, member_arrays = member.stored(prefix=f"m{i}_")
            metas.append(meta)
            arrays.update(member_arrays)
        meta = {
            "format_version": ENSEMBLE_FORMAT_VERSION,
            "weights": self.weights,
            "temperature": self.temperature,
            "info": self.info,
            "members": metas,
        }
        return write_model_file(path, meta, arrays)


Model = EmotionModel | EnsembleModel
READABLE = (1, FORMAT_VERSION, ENSEMBLE_FORMAT_VERSION)


def load_model(path: Path, seen: Callable[[bytes], object] | None = None) -> Model:
    """Any emotion model file, single or ensemble; problems become a ModelError naming the file.
    ``seen``: as for :func:`read_model_file`."""
    meta, arrays = read_model_file(path, READABLE, seen=seen)
    try:
        model: Model
        if meta["format_version"] != ENSEMBLE_FORMAT_VERSION:
            model = EmotionModel.from_stored(meta, arrays)
        else:
            members = [EmotionModel.from_stored(m, arrays, f"m{i}_") for i, m in enumerate(meta["members"])]
            model = EnsembleModel(
                members, list(meta["weights"]), float(meta["temperature"]), dict(meta["info"])
            )
    except (KeyError, TypeError, ValueError, FeatureNetError) as exc:
        raise ModelError(f"model file {path} is corrupt: {exc}") from exc
    for label in model.labels:  # one trained before 2026-12-03 on a faces.json emotion "../x"
        if why := not_a_folder_of_its_own(label):
            raise ModelError(f"model file {path} has an emotion named {label}, which is refused ({why})")
    return model


def model_info(path: Path) -> dict[str, Any]:
    """A model file's ``info`` (creation time, figures, decision) without loading its arrays: listing
    the model history must not read megabytes per model."""
    meta, _ = read_model_file(path, READABLE, with_arrays=False)
    return dict(meta.get("info") or {})
