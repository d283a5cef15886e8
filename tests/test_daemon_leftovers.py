"""Leftovers of the live sweep: the daemon's locks, folders and messages under a running daemon (its
lock file deleted, its quarantine or library re-pointed, a move refused for a long time) and `sort`'s
wait for a half-written file. Each test here failed on the code before its fix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loguru import logger
from synthetic import screenshot_png, stub_pipeline
from waiting import running_daemon, wait_until

from facesortd.config import Settings


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
