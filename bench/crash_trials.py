"""Fault injection: SIGKILL the real daemon at random moments of a burst, restart it, check every file.

Each trial drops --files PNGs into a fresh inbox, starts `facesortd run`, kills it with SIGKILL
after a random delay, starts it again and lets it finish. Then every input must exist exactly
once (in the library or still in the inbox), byte-identical by SHA-256, with no temp files left.

    python bench/crash_trials.py --trials 500            # by hand
    python bench/crash_trials.py --trials 3 --files 30   # what the test suite runs
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from daemon_harness import Census, Folders, add_cascade_option, cascade_of, census, random_pngs, wait_for


def trial(cascade: Path, files: int, seed: int, max_delay: float) -> list[str]:
    """One kill-and-restart trial; returns the problems found (empty: every file is safe)."""
    return counted_trial(cascade, files, seed, max_delay).problems


def counted_trial(cascade: Path, files: int, seed: int, max_delay: float) -> Census:
    """One kill-and-restart trial, counted file by file."""
    with tempfile.TemporaryDirectory(prefix="facesortd-crash-") as tmp:
        folders = Folders(Path(tmp), cascade)
        inputs = random_pngs(files, seed)
        for name, data in inputs.items():
            (folders.inbox / name).write_bytes(data)
        first = folders.start()
        time.sleep(random.Random(seed).uniform(0.0, max_delay))
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        second = folders.start()
        wait_for(
            lambda: (
                second.proc.poll() is not None
                or (folders.idle(second.pid) and not any(folders.inbox.glob("*.png")))
            ),
            timeout=120,
        )
        problems: list[str] = []
        t0 = time.monotonic()
        second.stop(problems)
        if time.monotonic() - t0 > 10:
            problems.append("SIGTERM took more than 10 s")
        counted = census(folders, inputs)
        counted.problems[:0] = problems
        return counted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--max-delay", type=float, default=3.0, help="latest kill, seconds after start")
    add_cascade_option(parser)
    args = parser.parse_args(argv)
    if (cascade := cascade_of(args)) is None:
        return 2
    failed = 0
    total = Census()
    started = time.monotonic()
    for k in range(args.trials):
        counted = counted_trial(cascade, args.files, seed=k, max_delay=args.max_delay)
        total.add(counted)
        failed += bool(counted.problems)
        for line in counted.problems:
            print(f"trial {k}: {line}", flush=True)
    print(
        f"{args.trials} trials of {args.files} files, SIGKILL at a random moment: {failed} with a problem "
        f"({time.monotonic() - started:.0f} s); files: {total.line()}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
