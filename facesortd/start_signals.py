"""Signals the daemon takes that come while a command starts: held from the command line's first line,
before its imports (OpenCV, numpy: about a second), until `run`'s daemon takes them up
(``hand_over``) or any other command gives them back (``give_back``).

SIGUSR1 and SIGUSR2 (logged and ignored by a running daemon), SIGPWR and SIGTERM (a clean stop) and
SIGHUP (a stop that systemd restarts) killed a daemon still starting, whose own handlers
(``service.Service``) were not installed yet: systemd saw a death by a signal, a logrotate rule's
SIGUSR1 at boot took the daemon down, and a SIGHUP, a death systemd counts as clean, left it down. Any
other command is ended by one as before, once its imports are done and before it does anything.

Only the standard library is imported here: this runs before everything else.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

HELD = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGPWR, signal.SIGTERM, signal.SIGHUP)

_came: list[int] = []
_held: list[int] = []


def hold() -> None:
    """Each signal of HELD noted rather than acted on, while its disposition is the default: one that
    whoever started the process ignores (or a program's own handler) stays as it is. Only the main
    thread takes signals (a command run in a thread of its own holds nothing)."""
    if _held or threading.current_thread() is not threading.main_thread():
        return
    for sig in HELD:
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _note)
            _held.append(sig)


def _note(signum: int, _frame: FrameType | None) -> None:
    _came.append(signum)


def hand_over() -> list[int]:
    """The signals that came while held, oldest first, for the daemon to act on: called once it has
    installed its own handlers, so that none falls between the two."""
    _held.clear()
    came = _came[:]
    _came.clear()
    return came


def give_back() -> None:
    """The default dispositions back, and each signal that came while held acted on now as it would
    have been then (the process ended by it): no command other than `run` behaves otherwise."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in _held:
        signal.signal(sig, signal.SIG_DFL)
    for sig in hand_over():
        signal.raise_signal(sig)
