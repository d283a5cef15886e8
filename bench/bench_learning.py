"""Learning curve: how much a few of the user's own labels help.

Bootstrap data: ../shared/data/anime_expressions (mapped to the seed's labels). The user's domain:
the labelled faces of ../shared/data/seed/faces.json. For k = 0, 5, 10, 20 labels per class, seed
screenshots are drawn by character (never on both sides) until each class has up to k training
faces; the model is trained on bootstrap + those faces (weighted by --user-weight) and measured on
the seed faces of the other characters. Repeated --repeats times with different draws; prints mean
balanced accuracy and coverage/accuracy at the threshold, and the actual label counts (the seed
has few faces of most classes, so k is a ceiling, not a promise). A tenth of the bootstrap faces
is held out as `facesortd train` holds it out; the change of balanced accuracy on it ("boot.val
change") is what `learning.bootstrap_max_drop` limits when a retrain is adopted.

With ``--user vn_faces`` each vn_faces repository with enough faces is one user in turn (one
artist or studio whose art no model saw): the bootstrap model is fitted on everything else
(anime_expressions, the seed faces and the other repositories, folds by repository as in
``train``), the user's labels are drawn by character from that repository, and the figures are
measured on its other characters. This is the learning curve without flattery: the shipped
model saw the seed faces, so the seed's curve starts higher than a new user's can.

    python bench/bench_learning.py [--cascade FILE] [--user-weight 10] [--repeats 10]
                                   [--user seed|vn_faces] [--descriptor D] [--mirror]
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import dataclasses
import json
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from shared_data import (
    SHARED,
    add_cascade_option,
    add_mirror_option,
    bootstrap_faces,
    require_shared,
    seed_faces,
    vn_faces,
)

from facesortd.config import Settings
from facesortd.descriptors import DEFAULT_DESCRIPTOR, DESCRIPTORS, LEARNT
from facesortd.detect import FaceDetector
from facesortd.emotion import fit_temperature
from facesortd.ensemble import Model
from facesortd.faces import FaceSpec
from facesortd.images import imwrite_file
from facesortd.learn.backdrops import Backdrops
from facesortd.learn.datasets import VN_INDEX, vn_backgrounds
from facesortd.learn.feature_net_training import NetSettings
from facesortd.learn.metrics import Evaluation
from facesortd.learn.retrain import out_of_fold_logits
from facesortd.learn.training import (
    FaceSet,
    FitFn,
    cross_validate,
    described,
    emotion_fitter,
    grouped_folds,
    holdout_split,
    independent_units,
    predict_set,
)

MIN_USER_FACES = 30
"""A vn_faces repository is a user only with this many faces..."""
MIN_TEST_FACES = 10
"""...and with this many faces of other characters left to measure on at the largest k."""


def draw_user_labels(seed: FaceSet, k: int, repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) into ``seed``: whole characters (its groups), up to k faces per
    class for training."""
    groups = sorted(set(seed.groups), key=lambda g: zlib.crc32(f"{repeat}:{g}".encode()))
    taken: dict[str, int] = {}
    train_groups: set[str] = set()
    for g in groups:
        labels = [lbl for lbl, gg in zip(seed.labels, seed.groups, strict=True) if gg == g]
        if k and all(taken.get(lbl, 0) < k for lbl in labels):
            train_groups.add(g)
            for lbl in labels:
                taken[lbl] = taken.get(lbl, 0) + 1
    in_train = np.array([g in train_groups for g in seed.groups])
    return np.flatnonzero(in_train), np.flatnonzero(~in_train)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cascade_option(parser)
    parser.add_argument(
        "--descriptor",
        action="append",
        choices=list(DESCRIPTORS),
        help=f"what the model is built from; twice for an averaged ensemble (default {DEFAULT_DESCRIPTOR}; "
        "with --user vn_faces a cnn member gets a net trained per fold, which needs the train extra)",
    )
    parser.add_argument(
        "--user-weight", type=float, default=10.0, help="weight of a user label vs a bootstrap face"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--user",
        choices=["seed", "vn_faces"],
        default="seed",
        help="whose labels: the seed screenshots' characters (default), or each vn_faces repository in turn",
    )
    parser.add_argument(
        "--draw",
        choices=["character", "face"],
        default="character",
        help="with --user vn_faces: label whole characters and measure on the others (default), or "
        "label single faces and measure on the rest, characters shared (a user's screenshots of one cast)",
    )
    add_mirror_option(parser)
    parser.add_argument("--ks", default="0,5,10,20", help="labels per class to try (comma-separated)")
    parser.add_argument("--out", type=Path, default=Path("bench/out"), help="folder for the PNG plot")
    args = parser.parse_args()
    args.descriptor = args.descriptor or [DEFAULT_DESCRIPTOR]
    if not require_shared():
        return 1
    settings = Settings()
    detector = FaceDetector(settings.detection, args.cascade)
    spec = FaceSpec()
    if args.user == "vn_faces":
        return vn_users(args, detector, spec, settings.recognition.threshold)
    boot, held = holdout_split(bootstrap_faces(detector, spec), 0.1)
    assert held is not None
    seed = seed_faces(detector, spec)
    threshold = settings.recognition.threshold
    fit = emotion_fitter(spec, args.descriptor, pca=150, mirror=args.mirror)
    _, calibration = cross_validate(boot, fit, folds=3)  # once, on bootstrap held-out faces: kept for every k
    base = fit(boot)
    calibration.apply(base)
    print(f"cascade(s): {', '.join(map(str, detector.paths))}")
    print(f"bootstrap faces {len(boot.labels)} (+{len(held.labels)} held out), seed faces {seed.counts()}")
    base_val = predict_set(base, held).evaluation(threshold).balanced_accuracy
    print(f"user weight {args.user_weight}, threshold {threshold}, {args.repeats} draws per k\n")
    header = ("k", "user labels (mean)", "bal.acc", "coverage", "acc@thr", "test faces", "boot.val change")
    print("{:>3} {:>18} {:>8} {:>9} {:>8} {:>10} {:>16}".format(*header))
    curve: list[tuple[float, float, float]] = []
    for k in (int(v) for v in args.ks.split(",")):
        rows = []
        for r in range(args.repeats):
            train_idx, test_idx = draw_user_labels(seed, k, r)
            user = seed.subset(train_idx)
            model = base.updated(user.faces, user.labels, args.user_weight) if len(train_idx) else base
            ev = predict_set(model, seed.subset(test_idx)).evaluation(threshold)
            val = predict_set(model, held).evaluation(threshold).balanced_accuracy
            rows.append((*_draw_row(len(train_idx), ev, len(test_idx)), val - base_val))
        a = np.array(rows, dtype=np.float64)
        print(f"{_mean_row(k, a)} {a[:, 5].mean():>+8.3f} (min {a[:, 5].min():+.3f})")
        curve.append((a[:, 0].mean(), a[:, 1].mean(), a[:, 2].mean()))
    args.out.mkdir(parents=True, exist_ok=True)
    draw_curve(curve, args.out / "learning_curve.png")
    print(f"\nplot written to {args.out / 'learning_curve.png'}")
    return 0


def by_character(vn: FaceSet) -> FaceSet:
    """``vn`` grouped by repository and character (its groups are repositories): a character's
    poses share one drawing of the face, so they must stay on one side of a draw."""
    groups = json.loads((SHARED / "vn_faces" / VN_INDEX).read_text(encoding="utf-8"))["groups"]
    characters = [
        f"{g}:{groups[Path(f).parent.name]['character']}" for g, f in zip(vn.groups, vn.files, strict=True)
    ]
    return dataclasses.replace(vn, groups=characters)


def fold_models(pool: FaceSet, fit: FitFn, folds: int) -> Iterator[tuple[Model, np.ndarray]]:
    """(model fitted without the fold, the fold's face indices) per fold by independent unit, each
    model calibrated by the out-of-fold temperature (as ``train`` calibrates what it ships).

    The models are the cross-validation's own, kept as it fits them (each knows the units it was
    fitted on): fitting them again would double the work and, for a net, give other nets than the
    ones the temperature was fitted on.
    """
    fitted: list[tuple[set[str], Model]] = []

    def kept(part: FaceSet) -> Model:
        fitted.append((set(independent_units(part)), model := fit(part)))
        return model

    _, calibration = cross_validate(pool, kept, folds)
    units = independent_units(pool)
    fold_of = grouped_folds(pool.labels, units, folds)
    for f in range(folds):
        test = np.flatnonzero(fold_of == f)
        model = next(m for seen, m in fitted if units[test[0]] not in seen)
        calibration.apply(model)
        yield model, test


def taught_model(model: Model, labels: FaceSet, weight: float) -> Model:
    """``model`` after a retrain on a user's ``labels``, as ``learn/retrain.py`` makes it: updated with
    them, the temperature fitted on their out-of-fold predictions (folds by character). Labels of
    one character only: updated, the temperature kept (a retrain would wait for a second one)."""
    if not labels.labels:
        return model

    def fit(idx: np.ndarray) -> Model:
        return model.updated(labels.faces[idx], [labels.labels[i] for i in idx], weight)

    taught = fit(np.arange(len(labels.labels)))
    if len(set(labels.groups)) < 2:
        return taught
    names = sorted(set(labels.labels) | set(model.labels))
    logits = out_of_fold_logits(fit, labels.faces, labels.labels, labels.groups, names)
    taught.temperature = fit_temperature(logits, np.array([names.index(lbl) for lbl in labels.labels]))
    return taught


def vn_users(args: argparse.Namespace, detector: FaceDetector, spec: FaceSpec, threshold: float) -> int:
    """Each big enough vn_faces repository as a new user of a model that never saw its art."""
    vn = vn_faces(detector, spec)
    pool = FaceSet.concat([bootstrap_faces(detector, spec), seed_faces(detector, spec), vn])
    pool.features = described(pool.faces, [d for d in args.descriptor if d != LEARNT])
    start = len(pool.labels) - len(vn.labels)
    vn = (
        by_character(vn)
        if args.draw == "character"
        # By face: each file its own group, named within vn_faces (a full path would draw other
        # faces wherever the data lies, as datasets.load_items once split by it).
        else dataclasses.replace(vn, groups=[f"{Path(f).parent.name}/{Path(f).name}" for f in vn.files])
    )
    # The shipped net saw every vn_faces face: a cnn member's net is trained per fold instead.
    nets = (
        NetSettings(backdrops=Backdrops(vn_backgrounds(SHARED / "vn_faces")))
        if LEARNT in args.descriptor
        else None
    )
    fit = emotion_fitter(spec, args.descriptor, pca=150, net_settings=nets, mirror=args.mirror)
    ks = [int(v) for v in args.ks.split(",")]
    rows: dict[int, list[tuple[float, ...]]] = {k: [] for k in ks}
    users = []
    for model, fold in fold_models(pool, fit, folds=4):
        for repo in sorted({pool.groups[i] for i in fold if i >= start}):
            user = vn.subset(np.array([i - start for i in fold if i >= start and pool.groups[i] == repo]))
            draws = {k: [draw_user_labels(user, k, r) for r in range(args.repeats)] for k in ks}
            # The same users at every k, each with faces left to measure on at the largest k.
            if len(user.labels) < MIN_USER_FACES or min(len(t) for _, t in draws[max(ks)]) < MIN_TEST_FACES:
                continue
            users.append(f"{repo} ({len(user.labels)} faces, {len(set(user.groups))} characters)")
            for k in ks:
                for train_idx, test_idx in draws[k]:
                    taught = taught_model(model, user.subset(train_idx), args.user_weight)
                    ev = predict_set(taught, user.subset(test_idx)).evaluation(threshold)
                    rows[k].append(_draw_row(len(train_idx), ev, len(test_idx)))
    print(f"cascade(s): {', '.join(map(str, detector.paths))}; descriptor(s) {' + '.join(args.descriptor)}")
    print(f"users ({len(users)}): " + "; ".join(users))
    print(f"user weight {args.user_weight}, threshold {threshold}, {args.repeats} draws per user and k\n")
    header = ("k", "user labels (mean)", "bal.acc", "coverage", "acc@thr", "test faces", "draws")
    print("{:>3} {:>18} {:>8} {:>9} {:>8} {:>10} {:>6}".format(*header))
    for k in ks:
        a = np.array(rows[k], dtype=np.float64)
        print(f"{_mean_row(k, a)} {len(a):>6}")
    return 0


def _draw_row(user_labels: int, ev: Evaluation, test_faces: int) -> tuple[float, ...]:
    """One draw's columns of the table: user labels, balanced accuracy, coverage, accuracy at the
    threshold, test faces."""
    return (user_labels, ev.balanced_accuracy, ev.coverage, ev.accuracy_at_threshold, test_faces)


def _mean_row(k: int, draws: np.ndarray) -> str:
    """k and the mean of each :func:`_draw_row` column over its draws, as the table prints them."""
    mean = draws.mean(axis=0)
    right = np.nanmean(draws[:, 3])  # nan where a draw auto-sorts nothing: over the draws that do
    return f"{k:>3} {mean[0]:>18.1f} {mean[1]:>8.3f} {mean[2]:>9.3f} {right:>8.3f} {mean[4]:>10.1f}"


def draw_curve(points: list[tuple[float, float, float]], path: Path) -> None:
    """Balanced accuracy (blue) and auto-sorted share (green) against the number of user labels."""
    w, h, m = 520, 360, 50
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.rectangle(img, (m, 20), (w - 20, h - m), (0, 0, 0), 1)
    most = max(p[0] for p in points) or 1.0
    to_px = lambda x, y: (int(m + x / most * (w - 20 - m)), int(h - m - y * (h - m - 20)))  # noqa: E731
    for column, colour, name in (
        (1, (200, 0, 0), "balanced accuracy"),
        (2, (0, 150, 0), "auto-sorted share"),
    ):
        pts = np.array([to_px(p[0], p[column]) for p in points], np.int32)
        cv2.polylines(img, [pts], False, colour, 2)
        for pt in pts:
            cv2.circle(img, tuple(int(v) for v in pt), 4, colour, -1)
        cv2.putText(img, name, (m + 10, 40 + 18 * column), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
    cv2.putText(
        img, f"user labels (0..{most:.0f})", (m + 150, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
    )
    imwrite_file(path, img)


if __name__ == "__main__":
    sys.exit(main())
