"""Progress for long work: a redrawn bar on a terminal, a periodic log line otherwise.

Under systemd or in a pipe a bar would spam the journal, so non-terminals get one line every few
seconds with done/total, rate and time left.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from loguru import logger


class Progress:
    """Counts finished items of a known total and reports them at a bounded rate."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = 0.1 if self.tty else every_s
        self.start = self._last = time.monotonic()

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.every_s or self.done == self.total:
            self._last = now
            self._show(now)

    def line(self, now: float | None = None) -> str:
        """``label 40/100 (40%) 12.3/s ETA 5s``: the text both display modes show."""
        elapsed = max(1e-9, (now or time.monotonic()) - self.start)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = f"ETA {left:.0f}s" if left != float("inf") else "ETA ?"
        return f"{self.label} {self.done}/{self.total} ({pct:.0f}%) {rate:.1f}/s {eta}"

    def _show(self, now: float) -> None:
        if self.tty:
            width = 24
            filled = int(width * self.done / self.total) if self.total else width
            end = "\n" if self.done >= self.total else ""
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.line(now)}\x1b[K{end}")
            self.stream.flush()
        else:
            logger.info(self.line(now))
