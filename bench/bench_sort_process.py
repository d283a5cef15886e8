"""Whole-process `facesortd sort --dry-run` against decoding the same files alone, in one run.

Issue #18's target is a ratio, so both sides share the machine's state: --files 1920x1080 PNGs
are written once, then (1) a fresh Python process decodes them all with OpenCV on --workers
threads and exits, (2) `facesortd sort --dry-run --workers N --json` sorts them. Both are timed
from process start to exit (start-up included, as a user waits for it). Prints the wall times,
their ratio, images/s, CPU per image, the ratio of CPU times (steadier on a shared machine), the
sort's peak RSS and the machine's load.

    python bench/bench_sort_process.py [--files 60] [--workers 2] [--cascade FILE] [--gate shipped|FILE]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from daemon_harness import Folders, add_cascade_option, cascade_of, machine_load, screenshot_1080p

from facesortd.config import GATE_NAMES, GATE_SHIPPED

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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
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
    print(f"at the start: {machine_load()}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="facesortd-bench-") as tmp:
        folders = Folders(Path(tmp), cascade)
        for i in range(args.files):
            (folders.inbox / f"shot {i}.png").write_bytes(screenshot_1080p(rng))
        decode = _timed([sys.executable, "-c", DECODE, str(folders.inbox), str(args.workers)])
        # Run second: RUSAGE_CHILDREN's peak is then the sort's (it is the larger of the two).
        sort = _timed(folders.command("sort", "--dry-run", "--json", "--workers", str(args.workers)))
    n = args.files
    print(f"{n} 1080p PNGs, {args.workers} worker(s)")
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
