"""The daemon's calls made later, from one thread."""

from __future__ import annotations

from waiting import log_lines, wait_until

from facesortd.timers import Timers


def test_calls_come_in_time_order_a_cancelled_one_never_and_one_that_raises_stops_none() -> None:
    timers, made = Timers(), []

    def fails() -> None:
        raise ValueError("ours")

    with log_lines("ERROR") as lines:
        timers.later(0.2, lambda: made.append("last"))
        timers.later(0.0, fails)
        timers.later(0.1, lambda: made.append("second"))
        timers.later(0.05, lambda: made.append("never")).cancel()
        timers.later(0.0, lambda: made.append("first"))
        wait_until(lambda: "last" in made)
    assert made == ["first", "second", "last"]
    assert [line.splitlines()[0] for line in lines] == ["ERROR a call made later failed"]
    assert "ValueError: ours" in lines[0]
    timers.stop()


def test_once_stopped_no_call_is_made_and_the_thread_ends() -> None:
    timers, made = Timers(), []
    timers.later(0.0, lambda: made.append("before"))
    wait_until(lambda: made)
    thread = timers._thread
    assert thread is not None
    timers.later(0.05, lambda: made.append("due after the stop"))
    timers.stop()
    thread.join(timeout=5)
    timers.later(0.0, lambda: made.append("asked after the stop"))
    assert not thread.is_alive() and made == ["before"]
