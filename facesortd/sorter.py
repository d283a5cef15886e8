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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from facesortd.decide import Decision, Pipeline
from facesortd.journal import NOT_REGULAR, Journal, content_id
from facesortd.library import Library
from facesortd.placement import UnjournaledMove, journaled_apply
from facesortd.quarantine import QUARANTINE_DIR

GONE = "gone meanwhile (moved by a person, the daemon or another `facesortd sort`)"
UNDONE = "you undid its sort, so it stays (sort it by hand: facesortd sort FILE)"
COPIED = "copied into the library before (`sort --copy`), so it stays: its copy is"

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


@dataclass
class Sorter:
    """The shared rules for one library; worker threads share one (the only state it holds is which
    contents are being decided on right now, see ``_one_content_at_a_time``).

    ``journal`` None means no history is known (a dry run before anything was ever sorted): the
    person-decision rules then have nothing to go on. ``unreadable_settle_s`` is for the daemon,
    which meets files while they are still being written; a one-shot sort passes 0.
    """

    library: Library
    journal: Journal | None
    model_name: str = "none"
    duplicates: str = "keep"
    dry_run: bool = False
    copy: bool = False
    unreadable_settle_s: float = 0.0
    _deciding: set[str] = field(default_factory=set, init=False, repr=False)
    _turn: threading.Condition = field(default_factory=threading.Condition, init=False, repr=False)

    def sort(self, pipeline: Pipeline, path: Path, *, named: bool = False) -> Outcome:
        """Sort ``path`` with ``pipeline`` (one per thread: OpenCV's detectors are not shareable).

        ``named``: a person named this file or its folder (``facesortd sort FILE``, ``facesortd sort
        <library>/_quarantine/no-face``); that overrides their earlier undo or quarantine of it,
        which is how they sort such a file by hand. Only the inbox (daemon, bare ``sort``) obeys them.
        """
        started = time.perf_counter()
        if path.is_symlink():
            return Outcome(path, "skipped", why="a symbolic link (facesortd only moves real files)")
        try:
            seen = path.lstat()
            if not stat.S_ISREG(seen.st_mode):
                return Outcome(path, "skipped", why=NOT_REGULAR)
            digest = content_id(path) if self.journal is not None else ""  # no history: no use
        except FileNotFoundError:
            return Outcome(path, "gone", why=GONE)
        if not named and (why := self._persons_decision(path, digest)):
            return Outcome(path, "kept", why=why)
        if self.journal is not None and (copied := copy_in_library(self.journal, path, digest)):
            return Outcome(path, "kept", destination=copied, why=f"{COPIED} {copied}")
        with self._one_content_at_a_time(digest):
            return self._place(pipeline, path, digest, seen, started)

    @contextlib.contextmanager
    def _one_content_at_a_time(self, digest: str) -> Iterator[None]:
        """With ``duplicates = "quarantine"``, files of one content are decided and placed one after
        the other by the threads sharing this sorter: two workers given two copies at once each
        found nothing sorted before and placed both (of 10 copies dropped together, 2 escaped
        ``_quarantine/duplicate/``)."""
        if self.duplicates != "quarantine" or not digest:
            yield
            return
        with self._turn:
            self._turn.wait_for(lambda: digest not in self._deciding)
            self._deciding.add(digest)
        try:
            yield
        finally:
            with self._turn:
                self._deciding.discard(digest)
                self._turn.notify_all()

    def _place(
        self, pipeline: Pipeline, path: Path, digest: str, seen: os.stat_result, started: float
    ) -> Outcome:
        """Decide on the file and move it, or say why not (the rest of :meth:`sort`)."""
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
            final = journaled_apply(
                self.journal, self.library, path, digest, decision, self.model_name, copy=self.copy, seen=seen
            )
        except FileNotFoundError:
            return Outcome(path, "gone", decision, why=GONE)
        except UnjournaledMove as exc:
            return Outcome(path, "placed", decision, exc.final, why=str(exc.cause), ms=_ms(started))
        return Outcome(path, "placed", decision, final, ms=_ms(started))

    def _persons_decision(self, path: Path, digest: str) -> str:
        """Why a person's own decision keeps this file where it is ("" if none does)."""
        if self.journal is None:
            return ""
        if self.journal.undone_from(path, digest):
            return UNDONE
        in_quarantine = path.parent.parent == self.library.root / QUARANTINE_DIR
        if in_quarantine and not self.journal.placed_last(path, digest):
            return "you put it in quarantine, so it stays there"
        return ""

    def _duplicate(self, path: Path, digest: str) -> Decision | None:
        """With ``duplicates = "quarantine"``: content already in the library somewhere else."""
        if self.duplicates != "quarantine" or self.journal is None:
            return None
        previous = self.journal.last_for_hash(digest)
        if previous is None or previous.destination == path or not previous.destination.exists():
            return None
        return Decision.quarantine("duplicate", detail=f"same content as {previous.destination}")

    def _still_young(self, path: Path) -> float:
        """Seconds to wait before an unreadable file counts as finished: a writer that appends in
        chunks closes the file between them, so "truncated" may only mean "not written yet"."""
        if not self.unreadable_settle_s:
            return 0.0
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            return 0.0
        return max(0.0, self.unreadable_settle_s - age)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def copy_in_library(journal: Journal, path: Path, digest: str) -> Path | None:
    """Where an earlier `sort --copy` of this very file put its copy, if that copy is still there:
    sorting the file again, copied or moved, named or not, would put its content in the library
    twice. A copy that was undone or removed since no longer holds the file back."""
    if not (move := journal.copied_from(path, digest)):
        return None
    try:
        same = move.destination.stat().st_size == path.stat().st_size
    except OSError:
        return None
    return move.destination if same else None
