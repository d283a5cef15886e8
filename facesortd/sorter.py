"""Sort one path into the library: the rules, the decision and the journaled move, in one place.

`facesortd sort` and the daemon's workers both call :meth:`Sorter.sort`, so a file is treated the
same whichever of them meets it: a file whose sort a person undid stays, a file a person put in
quarantine stays, the duplicates policy holds, and every move is journaled (undoable, crash-safe,
never taken for a person's label). A dry run is the same sort with the move left out, so what it
prints is what a real run would do.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from facesortd.advice import advised
from facesortd.content import content_id
from facesortd.decide import Decision, Pipeline
from facesortd.durable import NOT_REGULAR, unwritten
from facesortd.image_names import IMAGE_SUFFIXES, is_image_name, not_an_image_name
from facesortd.journal import NO_MODEL, UNDOING, Journal, ModelId
from facesortd.library import Library
from facesortd.placement import UnjournaledMove, end_killed_moves, journaled_apply, moving
from facesortd.quarantine import QUARANTINE_DIR
from facesortd.state import move_lock_if_free
from facesortd.watch import ignoring_pattern

GONE = "gone meanwhile (moved by a person, the daemon or another `facesortd sort`)"
CHANGED = "written to or replaced while it was sorted: left where it is (sort it again once it is written)"
"""Why a file still under its name was not moved: its content was no longer the one decided on (a
tool still writing it, a save in place). It was said "gone meanwhile", and looked for elsewhere;
the daemon, which says nothing of it, looks at the inbox again once the burst is sorted."""


def undone() -> str:
    """Why a file whose sort a person undid stays (the sorter and `status` say it alike), with the
    command that sorts it by hand."""
    return f"you undid its sort, so it stays (sort it by hand: {advised('sort', 'FILE')})"


COPIED = "copied into the library before (`sort --copy`), so it stays: its copy is"


def ignored_name(pattern: str) -> str:
    """Why a file named to `sort` whose name ``watch.ignore`` leaves alone (``~x.png``, an office
    suite's ``.~lock.x.png#``) stays, with how to sort it anyway: such a name is an editor's lock or
    temp file far more often than a picture meant, and the daemon would never have taken it."""
    return (
        f"its name matches watch.ignore's {pattern!r} (a hidden, temp or lock file, which the daemon "
        "leaves alone); rename it to sort it"
    )


Kind = Literal["placed", "would-place", "stays", "kept", "wait", "skipped", "gone"]


@dataclass(frozen=True)
class Outcome:
    """What happened to one path.

    ``placed``: moved (or copied) to ``destination``; ``would-place``: a dry run's plan;
    ``stays``: examined and already where it belongs; ``kept``: left alone because of a person's
    decision; ``wait``: unreadable but young, try again in ``wait_s``; ``skipped``: not a regular
    file; ``gone``: moved away meanwhile. ``why`` says why for kept, wait, skipped and gone, and
    for placed what the journal answered if it could not record the move (``UnjournaledMove``:
    placed all the same, recorded by the next recovery).
    """

    path: Path
    kind: Kind
    decision: Decision | None = None
    destination: Path | None = None
    why: str = ""
    wait_s: float = 0.0
    ms: float = 0.0

    @property
    def copied_before(self) -> bool:
        """Kept because an earlier `sort --copy` put its copy into this library (``destination``)."""
        return self.kind == "kept" and self.why.startswith(COPIED)


class UnreadableSince:
    """When the daemon first found each unreadable file as it is now, by the monotonic clock.

    How long a file has stayed unchanged was told by its date against the wall clock, which steps
    (NTP at boot, a resumed VM, a person setting it): stepped back or forward by more than
    ``watch.unreadable_settle_s`` while a writer paused between chunks, the half-written file was
    judged finished at once and quarantined as unreadable, and its writer's next chunk began a
    second file in the inbox. The daemon and `sort` time the wait themselves (`sort` from its start:
    :meth:`start`). Thread-safe: the workers share one.
    """

    def __init__(self) -> None:
        self._since: dict[Path, tuple[tuple[int, int, int], float]] = {}
        self._lock = threading.Lock()

    def start(self, paths: Iterable[Path]) -> None:
        """Begin the wait of each of ``paths`` now, as it is now: a `sort` of many files finds an
        unreadable one unchanged since its start waited for only what is left of ``settle_s``, not
        ``settle_s`` each, one after the other."""
        now = time.monotonic()
        for path in paths:
            with contextlib.suppress(OSError):
                st = path.stat()
                with self._lock:
                    self._since[path.absolute()] = (unwritten(st), now)

    def left(self, path: Path, settle_s: float) -> float:
        """Seconds ``path`` has yet to stay unchanged before it counts as finished (0: now).

        Unchanged by its device, size and modification time, not its inode number: a file on an
        inbox on a FUSE drive, renumbered whenever the kernel dropped it from its cache, began its
        wait anew each time and could wait for ever."""
        try:
            st = path.stat()
        except OSError:  # gone (or not ours to look at): nothing to wait for, nothing to keep
            self.forget(path)
            return 0.0
        now, seen = time.monotonic(), unwritten(st)
        with self._lock:
            known = self._since.get(path)
            if known is None or known[0] != seen:  # new to us, or written since: the wait starts again
                self._since[path] = (seen, now)
                return settle_s
            left = settle_s - (now - known[1])
            if left <= 0:
                del self._since[path]
            return max(0.0, left)

    def forget(self, path: Path) -> None:
        """``path`` is no longer waited on (readable now, placed, gone)."""
        with self._lock:
            self._since.pop(path, None)

    def __len__(self) -> int:
        """How many files are waited on now (a long-running daemon's record must not grow)."""
        with self._lock:
            return len(self._since)


@dataclass
class Sorter:
    """The shared rules for one library; holds no per-file state, so worker threads share one.

    ``journal`` None means no history is known (a dry run before anything was ever sorted): the
    person-decision rules then have nothing to go on. ``unreadable_settle_s`` is for the daemon,
    which meets files while they are still being written; a one-shot sort passes 0. ``extensions``
    (``watch.extensions``): the names sorted; any other file is left where it is, never judged
    "unreadable" and quarantined (a ``notes.txt`` named to `sort` among the screenshots was).
    """

    library: Library
    journal: Journal | None
    model: ModelId = NO_MODEL
    """The model the journal records as deciding a move (:class:`ModelId`), unless ``sort`` is told."""
    duplicates: str = "keep"
    dry_run: bool = False
    copy: bool = False
    unreadable_settle_s: float = 0.0
    extensions: tuple[str, ...] = IMAGE_SUFFIXES
    ignore: tuple[str, ...] = ()
    """``watch.ignore``: a file of such a name is skipped, said, even when a person named it."""
    unreadable_since: UnreadableSince | None = None
    """An unreadable file's wait, timed by the monotonic clock, never by its date (made if not given
    and there is a wait); the daemon's workers share one."""

    def __post_init__(self) -> None:
        if self.unreadable_settle_s and self.unreadable_since is None:
            self.unreadable_since = UnreadableSince()

    def sort(
        self, pipeline: Pipeline, path: Path, *, named: bool = False, judged_by: ModelId | None = None
    ) -> Outcome:
        """Sort ``path`` with ``pipeline`` (one per thread: OpenCV's detectors are not shareable).

        ``named``: a person named this file or its folder (``facesortd sort FILE``, ``facesortd sort
        <library>/_quarantine/no-face``); that overrides their earlier undo or quarantine of it,
        which is how they sort such a file by hand. Only the inbox (daemon, bare ``sort``) obeys them.
        ``judged_by``: the model ``pipeline`` holds, journaled with the move, where it may not be
        ``model`` (the daemon's workers take a new model up one after the other).
        """
        outcome = self._sort(pipeline, path, named=named, judged_by=judged_by or self.model)
        if self.unreadable_since is not None and outcome.kind != "wait":
            # Whatever became of it (placed, gone while it waited, replaced by a link), it is no longer
            # waited on: a record kept for each file that vanished while waiting grew for ever.
            self.unreadable_since.forget(outcome.path)
        return outcome

    def _sort(self, pipeline: Pipeline, path: Path, *, named: bool, judged_by: ModelId) -> Outcome:
        started = time.perf_counter()
        # As the journal and the daemon name it: `sort happy/a.png` was a duplicate of itself.
        path = path.absolute()
        if path.is_symlink():
            return Outcome(path, "skipped", why="a symbolic link (facesortd only moves real files)")
        if not is_image_name(path, self.extensions):
            return Outcome(path, "skipped", why=not_an_image_name(self.extensions))
        # Only for an image name, which renaming can make one that is sorted.
        if (pattern := ignoring_pattern(path.name, self.ignore)) is not None:
            return Outcome(path, "skipped", why=ignored_name(pattern))
        try:
            seen = path.lstat()
            if not stat.S_ISREG(seen.st_mode):
                return Outcome(path, "skipped", why=NOT_REGULAR)
            digest = content_id(path) if self.journal is not None else ""  # no history: no use
        except FileNotFoundError:
            return Outcome(path, "gone", why=GONE)
        if not named and (why := self._persons_decision(path, digest)):
            return Outcome(path, "kept", why=why)
        if self.journal is not None and (
            copied := copy_in_library(self.journal, path, digest, self.library.root)
        ):
            return Outcome(path, "kept", destination=copied, why=f"{COPIED} {copied}")
        decision = self._duplicate(path, digest) or pipeline.decide(path)
        if self.library.holds(path, decision):
            return Outcome(path, "stays", decision, path, ms=_ms(started))
        if decision.reason == "unreadable" and (wait := self._still_young(path)):
            return Outcome(path, "wait", decision, why=decision.detail, wait_s=wait)
        if self.dry_run or self.journal is None:
            return Outcome(
                path, "would-place", decision, self.library.destination(path, decision), ms=_ms(started)
            )
        try:
            with moving(self.journal):
                # The duplicates rule looks again under the move lock: a twin that a worker or a
                # process beside this one (`sort` beside the daemon) decided at the same moment (the
                # same picture dropped twice at once) was not in the journal yet, and each copy went
                # in as the first.
                decision = self._duplicate(path, digest) or decision
                # So does the copy rule: two `sort --copy` of one file at once (named twice, as
                # `sort --copy ~/screens/* ~/screens` does, or two commands) each copied it.
                if copied := copy_in_library(self.journal, path, digest, self.library.root):
                    return Outcome(path, "kept", destination=copied, why=f"{COPIED} {copied}")
                # And a killed undo's file: one the lock's holder finished meanwhile (see
                # _persons_decision), or ``moving`` as it took the lock.
                if not named and self.journal.undone_from(path, digest):
                    return Outcome(path, "kept", why=undone())
                final = journaled_apply(
                    self.journal, self.library, path, digest, decision, judged_by, copy=self.copy, seen=seen
                )
        except FileNotFoundError:
            return Outcome(path, "gone", decision, why=CHANGED if os.path.lexists(path) else GONE)
        except UnjournaledMove as exc:
            return Outcome(path, "placed", decision, exc.final, why=str(exc.cause), ms=_ms(started))
        return Outcome(path, "placed", decision, final, ms=_ms(started))

    def _persons_decision(self, path: Path, digest: str) -> str:
        """Why a person's own decision keeps this file where it is ("" if none does).

        An `undo` killed as it put a file back (its mark, ``UNDOING``, standing) is finished first:
        the file it left in the inbox and the library both may be this one, its name here not
        journaled yet if it was taken (``a (1).png``). A daemon beside it left the library's name
        until its next label scan, and sorted such a file into the library again: the undo undone.
        One read of the mark per file; the move lock only while a mark stands."""
        if self.journal is None:
            return ""
        if self.journal.get_meta(UNDOING):
            with move_lock_if_free(self.journal.state_dir) as free:  # held: by a live undo, perhaps
                if free:  # else its holder finishes a killed one before its own move (and below)
                    end_killed_moves(self.journal)
        if self.journal.undone_from(path, digest):
            return undone()
        in_quarantine = path.parent.parent == self.library.root / QUARANTINE_DIR
        if in_quarantine and not self.journal.placed_last(path, digest):
            return "you put it in quarantine, so it stays there"
        return ""

    def _duplicate(self, path: Path, digest: str) -> Decision | None:
        """With ``duplicates = "quarantine"``: content already in this library somewhere else (a copy
        in another one, `sort --library`, is not this library's duplicate). A copy quarantined as a
        duplicate is no original: the first file, looked at again, went after its own duplicate."""
        if self.duplicates != "quarantine" or self.journal is None:
            return None
        duplicates = self.library.folder_for(Decision.quarantine("duplicate"))
        for previous in self.journal.placed_in(digest, self.library.root):
            if previous != path and previous.parent != duplicates and previous.exists():
                return Decision.quarantine("duplicate", detail=f"same content as {previous}")
        return None

    def _still_young(self, path: Path) -> float:
        """Seconds to wait before an unreadable file counts as finished: a writer that appends in
        chunks closes the file between them, so "truncated" may only mean "not written yet"."""
        if not self.unreadable_settle_s or self.unreadable_since is None:
            return 0.0
        return self.unreadable_since.left(path, self.unreadable_settle_s)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def copy_in_library(journal: Journal, path: Path, digest: str, library: Path) -> Path | None:
    """Where an earlier `sort --copy` of this very file put its copy in ``library``, if that copy is
    still there: sorting the file again into it, copied or moved, named or not, would put its content
    in that library twice (another library is free to take it). A copy that was undone or removed
    since no longer holds the file back."""
    if not (move := journal.copied_from(path, digest, library)):
        return None
    try:
        same = move.destination.stat().st_size == path.stat().st_size
    except OSError:
        return None
    return move.destination if same else None
