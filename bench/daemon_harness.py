"""What the fault benchmarks share: a throw-away set of folders, the real daemon as a subprocess, and
the census that says of every input file whether it survived, was lost or was duplicated.

Every check is by SHA-256: a file survived if its exact bytes exist exactly once, in the library
or still in the inbox. Run the benchmarks as ``python bench/NAME.py`` from the repository root.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from facesortd.detect import SHIPPED_CASCADE, shipped_file
from facesortd.state import STATUS_FILE


def add_cascade_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cascade", type=Path, help="cascade to run with (default: the shipped one)")


def cascade_of(args: argparse.Namespace) -> Path | None:
    """The cascade the daemon runs with, or None (said on stderr) if there is none."""
    cascade = args.cascade or shipped_file(SHIPPED_CASCADE)
    if cascade is None:
        print("no cascade: pass --cascade FILE", file=sys.stderr)
    return cascade


def machine_load() -> str:
    """The load averages, printed beside every time: this machine is often shared, and a time
    measured at load 8 says little about the code."""
    return "load average {:.1f} {:.1f} {:.1f} (1, 5, 15 min)".format(*os.getloadavg())


def random_pngs(n: int, seed: int, prefix: str = "shot") -> dict[str, bytes]:
    """``n`` small distinct PNGs (noise: no faces, so they sort fast) by file name."""
    rng = np.random.default_rng(seed)
    return {
        f"{prefix} {i}.png": cv2.imencode(".png", rng.integers(0, 255, (48, 64, 3), np.uint8))[1].tobytes()
        for i in range(n)
    }


def png_1080p(img: np.ndarray) -> bytes:
    """``img`` stretched to 1920x1080 and saved as a fast PNG, as a screenshot tool writes one.
    The aspect is not kept: decoding and the cascade's scan cost by the pixel count."""
    big = cv2.resize(img, (1920, 1080), interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".png", big, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1].tobytes()


def screenshot_1080p(rng: np.random.Generator) -> bytes:
    """A 1920x1080 PNG as large and slow to decode as a real screenshot (smooth noise, no faces)."""
    return png_1080p(rng.integers(0, 255, (34, 60, 3), np.uint8))


def forged_tiff(width: int, height: int) -> bytes:
    """A real 8x8 TIFF whose header claims ``width`` x ``height``: a decompression bomb's lie."""
    data = bytearray(cv2.imencode(".tiff", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    ifd = int.from_bytes(data[4:8], "little")
    for k in range(int.from_bytes(data[ifd : ifd + 2], "little")):
        entry = ifd + 2 + 12 * k
        tag = int.from_bytes(data[entry : entry + 2], "little")
        if tag in (256, 257):  # ImageWidth, ImageLength
            data[entry + 2 : entry + 4] = (4).to_bytes(2, "little")  # as a LONG
            data[entry + 8 : entry + 12] = (width if tag == 256 else height).to_bytes(4, "little")
    return bytes(data)


@dataclass
class Folders:
    """inbox, library and state folder under ``root``, and a config file pointing at them."""

    root: Path
    cascade: Path
    settle_s: float = 0.05
    extra: str = ""
    state: Path | None = None
    inbox_in: Path | None = None
    """A folder to make the inbox in instead of ``root`` (another filesystem: moves become copies)."""

    def __post_init__(self) -> None:
        self.inbox = (self.inbox_in or self.root) / "inbox"
        self.library = self.root / "lib"
        self.state = self.state or self.root / "state"
        self.config = self.root / "config.toml"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            f'inbox = "{self.inbox}"\nlibrary = "{self.library}"\nstate_dir = "{self.state}"\n'
            f'[detection]\ncascades = ["{self.cascade}"]\n'
            f"[watch]\nsettle_s = {self.settle_s}\n{self.extra}"
        )

    def command(self, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "facesortd",
            "--config",
            str(self.config),
            "--log-level",
            "WARNING",
            *args,
        ]

    def start(self, *args: str) -> Started:
        """``facesortd run`` (or another command) in the background."""
        self._runs = getattr(self, "_runs", 0) + 1
        return Started(self.command(*(args or ("run",))), self.root / f"run-{self._runs}.log")

    def drop(self, files: dict[str, bytes]) -> None:
        """Write each file beside the inbox, then rename it in: how screenshot tools finish a save."""
        staging = self.root / "staging"
        staging.mkdir(exist_ok=True)
        for name, data in files.items():
            (staging / name).write_bytes(data)
            os.rename(staging / name, self.inbox / name)

    def waiting(self) -> int:
        """Files still in the inbox."""
        return sum(1 for _ in self.inbox.glob("*.png"))

    def idle(self, pid: int) -> bool:
        """The daemon with this pid has published an empty queue."""
        assert self.state is not None
        try:
            published = json.loads((self.state / STATUS_FILE).read_text())
        except (OSError, ValueError):
            return False
        return bool(published.get("pid") == pid and published.get("queue") == 0)


def wait_for(cond: Callable[[], object], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


class Started:
    """A facesortd process; its output goes to a log file (a pipe nobody reads would stall it once
    full)."""

    def __init__(self, command: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        self.pid = self.proc.pid

    def output(self) -> str:
        return self.log.read_bytes().decode(errors="replace")

    def stop(self, problems: list[str], what: str = "daemon") -> int:
        """SIGTERM (unless it already ended); anything but a quick exit 0 is a problem."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            problems.append(f"{what} did not stop within 30 s of SIGTERM")
        if code != 0:
            problems.append(f"{what} exit code {code}: {self.output()[-400:]}")
        if "Traceback" in self.output():
            problems.append(f"{what} logged a traceback: {self.output()[-600:]}")
        return code


@dataclass
class Census:
    """Counts over the input files of one run."""

    tried: int = 0
    survived: int = 0
    lost: int = 0
    duplicated: int = 0
    stalled: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, other: Census) -> None:
        for name in ("tried", "survived", "lost", "duplicated", "stalled"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems)

    def line(self) -> str:
        return (
            f"tried {self.tried}, survived {self.survived}, lost {self.lost}, duplicated {self.duplicated}, "
            f"stalled {self.stalled}"
        )


def with_daemon(
    folders: Folders,
    inputs: dict[str, bytes],
    during: Callable[[Started, list[str]], None],
    timeout: float = 180,
) -> Census:
    """Start the daemon, let ``during`` do its worst (noting problems), wait until everything is
    sorted, stop the daemon and count."""
    problems: list[str] = []
    daemon = folders.start()
    wait_for(lambda: folders.idle(daemon.pid), 60)
    during(daemon, problems)
    wait_for(
        lambda: (
            daemon.proc.poll() is not None or (folders.idle(daemon.pid) and not any(folders.inbox.iterdir()))
        ),
        timeout,
    )
    daemon.stop(problems)
    counted = census(folders, inputs)
    counted.problems[:0] = problems
    return counted


def census(folders: Folders, inputs: dict[str, bytes], must_leave_inbox: bool = True) -> Census:
    """Where each input's bytes are now; with ``must_leave_inbox``, one still in the inbox stalled."""
    found: dict[str, list[Path]] = {}
    for top in (folders.inbox, folders.library):
        for p in top.rglob("*") if top.exists() else []:
            if p.is_file() and not p.is_symlink():
                found.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), []).append(p)
    out = Census(tried=len(inputs))
    for name, data in inputs.items():
        copies = found.pop(hashlib.sha256(data).hexdigest(), [])
        if not copies:
            out.lost += 1
            out.problems.append(f"{name!r}: lost")
        elif len(copies) > 1:
            out.duplicated += 1
            out.problems.append(f"{name!r}: {len(copies)} copies {copies}")
        else:
            out.survived += 1
            if must_leave_inbox and copies[0].parent == folders.inbox:
                out.stalled += 1
                out.problems.append(f"{name!r}: still in the inbox")
    out.problems.extend(f"unexpected file {paths}" for paths in found.values())
    return out
