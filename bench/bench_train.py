"""How long `facesortd train` takes with the shipped net on 20,000 faces (issue #15: <= 120 s).

../shared holds about 10,000 labelled faces; the other 10,000 are their mirror images, written to
a temporary folder as face crops (vn_faces sprites over their games' backgrounds, cut the way
facesortd cuts crops, so they read back exactly) and, to reach the count, a few anime_expressions
crops mirrored and slightly blurred. Then one `facesortd train` process over the four datasets,
default settings (the ensemble of the shipped net's features and HOG + LBP, 5-fold out-of-source
cross-validation, a final fit), timed as a whole and as the phase after reading the faces
(what `train` prints). Run on one core: OMP_NUM_THREADS=1.

    OMP_NUM_THREADS=1 python bench/bench_train.py [--faces 20000] [--keep DIR]

``--phases CACHE`` times only what `train` does after reading, per phase, in CPU seconds (right
on a shared machine): the faces cached by ``bench_emotion.py --cache CACHE``, doubled by
mirroring, described once, cross-validated 5-fold and fitted, as `train` does.
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from shared_data import LABEL_MAP, SHARED, require_shared

from facesortd.descriptors import DEFAULT_ENSEMBLE, describe
from facesortd.faces import FaceSpec
from facesortd.learn.backdrops import Backdrops, composite, read_rgba
from facesortd.learn.datasets import load_items, load_vn_faces, relabel, vn_backgrounds
from facesortd.learn.training import FaceSet, cross_validate, emotion_fitter


def write_mirrors(folder: Path, wanted: int) -> int:
    """Mirror images of vn_faces (over their backgrounds) and anime_expressions as ``folder/<emotion>/``
    crops; ``wanted`` of them, the last ones blurred to differ from the plain mirror. Returns the count."""
    root = SHARED / "vn_faces"
    backdrops = Backdrops(vn_backgrounds(root))
    sprites = [(i.path, i.label) for i in load_vn_faces(root)]
    crops = [(i.path, i.label) for i in relabel(load_items(SHARED / "anime_expressions"), LABEL_MAP)]
    written = 0
    for k, (path, label) in enumerate((sprites + crops + crops)[:wanted]):
        if path.suffix == ".webp":
            bgra = read_rgba(path)
            image = composite(bgra, backdrops.for_key(path.name, bgra.shape[:2]))
        else:
            image = cv2.imread(str(path))
        image = cv2.flip(image, 1)
        if k >= len(sprites) + len(crops):
            image = cv2.GaussianBlur(image, (0, 0), 0.8)
        out = folder / label / f"m{k:05d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), image)
        written += 1
    return written


def time_phases(cache: Path, wanted: int) -> None:
    """CPU seconds of describing, cross-validating and the final fit on ``wanted`` cached faces."""
    names = ("vn_faces", "anime_expressions", "seed")
    data = FaceSet.concat([FaceSet.load(cache / f"{name}-64-0.2-typical.npz") for name in names])
    mirrored = replace(data, faces=data.faces[:, :, ::-1].copy(), groups=[f"{g}~" for g in data.groups])
    data = FaceSet.concat([data, mirrored])
    data = data.subset(np.arange(wanted) % len(data.labels))
    fit = emotion_fitter(FaceSpec(), DEFAULT_ENSEMBLE, 150)
    t0 = time.process_time()
    data.features = {d: describe(data.faces, d) for d in DEFAULT_ENSEMBLE}
    t1 = time.process_time()
    cross_validate(data, fit, 5)
    t2 = time.process_time()
    fit(data)
    t3 = time.process_time()
    print(
        f"{len(data.labels)} faces: describing {t1 - t0:.1f} s, 5-fold cross-validation {t2 - t1:.1f} s, "
        f"final fit {t3 - t2:.1f} s: {t3 - t0:.1f} s CPU (target <= 120 s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=int, default=20_000, help="faces in all (default %(default)s)")
    parser.add_argument("--keep", type=Path, help="write the mirrored crops here and keep them")
    parser.add_argument("--phases", type=Path, metavar="CACHE", help="time the training phases only")
    args = parser.parse_args()
    if args.phases:
        time_phases(args.phases, args.faces)
        return 0
    if not require_shared():
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp) / "mirrored"
        originals = ["vn_faces", "anime_expressions", "seed/faces.json"]
        have = sum(len(relabel(load_items(SHARED / name), LABEL_MAP)) for name in originals)
        if not folder.is_dir():
            print(f"writing {args.faces - have} mirrored crops to {folder}", flush=True)
            write_mirrors(folder, args.faces - have)
        command = [
            sys.executable,
            "-m",
            "facesortd",
            "train",
            *(str(SHARED / name) for name in originals),
            str(folder),
            *(f"--map={k}={v}" for k, v in LABEL_MAP.items()),
            "--undetected=typical",
            "--validation-share=0",
            f"--out={Path(tmp) / 'model.fsm.npz'}",
        ]
        started = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
    if run.returncode != 0:
        print(run.stderr[-2000:], file=sys.stderr)
        return run.returncode
    trained = re.search(r"trained on (\d+) faces in ([\d.]+) s", run.stdout)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"wall {wall:.1f} s incl. reading and framing, CPU {usage.ru_utime + usage.ru_stime:.1f} s, "
        f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB"
    )
    if trained:
        print(f"trained on {trained[1]} faces: cross-validation and fit {trained[2]} s (target <= 120 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
