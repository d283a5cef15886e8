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

from facesortd.durable import Refused, list_folder
from facesortd.image_names import is_image_name
from facesortd.quarantine import QUARANTINE_DIR, QUARANTINE_REASONS

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

    def to_json(self, dismissed: bool) -> dict[str, object]:
        return {"id": self.id, "name": self.path.name, "reason": self.reason, "dismissed": dismissed}


class Lister:
    """Lists quarantine folders for the page, saying once per folder that it may not be listed.

    The page lists the quarantine at every request: the same warning at each one filled the log.
    It is said again if the reason changes, or if the folder could be listed meanwhile and then
    could not again.
    """

    def __init__(self) -> None:
        self._said: dict[Path, str] = {}

    def entries(self, folder: Path) -> list[os.DirEntry[str]]:
        """``folder``'s entries; none if this user may not list it (said in the log with the fix):
        one such folder must not take the page, or the other folders' files, down with it."""
        try:
            found = list_folder(folder)
        except Refused as exc:
            if self._said.get(folder) != str(exc):
                self._said[folder] = str(exc)
                logger.warning("review page: {}; its files are not shown until then", exc)
            return []
        self._said.pop(folder, None)
        return found


def scan(library: Path, dismissed: Collection[str], lister: Lister | None = None) -> list[Item]:
    """Every image file in the quarantine folders, in review order: by reason (FIRST_REASONS first),
    newest first within a reason; files marked "no usable face" after all others.

    One directory listing and one stat per file, so a quarantine of 10,000 files is listed in tens
    of milliseconds and can be listed anew for every page (always current, nothing to invalidate).
    ``lister`` remembers what was said about folders it may not list (the page keeps one).
    """
    quarantine = library / QUARANTINE_DIR
    if not quarantine.is_dir():
        return []
    lister = lister or Lister()
    folders = {e.name: Path(e.path) for e in lister.entries(quarantine) if e.is_dir(follow_symlinks=False)}
    items: list[Item] = []
    for reason in reason_order(folders):
        found = []
        for entry in lister.entries(folders[reason]):
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            path = Path(entry.path)
            if is_image_name(path):
                st = entry.stat(follow_symlinks=False)
                found.append(Item(item_id(st), path, reason, st.st_ctime))
        found.sort(key=lambda i: (-i.arrived, i.path.name))
        items.extend(found)
    return [i for i in items if i.id not in dismissed] + [i for i in items if i.id in dismissed]


def current(item: Item, library: Path) -> Item | None:
    """``item`` if its file is still the one listed and still in the quarantine, else None.

    Checked before every thumbnail and every move: only files inside the library's quarantine are
    ever read or moved, whatever the browser sends.
    """
    quarantine = (library / QUARANTINE_DIR).resolve()
    try:
        st = item.path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or item_id(st) != item.id:
        return None
    if item.path.parent.resolve().parent != quarantine:
        return None
    return item
