"""A key press on the review page made real: exactly what moving the file in a file manager does.

A label moves the file from quarantine into ``<library>/<emotion>/`` through the journaled,
never-overwriting move every facesortd move goes through (so ``facesortd undo`` puts it back) and
records a person's label for it the way a file-manager move is recorded (review.Reviewer). The
journal says what happened: a ``labelled`` move decided by the "review page", not a file facesortd
sorted. "No usable face" leaves the file where it is, with no label: the page only remembers it, to
list it last. The page's own undo takes back a tab's decisions newest first.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from facesortd.advice import advised
from facesortd.config import Settings
from facesortd.content import content_id
from facesortd.decide import Decision
from facesortd.durable import atomic_writer, moved_away
from facesortd.journal import REVIEWER, Journal, ModelId
from facesortd.learn.review import Reviewer
from facesortd.library import Library
from facesortd.placement import UnjournaledMove, inode_change, journaled_apply
from facesortd.refusals import DISK_FULL, Refused
from facesortd.review_page.cache import review_dir
from facesortd.review_page.classes import CLASS_NAME, known_classes
from facesortd.review_page.queue import Changed, Contents, Item, Mark, content_tag, current
from facesortd.spelling import nearest
from facesortd.undo import undo

UNREAD = "unread"
"""What a "no usable face" mark names as the content of a file its drive could not read (EIO). No
content id is this: the mark holds while the file's place, size and time prove it unwritten
(``queue.is_dismissed``), never where its time may hide a write (that is asked of the content)."""


class DecisionError(Exception):
    """A decision that cannot be carried out; the message says why, for the page to show."""


class UnknownClass(DecisionError):
    """A label that is none of the classes (``classes.known_classes``), not asked for as a new one:
    a misspelt ``hapy`` posted by a script or a stale page was moved into a folder ``hapy/`` made
    for it, and trained the model on a class nobody meant. ``why`` says it without the API's way to
    make it a new class, which the page says its own way."""

    def __init__(self, name: str, nearest: str | None, file_name: str) -> None:
        self.name = name
        guess = f" (did you mean {nearest}?)" if nearest else ""
        self.why = f"{name} is not a class{guess}: {file_name} stays where it is"
        super().__init__(f'{self.why}; a new class is made only when asked for as one ("new": true)')


def class_name(text: str) -> str:
    """The folder name a typed class becomes, or DecisionError saying what a name may hold."""
    name = text.strip().lower().replace(" ", "-")
    if not CLASS_NAME.fullmatch(name):
        raise DecisionError(
            f"{text!r} cannot be a class: use up to 40 lower-case letters, digits, - or _ (e.g. smug)"
        )
    return name


@dataclass(frozen=True)
class Done:
    """One decision the page made, kept so that `u` can take it back."""

    kind: Literal["label", "no-face"]
    item_id: str
    name: str
    path: Path
    """Where the file is since the decision."""
    label: str = ""


class DecidedElsewhere(DecisionError):
    """The file was labelled by another tab (``done``, still standing) before this tab's decision
    came: the losing tab was told "... has left the quarantine meanwhile; reload" and stayed on the
    file; told this, it moves on to the next file."""

    def __init__(self, done: Done) -> None:
        super().__init__(
            f"{done.name} was labelled {done.label} in another tab meanwhile; nothing was done here"
        )
        self.done = done


class NoFaceMarks:
    """The files marked "no usable face", by id, with the content each mark was given to and the
    file's inode change then (``queue.Mark``), kept in the state folder across runs of the page
    (queue.is_dismissed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            found = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = {}
        self.marks: dict[str, Mark] = {}
        for key, kept in (found if isinstance(found, dict) else {}).items():
            if isinstance(kept, str):  # written before the inode's change was kept with it
                self.marks[key] = Mark(kept)
            elif isinstance(kept, list) and len(kept) == 3 and all(isinstance(v, int) for v in kept[1:]):
                self.marks[key] = Mark(str(kept[0]), (kept[1], kept[2]))
        self._before = set(found) if isinstance(found, list) else set()
        """Marks written before 2026-12-03: ids that held the inode number, without the content."""

    def carry_over(self, items: list[Item]) -> None:
        """Give the marks written before 2026-12-03 to the files they name, with their content: they
        were dropped, and those files listed among the others again."""
        if not self._before:
            return
        marks = dict(self.marks)
        for item in items:
            st = item.seen
            key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()
            if hashlib.sha256(key).hexdigest()[:24] in self._before:
                with contextlib.suppress(OSError):  # one that cannot be read now loses its mark
                    marks[item.id] = Mark(content_id(item.path), inode_change(st))
        self._save(marks)
        self._before = set()

    def set(self, item_id: str, mark: Mark | None) -> None:
        """Mark ``item_id`` so, or (None) take its mark back."""
        marks = {k: v for k, v in self.marks.items() if k != item_id}
        self._save(marks if mark is None else {**marks, item_id: mark})

    def proven(self, items: list[Item]) -> None:
        """Keep the inode change of the marked files listed (``items``) as it is now: one whose inode
        changed without a write (a chmod) was proven by its content, and would be read again at
        every listing. Unkept where the state folder refuses: only that reading is lost."""
        now = {i.id: inode_change(i.seen) for i in items if i.dismissed}
        if any(self.marks[k].inode != inode for k, inode in now.items()):
            with contextlib.suppress(OSError):
                self._save({k: Mark(m.content, now.get(k, m.inode)) for k, m in self.marks.items()})

    def keep_only(self, ids: set[str]) -> None:
        """Forget marks of files that left the quarantine."""
        if not self.marks.keys() <= ids:
            self._save({k: v for k, v in self.marks.items() if k in ids})

    def _save(self, marks: dict[str, Mark]) -> None:
        """Kept in memory only once written, so a refused write leaves both as they were."""
        kept = {k: [m.content, *m.inode] if m.inode else m.content for k, m in marks.items()}
        with atomic_writer(self.path) as fh:
            fh.write(json.dumps(kept, sort_keys=True).encode())
        self.marks = marks


class Decisions:
    """Carries out the page's decisions one at a time (the server's threads share it)."""

    def __init__(self, settings: Settings, journal: Journal, contents: Contents) -> None:
        self.settings = settings
        self.journal = journal
        self.contents = contents
        self.library = Library(settings.library, started_as=f"`{advised('review')}`")  # it runs on its own
        self.reviewer = Reviewer(settings, journal)
        self.marks = NoFaceMarks(review_dir(settings) / "no-usable-face.json")
        self.history: dict[str, list[Done]] = {}
        """Each tab's decisions, oldest first, by the id the tab sends (``tab``): one list for all
        tabs had one tab's `u` take back the decision another tab had just made."""
        self._lock = threading.Lock()

    def label(
        self, item: Item, text: str, content: str | None = None, new: bool = False, tab: str = ""
    ) -> Done:
        """Move the file into ``<library>/<label>/`` and record the label. ``content``: the tag of
        the content the tab showed (see :meth:`_shown`); ``new``: a class that is none of the known
        ones is wanted (it makes its folder), else UnknownClass; ``tab``: the tab deciding, whose
        :meth:`undo` takes it back."""
        label = class_name(text)
        if not new and label not in (known := known_classes(self.settings, self.journal)):
            raise UnknownClass(label, nearest(label, known), item.path.name)
        with self._lock:
            if current(item, self.settings.library) is None:
                raise self._gone(item, tab)
            try:
                # What the page showed, checked again under the move lock just before the move; one it
                # may not read is moved all the same, as sorted.
                digest, seen = self._shown(item, content)
            except OSError as exc:  # its drive could not read it: the page showed no picture of it
                raise DecisionError(
                    f"{item.path.name} stays where it is: {self._fix(exc)}. The page could show no picture"
                    " of it, so there is none to label: n lists it last"
                ) from exc
            try:
                final = journaled_apply(
                    self.journal,
                    self.library,
                    item.path,
                    digest,
                    Decision.label(label),
                    ModelId(REVIEWER),
                    seen=seen,
                )
            except UnjournaledMove as exc:
                raise DecisionError(self._unjournaled(item, label, exc, digest)) from exc
            except (OSError, sqlite3.Error) as exc:  # a folder or disk that refuses: say what to do
                if not item.path.exists():  # `sort` or the daemon's re-examination moved it meanwhile
                    raise DecisionError(self._left(item)) from exc
                if moved_away(exc):
                    raise DecisionError(self._changed(item)) from exc
                raise DecisionError(f"{item.path.name} stays where it is: {self._fix(exc)}") from exc
            done = Done("label", item.id, item.path.name, final, label)
            self.history.setdefault(tab, []).append(done)  # journaled: u takes it back whatever follows
            try:  # After the move: only a file that reached its folder is labelled.
                self.reviewer.record(final, digest, label)
            except (OSError, sqlite3.Error) as exc:
                raise DecisionError(
                    f"{item.path.name} went to {label}/ but its label was not recorded: {self._fix(exc)};"
                    " press u to take the move back, then label it again"
                ) from exc
            with contextlib.suppress(OSError):  # a stale mark is dropped when the page next starts
                if item.id in self.marks.marks:
                    self.marks.set(item.id, None)
        return done

    def _shown(self, item: Item, content: str | None) -> tuple[str, os.stat_result]:
        """What the page showed of ``item`` (queue.Contents.shown), or DecisionError: the file under
        its name is another, or was written since (or has left the quarantine), or holds another
        content than ``content`` names (``queue.content_tag``), which the tab asking showed: another
        tab showing a picture saved under the name since had its label go to that one."""
        try:
            digest, seen = self.contents.shown(item)
        except (Changed, FileNotFoundError) as exc:
            if not item.path.exists():
                raise DecisionError(self._left(item)) from exc
            raise DecisionError(self._changed(item)) from exc
        if content is not None and content != content_tag(digest):
            raise DecisionError(self._changed(item))
        return digest, seen

    def labelled_elsewhere(self, item_id: str, tab: str) -> DecidedElsewhere | None:
        """Another tab's label of the file ``item_id`` that still stands (one taken back with `u`
        has left the history), for a decision of ``tab`` on a file no longer listed as it was. Only
        a label moves a file: another tab's "no usable face" leaves it to be decided still."""
        with self._lock:
            return self._labelled_elsewhere(item_id, tab)

    def _labelled_elsewhere(self, item_id: str, tab: str) -> DecidedElsewhere | None:
        for other, decided in self.history.items():
            for done in decided:
                if other != tab and done.kind == "label" and done.item_id == item_id:
                    return DecidedElsewhere(done)
        return None

    def _gone(self, item: Item, tab: str) -> DecisionError:
        """Why ``item`` cannot be decided, no longer in the quarantine as listed (called under the lock)."""
        elsewhere = self._labelled_elsewhere(item.id, tab)
        return elsewhere or DecisionError(
            f"{item.path.name} has changed or left the quarantine since; reload"
        )

    @staticmethod
    def _left(item: Item) -> str:
        return f"{item.path.name} has left the quarantine meanwhile; reload"

    @staticmethod
    def _changed(item: Item) -> str:
        return (
            f"{item.path.name} has changed since the page listed it (another file under its name, or"
            " written since): it stays where it is; reload to see it as it is now"
        )

    def _unjournaled(self, item: Item, label: str, exc: UnjournaledMove, digest: str) -> str:
        """The file went to its folder, but the journal refused the move's last mark: what that
        means for the person. The label is still tried (the journal may take it a moment later); if
        it is refused too, the label scan finds it as a file-manager move once recovery has run."""
        moved = f"{item.path.name} went to {label}/, but the journal could not record the move ({exc.cause})"
        try:
            self.reviewer.record(exc.final, digest, label)
        except (OSError, sqlite3.Error):
            return (
                f"{moved} nor your label: {self._fix(exc.cause)}; the next start of `{advised('run')}` "
                "records both (u cannot take it back)"
            )
        return (
            f"{moved}; your label counts. The next `{advised('sort')}` or start of `{advised('run')}` "
            "records the move (u cannot take it back)"
        )

    def _fix(self, exc: OSError | sqlite3.Error) -> str:
        """What failed and what the person does about it (a Refused move already says both)."""
        if isinstance(exc, Refused):
            return str(exc)
        if isinstance(exc, sqlite3.Error):
            state = self.settings.state_dir
            return f"the journal refused it ({exc}): free some space in {state} or make it writable"
        if exc.errno in DISK_FULL:
            return f"{exc.strerror}: free some space on that disk, then press the key again"
        if exc.errno == errno.EROFS:
            return f"{exc.strerror}: the folder is on a read-only filesystem; mount it writable"
        if exc.errno == errno.EIO:  # the file itself or its drive: no chmod helps
            why = "its drive could not read or write it (a bad sector, or the drive pulled out)"
            return f"{exc.strerror}: {why}; check the drive"
        return f"{exc.strerror or exc}: make the folder writable (chmod u+rwx), then press the key again"

    def no_face(self, item: Item, content: str | None = None, tab: str = "") -> Done:
        """Mark the file as having no usable face: it stays in quarantine, unlabelled, listed last.
        ``content`` and ``tab``: as for :meth:`label`. A file its drive cannot read is marked too, unread:
        nothing moves, so nothing of it can be lost, and it no longer waits first in the queue."""
        with self._lock:
            if current(item, self.settings.library) is None:
                raise self._gone(item, tab)
            try:
                digest, seen = self._shown(item, content)
            except OSError:  # its drive could not read it: it stayed first in the queue for ever
                digest, seen = UNREAD, item.seen
            try:
                self.marks.set(item.id, Mark(digest, inode_change(seen)))
            except OSError as exc:
                raise DecisionError(f"{item.path.name} was not marked: {self._fix(exc)}") from exc
            done = Done("no-face", item.id, item.path.name, item.path)
            self.history.setdefault(tab, []).append(done)
        return done

    def undo(self, tab: str = "") -> tuple[Done, Path, str]:
        """Take back the newest decision of ``tab`` (another tab's are its own to take back);
        returns it, where the file is now, and the line saying the class folder its label had made
        was removed ("" if none was: ``undo.Outcome.unmade``)."""
        with self._lock:
            mine = self.history.get(tab)
            if not mine:
                raise DecisionError(
                    "nothing to undo in this tab: it has decided nothing since it was opened or this run"
                    f" of `{advised('review')}` started, or undone all it decided (another tab's u takes"
                    f" back its own; `{advised('undo')}` reaches further back)"
                )
            done = mine.pop()
            if done.kind == "no-face":
                self.marks.set(done.item_id, None)
                return done, done.path, ""
            move = self.journal.done_at(done.path)
            if move is None:
                raise DecisionError(f"{done.name} was moved since (by `facesortd undo`?); nothing to undo")
            [outcome] = undo(
                self.journal, [move], self.settings.library, self.settings.inbox, guard=self.library
            )
            if outcome.retry:  # still undoable once the person has fixed what refused it
                mine.append(done)
                raise DecisionError(f"{done.name}: {outcome.why_not}; press u again once fixed")
            if outcome.back_to is None:
                raise DecisionError(f"{done.name}: {outcome.why_not}; nothing to undo")
            return (
                done,
                outcome.back_to,
                outcome.unmade,
            )  # undo withdrew the label (and a class it made) with the move
