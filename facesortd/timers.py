"""Calls made later, all from one thread: the daemon's retries and looks again at a file.

A ``threading.Timer`` per waiting file was a thread per file: thousands of empty files dropped at
once (each looked at again once its writer may be done), or a backlog failing on a full disk (each
retried later), took thousands of threads, and under a limit on tasks (systemd's ``TasksMax``) "can't
start new thread" killed a worker and, with it, the daemon, restarted into the same backlog.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from loguru import logger


class Call:
    """One call to be made; ``cancel`` before its time and it is not made."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """Makes each call at its time (by the monotonic clock), one after another, from one daemon thread
    started with the first call, until ``stop``. A call that raises is logged and the others go on."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Call]] = []
        self._order = itertools.count()
        """Ties go in the order the calls were asked for (and a Call is never compared)."""
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def later(self, delay: float, fn: Callable[[], None]) -> Call:
        """Call ``fn`` in ``delay`` seconds (never, once stopped)."""
        call = Call(fn)
        with self._changed:
            if self._stopped:
                call.cancel()
                return call
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), call))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="timers", daemon=True)
                self._thread.start()
            self._changed.notify()
        return call

    def stop(self) -> None:
        """No call is made from now on (one being made finishes); the thread ends."""
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopped and (
                    not self._due or (wait := self._due[0][0] - time.monotonic()) > 0
                ):
                    self._changed.wait(None if not self._due else wait)
                if self._stopped:
                    return
                call = heapq.heappop(self._due)[2]
            if call.cancelled:
                continue
            try:
                call.fn()
            except Exception:  # one call's error must not end every later call
                logger.exception("a call made later failed")
