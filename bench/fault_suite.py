"""Fault suite: the real daemon against what a hostile tester tries, every file checked by SHA-256.

Scenarios (each on fresh folders, each counted tried / survived / lost / duplicated / stalled):

- two-daemons: a second `facesortd run` on the same state folder while files arrive; it must
  refuse at once, naming the first one's pid, and the first sorts everything;
- sort-beside: `facesortd sort INBOX` run while the daemon sorts the same burst;
- full-state-disk: the state folder on a small tmpfs that is filled up while files arrive, then
  emptied; nothing may be lost and everything must be sorted once there is room (needs root to
  mount a tmpfs; skipped otherwise);
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
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from daemon_harness import Census, Folders, census, random_pngs, wait_for

from facesortd.detect import SHIPPED_CASCADE, shipped_file

Scenario = Callable[[Path, Path, int, int], Census]


def _sorted_all(folders: Folders, pid: int, timeout: float = 180) -> bool:
    return wait_for(lambda: folders.idle(pid) and not any(folders.inbox.iterdir()), timeout)


def two_daemons(root: Path, cascade: Path, files: int, seed: int) -> Census:
    folders = Folders(root, cascade)
    inputs = random_pngs(files, seed)
    problems: list[str] = []
    first = folders.start()
    wait_for(lambda: folders.idle(first.pid), 60)
    second = folders.start()
    folders.drop(inputs)
    code = second.proc.wait(timeout=60)
    if code != 2 or f"pid {first.pid}" not in second.output():
        problems.append(f"second daemon: exit {code}, said {second.output()[-300:]!r}")
    _sorted_all(folders, first.pid)
    first.stop(problems)
    counted = census(folders, inputs)
    counted.problems[:0] = problems
    return counted


def sort_beside(root: Path, cascade: Path, files: int, seed: int) -> Census:
    folders = Folders(root, cascade)
    inputs = random_pngs(files, seed)
    problems: list[str] = []
    daemon = folders.start()
    wait_for(lambda: folders.idle(daemon.pid), 60)
    folders.drop(inputs)
    sort = folders.start("sort", str(folders.inbox))
    if sort.proc.wait(timeout=300) != 0 or "Traceback" in sort.output():
        problems.append(f"sort: exit {sort.proc.returncode}: {sort.output()[-400:]}")
    _sorted_all(folders, daemon.pid)
    daemon.stop(problems)
    counted = census(folders, inputs)
    counted.problems[:0] = problems
    return counted


def full_state_disk(root: Path, cascade: Path, files: int, seed: int) -> Census:
    state = root / "state"
    state.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(state)], check=True, capture_output=True
        )
    except (OSError, subprocess.CalledProcessError):
        print("full-state-disk: cannot mount a tmpfs (needs root); skipped", file=sys.stderr)
        return Census()
    try:
        folders = Folders(root, cascade, extra="rescan_interval_s = 5\n")
        inputs = random_pngs(files, seed)
        problems: list[str] = []
        daemon = folders.start()
        wait_for(lambda: folders.idle(daemon.pid), 60)
        half = dict(list(inputs.items())[: files // 2])
        folders.drop(half)
        filler = state / "filler"
        with filler.open("wb") as fh:  # the disk fills up while the burst is being sorted
            try:
                while True:
                    fh.write(bytes(1 << 16))
                    fh.flush()
            except OSError:
                pass
        folders.drop(dict(list(inputs.items())[files // 2 :]))
        time.sleep(5)  # a full disk for a while: nothing may be lost meanwhile, the daemon must live
        if daemon.proc.poll() is not None:
            problems.append(f"daemon died on a full state disk: {daemon.output()[-400:]}")
        filler.unlink()
        if "disk is full" not in daemon.output():
            problems.append("the state disk never filled up: this run tested nothing")
        _sorted_all(folders, daemon.pid, timeout=240)
        daemon.stop(problems)
        counted = census(folders, inputs)
        counted.problems[:0] = problems
        return counted
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
    clash = folders.library / "_quarantine" / "no-face"  # noise has no face: where they all go
    clash.mkdir(parents=True)
    already = {long_name: next(pngs), os.fsdecode(b"\xff\xfe shot.png"): next(pngs)}
    for name, data in already.items():
        (clash / name).write_bytes(data)
    problems: list[str] = []
    daemon = folders.start()
    wait_for(lambda: folders.idle(daemon.pid), 60)
    for name, data in inputs.items():
        (folders.inbox / name).write_bytes(data)
    _sorted_all(folders, daemon.pid, timeout=60)
    daemon.stop(problems)
    counted = census(folders, {**inputs, **{f"already {k}": v for k, v in already.items()}})
    counted.problems[:0] = problems
    return counted


def _tiff_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".tiff", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    ifd = int.from_bytes(data[4:8], "little")
    for k in range(int.from_bytes(data[ifd : ifd + 2], "little")):
        entry = ifd + 2 + 12 * k
        tag = int.from_bytes(data[entry : entry + 2], "little")
        if tag in (256, 257):
            data[entry + 2 : entry + 4] = (4).to_bytes(2, "little")
            data[entry + 8 : entry + 12] = (width if tag == 256 else height).to_bytes(4, "little")
    return bytes(data)


def hostile_images(root: Path, cascade: Path, files: int, seed: int) -> Census:
    folders = Folders(root, cascade)
    good = random_pngs(2, seed)
    chunked = next(iter(random_pngs(1, seed + 1, prefix="chunked").values()))
    inputs = {
        "tiff bomb 32k.png": _tiff_claiming(32000, 32000),
        "tiff 8k.tif": _tiff_claiming(8000, 8000),
        "pgm 18k.png": b"P5\n18000 18000\n255\n" + bytes(64),
        "pam 20k.png": b"P7\nWIDTH 20000\nHEIGHT 20000\nDEPTH 1\nMAXVAL 255\nENDHDR\n" + bytes(64),
        "line 1x10000.png": cv2.imencode(".png", np.full((1, 10000, 3), 90, np.uint8))[1].tobytes(),
        "text.png": b"hello, not an image",
        "cut.png": next(iter(good.values()))[:200],
        "empty.png": b"",
        **good,
    }
    problems: list[str] = []
    daemon = folders.start()
    wait_for(lambda: folders.idle(daemon.pid), 60)
    for name, data in inputs.items():
        (folders.inbox / name).write_bytes(data)
    target = folders.inbox / "chunked.png"
    step = len(chunked) // 4 + 1
    for i in range(0, len(chunked), step):  # open/append/close, a second apart
        with target.open("ab") as fh:
            fh.write(chunked[i : i + step])
        time.sleep(1.0)
    _sorted_all(folders, daemon.pid, timeout=60)
    daemon.stop(problems)
    counted = census(folders, {**inputs, "chunked.png": chunked})
    counted.problems[:0] = problems
    unreadable = folders.library / "_quarantine" / "unreadable"
    fragments = [p.name for p in unreadable.iterdir()] if unreadable.is_dir() else []
    if any(name.startswith("chunked") for name in fragments):
        counted.problems.append(f"the chunked file was quarantined in pieces: {fragments}")
    return counted


def sigterm_under_load(root: Path, cascade: Path, files: int, seed: int) -> Census:
    """SIGTERM in the middle of a burst, and again after it: each must end in a quick exit 0."""
    folders = Folders(root, cascade)
    inputs = random_pngs(files, seed)
    problems: list[str] = []
    daemon = folders.start()
    wait_for(lambda: folders.idle(daemon.pid), 60)
    folders.drop(inputs)
    wait_for(lambda: len(list(folders.inbox.iterdir())) <= files // 2, 600)
    daemon.stop(problems, "daemon stopped mid-burst")
    again = folders.start()
    _sorted_all(folders, again.pid, timeout=600)
    again.stop(problems, "daemon stopped after the burst")
    counted = census(folders, inputs)
    counted.problems[:0] = problems
    return counted


SCENARIOS: dict[str, Scenario] = {
    "two-daemons": two_daemons,
    "sort-beside": sort_beside,
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
    parser.add_argument("--cascade", type=Path, help="cascade to run with (default: the shipped one)")
    args = parser.parse_args(argv)
    cascade = args.cascade or shipped_file(SHIPPED_CASCADE)
    if cascade is None:
        print("no cascade: pass --cascade FILE", file=sys.stderr)
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
