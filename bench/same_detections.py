"""Does a change to detection's speed leave its results alone? Records what the checkout on
PYTHONPATH proposes, keeps and decides for a set of images, and compares two such records.

Speed work on the detector must not move a face: the boxes of every pass (grouped, close-up and
cut-face proposals, the raw windows lone windows are taken from, the faces kept) must be the same
to the pixel, every score the same within --tolerance (float rounding of another summation order
in the verifier's net, never enough to cross a threshold), and every decision the same. The images:
the 75 seed screenshots as they are and upscaled to fit 1920x1080, a draw of composed scenes per
vn_faces fold (bench_detect_scenes.py's, smaller) as they are and upscaled, and the smooth-noise
1080p PNGs of bench_sort_process.py (the cascade's worst case: about a thousand raw windows each).
Decisions are the shipped emotion model's, with the config's defaults.

    PYTHONPATH=/path/to/base python bench/same_detections.py record base.json [--scenes 20]
    PYTHONPATH=. python bench/same_detections.py record new.json [--scenes 20]
    python bench/same_detections.py compare base.json new.json
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from daemon_harness import screenshot_1080p
from scene_sets import SEED, fold_images
from shared_data import SHARED

from facesortd.cascade_train.scenes import FOLDS, Sources
from facesortd.config import DetectionSettings, ImageLimits, RecognitionSettings
from facesortd.decide import Pipeline, choose
from facesortd.detect import Face, FaceDetector
from facesortd.ensemble import load_model
from facesortd.images import read_image
from facesortd.model_store import shipped_model

UPSCALED = (1920, 1080)
NOISE_PNGS = 6


def _images(scenes: int, scene_seed: int) -> Iterator[tuple[str, np.ndarray]]:
    """(name, image) of every image compared, each also upscaled to fit 1920x1080."""
    found: list[tuple[str, np.ndarray]] = []
    for path in sorted((SHARED / "seed" / "screenshots").iterdir()):
        found.append((f"seed/{path.name}", read_image(path, ImageLimits())))
    sources = Sources.load(SHARED / "vn_faces")
    for k, repos in enumerate(sources.folds(FOLDS)):
        drawn = fold_images(sources, k, repos, scenes, 2, scene_seed)
        found += [(f"scene/{name}", gray) for name, gray, _ in drawn]
    for name, image in found:
        yield name, image
        f = min(UPSCALED[0] / image.shape[1], UPSCALED[1] / image.shape[0])
        yield f"{name}@1080p", cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    for i in range(NOISE_PNGS):
        yield f"noise/{i}", cv2.imdecode(np.frombuffer(screenshot_1080p(rng), np.uint8), cv2.IMREAD_COLOR)


def _faces(faces: list[Face]) -> list[list[Any]]:
    return [[list(f.box), f.score] for f in faces]


def record(out: Path, scenes: int, scene_seed: int) -> None:
    cv2.setNumThreads(1)
    model_file = shipped_model()
    model = load_model(model_file) if model_file else None
    recognition = RecognitionSettings()
    pipeline = Pipeline(FaceDetector(DetectionSettings()), model, recognition, ImageLimits())
    results: dict[str, Any] = {}
    for name, image in _images(scenes, scene_seed):
        faces, found = pipeline.analyse(image)
        decision = choose(faces, recognition.threshold, recognition.multi_face)
        results[name] = {
            "full": _faces(found.full),
            "close": _faces(found.close),
            "windows": _faces(found.windows),
            "faces": [[list(f.box), f.score, f.emotion, f.confidence] for f in faces],
            "decision": [decision.action, decision.emotion, decision.reason, decision.confidence],
        }
    out.write_text(json.dumps(results))
    print(f"{len(results)} images recorded in {out}")


def _differences(a: Any, b: Any, tolerance: float, where: str) -> Iterator[tuple[str, float]]:
    """(where, by how much) of every value of ``b`` not as in ``a``: numbers other than whole ones
    (scores, confidences) may differ by ``tolerance``, anything else must be equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            yield from _differences(a[key], b.get(key), tolerance, f"{where} {key}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: {len(a)} against {len(b)} entries", float("inf")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _differences(x, y, tolerance, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        if abs(a - b) > tolerance:
            yield f"{where}: {a} against {b}", abs(a - b)
    elif a != b:
        yield f"{where}: {a!r} against {b!r}", float("inf")


def compare(before: Path, after: Path, tolerance: float) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    if sorted(a) != sorted(b):
        print("the two records are of other images")
        return 1
    largest = max(
        (
            abs(x - y)
            for name in a
            for key in ("full", "close", "windows", "faces")
            for fa, fb in zip(a[name][key], b[name][key], strict=False)
            for x, y in zip(fa, fb, strict=False)
            if isinstance(x, float) and isinstance(y, float)
        ),
        default=0.0,
    )
    wrong = [d for name in sorted(a) for d in _differences(a[name], b[name], tolerance, name)]
    for where, _by in wrong[:40]:
        print(where)
    counts = {key: sum(len(r[key]) for r in a.values()) for key in ("full", "close", "windows", "faces")}
    print(
        f"{len(a)} images, boxes compared: {counts}; largest score difference {largest:.2g}; "
        f"{len(wrong)} differences beyond {tolerance:g}"
    )
    return 1 if wrong else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record the checkout on PYTHONPATH")
    rec.add_argument("out", type=Path)
    rec.add_argument("--scenes", type=int, default=20, help="scenes per vn_faces fold")
    rec.add_argument("--scene-seed", type=int, default=SEED)
    cmp = sub.add_parser("compare", help="compare two records: exit 1 on any difference")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    cmp.add_argument("--tolerance", type=float, default=1e-5, help="for scores and confidences")
    args = parser.parse_args()
    if args.command == "compare":
        return compare(args.before, args.after, args.tolerance)
    if not (SHARED / "vn_faces").is_dir():
        print(f"skipped: {SHARED} is not present (this bench needs ../shared/data)", file=sys.stderr)
        return 0
    record(args.out, args.scenes, args.scene_seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
