"""Where each face the detector misses is lost: the stage of detection that dropped it, per source,
per face size and for faces cut by the frame, on bench_detect_scenes.py's scenes and seed screenshots.

For every true face that no reported box matches (IoU >= 0.4), the stages are checked in order:
- none: no raw cascade window (minNeighbors 0, both passes) reaches IoU 0.25 with it;
- misframed: the best raw window reaches only 0.25-0.4; it is too big or too small (sides differ
  by more than 20 %), else shifted (the direction it is off in);
- grouping: a raw window reaches 0.4, but none of the grouped proposals (the configured minNeighbors) do
  and the lone windows did not bring it back; the detail says whether the window was alone or its
  group's mean box was off, and whether the verifier gives the best such window lone_window_score
  (if so, it was not among the strongest lone windows, or lay near a box already reported);
- verifier: a proposal reaches 0.4, but the verifier scores every such proposal below min_score;
- suppressed: a proposal at 0.4 passed the verifier but another box won the merging (NMS, or the
  close-up box lost to a full-size box).
Fold k's scenes are judged with fold k's verifier (--fold-verifiers), as in bench_detect_scenes.py.

    python bench/bench_detect_misses.py --fold-verifiers DIR [--verifier FILE] [--upscaled]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from detect_scoring import LOOSE_IOU
from scene_sets import Image, add_common_arguments, fold_images, seed_images, upscaled
from shared_data import SHARED, SHIPPED

from facesortd.boxes import SAME_FACE_IOU, Box
from facesortd.cascade_train.scenes import FOLDS, Sources
from facesortd.config import DetectionSettings
from facesortd.detect import SHIPPED_VERIFIER, Face, FaceDetector, clipped, iou
from facesortd.learn.datasets import is_vn_faces

SIZE_BANDS = (0.15, 0.25, 0.4)
"""Face side as a share of the image's height: the bands' upper bounds (the last band is open)."""
STAGES = ("none", "misframed", "grouping", "verifier", "suppressed")
SIZE_OFF = 1.2


def size_band(box: Box, shape: tuple[int, ...]) -> str:
    share = max(box[2], box[3]) / shape[0]
    low = 0.0
    for high in SIZE_BANDS:
        if share < high:
            return f"{low:.2f}-{high:.2f}"
        low = high
    return f">={low:.2f}"


def is_cut(box: Box, shape: tuple[int, ...]) -> bool:
    x, y, w, h = box
    return x <= 0 or y <= 0 or x + w >= shape[1] or y + h >= shape[0]


def misframing(window: Box, truth: Box) -> str:
    """How a window near a face is off: too big, too small, or shifted (in which direction)."""
    ratio = np.sqrt(window[2] * window[3] / max(1, truth[2] * truth[3]))
    if ratio > SIZE_OFF:
        return "too big"
    if ratio < 1 / SIZE_OFF:
        return "too small"
    dx = (window[0] + window[2] / 2 - truth[0] - truth[2] / 2) / truth[2]
    dy = (window[1] + window[3] / 2 - truth[1] - truth[3] / 2) / truth[3]
    return "shifted " + ("down" if dy > 0 else "up") if abs(dy) >= abs(dx) else "shifted sideways"


def grouping(window: Box, raw: Sequence[Box]) -> str:
    """Why OpenCV's grouping (cv2.groupRectangles, eps 0.2) lost a good window: it had no similar
    window to group with (a group needs minNeighbors + 1 members), or its group's mean box is off."""
    x, y, w, h = window
    delta = 0.2 * (w + h) / 2
    similar = sum(
        abs(b[0] - x) <= delta and abs(b[1] - y) <= delta and abs(b[0] + b[2] - x - w) <= delta
        and abs(b[1] + b[3] - y - h) <= delta
        for b in raw
    )  # fmt: skip
    return "alone" if similar <= 1 else "group's mean box off"


def best(truth: Box, boxes: Sequence[Box]) -> tuple[float, Box | None]:
    scored = [(iou(truth, b), b) for b in boxes]
    return max(scored, default=(0.0, None), key=lambda s: s[0])


class Stages:
    """The detector's stages for one verifier: raw windows, grouped proposals (scored), the result."""

    def __init__(self, verifier: Path, settings: DetectionSettings) -> None:
        raw = settings.model_copy(update={"min_neighbors": 0, "verifier": verifier})
        self.raw = FaceDetector(raw, None)  # every raw window, scored by the verifier
        self.grouped = FaceDetector(settings.model_copy(update={"verifier": verifier}), None)

    def why(self, gray: np.ndarray, truth: list[Box]) -> list[tuple[Box, str, str]]:
        """(face, stage, detail) for every missed face of one image."""
        shape = gray.shape
        found = [f.box for f in self.grouped.detect(gray)]
        ungrouped = self.raw.candidates(gray)
        scored_raw = [Face(clipped(f.box, shape), f.score) for f in ungrouped.full + ungrouped.close]
        raw = [f.box for f in scored_raw]
        grouped = self.grouped.candidates(gray)
        proposals = [Face(clipped(f.box, shape), f.score) for f in grouped.full + grouped.close]
        min_score = self.grouped.settings.min_score
        out = []
        for t in truth:
            if best(t, found)[0] >= SAME_FACE_IOU:
                continue
            near, window = best(t, raw)
            at_hit = [p for p in proposals if iou(t, p.box) >= SAME_FACE_IOU]
            if near < LOOSE_IOU or window is None:
                out.append((t, "none", f"best raw IoU {near:.2f}"))
            elif near < SAME_FACE_IOU:
                out.append((t, "misframed", misframing(window, t)))
            elif not at_hit:
                p = max(f.score for f in scored_raw if iou(t, f.box) >= SAME_FACE_IOU)
                sure = ">=" if p >= self.grouped.settings.lone_window_score else "<"
                out.append((t, "grouping", f"{grouping(window, raw)}, p {sure} lone_window_score"))
            elif max(p.score for p in at_hit) < min_score:
                out.append((t, "verifier", f"best p {max(p.score for p in at_hit):.2f}"))
            else:
                out.append((t, "suppressed", ""))
        return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_arguments(parser)
    parser.add_argument("--upscaled", action="store_true", help="the images upscaled to fit 1920x1080")
    parser.add_argument("--list", action="store_true", help="print every missed face")
    args = parser.parse_args()
    if not is_vn_faces(SHARED / "vn_faces"):
        print(f"skipped: {SHARED} is not present (this bench needs ../shared/data)", file=sys.stderr)
        return 0
    sources = Sources.load(SHARED / "vn_faces")
    sets: dict[str, list[Image]] = {
        f"fold{k}": fold_images(sources, k, repos, args.scenes, args.face_free, args.scene_seed)
        for k, repos in enumerate(sources.folds(FOLDS))
    }
    sets["seed"] = seed_images()
    settings = DetectionSettings(
        min_neighbors=args.min_neighbors, min_score=args.min_score, lone_window_score=args.lone_window_score
    )
    shipped = args.verifier or SHIPPED / SHIPPED_VERIFIER
    stages: Counter[tuple[str, str]] = Counter()
    details: Counter[tuple[str, str]] = Counter()
    faces: Counter[tuple[str, str]] = Counter()
    for source, images in sets.items():
        verifier = (
            args.fold_verifiers / f"{source}.npz" if args.fold_verifiers and source != "seed" else shipped
        )
        judge = Stages(verifier, settings)
        for name, gray, truth in (upscaled(i) for i in images) if args.upscaled else images:
            for t in truth:
                for key in (source, size_band(t, gray.shape), "cut" if is_cut(t, gray.shape) else "whole"):
                    faces[key, "faces"] += 1
            for t, stage, detail in judge.why(gray, truth):
                keys = [source, size_band(t, gray.shape), "cut" if is_cut(t, gray.shape) else "whole"]
                if source != "seed":
                    keys.append("scenes")
                for key in keys:
                    stages[key, stage] += 1
                    stages[key, "missed"] += 1
                if source != "seed":
                    details[stage, detail if stage in ("misframed", "grouping") else ""] += 1
                if args.list:
                    print(f"{source} {name} {t} {stage} {detail}")
        if source != "seed":
            for key in list(faces):
                if key[0] == source:
                    faces["scenes", "faces"] += faces[key]
    rows = [*sets, "scenes", *sorted({k for k, _ in faces if "-" in k or ">=" in k}), "whole", "cut"]
    print(f"{'':<11} {'faces':>5} {'missed':>6} " + " ".join(f"{s:>10}" for s in STAGES))
    for row in rows:
        print(
            f"{row:<11} {faces[row, 'faces']:>5} {stages[row, 'missed']:>6} "
            + " ".join(f"{stages[row, s]:>10}" for s in STAGES)
        )
    print("(size bands and whole/cut: scenes and seed together)")
    for stage in ("misframed", "grouping"):
        counts = ", ".join(f"{d}: {n}" for (s, d), n in sorted(details.items()) if s == stage)
        print(f"{stage} on the scenes: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
