"""How long `facesortd train` takes with the shipped net on 20,000 faces (issue #15: <= 120 s).

../shared holds about 10,000 labelled faces; the other 10,000 are their mirror images, written to
a temporary folder as face crops (vn_faces sprites over their games' backgrounds, cut the way
facesortd cuts crops, so they read back exactly) and, to reach the count, a few anime_expressions
crops mirrored and slightly blurred. Then one `facesortd train` process over the four datasets,
default settings (the ensemble of the shipped net's features and HOG + LBP, 5-fold out-of-source
cross-validation, a final fit), timed as a whole and as the phase after reading the faces
(what `train` prints). Run on one core: OMP_NUM_THREADS=1.

    OMP_NUM_THREADS=1 python bench/bench_train.py [--faces 20000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
from shared_data import LABEL_MAP, SHARED, require_shared

from facesortd.backdrops import Backdrops, composite, read_rgba
from facesortd.datasets import load_items, load_vn_faces, relabel, vn_backgrounds


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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=int, default=20_000, help="faces in all (default %(default)s)")
    parser.add_argument("--keep", type=Path, help="write the mirrored crops here and keep them")
    args = parser.parse_args()
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
