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
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facesortd.detect import SHIPPED_CASCADE, shipped_file


def _inputs(n: int, seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        img = rng.integers(0, 255, (48, 64, 3), np.uint8)
        out[f"shot {i}.png"] = cv2.imencode(".png", img)[1].tobytes()
    return out


def _start(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "facesortd", "--config", str(config), "--log-level", "WARNING", "run"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _idle(root: Path, pid: int) -> bool:
    """The daemon with this pid has published an empty queue and the inbox holds no image."""
    status = root / "state" / "status.json"
    try:
        published = json.loads(status.read_text())
    except (OSError, ValueError):
        return False
    done = published.get("pid") == pid and published.get("queue") == 0
    return done and not any(p.suffix == ".png" for p in (root / "inbox").iterdir())


def trial(cascade: Path, files: int, seed: int, max_delay: float) -> list[str]:
    """One kill-and-restart trial; returns the problems found (empty: every file is safe)."""
    with tempfile.TemporaryDirectory(prefix="facesortd-crash-") as tmp:
        root = Path(tmp)
        config = root / "config.toml"
        config.write_text(
            f'inbox = "{root / "inbox"}"\nlibrary = "{root / "lib"}"\nstate_dir = "{root / "state"}"\n'
            f'[detection]\ncascades = ["{cascade}"]\n[watch]\nsettle_s = 0.05\n'
        )
        (root / "inbox").mkdir()
        inputs = _inputs(files, seed)
        for name, data in inputs.items():
            (root / "inbox" / name).write_bytes(data)
        first = _start(config)
        time.sleep(random.Random(seed).uniform(0.0, max_delay))
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = _start(config)
        deadline = time.monotonic() + 120
        while not _idle(root, second.pid) and time.monotonic() < deadline and second.poll() is None:
            time.sleep(0.1)
        second.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        code = second.wait(timeout=30)
        problems = (
            [] if code == 0 else [f"exit code {code} after SIGTERM: {second.stderr.read().decode()[-500:]}"]
        )
        if time.monotonic() - t0 > 10:
            problems.append("SIGTERM took more than 10 s")
        found: dict[str, list[Path]] = {}
        for p in [*(root / "inbox").rglob("*"), *(root / "lib").rglob("*")]:
            if p.is_file():
                found.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), []).append(p)
        for name, data in inputs.items():
            copies = found.pop(hashlib.sha256(data).hexdigest(), [])
            if len(copies) != 1:
                problems.append(f"{name}: {len(copies)} copies {copies}")
        problems.extend(f"unexpected file {paths}" for paths in found.values())
        return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--max-delay", type=float, default=3.0, help="latest kill, seconds after start")
    parser.add_argument("--cascade", type=Path, help="cascade to run with (default: the shipped one)")
    args = parser.parse_args(argv)
    cascade = args.cascade or shipped_file(SHIPPED_CASCADE)
    if cascade is None:
        print("no cascade: pass --cascade FILE", file=sys.stderr)
        return 2
    failed = 0
    started = time.monotonic()
    for k in range(args.trials):
        problems = trial(cascade, args.files, seed=k, max_delay=args.max_delay)
        failed += bool(problems)
        for line in problems:
            print(f"trial {k}: {line}")
    print(
        f"{args.trials} trials of {args.files} files, SIGKILL at a random moment: {failed} with a problem "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
