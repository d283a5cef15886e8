"""Helpers for tests that run the daemon in a thread and watch it do its work."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

HUNG_S = 60.0
"""How long a test waits for a condition (or a thread) before calling it hung. Only a failing test
waits this long, a passing one goes on the moment its condition holds; so it is set for CI's shared,
loaded machine, not a quiet one: shorter guards there failed tests whose daemon was merely slow."""


def wait_until(cond: Callable[[], object], timeout: float = HUNG_S) -> None:
    """Return as soon as ``cond()`` is true; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting")


@contextlib.contextmanager
def running_daemon(settings: Any, make_pipeline: Callable[[Any], Any]) -> Iterator[Any]:
    """``facesortd run`` in a thread, from its first status file until it stopped after the block."""
    from facesortd.service import Service

    service = Service(settings, make_pipeline)
    settings.inbox.mkdir(parents=True, exist_ok=True)
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        wait_until(lambda: (settings.state_dir / "status.json").exists())
        yield service
    finally:
        service.stop()
        thread.join(timeout=HUNG_S)
    assert not thread.is_alive()


@contextlib.contextmanager
def log_lines(level: str) -> Iterator[list[str]]:
    """Every log line, as ``LEVEL message``, from ``level`` up, while the block runs: what the
    daemon said, for a test to wait on or read."""
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m).rstrip()), level=level, format="{level} {message}")
    try:
        yield lines
    finally:
        logger.remove(sink)
