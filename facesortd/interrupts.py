"""Ctrl-C, SIGTERM and SIGHUP in a command that writes models (`train`, `retrain`, `model use`):
taken alike (``like_ctrl_c``), and never acted on inside a step that must be whole (``whole``).

SIGTERM (`kill`, `timeout`) and SIGHUP (the terminal closed), left to their default, ended `train`
at once and without a word: between its model file and the validation set beside it, or once the
model was written and before `--activate` put it in force, nothing said where the model stood. Ctrl-C
(a KeyboardInterrupt wherever the main thread was) cut the same steps, with a bare "interrupted".

Only the main thread takes signals: off it (a command a program runs in a thread of its own) both
do nothing. Only the standard library is imported: the daemon's and the CLI's modules import this.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

TAKEN = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP taken as Ctrl-C is (``signum``: SIGINT for Ctrl-C itself): the command ends
    where it is, as after Ctrl-C, with the shell's exit status for the signal (128 + it)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stopped_by(interrupt: KeyboardInterrupt) -> int:
    """The signal behind ``interrupt``: SIGINT for Python's own KeyboardInterrupt."""
    return interrupt.signum if isinstance(interrupt, Stopped) else signal.SIGINT


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """The shell's convention, 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + stopped_by(interrupt)


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Stopped` while inside, as Ctrl-C raises KeyboardInterrupt; the
    dispositions before are put back after. One ignored (`nohup facesortd train ...`, to train on once
    the terminal is closed) or handled by the program stays as it is."""
    if not _main_thread():
        yield
        return
    taken = [sig for sig in TAKEN if sig != signal.SIGINT and signal.getsignal(sig) == signal.SIG_DFL]
    before = {sig: signal.signal(sig, _stop) for sig in taken}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


_HOLDABLE = (signal.SIG_DFL, signal.default_int_handler, _stop)
"""The dispositions ``whole`` holds: a signal's default, Python's Ctrl-C, ``like_ctrl_c``'s. Not an
ignored signal's, nor a program's own handler (the daemon's: noted, for its loop to act on)."""


@contextmanager
def whole() -> Iterator[None]:
    """A short step that must be whole (a model file and its validation set written, the model in force
    changed): a signal of TAKEN that comes meanwhile is noted, and acted on once the step is done, as
    it would have been when it came (KeyboardInterrupt raised, or the process ended by it). A step
    that fails raises its own error, which says more than the signal would."""
    if not _main_thread():
        yield
        return
    came: list[int] = []
    held: dict[int, Callable[[int, FrameType | None], object] | int] = {}
    for sig in TAKEN:
        handler = signal.getsignal(sig)
        if handler in _HOLDABLE:
            held[sig] = handler
            signal.signal(sig, lambda signum, _frame: came.append(signum))
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
    if came:
        handler = held[came[0]]
        if callable(handler):
            handler(came[0], None)
        else:
            signal.raise_signal(came[0])
