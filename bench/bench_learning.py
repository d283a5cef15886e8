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

    python bench/bench_learning.py [--cascade FILE] [--user-weight 10] [--repeats 10]
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
from shared_data import add_cascade_option, bootstrap_faces, require_shared, seed_faces

from facesortd.config import Settings
from facesortd.descriptors import DEFAULT_DESCRIPTOR, DESCRIPTORS
from facesortd.detect import FaceDetector
from facesortd.faces import FaceSpec
from facesortd.learn.training import FaceSet, cross_validate, emotion_fitter, holdout_split, predict_set


def draw_user_labels(seed: FaceSet, k: int, repeat: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) into ``seed``: whole characters, up to k faces per class for training."""
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
    parser.add_argument("--descriptor", choices=list(DESCRIPTORS), default=DEFAULT_DESCRIPTOR)
    parser.add_argument(
        "--user-weight", type=float, default=10.0, help="weight of a user label vs a bootstrap face"
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--ks", default="0,5,10,20", help="labels per class to try (comma-separated)")
    parser.add_argument("--out", type=Path, default=Path("bench/out"), help="folder for the PNG plot")
    args = parser.parse_args()
    if not require_shared():
        return 1
    settings = Settings()
    detector = FaceDetector(settings.detection, args.cascade)
    spec = FaceSpec()
    boot, held = holdout_split(bootstrap_faces(detector, spec), 0.1)
    assert held is not None
    seed = seed_faces(detector, spec)
    threshold = settings.recognition.threshold
    fit = emotion_fitter(spec, [args.descriptor], pca=150)
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
            rows.append(
                (
                    len(train_idx),
                    ev.balanced_accuracy,
                    ev.coverage,
                    ev.accuracy_at_threshold,
                    len(test_idx),
                    val - base_val,
                )
            )
        a = np.array(rows, dtype=np.float64)
        print(
            f"{k:>3} {a[:, 0].mean():>18.1f} {a[:, 1].mean():>8.3f} {a[:, 2].mean():>9.3f} "
            f"{np.nanmean(a[:, 3]):>8.3f} {a[:, 4].mean():>10.1f} "
            f"{a[:, 5].mean():>+8.3f} (min {a[:, 5].min():+.3f})"
        )
        curve.append((a[:, 0].mean(), a[:, 1].mean(), a[:, 2].mean()))
    args.out.mkdir(parents=True, exist_ok=True)
    draw_curve(curve, args.out / "learning_curve.png")
    print(f"\nplot written to {args.out / 'learning_curve.png'}")
    return 0


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
    cv2.imwrite(str(path), img)


if __name__ == "__main__":
    sys.exit(main())
