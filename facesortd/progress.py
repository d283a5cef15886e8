"""Progress for long work: a redrawn bar on a terminal, a periodic log line otherwise.

Under systemd or in a pipe a bar would spam the journal, so non-terminals get one line every few
seconds with done/total, rate and time left. On a terminal the log goes through ``LogStream``,
which writes each line over the bar and draws the bar again below it: written beside it, `sort`'s
line per file was glued to the end of the bar's text (``... ETA 3s15:47:23 INFO shot.png -> ...``).

A terminal that is gone (an SSH connection dropped) fails every write to it (EIO): the bar and the
log's lines are then dropped (``written``), never a traceback in the middle of a sort, nor one
at its end that turned its exit status into the interpreter's 1.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from loguru import logger

_drawing = threading.Lock()
_drawn: Progress | None = None
"""The bar on a terminal line of its own now (unfinished), which a log line must move down."""

_CLEAR_LINE = "\r\x1b[K"

SAY_WAITING_S = 1.0
"""How long a command may wait for a lock another process holds (the journal's, the move lock) before
it says what it waits for: facesortd holds each for moments; one held longer is held by a tool, or by a
process stopped (Ctrl-Z, SIGSTOP) or stuck, and the person saw a command hang without a word."""


@contextlib.contextmanager
def said_if_waiting(say: Callable[[], None]) -> Iterator[None]:
    """``say`` called once, from a thread of its own, if the block (a wait for a lock) lasts
    ``SAY_WAITING_S``."""
    waiting = threading.Timer(SAY_WAITING_S, say)
    waiting.daemon = True
    waiting.start()
    try:
        yield
    finally:
        waiting.cancel()


class Progress:
    """Counts finished items of a known total and reports them at a bounded rate."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self.stream: TextIO = sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = 0.1 if self.tty else 5.0
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

    def close(self) -> None:
        """End the bar's line if the work stopped short of its total (Ctrl-C): what is written next
        would go on after the bar's text."""
        global _drawn
        with _drawing:
            if _drawn is self:
                written(self.stream, "\n")
                _drawn = None

    def _show(self, now: float) -> None:
        global _drawn
        if not self.tty:
            logger.info(self.line(now))
            return
        with _drawing:
            finished = self.done >= self.total
            written(self.stream, self._drawing(now) + ("\n" if finished else ""))
            _drawn = None if finished else self

    def _drawing(self, now: float | None = None) -> str:
        """The bar's line, drawn over what the line held."""
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        return f"{_CLEAR_LINE}[{'#' * filled}{'.' * (width - filled)}] {self.line(now)}"


def print_line(text: str) -> None:
    """``text`` as a line on stdout; on a terminal while a bar is drawn (stdout and stderr the same
    terminal, most likely), in the bar's place, the bar drawn again below it, as ``LogStream`` does
    for the log: printed beside it, each line of `sort --dry-run`'s plan was glued to the end of the
    bar's text (``... ETA 7sshot.png would go to ...``)."""
    with _drawing:
        bar = _drawn if _drawn is not None and sys.stdout.isatty() else None
        if bar:
            written(bar.stream, _CLEAR_LINE)
        print(text, flush=True)
        if bar:
            written(bar.stream, bar._drawing())


class LogStream:
    """The log's stream (stderr): a line written while a bar is drawn on the same stream takes the
    bar's place, and the bar is drawn again below it."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        with _drawing:
            bar = _drawn if _drawn is not None and _drawn.stream is self.stream else None
            written(self.stream, _CLEAR_LINE + text + bar._drawing() if bar else text)

    def flush(self) -> None:
        written(self.stream, "")

    def isatty(self) -> bool:
        """Asked by the logger: colours on a terminal only."""
        return self.stream.isatty()


def written(stream: TextIO, text: str) -> None:
    """``text`` written to ``stream`` (stderr: the log, a bar, `main`'s last line) and flushed; if the
    stream cannot take it (EIO: its terminal is gone), ``text`` is dropped and the stream sent to
    /dev/null (``to_null``), so that no later write, nor the flush at the interpreter's exit, fails
    again. What the command does goes on, and its exit status says how it went: no one is there to
    read why it could not be said."""
    try:
        stream.write(text)
        stream.flush()
    except OSError:
        to_null(stream)


def to_null(stream: TextIO) -> None:
    """``stream`` sent to /dev/null under its file descriptor: its reader is gone (a pipe's reader
    that left, a terminal closed), and what is still buffered for it would fail again at the
    interpreter's exit (a second BrokenPipeError, or the exit status turned into 120). A stream
    with no descriptor of its own (a test's) is left as it is."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)
