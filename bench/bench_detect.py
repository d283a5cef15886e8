"""Detection benchmark: any detector configuration against ../shared/data/seed/faces.json, side by
side with the two reference cascades.

Scores recall and precision (one-to-one matching, IoU >= 0.4, and >= 0.25) on the held-out
characters (facesortd.cascade_train.split, never trained on), the training characters and all,
and CPU ms per image on one core (OpenCV and BLAS held to one thread), on the screenshots as they
are and upscaled to fit 1920x1080.
lbpcascade_animeface runs with its README settings (equalizeHist, 1.1, 5, 24x24) and its
whole-head boxes are shrunk 0.62x around their centre to the face box convention.

    python bench/bench_detect.py [--cascade FILE ...] [--verifier FILE | --no-verify] [--min-neighbors 1] ...
        [--dump DIR]   # images of every miss / false alarm of our detector, boxes drawn
        [--resize 0.8 0.9 1.1 1.25]   # ours again on resized screenshots: does a figure hold?
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np
from daemon_harness import machine_load
from shared_data import match_boxes

from facesortd.boxes import Box
from facesortd.cascade_train.samples import read_gray
from facesortd.cascade_train.split import is_held_out
from facesortd.config import DetectionSettings
from facesortd.detect import SHIPPED_CASCADE, SHIPPED_VERIFIER, FaceDetector, iou
from facesortd.learn.datasets import load_faces_json

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SHIPPED = REPO / "cascade_classifier"
REFERENCES = SHARED / "reference_cascades"
ANIMEFACE_SHRINK = 0.62
UPSCALED = (1920, 1080)

Detect = Callable[[np.ndarray], list[Box]]


@dataclass
class Score:
    """Counts over a set of screenshots, and the time spent detecting in them."""

    truth: int = 0
    found: int = 0
    hits: int = 0
    hits_loose: int = 0
    ms: float = 0.0
    images: int = 0
    free_images: int = 0
    free_found: int = 0
    """Face-free images, and the false faces reported on them."""

    def add(self, found: list[Box], truth: list[Box], ms: float) -> None:
        if not truth:
            self.free_images += 1
            self.free_found += len(found)
        self.truth += len(truth)
        self.found += len(found)
        self.hits += match_boxes(found, truth, 0.4)
        self.hits_loose += match_boxes(found, truth, 0.25)
        self.ms += ms
        self.images += 1

    def merge(self, other: Score) -> None:
        """Add another set's counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def row(self, timed: bool = True) -> str:
        rec, prec = self.hits / max(1, self.truth), self.hits / max(1, self.found)
        rec_l, prec_l = self.hits_loose / max(1, self.truth), self.hits_loose / max(1, self.found)
        row = (
            f"{rec:6.3f} {prec:6.3f} {self.hits:3d}/{self.truth:<3d} {self.found - self.hits:3d} FA  "
            f"{rec_l:6.3f} {prec_l:6.3f}"
        )
        if self.free_images:
            row += f"  {self.free_found / self.free_images:5.3f} ({self.free_found}/{self.free_images})"
        return row + (f"  {self.ms / max(1, self.images):7.1f} ms" if timed else "")


def shrink(box: Box, factor: float) -> Box:
    x, y, w, h = box
    nw, nh = w * factor, h * factor
    return (round(x + (w - nw) / 2), round(y + (h - nh) / 2), round(nw), round(nh))


def ours(args: argparse.Namespace) -> Detect:
    """Our configuration, exactly as `facesortd` runs it: FaceDetector with these settings."""
    settings = DetectionSettings(
        scale_factor=args.scale_factor,
        min_neighbors=args.min_neighbors,
        min_size=args.min_size,
        min_size_share=args.min_size_share,
        max_side=args.max_side,
        equalize=not args.no_equalize,
        nms_iou=args.nms_iou,
        min_score=args.min_score,
        lone_window_score=args.lone_window_score,
        close_ups=not args.no_close_ups,
        verify=not args.no_verify,
        verifier=args.verifier or SHIPPED / SHIPPED_VERIFIER,
        gate=args.gate,
    )
    detector = FaceDetector(settings, args.cascade)
    return lambda gray: [f.box for f in detector.detect(gray)]


def reference(
    name: str, equalize: bool, scale: float, neighbors: int, min_size: int, factor: float
) -> Detect:
    """A reference cascade at full resolution with its authors' settings, boxes shrunk by ``factor``."""
    cascade = cv2.CascadeClassifier(str(REFERENCES / name))

    def detect(gray: np.ndarray) -> list[Box]:
        img = cv2.equalizeHist(gray) if equalize else gray
        rects = cascade.detectMultiScale(
            img, scaleFactor=scale, minNeighbors=neighbors, minSize=(min_size,) * 2
        )
        return [shrink(tuple(int(v) for v in r), factor) for r in rects]  # type: ignore[arg-type]

    return detect


def _dump(folder: Path, name: str, gray: np.ndarray, found: list[Box], truth: list[Box]) -> None:
    missed = [t for t in truth if all(iou(t, f) < 0.4 for f in found)]
    false = [f for f in found if all(iou(t, f) < 0.4 for t in truth)]
    if not missed and not false:
        return
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    for boxes, colour in ((truth, (0, 200, 0)), (found, (0, 0, 255))):
        for x, y, w, h in boxes:
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, 2)
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"miss{len(missed)}_fa{len(false)}"
    cv2.imwrite(str(folder / f"{tag}_{Path(name).stem}.jpg"), img)


def run(detectors: dict[str, Detect], upscale: bool, dump: Path | None) -> None:
    truth_all = load_faces_json(SHARED / "seed" / "faces.json")
    images = {name: read_gray(SHARED / "seed" / "screenshots" / name) for name in sorted(truth_all)}
    title = f"upscaled to fit {UPSCALED[0]}x{UPSCALED[1]}" if upscale else "screenshots as they are"
    print(f"\n== {title} ==")
    print(
        f"{'detector':<12} {'split':<9} {'recall':>6} {'prec':>6} {'hits':>7} {'':>6}  "
        f"{'r@.25':>6} {'p@.25':>6}  {'time':>10}"
    )
    for label, detect in detectors.items():
        scores = {"held-out": Score(), "train": Score(), "all": Score()}
        for name, gray in images.items():
            truth = [f.box for f in truth_all[name]]
            if upscale:
                # One factor for both axes (fit inside 1920x1080): faces keep their shape.
                f = min(UPSCALED[0] / gray.shape[1], UPSCALED[1] / gray.shape[0])
                gray = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
                truth = [(round(x * f), round(y * f), round(w * f), round(h * f)) for x, y, w, h in truth]
            t0 = time.process_time()  # CPU time of this one thread: steadier than wall time when shared
            found = detect(gray)
            ms = (time.process_time() - t0) * 1000
            side = "held-out" if is_held_out(name) else "train"
            scores[side].add(found, truth, ms)
            scores["all"].add(found, truth, ms)
            if dump is not None and label == "ours":
                _dump(dump / side, name, gray, found, truth)
        for side, score in scores.items():
            print(f"{label:<12} {side:<9} {score.row()}")


def resized(detect: Detect, factors: list[float]) -> None:
    """Our detector on the screenshots resized by each factor: where the search grid falls on a face
    decides some detections, so a figure that holds only at one size is luck."""
    truth_all = load_faces_json(SHARED / "seed" / "faces.json")
    images = {name: read_gray(SHARED / "seed" / "screenshots" / name) for name in sorted(truth_all)}
    print("\n== ours on the screenshots resized ==")
    print(
        f"{'factor':<8} {'split':<9} {'recall':>6} {'prec':>6} {'hits':>7} {'':>6}  {'r@.25':>6} {'p@.25':>6}"
    )
    for factor in factors:
        scores = {"held-out": Score(), "train": Score()}
        for name, gray in images.items():
            interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
            small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=interp)
            truth = [tuple(round(v * factor) for v in f.box) for f in truth_all[name]]
            scores["held-out" if is_held_out(name) else "train"].add(detect(small), truth, 0.0)  # type: ignore[arg-type]
        for side, score in scores.items():
            print(f"x{factor:<7} {side:<9} {score.row(timed=False)}")


def main() -> int:
    d = DetectionSettings()  # defaults: the configuration facesortd ships with
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--cascade",
        type=Path,
        action="append",
        help="our cascade(s); default: this checkout's cascade_classifier/",
    )
    parser.add_argument(
        "--verifier", type=Path, help="verifier file; default: this checkout's cascade_classifier/"
    )
    parser.add_argument("--no-verify", action="store_true", help="cascade only, no verifier")
    parser.add_argument(
        "--gate", type=Path, default=d.gate, help="gate file (detection.gate); default: the configured one"
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=d.min_score,
        help="boxes scoring less are dropped (verifier probability)",
    )
    parser.add_argument("--scale-factor", type=float, default=d.scale_factor)
    parser.add_argument("--min-neighbors", type=int, default=d.min_neighbors)
    parser.add_argument(
        "--lone-window-score", type=float, default=d.lone_window_score, help="1 turns lone windows off"
    )
    parser.add_argument(
        "--min-size", type=int, default=d.min_size, help="smallest face side, original pixels"
    )
    parser.add_argument(
        "--min-size-share",
        type=float,
        default=d.min_size_share,
        help="smallest face side as a share of the shorter image side",
    )
    parser.add_argument("--no-close-ups", action="store_true", help="full-size pass only")
    parser.add_argument(
        "--max-side", type=int, default=d.max_side, help="images shrunk to this longest side first"
    )
    parser.add_argument("--no-equalize", action="store_true", default=not d.equalize)
    parser.add_argument("--nms-iou", type=float, default=d.nms_iou)
    parser.add_argument("--no-references", action="store_true", help="only our configuration")
    parser.add_argument("--no-upscaled", action="store_true", help="skip the 1920x1080 pass")
    parser.add_argument("--dump", type=Path, help="folder for images of our misses / false alarms")
    parser.add_argument(
        "--resize",
        type=float,
        nargs="+",
        metavar="FACTOR",
        help="also score ours on the screenshots resized by these factors (e.g. 0.8 0.9 1.1 1.25)",
    )
    args = parser.parse_args()
    args.cascade = args.cascade or [SHIPPED / SHIPPED_CASCADE]
    if not (SHARED / "seed" / "faces.json").is_file():
        print(f"skipped: {SHARED} is not present (bench_detect needs ../shared/data)", file=sys.stderr)
        return 0
    cv2.setNumThreads(1)
    print(machine_load())
    print(
        f"ours: cascades {[str(c) for c in args.cascade]}, "
        f"scaleFactor {args.scale_factor}, minNeighbors {args.min_neighbors}, minSize {args.min_size} "
        f"or {args.min_size_share} of the shorter side, close-ups {not args.no_close_ups}, "
        f"max_side {args.max_side}, equalize {not args.no_equalize}, nms_iou {args.nms_iou}, "
        f"verifier {'none' if args.no_verify else args.verifier or SHIPPED / SHIPPED_VERIFIER}, "
        f"min_score {args.min_score}"
    )
    detectors = {"ours": ours(args)}
    if not args.no_references:
        print(
            "animeface: equalizeHist, 1.1, 5, 24x24, full size, boxes x0.62; "
            "syncopika: 1.05, 3, 30x30, full size, boxes as they are"
        )
        detectors["animeface"] = reference("lbpcascade_animeface.xml", True, 1.1, 5, 24, ANIMEFACE_SHRINK)
        detectors["syncopika"] = reference(
            "syncopika_anime_face_classifier_cascade.xml", False, 1.05, 3, 30, 1.0
        )
    for upscale in (False, True)[: 1 if args.no_upscaled else 2]:
        run(detectors, upscale, args.dump)
    if args.resize:
        resized(detectors["ours"], args.resize)
    return 0


if __name__ == "__main__":
    sys.exit(main())
