"""The state folder: what lives where in it, who may use it at once, and who may read it.

Several processes share one state folder: the daemon (`run`), and beside it a person's `sort`,
`undo`, `retrain` and `status`. Four locks (flock, released by the kernel when a process dies,
so a crash never leaves one behind) keep them from harming each other's files:

- the *daemon lock*, held by `run` for its whole life: a second daemon on the same folder would
  race the first for every file, so it is refused, naming the running pid;
- the *move lock*, held around each single journaled move (plan, link, unlink, done) by every
  process that moves a user's file, and by crash recovery for its whole run. A ``planned``
  journal row therefore exists only while its owner holds this lock: whoever holds it sees only
  the planned rows of dead owners, so recovery can never undo a live process's move, and a file
  claimed by one process is gone from its source before another can link it a second time. It
  is a flock on the state folder as well as on its file, which may be deleted under its holder;
- the *retrain lock*: one retrain at a time (the daemon's own, `facesortd retrain`, the review
  page's "retrain now"), and no change of the model in force by hand during one; its holder writes
  which of the two it is into the lock file, for a waiting process to say;
- the *models lock*, held around each change of the model in force and its history (read, add,
  write): `model use` and a retrain's adopt each rewrote the history from what they had read, and
  one of the two lines was lost.

The folder is private (0700): the journal names every file a user sorted, its hash and label.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from loguru import logger

from facesortd.durable import remove_temp_files
from facesortd.mounts import refuse_unmounted
from facesortd.progress import said_if_waiting
from facesortd.refusals import Refused

JOURNAL_FILE = "journal.sqlite"
STATUS_FILE = "status.json"
MODELS_DIR = "models"
"""Your emotion models, newest in force (model_store.py)."""
REJECTED_DIR = "rejected"
"""Inside MODELS_DIR: retrained models not adopted, kept for inspection (never in force)."""
FACES_DIR = "faces"
"""Face crops kept from the files a person labelled, for retraining (learn/kept_faces.py)."""
REVIEW_DIR = "review"
"""The review page's thumbnails, guesses and marks (review_page/cache.py)."""
DAEMON_LOCK = "daemon.lock"
MOVE_LOCK = "move.lock"
RETRAIN_LOCK = "retrain.lock"
MODELS_LOCK = "models.lock"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


STALE_TEMP_S = 3600.0
"""A state folder's temp file this old was left by a killed writer: its own writes (status, a model,
a face crop, a thumbnail) take seconds from the temp file's creation to its rename."""


def remove_stale_temp_files(state_dir: Path) -> list[Path]:
    """Remove the temp files a writer killed mid-write left in the state folder and its own folders
    (each can be a model's size, and nothing else ever removes them); returns what was removed.
    Only old ones: a live writer (`train` beside the daemon) owns a fresh one."""
    names = (MODELS_DIR, f"{MODELS_DIR}/{REJECTED_DIR}", FACES_DIR, REVIEW_DIR)
    return remove_temp_files((state_dir, *(state_dir / name for name in names)), STALE_TEMP_S)


class StateBusy(Exception):
    """Another process holds a lock this one needs; ``str(exc)`` says which and what to do."""


def not_yours(exc: OSError, state_dir: Path) -> Refused:
    """A file or folder of the state folder this user may not use (left by `sudo facesortd`, or a
    chmod), as the one line with the fix that every refusal is. Not damage: moving the journal
    aside would lose undo history and labels."""
    return Refused(
        exc,
        f"cannot use {exc.filename}",
        f"the state folder and its files must be yours and writable (ls -l '{state_dir}'; made by "
        f"`sudo facesortd`? sudo chown -R \"$USER\" '{state_dir}')",
    )


def ensure_private_dir(folder: Path) -> Path:
    """Create the state folder owner-only (0700), and close an existing one we own that is not.

    Closing takes the group's and others' rights away and leaves the owner's as they are: a folder
    its owner made read-only (chmod 555) stays read-only to them (it was opened up to 0700 again).

    One missing where a drive is not mounted is not made (``mounts.DriveNotMounted``): made on the
    disk below the mount point, it hid a stand-in journal, models and locks there once the drive
    was back (and exfat-fuse refuses to mount over a folder not empty). Asked only of a folder
    missing: every move opens its lock through here, and may not read the mount table each time.
    """
    if not folder.is_dir():
        refuse_unmounted(folder)
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        folder.chmod(stat.S_IMODE(st.st_mode) & PRIVATE_DIR)
    return folder


def ensure_private_file(path: Path) -> Path:
    """Create ``path`` owner-only (0600) if missing; narrow an existing one we own.

    Something else in its place is refused (OSError, "not a regular file") before it is opened:
    a FIFO opened for writing waits for a reader, so every command hung. Opened without waiting all
    the same, in case one is put there in between.
    """
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC, PRIVATE_FILE))
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        path.chmod(PRIVATE_FILE)
    return path


def _open_lock(state_dir: Path, name: str) -> int:
    try:
        ensure_private_dir(state_dir)
        return os.open(state_dir / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    except PermissionError as exc:
        raise not_yours(exc, state_dir) from None


_held = threading.local()


@contextlib.contextmanager
def move_lock(state_dir: Path) -> Iterator[None]:
    """Held around one journaled move or a crash recovery (see the module docstring).

    Each holder opens its own file description, so the daemon's worker threads exclude each
    other too (flock locks belong to the open file description, not the process). A thread that
    holds it may take it again (a last look at a decision, then the move, as one step): a second
    description of its own would wait for the first for ever.
    """
    held: set[Path] = _held.__dict__.setdefault("dirs", set())
    if state_dir in held:
        yield
        return
    fd = _open_lock(state_dir, MOVE_LOCK)
    try:
        with contextlib.ExitStack() as locked:
            if not _taken_at_once(state_dir, fd, locked):
                with said_if_waiting(lambda: _say_waiting_for_moves(state_dir, fd)):
                    locked.enter_context(_folder_lock(state_dir, blocking=True))
                    fcntl.flock(fd, fcntl.LOCK_EX)
            held.add(state_dir)
            try:
                yield
            finally:
                held.discard(state_dir)
    finally:
        os.close(fd)


def _taken_at_once(state_dir: Path, fd: int, locked: contextlib.ExitStack) -> bool:
    """Both halves of the move lock taken without waiting, into ``locked``: the usual case, which
    then starts no thread to say a wait (one per move of a backlog otherwise)."""
    with contextlib.ExitStack() as attempt:
        if not attempt.enter_context(_folder_lock(state_dir, blocking=False)):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        locked.enter_context(attempt.pop_all())
        return True


def _say_waiting_for_moves(state_dir: Path, fd: int) -> None:
    """Said once a wait for the move lock lasts: `sort` beside a daemon stopped mid-move (Ctrl-Z,
    SIGSTOP) waited for it without a word. Not of this process's own threads (the daemon's workers
    wait for each other's moves)."""
    holder = flock_holder(os.fstat(fd)) or flock_holder(os.stat(state_dir))
    if holder == os.getpid():
        return
    if holder is None:
        who = "another process (another user's? sudo fuser -v the file)"
    else:
        who = f"pid {holder} ({_command(holder)})"
        if daemon_running(state_dir) and holder == holder_pid(state_dir):
            who += ", the facesortd daemon"
    why = (
        f"it is stopped (Ctrl-Z, SIGSTOP): `kill -CONT {holder}` lets it go on"
        if holder is not None and _stopped(holder)
        else "a move holds it for a moment, so that process may be stuck"
    )
    logger.warning(
        "waiting for the move lock {}, held by {}: {}; this waits until it lets go (Ctrl-C stops it)",
        state_dir / MOVE_LOCK,
        who,
        why,
    )


def _command(pid: int) -> str:
    """The command line of process ``pid``, shortened; "?" if it cannot be read (gone, another user's)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            words = fh.read().split(b"\0")
    except OSError:
        return "?"
    return os.fsdecode(b" ".join(w for w in words if w))[:120] or "?"


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (its state T in /proc/PID/stat: Ctrl-Z, SIGSTOP)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rpartition(")")[2].split()[:1] == ["T"]


def flock_holder(st: os.stat_result) -> int | None:
    """The process holding a flock on the file ``st`` is of, as /proc/locks shows it (its lines:
    "1: FLOCK  ADVISORY  WRITE <pid> <major>:<minor>:<inode> 0 EOF", major and minor in hex)."""
    file = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = [f for f in line.split() if f != "->"]  # "->": a process waiting for the lock
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == file and fields[4].isdigit():
            return int(fields[4])
    return None


@contextlib.contextmanager
def _folder_lock(state_dir: Path, *, blocking: bool) -> Iterator[bool]:
    """The move lock's second half: a flock on the state folder itself, taken before ``move.lock``'s.

    ``move.lock`` deleted while a move or a recovery held it (`rm <state_dir>/*.lock`, the reflex
    for a "stuck" tool) let the next process make a new one and take it at once: a recovery then saw
    a live move's planned row as a killed one's and could undo it half-way. The folder cannot be
    removed from under its holder that way (with the journal in it, it is JournalReplaced). The file
    is kept too, for an older facesortd beside this one. Where a filesystem takes no flock on a
    folder (some network mounts), only the file's is held, as before. Yields False when not
    ``blocking`` and another holds it."""
    try:
        fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        except OSError:  # no flock on folders here (EBADF, ENOLCK, EINVAL): the file's alone
            pass
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def models_lock(state_dir: Path) -> Iterator[None]:
    """Held around one read-modify-write of the model in force and its history (model_store.py)."""
    fd = _open_lock(state_dir, MODELS_LOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def move_lock_if_free(state_dir: Path) -> Iterator[bool]:
    """The move lock if no one holds it now (True), or nothing (False), without waiting: for a look at
    the journal's planned rows (`status`) that must neither wait for a move nor take a live one for
    one a killed process left. Taken, it may be taken again by the same thread, as :func:`move_lock`
    (a recovery run under it takes it: a second description of its own waited for the first for ever)."""
    held: set[Path] = _held.__dict__.setdefault("dirs", set())
    if state_dir in held:
        yield True
        return
    fd = _open_lock(state_dir, MOVE_LOCK)
    try:
        with _folder_lock(state_dir, blocking=False) as free:
            if not free:
                yield False
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            held.add(state_dir)
            try:
                yield True
            finally:
                held.discard(state_dir)
    finally:
        os.close(fd)


HOLDER_WRITE_S = 1.0
"""How long a refused daemon waits for the holder's pid to appear in the lock file: its scan of
the user's processes comes between taking the lock and writing it."""


class DaemonLock:
    """The lock `run` holds while it lives; its file names the holder's pid for the refusal message.

    ``daemon.lock`` deleted while a daemon held it (`rm <state_dir>/daemon.lock`, the reflex for a
    "stale" pid file) let a second `run` make a new one, take it at once and race the first for every
    file. Unlike the move lock it cannot be a flock on the folder itself, which each move takes. So
    the lock a live daemon still holds is looked for, deleted, among the open files of the user's
    processes (:func:`deleted_lock_holders`) before a new one counts, and a running daemon puts its
    lock back at the path at its next tick (:meth:`keep`), for `status` and an older facesortd."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._fd: int | None = None

    def acquire(self) -> DaemonLock:
        self._fd = self._take()
        return self

    def _take(self) -> int:
        """Take the lock at the path (refused with StateBusy if another daemon holds it or a deleted
        one) and write this pid in it; returns its descriptor."""
        fd = _open_lock(self.state_dir, DAEMON_LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            raise self._busy(self._written_holder()) from None
        if others := deleted_lock_holders(self.state_dir, mine=self._fd):
            os.close(fd)
            raise self._busy(others[0])
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _written_holder(self) -> int | None:
        """The holder's pid, waited for a moment: a daemon writes it only after taking the lock and
        looking for a deleted one among the user's processes, and a refusal in that window named
        "pid ?" with nothing to stop."""
        deadline = time.monotonic() + HOLDER_WRITE_S
        while (pid := holder_pid(self.state_dir)) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return pid

    def _busy(self, pid: int | None) -> StateBusy:
        return StateBusy(
            f"another facesortd daemon (pid {pid or '?'}) already uses {self.state_dir}: stop it first "
            f"({how_to_stop(pid)}), or give this one its own state_dir"
        )

    def keep(self) -> None:
        """Put the lock back at its path if it was deleted (or replaced) under this daemon: `status`
        and an older facesortd look for it there. Raises StateBusy if another process took the path
        meanwhile (an older facesortd, which does not look for a deleted lock), OSError if it cannot
        be made now (tried again at the next call)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.stat(self.state_dir / DAEMON_LOCK), os.fstat(self._fd)):
                return
        fd = self._take()
        os.close(self._fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


def deleted_lock_holders(state_dir: Path, mine: int | None = None) -> list[int]:
    """The processes of this user that still hold this state folder's ``daemon.lock`` after it was
    deleted (what /proc shows as "<path> (deleted)"): a daemon that lives on. ``mine``: this
    process's own descriptor of it, which does not count."""
    deleted = os.fsencode((state_dir / DAEMON_LOCK).absolute()) + b" (deleted)"
    holders = []
    for pid in _pids():
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to look at
            if deleted in _links(pid, leave_out=mine if pid == os.getpid() else None):
                holders.append(pid)
    return holders


def daemon_running(state_dir: Path) -> bool:
    """Is a daemon holding this state folder's daemon lock now (not just its pid file left behind)?"""
    try:
        fd = os.open(state_dir / DAEMON_LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def openers(path: Path) -> list[tuple[int, str]]:
    """The other processes that have ``path`` (or its ``-wal``/``-shm`` files) open, as (pid, command
    line), as far as /proc lets this user see (another user's processes are hidden from it): what
    `fuser` would say, for a message that names who holds a file."""
    names = {os.fsencode(path.absolute()) + end for end in (b"", b"-wal", b"-shm")}
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            if not _links(pid) & names:
                continue
        except OSError:  # gone meanwhile, or not ours to look at
            continue
        found.append((pid, _command(pid)))
    return found


def _pids() -> list[int]:
    """The processes /proc lists (none without /proc mounted: then nobody can be named)."""
    try:
        return sorted(int(entry) for entry in os.listdir("/proc") if entry.isdigit())
    except OSError:
        return []


def _links(pid: int, leave_out: int | None = None) -> set[bytes]:
    """What the open files of process ``pid`` lead to, but for its descriptor ``leave_out`` (one
    closed meanwhile is left out)."""
    links = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if fd == str(leave_out):
            continue
        with contextlib.suppress(OSError):
            links.add(os.readlink(os.fsencode(f"/proc/{pid}/fd/{fd}")))
    return links


def how_to_stop(pid: int | None) -> str:
    """How to stop the daemon ``pid``: by systemd if systemd runs it (its cgroup is the unit's; killed,
    systemd would start it again), else the process itself. The advice was systemctl's alone, which
    for a `facesortd run` in a terminal fails ("Unit facesortd.service not loaded")."""
    if pid is None:
        return "Ctrl-C in the terminal it runs in, or systemctl --user stop facesortd"
    try:
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        cgroup = ""
    if any(line.endswith("/facesortd.service") for line in cgroup.splitlines()):
        return "systemctl --user stop facesortd"
    return f"Ctrl-C in the terminal it runs in, or kill {pid}"


def holder_pid(state_dir: Path) -> int | None:
    """The pid written by the daemon that holds (or last held) the daemon lock."""
    try:
        return int((state_dir / DAEMON_LOCK).read_text().strip())
    except (OSError, ValueError):
        return None


RETRAIN = "a retrain"
"""A holder of the retrain lock: the daemon's retrain, `facesortd retrain`, the review page's."""
MODEL_CHANGE = "a change of the model in force"
"""A holder of the retrain lock too: `model use`, `model rollback`, `train --activate`
(model_change.py), which hold it so that no retrain puts its own model in over the person's choice."""
_HOLDERS = (RETRAIN, MODEL_CHANGE)


def waiting_for(holder: str | None) -> str:
    """What a process waiting for the retrain lock tells its person (the commands print it, the review
    page shows it): who holds it, as that holder wrote it into the lock file, or both when it cannot
    be told (taken a moment ago, its words not written yet, or by an older facesortd). `retrain`
    waiting for a `model use` said a retrain was running, and the person looked for one in vain."""
    return f"{holder or f'{RETRAIN}, or {MODEL_CHANGE},'} is running now: waiting for it to end"


@contextlib.contextmanager
def retrain_lock(
    state_dir: Path, waiting: Callable[[str], None] | None = None, holder: str = RETRAIN
) -> Iterator[bool]:
    """Yields True while this process is the only one retraining (or changing the model in force, as
    ``holder`` says: written into the lock file while held, for a waiter to name). If another is:
    with ``waiting``, call it with :func:`waiting_for`'s words (to tell the person) and wait for the
    other to finish; without, yield False at once."""
    fd = _open_lock(state_dir, RETRAIN_LOCK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is None:
                yield False
                return
            waiting(waiting_for(_holder(fd)))
            fcntl.flock(fd, fcntl.LOCK_EX)
        _write_holder(fd, holder)
        try:
            yield True
        finally:
            _write_holder(fd, "")  # a waiter who finds the next holder yet to write says both, not ours
    finally:
        os.close(fd)


def _holder(fd: int) -> str | None:
    """Who holds the retrain lock, as it wrote: one of ``_HOLDERS``, else None (not told)."""
    try:
        words = os.pread(fd, 100, 0).decode("utf-8", "replace").strip()
    except OSError:
        return None
    return words if words in _HOLDERS else None


def _write_holder(fd: int, words: str) -> None:
    """Best effort: a lock file that takes no writes (a full disk) leaves the waiter's words general."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        if words:
            os.pwrite(fd, words.encode(), 0)
