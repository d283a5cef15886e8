"""Benchmark of the one-shot pipeline on ../shared's real screenshots.

Prints: images/s and ms per image for `sort --dry-run` over the seed screenshots (as they are and
stretched to 1920x1080 as bench_sort_process.py's `--images seed` writes them), split into decode /
detect / recognise; detection recall and precision against faces.json (IoU >= 0.4, one-to-one);
training time for 10k faces.

    python bench/bench_sort.py [--cascade FILE ...] [--model FILE] [--skip-train]
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from daemon_harness import png_1080p
from shared_data import SHARED, add_cascade_option, match_boxes, require_shared

from facesortd.boxes import SAME_FACE_IOU
from facesortd.config import Settings
from facesortd.decide import Pipeline
from facesortd.descriptors import DESCRIPTORS
from facesortd.detect import FaceDetector
from facesortd.emotion import EmotionModel
from facesortd.ensemble import load_model
from facesortd.faces import FaceSpec, normalise_face
from facesortd.images import imread_file
from facesortd.learn.datasets import labelled_images, load_faces_json
from facesortd.model_store import load_model_in_force


def _percentiles(values: list[float]) -> str:
    a = np.array(values)
    return f"mean {a.mean():6.1f}  p50 {np.percentile(a, 50):6.1f}  p95 {np.percentile(a, 95):6.1f}"


def run_sort(pipeline: Pipeline, files: list[Path], title: str) -> None:
    stages: dict[str, list[float]] = {"decode": [], "detect": [], "recognise": []}
    total: list[float] = []
    for path in files:
        t0 = time.perf_counter()
        decision = pipeline.decide(path)
        total.append((time.perf_counter() - t0) * 1000)
        for k in stages:
            stages[k].append(decision.timings_ms.get(k, 0.0))
    print(f"\n{title}: {len(files)} images, {1000 * len(files) / sum(total):.1f} images/s")
    print(f"  total ms     {_percentiles(total)}")
    for k, v in stages.items():
        print(f"  {k:<12} {_percentiles(v)}")


def upscaled(files: list[Path], out: Path) -> list[Path]:
    """Each screenshot at 1920x1080 into ``out``, made and saved as bench_sort_process.py's `--images
    seed` (``daemon_harness.png_1080p``): a resize and PNG level of its own here timed the decoding
    of other files than that bench's for the same screenshots."""
    result = []
    for p in files:
        target = out / p.name
        target.write_bytes(png_1080p(imread_file(p)))
        result.append(target)
    return result


def detection_quality(detector: FaceDetector, shots: Path, truth_file: Path) -> None:
    truth = load_faces_json(truth_file)
    tp = n_found = n_true = 0
    for name, faces in truth.items():
        gray = imread_file(shots / name, cv2.IMREAD_GRAYSCALE)
        found = [f.box for f in detector.detect(gray)]
        tp += match_boxes(found, [f.box for f in faces], SAME_FACE_IOU)
        n_found += len(found)
        n_true += len(faces)
    print(f"\ndetection vs faces.json (IoU >= {SAME_FACE_IOU}, one-to-one, all {len(truth)} screenshots):")
    print(
        f"  recall {tp / n_true:.3f} ({tp}/{n_true})  precision {tp / max(1, n_found):.3f} ({tp}/{n_found})"
    )


def training_time(n: int) -> None:
    by_label = labelled_images(SHARED / "anime_expressions")
    files = [(lbl, p) for lbl, ps in by_label.items() for p in ps][:n]
    spec = FaceSpec()
    t0 = time.perf_counter()
    faces = []
    for _, p in files:
        gray = imread_file(p, cv2.IMREAD_GRAYSCALE)
        faces.append(normalise_face(gray, (0, 0, gray.shape[1], gray.shape[0]), spec))
    x = np.stack(faces)
    labels = [lbl for lbl, _ in files]
    t1 = time.perf_counter()
    for descriptor in DESCRIPTORS:
        t2 = time.perf_counter()
        EmotionModel.fit(x, labels, spec, descriptor)
        print(f"  fit {descriptor:<8} on {len(files)} faces: {time.perf_counter() - t2:5.1f} s")
    print(f"  (reading + normalising them: {t1 - t0:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cascade_option(parser)
    parser.add_argument("--model", type=Path, help="emotion model; default: the model in force")
    parser.add_argument("--skip-train", action="store_true", help="skip the 10k-face training timing")
    args = parser.parse_args()
    if not require_shared():
        return 1
    settings = Settings()
    detector = FaceDetector(settings.detection, args.cascade)
    model = load_model(args.model) if args.model else load_model_in_force(settings)
    pipeline = Pipeline(detector, model, settings.recognition, settings.images)
    print(f"cascade(s): {', '.join(map(str, detector.paths))}")
    print(f"model: {args.model or 'in force'} ({'none' if model is None else model.descriptor})")
    shots = sorted((SHARED / "seed" / "screenshots").glob("*.png"))
    run_sort(pipeline, shots, "seed screenshots as they are")
    with tempfile.TemporaryDirectory() as tmp:
        run_sort(pipeline, upscaled(shots, Path(tmp)), "seed screenshots stretched to 1920x1080")
    detection_quality(detector, SHARED / "seed" / "screenshots", SHARED / "seed" / "faces.json")
    if not args.skip_train:
        print("\ntraining time:")
        training_time(10_000)
    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
