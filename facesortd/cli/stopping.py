"""Ctrl-C, SIGTERM and SIGHUP during `sort` (and its stdout's reader gone): noted and acted on between
files, never inside one. And stdout that cannot take a command's output (``say``, ``writing_stdout``).

Python's own Ctrl-C raised KeyboardInterrupt wherever the main thread was, so the files the workers
finished while the sort stopped were moved but never reported (no line, no ``--json`` record, no
summary); and SIGTERM (`kill`, `timeout`, a logout) ended the process at once, between a move's
link and its unlink, leaving the file in both places until the next recovery.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType

from facesortd.interrupts import Stopped
from facesortd.progress import to_null

STOPPING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C, `kill`, and the terminal closed (a logout, an SSH connection dropped): SIGHUP, left to its
default, ended `sort` at once, a file between its move's link and unlink left in two places."""


@dataclass
class StopRequest:
    """The signal that asked this command to stop (None: none did); a second one ends it at once."""

    signum: int | None = None
    output_lost: str = ""
    """Why stdout could not take a line other than its reader gone (its file's disk full): said at
    the end, exit 1."""

    def __call__(self) -> bool:
        return self.signum is not None

    def exit_status(self) -> int:
        """The shell's convention, 128 + the signal: 130 for Ctrl-C (also when no signal came, but a
        tool raised KeyboardInterrupt), 143 for SIGTERM, 129 for SIGHUP."""
        return 128 + (self.signum or signal.SIGINT)

    def reader_left(self) -> None:
        """stdout's reader is gone (`sort --json | head -1`): stop as SIGPIPE would (exit 141), what
        is still said on stdout going nowhere. The print that met it ended the sort there, without
        a word of the files the workers placed meanwhile, nor of those left."""
        quiet_stdout()
        if self.signum is None:
            self.signum = signal.SIGPIPE

    def output_failed(self, failed: StdoutFailed) -> None:
        """stdout could not take a line: stop as for a reader gone, the files under way finished and
        counted. Its file's disk full (`sort --json > FILE`) ended the sort in a traceback there,
        the files the workers placed meanwhile unsaid."""
        if not reader_gone(failed.error):
            self.output_lost = str(failed)
        self.reader_left()

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        # Asked twice: the person wants it ended now. A reader gone is no asking: the terminal closed
        # fails stdout's writes and sends SIGHUP, in either order, and it stops once, 129.
        if self.signum not in (None, signal.SIGPIPE):
            raise KeyboardInterrupt
        self.signum = signum


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """The signals of STOPPING noted in a :class:`StopRequest` while inside (SIGHUP unless ignored),
    the old handlers after. Off the main thread (a command run by a test, or by a program, in a
    thread of its own) Python delivers no signal and takes no handler: nothing is noted there."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    # `nohup facesortd sort DIR &` ignores SIGHUP, to sort on once the terminal is closed: kept so
    nohup = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    noted = [sig for sig in STOPPING if not (nohup and sig == signal.SIGHUP)]
    before = {sig: signal.signal(sig, request._note) for sig in noted}
    try:
        yield request
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


class StdoutFailed(Exception):
    """stdout could not take what the command printed: its reader gone (``reader_gone``), or the file
    it is redirected to on a full disk (`facesortd status > /full/disk/file`), which ended in a
    traceback, and again at the interpreter's exit for what stayed buffered."""

    def __init__(self, error: OSError, where: str, outcome: str = "") -> None:
        cut = f"cannot write the output to {where} ({error.strerror or error}): it is cut short"
        super().__init__(f"{cut}; {outcome}" if outcome else cut)
        self.error = error
        self.where = where


class InterruptedAfter(Stopped):
    """Ctrl-C (or SIGTERM, SIGHUP: ``signum``) once a command had done part of what it was asked, with
    what stands (``outcome``) for the line that says it was interrupted: after `train` had written its
    model, a bare "interrupted" read as nothing done, while the model was written (and in force, or not)."""

    def __init__(self, outcome: str, signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.outcome = outcome


@dataclass
class Finishing:
    """What a command inside :func:`finishing` did, said after a failure of stdout (``outcome``)."""

    outcome: str = ""
    failed: StdoutFailed | None = None


_FINISHING: ContextVar[Finishing | None] = ContextVar("finishing", default=None)


@contextmanager
def finishing() -> Iterator[Finishing]:
    """A change a command was asked to make (a model put in force) made whole whatever befalls stdout
    meanwhile, the failure raised after it with the ``outcome`` the command set (stdout's words lost
    with it). Stopped at the output's failure, `train --activate` left its model written and not in
    force, and `model use` failing at its "waiting" line changed nothing, each said "cut short" only.
    stdout is flushed inside, so that what stays buffered fails here, said with the outcome too."""
    state = Finishing()
    token = _FINISHING.set(state)
    try:
        yield state
        say("", end="", flush=True)
    finally:
        _FINISHING.reset(token)
    if state.failed is not None:
        raise StdoutFailed(state.failed.error, state.failed.where, state.outcome)


@contextmanager
def writing_stdout() -> Iterator[None]:
    """What fails writing to stdout inside raises :class:`StdoutFailed`, stdout sent to /dev/null
    (``quiet_stdout``) so that nothing still buffered fails again. Only writes go inside: an OSError of
    a file (EIO of a drive) is no failure of stdout."""
    try:
        yield
    except OSError as exc:
        where = _stdout_name()
        quiet_stdout()
        raise StdoutFailed(exc, where) from None


def say(text: str, end: str = "\n", flush: bool = False) -> None:
    """``text`` on stdout (``print``), a failure raised as :class:`StdoutFailed` (noted, inside
    :func:`finishing`): every command's output goes through here, or a full disk or a terminal gone
    mid-output was a traceback."""
    try:
        with writing_stdout():
            print(text, end=end, flush=flush)
    except StdoutFailed as failed:
        state = _FINISHING.get()
        if state is None:
            raise
        state.failed = state.failed or failed


def _stdout_name() -> str:
    """The file stdout is redirected to, for the message; "stdout" for a terminal, a pipe, a test's."""
    try:
        name = os.readlink(f"/proc/self/fd/{sys.stdout.fileno()}")
    except (OSError, ValueError, AttributeError):
        return "stdout"
    return name if name.startswith("/") else "stdout"


def quiet_stdout() -> None:
    """stdout sent to /dev/null: its reader left (``progress.to_null``)."""
    to_null(sys.stdout)


def reader_gone(exc: OSError) -> bool:
    """Whether a write to stdout failed because no one reads it any more: a pipe's reader that left
    (`| head`), or its terminal closed (EIO: an SSH connection dropped)."""
    return isinstance(exc, BrokenPipeError) or exc.errno == errno.EIO
