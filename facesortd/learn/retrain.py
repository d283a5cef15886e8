"""Learning from review: the user's labels become a better model, never a worse one.

A label is a face crop kept in the state folder (learn/kept_faces.py) plus the emotion a person gave
it. Retraining starts from the bootstrap model (the model in force if no user labels went into it,
else the one it was retrained from) and adds every user label, weighted so the user's own domain
dominates. The new model is judged against the model in force only on user labels **neither** was
trained on: the candidate's out-of-fold predictions (grouped by screenshot source) on the labels the
model in force never saw. It is adopted only if it is not worse there nor on the validation set
`facesortd train` held out beside the bootstrap model, by ``learning.adopt_metric`` (within
``max_drop`` / ``bootstrap_max_drop``) and by the share it auto-sorts at the threshold (within
``max_coverage_drop``): a model that is right more often but dares to sort nothing would make review
worse, not better. On each set with labels, the faces it auto-sorts must also not be shown to be
right less often than ``min_sorted_right`` (by default what the threshold promises): a model sure of
much and often wrong fills the emotion folders with mistakes.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from loguru import logger

from facesortd.advice import advised
from facesortd.config import AdoptMetric, LearningSettings, LogLevel, Settings
from facesortd.descriptors import DEFAULT_DESCRIPTOR
from facesortd.detect import FaceDetector
from facesortd.durable import check_writable
from facesortd.emotion import EmotionModel, fit_temperature, softmax
from facesortd.ensemble import Model, load_model
from facesortd.faces import FaceSpec, normalise_face
from facesortd.images import UnreadableImage, read_image, to_gray
from facesortd.interrupts import whole
from facesortd.journal import Journal
from facesortd.learn.kept_faces import kept_face
from facesortd.learn.metrics import Evaluation
from facesortd.learn.training import FaceSet, Predictions, grouped_folds, predict_set
from facesortd.model_store import (
    DEFAULT,
    adopt,
    adopted,
    model_in_force,
    models_dir,
    name_of,
    rejected_dir,
    remove_killed_writes,
    resolve,
    save_new_model,
    unreadable,
    usable,
    validation_path,
)
from facesortd.models_folder import prune_logged
from facesortd.mounts import refuse_unmounted
from facesortd.progress import Progress
from facesortd.refusals import DISK_FULL, Refused, disk_full_fix

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
    given: float = 0.0
    """When the label was given (last changed): what makes it new since the last retrain."""

    def weight(self, learning: LearningSettings) -> float:
        """A person's labels dominate (user_weight, corrections more); imported ones weigh 1."""
        if self.source == "dataset":
            return 1.0
        return learning.user_weight * (learning.correction_weight if self.source == "correction" else 1.0)


def validation_groups(labels: Sequence[UserLabel]) -> list[str]:
    """What a retrain's cross-validation never splits, per label: the source its file's name names
    (``aletta12.png`` -> ``aletta``), so that near-identical shots of one character never sit on both
    sides of a fold.

    Names a screenshot tool gives (``mpv-shot0001.png``, ``Screenshot_20261201_101500.png``,
    ``image (3).png``) name no source, and put all of a person's labels into one group: a retrain
    could then hold none out and refused for ever ("not enough labels to hold some out yet", however
    many labels: README, "Reviewing"), or beside a few other names it would judge on the many what
    it learnt from the few. So a group that holds more than half of the labels is taken for such a
    name and its labels count one by one. Where those files are near-duplicates that flatters the
    figures a little; refusing every retrain was worse.
    """
    sizes = Counter(lbl.group for lbl in labels)
    crowded = {group for group, n in sizes.items() if n > len(labels) / 2}
    return [f"{lbl.group}/{lbl.face.stem}" if lbl.group in crowded else lbl.group for lbl in labels]


DOUBT_Z = 1.2816
"""One-sided 90 %: a new model fails the share-right check only when it is right less often than
asked with 90 % confidence, so bad luck on a handful of labels does not fail it."""


@dataclass(frozen=True)
class Comparison:
    """One held-out set on which the new model was measured against the model in force."""

    held_out: str
    new: Evaluation
    old: Evaluation | None
    metric: AdoptMetric
    max_drop: float
    max_coverage_drop: float
    min_right: float = 0.0
    """The faces the new model auto-sorts here must be right at least this often, unless too few to
    tell (:data:`DOUBT_Z`); 0: not checked. Balanced accuracy and the auto-sorted share both pass a
    model whose sure answers are often wrong."""

    @property
    def candidate(self) -> float:
        return self.new.score(self.metric)

    @property
    def current(self) -> float | None:
        return None if self.old is None else self.old.score(self.metric)

    @property
    def right_enough(self) -> bool:
        """Are the new model's auto-sorted faces not shown to be right less often than ``min_right``,
        counted plainly nor with a majority emotion capped
        (:meth:`~facesortd.learn.metrics.Evaluation.sorted_right_bounds`, as :attr:`ShareCheck.shown_right`)?
        Counted plainly alone, a model calling every face happy on 20 happy and 5 sad labels was
        right on 20 of 25 and passed."""
        return self.min_right <= 0 or self.new.sorted_right_bounds(DOUBT_Z)[1] >= self.min_right

    @property
    def passed(self) -> bool:
        if not self.right_enough:
            return False
        if self.old is None:
            return True
        scored = self.candidate >= self.old.score(self.metric) - self.max_drop
        return scored and self.new.coverage >= self.old.coverage - self.max_coverage_drop

    def describe(self) -> str:
        old = self.old
        score = "n/a" if old is None else f"{old.score(self.metric):.3f}"
        share = "n/a" if old is None else f"{old.coverage:.0%}"
        text = (
            f"{self.metric} on {self.held_out} ({self.new.confusion.sum()} faces): new {self.candidate:.3f}, "
            f"current {score}; auto-sorted at {self.new.threshold:.2f}: new {self.new.coverage:.0%}, "
            f"current {share}"
        )
        if self.min_right > 0:
            text += f"; right among them: new {_right(self.new)}, current {_right(old)}, " + (
                f"at least {self.min_right:.0%} asked" + ("" if self.right_enough else " (shown lower)")
            )
        return text


def sorted_right_floor(settings: Settings) -> float:
    """How often a new model's auto-sorted faces must be right (:attr:`Comparison.min_right`):
    ``learning.min_sorted_right``, or unset the threshold in force, since a face sorted at
    confidence 0.72 should be right about 72 % of the time."""
    chosen = settings.learning.min_sorted_right
    return settings.recognition.threshold if chosen is None else chosen


def _right(evaluation: Evaluation | None) -> str:
    """``7 of 10`` (right of auto-sorted), with the count that caps a majority emotion when one is
    over half of the faces (what the check reads too), or n/a."""
    if evaluation is None:
        return "n/a"
    n, right = evaluation.auto_sorted
    n_capped, right_capped = evaluation.sorted_right_capped()
    most = evaluation.majority()
    if most is None or n_capped == 0:  # all of one emotion count as none: the plain count judges
        return f"{right} of {n}"
    capped = f"{right_capped:.3g} of {n_capped:.3g} with {most} counted only as many as the others"
    return f"{right} of {n} ({capped})"


@dataclass(frozen=True)
class ShareCheck:
    """Both models' auto-sorted share at the threshold on faces nobody labelled (no truth needed).

    The user's labels are mostly files the model in force was unsure of, so on them both models
    sort little and a candidate that is sure of nothing passes; files facesortd placed lately
    show what each model would actually sort.

    A new model that would sort more of them (beyond ``max_drop``) must also have shown, on your
    labels (each predicted by a fold fitted without it), that its sure answers are right as often
    as ``min_right`` asks: with 90 % confidence (:data:`DOUBT_Z`), the other side of
    :attr:`Comparison.right_enough`, which needs evidence to refuse. A temperature fitted on two
    right answers made a model sure of nearly every face, and nothing could refuse it: it sorted
    79 % of the files where the model in force sorted none, on the strength of those two (README,
    "Retraining").

    Labels mostly of one emotion cannot show it: of 20 happy labels and 1 sad, a model calling every
    face happy was right on 20 of the 21 it sorted, and it passed. So an emotion that makes up more
    than half of the labels counts only as many labels as all the others together
    (:meth:`~facesortd.learn.metrics.Evaluation.sorted_right_capped`): such a model is then right on
    half of what counts, never enough, and labels all of one emotion count as none. One rule, here.
    """

    held_out: str
    n: int
    new: float
    old: float | None
    max_drop: float
    evidence: Evaluation
    """The new model on every label, out of fold: on all of them, not only those the model in force
    never saw, since only the new model's own answers are in question (the labels given since are
    mostly the hard cases, and alone they could keep every retrain out)."""
    min_right: float = 0.0
    """As :attr:`Comparison.min_right`; 0: sorting more needs no evidence."""

    @property
    def more(self) -> bool:
        """Would the new model sort more of these faces than the model in force (none: nothing)?"""
        return self.new > (self.old or 0.0) + self.max_drop

    @property
    def shown_right(self) -> bool:
        """Do the labels show the new model's sure answers right at least ``min_right`` of the time,
        no emotion counting for more than half of them?"""
        return self.min_right <= 0 or self.evidence.sorted_right_bounds(DOUBT_Z)[0] >= self.min_right

    @property
    def passed(self) -> bool:
        if self.n == 0:
            return True
        if self.more:
            return self.shown_right
        return self.old is None or self.new >= self.old - self.max_drop

    def describe(self) -> str:
        old = "n/a" if self.old is None else f"{self.old:.0%}"
        text = f"auto-sorted share of {self.held_out} ({self.n} faces): new {self.new:.0%}, current {old}"
        if not (self.n and self.more and not self.shown_right):
            return text
        name = self.evidence.majority()
        support = dict(zip(self.evidence.labels, self.evidence.support.tolist(), strict=True))
        many, labels = (0 if name is None else support[name]), sum(support.values())
        if name is not None and many == labels:
            return text + (
                f" (your labels are all {name}: a model calling every face so is right on each, so they "
                "cannot show it right when it sorts more; label files of another emotion too)"
            )
        n, right = self.evidence.auto_sorted
        n_capped, right_capped = self.evidence.sorted_right_capped()
        shown = f"{right} of {n} of your labels it would sort were right"
        # The capped count is what fell short only where it is the lower share: a model wrong on the
        # majority more than on the others is short by the plain count, and its majority is not why.
        capped_short = name is not None and right_capped * n < right * n_capped
        if capped_short:
            shown += (
                f", but {many} of your {labels} labels are {name} (a model calling every face so is right on "
                f"those too): with {name} counted only as many as the others ({labels - many}), "
                f"{right_capped:.3g} of {n_capped:.3g} were right"
            )
        return text + (
            f" ({shown}: too few to show it right {self.min_right:.0%} of the time, as sorting more asks;"
            " label more files" + (" of the other emotions" if capped_short else "") + ")"
        )


@dataclass
class RetrainResult:
    """What a retrain produced and whether it was adopted, with the figures that decided it."""

    path: Path | None
    adopted: bool
    comparisons: list[Comparison | ShareCheck] = field(default_factory=list)
    used: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    learnt_all: bool = False
    """No model trained, as the model in force learnt every usable label as it stands: a retrain
    killed between putting its model in force and recording what it learnt left them counted as
    new ("7 new label(s)" beside "nothing new to learn", until the next label), and they are now
    recorded as learnt."""

    def describe(self) -> str:
        """Every figure that decided, then the verdict (what `retrain` prints and the log says)."""
        figures = "; ".join(c.describe() for c in self.comparisons)
        verdict = "adopted" if self.adopted else "kept the model in force"
        return f"{figures}; {verdict}" + (f" ({self.reason})" if self.reason else "")


@dataclass(frozen=True)
class Bootstrap:
    """What retraining starts from: a model trained without user labels and the faces held out from it."""

    model: Model | None
    validation: FaceSet | None
    name: str | None = None
    """How the model store names it (recorded in retrained models as ``base_file``)."""


def _held_out_beside(path: Path, model: Model) -> FaceSet | None:
    held = validation_path(path)
    validation = FaceSet.load(held) if held.is_file() else None
    if validation is not None and validation.faces.shape[1] != model.spec.size:
        logger.warning("{}: faces of another size than the model's; not used for validation", held)
        validation = None
    return validation


def bootstrap(settings: Settings) -> Bootstrap:
    """The model in force if no user labels went into it, else the one it was retrained from.

    So a model `facesortd train` wrote becomes the base only once the user puts it in force, and
    a chain of retrains always goes back to the same base. Retrains from before ``base_file`` was
    recorded fall back to the newest label-free model ever put in force, then the shipped one.
    Its validation set is the one `facesortd train` held out beside it; the shipped model has none
    (its training data cannot be shipped), so then only the user's own labels judge a retrain.
    """
    path, seen = model_in_force(settings), set()
    while path is not None and path not in seen:
        seen.add(path)
        model = load_model(path)
        if not model.info.get("user_labels"):
            return Bootstrap(model, _held_out_beside(path, model), name_of(settings, path))
        base = model.info.get("base_file")
        path = resolve(settings, base) if isinstance(base, str) else None
        if path is not None and (why := unreadable(path)):  # damaged: it failed every retrain, exit 2
            logger.warning(
                "{}: the model in force was retrained from it, so retraining starts from the newest "
                "model put in force that can be read (or the shipped one) instead",
                why,
            )
            path = None
    for name in [*reversed(adopted(settings)), DEFAULT]:
        path = usable(settings, name)
        if path is not None and not (model := load_model(path)).info.get("user_labels"):
            return Bootstrap(model, _held_out_beside(path, model), name)
    return Bootstrap(None, None)


def _how_to_label() -> str:
    """How a person gives more labels, said by each retrain that could not learn yet."""
    return f"(`{advised('review')}`, or move files into <library>/<emotion>/)"


def judged_on(labels: Sequence[UserLabel]) -> str:
    """What a retrain judges both models on, in words that hold: the labels the model in force has
    not learnt, each predicted by a fold of the new model trained without it. It said "your labels
    neither model was trained on", of faces the new model is trained on (its figures are the folds')
    and of imported ones, which are no one's own labels and may be faces the model both come from
    learnt (the shipped model's own training data, imported)."""
    imported = sum(lbl.source == "dataset" for lbl in labels)
    scored = "each scored by a new model trained without it"
    if not imported:
        return f"your labels the model in force has not learnt, {scored}"
    whose = "imported labels" if imported == len(labels) else "your labels and imported ones"
    return (
        f"{whose} the model in force was not retrained on, {scored} (the imported ones may be faces "
        "the model both come from was trained on)"
    )


def _learnt_by(model: Model | None) -> dict[str, str | None]:
    """The kept faces (by file stem) that ``model`` was trained on, each with the label it learnt
    (None: a model from before 2026-12-02, which recorded the faces alone)."""
    if model is None or not model.info.get("user_labels"):
        return {}
    learnt = model.info.get("user_labels_learnt")
    if isinstance(learnt, dict):
        return {str(stem): str(label) for stem, label in learnt.items()}
    if "user_label_faces" not in model.info:
        logger.warning("the model in force does not record its labels; judging on all of yours")
        return {}
    return dict.fromkeys(map(str, model.info["user_label_faces"]))  # type: ignore[call-overload]


def _new_to(learnt: dict[str, str | None], label: UserLabel) -> bool:
    """Was ``label`` not learnt as it stands? A face relabelled since was learnt with the old label,
    which the model in force now holds against it: counted as seen, the person's correction of a
    label could never be retrained on ("nothing new to learn")."""
    stem = label.face.stem
    return stem not in learnt or learnt[stem] not in (None, label.label)


SHARE_FILES = 100
"""At most this many recently placed files measure the auto-sorted share (a retrain reads them)."""


def unlabelled_files(journal: Journal, limit: int = SHARE_FILES) -> list[Path]:
    """Files facesortd placed lately, in which it found a face, that nobody labelled: newest first."""
    out: list[Path] = []
    seen: set[str] = set()
    for move in journal.done_moves(limit=limit * 3):
        if len(out) >= limit:
            break
        if move.hash in seen or (move.action != "sorted" and move.reason not in ("unsure", "mixed")):
            continue
        seen.add(move.hash)
        if move.destination.is_file() and journal.label_for_hash(move.hash) is None:
            out.append(move.destination)
    return out


def _unlabelled_faces(
    settings: Settings, files: list[Path], specs: set[FaceSpec]
) -> dict[FaceSpec, np.ndarray]:
    """The largest face of each file where one is found, framed each way in ``specs``.

    Normalised as they are read, so a hundred screenshots never sit in memory at once. With progress:
    detecting faces again is the part of a retrain a person at the terminal waits for longest.
    """
    detector = FaceDetector(settings.detection)
    out: dict[FaceSpec, list[np.ndarray]] = {spec: [] for spec in specs}
    progress = Progress(len(files), "reading the files placed lately")
    for path in files:
        try:
            gray = to_gray(read_image(path, settings.images))
        except (OSError, UnreadableImage):
            gray = None
        if gray is not None and (faces := detector.detect(gray)):
            box = max(faces, key=lambda f: f.area).box
            for spec, framed in out.items():
                framed.append(normalise_face(gray, box, spec))
        progress.step()
    return {spec: np.stack(framed) for spec, framed in out.items() if framed}


def _bootstrap_floor(floor: float, current: Evaluation | None, max_drop: float) -> float:
    """The share right asked of a new model on the bootstrap validation set: never more than the
    model in force is right there (less ``max_drop``), so a bootstrap data set that no model sorts
    well at this threshold cannot forbid every retrain. Unlike the user's labels (the files the
    model in force got wrong), that set is a fair sample for both models."""
    if current is None or current.auto_sorted[0] == 0:
        return floor
    return max(0.0, min(floor, current.accuracy_at_threshold - max_drop))


def _sorted_share(model: Model, faces: dict[FaceSpec, np.ndarray], threshold: float) -> float:
    return float((model.predict_proba(faces[model.spec]).max(axis=1) >= threshold).mean())


def out_of_fold_logits(
    fit: Callable[[np.ndarray], Model | None],
    faces: np.ndarray,
    labels: list[str],
    groups: list[str],
    classes: list[str],
) -> np.ndarray:
    """Each label's logits over ``classes`` from a model fitted without its group (``fit`` takes the
    indices to fit on; at most five grouped folds): what a retrain fits its temperature on and is
    judged by, never its own training faces. A fold that ``fit`` declines (None) stays at -1e9."""
    folds = grouped_folds(labels, groups, min(5, len(set(groups))))
    logits = np.full((len(labels), len(classes)), -1e9)
    for f in np.unique(folds):
        test, train = np.flatnonzero(folds == f), np.flatnonzero(folds != f)
        model = fit(train)
        if model is not None:
            logits[np.ix_(test, [classes.index(n) for n in model.labels])] = model.logits(faces[test])
    return logits


def _readable_faces(labels: Sequence[UserLabel], spec: FaceSpec) -> dict[Path, np.ndarray]:
    """Each label's kept face framed by ``spec``, by crop. A crop that cannot be read (damaged on
    disk) is left out with what to do about it: it failed every retrain, with a traceback, and
    the daemon's again at each look."""
    faces = {}
    for lbl in labels:
        try:
            faces[lbl.face] = kept_face(lbl.face, spec)
        except OSError as exc:
            logger.warning(
                "{}: its label {!r} is left out of retraining; delete that file, then move the labelled "
                "file out of its emotion folder and back, and its face is kept anew",
                exc,
                lbl.label,
            )
    return faces


def retrain(
    settings: Settings,
    labels: list[UserLabel],
    current: Model | None,
    unlabelled: Sequence[Path] = (),
    log_level: LogLevel = "INFO",
) -> RetrainResult:
    """Train bootstrap + user labels; adopt only if not worse than ``current`` on every held-out set.

    Held-out sets: the user's labels that ``current`` was not trained on (the candidate is judged
    on them by grouped cross-validation, so a screenshot source never sits on both sides), the
    bootstrap validation set when there is one, and for the auto-sorted share alone the
    ``unlabelled`` files (placed lately, labelled by nobody). The decision is logged at
    ``log_level``: INFO puts it in the daemon's journal; a caller that prints it itself (the CLI)
    lowers it, so that a terminal does not show it twice.
    """
    learning = settings.learning
    start = bootstrap(settings)
    base = start.model
    spec = base.spec if base else FaceSpec()
    known = set(base.labels) if base else set()
    counts = Counter(lbl.label for lbl in labels)
    minimum = learning.min_per_class
    waiting = {k: minimum - n for k, n in counts.items() if k not in known and n < minimum}
    usable = [lbl for lbl in labels if lbl.label not in waiting]
    used = dict(Counter(lbl.label for lbl in usable))
    groups = validation_groups(usable)

    def held_back(reason: str, learnt_all: bool = False) -> RetrainResult:
        """No model trained: why, and how each label stands."""
        return RetrainResult(None, False, [], used, waiting, reason, learnt_all)

    if len(set(groups)) < 2 or (base is None and len(used) < 2):
        need = "two screenshots" + (" and two emotions" if base is None else "")
        return held_back(
            f"not enough labels to hold some out yet: it needs labels of at least {need}; label more "
            + _how_to_label()
        )
    learnt = _learnt_by(current)
    judged = np.array([i for i, lbl in enumerate(usable) if _new_to(learnt, lbl)], dtype=np.int64)
    if len(judged) == 0:
        return held_back(
            "nothing new to learn: the model in force was trained on every label there is; label more "
            + _how_to_label(),
            learnt_all=True,
        )
    validation = start.validation
    if validation is not None and current is not None and current.spec != spec:
        logger.warning("the model in force frames faces differently; the bootstrap validation set is skipped")
        validation = None
    if validation is None and len(alone := {usable[i].label for i in judged}) < 2:
        # Balanced accuracy on one emotion is its recall alone, which a model that calls every
        # face that emotion maximises: two labels of happy faces were adopted, sure of "happy" on
        # any face. A bootstrap validation set, where there is one, covers the other emotions.
        return held_back(
            f"nothing to judge a new model on yet: the labels the model in force has not learnt are all "
            f"{alone.pop()}, and on one emotion a model that calls every face so would pass; label files "
            "of another emotion too " + _how_to_label()
        )
    read = _readable_faces(usable, spec)
    if broken := {lbl.face for lbl in usable} - read.keys():  # judged again without them
        return retrain(
            settings, [lbl for lbl in labels if lbl.face not in broken], current, unlabelled, log_level
        )
    faces = np.stack([read[lbl.face] for lbl in usable])
    # The model in force is judged on faces framed its own way (it may predate a change of framing).
    current_faces = (
        faces[judged]
        if current is None or current.spec == spec
        else np.stack([kept_face(usable[i].face, current.spec) for i in judged])
    )
    names = [lbl.label for lbl in usable]
    weights = np.array([lbl.weight(learning) for lbl in usable])

    def fit(idx: np.ndarray) -> Model:
        if base is not None:
            return base.updated(faces[idx], [names[i] for i in idx], weights[idx])
        chosen = [names[i] for i in idx]
        return EmotionModel.fit(faces[idx], chosen, spec, DEFAULT_DESCRIPTOR, weights=weights[idx])

    all_names = sorted(set(names) | known | (set(current.labels) if current else set()))
    truth = np.array([all_names.index(n) for n in names])
    cand_logits = out_of_fold_logits(
        # Without a base model a fold needs two labels to fit from; its faces then stay unpredicted.
        lambda idx: fit(idx) if base is not None or len({names[i] for i in idx}) >= 2 else None,
        faces,
        names,
        groups,
        all_names,
    )
    temperature = fit_temperature(cand_logits, truth)
    threshold = settings.recognition.threshold
    metric = learning.adopt_metric
    cand_proba = softmax(cand_logits / temperature)
    candidate_eval = Predictions(all_names, truth, cand_proba).evaluation(threshold)
    current_eval = None
    if current is not None:
        cur_proba = np.zeros((len(judged), len(all_names)))
        cur_proba[:, [all_names.index(n) for n in current.labels]] = current.predict_proba(current_faces)
        current_eval = Predictions(all_names, truth[judged], cur_proba).evaluation(threshold)
    floor = sorted_right_floor(settings)
    comparisons: list[Comparison | ShareCheck] = [
        Comparison(
            judged_on([usable[i] for i in judged]),
            Predictions(all_names, truth[judged], cand_proba[judged]).evaluation(threshold),
            current_eval,
            metric,
            learning.max_drop,
            learning.max_coverage_drop,
            floor,
        )
    ]
    final = fit(np.arange(len(names)))
    final.temperature = temperature
    if validation is not None:
        boot_eval = predict_set(final, validation).evaluation(threshold)
        final.info["bootstrap_validation"] = boot_eval.summary()
        boot_current = predict_set(current, validation).evaluation(threshold) if current else None
        comparisons.append(
            Comparison(
                "the bootstrap validation set",
                boot_eval,
                boot_current,
                metric,
                learning.bootstrap_max_drop,
                learning.max_coverage_drop,
                _bootstrap_floor(floor, boot_current, learning.bootstrap_max_drop),
            )
        )
    else:  # the base's own figures came with its info: `facesortd model` showed them as this model's
        final.info.pop("bootstrap_validation", None)
    specs = {final.spec} | ({current.spec} if current else set())
    found = _unlabelled_faces(settings, list(unlabelled), specs) if unlabelled else {}
    if found:
        comparisons.append(
            ShareCheck(
                "files placed lately that nobody labelled",
                len(found[final.spec]),
                _sorted_share(final, found, threshold),
                _sorted_share(current, found, threshold) if current else None,
                learning.max_coverage_drop,
                candidate_eval,  # out of fold on every label: all honest for it
                floor,
            )
        )
    adopted_now = all(c.passed for c in comparisons)
    # Put in force under the config's pin, it is not used: "adopted" alone had the person wait for
    # a change that never came.
    pinned = settings.recognition.model if adopted_now else None
    unused = f"not used while recognition.model in the config pins {pinned}: unset it to use it"
    result = RetrainResult(None, adopted_now, comparisons, used, waiting, unused if pinned else "")
    final.info.update(
        {
            "user_labels": len(usable),
            "user_counts": used,
            "user_labels_learnt": {lbl.face.stem: lbl.label for lbl in usable},
            "base": base.version if base else None,
            "base_file": start.name,
            "held_out": candidate_eval.summary(),
            "validation": "grouped cross-validation on your labels",
            "compared_with": current.version if current else None,
            "decision": result.describe(),
            "adopted": adopted_now,
        }
    )
    # A rejected model is kept for inspection, outside the folder that model_in_force looks at.
    folder = models_dir(settings) if adopted_now else rejected_dir(settings)
    path = None
    try:
        with whole():  # cut between the two (`retrain`'s Ctrl-C), a model read as adopted was not in force
            path = save_new_model(settings, final.save, folder, locked=True)
            if adopted_now:
                adopt(settings, path)
    except OSError as exc:  # the disk filled while training (check_room asked before): no traceback
        if exc.errno not in DISK_FULL:
            raise
        if path is not None:  # not in force: left, it read as the last retrain, "adopted"
            path.unlink(missing_ok=True)
        raise Refused(exc, f"cannot write the new model into {folder}", disk_full_fix(folder)) from exc
    result.path = path
    prune_logged(settings)  # each retrain adds a model: the folder is kept bounded (models_folder.py)
    logger.log(log_level, "retrained on {} labels: {}", len(usable), result.describe())
    return result


LABELS_TRAINED_UNTIL = "labels_trained_until"
"""Journal meta key: when the newest label the last retrain learnt from was given; labels given
after it are new."""
LABELS_AT_RETRAIN = "labels_at_retrain"
"""Journal meta key of journals whose last retrain was before 2026-12-02: how many usable labels
there were then (what new labels were counted from, until the next retrain)."""
LABELS_WAITING_SINCE = "labels_waiting_since"
"""Journal meta key: when the first label after the last retrain came (0: none waits)."""
RETRAIN_HELD_BACK = "retrain_held_back"
"""Journal meta key: why the last retrain that fell due could not train ("": it could)."""


@dataclass(frozen=True)
class Schedule:
    """Where the retrain trigger stands: labels new since the last retrain, and since when they wait."""

    fresh: int
    waiting_since: float
    """0: no label is waiting (the clock has not started)."""

    def due_at(self, learning: LearningSettings) -> float | None:
        """When the interval makes a retrain due; None while no label waits or time never triggers."""
        if self.fresh <= 0 or not self.waiting_since or learning.retrain_interval_h <= 0:
            return None
        return self.waiting_since + learning.retrain_interval_h * 3600


def schedule(journal: Journal, labels: Sequence[UserLabel]) -> Schedule:
    """The trigger's state, kept in the journal so that a restart neither retrains nor resets the clock.

    New labels are those given after the last retrain's newest: counted as a difference of totals,
    a label moved on to another emotion was none, and five taken back beside five given were zero.
    """
    until = journal.get_meta(LABELS_TRAINED_UNTIL)
    if until or not journal.get_meta(LABELS_AT_RETRAIN):
        fresh = sum(lbl.given > float(until or 0) for lbl in labels)
    else:
        fresh = len(labels) - int(journal.get_meta(LABELS_AT_RETRAIN))
    return Schedule(fresh, float(journal.get_meta(LABELS_WAITING_SINCE, "0") or 0))


def retrained_before(journal: Journal) -> bool:
    """Has a retrain made a model from labels yet (the mark :func:`schedule` counts new labels from)?"""
    return bool(journal.get_meta(LABELS_TRAINED_UNTIL) or journal.get_meta(LABELS_AT_RETRAIN))


def labels_until_retrain(learning: LearningSettings, journal: Journal, labels: Sequence[UserLabel]) -> int:
    """How many more labels make a retrain due by count (the review page shows it)."""
    return max(0, learning.retrain_after_labels - schedule(journal, labels).fresh)


ROOM_FACTOR = 2
"""A retrain needs this many times the model in force's size free where it writes the new model
(one with a new emotion is a little bigger)."""


def check_room(folder: Path, in_force: Path | None) -> None:
    """Refused, with the fix, unless ``folder`` has room for a model like ``in_force``: asked before
    training, since a full disk refused the model only once it was trained, and the daemon trained
    it again at every look (every ``review_scan_s``), with a traceback each time."""
    needed = ROOM_FACTOR * in_force.stat().st_size if in_force is not None else 0
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise Refused(
            OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
            f"no room for a new model in {folder}",
            f"it needs about {needed / 1e6:.0f} MB, {free / 1e6:.0f} MB are free: "
            "free some space on that disk",
        )


def retrain_if_due(
    settings: Settings,
    journal: Journal,
    labels: list[UserLabel],
    force: bool = False,
    log_level: LogLevel = "INFO",
) -> RetrainResult | None:
    """Retrain once ``retrain_after_labels`` new labels arrived, or once the first of fewer new
    labels has waited ``retrain_interval_h``; None if not due. ``log_level``: as :func:`retrain`.

    The clock starts with the first waiting label, never at 0: else a fresh install would count
    the very first label as "a day passed" and learn from a handful. Due with the library's drive
    away: :class:`~facesortd.mounts.DriveNotMounted`, and it stays due. The caller holds the retrain
    lock (``state.retrain_lock``), as every retrain does.
    """
    learning = settings.learning
    now = time.time()
    state = schedule(journal, labels)
    if state.fresh > 0 and not state.waiting_since:
        state = Schedule(state.fresh, now)
        journal.set_meta(LABELS_WAITING_SINCE, str(now))
    by_count = state.fresh >= learning.retrain_after_labels
    due_at = state.due_at(learning)
    if not (force or by_count or (due_at is not None and now >= due_at)):
        return None
    # A library whose drive is away shows none of the files placed lately, which judge the
    # auto-sorted share: a model sorting fewer would pass. Refused until the drive is back.
    refuse_unmounted(settings.library)
    check_writable(models_dir(settings))  # before training a model that could not be kept
    for tmp in remove_killed_writes(settings):  # before the room for a new model is asked
        logger.info("removed {}, a model a killed retrain or `model use` was writing", tmp)
    current_path = model_in_force(settings)
    check_room(models_dir(settings), current_path)
    current = load_model(current_path) if current_path else None
    result = retrain(settings, labels, current, unlabelled_files(journal), log_level)
    if result.path is not None or result.learnt_all:
        journal.set_meta(LABELS_TRAINED_UNTIL, str(max(lbl.given for lbl in labels)))
        journal.set_meta(LABELS_WAITING_SINCE, "0")
    # Due but unable to train (too few screenshots, say), it stays due: `status` says why, rather
    # than "due now" at every look while nothing happens.
    journal.set_meta(RETRAIN_HELD_BACK, "" if result.path is not None else result.reason)
    return result
