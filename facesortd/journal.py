"""The SQLite journal: every file facesortd moves, before and after, so nothing is ever lost.

A move is recorded as ``planned`` (content hash, source, intended destination, decision) and
committed before the file is touched, then marked ``done`` with the final path. After a crash,
:func:`recovery.recover` finds each ``planned`` entry half-way and completes or rolls it back using
the hash, so every file ends up exactly once: in the inbox or at its recorded destination.
WAL mode with synchronous=FULL: a committed entry survives power loss, readers never block the
daemon. Paths are stored as the bytes the filesystem uses (``os.fsencode``): a name that is not
valid UTF-8 is a name like any other. Rows written as text by older versions still match, since
every path comparison is made on ``CAST(... AS BLOB)``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from facesortd.boxes import Box
from facesortd.content import EMPTY_HASH, holds
from facesortd.decide import Decision
from facesortd.durable import small_file
from facesortd.mounts import FOREIGN_FILESYSTEMS, filesystem_type, refuse_unmounted
from facesortd.quarantine import QUARANTINE_DIR
from facesortd.refusals import DISK_FULL, disk_full_fix
from facesortd.state import (
    JOURNAL_FILE,
    daemon_running,
    ensure_private_dir,
    ensure_private_file,
    holder_pid,
    move_lock,
    not_yours,
    openers,
)

LABELS_TABLE = """
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('human', 'correction', 'dataset')),
    face TEXT,
    box TEXT,
    grp TEXT NOT NULL,
    path TEXT NOT NULL,
    created REAL NOT NULL,
    clock REAL
)
"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS moves (
    id INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    source TEXT NOT NULL,
    destination TEXT NOT NULL,
    action TEXT NOT NULL,
    emotion TEXT,
    reason TEXT,
    confidence REAL,
    model TEXT,
    state TEXT NOT NULL CHECK (state IN ('planned', 'done', 'rolled_back', 'undone')),
    started REAL NOT NULL,
    finished REAL,
    copied INTEGER,
    claimed BLOB,
    made_folder INTEGER,
    model_version TEXT,
    clock REAL
);
CREATE INDEX IF NOT EXISTS moves_hash ON moves (hash);
CREATE INDEX IF NOT EXISTS moves_state ON moves (state);
CREATE INDEX IF NOT EXISTS moves_finished ON moves (finished);
{LABELS_TABLE};
CREATE INDEX IF NOT EXISTS labels_hash ON labels (hash);
CREATE INDEX IF NOT EXISTS labels_created ON labels (created);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS errors (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, path TEXT, message TEXT NOT NULL
);
"""

MOVE_COLUMNS = (
    "id, hash, source, destination, action, emotion, reason, confidence, model, state, started, finished,"
    " copied, claimed, made_folder, model_version"
)
"""A move's columns in :class:`Move`'s order, named: those added since (``copied``, ``claimed``,
``made_folder``, ``model_version``) stand in a journal's table in the order it was given them."""

WITHDRAWN = ""
"""The label recorded when a person takes a labelled file back to quarantine."""
REVIEWER = "review page"
"""Who decided a ``labelled`` move (the journal's model column): a person on the review page."""
CURRENT_LABEL = f"l.id = (SELECT MAX(id) FROM labels WHERE hash = l.hash) AND l.label != '{WITHDRAWN}'"
"""Is the ``labels`` row ``l`` its content's label as it stands: the newest, not taken back?"""
PERSON_LABEL = f"{CURRENT_LABEL} AND l.source != 'dataset'"
"""Is the ``labels`` row ``l`` a person's label as it stands: the newest of its content, neither taken
back nor imported? The one rule by which a label is counted, whichever way the person gave it: the
review page and a file-manager move both end in this table (only the page's also in ``moves``)."""
LABELLED_KIND = "labelled_moves"
"""Meta key: the journal's review-page moves are recorded as ``labelled`` (older ones said ``sorted``)."""
UNDOING = "undo_in_progress"
"""Meta key: the id of the move `undo` is putting back right now ("" when none), for recovery."""
RELATIVE_TOLD = "relative_rows_told"
"""Meta key: the ids (comma-separated) of interrupted moves with relative paths already reported."""
CLAIM_LABELS_WITHDRAWN = "claim_labels_withdrawn"
"""Meta key: the labels an older label scan recorded from crash leftovers are withdrawn (see
:meth:`Journal._withdraw_claim_labels`)."""

_STAMP = (
    "MAX(:now, COALESCE((SELECT MAX(created) FROM labels), 0) + 1e-6,"
    " COALESCE((SELECT MAX(finished) FROM moves), 0) + 1e-6)"
)
"""The journal's order of finished moves and given labels (``finished``, ``created``; ``:now``: the
clock's time): never before one the journal already holds. Which came last, facesortd's move of a
file or a person's label, is told by it (``placed_last``, ``counts``, what the last retrain learnt
until): a clock set back (by hand, a dead clock battery until the network corrects it, another
system's local time on a dual boot) made a person's label older than facesortd's earlier move of
the file, so their file moved back into the folder facesortd had put it in was taken for
facesortd's own placement and the label never recorded, and labels given after a retrain were not
new to the next. It is an order, not a time: once a clock set far ahead (2030 by mistake, a wrong
clock at boot) is put right, every later stamp stays just after that far time until the clock
reaches it. When a move or label was made is the clock's own reading, kept beside it (``clock``;
a row of an older facesortd has none: its stamp was the clock's while it ran forward): what every
"when" and "since when" is answered by (``Move.finished``, :meth:`Journal.done_since`, the counts
since a time, :meth:`Journal.label_clock`), as the stamps answered `undo --since 2h` with every move
since a clock set far ahead."""

_IN_FOLDER = (
    "substr(CAST({0} AS BLOB), 1, length(?1)) = ?1"
    " AND instr(substr(CAST({0} AS BLOB), length(?1) + 1), x'2f') = 0"
)
"""Is the path column ``{0}`` a name in the folder given as ``?1`` (:func:`_inside`), not in a sub-folder?"""

_READING = "COALESCE(clock, finished)"
"""A move's finish as the clock read it (:data:`_STAMP`)."""
_LABEL_READING = "COALESCE(clock, created)"
"""A label's giving as the clock read it (:data:`_STAMP`)."""


_CLAIM_MARK = (
    "facesortd claimed this name for move {} of content {}; left by a crash, it is removed at"
    " facesortd's next start (deleting it loses nothing)\n"
)
_BEFORE_MOVE, _BEFORE_CONTENT, _AFTER_CONTENT = (re.escape(part) for part in _CLAIM_MARK.split("{}"))
_ANY_CLAIM_MARK = re.compile(f"{_BEFORE_MOVE}[0-9]+{_BEFORE_CONTENT}[^;\\s]+{_AFTER_CONTENT}".encode())
CLAIM_MARK_MOST = len(_CLAIM_MARK) + 128
"""No claim mark is longer: room for any move id and content id (``content.content_id``). A file
larger than this is not read to ask :func:`is_claim_mark`."""


def claim_mark(move_id: int, digest: str) -> bytes:
    """What a name claimed by move ``move_id`` of content ``digest`` holds until the file is renamed
    onto it: no file of a person's holds it (the moved file cannot: it would hold its own hash), and
    one a crash left says what it is to whoever finds it before recovery removes it."""
    return _CLAIM_MARK.format(move_id, digest).encode()


def is_claim_mark(held: bytes) -> bool:
    """Do the bytes ``held`` (a whole file) make the mark of some move's claim (:func:`claim_mark`)?
    Recovery removes only its own move's; one it could not remove is no picture of a person's,
    wherever it ends up (the label scan passes over it)."""
    return _ANY_CLAIM_MARK.fullmatch(held) is not None


def holds_claim_mark(path: Path) -> bool:
    """Is the file at ``path`` a move's claim a crash left (:func:`is_claim_mark`)? Only a file no
    larger than a mark is read, so a picture is not."""
    return is_claim_mark(small_file(path, CLAIM_MARK_MOST) or b"")


class JournalError(Exception):
    """The journal file cannot be used (not a database, damaged, truncated); says how to fix it."""


LOCK_WAIT_S = 30.0
"""How long a write waits for another process's write to the journal to end before giving up."""


class JournalLocked(JournalError, sqlite3.OperationalError):
    """Another process held the journal's write lock for all of ``LOCK_WAIT_S`` ("database is
    locked", which named no one). Says who has the journal open, as far as this user can see, and
    what to do. An ``OperationalError`` still: whoever retries a refused write (the daemon) does."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"the journal {path} stayed locked by another process for {LOCK_WAIT_S:g} s; it is open in: "
            f"{open_in(path)}. facesortd holds it for moments only: a tool with it open in a transaction (a "
            "sqlite3 shell, a database browser) must end it or close; a facesortd that holds it this "
            "long is stuck: restart it (the daemon: systemctl --user restart facesortd). Then run this "
            "again: what could not be journaled was not moved"
        )


def open_in(path: Path) -> str:
    """The other processes that have the journal at ``path`` open, the daemon named as such: who may
    hold its lock, for the person to end."""
    who = [f"pid {pid} ({command})" for pid, command in openers(path)]
    state_dir = path.parent
    if daemon_running(state_dir) and (pid := holder_pid(state_dir)):
        who = [f"{w}, the facesortd daemon" if w.startswith(f"pid {pid} ") else w for w in who]
    return "; ".join(who) or "no process of yours (another user's? sudo fuser -v the journal)"


def _busy(exc: sqlite3.OperationalError, path: Path) -> sqlite3.OperationalError:
    """The error to raise for ``exc``: a lock held past the wait names its holder."""
    return JournalLocked(path) if "locked" in str(exc) else exc


class JournalUnavailable(JournalError):
    """The journal is whole but its folder takes no writes now (a full disk, a read-only mount).

    Apart from damage because the fix differs: moving the journal aside would throw away undo
    history and labels for a disk that only needs room, and the daemon is worth restarting once
    there is some (`facesortd` exits 1 for it, which systemd restarts, not 2).
    """

    def __init__(self, path: Path, exc: OSError | sqlite3.Error) -> None:
        folder = where = path.parent
        unreachable = None
        while True:
            # A state folder not made yet is asked of the folder it would be made in: a missing one
            # (ENOENT) under a read-only mount was said to be on a drive to plug in.
            try:
                fs = os.statvfs(where)
                read_only, room = bool(fs.f_flag & os.ST_RDONLY), fs.f_bavail * fs.f_frsize
                sized = fs.f_blocks > 0  # fusefat says 0 of everything: its size is not known, not full
                break
            except FileNotFoundError:
                if where == where.parent:
                    raise
                where = where.parent
            except OSError as gone:
                read_only, room, sized, unreachable = False, 1 << 30, False, gone
                break
        kind = filesystem_type(where)
        made = "" if where == folder else f"{folder} cannot be made: "
        if unreachable is not None:
            # Its drive pulled out (a FUSE mount then answers "Transport endpoint is not connected"):
            # neither the filesystem's kind nor dmesg is what the person needs to hear first.
            fix = (
                f"{where} cannot be reached now ({unreachable.strerror or unreachable}): if it is on a "
                "drive, plug it in and mount it again"
            )
        elif read_only:
            fix = f"{made}{where} is on a read-only filesystem: mount it writable"
            if made:
                fix += ", or set state_dir to a folder on a writable one"
        elif sized and room < 1 << 20:
            fix = made + disk_full_fix(where)
        elif kind is not None and (kind.startswith("fuse") or kind in FOREIGN_FILESYSTEMS):
            # fusefat refuses SQLite's -shm file its size ("disk I/O error"), which was called a full disk
            fix = (
                f"{folder} is on {kind}, which does not give SQLite what its journal needs: keep "
                "state_dir on a Linux filesystem (ext4, btrfs, xfs), such as the default "
                "~/.local/state/facesortd, and only the library on that drive"
            )
        else:
            fix = "look at what the system says of its disk (dmesg)"
        why = getattr(exc, "strerror", None) or exc
        kept = "" if made else "; it is not damaged, keep it"  # none was made: nothing to keep
        super().__init__(f"cannot use the journal {path} ({why}): {fix}{kept}")


class JournalReplaced(JournalError, sqlite3.OperationalError):
    """The journal file this process opened is no longer at its path: deleted with its state folder,
    or moved aside and replaced while facesortd ran. SQLite goes on writing into the open file, so
    every later move was recorded where no `undo`, `status` or crash recovery would ever look (and a
    deleted state folder took the daemon lock with it). A move is refused before it is planned; the
    daemon stops (exit 1, which systemd restarts) and opens the journal found there then."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"the journal {path} (or its -wal file) was removed or replaced while facesortd had it "
            "open: no move is recorded in the old one any more; facesortd must be started again to use "
            "the one there now (the daemon stops for systemd to restart it; files not moved yet stay "
            "where they are)"
        )


def _blob(path: Path | None) -> bytes | None:
    """A path as stored and looked up: the filesystem's own bytes, whatever the name's encoding, and
    absolute: `sort shots/a.png` kept "shots/a.png", which `undo` read from another folder as that
    folder's own, and the rules that find a file by its name (undone, copied) missed it by its full one."""
    return None if path is None else os.fsencode(Path(path).absolute())


def _inside(folder: Path) -> bytes:
    """``folder`` as the start of the stored paths inside it: with its separator, so that
    ``<library>-old/…`` is not in ``<library>`` (compare with ``substr(…, 1, length(?))``)."""
    return _blob(folder / "x")[:-1]  # type: ignore[index]


def _path(value: str | bytes) -> Path:
    return Path(os.fsdecode(value))


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


@dataclass(frozen=True)
class ModelId:
    """A model as the journal records the decisions it made: its file's name (``model``) and a short
    hash of its content (``model_version``). The name alone was the same for every facesortd version's
    shipped model and for two pinned files of one name, so `undo --model default` took what an
    earlier version's shipped model had sorted too, and a model's count took in the other's files.
    ``version`` None: not known (a row an older facesortd wrote, a model file gone), which is told
    apart by the name alone, as before."""

    name: str
    version: str | None = None

    @classmethod
    def recorded(cls, name: str | None, version: str | None) -> ModelId | None:
        """The model a row's ``model`` and ``model_version`` name (None: none recorded)."""
        return None if name is None else cls(name, version)

    def matches(self, other: ModelId | None) -> bool:
        """Is ``other`` this model, as far as both say? Same name, and the same content unless either
        does not say which."""
        return (
            other is not None
            and other.name == self.name
            and (None in (self.version, other.version) or other.version == self.version)
        )


NO_MODEL = ModelId("none")
"""Who decided a move made with no model at all (every face unsure)."""


@dataclass(frozen=True)
class Move:
    """One journal entry."""

    id: int
    hash: str
    source: Path
    destination: Path
    action: str
    emotion: str | None
    reason: str | None
    confidence: float | None
    model: str | None
    state: str
    started: float
    finished: float | None
    """When it finished, as the clock read it then (not the journal's order: :data:`_STAMP`)."""
    copied: bool | None = None
    """A `sort --copy` (the source stayed); None in journals from before this was recorded."""
    claimed: Path | None = None
    """The name this move, or `undo` putting it back, last claimed (see :meth:`Journal.claiming`),
    while it is under way; None: none."""
    claims_recorded: bool = True
    """False for moves journaled before claims were recorded (2026-12-03): ``claimed`` not known."""
    made_folder: bool = False
    """The move made the folder it put the file in (a label giving a new class makes its folder);
    False where not, and for moves journaled before this was recorded (2026-12-03)."""
    model_version: str | None = None
    """The content of the model that decided it (:class:`ModelId`); None for the review page's (a
    person's) and for moves journaled before this was recorded (2026-12-03)."""

    @property
    def judged_by(self) -> ModelId | None:
        """The model that decided it (None: none recorded)."""
        return ModelId.recorded(self.model, self.model_version)

    @property
    def in_full(self) -> bool:
        """Were both paths journaled in full? Older versions kept them as typed (`sort shots/a.png`),
        relative to a folder they did not record: recovery, `undo` and `status` never read such a
        path in their own folder (recovery deleted a moved file so), and ask this one question."""
        return self.source.is_absolute() and self.destination.is_absolute()


class Journal:
    """One SQLite database per state folder; safe to share between the daemon's threads."""

    def __init__(self, path: Path, *, drive_asked: bool = False) -> None:
        """``drive_asked``: the caller has just asked ``drive_not_mounted`` of its folder and found the
        drive there (`status`, whose problem line needs the answer too): not asked again, as each
        asking reads fstab and the mount table."""
        self.path = path
        # Not made below a mount point whose drive is away (`undo`, `review`, `retrain` made it there
        # as `run` and `sort` no longer do): the next `run` took that empty journal for its own.
        if not drive_asked:
            refuse_unmounted(path.parent)
        try:
            self.state_dir = ensure_private_dir(path.parent)
            ensure_private_file(path)
            for part in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
                if part.exists() and not os.access(part, os.R_OK | os.W_OK):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(part))
        except PermissionError as exc:
            raise JournalError(str(not_yours(exc, path.parent))) from None
        except OSError as exc:
            if exc.errno in (errno.EROFS, *DISK_FULL):
                raise JournalUnavailable(path, exc) from None
            raise JournalError(  # a folder, a FIFO, a link to nowhere in its place
                f"cannot use the journal {path} ({exc.strerror or exc}): it must be a file facesortd may "
                "read and write; move it aside (what is there is not facesortd's journal)"
            ) from None
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=LOCK_WAIT_S)
        self._lock = threading.Lock()
        self._opened = _identity(path)
        self._wal: tuple[int, int] | None = None
        try:
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                # Switching modes is the one step SQLite does not wait for (it fails "locked" at
                # once): a first daemon and `sort` creating the journal together take turns here.
                with move_lock(self.state_dir):
                    self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            problems = [r[0] for r in self._db.execute("PRAGMA quick_check").fetchall()]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems[:3]))
            if newer := self._newer_column():  # said once, before any migration touches it
                self._db.close()
                raise JournalError(
                    f"the journal {path} was written by a newer facesortd ({newer} is new to this one): "
                    "use that version again (upgrade this one); it is not damaged, keep it"
                )
            self._migrate_label_sources()
            self._db.executescript(SCHEMA)
            self._migrate_review_page_moves()
            self._migrate_added_columns()
            self._withdraw_claim_labels()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if isinstance(exc, sqlite3.OperationalError):  # damage is DatabaseError proper
                if "locked" in str(exc):
                    raise JournalLocked(path) from exc
                raise JournalUnavailable(path, exc) from None
            raise JournalError(
                f"the journal {path} is damaged ({exc}): stop facesortd, move it aside "
                f"(mv '{path}' '{path}.damaged'; also its -wal/-shm files) and start again with a new "
                "one; your sorted files are untouched, only undo history and labels live in it"
            ) from None

    def _newer_column(self) -> str | None:
        """A column (``table.name``) that a newer facesortd's journal requires and this one does not
        know: each move it planned failed in turn ("NOT NULL constraint failed: moves.size"). Columns
        or tables it adds that nothing requires are no obstacle."""
        known = sqlite3.connect(":memory:")
        try:
            known.executescript(SCHEMA)
            for (table,) in known.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                ours = {row[1] for row in known.execute(f"PRAGMA table_info({table})")}
                for _cid, name, _type, required, default, key in self._db.execute(
                    f"PRAGMA table_info({table})"
                ):
                    if required and default is None and not key and name not in ours:
                        return f"{table}.{name}"
        finally:
            known.close()
        return None

    def _migrate_label_sources(self) -> None:
        """Journals from before 'dataset' labels existed: rebuild the labels table to allow them.

        SQLite cannot change a CHECK constraint in place; the copy runs in one transaction, so a
        crash leaves either the old table or the new one, never neither. Copied by column name: the
        first such journals had no ``box`` column yet (it stays NULL there).
        """
        row = self._db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'labels'"
        ).fetchone()
        if row is None or "'dataset'" in row[0]:
            return
        with self._migration():
            self._db.execute("ALTER TABLE labels RENAME TO labels_before_dataset")
            self._db.execute(LABELS_TABLE)
            old = self._db.execute("PRAGMA table_info(labels_before_dataset)").fetchall()
            columns = ", ".join(f'"{column[1]}"' for column in old)
            self._db.execute(f"INSERT INTO labels ({columns}) SELECT {columns} FROM labels_before_dataset")
            self._db.execute("DROP TABLE labels_before_dataset")

    def _migrate_review_page_moves(self) -> None:
        """Journals from before the ``labelled`` kind recorded a person's review-page move as ``sorted``
        (model "review page"): say what happened, once, so every reader sees a person's label."""
        if self.get_meta(LABELLED_KIND):
            return
        with self._migration():
            self._db.execute(
                "UPDATE moves SET action = 'labelled' WHERE action = 'sorted' AND model = ?", (REVIEWER,)
            )
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, '1')", (LABELLED_KIND,))

    def _migrate_added_columns(self) -> None:
        """Columns older journals lack, added with NULL (unknown) in their rows: ``copied`` (before
        2026-11-30's fifth round: was a move a `sort --copy`? undo treats them as before) and
        ``claimed`` (before 2026-12-03: the name a move claimed; recovery removes a claim of
        such a row by the older rule) and ``made_folder`` (before 2026-12-03: undo leaves the
        folder of such a move as it is) and ``model_version`` (before 2026-12-03: such a row's model
        is known by its name alone, :class:`ModelId`) and ``clock`` of moves and labels (before
        2026-12-03: the row's stamp was the clock's reading as far as is known, :data:`_STAMP`)."""
        for table, column, kind in (
            ("moves", "copied", "INTEGER"),
            ("moves", "claimed", "BLOB"),
            ("moves", "made_folder", "INTEGER"),
            ("moves", "model_version", "TEXT"),
            ("moves", "clock", "REAL"),
            ("labels", "clock", "REAL"),
        ):
            if self._has_column(table, column):
                continue
            with self._migration():  # looked at again inside: another process may have just added it
                if not self._has_column(table, column):
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _withdraw_claim_labels(self) -> None:
        """Journals whose label scan (before 2026-12-03) recorded a name a crash left in an emotion
        folder of a FAT or exFAT library (a move's claim: empty, or holding its mark) as a person's
        label with no face: withdrawn, once, so that it is never counted (`status` said one label
        too many) nor learnt. Such a label is known by its content: an empty file's, or the mark of
        a move the journal holds (:func:`claim_mark`), the only ones a claim ever held. A state
        disk that takes no write now (full, read-only) leaves it to the next open: the journal opened
        on such a disk before, for `status` to say so."""
        if self.get_meta(CLAIM_LABELS_WITHDRAWN):
            return
        withdrawn: list[tuple[str, Path]] = []
        try:
            with self._migration():  # looked at again inside: another process may have just done it
                if not self.get_meta(CLAIM_LABELS_WITHDRAWN):
                    withdrawn = self._claim_labels()
                    for digest, path in withdrawn:
                        self.withdraw_label(digest, path)
                    self.set_meta(CLAIM_LABELS_WITHDRAWN, "1")
        except sqlite3.OperationalError:
            return
        for _digest, path in withdrawn:  # said once it holds
            logger.info(
                "{}: withdrew the label an older facesortd recorded for it, a name a crash left (no picture)",
                path,
            )

    def _claim_labels(self) -> list[tuple[str, Path]]:
        """The person's labels with no face whose content a claim held (:meth:`_withdraw_claim_labels`)."""
        faceless = self._rows(f"SELECT hash, path FROM labels AS l WHERE {PERSON_LABEL} AND face IS NULL")
        if not faceless:
            return []
        marked = self._rows("SELECT id, hash FROM moves WHERE claimed IS NOT NULL")
        leftovers = {EMPTY_HASH} | {hashlib.sha256(claim_mark(*move)).hexdigest() for move in marked}
        return [(digest, _path(path)) for digest, path in faceless if digest in leftovers]

    def _has_column(self, table: str, column: str) -> bool:
        return column in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()}

    @contextmanager
    def _migration(self) -> Iterator[None]:
        """One transaction for a migration: a crash leaves the journal as it was before it or after it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def replaced(self) -> bool:
        """Is the file at ``path``, or its ``-wal``, no longer the one this journal opened (see
        JournalReplaced)? A path that cannot be looked at now (a permission taken away) is not taken
        for replaced.

        SQLite makes the ``-wal`` at the first read and removes it only when the last connection
        closes, so while this one is open it stays the same file. Deleted (`rm journal.sqlite-*`),
        every move since was written where a kill -9 lost it, and every other command was refused
        with "disk I/O error"; this connection's close writes them into the journal itself."""
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            if _identity(self.path) != self._opened:
                return True
            if self._wal is None:  # taken at the first look; none (a journal not in WAL mode): no check
                self._wal = _identity(wal) if wal.exists() else None
                return False
            return _identity(wal) != self._wal
        except FileNotFoundError:
            return True
        except OSError:
            return False

    @classmethod
    def for_state_dir(cls, state_dir: Path, *, drive_asked: bool = False) -> Journal:
        return cls(state_dir / JOURNAL_FILE, drive_asked=drive_asked)

    def close(self) -> None:
        """Close under the lock: a review-page request still running on another thread finishes its
        statement first, and any later one gets sqlite3's "closed database" error."""
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, args: tuple[object, ...] | dict[str, object] = ()) -> list[tuple]:
        """Run one statement and fetch all its rows under the lock.

        The connection is shared by the daemon's workers and the review page's request threads;
        fetching steps the statement, so a fetch outside the lock would interleave with another
        thread's statement (or with ``close``) on the same connection.
        """
        with self._lock:
            return self._execute(sql, args).fetchall()

    def _execute(self, sql: str, args: tuple[object, ...] | dict[str, object]) -> sqlite3.Cursor:
        """One statement on the shared connection, under ``_lock`` (held by the caller, who may need
        the cursor); a write lock held past ``LOCK_WAIT_S`` by another process names its holder."""
        try:
            return self._db.execute(sql, args)
        except sqlite3.OperationalError as exc:
            raise _busy(exc, self.path) from exc

    def _row(self, sql: str, args: tuple[object, ...] = ()) -> tuple | None:
        """The first row of :meth:`_rows`, or None."""
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def plan(
        self,
        digest: str,
        source: Path,
        destination: Path,
        decision: Decision,
        model: str | None,
        *,
        version: str | None = None,
        copied: bool = False,
        made_folder: bool = False,
    ) -> int:
        """Record the intended move (committed before anything is touched); returns its id.

        ``model``, ``version``: the model that decided it (:class:`ModelId`; the review page's name
        for a person's label, with no version).
        ``copied``: a `sort --copy`, which leaves the source in place; undo then only removes the copy.
        ``made_folder``: its destination's folder is not there yet, so the move makes it.
        A journal no longer at its path is JournalReplaced: the move would be recorded nowhere.
        """
        if self.replaced():
            raise JournalReplaced(self.path)
        with self._lock:
            cur = self._execute(
                "INSERT INTO moves (hash, source, destination, action, emotion, reason, confidence, model,"
                " state, started, copied, claimed, made_folder, model_version)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?, x'', ?, ?)",
                (
                    digest,
                    _blob(source),
                    _blob(destination),
                    decision.action,
                    decision.emotion,
                    decision.reason,
                    decision.confidence,
                    model,
                    time.time(),
                    int(copied),
                    int(made_folder),
                    version,
                ),
            )
            return int(cur.lastrowid or 0)

    def finish(self, move_id: int, state: str, destination: Path | None = None) -> None:
        """Mark a move done (with its final path), rolled back, or undone. Its claim is forgotten: an
        `undo` marks the move undone before it claims a name of its own to put the file back."""
        sql = f"UPDATE moves SET state = :state, finished = {_STAMP}, clock = :now, claimed = x''"
        args = {"state": state, "now": time.time(), "id": move_id, "to": _blob(destination)}
        self._rows(f"{sql}{'' if destination is None else ', destination = :to'} WHERE id = :id", args)

    def put_back_as(self, move: Move, name: Path) -> None:
        """The name under which `undo` put ``move``'s file back, if not the one it left (taken since:
        `a (1).png`): its source from now on. Kept as the name it left, :meth:`undone_from` did not
        know the file as undone, and the daemon sorted it again at once."""
        if name != move.source:
            self._rows("UPDATE moves SET source = ? WHERE id = ?", (_blob(name), move.id))

    def claiming(self, move_id: int, name: Path) -> bytes:
        """Record the name move ``move_id`` (or `undo` putting it back) is about to claim
        (``durable.Claiming``; only where the filesystem has no no-replace rename); returns the mark
        the claim is made holding (:func:`claim_mark`). Recovery removes that name alone, and only
        while it holds the mark: not every fresh empty file under a name the move might have taken,
        nor an empty file under this very name, which a kill before the claim was made leaves free
        for a screenshot tool to create."""
        sql = "UPDATE moves SET claimed = ? WHERE id = ? RETURNING hash"
        [(digest,)] = self._rows(sql, (_blob(name), move_id))
        return claim_mark(move_id, digest)

    def error(self, path: Path | None, message: str) -> None:
        """The message is kept as bytes: one naming a file whose name is not UTF-8 holds surrogates,
        which SQLite's text refuses, and that error would reach the log only, never `status`."""
        self._rows(
            "INSERT INTO errors (at, path, message) VALUES (?, ?, ?)",
            (time.time(), _blob(path), message.encode("utf-8", "surrogateescape")),
        )

    def _moves(self, where: str, args: tuple[object, ...] = ()) -> list[Move]:
        rows = self._rows(f"SELECT {MOVE_COLUMNS}, {_READING} FROM moves WHERE {where}", args)
        return [
            Move(
                r[0],
                r[1],
                _path(r[2]),
                _path(r[3]),
                *r[4:11],
                r[16],
                None if r[12] is None else bool(r[12]),
                _path(r[13]) if r[13] else None,
                r[13] is not None,
                bool(r[14]),
                r[15],
            )
            for r in rows
        ]

    def move(self, move_id: int) -> Move | None:
        found = self._moves("id = ?", (move_id,))
        return found[0] if found else None

    def planned(self) -> list[Move]:
        return self._moves("state = 'planned' ORDER BY id")

    def moved_paths(self) -> list[Path]:
        """Every path a move came from or went to, each once, as journaled (an older version's may be
        relative): where crash recovery looks for half-written copies."""
        rows = self._rows("SELECT DISTINCT destination FROM moves UNION SELECT DISTINCT source FROM moves")
        return [_path(r[0]) for r in rows]

    def last_for_hash(self, digest: str) -> Move | None:
        """The newest finished entry for this content (done or undone), if any."""
        found = self._moves("hash = ? AND state IN ('done', 'undone') ORDER BY id DESC LIMIT 1", (digest,))
        return found[0] if found else None

    def placed_in(self, digest: str, library: Path) -> list[Path]:
        """Where facesortd put this content in ``library``, newest first (there or not any more)."""
        rows = self._rows(
            "SELECT destination FROM moves WHERE hash = ?1 AND state = 'done'"
            " AND substr(CAST(destination AS BLOB), 1, length(?2)) = ?2 ORDER BY id DESC",
            (digest, _inside(library)),
        )
        return [_path(row[0]) for row in rows]

    def sorted_from(self, folder: Path) -> int:
        """How many files facesortd moved out of ``folder`` itself (not its sub-folders) and did not
        put back: what `sort FOLDER` run again finds gone."""
        rows = self._rows(
            "SELECT count(*) FROM moves WHERE state = 'done' AND copied IS NOT 1"
            f" AND {_IN_FOLDER.format('source')}",
            (_inside(folder),),
        )
        return int(rows[0][0])

    def done_moves(self, limit: int | None = None) -> list[Move]:
        """Finished moves, newest first; at most ``limit`` of them (any number: `undo 99999999999999999999`
        means all, where SQLite refuses a count beyond its 64 bits with "datatype mismatch")."""
        sql = "state = 'done' ORDER BY id DESC LIMIT ?"
        return self._moves(sql, (min(limit, 2**63 - 1) if limit else -1,))

    def done_since(self, since: float) -> tuple[list[Move], list[Move]]:
        """The finished moves made since the time ``since``, newest first, and those left out (newest
        first) as not known to be (:meth:`_since`), for the caller to say, never undone unasked."""
        after, until = self._since("moves", since)
        taken = self._moves("state = 'done' AND finished >= ? ORDER BY id DESC", (until,))
        between = "state = 'done' AND finished > ? AND finished < ? ORDER BY id DESC"
        left = self._moves(between, (after, until))
        return taken, left

    def _since(self, table: str, since: float) -> tuple[float, float]:
        """The rows of ``table`` (moves, labels) made since the time ``since``, as a span of the
        journal's order (:data:`_STAMP`): all from the second stamp on; those after the first and
        before the second are not known to be: journaled at times ahead of the clock now, between
        the last row made before ``since`` and the first made since.

        By the clock's readings, not the stamps (:data:`_STAMP`). A reading ahead of the clock now is
        the clock's error then (or now) and says nothing of when: such a row is taken if it came
        after one made since ``since``, and not if it came before every such row, as the clock
        cannot tell which side of ``since`` it lies."""
        stamp, reading = ("finished", _READING) if table == "moves" else ("created", _LABEL_READING)
        [(before,)] = self._rows(f"SELECT MAX({stamp}) FROM {table} WHERE {reading} < ?", (since,))
        after = -1.0 if before is None else before
        [(first,)] = self._rows(
            f"SELECT MIN({stamp}) FROM {table} WHERE {stamp} > ? AND {reading} BETWEEN ? AND ?",
            (after, since, time.time()),
        )
        return after, float("inf") if first is None else first

    def undone_from(self, path: Path, digest: str) -> bool:
        """Did a person undo the sort of this content from ``path`` (and nothing sorted it from there
        since)? Sorts of the same content from elsewhere, e.g. a ``sort --copy``, do not count."""
        last = self._last_sort_from(path, digest)
        return last is not None and last.state == "undone"

    def copied_from(self, path: Path, digest: str, library: Path) -> Move | None:
        """The `sort --copy` of this content from ``path`` into ``library`` that still stands (its
        copy not undone), if the newest sort of it from there into that library was one. Per library:
        a copy in one made every other refuse the file, as "copied into the library before"."""
        found = self._moves(
            "hash = ? AND CAST(source AS BLOB) = ? AND state IN ('done', 'undone')"
            " AND substr(CAST(destination AS BLOB), 1, length(?3)) = ?3 ORDER BY id DESC LIMIT 1",
            (digest, _blob(path), _inside(library)),
        )
        last = found[0] if found else None
        return last if last is not None and last.state == "done" and last.copied else None

    def _last_sort_from(self, path: Path, digest: str) -> Move | None:
        """The newest finished sort (done or undone) of this content from ``path``."""
        found = self._moves(
            "hash = ? AND CAST(source AS BLOB) = ? AND state IN ('done', 'undone') ORDER BY id DESC LIMIT 1",
            (digest, _blob(path)),
        )
        return found[0] if found else None

    def done_at(self, destination: Path) -> Move | None:
        found = self._moves(
            "state = 'done' AND CAST(destination AS BLOB) = ? ORDER BY id DESC LIMIT 1", (_blob(destination),)
        )
        return found[0] if found else None

    def done_from(self, source: Path) -> Move | None:
        """The newest move still standing of a file from ``source`` (where it was before it was sorted)."""
        found = self._moves(
            "state = 'done' AND CAST(source AS BLOB) = ? ORDER BY id DESC LIMIT 1", (_blob(source),)
        )
        return found[0] if found else None

    def model_names(self) -> set[str]:
        """The name of every model a move was journaled as decided by, undone since or not."""
        return {row[0] for row in self._rows("SELECT DISTINCT model FROM moves WHERE model IS NOT NULL")}

    def judged_by(self, folder: Path) -> dict[Path, ModelId | None]:
        """The model whose decision put each file of ``folder`` where it is: the newest finished move
        to each of its names. One query for a whole folder (a first backlog leaves thousands of files
        in unsure/), where :meth:`done_at` per file would scan the table each time."""
        sql = "SELECT destination, model, model_version FROM moves WHERE state = 'done' ORDER BY id"
        judged = {_path(to): ModelId.recorded(by, version) for to, by, version in self._rows(sql)}
        return {path: model for path, model in judged.items() if path.parent == folder}

    def counts(self, library: Path, since: float | None = None) -> dict[str, int]:
        """Files facesortd placed per folder (``happy``, ``_quarantine/no-face`` ...) of ``library``
        (since a time: :meth:`_since`, not by each move's reading alone, by which one journaled
        ahead of the clock counted as made today until the clock reached it); a `sort --library`
        elsewhere is not this library's: it was counted in it.

        A placement facesortd itself moved on later (an unsure file re-examined into ``happy/``)
        counts only where the file went last, so the counts add up to the files placed. A file a
        person labelled since, on the review page or with a file manager, is theirs from then on:
        it counts in :meth:`labelled_counts` instead.
        """
        rows = self._rows(
            "SELECT action, COALESCE(emotion, ''), COALESCE(reason, ''), COUNT(*) FROM moves AS m"
            " WHERE state = 'done' AND action != 'labelled' AND finished >= ?1"
            " AND substr(CAST(m.destination AS BLOB), 1, length(?2)) = ?2"
            " AND NOT EXISTS (SELECT 1 FROM labels AS l WHERE l.hash = m.hash AND l.created >= m.finished"
            f" AND {PERSON_LABEL})"
            # By content: SQLite's own choice, the state index, made this quadratic (32 s for 20,000 moves).
            " AND NOT EXISTS (SELECT 1 FROM moves AS later INDEXED BY moves_hash WHERE later.state = 'done'"
            " AND later.hash = m.hash AND CAST(later.source AS BLOB) = CAST(m.destination AS BLOB)"
            " AND later.id > m.id)"
            " GROUP BY 1, 2, 3",
            (self._from("moves", since), _inside(library)),
        )
        counts: dict[str, int] = {}
        for action, emotion, reason, n in rows:
            # Unsure files differ by best guess: a quarantine folder's count adds them up.
            key = emotion if action == "sorted" else f"{QUARANTINE_DIR}/{reason}"
            counts[key] = counts.get(key, 0) + n
        return dict(sorted(counts.items()))

    def labelled_counts(self, since: float | None = None) -> dict[str, int]:
        """Files a person labelled per label (given, or last changed, since a time: :meth:`_since`)."""
        rows = self._rows(
            f"SELECT label, COUNT(*) FROM labels AS l WHERE created >= ? AND {PERSON_LABEL} GROUP BY label",
            (self._from("labels", since),),
        )
        return dict(sorted(rows))

    def _from(self, table: str, since: float | None) -> float:
        """The stamp from which the rows of ``table`` were made since the time ``since`` (None: all)."""
        return float("-inf") if since is None else self._since(table, since)[1]

    def add_label(
        self, digest: str, label: str, source: str, face: tuple[Path, Box] | None, group: str, path: Path
    ) -> None:
        """Record a person's label: content hash, label, source, kept face crop and its box in the image.

        A later label of the same content wins.
        """
        crop, box = (str(face[0]), json.dumps(list(face[1]))) if face else (None, None)
        self._rows(
            "INSERT INTO labels (hash, label, source, face, box, grp, path, created, clock)"
            f" VALUES (:hash, :label, :source, :face, :box, :grp, :path, {_STAMP}, :now)",
            {
                "hash": digest,
                "label": label,
                "source": source,
                "face": crop,
                "box": box,
                "grp": group,
                "path": _blob(path),
                "now": time.time(),
            },
        )

    def withdraw_label(self, digest: str, path: Path) -> None:
        """The person took the file back out of its emotion folder: its label no longer counts."""
        self.add_label(digest, WITHDRAWN, "human", None, "", path)

    def placed_at(self, path: Path, digest: str, *, in_its_folder: bool = False) -> float | None:
        """When facesortd last moved this content to ``path`` (``in_its_folder``: to any name in
        ``path``'s folder) of its own accord (inf: it is moving it right now), or None (it never
        did, or it moved it away from there since).

        "Right now" closes a race: between the move and its ``done`` mark the file already sits in
        its folder and must not be taken for a person's decision. A ``labelled`` move is a person's
        decision, so it never counts as placed (after a crash between such a move and its label,
        the label is found again like a file-manager move).
        """
        if self._row("SELECT 1 FROM moves WHERE hash = ? AND state = 'planned'", (digest,)):
            return float("inf")
        at = _IN_FOLDER if in_its_folder else "CAST({0} AS BLOB) = ?1"
        placed, left = self._row(
            f"SELECT MAX(CASE WHEN {at.format('destination')} AND action != 'labelled' THEN finished END),"
            f" MAX(CASE WHEN {at.format('source')} THEN finished END)"
            " FROM moves WHERE hash = ?2 AND state = 'done'",
            (_inside(path.parent) if in_its_folder else _blob(path), digest),
        )
        # Moved away from here by facesortd later (re-examined): whoever brought it back was a person.
        return None if placed is None or (left is not None and left > placed) else placed

    def placed_last(self, path: Path, digest: str, *, in_its_folder: bool = False) -> bool:
        """True if facesortd's own move put this content at ``path`` (``in_its_folder``: into its
        folder, under any name) after any label a person gave it.

        False means a person put it there (or moved it back there after labelling it): their decision.
        """
        placed = self.placed_at(path, digest, in_its_folder=in_its_folder)
        label = self.label_for_hash(digest)
        if placed is None:
            return False
        # A label given to a twin of this file elsewhere says nothing of this one: facesortd's.
        return label is None or placed >= label[1] or self.labelled_elsewhere(path, digest)

    def labelled_elsewhere(self, path: Path, digest: str) -> bool:
        """Is this content's newest label (or its withdrawal) about another file of the same content,
        still where the person left it? Labels are kept by content, so a copy of the picture that
        stayed in quarantine all along looks like a labelled file moved back there."""
        labelled = self.labelled_at(digest)
        return labelled is not None and labelled != path and holds(labelled, digest)

    def label_for_hash(self, digest: str) -> tuple[str, float] | None:
        """The newest label of this content and when it was given (label "" if withdrawn)."""
        row = self._row(
            "SELECT label, created FROM labels WHERE hash = ? ORDER BY id DESC LIMIT 1", (digest,)
        )
        return (row[0], row[1]) if row else None

    def label_clock(self, digest: str) -> float | None:
        """When this content's newest label was given, as the clock read it (not the journal's
        order, :data:`_STAMP`): what a file's own times, the kernel's clock, are compared with."""
        sql = f"SELECT {_LABEL_READING} FROM labels WHERE hash = ? ORDER BY id DESC LIMIT 1"
        row = self._row(sql, (digest,))
        return row[0] if row else None

    def labelled_at(self, digest: str) -> Path | None:
        """Where the file stood when this content got its newest label (None: never labelled)."""
        sql = "SELECT path FROM labels WHERE hash = ? ORDER BY id DESC LIMIT 1"
        row = self._row(sql, (digest,))
        return _path(row[0]) if row else None

    def labels(self) -> list[tuple[str, str, str, str | None, str, float]]:
        """The newest label per content unless withdrawn: (hash, label, source, face, group, created)."""
        return self._rows(
            "SELECT hash, label, source, face, grp, created FROM labels AS l"
            f" WHERE {CURRENT_LABEL} ORDER BY id"
        )

    def get_meta(self, key: str, default: str = "") -> str:
        row = self._row("SELECT value FROM meta WHERE key = ?", (key,))
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._rows("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def last_errors(self, n: int = 5) -> list[tuple[float, str, str]]:
        """Messages as :meth:`error` keeps them; an older facesortd kept them as text."""
        rows = self._rows("SELECT at, path, message FROM errors ORDER BY id DESC LIMIT ?", (n,))
        return [
            (
                at,
                os.fsdecode(path) if path is not None else "",
                message.decode("utf-8", "surrogateescape") if isinstance(message, bytes) else message,
            )
            for at, path, message in rows
        ]
