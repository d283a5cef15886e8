"""watchdog events -> settled paths. Nothing else in facesortd knows about inotify or watchdog.

A file counts as arrived when its writer closes it (inotify IN_CLOSE_WRITE), when it is renamed
or moved into the inbox (how browsers and screenshot tools finish a save), or when a rescan finds
it. It is handed on only once no process holds it open for writing (as far as inotify shows) and
its size and mtime have stayed the same for ``settle_s``: a file still being written is never read.
"""

from __future__ import annotations

import fnmatch
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from loguru import logger
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from facesortd.config import WatchSettings
from facesortd.durable import Refused, list_folder
from facesortd.image_names import is_image_name


def ignored(name: str, settings: WatchSettings) -> bool:
    """A hidden or temp name (``watch.ignore``): such a file, or such a sub-folder with all it holds."""
    return any(fnmatch.fnmatch(name, pattern) for pattern in settings.ignore)


def wanted(path: Path, settings: WatchSettings) -> bool:
    """Should this name be sorted? Hidden/temp names and unknown extensions are left alone."""
    if ignored(path.name, settings):
        return False
    return is_image_name(path, settings.extensions)


def walk_inbox(
    inbox: Path, settings: WatchSettings, refused: Callable[[Refused], None]
) -> Iterator[os.DirEntry[str]]:
    """Every entry of the inbox, a sub-folder's entries in its place if ``recursive`` (a symlink to a
    folder is an entry, never followed; so is a sub-folder of an ignored name, whose files were
    taken though their own names are ordinary: Syncthing's `.stversions/`). A folder this user may
    not list goes to ``refused`` and the walk goes on: the daemon and `status` each say it their way."""
    folders = [inbox]
    while folders:
        try:
            entries = list_folder(folders.pop())
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


def scan(inbox: Path, settings: WatchSettings) -> Iterator[Path]:
    """Every wanted regular file in the inbox (sub-folders too if recursive), oldest first."""

    def unlisted(exc: Refused) -> None:  # the files in it would otherwise wait without a word
        logger.warning("{}; the files in it are not sorted until then", exc)

    files = [
        Path(entry.path)
        for entry in walk_inbox(inbox, settings, unlisted)
        if entry.is_file(follow_symlinks=False) and wanted(Path(entry.path), settings)
    ]
    yield from sorted(files, key=lambda p: _mtime(p) or 0.0)


def _identity(folder: Path) -> tuple[int, int] | None:
    try:
        st = folder.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


class Settler:
    """Holds candidate paths until they stop changing, then hands them to ``ready``.

    A background thread polls the candidates every ``tick`` seconds; ``offer`` never blocks, so
    the watchdog thread never waits on anything.
    """

    def __init__(self, settle_s: float, ready: Callable[[Path], None], tick: float = 0.05) -> None:
        self.settle_s = settle_s
        self.ready = ready
        self.tick = tick
        self.is_open: Callable[[Path], bool] = lambda _path: False
        self._pending: dict[Path, tuple[tuple[int, int] | None, float, bool]] = {}
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

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            now = time.monotonic()
            settled = []
            with self._lock:
                for path, (seen, since, finished) in list(self._pending.items()):
                    try:
                        st = path.lstat()
                    except OSError:
                        del self._pending[path]  # gone (renamed away, deleted): nothing to do
                        continue
                    current = (st.st_size, st.st_mtime_ns)
                    if self.is_open(path) or (current != seen and not finished):
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
        self._lock = threading.Lock()

    def is_open(self, path: Path) -> bool:
        with self._lock:
            return self._open[path] > 0

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

    def _closed(self, event: FileSystemEvent, offer: bool) -> None:
        if event.is_directory or not (path := self._path(event.src_path)):
            return
        with self._lock:
            self._open[path] -= 1
            if self._open[path] <= 0:
                del self._open[path]
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
        path = self._path(raw)
        with self._lock:
            return self._open.pop(path, 0) if path else 0

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


class InboxWatcher:
    """Watches the inbox and feeds settled paths to ``ready``; falls back to polling if inotify fails."""

    def __init__(self, inbox: Path, settings: WatchSettings, ready: Callable[[Path], None]) -> None:
        self.inbox = inbox
        self.settings = settings
        self.settler = Settler(settings.settle_s, ready)
        self._observer: BaseObserver | None = None
        self._folder: tuple[int, int] | None = None

    def start(self) -> None:
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

    def offer_inbox(self, skip: Collection[Path] = ()) -> None:
        """Every file of the inbox that the watcher would take, bar ``skip``, through the settler (a
        file may still be being written): what a restart, the periodic rescan and the look after a
        burst each do, for files no event told of."""
        for path in scan(self.inbox, self.settings):
            if path not in skip:
                self.settler.offer(path)

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
