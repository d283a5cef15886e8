"""Detection benchmark: any detector configuration against ../shared/data/seed/faces.json, side by
side with the two reference cascades.

Scores recall and precision (one-to-one matching at IoU >= boxes.SAME_FACE_IOU, and >=
detect_scoring.LOOSE_IOU) on the held-out characters (facesortd.cascade_train.split, never trained
on), the training characters and all, and CPU ms per image on one core (OpenCV and BLAS held to one
thread), on the screenshots as they are and upscaled to fit 1920x1080.
lbpcascade_animeface runs with its README settings (equalizeHist, 1.1, 5, 24x24) and its
whole-head boxes are shrunk around their centre to the face box convention (ANIMEFACE_SHRINK).

    python bench/bench_detect.py [--cascade FILE ...] [--verifier FILE | --no-verify] [--min-neighbors 1] ...
        [--gate shipped|off|FILE]   # as detection.gate takes it
        [--dump DIR]   # images of every miss / false alarm of our detector, boxes drawn
        [--resize 0.8 0.9 1.1 1.25]   # ours again on resized screenshots: does a figure hold?
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from daemon_harness import machine_load
from detect_scoring import ANIMEFACE_SHRINK, Detect, Score, gate_option, misses_and_false, references
from shared_data import SHARED, SHIPPED

from facesortd.boxes import Box
from facesortd.cascade_train.samples import read_gray
from facesortd.cascade_train.split import is_held_out
from facesortd.config import GATE_SHIPPED, DetectionSettings
from facesortd.detect import SHIPPED_CASCADE, SHIPPED_VERIFIER, FaceDetector
from facesortd.images import imwrite_file
from facesortd.learn.datasets import load_faces_json

UPSCALED = (1920, 1080)


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


def _dump(folder: Path, name: str, gray: np.ndarray, found: list[Box], truth: list[Box]) -> None:
    missed, false = misses_and_false(found, truth)
    if not missed and not false:
        return
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    for boxes, colour in ((truth, (0, 200, 0)), (found, (0, 0, 255))):
        for x, y, w, h in boxes:
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, 2)
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"miss{len(missed)}_fa{len(false)}"
    imwrite_file(folder / f"{tag}_{Path(name).stem}.jpg", img)


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
        "--gate",
        type=gate_option,
        default=d.gate,
        help=f"detection.gate: {GATE_SHIPPED}, off or a gate file (read as the config reads it); "
        "default: the configured one",
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
        f"min_score {args.min_score}, gate {args.gate or 'off'}"
    )
    detectors = {"ours": ours(args)}
    if not args.no_references:
        print(
            f"animeface: equalizeHist, 1.1, 5, 24x24, full size, boxes x{ANIMEFACE_SHRINK}; "
            "syncopika: 1.05, 3, 30x30, full size, boxes as they are"
        )
        detectors.update(references())
    for upscale in (False, True)[: 1 if args.no_upscaled else 2]:
        run(detectors, upscale, args.dump)
    if args.resize:
        resized(detectors["ours"], args.resize)
    return 0


if __name__ == "__main__":
    sys.exit(main())
