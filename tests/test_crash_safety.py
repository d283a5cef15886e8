"""The real daemon as a subprocess: SIGTERM exits 0 quickly, SIGKILL at any moment loses nothing."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import crash_trials


@pytest.mark.slow
def test_sigkill_during_a_burst_loses_nothing_and_the_trial_script_says_so(
    tiny_cascade: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three trials (seeds 0-2, each killed inside the burst at its own moment), run by the bench
    script itself: its exit 0 and its summary are the census of every file (a lost, doubled or
    stalled one is a problem it prints and counts), so the script is tested by the same trials."""
    assert crash_trials.main(["--trials", "3", "--files", "40", "--cascade", str(tiny_cascade)]) == 0
    assert "3 trials of 40 files, SIGKILL at a random moment: 0 with a problem" in capsys.readouterr().out


@pytest.mark.slow
def test_sigkill_during_a_burst_of_moves_across_filesystems_loses_nothing(tiny_cascade: Path) -> None:
    """An inbox on another filesystem than the library: each move is a copy, then the source
    removed, and the kill lands in those steps (the copy whole or not, the source there or not)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == Path(tempfile.gettempdir()).stat().st_dev:
        pytest.skip("no second filesystem (/dev/shm) beside the temporary folder")
    census = crash_trials.counted_trial(tiny_cascade, files=40, seed=1, inbox_on=shm)  # more: the bench
    assert census.problems == [] and census.survived == census.tried == 40
