"""Fault suite: the real daemon against what a hostile tester tries, every file checked by SHA-256.

Scenarios (each on fresh folders, each counted tried / survived / lost / duplicated / stalled):

- two-daemons: a second `facesortd run` on the same state folder while files arrive; it must
  refuse at once, naming the first one's pid, and the first sorts everything;
- two-daemons-own-state: the same, the second one's config naming a state folder of its own (two
  configs on one inbox): refused alike, by the inbox's lock;
- sort-beside: `facesortd sort INBOX` run while the daemon sorts the same burst;
- sort-beside-killed: the same, one of the two SIGKILLed once a random number of the files has left
  the inbox (the `sort` in even rounds, the daemon in odd ones, started again then); the daemon
  sorts the rest, and a later start of it finds nothing more to do;
- full-state-disk: the state folder on a 32 MB tmpfs that is filled up while files arrive, then
  emptied; nothing may be lost and everything must be sorted once there is room (needs root to
  mount a tmpfs; skipped otherwise). Not smaller: SQLite's write-ahead log alone grows to about
  4 MB between checkpoints, so a smaller disk is full for good, whatever is freed on it;
- hostile-names: names that are not UTF-8, 255-byte names that clash, newlines, leading dashes;
- hostile-images: headers that lie about the size (TIFF, PNM, PAM), a 1x10000 PNG, text named
  .png, a truncated PNG, an empty file, and a PNG appended in four chunks a second apart;
- sigterm-under-load: SIGTERM half-way through a burst and again after it: exit 0 both times.

    python bench/fault_suite.py                  # every scenario once
    python bench/fault_suite.py --rounds 3 --files 300
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import functools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from daemon_harness import (
    Census,
    Folders,
    Started,
    add_cascade_option,
    cascade_of,
    census,
    forged_tiff,
    random_pngs,
    wait_for,
    with_daemon,
)

from facesortd.quarantine import QUARANTINE_DIR

Scenario = Callable[[Path, Path, int, int], Census]


def two_daemons(root: Path, cascade: Path, files: int, seed: int, *, own_state: bool = False) -> Census:
    """``own_state``: the second daemon's config names a state folder of its own (two configs on one
    inbox), which no lock of the state folder refuses."""
    folders = Folders(root, cascade)
    inputs = random_pngs(files, seed)
    config = folders.config
    if own_state:
        config = root / "config-own-state.toml"
        config.write_text(folders.config.read_text().replace(str(folders.state), str(root / "state2")))

    def second_one(first: Started, problems: list[str]) -> None:
        command = [str(config) if arg == str(folders.config) else arg for arg in folders.command("run")]
        second = Started(command, root / "second.log")
        folders.drop(inputs)
        try:
            code = second.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # not refused: the two race for every file
            problems.append("a second daemon on the same inbox was not refused")
            wait_for(lambda: not any(folders.inbox.iterdir()), 180)
            second.stop(problems, "second daemon")
            return
        if code != 2 or f"pid {first.pid}" not in second.output():
            problems.append(f"second daemon: exit {code}, said {second.output()[-300:]!r}")

    return with_daemon(folders, inputs, second_one)


def sort_beside(root: Path, cascade: Path, files: int, seed: int) -> Census:
    folders = Folders(root, cascade)
    inputs = random_pngs(files, seed)

    def sort_too(_daemon: Started, problems: list[str]) -> None:
        folders.drop(inputs)
        sort = folders.start("sort", str(folders.inbox))
        if sort.proc.wait(timeout=300) != 0 or "Traceback" in sort.output():
            problems.append(f"sort: exit {sort.proc.returncode}: {sort.output()[-400:]}")

    return with_daemon(folders, inputs, sort_too)


def sort_beside_killed(root: Path, cascade: Path, files: int, seed: int) -> Census:
    folders = Folders(root, cascade)
    inputs = random_pngs(files, seed)
    problems: list[str] = []
    daemon = folders.start()
    wait_for(lambda: folders.idle(daemon.pid), 60)
    folders.drop(inputs)
    sort = folders.start("sort", str(folders.inbox))
    left = files - random.Random(seed).randrange(1, files)
    wait_for(lambda: folders.waiting() <= left or sort.proc.poll() is not None, 300)
    killed = sort if seed % 2 == 0 else daemon
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait()
    if killed is daemon:
        if sort.proc.wait(timeout=300) != 0 or "Traceback" in sort.output():
            problems.append(f"sort: exit {sort.proc.returncode}: {sort.output()[-400:]}")
        daemon = folders.start()

    def sorted_all() -> bool:
        return daemon.proc.poll() is not None or (folders.idle(daemon.pid) and not folders.waiting())

    wait_for(sorted_all, 300)
    daemon.stop(problems)
    again = folders.start()  # its recovery at the start: what a killed process left, counted after
    wait_for(lambda: again.proc.poll() is not None or folders.idle(again.pid), 60)
    again.stop(problems, "daemon started again")
    counted = census(folders, inputs)
    counted.problems[:0] = problems
    return counted


def full_state_disk(root: Path, cascade: Path, files: int, seed: int) -> Census:
    state = root / "state"
    state.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(state)]
    try:
        subprocess.run(mount, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        print("full-state-disk: cannot mount a tmpfs (needs root); skipped", file=sys.stderr)
        return Census()
    folders = Folders(root, cascade, extra="rescan_interval_s = 5\n")
    inputs = random_pngs(files, seed)
    names = list(inputs)

    def fill_up(daemon: Started, problems: list[str]) -> None:
        folders.drop({n: inputs[n] for n in names[: files // 2]})
        filler = state / "filler"
        with filler.open("wb") as fh:  # the disk fills up while the burst is being sorted
            try:
                while True:
                    fh.write(bytes(1 << 16))
                    fh.flush()
            except OSError:
                pass
        folders.drop({n: inputs[n] for n in names[files // 2 :]})
        time.sleep(5)  # full for a while: nothing may be lost meanwhile, and the daemon must live
        if daemon.proc.poll() is not None:
            problems.append(f"daemon died on a full state disk: {daemon.output()[-400:]}")
        if "disk is full" not in daemon.output():
            problems.append("the state disk never filled up: this run tested nothing")
        filler.unlink()

    try:
        return with_daemon(folders, inputs, fill_up, timeout=240)
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def hostile_names(root: Path, cascade: Path, files: int, seed: int) -> Census:
    folders = Folders(root, cascade)
    pngs = iter(random_pngs(12, seed).values())
    long_name = "é" * 100 + "x" * 51 + ".png"  # 255 bytes
    names = [
        os.fsdecode(b"\xff\xfe shot.png"),
        os.fsdecode(b"caf\xe9 latin-1.png"),
        os.fsdecode(b"\xed\xa0\x80 surrogate.png"),
        long_name,
        "new\nline.png",
        "-rf --help.png",
        " spaces .png",
    ]
    inputs = {name: next(pngs) for name in names}
    clash = folders.library / QUARANTINE_DIR / "no-face"  # noise has no face: where they all go
    clash.mkdir(parents=True)
    already = {long_name: next(pngs), names[0]: next(pngs)}
    for name, data in already.items():
        (clash / name).write_bytes(data)

    def write(_daemon: Started, _problems: list[str]) -> None:
        for name, data in inputs.items():
            (folders.inbox / name).write_bytes(data)

    return with_daemon(folders, {**inputs, **{f"already {k}": v for k, v in already.items()}}, write)


def hostile_images(root: Path, cascade: Path, files: int, seed: int) -> Census:
    folders = Folders(root, cascade)
    good = random_pngs(2, seed)
    chunked = next(iter(random_pngs(1, seed + 1, prefix="chunked").values()))
    inputs = {
        "tiff bomb 32k.png": forged_tiff(32000, 32000),
        "tiff 8k.tif": forged_tiff(8000, 8000),
        "pgm 18k.png": b"P5\n18000 18000\n255\n" + bytes(64),
        "pam 20k.png": b"P7\nWIDTH 20000\nHEIGHT 20000\nDEPTH 1\nMAXVAL 255\nENDHDR\n" + bytes(64),
        "line 1x10000.png": cv2.imencode(".png", np.full((1, 10000, 3), 90, np.uint8))[1].tobytes(),
        "text.png": b"hello, not an image",
        "cut.png": next(iter(good.values()))[:200],
        "empty.png": b"",
        **good,
    }

    def write(_daemon: Started, _problems: list[str]) -> None:
        for name, data in inputs.items():
            (folders.inbox / name).write_bytes(data)
        target = folders.inbox / "chunked.png"
        step = len(chunked) // 4 + 1
        for i in range(0, len(chunked), step):  # open/append/close, a second apart
            with target.open("ab") as fh:
                fh.write(chunked[i : i + step])
            time.sleep(1.0)

    counted = with_daemon(folders, {**inputs, "chunked.png": chunked}, write, timeout=60)
    unreadable = folders.library / QUARANTINE_DIR / "unreadable"
    fragments = [p.name for p in unreadable.iterdir()] if unreadable.is_dir() else []
    if any(name.startswith("chunked") for name in fragments):
        counted.problems.append(f"the chunked file was quarantined in pieces: {fragments}")
    return counted


def sigterm_under_load(root: Path, cascade: Path, files: int, seed: int) -> Census:
    """SIGTERM in the middle of a burst, and again after it (the restart): each a quick exit 0."""
    folders = Folders(root, cascade)
    inputs = random_pngs(files, seed)

    def stop_half_way_and_restart(daemon: Started, problems: list[str]) -> None:
        folders.drop(inputs)
        wait_for(lambda: len(list(folders.inbox.iterdir())) <= files // 2, 600)
        daemon.stop(problems, "daemon stopped mid-burst")
        again = folders.start()
        wait_for(lambda: folders.idle(again.pid) and not any(folders.inbox.iterdir()), 600)
        again.stop(problems, "daemon stopped after the burst")

    return with_daemon(folders, inputs, stop_half_way_and_restart)


SCENARIOS: dict[str, Scenario] = {
    "two-daemons": two_daemons,
    "two-daemons-own-state": functools.partial(two_daemons, own_state=True),
    "sort-beside": sort_beside,
    "sort-beside-killed": sort_beside_killed,
    "full-state-disk": full_state_disk,
    "hostile-names": hostile_names,
    "hostile-images": hostile_images,
    "sigterm-under-load": sigterm_under_load,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each scenario (default 1)")
    parser.add_argument("--files", type=int, default=300, help="files per burst (default 300)")
    parser.add_argument("--only", choices=list(SCENARIOS), action="append", help="run only these")
    add_cascade_option(parser)
    args = parser.parse_args(argv)
    if (cascade := cascade_of(args)) is None:
        return 2
    failed = 0
    print("| scenario | runs | tried | survived | lost | duplicated | stalled | runs with a problem |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.only or list(SCENARIOS):
        total, bad = Census(), 0
        for k in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix=f"facesortd-{name}-") as tmp:
                counted = SCENARIOS[name](Path(tmp), cascade, args.files, k)
            total.add(counted)
            bad += bool(counted.problems)
            for line in counted.problems:
                print(f"  {name} round {k}: {line}", file=sys.stderr, flush=True)
        failed += bad
        print(
            f"| {name} | {args.rounds} | {total.tried} | {total.survived} | {total.lost} "
            f"| {total.duplicated} | {total.stalled} | {bad} |",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
