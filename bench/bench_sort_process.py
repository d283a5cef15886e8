"""Whole-process `facesortd sort --dry-run` against decoding the same files alone, in one run.

Issue #18's target is a ratio, so both sides share the machine's state: --files 1920x1080 PNGs
are written once (--images: smooth noise, the default and the cascade's worst case, or the seed
screenshots of ../shared stretched to 1920x1080, what the issue's screenshots look like), then
(1) a fresh Python process decodes them all with OpenCV on --workers threads and exits, (2)
`facesortd sort --dry-run --workers N --json` sorts them. Both are timed from process start to
exit (start-up included, as a user waits for it). Prints the wall times, their ratio, images/s,
CPU per image, the ratio of CPU times (steadier on a shared machine), the sort's peak RSS and the
machine's load.

    python bench/bench_sort_process.py [--files 60] [--workers 2] [--images synthetic|seed]
                                       [--cascade FILE] [--gate shipped|FILE]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from daemon_harness import Folders, add_cascade_option, cascade_of, machine_load, png_1080p, screenshot_1080p
from shared_data import SHARED, require_shared

from facesortd.config import GATE_NAMES, GATE_SHIPPED
from facesortd.images import imread_file

DECODE = """
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import cv2
files = sorted(Path(sys.argv[1]).glob("*.png"))
with ThreadPoolExecutor(int(sys.argv[2])) as pool:
    assert all(img is not None for img in pool.map(lambda p: cv2.imread(str(p)), files))
"""


def _timed(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one child process run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, after.ru_maxrss / 1024


def _pngs(images: str) -> Iterator[bytes]:
    """Endless 1080p PNGs of the chosen kind; the seed's screenshots come round again after the last."""
    if images == "synthetic":
        rng = np.random.default_rng(0)
        while True:
            yield screenshot_1080p(rng)
    for shot in itertools.cycle(sorted((SHARED / "seed" / "screenshots").glob("*.png"))):
        yield png_1080p(imread_file(shot))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--images",
        choices=("synthetic", "seed"),
        default="synthetic",
        help="synthetic (default): smooth noise with no face, the cascade's worst case; seed: the real "
        "screenshots of ../shared/data/seed/screenshots stretched to 1920x1080 (cycled if fewer than "
        "--files), far less work for the detector. Either is written to a temporary folder",
    )
    add_cascade_option(parser)
    parser.add_argument(
        "--gate",
        help=f"detection.gate for the sort: {GATE_SHIPPED}, off or a gate file (default: the config's)",
    )
    args = parser.parse_args()
    if args.gate:  # the sort's child process reads it; a file's path made absolute, a name as it is
        gate = args.gate if args.gate in GATE_NAMES else str(Path(args.gate).resolve())
        os.environ["FACESORTD_DETECTION__GATE"] = gate
    cascade = cascade_of(args)
    if cascade is None:
        return 2
    if args.images == "seed" and not require_shared():
        return 1
    print(f"at the start: {machine_load()}")
    with tempfile.TemporaryDirectory(prefix="facesortd-bench-") as tmp:
        folders = Folders(Path(tmp), cascade)
        for i, png in enumerate(itertools.islice(_pngs(args.images), args.files)):
            (folders.inbox / f"shot {i}.png").write_bytes(png)
        decode = _timed([sys.executable, "-c", DECODE, str(folders.inbox), str(args.workers)])
        # Run second: RUSAGE_CHILDREN's peak is then the sort's (it is the larger of the two).
        sort = _timed(folders.command("sort", "--dry-run", "--json", "--workers", str(args.workers)))
    n = args.files
    print(f"{n} 1080p PNGs ({args.images}), {args.workers} worker(s)")
    print(f"decode alone: {decode[0]:.2f} s wall, {1000 * decode[1] / n:.0f} ms CPU per image")
    rate = n / sort[0]
    print(
        f"sort --dry-run: {sort[0]:.2f} s wall, {rate:.1f} images/s,"
        f" {1000 * sort[1] / n:.0f} ms CPU per image"
    )
    print(f"ratio sort / decode: {sort[0] / decode[0]:.2f} (target <= 2); sort peak RSS {sort[2]:.0f} MiB")
    print(f"CPU ratio sort / decode: {sort[1] / decode[1]:.2f} (what the wall ratio tends to on idle cores)")
    print(f"at the end: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
