"""Detection across sources: scenes composed only from vn_faces repositories the verifier never
saw, plus the held-out seed screenshots, side by side with the two reference cascades.

The vn_faces repositories are split into folds (scenes.Sources.folds, the same split
cascade_train.cnn_verifier trains by). Fold k's scenes use only fold k's crops and backgrounds
(and made backgrounds) and are scored with the verifier trained without fold k (--fold-verifiers
DIR holds fold<k>.npz) and the cascade trained without fold k (--fold-cascades DIR holds fold<k>.xml;
without it the shipped cascade). The reference cascades never saw any vn_faces art. The seed's
held-out characters (cascade_train.split) are scored with --cascade and --verifier. With --no-verify
the last column, boxes per image, is what the cascade proposes: the verifier's work. Without
--fold-verifiers the scenes are judged by --verifier (default: the shipped one), which for the
shipped CNN verifier means in-source figures: it was trained on every repository's scenes. Each scene is
1280x720; the second pass upscales it to 1920x1080. False faces per face-free image is counted on
the scenes with no character.

    python bench/bench_detect_scenes.py [--fold-verifiers DIR] [--verifier FILE | --no-verify]
        [--fold-cascades DIR] [--cascade FILE]
        [--scenes 100] [--face-free 30] [--dump DIR]   # contact sheets of misses / false faces per source
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from detect_scoring import Detect, Score, gate_option, misses_and_false, references
from scene_sets import Image, add_common_arguments, fold_images, seed_images, upscaled
from shared_data import SHARED, SHIPPED

from facesortd.boxes import Box
from facesortd.cascade_train.scenes import FOLDS, Sources
from facesortd.config import GATE_SHIPPED, DetectionSettings
from facesortd.detect import SHIPPED_CASCADE, SHIPPED_VERIFIER, FaceDetector
from facesortd.images import imwrite_file
from facesortd.learn.datasets import is_vn_faces

THUMB = 96
SHEET_COLUMNS = 12


class Sheet:
    """Thumbnails of misses (true box green) and false faces (red), with context, for one source."""

    def __init__(self) -> None:
        self.misses: list[np.ndarray] = []
        self.false: list[np.ndarray] = []

    def add(self, gray: np.ndarray, found: list[Box], truth: list[Box]) -> None:
        missed, false = misses_and_false(found, truth)
        self.misses += [_thumb(gray, t, (0, 200, 0)) for t in missed]
        self.false += [_thumb(gray, f, (0, 0, 255)) for f in false]

    def write(self, folder: Path, source: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for kind, thumbs in (("misses", self.misses), ("false_faces", self.false)):
            if thumbs:
                imwrite_file(folder / f"{source}_{kind}.png", _tile(thumbs))


def _thumb(gray: np.ndarray, box: Box, colour: tuple[int, int, int]) -> np.ndarray:
    x, y, w, h = box
    m = max(w, h) // 2
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    cv2.rectangle(img, (x, y), (x + w, y + h), colour, max(1, w // 30))
    img = cv2.copyMakeBorder(img, m, m, m, m, cv2.BORDER_CONSTANT)
    region = img[y : y + h + 2 * m, x : x + w + 2 * m]
    return cv2.resize(region, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def _tile(thumbs: list[np.ndarray]) -> np.ndarray:
    rows = -(-len(thumbs) // SHEET_COLUMNS)
    sheet = np.zeros((rows * THUMB, SHEET_COLUMNS * THUMB, 3), np.uint8)
    for i, t in enumerate(thumbs):
        r, c = divmod(i, SHEET_COLUMNS)
        sheet[r * THUMB : (r + 1) * THUMB, c * THUMB : (c + 1) * THUMB] = t
    return sheet


def score(detect: Detect, images: list[Image], sheet: Sheet | None = None) -> Score:
    result = Score()
    for _name, gray, truth in images:
        t0 = time.perf_counter()
        found = detect(gray)
        result.add(found, truth, (time.perf_counter() - t0) * 1000)
        if sheet is not None:
            sheet.add(gray, found, truth)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--fold-cascades", type=Path, help="folder of fold<k>.xml cascades (each trained without fold k)"
    )
    parser.add_argument(
        "--cascade", type=Path, help="cascade for the seed (and the scenes without --fold-cascades)"
    )
    parser.add_argument("--no-verify", action="store_true", help="cascade only")
    parser.add_argument(
        "--gate",
        type=gate_option,
        help=f"detection.gate for the seed (and the scenes without --fold-gates): {GATE_SHIPPED}, off or a "
        "gate file (read as the config reads it)",
    )
    parser.add_argument("--fold-gates", type=Path, help="folder of fold<k>.npz gates (each without fold k)")
    parser.add_argument("--no-references", action="store_true", help="only our configuration")
    parser.add_argument("--no-upscaled", action="store_true", help="skip the 1920x1080 pass")
    parser.add_argument("--dump", type=Path, help="folder for contact sheets of our misses and false faces")
    args = parser.parse_args()
    if not is_vn_faces(SHARED / "vn_faces"):
        print(f"skipped: {SHARED} is not present (this bench needs ../shared/data)", file=sys.stderr)
        return 0
    cv2.setNumThreads(1)
    sources = Sources.load(SHARED / "vn_faces")
    folds = sources.folds(FOLDS)
    sets = {
        f"fold{k}": fold_images(sources, k, repos, args.scenes, args.face_free, args.scene_seed)
        for k, repos in enumerate(folds)
    }
    sets["seed"] = seed_images()

    def ours_for(source: str) -> Detect:
        verifier = args.verifier or SHIPPED / SHIPPED_VERIFIER
        cascade = args.cascade or SHIPPED / SHIPPED_CASCADE
        if args.fold_verifiers and source.startswith("fold"):
            verifier = args.fold_verifiers / f"{source}.npz"
        if args.fold_cascades and source.startswith("fold"):
            cascade = args.fold_cascades / f"{source}.xml"
        gate = (
            args.fold_gates / f"{source}.npz" if args.fold_gates and source.startswith("fold") else args.gate
        )
        settings = DetectionSettings(
            min_neighbors=args.min_neighbors,
            min_score=args.min_score,
            lone_window_score=args.lone_window_score,
            verify=not args.no_verify,
            verifier=verifier,
            gate=gate,
        )
        detector = FaceDetector(settings, [cascade])
        return lambda gray: [f.box for f in detector.detect(gray)]

    print(
        f"ours: cascade {args.fold_cascades or args.cascade or 'shipped'} "
        f"(seed: {args.cascade or 'shipped'}), "
        f"config defaults, min_neighbors {args.min_neighbors}, "
        f"min_score {args.min_score}, lone_window_score {args.lone_window_score}, "
        f"verifier {'none' if args.no_verify else (args.fold_verifiers or args.verifier or 'shipped')}"
        f" (seed: {args.verifier or 'shipped'}), gate {args.fold_gates or args.gate or 'off'}"
        f" (seed: {args.gate or 'off'})"
    )
    for k, repos in enumerate(folds):
        faces = sum(len(b) for _n, _g, b in sets[f"fold{k}"])
        print(f"fold{k}: {len(sets[f'fold{k}'])} scenes, {faces} faces, repositories {', '.join(repos)}")
    others = {} if args.no_references else references()
    for upscale in (False, True)[: 1 if args.no_upscaled else 2]:
        print(f"\n== {'upscaled to fit 1920x1080' if upscale else 'as they are (scenes 1280x720)'} ==")
        print(
            f"{'detector':<10} {'source':<7} {'recall':>6} {'prec':>6} {'hits':>9} {'':>6}  "
            f"{'r@.25':>6} {'p@.25':>6}  {'FA/free image':>13}  {'time':>10}  boxes/image"
        )
        for label in ["ours", *others]:
            scenes_total = Score()
            for source, images in sets.items():
                images = [upscaled(i) for i in images] if upscale else images
                detect = ours_for(source) if label == "ours" else others[label]
                sheet = Sheet() if args.dump and label == "ours" and not upscale else None
                result = score(detect, images, sheet)
                print(f"{label:<10} {source:<7} {result.row()}  {result.found / result.images:5.1f}")
                if sheet is not None:
                    sheet.write(args.dump, source)
                if source != "seed":
                    scenes_total.merge(result)
            per_image = scenes_total.found / scenes_total.images
            print(f"{label:<10} {'scenes':<7} {scenes_total.row()}  {per_image:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
