"""argparse value types with bounds.

A bad number (or a file where a folder is to be written, and the reverse, or a file not of the kind
a command replaces) is refused at once with a usage message naming the option, instead of surfacing
as an OpenCV assertion, nonsense figures or a traceback after minutes of loading data.
"""

from __future__ import annotations

import argparse
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

from facesortd.mounts import nearest_existing


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


def cannot_write(folder: Path) -> str | None:
    """Why no file can be made in ``folder`` (or, missing, in the folder it would be made in), None
    if one can. Asked before the work: a read-only or another user's folder was an OSError
    traceback once `train`'s minutes were done, its model lost."""
    where = nearest_existing(folder)
    if not where.is_dir():  # `--report shot.png/figures`: a NotADirectoryError traceback, after the work
        return f"{where} is a file, not a folder"
    if os.access(where, os.W_OK | os.X_OK):
        return None
    if os.statvfs(where).f_flag & os.ST_RDONLY:
        return f"{where} is on a read-only filesystem"
    return f"you may not write into {where} (chmod u+rwx '{where}', or name a folder of yours)"


def named_folder(text: str) -> Path:
    """A folder named (``--library``): an empty name, `--library "$LIB"` with the variable unset, was
    the current folder, which `sort` then sorted into and `undo` trusted every move inside of."""
    return _not_empty(text, "the folder")


def named_path(text: str) -> Path:
    """A file or folder named (`sort PATH`): an empty name, `sort "$SHOTS"` with the variable unset,
    was the current folder, whose pictures `sort` then moved into the library."""
    return _not_empty(text, "the file or folder")


def _not_empty(text: str, what: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty name: name {what}")
    return Path(text)


def folder_to_write(text: str) -> Path:
    """A folder the command writes into (made if missing). A file in its place is refused here, not
    with a traceback once minutes of training are done and the figures are due; so is a folder
    that takes no file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder: name a folder (made if missing)")
    if why := cannot_write(path):
        raise argparse.ArgumentTypeError(f"cannot write into {text}: {why}")
    return path


def file_to_replace(kind: str, recognised: Callable[[Path], bool]) -> Callable[[str], Path]:
    """A file the command writes, replaced whole if it is already a ``kind`` (``recognised``: a
    retrain to the same name). Any other file there (a screenshot, a note: a typo away) is refused
    here, before the work, rather than overwritten after it; so is a folder."""

    def parse(text: str) -> Path:
        path = Path(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder: name the file to write")
        if path.exists() and not (path.is_file() and recognised(path)):
            raise argparse.ArgumentTypeError(
                f"{text} exists and is not a {kind}, so it is not replaced: name another file"
            )
        if why := cannot_write(path.parent):
            raise argparse.ArgumentTypeError(f"cannot write {text}: {why}")
        return path

    return parse


def read_by(load: Callable[[Path], object], error: type[Exception]) -> Callable[[Path], bool]:
    """What :func:`file_to_replace` recognises for an array file facesortd writes: a .npz archive
    (np.load reads a bare .npy too, which none of them is) that ``load`` reads without ``error``."""

    def recognised(path: Path) -> bool:
        if not zipfile.is_zipfile(path):
            return False
        try:
            load(path)
        except error:
            return False
        return True

    return recognised
