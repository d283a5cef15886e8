"""What the detection-across-sources benchmarks share: the image sets they score (scenes composed
per vn_faces fold, the seed's held-out screenshots, either upscaled) and the options they take.

Run a benchmark as ``python bench/NAME.py`` from the repository root; this module sits beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from shared_data import SHARED

from facesortd.boxes import Box
from facesortd.cascade_train.samples import read_gray
from facesortd.cascade_train.scenes import SceneMaker, Sources
from facesortd.cascade_train.split import is_held_out
from facesortd.config import DetectionSettings
from facesortd.learn.datasets import load_faces_json

SEED = 1000
"""Scenes of the benchmark are drawn from their own seed, never the training scenes'."""

Image = tuple[str, np.ndarray, list[Box]]


def fold_images(
    sources: Sources, k: int, repos: list[str], scenes: int, face_free: int, seed: int = SEED
) -> list[Image]:
    maker = SceneMaker(sources, repos, seed + k)
    made = maker.scenes(scenes, f"fold{k}-") + [
        maker.scene(f"fold{k}-free{i}", True) for i in range(face_free)
    ]
    return [(s.name, cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY), s.boxes) for s in made]


def seed_images() -> list[Image]:
    truth = load_faces_json(SHARED / "seed" / "faces.json")
    return [
        (name, read_gray(SHARED / "seed" / "screenshots" / name), [f.box for f in faces])
        for name, faces in sorted(truth.items())
        if is_held_out(name)
    ]


def upscaled(image: Image) -> Image:
    name, gray, truth = image
    f = min(1920 / gray.shape[1], 1080 / gray.shape[0])
    big = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return name, big, [tuple(round(v * f) for v in b) for b in truth]  # type: ignore[misc]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The verifiers, detection settings and scenes, as bench_detect_scenes.py and bench_detect_misses.py
    take them."""
    d = DetectionSettings()
    parser.add_argument(
        "--fold-verifiers", type=Path, help="folder of fold<k>.npz verifiers (each without fold k)"
    )
    parser.add_argument(
        "--verifier", type=Path, help="verifier for the seed (and the scenes without --fold-verifiers)"
    )
    parser.add_argument("--min-score", type=float, default=d.min_score)
    parser.add_argument("--min-neighbors", type=int, default=d.min_neighbors)
    parser.add_argument(
        "--lone-window-score", type=float, default=d.lone_window_score, help="1 turns lone windows off"
    )
    parser.add_argument("--scenes", type=int, default=100, help="scenes per fold (12 %% of them face-free)")
    parser.add_argument("--face-free", type=int, default=30, help="extra face-free scenes per fold")
    parser.add_argument(
        "--scene-seed", type=int, default=SEED, help="another value draws other scenes of the same sources"
    )
