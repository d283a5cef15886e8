"""Does a screenshot saved again go to the same folder? Stability of decisions under a JPEG resave.

The same picture saved twice (a PNG, then a JPEG of it) differs by a few grey levels here and
there; the cascade's windows and groups move with single levels, and the emotion with the box
(README, "Decoding straight to grey"). For each seed screenshot this compares the PNG with JPEG
copies at the given qualities, through the whole decision as `sort` makes it (decode, detection,
emotion, threshold): how many got other boxes, another number of faces, another emotion for the
deciding face, and another folder. The shipped model's guesses are nearly even, so its emotions
flip while its folders (all unsure) hold; give ``--model`` a model your labels made sure of to see
what a user would meet.

    python bench/bench_resave.py [--qualities 95 90] [--model FILE]
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
from shared_data import SHARED, require_shared

from facesortd.config import load_settings
from facesortd.decide import Decision, Pipeline
from facesortd.ensemble import load_model
from facesortd.images import imread_file, imwrite_file
from facesortd.model_store import load_model_in_force


def _emotion(d: Decision) -> str | None:
    """The deciding face's emotion (the largest face's, the default policy), if any face."""
    return max(d.faces, key=lambda f: f.box[2] * f.box[3]).emotion if d.faces else None


def _folder(d: Decision) -> str:
    """Where the file goes: its emotion's folder if sorted, else its quarantine reason's."""
    return str(d.emotion) if d.action == "sorted" else f"_quarantine/{d.reason}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--qualities", type=int, nargs="+", default=[95, 90], help="JPEG qualities")
    parser.add_argument("--model", type=Path, help="emotion model file (default: the shipped one)")
    args = parser.parse_args()
    if not require_shared():
        return 1
    shots = sorted((SHARED / "seed" / "screenshots").glob("*.png"))
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(state_dir=Path(tmp) / "state")
        model = load_model(args.model) if args.model else load_model_in_force(settings)
        pipeline = Pipeline.for_settings(settings, model)
        changed = {q: {"boxes": 0, "faces": 0, "emotion": 0, "folder": 0} for q in args.qualities}
        for shot in shots:
            image = imread_file(shot)
            assert image is not None, shot
            png = Path(tmp) / shot.name
            imwrite_file(png, image)
            first = pipeline.decide(png)
            for q in args.qualities:
                jpg = Path(tmp) / f"{shot.stem}-{q}.jpg"
                jpg.write_bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, q])[1].tobytes())
                again = pipeline.decide(jpg)
                counts = changed[q]
                counts["boxes"] += [f.box for f in first.faces] != [f.box for f in again.faces]
                counts["faces"] += len(first.faces) != len(again.faces)
                counts["emotion"] += _emotion(first) != _emotion(again)
                counts["folder"] += _folder(first) != _folder(again)
    model_name = args.model or "the shipped one"
    print(f"{len(shots)} seed screenshots, PNG against JPEG copies; model {model_name}")
    for q, counts in changed.items():
        print(
            f"JPEG quality {q}: other boxes {counts['boxes']}, another number of faces {counts['faces']}, "
            f"another emotion of the deciding face {counts['emotion']}, another folder {counts['folder']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
