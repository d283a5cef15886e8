"""The files a command is named (`sort`, `detect`): folders opened as the daemon would pick from
them, a typo or a folder of no image refused before any work, each file once."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from loguru import logger

from facesortd.advice import advised
from facesortd.cli.common import UsageError
from facesortd.config import WatchSettings
from facesortd.watch import scan, wanted


def expand_inputs(
    paths: Iterable[Path],
    watch: WatchSettings,
    *,
    inbox: Path | None = None,
    sorted_from: Callable[[Path], int] | None = None,
) -> list[Path]:
    """Files named directly, plus the files directly inside named folders that the daemon would sort
    (``watch.extensions``, not ``watch.ignore``): `sort DIR` and the daemon pick the same files; the
    ``inbox`` (bare `sort`, or named) has its sub-folders taken too where the daemon does
    (``watch.recursive``).

    A name that does not exist is a typo, refused before anything moves (not "skipped", exit 0);
    so is one this user may not get at (a folder they may not list, or a file in a folder they may
    not enter), with the fix instead of a traceback; and so is a folder holding no image when that
    leaves nothing to do (the wrong folder named, most likely: `detect` printed nothing at all).
    Not the ``inbox``, bare or named: nothing waiting there is its normal state (the daemon took it).
    Nor a folder ``sorted_from`` says files were sorted out of: `sort FOLDER` run again once all
    was sorted (to finish what a Ctrl-C left, say) was refused as the wrong folder named, exit 2.
    A file named directly is taken whatever its name: the sorter says why it leaves one of no image
    name, or of a name ``watch.ignore`` leaves alone, where it is (dropped here, it would be skipped
    without a word). A file named twice is once.
    """
    out: list[Path] = []
    imageless: list[Path] = []
    for p in paths:
        is_inbox = inbox is not None and os.path.realpath(p) == os.path.realpath(inbox)
        try:
            if not p.exists() and not p.is_symlink():
                raise UsageError(f"{p}: no such file or folder")
            if not p.is_dir():
                out.append(p)
                continue
            children = sorted(c for c in p.iterdir() if not c.name.startswith("."))
            # Anything of an image name but a folder is handed on for the sorter to say it skipped
            # (a symbolic link, whatever it leads to; a FIFO, socket or device): a broken or looping
            # link, and a FIFO, were passed over without a word while a working link, or either
            # named alone, was said skipped.
            images = [c for c in children if (c.is_symlink() or not c.is_dir()) and wanted(c, watch)]
            folders = [c for c in children if c.is_dir()]
        except PermissionError as exc:
            raise UsageError(
                f"{p}: cannot get at it ({exc.strerror}): give yourself access to it and the "
                "folders it is in (chmod u+rx)"
            ) from exc
        out.extend(images)
        if not images and not is_inbox:
            imageless.append(p)
        if is_inbox and watch.recursive:  # the daemon's rule: what waits in the sub-folders is sorted too
            out.extend(sorted(f for f in scan(p, watch) if f.parent != p))
            continue
        for folder in folders:
            logger.warning(
                "{}: a folder inside {}; not sorted (name it to sort it: {})",
                folder,
                p,
                advised("sort", "FOLDER"),
            )
    for folder in imageless:
        if sorted_from and (before := sorted_from(folder)):
            logger.info("nothing left to sort in {}: {} file(s) were sorted out of it before", folder, before)
            continue
        problem = (
            f"no images in {folder}: only the files directly inside a folder whose names end in "
            f"{', '.join(watch.extensions)} (watch.extensions) are taken"
        )
        if not out:
            raise UsageError(problem)
        logger.warning(problem)
    return _each_once(out)


def _each_once(paths: list[Path]) -> list[Path]:
    """Each file at its first mention only: `sort ~/screens/* ~/screens` (or ``a.png ./a.png``) names
    every file twice, and the second look found it gone, said "moved by a person, the daemon or
    another `facesortd sort`", and a dry run planned it twice. Folders are compared as they
    really are (``..``, a symbolic link to a folder); a file's own name is not followed."""
    real: dict[Path, str] = {}
    seen: set[tuple[str, str]] = set()
    once = []
    for path in paths:
        folder = real.setdefault(path.parent, os.path.realpath(path.parent))
        if (folder, path.name) not in seen:
            seen.add((folder, path.name))
            once.append(path)
    return once
