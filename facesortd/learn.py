"""Learning from review: the user's labels become a better model, never a worse one.

A label is a face crop kept in the state folder (so retraining does not depend on the user keeping
the file) plus the emotion a person gave it. Retraining starts from the bootstrap model (the
shipped one, or one the user trained with `facesortd train`) and adds every user label, weighted
so the user's own domain dominates. The new model is measured against the model in force on the
same held-out user labels (grouped by screenshot source) and on the validation set that
`facesortd train` held out from the bootstrap model, and adopted only if it is not worse on either
(by ``learning.adopt_metric``, within ``max_drop`` / ``bootstrap_max_drop``).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from loguru import logger

from facesortd.config import LearningSettings, Settings
from facesortd.datasets import Box
from facesortd.descriptors import DEFAULT_DESCRIPTOR
from facesortd.durable import atomic_writer
from facesortd.emotion import MODEL_SUFFIX, EmotionModel, fit_temperature, softmax
from facesortd.ensemble import Model, load_model
from facesortd.faces import FaceSpec, crop_face, normalise_face
from facesortd.journal import Journal
from facesortd.model_store import (
    adopt,
    model_in_force,
    models_dir,
    shipped_model,
    user_models,
    validation_path,
)
from facesortd.training import FaceSet, Predictions, grouped_folds, predict_set

KEEP_MARGIN = 0.5
"""Kept crops are wider than any face spec's margin, so a later model can re-normalise them."""
KEEP_SIDE = 192


def faces_dir(settings: Settings) -> Path:
    return settings.state_dir / "faces"


def keep_face(settings: Settings, content_hash: str, gray: np.ndarray, box: Box) -> Path:
    """Store the face of a labelled file as ``<state_dir>/faces/<hash>.png`` (atomic; kept once)."""
    path = faces_dir(settings) / f"{content_hash}.png"
    if not path.exists():
        crop = crop_face(gray, box, FaceSpec(margin=KEEP_MARGIN))
        if crop.shape[0] > KEEP_SIDE:
            crop = cv2.resize(crop, (KEEP_SIDE, KEEP_SIDE), interpolation=cv2.INTER_AREA)
        ok, png = cv2.imencode(".png", crop)
        if not ok:
            raise OSError(f"could not encode the face crop for {content_hash}")
        with atomic_writer(path) as fh:
            fh.write(png.tobytes())
    return path


def kept_face(path: Path, spec: FaceSpec) -> np.ndarray:
    """A kept crop normalised with ``spec``: the face box is the centre of the crop."""
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise OSError(f"kept face {path} is missing or unreadable")
    side = gray.shape[0]
    inner = side / (1.0 + 2.0 * KEEP_MARGIN)
    start = round((side - inner) / 2.0)
    return normalise_face(gray, (start, start, round(inner), round(inner)), spec)


LabelSource = Literal["human", "correction", "dataset"]
"""A person moved the file (``human``), moved a sorted file to another emotion (``correction``), or
the label came with an imported dataset (``facesortd import-labels``)."""


@dataclass(frozen=True)
class UserLabel:
    """A labelled face for retraining: the kept crop, the emotion, its group and where the label came from."""

    face: Path
    label: str
    group: str
    source: LabelSource = "human"

    def weight(self, learning: LearningSettings) -> float:
        """A person's labels dominate (user_weight, corrections more); imported ones weigh 1."""
        if self.source == "dataset":
            return 1.0
        return learning.user_weight * (learning.correction_weight if self.source == "correction" else 1.0)


@dataclass(frozen=True)
class Comparison:
    """One held-out set on which the new model was measured against the model in force."""

    held_out: str
    candidate: float
    current: float | None
    max_drop: float

    @property
    def passed(self) -> bool:
        return self.current is None or self.candidate >= self.current - self.max_drop

    def describe(self, metric: str) -> str:
        current = "n/a" if self.current is None else f"{self.current:.3f}"
        return f"{metric} on {self.held_out}: new {self.candidate:.3f}, current {current}"


@dataclass
class RetrainResult:
    """What a retrain produced and whether it was adopted, with the figures that decided it."""

    path: Path | None
    adopted: bool
    comparisons: list[Comparison] = field(default_factory=list)
    used: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    reason: str = ""

    def describe(self, metric: str) -> str:
        """Every figure that decided, then the verdict (what `retrain` prints and the log says)."""
        figures = "; ".join(c.describe(metric) for c in self.comparisons)
        verdict = "adopted" if self.adopted else "kept the model in force"
        return f"{figures}; {verdict}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class Bootstrap:
    """What retraining starts from: a model trained without user labels and the faces held out from it."""

    model: Model | None
    validation: FaceSet | None


def bootstrap(settings: Settings) -> Bootstrap:
    """The newest model trained without user labels (`facesortd train`), else the shipped one.

    Its validation set is the one `facesortd train` held out beside it; the shipped model has none
    (its training data cannot be shipped), so then only the user's own labels judge a retrain.
    """
    candidates = [*reversed(user_models(settings)), shipped_model()]
    for path in (p for p in candidates if p is not None):
        model = load_model(path)
        if model.info.get("user_labels"):
            continue
        held = validation_path(path)
        validation = FaceSet.load(held) if held.is_file() else None
        if validation is not None and validation.faces.shape[1] != model.spec.size:
            logger.warning("{}: faces of another size than the model's; not used for validation", held)
            validation = None
        return Bootstrap(model, validation)
    return Bootstrap(None, None)


def retrain(settings: Settings, labels: list[UserLabel], current: Model | None) -> RetrainResult:
    """Train bootstrap + user labels; adopt only if not worse than ``current`` on every held-out set.

    Held-out sets: the user's labels (grouped cross-validation, so a screenshot source never sits
    on both sides) and, when there is one, the bootstrap validation set.
    """
    learning = settings.learning
    start = bootstrap(settings)
    base = start.model
    known = set(base.labels) if base else set()
    counts = Counter(lbl.label for lbl in labels)
    minimum = learning.min_per_class
    waiting = {k: minimum - n for k, n in counts.items() if k not in known and n < minimum}
    usable = [lbl for lbl in labels if lbl.label not in waiting]
    used = dict(Counter(lbl.label for lbl in usable))
    groups = {lbl.group for lbl in usable}
    if len(groups) < 2 or (base is None and len(used) < 2):
        return RetrainResult(None, False, [], used, waiting, "not enough labels to hold some out yet")
    spec = base.spec if base else FaceSpec()
    faces = np.stack([kept_face(lbl.face, spec) for lbl in usable])
    # The model in force is judged on faces framed its own way (it may predate a change of framing).
    current_faces = (
        faces
        if current is None or current.spec == spec
        else np.stack([kept_face(lbl.face, current.spec) for lbl in usable])
    )
    names = [lbl.label for lbl in usable]
    weights = np.array([lbl.weight(learning) for lbl in usable])

    def fit(idx: np.ndarray) -> Model:
        if base is not None:
            return base.updated(faces[idx], [names[i] for i in idx], weights[idx])
        chosen = [names[i] for i in idx]
        return EmotionModel.fit(faces[idx], chosen, spec, DEFAULT_DESCRIPTOR, weights=weights[idx])

    folds = grouped_folds(names, [lbl.group for lbl in usable], min(5, len(groups)))
    all_names = sorted(set(names) | known | (set(current.labels) if current else set()))
    truth = np.array([all_names.index(n) for n in names])
    cand_logits = np.full((len(names), len(all_names)), -1e9)
    cur_proba = np.zeros((len(names), len(all_names)))
    for f in np.unique(folds):
        test, train = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
        if len({names[i] for i in train}) < 2 and base is None:
            continue
        model = fit(train)
        cand_logits[np.ix_(test, [all_names.index(n) for n in model.labels])] = model.logits(faces[test])
        if current is not None:
            cur_proba[np.ix_(test, [all_names.index(n) for n in current.labels])] = current.predict_proba(
                current_faces[test]
            )
    temperature = fit_temperature(cand_logits, truth)
    threshold = settings.recognition.threshold
    metric = learning.adopt_metric
    candidate_eval = Predictions(all_names, truth, softmax(cand_logits / temperature)).evaluation(threshold)
    comparisons = [
        Comparison(
            "your held-out labels",
            candidate_eval.score(metric),
            Predictions(all_names, truth, cur_proba).evaluation(threshold).score(metric) if current else None,
            learning.max_drop,
        )
    ]
    final = fit(np.arange(len(names)))
    final.temperature = temperature
    validation = start.validation
    if validation is not None and current is not None and current.spec != spec:
        logger.warning("the model in force frames faces differently; the bootstrap validation set is skipped")
        validation = None
    if validation is not None:
        boot_eval = predict_set(final, validation).evaluation(threshold)
        final.info["bootstrap_validation"] = boot_eval.summary()
        comparisons.append(
            Comparison(
                "the bootstrap validation set",
                boot_eval.score(metric),
                predict_set(current, validation).evaluation(threshold).score(metric) if current else None,
                learning.bootstrap_max_drop,
            )
        )
    adopted = all(c.passed for c in comparisons)
    result = RetrainResult(None, adopted, comparisons, used, waiting)
    final.info.update(
        {
            "user_labels": len(usable),
            "user_counts": used,
            "base": base.version if base else None,
            "held_out": candidate_eval.summary(),
            "validation": "grouped cross-validation on your labels",
            "compared_with": current.version if current else None,
            "decision": result.describe(metric),
            "adopted": adopted,
        }
    )
    # A rejected model is kept for inspection, outside the folder that model_in_force looks at.
    folder = models_dir(settings) if adopted else models_dir(settings) / "rejected"
    result.path = final.save(folder / (time.strftime("%Y%m%d-%H%M%S") + MODEL_SUFFIX))
    if adopted:
        adopt(settings, result.path)
    logger.info("retrained on {} labels: {}", len(usable), result.describe(metric))
    return result


LABELS_AT_RETRAIN = "labels_at_retrain"
"""Journal meta key: how many usable labels there were at the last retrain."""


def labels_until_retrain(learning: LearningSettings, journal: Journal, labels: int) -> int:
    """How many more labels make a retrain due by count (the review page shows it)."""
    fresh = labels - int(journal.get_meta(LABELS_AT_RETRAIN, "0"))
    return max(0, learning.retrain_after_labels - fresh)


def retrain_if_due(
    settings: Settings, journal: Journal, labels: list[UserLabel], force: bool = False
) -> RetrainResult | None:
    """Retrain when enough new labels arrived (or the interval passed with some); None if not due.

    The counts at the last retrain live in the journal, so a restart does not retrain again.
    """
    learning = settings.learning
    last_n = int(journal.get_meta(LABELS_AT_RETRAIN, "0"))
    last_at = float(journal.get_meta("retrain_at", "0"))
    fresh = len(labels) - last_n
    by_count = fresh >= learning.retrain_after_labels
    by_time = (
        learning.retrain_interval_h > 0
        and fresh > 0
        and time.time() - last_at >= learning.retrain_interval_h * 3600
    )
    if not (force or by_count or by_time):
        return None
    current_path = model_in_force(settings)
    current = load_model(current_path) if current_path else None
    result = retrain(settings, labels, current)
    if result.path is not None:
        journal.set_meta(LABELS_AT_RETRAIN, str(len(labels)))
        journal.set_meta("retrain_at", str(time.time()))
    return result
