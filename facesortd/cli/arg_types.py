"""argparse value types with bounds.

A bad number (or a file where a folder is to be written, and the reverse) is refused at once with a
usage message naming the option, instead of surfacing as an OpenCV assertion, nonsense figures or a
traceback after minutes of loading data.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def _number(kind: type[int] | type[float], text: str) -> float:
    try:
        return kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None


def int_at_least(minimum: int) -> Callable[[str], int]:
    """A whole number >= ``minimum``."""

    def parse(text: str) -> int:
        value = int(_number(int, text))
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def int_between(low: int, high: int) -> Callable[[str], int]:
    """A whole number in [low, high]."""
    at_least = int_at_least(low)

    def parse(text: str) -> int:
        value = at_least(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


def number_between(low: float, high: float) -> Callable[[str], float]:
    """A number in [low, high]."""

    def parse(text: str) -> float:
        value = _number(float, text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {value:g}")
        return value

    return parse


def folder_to_write(text: str) -> Path:
    """A folder the command writes into (made if missing). A file in its place is refused here, not
    with a traceback once minutes of training are done and the figures are due."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder: name a folder (made if missing)")
    return path


def file_to_write(text: str) -> Path:
    """A file the command writes (replaced whole if there). A folder in its place is refused here,
    not once the work it is for is done."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: name the file to write")
    return path
