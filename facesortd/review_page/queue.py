"""The quarantine as a review queue: which files, in what order, addressed by ids we hand out.

The browser never names a path: it names an id from the last listing, which the server maps back
to a file it found itself inside ``<library>/_quarantine/``. An id is derived from the file's
device, inode, size and modification time, so it survives facesortd's own moves (a hard link keeps
all four, so a decision undone gets its thumbnail back) and changes when the content does.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from facesortd.durable import unwritten
from facesortd.image_names import is_image_name
from facesortd.quarantine import QUARANTINE_DIR, QUARANTINE_REASONS, outside_library
from facesortd.refusals import OnceLister, Refused

FIRST_REASONS = ("unsure", "no-face", "mixed")
"""Reviewed first: unsure files have a guess to accept, no-face ones are the next most often usable."""


def reason_order(reasons: Collection[str]) -> list[str]:
    """Quarantine folders in review order: FIRST_REASONS, the other known reasons, then any other folder."""
    known = [*FIRST_REASONS, *(r for r in QUARANTINE_REASONS if r not in FIRST_REASONS)]
    return [r for r in known if r in reasons] + sorted(set(reasons) - set(known))


def item_id(st: os.stat_result) -> str:
    key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Item:
    """One quarantined file as the page knows it."""

    id: str
    path: Path
    reason: str
    arrived: float
    """When it came into quarantine (ctime: a move sets it), for newest first."""
    unwritten: tuple[int, int, int] = (0, 0, 0)
    """Its ``durable.unwritten`` as listed: the file under its listed name is still the one listed
    if that holds when its inode number changed (FUSE renumbering: every label given on the page to
    a library on such a drive was "no such file in the quarantine (any more); reload")."""

    def to_json(self, dismissed: bool) -> dict[str, object]:
        return {"id": self.id, "name": self.path.name, "reason": self.reason, "dismissed": dismissed}


def lister() -> OnceLister:
    """What the page lists the quarantine with: it lists it at every request, so a folder it may
    not list is said once (the same warning at each request filled the log)."""
    return OnceLister(lambda exc: logger.warning("review page: {}; its files are not shown until then", exc))


def scan(library: Path, dismissed: Collection[str], listed: OnceLister | None = None) -> list[Item]:
    """Every image file in the quarantine folders, in review order: by reason (FIRST_REASONS first),
    newest first within a reason; files marked "no usable face" after all others.

    One directory listing and one stat per file, so a quarantine of 10,000 files is listed in tens
    of milliseconds and can be listed anew for every page (always current, nothing to invalidate).
    ``listed`` remembers what was said about folders it may not list (the page keeps one).
    """
    quarantine = library / QUARANTINE_DIR
    if not quarantine.is_dir():
        return []
    listed = listed or lister()
    if outside := outside_library(library):
        fix = f"only files in the library are shown: make {quarantine} a folder of the library again"
        listed.refuse(quarantine, Refused(outside, f"cannot show {quarantine}", fix))
        return []
    folders = {e.name: Path(e.path) for e in listed.entries(quarantine) if e.is_dir(follow_symlinks=False)}
    items: list[Item] = []
    for reason in reason_order(folders):
        found = []
        for entry in listed.entries(folders[reason]):
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            path = Path(entry.path)
            if is_image_name(path):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:  # moved on since the listing (the daemon re-examining it)
                    continue
                found.append(Item(item_id(st), path, reason, st.st_ctime, unwritten(st)))
        found.sort(key=lambda i: (-i.arrived, i.path.name))
        items.extend(found)
    return [i for i in items if i.id not in dismissed] + [i for i in items if i.id in dismissed]


def current(item: Item, library: Path) -> Item | None:
    """``item`` if its file is still the one listed and still in the quarantine, else None.

    Checked before every thumbnail and every move: only files inside the library's quarantine are
    ever read or moved, whatever the browser sends.
    """
    if outside_library(library):
        return None
    quarantine = (library / QUARANTINE_DIR).resolve()
    try:
        st = item.path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or (item_id(st) != item.id and unwritten(st) != item.unwritten):
        return None
    if item.path.parent.resolve().parent != quarantine:
        return None
    return item
