"""`facesortd sort` on an old folder of many screenshots: stopped by Ctrl-C or SIGTERM part way,
run again, odd entries among the files. Every file ends whole in exactly one place."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from synthetic import screenshot_png
from waiting import wait_until

from facesortd.config import Settings


def _files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def _contents(*roots: Path) -> Counter[str]:
    """Every file's content under ``roots`` (hidden temp files too), counted: lost, doubled or
    half-written files all change it."""
    return Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in _files(*roots))


def _sort(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "facesortd", "sort", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_sort_stopped_part_way_reports_what_it_did_and_the_same_command_sorts_the_rest(
    cli_settings: Settings, tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C raised KeyboardInterrupt wherever the main thread was: the files the workers finished
    meanwhile were moved without a line or --json record, and no summary was said. SIGTERM ended the
    process at once (exit -15), a file between its move's link and unlink left in both places."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(60):
        (shots / f"shot{i:03d}.png").write_bytes(screenshot_png(i, face=i % 5 == 0))
    before = _contents(shots)
    sort = _sort("--json", str(shots))
    wait_until(lambda: len(_files(cli_settings.library)) >= 3, timeout=60)
    sort.send_signal(sig)
    out, err = sort.communicate(timeout=60)
    assert sort.returncode == 128 + sig, err
    assert "Traceback" not in err and "interrupted: " in err and "left where they were" in err
    records = [json.loads(line) for line in out.splitlines()]
    placed = _files(cli_settings.library)
    assert sorted(Path(r["destination"]) for r in records) == placed  # every file moved is reported
    assert 0 < len(placed) < 60 and f"{60 - len(placed)} file(s) left" in err
    assert _contents(shots, cli_settings.library) == before  # none lost, doubled or half-written
    again = _sort(str(shots))
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert not _files(shots) and len(_files(cli_settings.library)) == 60
    assert _contents(cli_settings.library) == before
