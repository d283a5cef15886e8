"""A batch of files through the sorter (`facesortd sort`): a pipeline per worker thread, the journal,
results in input order, until all are done, the caller's stop is asked (acted on between files), a
disk is full or the library's drive is gone.

What the daemon does for each file as it arrives, done for a list named at once: the same `Sorter`,
the same wait for a file still being written, the same journal recovery first. Presentation stays
with the command (`cli/sort.py`, `cli/sort_report.py`), which hands in how to make a pipeline and
when to stop, as `Service` is handed its ``make_pipeline``.

Set up as `with SortBatch(...) as batch:`, so that the journal is closed whatever happens; the
command presents each outcome as it comes (``batch.outcomes(stop)``). Before it, ``sorted_out_of``
tells the command's choice of files how many were sorted out of a folder named again."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from facesortd.config import Settings
from facesortd.cores import share_cores
from facesortd.decide import Pipeline
from facesortd.ensemble import Model
from facesortd.journal import Journal, JournalError, JournalLocked, JournalReplaced, ModelId
from facesortd.library import Library
from facesortd.mounts import nearest_existing
from facesortd.recovery import recover_logged
from facesortd.refusals import DISK_FULL, Refused, Unmade, disk_full_fix
from facesortd.sorter import Outcome, Sorter
from facesortd.state import JOURNAL_FILE
from facesortd.workers import Lender, in_order_until

STOP_POLL_S = 0.1
"""How soon a stop (Ctrl-C) is noticed while the batch waits for a half-written file's writer."""


@dataclass(frozen=True)
class SortOptions:
    """How `sort` was asked to sort: what the sorter and the workers need of its arguments."""

    dry_run: bool
    copy: bool
    named: bool
    """Paths a person named are their request: it overrides their earlier undo or quarantine."""
    workers: int


class SortBatch:
    """One sort of ``files``: its pipelines, journal and sorter, and what stopped it early."""

    def __init__(
        self,
        settings: Settings,
        files: list[Path],
        options: SortOptions,
        make_pipeline: Callable[[], Pipeline],
        judge: ModelId,
    ) -> None:
        """``make_pipeline`` is called once per worker: OpenCV's detectors are not shareable, the
        emotion model (read-only) is, so it is the caller's to load once and share; ``judge`` is how
        the journal knows it (``model_store.load_in_force``: of the bytes loaded, not of the model in
        force asked again, which a `model use` meanwhile had changed)."""
        self.settings = settings
        self.files = files
        self.options = options
        self.workers = min(options.workers, len(files))
        self.make_pipeline = make_pipeline
        self.judge = judge
        self.blocked = ""
        """Why every move after the last would fail alike (a full disk, the library's drive gone or
        read-only, the journal locked or replaced), with the fix: the run stops there ("": none)."""
        self.blocked_until = ""
        """When the same command can sort the files left."""
        self.read_only_source = False
        """A file could not be moved out of a folder on a read-only filesystem (a card, an image, a
        snapshot), which `sort --copy` copies from."""
        self._stop: Callable[[], bool] = lambda: False
        self._exit = ExitStack()

    def __enter__(self) -> SortBatch:
        pipelines = [self.make_pipeline() for _ in range(self.workers)]
        self._pipelines = Lender(pipelines)
        share_cores(self.workers)
        with ExitStack() as opened:  # closed here if the set-up fails, else at the batch's end
            journal = opened.enter_context(_journal(self.settings, self.options.dry_run))
            self._sorter = self._make_sorter(journal, pipelines[0].model if pipelines else None)
            if self._sorter.unreadable_since is not None:  # an unreadable file's wait begins now
                self._sorter.unreadable_since.start(self.files)
            self._exit = opened.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def outcomes(self, stop: Callable[[], bool]) -> Iterator[tuple[Path, Outcome | Exception]]:
        """Each file with its outcome (or the error it failed with), in input order; the rest of the
        files are left where they are once ``stop()`` is true, a disk is full or the library's drive
        gone (``blocked``)."""
        self._stop = stop
        for src, outcome in in_order_until(
            self._sort_one, self.files, self.workers, lambda: stop() or bool(self.blocked)
        ):
            if outcome is not None:
                yield src, outcome

    def _make_sorter(self, journal: Journal | None, model: Model | None) -> Sorter:
        library = Library(self.settings.library)
        if not self.options.dry_run and model is not None:
            library.make_emotion_folders(model.labels)
        watch = self.settings.watch
        return Sorter(
            library,
            journal,
            model=self.judge,
            duplicates=watch.duplicates,
            dry_run=self.options.dry_run,
            copy=self.options.copy,
            # The inbox is where writers are at work, as for the daemon; a file named is sorted now.
            unreadable_settle_s=0.0 if self.options.named else watch.unreadable_settle_s,
            extensions=tuple(watch.extensions),
            ignore=tuple(watch.ignore),
        )

    def _sort_one(self, src: Path) -> Outcome | Exception | None:
        """The file's outcome; None if the run was blocked before it began: a file handed to a worker
        ahead of time is left untouched and counted among those left, not failed for the block (a
        drive pulled out under `sort` failed one file more or fewer by how soon the main thread woke,
        each said "could not move it")."""
        if self.blocked:
            return None
        with self._pipelines.borrow() as pipeline:
            try:
                outcome = self._sorter.sort(pipeline, src, named=self.options.named)
                if outcome.kind == "wait" and self._waited(outcome.wait_s):
                    # Looked at once more: changed again meanwhile, it is being written (said so,
                    # to sort again later), so a file written for ever does not hold `sort` for ever.
                    outcome = self._sorter.sort(pipeline, src, named=self.options.named)
                return outcome
            except JournalLocked as exc:  # every file after it would fail alike
                self._block(str(exc), "the journal is free")
                return exc
            except JournalReplaced as exc:
                # Raised out of the batch, it ended `sort` with the files the other workers placed
                # meanwhile neither said nor counted, and no word of those left
                self._block(str(exc), "started again, with the journal there now")
                return exc
            except Exception as exc:  # one file must not end the batch: the rest still get sorted
                if why := _disk_full(exc, self.settings.state_dir):  # every other would fail alike
                    self._block(why, "there is room")
                elif isinstance(exc, Refused) and exc.errno == errno.ENODEV:  # Library.refusal: unmounted
                    self._block(str(exc), "the drive is mounted again")
                elif isinstance(exc, Unmade):  # a library under /proc, or deleted under the sort
                    self._block(str(exc), "the library is a folder that can be made")
                elif _on_read_only(exc, self.settings.library):
                    self._block(str(exc), "it is mounted writable")
                elif isinstance(exc, OSError) and exc.errno == errno.EROFS:  # the folder it is in
                    self.read_only_source = True
                return exc

    def _block(self, why: str, until: str) -> None:
        """Stop the run: every move after this one would fail for ``why`` (the first said wins). A
        library's drive pulled out under `sort` classified each file left, to fail it alike."""
        if not self.blocked:
            self.blocked, self.blocked_until = why, until

    def _waited(self, seconds: float) -> bool:
        """Wait ``seconds`` by the monotonic clock for an unreadable file's writer, as the daemon
        does; False if a stop was asked meanwhile. Until 2026-12-02 `sort` judged that wait by the
        file's date against the wall clock: a clock stepped by more than watch.unreadable_settle_s
        (NTP at boot, a resumed VM) quarantined a file still being written."""
        end = time.monotonic() + seconds
        while not self._stop():
            if (left := end - time.monotonic()) <= 0:
                return True
            time.sleep(min(STOP_POLL_S, left))
        return False


@contextmanager
def _journal(settings: Settings, dry_run: bool) -> Iterator[Journal | None]:
    """The journal to sort with, closed at the end; None for a dry run where none exists yet (it
    reads the history but never creates the state folder). A `sort` killed mid-move, or whose journal
    refused a move's last mark, left its row planned: without a daemon started since, the file
    half-moved was sorted a second time; so a real run recovers first."""
    journal_file = settings.state_dir / JOURNAL_FILE
    if dry_run and not journal_file.exists():
        yield None
        return
    journal = Journal(journal_file)
    try:
        if not dry_run:
            recover_logged(journal)
        yield journal
    finally:
        journal.close()


def recover_only(settings: Settings) -> None:
    """A `sort` with nothing to sort still finishes what a killed `sort` or `undo` left half-way
    (`status` advises `sort` for it): it returned at once, and an undo of a `sort --copy` killed
    with the original hidden in its folder left it hidden until the daemon's next start. A journal
    not made yet has nothing to finish, and is not made. One that cannot be used (damaged, of a
    newer facesortd) is refused as by every command, exit 2, which read as a failed sort of an empty
    inbox: said as what it is, with its fix."""
    if not (settings.state_dir / JOURNAL_FILE).exists():
        return
    try:
        with _journal(settings, dry_run=False):
            pass
    except JournalError as exc:
        if type(exc) is not JournalError:  # locked, on a full disk: no damage, said as they are (exit 1)
            raise
        raise JournalError(
            f"nothing to sort, but the journal, read to finish what a killed `sort` or `undo` left "
            f"half-way, cannot be used: {exc}"
        ) from exc


def sorted_out_of(settings: Settings) -> Callable[[Path], int] | None:
    """How many files were sorted out of a folder before, by the journal (None: nothing ever was):
    `sort FOLDER` run again once all was sorted is not the wrong folder named. The journal is opened
    only for a folder of no image, and closed at once."""
    journal_file = settings.state_dir / JOURNAL_FILE
    if not journal_file.exists():
        return None

    def count(folder: Path) -> int:
        # By the name given and by where it leads: `sort LINK` (or `sort d/../d`) to a folder sorted
        # as `sort d` was refused as "no images in LINK", exit 2, where `sort d` said it was done
        names = dict.fromkeys([folder.absolute(), Path(os.path.realpath(folder))])
        journal = Journal(journal_file)
        try:
            return sum(journal.sorted_from(name) for name in names)
        finally:
            journal.close()

    return count


def _on_read_only(exc: Exception, library: Path) -> bool:
    """Did a move fail because the library is on a read-only filesystem (a drive mounted so, or
    remounted so by the kernel after an error)? Every move into it would fail alike: `sort` went on
    classifying each file left, to fail it with the same line. A read-only folder the file came from
    fails that file only (the other files named may come from elsewhere)."""
    if not (isinstance(exc, OSError) and exc.errno == errno.EROFS):
        return False
    try:
        return bool(os.statvfs(nearest_existing(library)).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _disk_full(exc: Exception, state_dir: Path) -> str:
    """Which disk had no room for a move, with the fix ("" if that is not what ``exc`` is): the
    library's (a Refused names its folder) or the journal's. Sorting on classified each of thousands
    of files left, to fail it alike, a line each."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return str(exc)
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return f"the journal has no room ({exc}): {disk_full_fix(state_dir)}"
    return ""
