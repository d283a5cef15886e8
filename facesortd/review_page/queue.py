"""The quarantine as a review queue: which files, in what order, addressed by ids we hand out.

The browser never names a path: it names an id from the last listing, which the server maps back
to a file it found itself inside ``<library>/_quarantine/``. An id is derived from the file's
place in the quarantine and its device, size and modification time (``durable.unwritten``), so it
survives facesortd's own moves (a decision undone gets its thumbnail back) and FUSE numbering the
file anew, and changes when the content is written with a clock that shows it. What the page showed
of each file is known by its content (``Contents``), and a decision is only about that content.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from loguru import logger

from facesortd.content import content_id
from facesortd.durable import time_may_hide_a_write, unwritten
from facesortd.image_names import is_image_name
from facesortd.placement import looks_unchanged, still_holds
from facesortd.quarantine import QUARANTINE_DIR, QUARANTINE_REASONS, outside_library
from facesortd.refusals import OnceLister, Refused

FIRST_REASONS = ("unsure", "no-face", "mixed")
"""Reviewed first: unsure files have a guess to accept, no-face ones are the next most often usable."""


def reason_order(reasons: Collection[str]) -> list[str]:
    """Quarantine folders in review order: FIRST_REASONS, the other known reasons, then any other folder."""
    known = [*FIRST_REASONS, *(r for r in QUARANTINE_REASONS if r not in FIRST_REASONS)]
    return [r for r in known if r in reasons] + sorted(set(reasons) - set(known))


def item_id(st: os.stat_result, path: Path) -> str:
    """The id of the file ``path`` (its lstat ``st``) in ``<library>/_quarantine/<reason>/``: the
    inode number is left out, as FUSE filesystems (exfat-fuse, fusefat) number a file anew whenever
    the kernel drops it from its cache, which made its "no usable face" mark and its thumbnails go."""
    key = os.fsencode(f"{path.parent.name}/{path.name}") + b":%d:%d:%d" % unwritten(st)
    return hashlib.sha256(key).hexdigest()[:24]


class Mark(NamedTuple):
    """A "no usable face" mark: the content it was given to, and ``placement.inode_change`` of the
    file then (None in marks written before 2026-12-03)."""

    content: str
    inode: tuple[int, int] | None = None


@dataclass(frozen=True)
class Item:
    """One quarantined file as the page knows it."""

    id: str
    path: Path
    reason: str
    seen: os.stat_result
    """Its lstat when it was listed."""
    dismissed: bool = False
    """Marked "no usable face" when it was listed (:func:`is_dismissed`)."""

    @property
    def arrived(self) -> float:
        """When it came into quarantine (ctime: a move sets it), for newest first."""
        return self.seen.st_ctime

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.path.name, "reason": self.reason, "dismissed": self.dismissed}


def lister() -> OnceLister:
    """What the page lists the quarantine with: it lists it at every request, so a folder it may
    not list is said once (the same warning at each request filled the log)."""
    return OnceLister(lambda exc: logger.warning("review page: {}; its files are not shown until then", exc))


def scan(library: Path, dismissed: Mapping[str, Mark], listed: OnceLister | None = None) -> list[Item]:
    """Every image file in the quarantine folders, in review order: by reason (FIRST_REASONS first),
    newest first within a reason; files marked "no usable face" after all others (``dismissed``:
    the content each mark was given to, by id; a mark is kept only by a file that still holds it).

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
                found.append(Item(item_id(st, path), path, reason, st))
        found.sort(key=lambda i: (-i.arrived, i.path.name))
        items.extend(found)
    marked = [replace(i, dismissed=True) for i in items if is_dismissed(i, dismissed)]
    ids = {i.id for i in marked}
    return [i for i in items if i.id not in ids] + marked


def is_dismissed(item: Item, dismissed: Mapping[str, Mark]) -> bool:
    """Is ``item`` the content marked "no usable face" under its id? Another file put under its
    name with the same size and time is not, where the time or the inode's change shows a write."""
    mark = dismissed.get(item.id)  # the id holds the size and time it had when marked
    seen = unwritten(item.seen)
    return mark is not None and looks_unchanged(item.path, item.seen, seen, mark.inode, mark.content)


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
    if not stat.S_ISREG(st.st_mode) or item_id(st, item.path) != item.id:
        return None
    if item.path.parent.resolve().parent != quarantine:
        return None
    return item


class Changed(Exception):
    """The file under a listed name no longer holds what the page showed of it."""


def content_tag(digest: str) -> str:
    """The short name of a content (``Contents``) the cache files what it made of it under, and a tab
    of the page names what it shows by: the full SHA-256 is not needed to tell one picture from the
    next under the same name."""
    return hashlib.sha256(digest.encode()).hexdigest()[:16]


class Contents:
    """What the page showed of each file (its content's SHA-256 and the lstat it was taken with), so
    that a decision is given to that content and no other.

    A label posted for a file was given to the file under its listed name if its name, size and time
    were unchanged: another file put there with the same size and time (a re-download keeping the
    server's time, a tool saving a same-size file within FAT's 2-s tick) took the label of a picture
    the person never saw, and trained the model. Safe to call from the server's threads.
    """

    def __init__(self) -> None:
        self._shown: dict[str, tuple[str, os.stat_result]] = {}
        self._lock = threading.Lock()

    def show(self, item: Item) -> str:
        """The content ``item``'s file holds, as the page is about to show it: what it showed before,
        if the file still holds it, else what it holds now. OSError if it cannot be read, Changed
        if it is no longer the file listed."""
        try:
            return self.shown(item)[0]
        except Changed:
            pass
        st = _as_listed(item)
        digest = content_id(item.path)  # a write meanwhile sets a time the next check sees
        self._note(item.id, digest, st)
        return digest

    def shown(self, item: Item) -> tuple[str, os.stat_result]:
        """What the page showed of ``item`` and the lstat that proves its file still holds it, or
        Changed: checked by the file's inode number and time where they prove it unchanged, by its
        content where they cannot (placement.still_holds, the rule every move follows). A file
        the page never showed must be the one it listed by its inode number and time."""
        with self._lock:
            held = self._shown.get(item.id)
        if held is None:
            st = _as_listed(item)
            if st.st_ino != item.seen.st_ino or time_may_hide_a_write(st):
                raise Changed(item.path)
            held = (content_id(item.path), st)
        else:
            now = still_holds(item.path, *held)
            if now is None:
                raise Changed(item.path)
            held = (held[0], now)
        self._note(item.id, *held)
        return held

    def _note(self, item_id: str, digest: str, st: os.stat_result) -> None:
        with self._lock:
            self._shown[item_id] = (digest, st)


def _as_listed(item: Item) -> os.stat_result:
    """The lstat of ``item``'s file if it is a regular file under its listed id, else Changed."""
    try:
        st = item.path.lstat()
    except OSError as exc:
        raise Changed(item.path) from exc
    if not stat.S_ISREG(st.st_mode) or item_id(st, item.path) != item.id:
        raise Changed(item.path)
    return st
