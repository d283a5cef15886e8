"""The one way facesortd moves a user's file into the library: journal the plan, move, journal it.

Kept apart from the journal (which only stores records) because it joins three things: the
journal, the library's layout and the state folder's move lock.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from facesortd.content import holds
from facesortd.decide import Decision
from facesortd.durable import MOVED_AWAY, time_may_hide_a_write, unwritten
from facesortd.journal import UNDOING, Journal, ModelId
from facesortd.library import Library
from facesortd.recovery import recover_logged
from facesortd.state import move_lock


class UnjournaledMove(Exception):
    """The file was moved (or copied) to ``final``, but the journal refused to mark the move done.

    Not a failed move: the file has left its source, so a caller that said it "stays in the inbox"
    (or "left the quarantine meanwhile") and tried again misled the person. The journal row stays
    ``planned``, and the next crash recovery (:func:`facesortd.recovery.recover`: the daemon's start,
    and its next tick once the journal takes writes; the start of `facesortd sort`) records it done
    at ``final``, as it does after a crash at that very instant.
    """

    def __init__(self, final: Path, cause: sqlite3.Error) -> None:
        super().__init__(f"it went to {final}, but the journal could not record the move ({cause})")
        self.final = final
        self.cause = cause


def journaled_apply(
    journal: Journal,
    library: Library,
    src: Path,
    digest: str,
    decision: Decision,
    model: ModelId,
    copy: bool = False,
    seen: os.stat_result | None = None,
) -> Path:
    """The one way facesortd moves a user's file: journal the plan, move (never overwriting), journal it.

    Used by the service and by one-shot `sort` alike, so every file facesortd placed is known as its
    own placement (and never mistaken for a person's label), can be undone and is crash-safe.
    Runs under the state folder's move lock: another process (a second worker, `sort` beside the
    daemon) that decided on the same file finds it gone (FileNotFoundError) instead of placing it
    twice, and recovery never mistakes this move for a crashed one. A file whose content is no
    longer ``digest`` is gone too: the decision was made on other content. ``seen``, the file's
    lstat from before ``digest`` was taken, tells that without reading it again (the same inode,
    size and mtime), which for a huge file held every other move up for seconds; without it the
    content is hashed again. ``model``: who decided it (the review page's name for a person's label,
    with no version).

    A move whose ``done`` mark fails is :class:`UnjournaledMove`. A failed move whose ``rolled_back``
    mark fails too raises the move's own error (which says what to fix): the row stays ``planned``
    and recovery rolls it back, the file being still at its source.
    """
    with moving(journal):
        if not _unchanged(src, digest, seen):  # moved on, or replaced (a tool
            # saving to one fixed name): its move would carry the old decision and hash, which undo refused
            raise FileNotFoundError(errno.ENOENT, MOVED_AWAY, str(src))
        dest = library.destination(src, decision)
        made = not os.path.lexists(dest.parent)  # for undo, which takes a new class's folder away with it
        move_id = journal.plan(
            digest, src, dest, decision, model.name, version=model.version, copied=copy, made_folder=made
        )
        try:
            claiming = functools.partial(journal.claiming, move_id)
            final = library.apply(src, decision, copy=copy, content=digest, claiming=claiming)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # recovery rolls it back: see above
                journal.finish(move_id, "rolled_back")
            raise
        try:
            journal.finish(move_id, "done", final)
        except sqlite3.Error as exc:
            raise UnjournaledMove(final, exc) from exc
    return final


_moving = threading.local()


@contextlib.contextmanager
def moving(journal: Journal) -> Iterator[None]:
    """The move lock for this thread's moves, what a killed process left half-way ended first
    (:func:`end_killed_moves`). Entered again inside (the sorter's last look at a decision, then
    :func:`journaled_apply`, as one step), nothing is ended again: the lock held all along, no other
    process began a move or an `undo` meanwhile (it was asked twice for each file placed)."""
    ended: set[Path] = _moving.__dict__.setdefault("dirs", set())
    if journal.state_dir in ended:
        yield
        return
    with move_lock(journal.state_dir):
        end_killed_moves(journal)
        ended.add(journal.state_dir)
        try:
            yield
        finally:
            ended.discard(journal.state_dir)


def end_killed_moves(journal: Journal) -> None:
    """Finish or roll back the moves (and the `undo`) a killed process left half-way; the caller
    holds the move lock, under which no live one is under way, so each row left so is a dead
    process's (recovery's own rule). Asked before each move: killed between linking a file where it
    went and unlinking it where it was, such a process left the file at both; `sort` beside the
    daemon (or the daemon beside `sort`), running on, moved it again under a numbered name, and the
    killed one's recovery at its next start then completed its own move too: the file twice in the
    library. And by the label scan (see ``Journal.placed_at``). Two indexed looks each time."""
    if any(move.in_full for move in journal.planned()) or journal.get_meta(UNDOING):
        recover_logged(journal)


def _unchanged(path: Path, digest: str, seen: os.stat_result | None) -> bool:
    """Is ``path`` still the file ``seen`` was taken of, holding ``digest`` (without ``seen``: does
    it still hold ``digest``)?"""
    return holds(path, digest) if seen is None else still_holds(path, digest, seen) is not None


def still_holds(path: Path, digest: str, seen: os.stat_result) -> os.stat_result | None:
    """``path``'s lstat now if it is still the regular file ``seen`` was taken of, unwritten since,
    so still holding ``digest``; else None. The caller keeps the lstat returned: a file proven by
    its content is then proven by its inode number the next time.

    Another inode number under the same device, size and modification time is asked of the content:
    FUSE filesystems (exfat-fuse, fusefat) number a file anew whenever the kernel dropped it from
    its cache, so under memory pressure every file of an inbox on such a drive was "gone meanwhile"
    by the time it was decided, and stayed; and another file put under the same name (a re-download
    keeping the server's time) looks the same by these three. So is one whose time cannot show a
    write just made, and the same inode changed since (:func:`touched`)."""
    try:
        now = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(now.st_mode) or unwritten(now) != unwritten(seen):
        return None
    proven = now.st_ino == seen.st_ino and not touched(now, inode_change(seen))
    if (proven and not time_may_hide_a_write(now)) or holds(path, digest):
        return now
    return None


def inode_change(st: os.stat_result) -> tuple[int, int]:
    """``st``'s inode number and its change time (ctime), for :func:`touched` to ask later."""
    return st.st_ino, st.st_ctime_ns


def touched(now: os.stat_result, before: tuple[int, int] | None) -> bool:
    """Has the inode ``before`` (:func:`inode_change`) was taken of been changed since (``now`` its
    lstat)? A file written over in place with its size and time set back as they were (`cp -p`,
    `rsync -t` over it) shows it only so. Not proof of a write (a chmod, a link, a rename change it
    too), so it is asked of the content; and never part of what a file is known by: exfat-fuse
    gives a file its modification time as its ctime, and a drive that keeps no change time (FAT)
    may show another once the kernel reads the file back. Another inode number (FUSE numbering the
    file anew) is not asked here. ``before`` None: not known (remembered by an older facesortd)."""
    return before is not None and now.st_ino == before[0] and now.st_ctime_ns != before[1]


def looks_unchanged(
    path: Path, now: os.stat_result, seen: tuple[int, int, int], inode: tuple[int, int] | None, digest: str
) -> bool:
    """Is the file ``path`` (``now`` its lstat) still the one whose ``durable.unwritten`` was
    ``seen``, :func:`inode_change` ``inode`` and content ``digest``, as far as a look over many
    files may ask? The caller keeps ``now``'s inode change once it is: a file proven by its content
    is then proven without it the next time.

    Unlike :func:`still_holds`, another inode number is not asked of the content: for what is
    remembered of a whole folder at every look (the label scan, the review page's "no usable face"
    marks), FUSE numbering every file anew when the kernel drops it from its cache made each look
    read every file again. The content is read where the time cannot show a write just made, and
    where the same inode was changed (:func:`touched`: a file written over in place keeping its size
    and older time, `cp -p`, kept its label and mark unread). Another file put under the name with
    the same size and time passes: nothing is moved or labelled on this answer alone."""
    if unwritten(now) != seen:
        return False
    return not (touched(now, inode) or time_may_hide_a_write(now)) or holds(path, digest)
