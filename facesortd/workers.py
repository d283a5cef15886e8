"""Work spread over a few threads, each holding one tool at a time, with results in input order.

OpenCV's detectors are not safe to share between threads, but they release the interpreter while
they scan: one detector per thread lets every core scan. `sort` lends one pipeline per worker this
way; `train` and `eval` lend one detector per thread to read and frame their faces.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
