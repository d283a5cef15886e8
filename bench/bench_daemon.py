"""Daemon benchmark: backlog throughput, drop->moved latency, idle CPU, peak RSS of `facesortd run`.

1. A backlog of --backlog 1920x1080 PNGs sits in the inbox at start: files/s until it is empty.
2. Then --drops files are saved one at a time (written to a temp name, renamed in, as browsers
   do); the time from the rename to the file leaving the inbox gives p50/p95 latency.
3. The daemon then idles for --idle seconds: its CPU use over that time.
Peak RSS is the daemon's VmHWM at the end. Uses the shipped cascade and model unless given.

    python bench/bench_daemon.py [--backlog 1000] [--drops 50] [--idle 60] [--cascade FILE]
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from daemon_harness import machine_load, screenshot_1080p


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_empty(inbox: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while any(p.suffix == ".png" for p in inbox.iterdir()):
        if time.monotonic() > end:
            raise TimeoutError("inbox not emptied in time")
        time.sleep(0.005)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--drops", type=int, default=50)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--cascade", type=Path)
    args = parser.parse_args()
    print(f"at the start: {machine_load()}")
    rng = np.random.default_rng(0)
    variants = [screenshot_1080p(rng) for _ in range(20)]
    with tempfile.TemporaryDirectory(prefix="facesortd-bench-") as tmp:
        root = Path(tmp)
        inbox = root / "inbox"
        inbox.mkdir()
        cascades = f'[detection]\ncascades = ["{args.cascade}"]\n' if args.cascade else ""
        config = root / "config.toml"
        config.write_text(
            f'inbox = "{inbox}"\nlibrary = "{root / "lib"}"\nstate_dir = "{root / "state"}"\n'
            'log_level = "WARNING"\n' + cascades
        )
        for i in range(args.backlog):
            (inbox / f"backlog {i}.png").write_bytes(variants[i % len(variants)] + i.to_bytes(4, "big"))
        cmd = [sys.executable, "-m", "facesortd", "--config", str(config), "run"]
        daemon = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        _wait_empty(inbox, timeout=3600)
        backlog_s = time.monotonic() - t0
        backlog_cpu = _cpu_seconds(daemon.pid)
        print(
            f"backlog: {args.backlog} 1080p PNGs in {backlog_s:.1f} s = "
            f"{args.backlog / backlog_s:.1f} files/s "
            f"(including start-up); {1000 * backlog_cpu / args.backlog:.0f} ms CPU per file"
        )
        latencies = []
        for i in range(args.drops):
            tmp_name = inbox / f".drop {i}.png.part"
            tmp_name.write_bytes(variants[i % len(variants)] + (10**6 + i).to_bytes(4, "big"))
            start = time.monotonic()
            tmp_name.rename(inbox / f"drop {i}.png")
            _wait_empty(inbox, timeout=60)
            latencies.append((time.monotonic() - start) * 1000)
            time.sleep(0.2)
        p50, p95 = np.percentile(latencies, [50, 95])
        print(f"drop -> moved, one file at a time ({args.drops} files): p50 {p50:.0f} ms, p95 {p95:.0f} ms")
        cpu0 = _cpu_seconds(daemon.pid)
        time.sleep(args.idle)
        idle = (_cpu_seconds(daemon.pid) - cpu0) / args.idle
        print(f"idle CPU over {args.idle:.0f} s: {100 * idle:.2f} % of one core")
        print(f"peak RSS: {_peak_rss_mib(daemon.pid):.0f} MiB")
        daemon.send_signal(signal.SIGTERM)
        t1 = time.monotonic()
        code = daemon.wait(timeout=60)
        print(f"SIGTERM -> exit {code} in {time.monotonic() - t1:.2f} s")
    print(f"at the end: {machine_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
