"""watchdog events -> settled paths. Nothing else in facesortd knows about inotify or watchdog.

A file counts as arrived when its writer closes it (inotify IN_CLOSE_WRITE), when it is renamed
or moved into the inbox (how browsers and screenshot tools finish a save), or when a rescan finds
it. It is handed on only once no process holds it open for writing (as far as inotify shows) and
its size and mtime have stayed the same for ``settle_s``: a file still being written is never read.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import logging
import os
import signal
import stat
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path

from loguru import logger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from facesortd.config import WatchSettings
from facesortd.image_names import is_image_name
from facesortd.refusals import Refused, list_folder
from facesortd.state import StateBusy, flock_holder, how_to_stop


def ignored(name: str, settings: WatchSettings) -> bool:
    """A hidden or temp name (``watch.ignore``): such a file, or such a sub-folder with all it holds."""
    return ignoring_pattern(name, settings.ignore) is not None


def ignoring_pattern(name: str, patterns: Iterable[str]) -> str | None:
    """The first of ``patterns`` (``watch.ignore``) that ``name`` matches, or None: the one test of a
    name against them, and the pattern to name to a person who named such a file to `sort`."""
    return next((pattern for pattern in patterns if fnmatch.fnmatch(name, pattern)), None)


def wanted(path: Path, settings: WatchSettings) -> bool:
    """Should this name be sorted? Hidden/temp names and unknown extensions are left alone."""
    if ignored(path.name, settings):
        return False
    return is_image_name(path, settings.extensions)


def walk_inbox(
    inbox: Path,
    settings: WatchSettings,
    refused: Callable[[Refused], None],
    stamps: dict[Path, FolderStamp] | None = None,
) -> Iterator[os.DirEntry[str]]:
    """Every entry of the inbox, a sub-folder's entries in its place if ``recursive`` (a symlink to a
    folder is an entry, never followed; so is a sub-folder of an ignored name, whose files were
    taken though their own names are ordinary: Syncthing's `.stversions/`). A folder this user may
    not list goes to ``refused`` and the walk goes on: the daemon and `status` each say it their way.
    ``stamps``: each folder's stamp, taken just before it is listed (see ``InboxWatcher.changed``)."""
    folders = [inbox]
    while folders:
        folder = folders.pop()
        if stamps is not None:
            stamps[folder] = _stamp(folder)
        try:
            entries = list_folder(folder)
        except Refused as exc:
            refused(exc)
            continue
        for entry in entries:
            if (
                settings.recursive
                and entry.is_dir(follow_symlinks=False)
                and not ignored(entry.name, settings)
            ):
                folders.append(Path(entry.path))
            else:
                yield entry


def scan(
    inbox: Path, settings: WatchSettings, stamps: dict[Path, FolderStamp] | None = None
) -> Iterator[Path]:
    """Every wanted regular file in the inbox (sub-folders too if recursive), oldest first;
    ``stamps`` as for ``walk_inbox``."""

    def unlisted(exc: Refused) -> None:  # the files in it would otherwise wait without a word
        logger.warning("{}; the files in it are not sorted until then", exc)

    files = [
        Path(entry.path)
        for entry in walk_inbox(inbox, settings, unlisted, stamps)
        if entry.is_file(follow_symlinks=False) and wanted(Path(entry.path), settings)
    ]
    yield from sorted(files, key=lambda p: _mtime(p) or 0.0)


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = folder.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


FolderStamp = tuple[int, int] | None
"""A folder's inode and modification time (ns), which every name made, renamed or removed in it
changes; None: it cannot be looked at."""


def _stamp(folder: Path) -> FolderStamp:
    try:
        st = folder.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def held_for_writing(path: Path) -> bool | None:
    """Does any process hold ``path`` open for writing, by the kernel's own count (not by inotify's
    events, which its queue drops when it overflows)? None: the kernel will not say (a file of
    another user, a filesystem without leases, a name gone).

    A read lease is refused (EAGAIN) exactly while the file is open for writing anywhere; taken, it
    is given back at once. A writer opening it in that instant is held up for microseconds, and the
    lease-break signal is SIGURG, which is ignored by default (SIGIO would end the process).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return True if exc.errno == errno.EAGAIN else None
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


SETTLER_TICK_S = 0.05
"""How often the settler looks at its candidates again: a file is handed on within this of settling."""
STALE_CHECK_S = 1.0
"""How often a name inotify's events call open is checked against the kernel (see ``_Handler.is_open``)."""


class Settler:
    """Holds candidate paths until they stop changing, then hands them to ``ready``.

    A background thread polls the candidates every SETTLER_TICK_S; ``offer`` never blocks, so
    the watchdog thread never waits on anything.
    """

    def __init__(self, settle_s: float, ready: Callable[[Path], None]) -> None:
        self.settle_s = settle_s
        self.ready = ready
        self.is_open: Callable[[Path], bool] = lambda _path: False
        self._pending: dict[Path, tuple[tuple[int, int] | None, float, bool]] = {}
        self._held = 0
        """How many of them some process held open at the last look at them."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="settler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def offer(self, path: Path, finished: bool = False) -> None:
        """Watch ``path``; ``finished`` (its writer closed it, or it was renamed into place) skips the
        stability wait, which only guards arrivals whose end nobody reported."""
        with self._lock:
            seen, since, was_finished = self._pending.get(path, (None, time.monotonic(), False))
            self._pending[path] = (seen, since, was_finished or finished)

    def settling(self) -> int:
        """Candidates still settling: not those some process holds open, which may be for good (a hung
        tool), and kept the daemon from ever being idle for its look for files no event told of."""
        with self._lock:
            return len(self._pending) - self._held

    def _run(self) -> None:
        while not self._stop.wait(SETTLER_TICK_S):
            now = time.monotonic()
            settled = []
            with self._lock:
                self._held = 0
                for path, (seen, since, finished) in list(self._pending.items()):
                    try:
                        st = path.lstat()
                    except OSError:
                        del self._pending[path]  # gone (renamed away, deleted): nothing to do
                        continue
                    current = (st.st_size, st.st_mtime_ns)
                    held = self.is_open(path)
                    self._held += held
                    if held or (current != seen and not finished):
                        self._pending[path] = (current, now, finished)
                    elif finished or now - since >= self.settle_s:
                        del self._pending[path]
                        settled.append(path)
            for path in settled:
                self.ready(path)


class _Handler(FileSystemEventHandler):
    """Turns watchdog events into offers to the settler.

    inotify: a file is offered when its writer closes it, when it is renamed within the inbox,
    and when it appears otherwise (moved in from another folder, which inotify reports as a
    creation); files some process holds open are tracked so a creation is never handed on while
    its writer is still at work, however long it pauses. Polling: creations and modifications,
    since pollers see no open/close events; the settle time then has to cover a writer's pauses.
    """

    def __init__(
        self, inbox: Path, settings: WatchSettings, offer: Callable[..., None], polling: bool
    ) -> None:
        self.inbox = inbox
        self.settings = settings
        self.offer = offer
        self.polling = polling
        self._open: Counter[Path] = Counter()
        self._checked: dict[Path, tuple[float, bool]] = {}
        """When each marked name was last checked against the kernel, and whether it was held."""
        self._opened_at: dict[Path, float] = {}
        """When each marked name was last opened (by its events)."""
        self._lock = threading.Lock()

    def is_open(self, path: Path) -> bool:
        """Is ``path`` held open, as its open and close events tell? A mark is checked against the
        kernel (at most every ``STALE_CHECK_S``; the answer stands until then) and dropped once no
        process holds the file open for writing: when inotify's queue overflows, the close that ended
        a write can be lost, and its name then counted as open for the life of the daemon, the file
        never sorted (rescans too waited on it). A reader's mark is dropped too: a reader does not
        make a file half-written. The answer stands for a while because the check opens the file
        itself, an open event like any other; a name opened just now is not checked yet: its own
        close, on its way, says more (and sooner) than the kernel."""
        with self._lock:
            if self._open[path] <= 0:
                return False
            now = time.monotonic()
            checked, held = self._checked.get(path, (-STALE_CHECK_S, True))
            if now - checked < STALE_CHECK_S:
                return held
            if now - self._opened_at.get(path, -STALE_CHECK_S) < STALE_CHECK_S / 2:
                return True  # just opened: its close is on its way, as a rule (no check, no early hand-off)
        held = held_for_writing(path) is not False  # the kernel will not say: trust the mark
        with self._lock:
            self._checked[path] = (now, held)
            if not held:
                self._open.pop(path, None)
        if not held:
            logger.debug("{}: counted as open, but no process holds it for writing (events lost?)", path)
        return held

    def _path(self, raw: str | bytes) -> Path | None:
        path = Path(os.fsdecode(raw))  # a name that is not UTF-8 keeps its bytes (surrogateescape)
        if not wanted(path, self.settings):
            return None
        try:  # the walk's rule: nothing inside a sub-folder of an ignored name
            folders = path.parent.relative_to(self.inbox).parts
        except ValueError:
            return path
        return None if any(ignored(name, self.settings) for name in folders) else path

    def on_opened(self, event: FileSystemEvent) -> None:
        if not event.is_directory and (path := self._path(event.src_path)):
            with self._lock:
                self._open[path] += 1
                self._opened_at[path] = time.monotonic()

    def _closed(self, event: FileSystemEvent, offer: bool) -> None:
        if event.is_directory or not (path := self._path(event.src_path)):
            return
        with self._lock:
            self._open[path] -= 1
            if self._open[path] <= 0:
                del self._open[path]
                self._forget(path)
        if offer:
            self.offer(path, finished=True)

    def on_closed(self, event: FileSystemEvent) -> None:
        self._closed(event, offer=True)

    def on_closed_no_write(self, event: FileSystemEvent) -> None:
        self._closed(event, offer=False)

    def on_moved(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            self._folder_arrived(event.dest_path)
            return
        # A file still open keeps its openers under its new name. One moved out of the inbox is
        # reported closed to the folder it went to, never here: its name must not stay "open",
        # or every later file of that name waited for ever.
        held = self._left(event.src_path)
        if path := self._path(event.dest_path):
            with self._lock:
                self._open[path] += held
            self.offer(path, finished=True)

    def on_deleted(self, event: FileSystemEvent) -> None:
        """The name is free: a file created under it later is a new one, with openers of its own.
        (Watchdog reports a file moved out of the inbox as deleted.)"""
        if not event.is_directory:
            self._left(event.src_path)

    def _left(self, raw: str | bytes) -> int:
        """Forget who holds the file that left this name; how many did."""
        if (path := self._path(raw)) is None:
            return 0
        with self._lock:
            self._forget(path)
            return self._open.pop(path, 0)

    def _forget(self, path: Path) -> None:
        """Drop what is known of a name no longer marked open (the caller holds the lock)."""
        self._checked.pop(path, None)
        self._opened_at.pop(path, None)

    def on_created(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            self._folder_arrived(event.src_path)
        elif path := self._path(event.src_path):
            self.offer(path)

    def _folder_arrived(self, raw: str | bytes) -> None:
        """A folder dropped into the inbox is not sorted; say so rather than ignore it without a word
        (not one of a hidden or temp name, which watch.recursive would not take either)."""
        if not self.settings.recursive and not ignored(Path(os.fsdecode(raw)).name, self.settings):
            logger.warning(
                "{}: a folder; only files dropped into the inbox itself are sorted (move its files "
                "out, or set watch.recursive = true)",
                raw.decode() if isinstance(raw, bytes) else raw,
            )

    def on_modified(self, event: FileSystemEvent) -> None:
        if self.polling and not event.is_directory and (path := self._path(event.src_path)):
            self.offer(path)


OVERFLOW_SAID_S = 60.0
"""How long one word of inotify's overflow stands for every overflow after it (a storm of them)."""


class _WatchdogLog(logging.Handler):
    """watchdog's own lines, said in facesortd's log. It logs through the standard ``logging``, which
    facesortd does not set up, so Python printed them bare on stderr: "Inotify queue overflowed;
    filesystem events were lost", dozens of them in a burst, in no format of the log's, without a word
    of what it means for the files. That one is now said once a minute at most, with what the daemon
    does about it; any other goes on as watchdog worded it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._overflow_said = -OVERFLOW_SAID_S

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Inotify queue overflowed"):
            level = record.levelname if record.levelno in _LEVELS else "WARNING"
            logger.opt(exception=record.exc_info).log(level, "watchdog: {}", message)
            return
        now = time.monotonic()
        if now - self._overflow_said >= OVERFLOW_SAID_S:
            self._overflow_said = now
            logger.warning(
                "inotify's event queue overflowed (fs.inotify.max_queued_events): it did not tell of "
                "every file dropped; the daemon looks through the inbox itself once it has sorted "
                "what it heard of"
            )


_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
_WATCHDOG_LOG = _WatchdogLog()


def _say_watchdogs_lines() -> None:
    """Route watchdog's log into facesortd's (once per process). And leave out its RuntimeWarning
    "Callback with id … already exists for watch <…a whole line of its internals…>. It will be
    Overwritten.", which Python printed bare on stderr when a sub-folder of a recursive inbox was
    moved out and back in (the kernel gives the folder its old watch again): a note of watchdog's
    own bookkeeping, after which the folder's events still come."""
    warnings.filterwarnings("ignore", "Callback with id", RuntimeWarning, r"watchdog\.")
    source = logging.getLogger("watchdog")
    if _WATCHDOG_LOG not in source.handlers:
        source.addHandler(_WATCHDOG_LOG)
        source.propagate = False


INBOX_LOCKS = Path("/run/user")
"""Where the inbox locks live: the user's runtime folder (``/run/user/<uid>``, systemd's
XDG_RUNTIME_DIR), named by the folder, not by the environment, so a unit and a `run` by hand find the
same lock; ``/tmp/facesortd-<uid>`` where a machine has none."""


def _lock_folder() -> Path | None:
    """This user's folder for inbox locks, made if missing; None if it is not this user's alone (another
    user made it first: the inbox is then left unguarded, as before, rather than locked in their folder)."""
    uid = os.getuid()
    runtime = INBOX_LOCKS / str(uid)
    folder = runtime / "facesortd" if runtime.is_dir() else Path(f"/tmp/facesortd-{uid}")
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(folder)
    except OSError:
        return None
    return folder if st.st_uid == uid and not st.st_mode & 0o022 and stat.S_ISDIR(st.st_mode) else None


def _lock(inbox: Path) -> tuple[int, Path] | None:
    """Lock ``inbox`` for this daemon: a flock on a file named by the folder's device and inode in this
    user's lock folder (``_lock_folder``), held while it is watched (its descriptor and name, which
    ``_unlock`` removes); None where there is no such folder, or the inbox is gone (the watch says so).
    Two daemons of two configs on one inbox (a unit, and a `run` by hand with another state_dir) shared
    no lock and raced each other for every file: one linked a file into the library as the other did,
    and both kept theirs (2 of 300 files placed twice, each journaled by its own daemon). StateBusy
    names the first. Not a lock on the folder itself: an open folder keeps its drive busy, and a USB
    drive holding the inbox could not be ejected while the daemon ran (a FUSE drive that renumbers
    inodes gets a lock of another name at each start: unguarded)."""
    folder = _lock_folder()
    identity = _identity(inbox)
    if folder is None or identity is None:
        return None
    path = folder / f"inbox-{identity[0]}-{identity[1]}.lock"
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            st = os.fstat(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                return None
            pid = flock_holder(st)
            raise StateBusy(
                f"another facesortd daemon (pid {pid or '?'}) already watches {inbox}: two daemons on one "
                f"inbox race each other for every file: stop it first ({how_to_stop(pid)}), or give this "
                "one another inbox"
            ) from None
        held = os.fstat(fd)
        if _identity(path) == (held.st_dev, held.st_ino):
            return fd, path
        os.close(fd)  # a daemon stopping removed the name between our open and lock: take it anew


def _unlock(held: tuple[int, Path]) -> None:
    """Let go of ``_lock``'s lock, its file removed first (so that the lock folder does not fill with
    one file per inbox ever watched); whoever opened it meanwhile finds the name gone and retries."""
    fd, path = held
    with contextlib.suppress(OSError):
        path.unlink()
    os.close(fd)


class InboxWatcher:
    """Watches the inbox and feeds settled paths to ``ready``; falls back to polling if inotify fails.
    Holds the inbox's lock (``_lock``) from ``start`` to ``stop``."""

    def __init__(self, inbox: Path, settings: WatchSettings, ready: Callable[[Path], None]) -> None:
        self.inbox = inbox
        self.settings = settings
        self.settler = Settler(settings.settle_s, ready)
        self._observer: BaseObserver | None = None
        self._locked: tuple[int, Path] | None = None
        self._folder: tuple[int, int] | None = None
        self._stamps: dict[Path, FolderStamp] = {}
        """The inbox's folders as the last look through them found them (see ``changed``)."""

    def start(self) -> None:
        """Raises StateBusy if another daemon watches the inbox."""
        self._locked = _lock(self.inbox)
        _say_watchdogs_lines()
        self._folder = _identity(self.inbox)
        self.settler.start()
        try:
            self._observer = self._observe(self.settings.polling)
        except OSError as exc:  # ENOSPC: inotify watch or instance limit reached
            logger.error(
                "cannot watch {} with inotify ({}); polling every {} s instead",
                self.inbox,
                exc,
                self.settings.poll_interval_s,
            )
            self._observer = self._observe(True)

    def _observe(self, polling: bool) -> BaseObserver:
        observer = PollingObserver(timeout=self.settings.poll_interval_s) if polling else Observer()
        handler = _Handler(self.inbox, self.settings, self.settler.offer, polling)
        self.settler.is_open = handler.is_open
        observer.schedule(handler, str(self.inbox), recursive=self.settings.recursive)
        observer.start()
        return observer

    def offer_inbox(self, skip: Collection[Path] = ()) -> list[Path]:
        """Every file of the inbox that the watcher would take, bar ``skip``, through the settler (a
        file may still be being written); returns them. What a start, the periodic rescan and a look
        after a change (``changed``) each do, for files no event told of."""
        stamps: dict[Path, FolderStamp] = {}
        offered = [path for path in scan(self.inbox, self.settings, stamps) if path not in skip]
        self._stamps = stamps
        for path in offered:
            self.settler.offer(path)
        return offered

    def changed(self) -> bool:
        """Has a name been made, renamed or removed in the inbox's folders since the last look through
        them (``offer_inbox``)? inotify drops events when its queue overflows (thousands of files at
        once, the daemon starved of CPU or stopped): files no event told of waited for the periodic
        rescan, 5 minutes, when nothing else was sorted meanwhile. Asked while the daemon is idle, so
        the daemon's own moves out of the inbox cost one look after each burst. A folder made in a
        recursive inbox changes its parent, and is stamped at that look. A change within the tick of
        the filesystem's clock that the stamp was taken in does not show (a FAT drive's is 2 s)."""
        return any(_stamp(folder) != stamp for folder, stamp in self._stamps.items())

    def alive(self) -> bool:
        """False once the observer thread died (e.g. the inbox was deleted), or once the inbox's path
        leads to another folder than the one watched (renamed away, a new one made in its place:
        inotify follows the old folder): the caller restarts it."""
        observing = self._observer is not None and self._observer.is_alive()
        return observing and _identity(self.inbox) == self._folder

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        self.settler.stop()
        if self._locked is not None:
            _unlock(self._locked)
            self._locked = None
