"""Leftovers of the live sweep: the daemon's locks, folders and messages under a running daemon (its
lock file deleted, its quarantine or library re-pointed, a move refused for a long time) and `sort`'s
wait for a half-written file. Each test here failed on the code before its fix."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger
from synthetic import screenshot_png, stub_pipeline
from waiting import running_daemon, wait_until

from facesortd.config import Settings
from facesortd.decide import Decision
from facesortd.durable import Refused
from facesortd.library import Library
from facesortd.service import Service
from facesortd.state import StateBusy, daemon_running


@pytest.fixture
def log() -> Iterator[list[str]]:
    """Every log line's message, from INFO up."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m).rstrip()), level="INFO", format="{level} {message}")
    yield lines
    logger.remove(sink)


def _settle(settings: Settings, seconds: float) -> Settings:
    return settings.model_copy(
        update={"watch": settings.watch.model_copy(update={"unreadable_settle_s": seconds})}
    )


def test_a_file_gone_while_it_waited_is_forgotten(daemon_settings: Settings, log: list[str]) -> None:
    """The daemon's monotonic wait for a half-written file kept a record for each file that went away
    while it waited (deleted, renamed by its writer): a daemon running for months grew by one per file."""
    settings = _settle(daemon_settings, 0.5)
    half = settings.inbox / "half.png"
    with running_daemon(settings, stub_pipeline) as service:
        half.write_bytes(screenshot_png(30)[:300])
        wait_until(lambda: any("waiting" in line for line in log))
        assert len(service.sorter.unreadable_since) == 1
        half.unlink()
        wait_until(lambda: len(service.sorter.unreadable_since) == 0)


def test_a_refused_move_is_said_once_per_file_and_reason(
    daemon_settings: Settings, log: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move refused for as long as the person takes to fix it (a folder not writable, a library too
    deep for the name) logged an error, and recorded it, at every retry (up to every 300 s): now once
    per file and reason, again when the reason changes; `status` shows it meanwhile."""
    reasons = ["not writable"] * 4 + ["too deep"] * 4
    real_apply = Library.apply

    def refusing(self: Library, src: Path, decision: Decision, **kw: bool) -> Path:
        if reasons:
            raise Refused(
                OSError(errno.EACCES, "Permission denied"), f"cannot move it: {reasons.pop(0)}", "fix"
            )
        return real_apply(self, src, decision, **kw)

    monkeypatch.setattr(Library, "apply", refusing)
    monkeypatch.setattr("facesortd.service.FIRST_BACKOFF_S", 0.05)
    monkeypatch.setattr("facesortd.service.MAX_BACKOFF_S", 0.05)
    shot = daemon_settings.inbox / "a.png"
    with running_daemon(daemon_settings, stub_pipeline) as service:
        shot.write_bytes(screenshot_png(31))
        wait_until(lambda: not shot.exists())
        errors = service.journal.last_errors(50)
    said = [line for line in log if "cannot move it into the library" in line]
    assert len(said) == 2 and "not writable" in said[0] and "too deep" in said[1]
    assert [m for _at, _p, m in errors if "move failed" in m] == [
        "move failed: cannot move it: too deep (Permission denied): fix",
        "move failed: cannot move it: not writable (Permission denied): fix",
    ]


def test_a_second_daemon_is_refused_after_the_first_ones_lock_file_was_deleted(
    daemon_settings: Settings, log: list[str]
) -> None:
    """`rm <state_dir>/daemon.lock` while a daemon ran (taken for a stale pid file): a second `run`
    made a new one, took it at once and raced the first for every file. It is refused now, naming
    the first, and the first puts its lock file back (`status` and an older facesortd look there)."""
    lock = daemon_settings.state_dir / "daemon.lock"
    with running_daemon(daemon_settings, stub_pipeline):
        lock.unlink()
        with pytest.raises(StateBusy, match=f"pid {os.getpid()}"):
            Service(daemon_settings, stub_pipeline).run()
        wait_until(lambda: lock.exists() and daemon_running(daemon_settings.state_dir))
        with pytest.raises(StateBusy):
            Service(daemon_settings, stub_pipeline).run()
    assert not daemon_running(daemon_settings.state_dir)
