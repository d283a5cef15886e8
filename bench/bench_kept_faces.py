"""What keeping a label's face costs: the kept crop (shrunk to KEEP_SIDE) against the face at run time.

A label's face is kept as a crop (learn/kept_faces.keep_face) and read back when a retrain learns
from it. Unshrunk, it normalises exactly as the screenshot's face; a crop larger than KEEP_SIDE
is shrunk, and this measures what that changes, on every face of the seed screenshots (their
hand-checked boxes): mean absolute difference of the normalised faces, and what the shipped model
predicts from each (same top class; confidence change; same side of the threshold).

    python bench/bench_kept_faces.py
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import sys
import tempfile
from pathlib import Path

import numpy as np
from shared_data import SHARED, require_shared

from facesortd.config import load_settings
from facesortd.faces import box_in_crop, cut_face_crop, normalise_face
from facesortd.images import read_image, to_gray
from facesortd.learn.datasets import load_faces_json
from facesortd.learn.kept_faces import KEEP_SIDE, keep_face, kept_face
from facesortd.model_store import load_model_in_force


def main() -> int:
    if not require_shared():
        return 1
    seed = SHARED / "seed"
    with tempfile.TemporaryDirectory() as state:
        settings = load_settings(state_dir=Path(state))
        model = load_model_in_force(settings)
        assert model is not None, "this build ships no emotion model"
        run_time, kept, shrunk = [], [], []
        for name, faces in sorted(load_faces_json(seed / "faces.json").items()):
            gray = to_gray(read_image(seed / "screenshots" / name, settings.images))
            for k, face in enumerate(faces):
                path = keep_face(settings, f"{k}-{name}", gray, face.box)
                run_time.append(normalise_face(gray, face.box, model.spec))
                kept.append(kept_face(path, model.spec))
                shrunk.append(cut_face_crop(gray, face.box).shape[0] > KEEP_SIDE)
                assert box_in_crop((KEEP_SIDE, KEEP_SIDE))[2] == KEEP_SIDE // 2
    a, b, big = np.stack(run_time), np.stack(kept), np.array(shrunk)
    diff = np.abs(a - b).reshape(len(a), -1).mean(axis=1)
    pa, pb = model.predict_proba(a), model.predict_proba(b)
    threshold = settings.recognition.threshold
    same_class = pa.argmax(axis=1) == pb.argmax(axis=1)
    same_side = (pa.max(axis=1) >= threshold) == (pb.max(axis=1) >= threshold)
    shift = np.abs(pa.max(axis=1) - pb.max(axis=1))
    print(f"{len(a)} faces of {seed}, {big.sum()} shrunk to {KEEP_SIDE} px; spec {model.spec}")
    for title, rows in (("shrunk", big), ("kept as cut", ~big)):
        if rows.any():
            print(
                f"{title} ({rows.sum()}): mean |difference| {diff[rows].mean():.4f}"
                f" (max {diff[rows].max():.4f});"
                f" same top class {same_class[rows].mean():.1%}; confidence change mean"
                f" {shift[rows].mean():.3f}, max {shift[rows].max():.3f}; same side of {threshold:.2f}"
                f" {same_side[rows].mean():.1%}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
