"""The live sweep: what a hostile environment does to a daemon that has been running for a while
(its state folder deleted, its journal swapped, names and paths at the kernel's limits, signals).
Each test here failed on the code before its fix."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger
from synthetic import screenshot_png, stub_pipeline
from waiting import wait_until

from facesortd.config import Settings
from facesortd.journal import Journal
from facesortd.service import Service


@pytest.fixture
def log() -> Iterator[list[str]]:
    """Every log line's message, from WARNING up."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m).rstrip()), level="WARNING", format="{level} {message}")
    yield lines
    logger.remove(sink)


class Daemon:
    """`facesortd run` in a thread, whose exit code the test reads (running_daemon hides it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service = Service(settings, stub_pipeline)
        self.code: int | None = None
        settings.inbox.mkdir(parents=True, exist_ok=True)
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        wait_until(lambda: (settings.state_dir / "status.json").exists())

    def _run(self) -> None:
        self.code = self.service.run()

    def stop(self) -> int | None:
        self.service.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        return self.code


def _sorted(settings: Settings, name: str) -> None:
    (settings.inbox / name).write_bytes(screenshot_png(len(name)))
    wait_until(lambda: not (settings.inbox / name).exists())


@pytest.mark.parametrize("how", ["state folder deleted", "journal moved aside and replaced"])
def test_a_journal_gone_from_under_the_daemon_stops_it_for_a_restart_and_records_nothing_in_the_old(
    daemon_settings: Settings, log: list[str], how: str, tmp_path: Path
) -> None:
    """SQLite goes on writing into the file it has open: with the state folder deleted (`rm -rf
    ~/.local/state/facesortd` to start afresh), or the journal moved aside and a copy put back (a
    restore), every later move was recorded where no undo, status or recovery looks, and the deleted
    daemon lock let a second daemon start. Now no move is planned in it; the daemon says so once
    and exits 1, which systemd restarts; the file waits in the inbox for the daemon started anew."""
    settings = daemon_settings
    daemon = Daemon(settings)
    try:
        _sorted(settings, "first.png")
        journal = settings.state_dir / "journal.sqlite"
        if how == "state folder deleted":
            shutil.rmtree(settings.state_dir)
        else:
            journal.rename(tmp_path / "aside.sqlite")
            shutil.copy(tmp_path / "aside.sqlite", journal)
        (settings.inbox / "second.png").write_bytes(screenshot_png(2))
        daemon.thread.join(timeout=20)
    finally:
        code = daemon.stop()
    assert code == 1
    said = [line for line in log if line.startswith("CRITICAL")]
    assert len(said) == 1 and "was removed or replaced while facesortd had it open" in said[0], said
    assert (settings.inbox / "second.png").exists()  # not moved with its record lost
    restarted = Daemon(settings)
    try:
        wait_until(lambda: not (settings.inbox / "second.png").exists())
    finally:
        assert restarted.stop() == 0
    fresh = Journal.for_state_dir(settings.state_dir)
    assert "second.png" in [m.source.name for m in fresh.done_moves()]
    fresh.close()
