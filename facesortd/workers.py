"""Work spread over a few threads, each holding one tool at a time, with results in input order.

OpenCV's detectors are not safe to share between threads, but they release the interpreter while
they scan: one detector per thread lets every core scan. `sort` lends one pipeline per worker this
way, its files handed out by ``in_order_until``, which stops between files when asked; `train` and
`eval` lend one detector per thread to read and frame their faces.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Generic, TypeVar

Tool = TypeVar("Tool")
Arg = TypeVar("Arg")
Result = TypeVar("Result")


class Lender(Generic[Tool]):
    """Tools lent out one task at a time, so no two threads ever use the same one."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._free: queue.SimpleQueue[Tool] = queue.SimpleQueue()
        for tool in tools:
            self._free.put(tool)

    @contextmanager
    def borrow(self) -> Iterator[Tool]:
        tool = self._free.get()
        try:
            yield tool
        finally:
            self._free.put(tool)


def in_order(
    fn: Callable[[Tool, Arg], Result], args: Sequence[Arg], tools: Sequence[Tool]
) -> Iterator[Result]:
    """``fn(tool, arg)`` for every arg, on one thread per tool; results in the order of ``args``,
    each as soon as it and those before it are done. One tool: no thread at all."""
    if len(tools) == 1:
        yield from (fn(tools[0], arg) for arg in args)
        return
    lender = Lender(tools)

    def run(arg: Arg) -> Result:
        with lender.borrow() as tool:
            return fn(tool, arg)

    pool = ThreadPoolExecutor(len(tools), thread_name_prefix="worker")
    try:
        yield from pool.map(run, args)
    finally:
        pool.shutdown(cancel_futures=True)


STOP_CHECK_S = 0.1
"""How often a wait for the next result looks whether it was asked to stop."""

_STOPPED = object()


def in_order_until(
    fn: Callable[[Arg], Result], args: Iterable[Arg], workers: int, stopped: Callable[[], bool]
) -> Iterator[tuple[Arg, Result]]:
    """``(arg, fn(arg))`` in the order of ``args``, ``fn`` run on ``workers`` threads; once
    ``stopped()`` (or ``fn`` raised KeyboardInterrupt), nothing more is started, and what was is
    finished and yielded too: a file in the middle of its move ends it and is reported.

    Only a few tasks are handed out ahead of the one awaited, so a sort of 100,000 files holds a
    few futures and their results, not 100,000 of them, and a stop has little to cancel.
    """
    pending: deque[tuple[Arg, Future[Result]]] = deque()
    todo = iter(args)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="worker")
    try:
        while not stopped():
            for arg in islice(todo, 4 * workers - len(pending)):
                pending.append((arg, pool.submit(fn, arg)))
            if not pending:
                return
            result = _result_unless(pending[0][1], stopped)
            if result is _STOPPED:
                break
            yield pending.popleft()[0], result  # type: ignore[misc]
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)  # what started finishes (a move is journaled), the rest never starts
        yield from ((a, f.result()) for a, f in pending if not f.cancelled() and f.exception() is None)
    finally:
        pool.shutdown(cancel_futures=True)


def _result_unless(future: Future[Result], stopped: Callable[[], bool]) -> Result | object:
    """The future's result, or ``_STOPPED`` as soon as ``stopped()`` or the task was interrupted."""
    while not stopped():
        try:
            return future.result(timeout=STOP_CHECK_S)
        except TimeoutError:
            continue
        except KeyboardInterrupt:
            if not future.done():  # a second Ctrl-C, here in the waiting thread: end now
                raise
            break  # the task's own (what Ctrl-C raises in a single-threaded tool)
    return _STOPPED
