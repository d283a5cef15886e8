"""Fault injection: SIGKILL the real daemon at random moments of a burst, restart it, check every file.

Each trial drops --files PNGs into a fresh inbox, starts `facesortd run`, kills it with SIGKILL
once a random number of them (1 to all but one) has left the inbox, or with --max-delay a random
delay after it started, starts it again and lets it finish. Then every input must exist exactly
once (in the library or still in the inbox), byte-identical by SHA-256, with no temp files left.

    python bench/crash_trials.py --trials 500            # by hand
    python bench/crash_trials.py --trials 3 --files 40   # what the test suite runs
    python bench/crash_trials.py --inbox-on /dev/shm     # every move a copy across filesystems
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


def counted_trial(
    cascade: Path, files: int, seed: int, max_delay: float | None = None, inbox_on: Path | None = None
) -> Census:
    """One kill-and-restart trial, counted file by file.

    Without ``max_delay`` the kill lands inside the burst whatever the machine's speed. A delay
    from the start mostly does not: a small burst is sorted within a second of the start, so most
    kills after a random delay came before the daemon was up or after it had finished (README,
    "Nothing is lost, nothing stalls: how"). ``inbox_on``: where the inbox is made (see --inbox-on).
    """
    with (
        tempfile.TemporaryDirectory(prefix="facesortd-crash-") as tmp,
        tempfile.TemporaryDirectory(prefix="facesortd-crash-inbox-", dir=inbox_on) as inbox_tmp,
    ):
        folders = Folders(Path(tmp), cascade, inbox_in=Path(inbox_tmp))
        inputs = random_pngs(files, seed)
        for name, data in inputs.items():
            (folders.inbox / name).write_bytes(data)
        first = folders.start()
        draw = random.Random(seed)
        if max_delay is None:
            left = files - draw.randrange(1, files)
            wait_for(lambda: first.proc.poll() is not None or folders.waiting() <= left, timeout=120)
        else:
            time.sleep(draw.uniform(0.0, max_delay))
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        second = folders.start()
        wait_for(
            lambda: second.proc.poll() is not None or (folders.idle(second.pid) and not folders.waiting()),
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
    parser.add_argument(
        "--max-delay",
        type=float,
        help="kill a random 0-MAX_DELAY s after the start (default: once a random number of files moved)",
    )
    parser.add_argument(
        "--inbox-on",
        type=Path,
        help="make each inbox in this folder: on another filesystem than the library (/dev/shm), "
        "every move is a copy, then the source removed, and the kills land in those (default: beside "
        "the library)",
    )
    add_cascade_option(parser)
    args = parser.parse_args(argv)
    if (cascade := cascade_of(args)) is None:
        return 2
    failed = 0
    total = Census()
    started = time.monotonic()
    for k in range(args.trials):
        counted = counted_trial(cascade, args.files, seed=k, max_delay=args.max_delay, inbox_on=args.inbox_on)
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
