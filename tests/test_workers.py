"""Work spread over threads: every result in input order, and no tool used by two threads at once."""

from __future__ import annotations

import threading

from waiting import wait_until

from facesortd.workers import in_order


class _Tool:
    """Records whether two threads ever held it at once."""

    def __init__(self) -> None:
        self.holders = 0
        self.shared = False
        self.lock = threading.Lock()


def test_results_come_in_input_order_and_each_tool_serves_one_thread_at_a_time() -> None:
    tools = [_Tool(), _Tool()]
    both_busy = threading.Event()
    busy = [0]
    count = threading.Lock()

    def work(tool: _Tool, k: int) -> int:
        with tool.lock:
            tool.holders += 1
            tool.shared |= tool.holders > 1
        with count:
            busy[0] += 1
            if busy[0] == 2:
                both_busy.set()
        if k == 0:  # the first task finishes last: later results must wait for it
            wait_until(both_busy.is_set)
        with count:
            busy[0] -= 1
        with tool.lock:
            tool.holders -= 1
        return k * k

    assert list(in_order(work, range(40), tools)) == [k * k for k in range(40)]
    assert both_busy.is_set() and not any(t.shared for t in tools)


def test_one_tool_runs_on_the_calling_thread() -> None:
    caller = threading.get_ident()
    assert list(in_order(lambda _t, k: (k, threading.get_ident()), [1, 2], [None])) == [
        (1, caller),
        (2, caller),
    ]
