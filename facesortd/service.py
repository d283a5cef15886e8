"""The daemon: settled paths -> queue -> workers (decide, journal, move) -> status and systemd.

The watch thread only enqueues; classification runs in a small pool of worker threads (OpenCV
and numpy release the GIL), each with its own detector, since OpenCV's cascade objects are not
safe to share. Every move is journaled before and after (journal.py), so a kill at any instant
is repaired at the next start. SIGTERM (and SIGINT, SIGPWR) lets the current files finish, then exits
0; SIGHUP too, exit HANGUP_EXIT; SIGUSR1 and SIGUSR2 are logged and change nothing.

A path is claimed from the moment it is queued until its worker is done with it, so a rescan or
a second event never hands it to another worker meanwhile; a path waiting for its retry has one
timer, and rescans and events for the same file leave it to it (another file under its name is a
new arrival). A worker survives any exception (the file stays in the inbox and is retried later);
if one dies anyway, the daemon stops its systemd watchdog pings and exits 1, so systemd restarts it
instead of it living on without sorting.
"""

from __future__ import annotations

import errno
import json
import os
import queue
import signal
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from loguru import logger

from facesortd import start_signals
from facesortd.advice import advised
from facesortd.config import Settings, fingerprint, folders_overlap, not_a_folder
from facesortd.cores import share_cores
from facesortd.decide import Decision, Pipeline
from facesortd.durable import atomic_writer, unwritten
from facesortd.emotion import ModelError
from facesortd.journal import Journal, JournalReplaced, ModelId
from facesortd.learn.retrain import retrain_if_due
from facesortd.learn.review import Reviewer, user_labels
from facesortd.library import UNTIL_THEN, Library
from facesortd.model_store import (
    ModelKey,
    load_in_force,
    load_model_in_force,
    lost_in_force,
    model_id,
    model_in_force,
    model_key,
)
from facesortd.mounts import DriveNotMounted, mounted_at
from facesortd.progress import Progress
from facesortd.quarantine import QUARANTINE_DIR
from facesortd.recovery import recover_logged
from facesortd.refusals import Refused, list_folder, mount_moved
from facesortd.sdnotify import notify, watchdog_period
from facesortd.shown_names import exact, json_text, one_line
from facesortd.sorter import Sorter, UnreadableSince
from facesortd.state import (
    DAEMON_LOCK,
    STATUS_FILE,
    DaemonLock,
    StateBusy,
    ensure_private_dir,
    remove_stale_temp_files,
    retrain_lock,
)
from facesortd.timers import Call, Timers
from facesortd.watch import InboxWatcher, wanted

__all__ = ["Service", "default_pipeline"]

FIRST_BACKOFF_S = 2.0
"""A failed move's first retry comes this long after it; each next one twice as long after."""
MAX_BACKOFF_S = 300.0
HANGUP_EXIT = 128 + signal.SIGHUP
"""The daemon's exit after SIGHUP: not 0, so systemd's Restart=on-failure starts it again."""
STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGPWR)
"""Signals that stop the daemon cleanly, exit 0: `kill`, systemd's stop, Ctrl-C, and SIGPWR, the power
failing (a UPS daemon; `lxc-stop` asks a container to shut down by it), which by default ended it
at once, a file between its move's link and unlink left for recovery."""
POKES = (signal.SIGUSR1, signal.SIGUSR2)
"""Signals other daemons take to reopen their log or dump their state, sent by habit (`kill -USR1`,
a logrotate rule): by default they ended facesortd at once, mid-move. It has no use for them: each is
logged, with what does what was likely meant, and the daemon goes on."""
TICK_S = 1.0
"""How often the main loop looks at what is due (rescan, learning, status, a dead watcher), and an
idle worker whether it was stopped without a wake-up: the intervals themselves are settings; this
is only how soon one that fell due is noticed."""


def default_pipeline(settings: Settings) -> Pipeline:
    """A worker's pipeline, with the model in force when it is made."""
    return Pipeline.for_settings(settings, load_model_in_force(settings))


class Service:
    """Owns the queue, the workers, the watcher and the journal for one inbox/library pair."""

    def __init__(
        self, settings: Settings, make_pipeline: Callable[[Settings], Pipeline] = default_pipeline
    ) -> None:
        self.settings = settings
        self.make_pipeline = make_pipeline
        self.library = Library(settings.library)
        self.journal = Journal.for_state_dir(settings.state_dir)
        self.sorter = Sorter(
            self.library,
            self.journal,
            duplicates=settings.watch.duplicates,
            unreadable_settle_s=settings.watch.unreadable_settle_s,
            extensions=tuple(settings.watch.extensions),
            ignore=tuple(settings.watch.ignore),
            unreadable_since=UnreadableSince(),
        )
        self.stop_event = threading.Event()
        self.hung_up = False
        """Stopped by SIGHUP: exit HANGUP_EXIT, for a restart."""
        self._poked: deque[int] = deque()
        """Signals of POKES received, for the main loop to log: a handler that logs could deadlock on
        the log's lock, held by the main thread it interrupted."""
        self.counts: Counter[str] = Counter()
        self.backlog: Progress | None = None
        self._queue: queue.Queue[Path | None] = queue.Queue()
        """Paths to sort; one None per worker when stopping, which wakes it at once."""
        self._claimed: set[Path] = set()
        self._lock = threading.Lock()
        self._failures: dict[Path, int] = {}
        self._failure_said: dict[Path, str] = {}
        """Why each file's move failed, as last said: said again only when the reason changes."""
        self._unexpected_said: dict[Path, set[str]] = {}
        """The types of our own unexpected errors each file met, each said with its traceback once."""
        self._timers: dict[Path, _Timed] = {}
        self._later_calls = Timers()
        """Every timer's call, from one thread (a thread per waiting file ran out of threads)."""
        self._told: set[Path] = set()
        self._recover_due = True
        """Crash recovery is to run: at the start, and after a failed journal write (a full state disk
        can fail a move's ``done`` mark after the file moved), at each tick until it goes through."""
        self._look_due = False
        """The look after a burst is due whatever the inbox's folders say (see ``_look_again``): a
        file was placed (a folder's time may not show it: a FAT drive's counts in 2 s), or went while
        claimed, and one that took its name was turned away as claimed (see ``process``)."""
        self._status_failing = False
        self._lock_failing = False
        self._library_problem: str | None = None
        """Why the library (or its quarantine) may not be used now (`status` shows it)."""
        self._emotions: tuple[str, ...] = ()
        """The emotions of the model in force, whose folders a library made again gets."""
        self._daemon_lock = DaemonLock(settings.state_dir)
        self._learning_problem: str | None = None
        """Why retraining cannot go on, while it cannot (`status` shows it)."""
        self._inbox_problem: str | None = None
        self._inbox_mounted_at = mounted_at(settings.inbox)
        """Where the inbox's filesystem was mounted at the start (see ``_inbox_unmounted``)."""
        """Why nothing new can be watched (something else where the inbox belongs; `status` shows it)."""
        self._model_problem: tuple[str | None, str] | None = None
        """The model file in force that cannot be loaded and why, while it cannot (`status` shows it)."""
        self._busy = 0
        self._beat = time.monotonic()
        self.started = time.time()
        self._learning: threading.Thread | None = None
        self._fingerprint = fingerprint(settings)
        """Of the settings this daemon runs with, read once: `status` compares its own."""
        self._reexamine_problem: str | None = None
        self._taken_up: set[ModelKey | None] = set()
        """The models workers took up since the unsure files were last judged (see `_reexamine_unsure`)."""
        self._unsure_judged_by = _model_key(settings)
        """The model in force when the unsure files were last judged (see `_reexamine_unsure`); None:
        a model put in force while no daemon ran, which the first look makes up for."""

    # -- queue -------------------------------------------------------------------------------
    def enqueue(self, path: Path) -> None:
        """Queue ``path`` unless it is already queued or being processed (claimed until done), or a
        timer will queue it (a failed move backing off, a file that may still be being written): its
        timer decides, also when an event says the same file again (a late close, a writer that wrote
        nothing, a rename out and back, a FUSE drive renumbering it), which had it tried again at once,
        back-off or not. Another file under its name (another size or modification time: one saved
        or renamed there has its own) is a new arrival, queued now with no back-off of its own."""
        timed = self._timers.get(path)
        if timed is not None and timed.file == _identity(path):
            return
        with self._lock:
            pending = self._timers.get(path)
            if path in self._claimed or (pending is not None and pending is not timed):
                return  # claimed, or timed anew meanwhile: that timer decides
            if pending is not None:  # a new file: the old one's timer and failures go
                del self._timers[path]
                self._forget_failures(path)
            self._claimed.add(path)
        if pending is not None:
            pending.timer.cancel()
        self._queue.put(path)

    def queue_length(self) -> int:
        return self._queue.qsize() + self._busy

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> int:
        """Run until SIGTERM/SIGINT (or ``stop()``); returns the exit code."""
        with self._daemon_lock:
            try:
                return self._run()
            finally:
                if self.backlog:  # stopped before its end: what is said next goes below its bar
                    self.backlog.close()
                self._cancel_timers()
                self.journal.close()

    def _run(self) -> int:
        s = self.settings
        self._install_signals()
        for folder in (s.inbox, s.library):
            folder.mkdir(parents=True, exist_ok=True)
        self._inbox_mounted_at = mounted_at(s.inbox)
        ensure_private_dir(s.state_dir)
        self._recover()  # a journal that refuses it now (full disk) must not stop the sorting
        for leftover in remove_stale_temp_files(s.state_dir):
            logger.info("removed a temp file a killed writer left: {}", leftover)
        # Which model the pipelines hold, read before they load it: a retrain adopting its model
        # between the two had each worker take the new one for the one it held, and sort with the
        # old one (its files journaled as judged by the new, never looked at again) until the next.
        loaded, loaded_id = _model_key(s), _model_id(s)
        pipelines = [self.make_pipeline(s) for _ in range(s.watch.workers)]  # config errors surface here
        share_cores(len(pipelines))
        if pipelines[0].model is not None:
            self._emotions = tuple(pipelines[0].model.labels)
            self.library.make_emotion_folders(self._emotions)
        if not loaded_id.matches(_last_run_model(s)):  # changed while no daemon ran, or none ever ran here
            self._unsure_judged_by = None
        self.sorter.model = loaded_id
        watcher = InboxWatcher(s.inbox, s.watch, self.enqueue)
        watcher.start()
        backlog = watcher.offer_inbox()  # through the settler too: a file may be mid-write as we start
        if backlog:
            logger.info("{} file(s) already in {}: sorting them first", len(backlog), s.inbox)
            self.backlog = Progress(len(backlog), "backlog")
        workers = [
            threading.Thread(target=self._work, args=(p, loaded, loaded_id), name=f"worker-{i}")
            for i, p in enumerate(pipelines)
        ]
        for w in workers:
            w.start()
        notify("READY=1")
        self._publish_status()  # `status` sees the daemon from now on, not from the loop's first tick
        logger.info("watching {} (library {}, {} worker(s))", s.inbox, s.library, len(workers))
        if lost := lost_in_force(s):  # sorting goes on with the shipped model: said with what to do
            logger.warning(lost)
        period = watchdog_period()
        last_rescan = last_review = time.monotonic()
        reviewer = Reviewer(s, self.journal)
        code = 0
        try:
            while not self.stop_event.wait(min(TICK_S, period or TICK_S)):
                now = time.monotonic()
                self._say_pokes()
                if not all(w.is_alive() for w in workers):
                    logger.critical("a worker thread died: stopping so that systemd restarts facesortd")
                    code = 1
                    break
                if self.journal.replaced():  # state folder deleted, journal moved aside: see JournalReplaced
                    logger.critical("{}", JournalReplaced(self.journal.path))
                    code = 1
                    break
                if not self._keep_daemon_lock():
                    code = 1
                    break
                self._check_library()
                if self._inbox_problem or not watcher.alive():  # a drive mounted again may look alive
                    watcher = self._watch_again(watcher)
                if self._recover_due:
                    self._recover()
                if self._inbox_problem:  # a rescan would go where the inbox's path leads now
                    pass
                elif s.watch.rescan_interval_s and now - last_rescan >= s.watch.rescan_interval_s:
                    last_rescan = now
                    watcher.offer_inbox(self._waiting())
                elif (
                    not self.queue_length()
                    and not watcher.settler.settling()
                    and (self._look_due or watcher.changed())
                ):
                    self._look_again(watcher)
                if now - last_review >= s.learning.review_scan_s and not (
                    self._learning and self._learning.is_alive()
                ):
                    last_review = now
                    self._learning = threading.Thread(
                        target=self._learn, args=(reviewer,), name="learn", daemon=True
                    )
                    self._learning.start()
                if period and (self._busy == 0 or now - self._beat < 4 * period):
                    notify("WATCHDOG=1")  # withheld while a worker is stuck on one file: systemd restarts us
                self._publish_status()
        finally:  # also when the loop died of an error of ours: workers waiting for a stop hung the process
            self._say_pokes()  # one received in the last tick too
            if self.hung_up and not code:
                code = HANGUP_EXIT
                logger.info("SIGHUP: exit {} once stopped, which systemd restarts (settings read anew)", code)
            logger.info("stopping: finishing the files in progress")
            self.stop_event.set()
            for _worker in [w for w in workers if w.is_alive()]:  # a dead one would leave its wake-up queued
                self._queue.put(None)
            watcher.stop()
            self._cancel_timers()
            # Every thread that may be inside OpenCV is joined before the interpreter shuts down:
            # native code still running in a thread during teardown is how a daemon segfaults on exit.
            for thread in [*workers, self._learning]:
                if thread is not None:
                    thread.join(timeout=60)
            self._publish_status()
            notify("STOPPING=1")
        return code

    def _check_library(self) -> None:
        """The library re-pointed, or its quarantine made a link out of it, while the daemon ran: each
        move there is refused (Library.refusal) and the file stays where it is; said once here and
        by `status` until it is put right, when the files waiting for it go at once.

        Its drive mounted again, recovery runs first: a copy cut short when the drive went (pulled
        out mid-copy) left its temp file there, which no recovery could remove while it was away,
        and which stayed, tens of megabytes of a full USB stick, until the daemon's next start."""
        refused = self.library.refusal()
        problem = f"{refused}; {UNTIL_THEN}" if refused else None
        if problem != self._library_problem:
            self._library_problem = problem
            if problem:
                logger.error(problem)
                self._record_error(None, problem)
            else:
                self._recover()
                self._retry_waiting_now()
        if problem is None and not os.path.lexists(self.settings.library):
            self._make_library_again()

    def _make_library_again(self) -> None:
        """The library deleted or renamed away (archived as `library-2025`) while the daemon ran: the
        next move made a new one without a word, holding only the folder that file went to, so a
        person reviewing with a file manager found no emotion folder to drop a file into. Made again
        at once as at the start, and said. (Not where the library's path is refused: a link or a
        drive gone is the person's to put right.)"""
        library = self.settings.library
        try:
            library.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # each move into it names the folder it cannot make, and why
        self.library.make_emotion_folders(self._emotions)
        logger.warning(
            "the library {} was gone (deleted, or renamed away): made again, with its emotion folders; "
            "`undo` finds the files sorted before only if they are put back in it",
            library,
        )

    def _keep_daemon_lock(self) -> bool:
        """Put the daemon lock back if its file was deleted (see DaemonLock); False: another daemon
        took the state folder meanwhile (an older facesortd, which does not look for a deleted lock),
        so this one stops rather than race it for every file."""
        try:
            self._daemon_lock.keep()
        except StateBusy as exc:
            logger.critical("{}: this daemon stops", exc)
            return False
        except OSError as exc:  # tried again at the next tick, said once
            if not self._lock_failing:
                logger.warning("cannot put {} back ({}); tried again", DAEMON_LOCK, exc)
            self._lock_failing = True
        else:
            self._lock_failing = False
        return True

    def _watch_again(self, watcher: InboxWatcher) -> InboxWatcher:
        """The watcher stopped (inbox removed, renamed away, made anew): watch the inbox again,
        making it if need be. Something else in its place is the person's to move: said once (and
        by `status`), looked at again at each tick, meanwhile the rest of the service goes on."""
        s = self.settings
        # An inbox path that now leads into the library (a symbolic link put in its place) is refused
        # as `run` refuses it at the start: its files are a person's labels, and the daemon moved them
        # out of happy/ into the quarantine as new screenshots.
        if problem := not_a_folder("inbox", s.inbox) or folders_overlap(s) or self._inbox_unmounted():
            problem += "; nothing new is sorted until then"
            if problem != self._inbox_problem:
                logger.error(problem)
                self._inbox_problem = problem
            return watcher
        s.inbox.mkdir(parents=True, exist_ok=True)
        watcher.stop()
        anew = InboxWatcher(s.inbox, s.watch, self.enqueue)
        try:
            anew.start()
        except StateBusy as exc:  # another daemon watches the folder now there: looked at each tick
            problem = f"{exc}; nothing new is sorted until then"
            if problem != self._inbox_problem:
                logger.error(problem)
                self._inbox_problem = problem
            return watcher
        self._inbox_problem = None
        # No fault of facesortd's, and nothing lost: a person's doing, which it puts right by itself.
        logger.warning("the watcher stopped (inbox removed or renamed?); restarting it and rescanning")
        anew.offer_inbox(self._waiting())  # what arrived before the new watch began
        return anew

    def _inbox_unmounted(self) -> str | None:
        """Why the inbox is not to be made anew: the drive it was on is no longer mounted where it was
        at the start. Made anew, it was a folder of the disk below, which hid files dropped into it
        once the drive was back, and which FUSE (exfat-fuse, ntfs-3g) refuses to mount over."""
        inbox, before = self.settings.inbox, self._inbox_mounted_at
        if (now := mounted_at(inbox)) == before:
            return None
        return str(mount_moved("inbox", inbox, before, now))

    def stop(self) -> None:
        self.stop_event.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in STOPS:
                signal.signal(sig, lambda *_: self.stop())
            signal.signal(signal.SIGHUP, lambda *_: self._hang_up())
            for sig in POKES:
                signal.signal(sig, lambda signum, _frame: self._poked.append(signum))
            for signum in start_signals.hand_over():  # those that came while it started
                if signum in POKES:
                    self._poked.append(signum)
                elif signum in STOPS:
                    self.stop()
                elif signum == signal.SIGHUP:
                    self._hang_up()

    def _say_pokes(self) -> None:
        """Each signal of POKES received since the last tick, said."""
        while self._poked:
            logger.warning(
                "{} ignored: facesortd has no use for it (SIGTERM stops it, SIGHUP restarts it with the "
                "settings read anew; `{}` says how it is)",
                signal.Signals(self._poked.popleft()).name,
                advised("status"),
            )

    def _hang_up(self) -> None:
        """SIGHUP (`kill -HUP`, the reflex to make a daemon read its settings again; a terminal closed
        on `facesortd run`) killed the daemon at once, mid-move, and systemd counts a death by SIGHUP
        as clean: it was not restarted. Now the files in progress finish and the daemon exits
        HANGUP_EXIT, which systemd restarts, so the settings are read anew."""
        self.hung_up = True
        self.stop()

    # -- workers -----------------------------------------------------------------------------
    def _work(self, pipeline: Pipeline, model_key: ModelKey | None, judging: ModelId | None = None) -> None:
        """Sort queued files with ``pipeline``, which holds the model in force at ``model_key``, known
        to the journal as ``judging`` (None: as the sorter's). Each worker journals its moves under
        the model it holds: the sorter's, which the first worker to take a new model up changes,
        named the new model for a file another worker was still judging with the old."""
        while True:
            try:
                path = self._queue.get(timeout=TICK_S)
            except queue.Empty:
                if self.stop_event.is_set():  # stopped without a wake-up: the main loop died
                    return
                continue
            if path is None:  # the wake-up: stopping
                return
            if self.stop_event.is_set():  # stopping: it stays in the inbox, for the next start
                with self._lock:
                    self._claimed.discard(path)
                continue
            with self._lock:
                self._busy += 1
            try:
                key = _model_key(self.settings)
                if key != model_key:  # a retrain or rollback swapped the model: use it from now on
                    model_key = key  # once per change: a model that cannot be loaded is not read per file
                    with self._lock:  # files judged by it must be looked at again, also once it is gone
                        self._taken_up.add(key)
                    judging = self._take_up_model(pipeline) or judging
                self._judge_again_if_outdated(self.process(pipeline, path, judging), model_key)
            except Exception as exc:  # one bad file must never stop the service
                self._failed(path, exc)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._claimed.discard(path)
                self._beat = time.monotonic()
                if self.backlog and self.backlog.done < self.backlog.total:
                    self.backlog.step()

    def _judge_again_if_outdated(self, placed: Path | None, judged_by: ModelKey | None) -> None:
        """A file this worker put into ``_quarantine/unsure/`` with a model no longer in force goes
        back into the queue, to be judged by the one in force through the same sorter path: a look
        again at the unsure files (`_reexamine_unsure`) that ran while it was being judged did not
        find it there yet, and the next look, the model unchanged, left it stuck. Once per change of
        model: the worker judging it again holds the one in force (or, that one not loadable, counts
        it as held: `_work`), so it comes back only if the model changes again meanwhile."""
        if placed is None or not self.settings.learning.reexamine_unsure:
            return
        if placed.parent == self.library.folder_for(Decision.quarantine("unsure")) and (
            judged_by != _model_key(self.settings)
        ):
            logger.info("{}: judged by a model no longer in force; looking at it again", placed)
            self.enqueue(placed)

    def _take_up_model(self, pipeline: Pipeline) -> ModelId | None:
        """Load the model in force into this worker's pipeline and return how the journal knows it
        (None: not loaded); the first worker to do so says it (each worker has its own pipeline, and each said
        it: one line per worker).

        One that cannot be loaded (its file overwritten by a half-finished copy, damaged) failed every
        file with a traceback, each left in the inbox and retried for ever: nothing was sorted until
        it was put right. The worker goes on with the model it has, said once per file until one
        loads (and by `status`, which shows the latest reason); the file is tried again when it
        changes. Not once per change: a file damaged in place (truncated, then written) is two
        versions, which two workers each met one of, and each said."""
        key = _model_key(self.settings)
        try:
            model, judge = load_in_force(self.settings)  # known by the bytes loaded: see load_in_force
        except (ModelError, OSError) as exc:
            problem = f"cannot load the model in force ({exc}); sorting goes on with the one loaded before"
            where = key[0] if key else None
            with self._lock:
                said = self._model_problem is not None and self._model_problem[0] == where
                self._model_problem = (where, problem)
            if not said:
                logger.error(problem)
                self._record_error(None, problem)
            return None
        with self._lock:
            self._model_problem = None
        pipeline.model = model
        self._emotions = tuple(model.labels) if model is not None else ()
        with self._lock:
            if judge == self.sorter.model:
                return judge
            self.sorter.model = judge
        lost = lost_in_force(self.settings)  # deleted or damaged: the shipped model took over
        level, why = ("WARNING", f" ({lost})") if lost else ("INFO", "")
        logger.log(level, "model changed: now using {}{}", judge.name, why)
        return judge

    def _failed(self, path: Path, exc: Exception) -> None:
        """A file failed in a way only we can cause: say so loudly, keep the file, try it again later.

        Loudly once per file and error type: the traceback (what a bug report needs) and a journal
        row, which `status` shows beside the file while it waits in the inbox. An error that stays
        (a bug this file always meets) logged its whole traceback at every retry, up to every
        MAX_BACKOFF_S for as long as the daemon ran; each later retry is now one line, the traceback
        at debug level. Recording the error may fail for the same reason (a full disk, a damaged
        journal); that must not take the worker with it.
        """
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        with self._lock:
            kinds = self._unexpected_said.setdefault(path, set())
            first = kind not in kinds
            kinds.add(kind)
        delay = self._back_off(path)
        if first:
            logger.opt(exception=exc).error(
                "{}: unexpected error, left in the inbox and tried again (at most {:.0f} s apart): {}",
                path,
                MAX_BACKOFF_S,
                exc,
            )
            self._record_error(path, f"unexpected: {exc}")
        else:
            logger.warning(
                "{}: unexpected error again ({}: {}); left in the inbox, retry in {:.0f} s",
                path,
                type(exc).__name__,
                exc,
                delay,
            )
            logger.opt(exception=exc).debug("{}: that error's traceback", path)
        self._later(delay, path)

    def _forget_failures(self, path: Path) -> None:
        """Drop what was counted and said of ``path``'s failures (the caller holds the lock): its
        move went through, or a new file took its name."""
        self._failures.pop(path, None)
        self._failure_said.pop(path, None)
        self._unexpected_said.pop(path, None)

    def _record_error(self, path: Path | None, message: str) -> None:
        """Into the journal, for `facesortd status`, if the journal can take it (the state disk may
        be full): the log has it anyway."""
        try:
            self.journal.error(path, message)
        except Exception as again:
            logger.error("cannot record that error in the journal either: {}", again)

    def process(self, pipeline: Pipeline, path: Path, judging: ModelId | None = None) -> Path | None:
        """Sort one file with the shared sorter; returns where it went (None: left where it is).
        ``judging``: the model ``pipeline`` holds (None: the sorter's).

        What only a daemon does stays here: retry a failed move later with back-off, wait for a
        file that may still be being written, say once why a file stays.
        """
        try:
            outcome = self.sorter.sort(pipeline, path, judged_by=judging)
        except (OSError, sqlite3.OperationalError) as exc:
            self._retry_later(path, exc)
            return None
        with self._lock:
            # Its move no longer fails: placed, kept, or gone meanwhile (deleted while it waited for
            # its retry: a count kept for it would stay for the life of the service).
            self._forget_failures(path)
            waiting = bool(self._failures)
        if outcome.kind in ("kept", "skipped"):
            self._tell_once(path, outcome.why)
        else:  # placed, waiting or gone: a file kept later under this name is said (and looked) at again
            self._told.discard(path)
        if outcome.kind == "gone":  # a file that took its name meanwhile was told of while it was
            self._look_due = True  # claimed, so not queued: the look after the burst finds it
        if outcome.kind == "wait":
            logger.info(
                "{}: {}; waiting {:.0f} s in case it is still being written",
                path,
                outcome.why,
                outcome.wait_s,
            )
            self._later(outcome.wait_s, path)
        if outcome.kind != "placed" or outcome.decision is None:
            return None
        if waiting:
            self._retry_waiting_now()
        self.counts[outcome.decision.outcome] += 1
        self._look_due = True
        logger.info(
            "{} -> {}  [{}, {:.0f} ms]", path, outcome.destination, outcome.decision.describe(), outcome.ms
        )
        if outcome.why:  # moved, but the journal could not say so: recovery does, at the next tick
            self._recover_due = True
            logger.error(
                "{}: the journal could not record its move to {} ({}); recorded as soon as the journal "
                "takes writes again (free some space in {}, or make it writable)",
                path,
                outcome.destination,
                outcome.why,
                self.settings.state_dir,
            )
        return outcome.destination

    def _learn(self, reviewer: Reviewer) -> None:
        """Record new labels and retrain when due, off the sorting path (workers keep going)."""
        try:
            reviewer.scan()
            with retrain_lock(self.settings.state_dir) as mine:
                if not mine:  # `facesortd retrain` (or `model use`) is at it right now
                    return
                retrain_if_due(self.settings, self.journal, user_labels(self.journal))
        except DriveNotMounted as exc:  # pulled out under the daemon: due still, so tried at each look
            problem = f"retrain put off until the library is back: {exc}"
            if problem != self._learning_problem:
                logger.warning(problem)
            self._learning_problem = problem
            return
        except Refused as exc:  # the person can fix it: said once, and by `status` until it is
            problem = f"cannot retrain: {exc}; sorting goes on with the model in force"
            if problem != self._learning_problem:
                logger.error(problem)
                self._record_error(None, problem)
            self._learning_problem = problem
            return
        except Exception as exc:  # learning must never take the sorting service down
            # Ours to fix, so with its traceback, but once: a failure that stays (a damaged model
            # file) logged it and filled the journal's errors at every look (every 30 s).
            problem = f"learning from your labels failed: {exc}; sorting goes on with the model in force"
            if problem != self._learning_problem:
                logger.exception(problem)
                self._record_error(None, f"learning failed: {exc}")
            self._learning_problem = problem
            return
        self._learning_problem = None  # this look went through
        self._reexamine_unsure()

    def _reexamine_unsure(self) -> None:
        """Once the model in force has changed, look again at the files in ``_quarantine/unsure/``
        (``learning.reexamine_unsure``): the old model judged them. Whoever changed it counts: this
        daemon's retrain, `facesortd retrain` or the review page's "retrain now" beside it, `model
        use`, `rollback`, with this daemon running or not; only the first did this before, so a retrain
        the README tells a person to run left every unsure file where it was. Files a person put
        there stay (the sorter's rule).

        A change counts even when the model in force is back to the one of the last look: a rollback
        A -> B -> A between two looks left B's unsure files judged by B alone, never looked at by A.
        So a model a worker took up since counts too (only such a model judged any file), once."""
        with self._lock:
            key, taken = _model_key(self.settings), set(self._taken_up)
        if key == self._unsure_judged_by and not taken - {key}:
            return
        if self.settings.learning.reexamine_unsure:
            # Its files are not the library's: the quarantine said by _check_library, unsure/ by status.
            if self.library.refusal(Decision.quarantine("unsure")):
                return
            unsure = self.settings.library / QUARANTINE_DIR / "unsure"
            try:
                entries = list_folder(unsure)
            except Refused as exc:  # tried again at each look, said once
                problem = f"cannot look again at the files in {unsure}: {exc}"
                if problem != self._reexamine_problem:
                    logger.error(problem)
                self._reexamine_problem = problem
                return
            self._reexamine_problem = None
            # Not those the model in force put there itself: on a daemon's first start the files its
            # first backlog had put in unsure/ before the first learning look were judged again.
            judged, judge = self.journal.judged_by(unsure), _model_id(self.settings)
            files = [
                Path(e.path)
                for e in entries
                if wanted(Path(e.path), self.settings.watch) and not judge.matches(judged.get(Path(e.path)))
            ]
            if files:  # a first start with nothing to look at again said "model in force changed"
                logger.info("looking again at {} unsure file(s) another model judged", len(files))
            for path in files:
                self.enqueue(path)
        self._unsure_judged_by = key
        with self._lock:  # those taken up since the start of this look are for the next one
            self._taken_up -= taken

    def _look_again(self, watcher: InboxWatcher) -> None:
        """Once the daemon is idle and the inbox changed since the last look (or ``_look_due``), look
        at it once more: inotify drops events when its queue overflows (something busy in the inbox,
        a huge copy while the daemon is starved or stopped), and the files it did not report would
        otherwise wait for the periodic rescan. Files waiting for a retry, or kept for a reason
        already told, are left to their own schedule."""
        self._look_due = False
        watcher.offer_inbox(self._waiting() | self._told)

    def _recover(self) -> None:
        """Complete or roll back journal rows left ``planned`` (see ``_recover_due``). Safe while
        running: recovery holds the move lock, so it sees no live move's row."""
        if recover_logged(self.journal):
            self._recover_due = False

    def _tell_once(self, path: Path, why: str) -> None:
        """Say why a file stays, once per path: rescans would repeat it for every such file."""
        if path not in self._told:
            self._told.add(path)
            logger.info("{}: {}", path, why)

    def _back_off(self, path: Path) -> float:
        """One more failure of ``path``: how long to wait before its next try (doubling up to
        MAX_BACKOFF_S). A failed move may have left a journal row behind: recovery runs at the tick."""
        with self._lock:
            n = self._failures.get(path, 0) + 1
            self._failures[path] = n
        self._recover_due = True
        return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0 ** (n - 1))

    def _retry_later(self, path: Path, exc: Exception) -> None:
        """Library or state disk full, not writable: the file stays in the inbox and is tried again,
        backing off. Said (and recorded for `status`) once per file and reason: a refusal that lasts
        (a folder not writable, a library too deep for the name) logged a line at every retry, up to
        every MAX_BACKOFF_S, for as long as it lasted."""
        why = str(exc)
        with self._lock:
            said, self._failure_said[path] = self._failure_said.get(path) == why, why
        delay = self._back_off(path)
        if said:
            logger.debug("{}: move failed again ({}); retry in {:.0f} s", path, why, delay)
        else:
            logger.error(
                "{}: cannot move it into the library ({}); it stays in the inbox and is tried again "
                "(at most {:.0f} s apart) until it can be",
                path,
                why,
                MAX_BACKOFF_S,
            )
            self._record_error(path, f"move failed: {why}")
        self._later(delay, path)

    def _retry_waiting_now(self) -> None:
        """A move worked again (space was freed, the library is back): every file waiting for its
        backed-off retry goes now, rather than up to MAX_BACKOFF_S later. Through a timer due at
        once, which waits for a worker still holding the file: one that had just failed (its retry
        timer set, not yet let go) had that timer cancelled and the queueing refused as busy, and
        the file stayed in the inbox until the next rescan or restart."""
        with self._lock:
            waiting, self._failures = list(self._failures), {}
        for path in waiting:
            self._later(0.0, path)

    def _waiting(self) -> set[Path]:
        """Paths a timer will queue again (a retry after a failed move, a look at a file that may still
        be being written): a rescan must not hand them over before their time, which retried a failed
        move at every rescan and left one more timer behind each time."""
        with self._lock:
            return set(self._timers)

    def _later(self, delay: float, path: Path) -> None:
        """Queue ``path`` again after ``delay`` (later still if a worker holds it at that moment); one
        timer per path: a new one replaces the one pending."""

        def fire() -> None:
            with self._lock:
                if self._timers.get(path) is not timed:
                    return  # replaced, or cancelled as it fired
                del self._timers[path]
                busy = path in self._claimed
            if busy and not self.stop_event.is_set():
                self._later(0.2, path)
            else:
                self.enqueue(path)

        file = _identity(path)
        with self._lock:  # set before it can fire: one due at once finds itself the path's timer
            pending = self._timers.get(path)
            self._timers[path] = timed = _Timed(self._later_calls.later(delay, fire), file)
        if pending is not None:
            pending.timer.cancel()

    def _cancel_timers(self) -> None:
        """Stopping: no file is queued again (its timer's thread ends too)."""
        self._later_calls.stop()
        with self._lock:
            timers, self._timers = list(self._timers.values()), {}
        for timed in timers:
            timed.timer.cancel()

    # -- status ------------------------------------------------------------------------------
    def _publish_status(self) -> None:
        status = {
            "pid": os.getpid(),
            "started": self.started,
            "updated": time.time(),
            "queue": self.queue_length(),
            "model": self.sorter.model.name,
            "model_version": self.sorter.model.version,
            "settings": self._fingerprint,
            "sorted_since_start": dict(self.counts),
            # One line each, as `status` prints them: text read back from JSON cannot be told
            # from a name's own characters any more.
            "problems": [
                one_line(p)
                for p in (
                    self._inbox_problem,
                    self._library_problem,
                    self._model_problem and self._model_problem[1],
                    self._learning_problem,
                )
                if p
            ],
        }
        try:
            # Not into a state folder made anew: gone with its drive unmounted (or `rm -r`: the daemon
            # stops for it at this tick), it was made again on the disk below the mount point, which
            # then hid it, and which exfat-fuse refuses to mount over.
            state_dir = self.settings.state_dir
            if not state_dir.is_dir():
                raise FileNotFoundError(errno.ENOENT, "the state folder is gone", str(state_dir))
            with atomic_writer(state_dir / STATUS_FILE) as fh:
                fh.write(json_text(status).encode())
        except OSError as exc:
            if not self._status_failing:  # once per episode, not every second
                state_dir = self.settings.state_dir
                fix = f" (chmod u+rwx '{state_dir}')" if isinstance(exc, PermissionError) else ""
                logger.warning(
                    "cannot write the status file ({}): `{}` cannot follow this daemon "
                    "until {} takes files again{}",
                    exc.strerror or exc,
                    advised("status"),
                    state_dir,
                    fix,
                )
            self._status_failing = True
        else:
            self._status_failing = False
        total = sum(self.counts.values())
        notify(f"STATUS=sorted {total} since start, queue {status['queue']}, model {self.sorter.model.name}")


FileIdentity = tuple[int, int, int]
"""A file as a timer saw it: device, size, modification time (ns); not its inode number, which a FUSE
drive's inbox changes whenever the kernel drops the file from its cache (:func:`durable.unwritten`):
the file waiting for its retry was taken for a new arrival and tried at once, back-off or not."""


def _identity(path: Path) -> FileIdentity | None:
    """Which file ``path`` names now, and whether it changed (None: none, or not to be looked at)."""
    try:
        st = path.lstat()
    except OSError:
        return None
    return unwritten(st)


class _Timed(NamedTuple):
    """A path's one timer, and the file it was set for: an event for that file leaves it to the timer."""

    timer: Call
    file: FileIdentity | None


def _model_key(settings: Settings) -> ModelKey | None:
    return model_key(model_in_force(settings))


def _last_run_model(settings: Settings) -> ModelId | None:
    """The model this state folder's daemon used last, as its status file left it (None: no daemon
    ran here yet, and the unsure files, if `sort` put any there, were judged by who knows which);
    by its name alone where an older daemon wrote the file."""
    try:
        status = json.loads((settings.state_dir / STATUS_FILE).read_text(encoding="utf-8"))
        version = status.get("model_version")
        return ModelId(str(exact(status, "model")), version if isinstance(version, str) else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _model_id(settings: Settings) -> ModelId:
    """The model in force as the journal knows it (reads the whole file: once per change of model)."""
    return model_id(model_in_force(settings))
