"""Benchmark of the review page: how fast a big quarantine pages, and what a file costs the first
time it is shown (thumbnail, faces and guesses of the model in force) and every time after.

Lists a quarantine of ``--files`` tiny files through the page's own listing (one page at the end
of the queue, as the server answers it), then shows every seed screenshot of ../shared (placed in a
temporary quarantine, never in the repository) twice: first (made and cached) and again (cached).

    python bench/bench_review.py [--files 10000]
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from shared_data import SHARED, require_shared

from facesortd.config import load_settings
from facesortd.journal import Journal
from facesortd.quarantine import QUARANTINE_DIR
from facesortd.review_page.server import PAGE_SIZE, ReviewApp


def _ms(values: list[float]) -> str:
    values = sorted(values)
    return f"median {statistics.median(values):.1f} ms, p95 {values[int(0.95 * (len(values) - 1))]:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="quarantine size to page (default 10000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = load_settings(library=root / "lib", state_dir=root / "state", inbox=root / "inbox")
        journal = Journal.for_state_dir(settings.state_dir)
        app = ReviewApp(settings, journal, "bench")
        big = settings.library / QUARANTINE_DIR / "unsure"
        big.mkdir(parents=True)
        for k in range(args.files):
            (big / f"shot{k:05d}.png").write_bytes(b"x")
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            page = app.listing("", max(0, args.files - PAGE_SIZE), PAGE_SIZE)
            timings.append((time.perf_counter() - started) * 1000)
        assert page["total"] == args.files
        print(f"listing {args.files} quarantined files, last page of {PAGE_SIZE}: {_ms(timings)}")
        for path in big.iterdir():
            path.unlink()
        if not require_shared():
            return 0
        for shot in sorted((SHARED / "seed" / "screenshots").glob("*.png")):
            shutil.copyfile(shot, big / shot.name)
        items = app.listing("", 0, 1000)["items"]
        first, again = [], []
        for rounds in (first, again):
            for entry in items:
                item = app.item(entry["id"])
                started = time.perf_counter()
                app.cache.thumbnail(item)
                app.cache.guesses(item)
                rounds.append((time.perf_counter() - started) * 1000)
        print(f"{len(items)} seed screenshots, thumbnail + faces + top-3 guesses, first time: {_ms(first)}")
        print(f"the same, cached: {_ms(again)}")
        journal.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
