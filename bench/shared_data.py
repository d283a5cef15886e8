"""What the benchmarks share: where ../shared and the shipped detector are, the label mapping, the
faces they measure on, and how found boxes are scored against true ones.

Run a benchmark as ``python bench/NAME.py`` from the repository root; this module sits beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facesortd.boxes import Box
from facesortd.detect import FaceDetector, iou
from facesortd.faces import FaceSpec
from facesortd.learn.backdrops import Backdrops
from facesortd.learn.datasets import load_items, load_vn_faces, relabel, vn_backgrounds
from facesortd.learn.training import FaceSet, Undetected, collect_faces

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SHIPPED = REPO / "cascade_classifier"
"""This checkout's detector files (cascade and verifier), the benchmarks' default."""
LABEL_MAP = {"fear": "scared", "surprise": "surprised", "disgust": ""}
"""anime_expressions labels -> the seed's (disgust has no seed counterpart and is dropped)."""


def require_shared() -> bool:
    """True if ../shared is there; otherwise say so (a user's machine has no ../shared)."""
    if SHARED.is_dir():
        return True
    print(f"{SHARED} not found: this benchmark needs ../shared", file=sys.stderr)
    return False


def add_mirror_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="fit the hand-made descriptors' models on every face and its mirror image, and update them "
        "with labels mirrored alike, as `train --mirror` does (the net sees mirrored faces anyway)",
    )


def add_cascade_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cascade", type=Path, action="append", help="cascade file(s); default: the configured one"
    )


def bootstrap_faces(
    detector: FaceDetector, spec: FaceSpec, undetected: Undetected = "drop", limit: int | None = None
) -> FaceSet:
    """anime_expressions crops, labels mapped, re-framed through the detector as at run time."""
    items = relabel(load_items(SHARED / "anime_expressions"), LABEL_MAP)
    if limit:
        items = items[:: max(1, len(items) // limit)]
    return collect_faces(items, detector, spec, "anime_expressions", "crops", undetected)


def seed_faces(detector: FaceDetector, spec: FaceSpec) -> FaceSet:
    """The labelled faces of the seed screenshots (faces.json emotions): the user's domain."""
    return collect_faces(load_items(SHARED / "seed" / "faces.json"), detector, spec, "seed")


def vn_faces(detector: FaceDetector, spec: FaceSpec) -> FaceSet:
    """vn_faces crops of the eight emotions over their games' backgrounds, grouped by repository."""
    root = SHARED / "vn_faces"
    items = load_vn_faces(root)
    return collect_faces(items, detector, spec, "vn_faces", backdrops=Backdrops(vn_backgrounds(root)))


def match_boxes(found: list[Box], truth: list[Box], min_iou: float) -> int:
    """True positives of a one-to-one matching (greedy by IoU) of found boxes to true boxes.

    Recall = tp / len(truth), precision = tp / len(found). One-to-one: two boxes on one face
    count one hit and one false alarm, as a user would see them.
    """
    pairs = sorted(
        ((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True
    )
    used_f: set[int] = set()
    used_t: set[int] = set()
    for score, i, j in pairs:
        if score < min_iou:
            break
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
    return len(used_f)
