"""The ninth round's hostile sweep: concurrency and crashes. A journal that refuses a move's last
mark, a `sort` killed mid-move and run again, recovery meeting what happened since the crash. Each
test here failed on the code before its fix."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from journal_holder import journal_held
from loguru import logger
from synthetic import draw_face, screenshot_png, stub_pipeline
from waiting import HUNG_S, running_daemon, wait_until

from facesortd import cli, durable, watch
from facesortd import content as content_module
from facesortd import journal as journal_module
from facesortd.config import ImageLimits, Settings
from facesortd.content import file_hash
from facesortd.decide import Decision, Pipeline
from facesortd.file_names import numbered_names, numbered_names_among
from facesortd.images import UnreadableImage, read_image
from facesortd.journal import Journal, ModelId
from facesortd.library import Library
from facesortd.placement import UnjournaledMove, journaled_apply
from facesortd.recovery import recover
from facesortd.refusals import Refused
from facesortd.service import Service
from facesortd.sorter import Outcome, Sorter
from facesortd.status import interrupted_moves

HAPPY = Decision("sorted", emotion="happy", confidence=0.9)
FULL = sqlite3.OperationalError("database or disk is full")


@pytest.fixture
def settings(cli_settings: Settings) -> Settings:
    """The daemon's folders, which the CLI sees too. (conftest's cli_settings)."""
    return cli_settings


def _killed_mid_move(settings: Settings, seed: int) -> tuple[Journal, Path, Path]:
    """inbox/a.png moved to happy/a.png by a process killed before its 'done' mark: (journal, the
    source's name, where the file is)."""
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(seed))
    journal = Journal.for_state_dir(settings.state_dir)
    moved = settings.library / "happy" / "a.png"
    journal.plan(file_hash(src), src, moved, HAPPY, "m")
    moved.parent.mkdir(parents=True)
    src.rename(moved)
    return journal, src, moved


@pytest.fixture
def log() -> Iterator[list[str]]:
    """Every log line, as written (not for tests of `cli.main`, which sets up logging anew)."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO")
    yield lines
    logger.remove(sink)


def file_hash_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cross_device_for(src: Path) -> Callable[..., None]:
    """``os.link`` that refuses ``src`` as across filesystems, so its move copies it."""
    real_link = os.link

    def link(a: Path, b: Path, **kw: bool) -> None:
        if Path(a) == src:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_link(a, b, **kw)

    return link


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock"))


def refuse_done(monkeypatch: pytest.MonkeyPatch, times: int = 1) -> None:
    """The journal refuses the next ``times`` marks of a move as done (the state disk filled up just
    after the move); everything else it takes."""
    real = Journal.finish
    left = [times]

    def finish(self: Journal, move_id: int, state: str, destination: Path | None = None) -> None:
        if state == "done" and left[0]:
            left[0] -= 1
            raise FULL
        real(self, move_id, state, destination)

    monkeypatch.setattr(Journal, "finish", finish)


# -- a move whose `done` mark the journal refuses -----------------------------------------------------
def test_a_move_the_journal_cannot_mark_done_says_where_the_file_went_and_recovery_records_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(1))
    journal = Journal.for_state_dir(settings.state_dir)
    refuse_done(monkeypatch)
    with pytest.raises(UnjournaledMove) as caught:
        journaled_apply(journal, Library(settings.library), src, file_hash(src), HAPPY, ModelId("m"))
    final = settings.library / "happy" / "a.png"
    assert caught.value.final == final and str(final) in str(caught.value)
    assert files(settings.inbox) == [] and files(settings.library) == [final]
    assert list(recover(journal)) == [f"completed the interrupted move of {src} -> {final}"]
    assert journal.done_at(final) is not None and journal.planned() == []


def test_a_rollback_the_journal_cannot_mark_keeps_the_moves_own_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move was refused (a folder to fix) and the journal then refused the rollback mark: the
    person was told about the journal only, not about the folder."""
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(1))
    journal = Journal.for_state_dir(settings.state_dir)
    refused = Refused(OSError(errno.EACCES, "Permission denied"), "cannot write into lib/happy", "chmod it")
    monkeypatch.setattr(Library, "apply", lambda *_a, **_k: (_ for _ in ()).throw(refused))
    monkeypatch.setattr(Journal, "finish", lambda *_a: (_ for _ in ()).throw(FULL))
    with pytest.raises(Refused):
        journaled_apply(journal, Library(settings.library), src, file_hash(src), HAPPY, ModelId("m"))
    monkeypatch.undo()
    assert list(recover(journal)) == [f"rolled back the interrupted move of {src} (it stays in {src.parent})"]
    assert files(settings.inbox) == [src]


def test_the_daemon_says_where_a_file_went_whose_move_the_journal_could_not_record(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, log: list[str]
) -> None:
    """It said the file "stays in the inbox" and retried it, finding it gone."""
    refuse_done(monkeypatch)
    with running_daemon(settings, stub_pipeline) as daemon:
        (settings.inbox / "a.png").write_bytes(screenshot_png(2))
        wait_until(lambda: sum(daemon.counts.values()) == 1)
        journal = daemon.journal
        final = settings.library / "_quarantine" / "unsure" / "a.png"
        wait_until(lambda: journal.done_at(final) is not None)  # recovered at a tick
    text = "".join(log)
    assert "stays in the inbox" not in text and "unexpected" not in text
    assert f"could not record its move to {final}" in text and "completed the interrupted move" in text
    assert files(settings.library) == [final] and files(settings.inbox) == []


@pytest.mark.parametrize("copy", [False, True], ids=["move", "copy"])
def test_sort_says_where_a_file_went_whose_move_the_journal_could_not_record_and_the_next_sort_records_it(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    copy: bool,
) -> None:
    """`sort` said "could not move it" and exited 1 for a file it had moved; and a copy whose mark
    was refused was removed by the next recovery, though the person had asked for it."""
    folder = tmp_path / "screens"
    folder.mkdir()
    (folder / "a.png").write_bytes(screenshot_png(3))
    refuse_done(monkeypatch)
    assert cli.main(["sort", *(["--copy"] if copy else []), str(folder)]) == 0
    final = settings.library / "_quarantine" / "unsure" / "a.png"
    assert f"-> {final}, but the journal could not record the move" in capsys.readouterr().err
    later = tmp_path / "later"
    later.mkdir()
    (later / "b.png").write_bytes(screenshot_png(4))
    assert cli.main(["sort", str(later)]) == 0
    journal = Journal.for_state_dir(settings.state_dir)
    assert journal.done_at(final) is not None and journal.planned() == []
    assert files(settings.library) == [final, final.with_name("b.png")]
    assert files(folder) == ([folder / "a.png"] if copy else [])


def test_a_sort_killed_between_link_and_unlink_then_run_again_places_the_file_once(
    settings: Settings,
) -> None:
    """Only the daemon's start recovered: a person who never runs it had the file sorted twice."""
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(5))
    unsure = settings.library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    journal = Journal.for_state_dir(settings.state_dir)
    journal.plan(file_hash(src), src, unsure / "a.png", Decision.quarantine("unsure"), "m")
    (unsure / "a.png").hardlink_to(src)  # kill -9 here
    journal.close()
    assert cli.main(["sort"]) == 0
    assert files(settings.library) == [unsure / "a.png"] and files(settings.inbox) == []


def test_sort_beside_a_process_holding_the_journal_names_it_and_stops(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A process holding the journal's write lock (here a stuck daemon) made every file of `sort` wait
    30 s, each then "could not move it: database is locked", naming no one and no fix."""
    with journal_held(settings.state_dir) as holder:
        monkeypatch.setattr(journal_module, "LOCK_WAIT_S", 0.2)
        folder = tmp_path / "screens"
        folder.mkdir()
        for n in range(3):
            (folder / f"{n}.png").write_bytes(screenshot_png(20 + n))
        capsys.readouterr()
        assert cli.main(["sort", "--workers", "1", str(folder)]) == 1
    err = capsys.readouterr().err
    assert (
        f"pid {holder.pid} (" in err and "the facesortd daemon" in err and "systemctl --user restart" in err
    )
    assert err.count("stayed locked") == 1  # said once: the files after it were not tried
    assert len(files(folder)) == 3 and files(settings.library) == []


def test_undo_n_gets_past_a_move_it_cannot_undo_and_names_it(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undo N` took the N newest moves whatever they were: one it could not undo (its file deleted
    or changed since) was met again at every `undo 1`, and nothing older could be undone by count."""
    folder = tmp_path / "screens"
    folder.mkdir()
    for n in range(3):
        (folder / f"{n}.png").write_bytes(screenshot_png(30 + n))
    assert cli.main(["sort", "--workers", "1", str(folder)]) == 0
    journal = Journal.for_state_dir(settings.state_dir)
    newest, second, oldest = journal.done_moves()
    journal.close()
    newest.destination.unlink()  # a person deleted the newest sorted file
    capsys.readouterr()
    assert cli.main(["undo", "1"]) == 0
    out = capsys.readouterr().out
    assert f"{newest.destination}: no longer there" in out and f"{second.destination} -> " in out
    assert files(folder) == [second.source]
    assert cli.main(["undo", "1"]) == 0  # and the next one on
    assert files(folder) == sorted([second.source, oldest.source])


# -- recovery meets what happened since the crash ---------------------------------------------------
def test_recovery_keeps_a_moved_file_when_a_new_file_took_its_old_name(settings: Settings) -> None:
    """Killed after the move, before its `done` mark; a new a.png dropped before the restart was
    taken for the source still there, and the moved file, its only copy, was deleted."""
    journal, src, moved = _killed_mid_move(settings, 6)
    src.write_bytes(screenshot_png(7))  # the same name again, other content
    assert list(recover(journal)) == [f"completed the interrupted move of {src} -> {moved}"]
    assert files(settings.library) == [moved] and file_hash(moved) == file_hash_of(screenshot_png(6))
    assert file_hash(src) == file_hash_of(screenshot_png(7))


def test_recovery_never_acts_on_an_interrupted_move_an_older_version_journaled_by_a_relative_path(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older facesortd kept `sort shots/a.png` as typed. Recovery read "shots/a.png" in the
    current folder: a file of the same content there passed for the source still in place, and the
    moved file, the only copy of the person's picture, was deleted as an unfinished extra."""
    journal, _src, moved = _killed_mid_move(settings, 6)
    journal.close()
    db = sqlite3.connect(settings.state_dir / "journal.sqlite")
    db.execute("UPDATE moves SET source = CAST('shots/a.png' AS BLOB)")  # as older versions wrote it
    db.commit()
    db.close()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "shots").mkdir(parents=True)
    (elsewhere / "shots" / "a.png").write_bytes(screenshot_png(6))  # the same picture, kept elsewhere
    monkeypatch.chdir(elsewhere)
    journal = Journal.for_state_dir(settings.state_dir)
    [said] = list(recover(journal))
    assert "'shots/a.png'" in said and "left alone" in said and "delete the one outside the library" in said
    assert list(recover(journal)) == []  # said once
    assert files(settings.library) == [moved] and file_hash(moved) == file_hash_of(screenshot_png(6))
    assert files(elsewhere / "shots") == [elsewhere / "shots" / "a.png"]
    assert [m.id for m in journal.planned()] == [1]  # the row is left for a person, untouched
    assert said in [message for _at, _path, message in journal.last_errors()]  # `status` shows it
    problems: list[str] = []
    interrupted_moves(settings, journal, problems)
    [problem] = problems  # not advised away with a `sort`, which never clears it
    assert "'shots/a.png'" in problem and "`facesortd sort`" not in problem
    assert "`facesortd undo --forget-relative`" in problem and "`facesortd undo --forget-relative`" in said


def test_recovery_records_the_numbered_name_a_second_copy_of_sorted_content_got(settings: Settings) -> None:
    """The same content sorted before sat at happy/a.png; the interrupted move put its file at
    happy/a (1).png, but recovery recorded it at a.png: the journal then held two moves to a.png and
    none to a (1).png, which the label scan took for a person's label."""
    library = Library(settings.library)
    journal = Journal.for_state_dir(settings.state_dir)
    first = settings.inbox / "a.png"
    first.write_bytes(screenshot_png(8))
    journaled_apply(journal, library, first, file_hash(first), HAPPY, ModelId("m"))
    first.write_bytes(screenshot_png(8))  # dropped again
    journal.plan(file_hash(first), first, settings.library / "happy" / "a.png", HAPPY, "m")
    second = library.apply(first, HAPPY)  # kill -9 here
    assert second.name == "a (1).png"
    assert list(recover(journal)) == [f"completed the interrupted move of {first} -> {second}"]
    assert [m.destination.name for m in journal.done_moves()] == ["a (1).png", "a.png"]


# -- a person moving a file while facesortd moves it ------------------------------------------------
@pytest.mark.parametrize("across_filesystems", [False, True], ids=["link", "copy"])
def test_a_file_a_person_moves_on_while_it_is_being_moved_stays_once_and_known(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, across_filesystems: bool
) -> None:
    """A person drags a quarantined file into happy/ while the daemon (re-examining unsure) moves it.

    Between facesortd's link and its unlink of the source: the file kept both names (journaled
    as sorted, and the person's, both in the library). Across filesystems, between its copy and
    the unlink: the copy stayed, the journal said rolled back, and the untracked copy counted as
    a person's label. Now a file that still has the person's name loses ours; a copy whose
    source left is kept and journaled (the source may have been deleted: never lose the last one).
    """
    unsure = settings.library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    src = unsure / "a.png"
    src.write_bytes(screenshot_png(9))
    theirs = settings.library / "happy" / "a.png"
    theirs.parent.mkdir()
    real_fsync = durable.fsync_dir

    def person_moves_it(path: Path) -> None:  # the move's first step into the destination folder
        real_fsync(path)
        if path == settings.library / "sad" and src.exists():
            src.rename(theirs)

    monkeypatch.setattr(durable, "fsync_dir", person_moves_it)
    if across_filesystems:
        monkeypatch.setattr(durable.os, "link", cross_device_for(src))
    journal = Journal.for_state_dir(settings.state_dir)
    sad = Decision("sorted", emotion="sad", confidence=0.9)
    if across_filesystems:
        final = journaled_apply(journal, Library(settings.library), src, file_hash(src), sad, ModelId("m"))
        assert files(settings.library) == [theirs, final] and journal.done_at(final) is not None
    else:
        with pytest.raises(FileNotFoundError):
            journaled_apply(journal, Library(settings.library), src, file_hash(src), sad, ModelId("m"))
        assert files(settings.library) == [theirs] and journal.done_moves() == []
    assert journal.planned() == []


# -- a state folder that is full or read-only ------------------------------------------------------
@pytest.fixture
def tiny_state(settings: Settings) -> Iterator[Path]:
    """The state folder on its own 1 MB tmpfs (root only: skipped without the privilege)."""
    state = settings.state_dir
    state.mkdir(parents=True)
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(state)]).returncode
    ):
        pytest.skip("mounting a tmpfs needs root")
    try:
        Journal.for_state_dir(state).close()
        yield state
    finally:
        subprocess.run(["umount", "-l", str(state)], check=False)


def fill(folder: Path) -> None:
    """Write into ``folder`` until its disk is full."""
    with (folder / "filler").open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()


@pytest.mark.parametrize("how", ["full", "read-only"])
def test_a_full_or_read_only_state_folder_is_said_so_not_called_damaged(
    tiny_state: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """A full state disk made every command call the journal damaged and advise moving it aside
    (losing undo history and labels), with exit 2, which systemd does not restart: `run` stayed
    down once there was room again. A read-only one ended every command in a traceback."""
    if how == "full":
        fill(tiny_state)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_state)], check=True)
    for command in (["status"], ["run"], ["undo"]):
        assert cli.main(command) == 1
        err = capsys.readouterr().err.strip()
        assert "is damaged" not in err and "mv " not in err and "\n" not in err, err
        assert ("free some space" if how == "full" else "read-only") in err, err
    if how == "full":
        (tiny_state / "filler").unlink()
    else:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_state)], check=True)
    assert cli.main(["status"]) == 0  # the same journal, as it was


def test_a_recovery_the_journal_refuses_at_start_does_not_stop_the_daemon(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state disk full at start, with a move a crash interrupted: `run` ended in a traceback (and
    systemd restarted it every 5 s, sorting nothing meanwhile). Now it sorts, and recovers at a tick."""
    journal, _src, moved = _killed_mid_move(settings, 10)
    journal.close()
    refuse_done(monkeypatch)
    with running_daemon(settings, stub_pipeline) as daemon:
        (settings.inbox / "b.png").write_bytes(screenshot_png(11))
        wait_until(lambda: sum(daemon.counts.values()) == 1)
        wait_until(lambda: daemon.journal.done_at(moved) is not None)


# -- images that lie ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_an_image_with_data_after_its_end_is_read_and_one_cut_short_is_not(tmp_path: Path, ext: str) -> None:
    """Data after a JPEG's end marker (phones append a video or a trailer to photos) or after a
    PNG's IEND made the file "truncated" and sent it to unreadable/, though OpenCV reads it whole."""
    img = cv2.cvtColor(draw_face("happy", 64, np.random.default_rng(0)), cv2.COLOR_GRAY2BGR)
    data = cv2.imencode(ext, img)[1].tobytes()
    (tmp_path / f"trailer{ext}").write_bytes(data + bytes(range(256)) * 8)
    assert read_image(tmp_path / f"trailer{ext}", ImageLimits()).shape == (64, 64, 3)
    (tmp_path / f"cut{ext}").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(UnreadableImage, match="truncated"):
        read_image(tmp_path / f"cut{ext}", ImageLimits())


# -- names --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "clash"),
    [
        ("笑顔.png", "笑顔 (1).png"),
        ("café.png", "café (1).png"),
        (os.fsdecode(b"caf\xe9.png"), os.fsdecode(b"caf\xe9 (1).png")),  # Latin-1, not UTF-8
        ("é" * 125 + ".png", "é" * 123 + " (1).png"),  # cut to fit 255 bytes, never inside a character
        (os.fsdecode(b"\x80" * 251 + b".png"), os.fsdecode(b"\x80" * 244 + b" (1).png")),  # ≤ 3 bytes more
    ],
)
def test_a_name_taken_gets_its_number_without_losing_its_last_character(
    tmp_path: Path, name: str, clash: str
) -> None:
    """A clash on a name ending in a character that is not ASCII dropped that character (笑顔.png
    became 笑 (1).png, café.png caf (1).png); a name of stray bytes lost all of them ( (1).png)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / name).write_bytes(b"first")
    (tmp_path / name).write_bytes(b"second")
    assert durable.move_no_replace(tmp_path / name, tmp_path / "lib" / name).name == clash


# -- the watcher ---------------------------------------------------------------------------------------
def test_a_name_whose_open_file_left_the_inbox_is_sorted_when_a_new_file_takes_it(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file some program held open (a viewer, a writer) was moved out of the inbox before it was
    closed: inotify reports that close to the folder it went to, so its name counted as open for the
    life of the daemon, and every later file under that name waited in the inbox for ever."""
    monkeypatch.setattr(watch, "STALE_CHECK_S", 0.2)  # the mark is checked sooner than a second on
    with running_daemon(settings, stub_pipeline) as daemon:
        name = settings.inbox / "image.png"
        held = name.open("wb")
        held.write(screenshot_png(12))
        held.flush()
        name.rename(tmp_path / "image.png")
        held.close()
        (tmp_path / "stage.png").write_bytes(screenshot_png(13))
        (tmp_path / "stage.png").rename(name)  # a new file under the name, as a screenshot tool saves
        wait_until(lambda: sum(daemon.counts.values()) == 1)
    assert files(settings.inbox) == []


def test_a_file_whose_close_inotify_dropped_is_sorted_once_no_one_writes_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When inotify's queue overflows, the close that ended a write can be lost after its open was
    heard: the name counted as open for the life of the daemon, and neither the settler nor any
    rescan handed the file on. A file still held for writing must wait all the same."""
    real_closed = watch._Handler._closed
    monkeypatch.setattr(  # the overflow: every close of lost.png dropped, its opens heard
        watch._Handler,
        "_closed",
        lambda self, event, offer: (
            None if "lost" in os.fsdecode(event.src_path) else real_closed(self, event, offer)
        ),
    )
    monkeypatch.setattr(watch, "STALE_CHECK_S", 0.2)  # the mark is checked sooner than a second on
    settings = settings.model_copy(
        update={"watch": settings.watch.model_copy(update={"rescan_interval_s": 0.3})}
    )
    with running_daemon(settings, stub_pipeline) as daemon:
        held = (settings.inbox / "held.png").open("wb")
        held.write(screenshot_png(14)[:100])
        held.flush()
        (settings.inbox / "lost.png").write_bytes(screenshot_png(15))
        wait_until(lambda: sum(daemon.counts.values()) == 1)
        assert files(settings.inbox) == [settings.inbox / "held.png"]  # still written: not taken
        held.write(screenshot_png(14)[100:])
        held.close()
        wait_until(lambda: sum(daemon.counts.values()) == 2)
    assert files(settings.inbox) == []
    assert sorted(p.name for p in files(settings.library)) == ["held.png", "lost.png"]


def test_a_name_counted_as_open_is_open_while_and_only_while_someone_writes_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event sequence of an overflow, step by step: an open heard, its close lost. The kernel
    says whether the file is still written: a writer keeps the mark, none drops it."""
    from watchdog.events import FileClosedEvent, FileOpenedEvent

    monkeypatch.setattr(watch, "STALE_CHECK_S", 0.0)  # every look asks the kernel
    handler = watch._Handler(settings.inbox, settings.watch, lambda *args, **kwargs: None, polling=False)
    path = settings.inbox / "a.png"
    with path.open("wb") as writer:
        handler.on_opened(FileOpenedEvent(str(path)))
        writer.write(b"half")
        writer.flush()
        assert watch.held_for_writing(path) is True and handler.is_open(path)
    # its close event lost in the overflow
    assert watch.held_for_writing(path) is False and not handler.is_open(path)
    handler.on_closed(FileClosedEvent(str(path)))  # a close heard late changes nothing
    assert not handler.is_open(path)


@pytest.mark.parametrize("thing", ["folder", "fifo"])
def test_something_else_where_the_journal_belongs_is_one_line_not_a_hang_or_a_traceback(
    settings: Settings, capsys: pytest.CaptureFixture[str], thing: str
) -> None:
    """A folder there ended every command in a traceback; a FIFO made every command wait for ever
    (opening it for writing waits for a reader)."""
    journal = settings.state_dir / "journal.sqlite"
    settings.state_dir.mkdir()
    journal.mkdir() if thing == "folder" else os.mkfifo(journal)
    codes: list[int] = []
    status = threading.Thread(target=lambda: codes.append(cli.main(["status"])), daemon=True)
    status.start()
    status.join(timeout=HUNG_S)
    assert codes == [2]
    err = capsys.readouterr().err.strip()
    assert "move it aside" in err and "\n" not in err and "disk" not in err, err


def test_undo_the_journal_refuses_lists_each_file_instead_of_a_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd undo` beside a daemon (whose open journal lets it open too) on a full state disk."""
    journal = Journal.for_state_dir(settings.state_dir)
    for i in range(2):
        src = settings.inbox / f"{i}.png"
        src.write_bytes(screenshot_png(20 + i))
        journaled_apply(journal, Library(settings.library), src, file_hash(src), HAPPY, ModelId("m"))
    journal.close()
    monkeypatch.setattr(Journal, "set_meta", lambda *_a: (_ for _ in ()).throw(FULL))
    assert cli.main(["undo", "2"]) == 1
    out = capsys.readouterr().out
    assert out.count("the journal refused it (database or disk is full)") == 2, out
    assert len(files(settings.library)) == 2 and files(settings.inbox) == []


@pytest.mark.parametrize("swapped_in", ["folder", "symlink"])
def test_a_folder_or_link_swapped_in_for_a_file_being_sorted_is_not_moved_into_the_library(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, swapped_in: str
) -> None:
    """The file was replaced under its name while it was classified: the move took whatever was
    there, a person's folder (with its files) or a symbolic link, into the library as `a.png`."""
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(14))
    real_decide = Pipeline.decide

    def decide_then_swap(self: Pipeline, path: Path) -> Decision:
        decision = real_decide(self, path)
        path.rename(tmp_path / "the-file.png")
        if swapped_in == "folder":
            path.mkdir()
            (path / "mine.txt").write_text("a person's notes")
        else:
            path.symlink_to(tmp_path / "the-file.png")
        return decision

    monkeypatch.setattr(Pipeline, "decide", decide_then_swap)
    journal = Journal.for_state_dir(settings.state_dir)
    outcome = Sorter(Library(settings.library), journal).sort(stub_pipeline(settings), src)
    assert outcome.kind == "gone"
    assert files(settings.library) == [] and not any(settings.library.rglob("a.png"))
    assert src.is_symlink() or (src / "mine.txt").is_file()


def test_a_file_overwritten_while_it_is_classified_is_sorted_by_its_new_content(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A screenshot tool that saves to one fixed name replaced the file while the daemon decided on
    the old one: the new content was moved on the old decision and journaled with the old hash, so
    undo refused it ("its content changed") and the label scan took it for a person's label."""
    real_decide, real_enqueue = Pipeline.decide, Service.enqueue
    replaced: list[Path] = []
    offered: list[Path] = []

    def decide_then_overwrite(self: Pipeline, path: Path) -> Decision:
        decision = real_decide(self, path)
        if not replaced:
            replaced.append(path)
            (tmp_path / "new.png").write_bytes(screenshot_png(16))
            (tmp_path / "new.png").rename(path)  # the tool's save of the next screenshot
            wait_until(lambda: offered.count(path) == 2)  # told of while this worker holds the path
        return decision

    def enqueue(self: Service, path: Path) -> None:
        offered.append(path)
        real_enqueue(self, path)

    monkeypatch.setattr(Pipeline, "decide", decide_then_overwrite)
    monkeypatch.setattr(Service, "enqueue", enqueue)
    with running_daemon(settings, stub_pipeline) as daemon:
        (settings.inbox / "screenshot.png").write_bytes(screenshot_png(15))
        wait_until(lambda: sum(daemon.counts.values()) == 1)
        [placed] = files(settings.library)
        move = daemon.journal.done_at(placed)
        assert move is not None and move.hash == file_hash(placed) == file_hash_of(screenshot_png(16))


@pytest.mark.parametrize("across_filesystems", [False, True], ids=["link", "copy"])
def test_a_new_file_saved_under_the_name_of_a_file_being_moved_is_not_deleted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, across_filesystems: bool
) -> None:
    """Between the move's link (or its copy, across filesystems: as long as the copy takes) and its
    unlink of the source, a tool saved the next screenshot under the same name: the unlink deleted
    that new file, its only copy."""
    src = settings.inbox / "screenshot.png"
    src.write_bytes(screenshot_png(17))
    if across_filesystems:
        monkeypatch.setattr(durable.os, "link", cross_device_for(src))
    real_fsync = durable.fsync_dir
    saved: list[Path] = []

    def tool_saves_again(path: Path) -> None:
        real_fsync(path)
        if path == settings.library / "happy" and not saved:
            saved.append(tmp_path / "next.png")
            saved[0].write_bytes(screenshot_png(18))
            saved[0].rename(src)

    monkeypatch.setattr(durable, "fsync_dir", tool_saves_again)
    journal = Journal.for_state_dir(settings.state_dir)
    final = journaled_apply(journal, Library(settings.library), src, file_hash(src), HAPPY, ModelId("m"))
    assert file_hash(final) == file_hash_of(screenshot_png(17)) and journal.done_at(final) is not None
    assert src.is_file() and file_hash(src) == file_hash_of(screenshot_png(18))


def test_sorting_a_file_hashes_it_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check that a file was not replaced before its move hashed it again, under the move lock:
    a huge file (unreadable by size, but hashed all the same) held every other move up for seconds
    (4 s a GB here). The check is by inode, size and mtime now."""
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(19))
    real, hashed = content_module.file_hash, []

    def file_hash_counted(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(content_module, "file_hash", file_hash_counted)
    outcome = Sorter(Library(settings.library), Journal.for_state_dir(settings.state_dir)).sort(
        stub_pipeline(settings), src
    )
    assert outcome.kind == "placed" and hashed == [src]


def test_recovery_finds_a_moved_file_past_a_name_deleted_since(settings: Settings) -> None:
    """Recovery looked for the interrupted move's file under a.png, a (1).png ... up to the first
    free name: a (2).png deleted by a person before the restart hid a (3).png, where the file was.
    The move was recorded as finding nothing, and the file, unknown to the journal, was taken for
    a person's label by the label scan."""
    happy = settings.library / "happy"
    happy.mkdir(parents=True)
    for name, seed in (("a.png", 30), ("a (1).png", 31), ("a (2).png", 32)):
        (happy / name).write_bytes(screenshot_png(seed))
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(33))
    journal = Journal.for_state_dir(settings.state_dir)
    journal.plan(file_hash(src), src, happy / "a.png", HAPPY, "m")
    moved = Library(settings.library).apply(src, HAPPY)  # kill -9 here
    assert moved.name == "a (3).png"
    (happy / "a (2).png").unlink()  # the person tidies up while facesortd is down
    assert list(recover(journal)) == [f"completed the interrupted move of {src} -> {moved}"]


class Killed(BaseException):
    """kill -9 at that instant: nothing after it runs, nothing is marked."""


def test_a_copy_across_filesystems_of_a_file_written_since_it_was_hashed_is_never_named(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file written to (a save in place of the same size, its time kept) between its hashing and
    its copy onto the library's filesystem: the copy was named, then compared with the source. A
    kill between the two left a library file holding neither the journaled content nor the
    source's: recovery found no file, rolled the move back, and the file was sorted a second time.
    A copy is named only if it holds the content the move was journaled under."""
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(40))
    seen, digest = os.lstat(src), file_hash(src)
    with open(src, "r+b") as fh:
        fh.seek(-4, os.SEEK_END)
        fh.write(b"SAVE")
    os.utime(src, ns=(seen.st_atime_ns, seen.st_mtime_ns))
    monkeypatch.setattr(durable.os, "link", cross_device_for(src))

    def killed(*_args: object) -> None:
        raise Killed

    monkeypatch.setattr(durable, "_remove_source", killed)
    journal = Journal.for_state_dir(settings.state_dir)
    with pytest.raises(FileNotFoundError):
        journaled_apply(journal, Library(settings.library), src, digest, HAPPY, ModelId("m"), seen=seen)
    assert files(settings.library) == [] and src.read_bytes().endswith(b"SAVE")
    assert journal.planned() == []


def test_recovery_takes_back_a_link_to_a_file_written_before_its_old_name_was_removed(
    settings: Settings,
) -> None:
    """A move linked the file into the library, a tool wrote to it, the process was killed before
    the inbox's name was removed: the file held neither its journaled content nor any found at the
    destination, so recovery said it found no file and left the library's name, unknown to the
    journal; the file in the inbox was sorted again (the same file twice in the library)."""
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(41))
    journal = Journal.for_state_dir(settings.state_dir)
    moved = settings.library / "happy" / "a.png"
    journal.plan(file_hash(src), src, moved, HAPPY, "m")
    moved.parent.mkdir(parents=True)
    os.link(src, moved)
    with open(src, "ab") as fh:  # kill -9, and the screenshot tool still writing
        fh.write(b"more")
    assert list(recover(journal)) == [f"rolled back the interrupted move of {src} (it stays in {src.parent})"]
    assert files(settings.library) == [] and src.read_bytes().endswith(b"more")
    assert journal.planned() == []


def test_two_copies_decided_at_once_put_one_in_the_duplicates(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """duplicates = "quarantine", two copies of one screenshot handed to two workers at once: each
    found nothing sorted before, and both were placed (of 10 copies dropped together into the real
    daemon, 2 escaped _quarantine/duplicate/). Both decisions must meet: under load, a 0.5 s meeting
    point let them go one after the other, and the test passed without racing anything."""
    real_decide = Pipeline.decide
    deciding = threading.Barrier(2)
    met: list[bool] = []

    def decide_together(self: Pipeline, path: Path) -> Decision:
        try:
            deciding.wait(timeout=HUNG_S)  # neither places its copy before the other has decided
            met.append(True)
        except threading.BrokenBarrierError:
            met.append(False)
        return real_decide(self, path)

    monkeypatch.setattr(Pipeline, "decide", decide_together)
    copies = [settings.inbox / f"copy{i}.png" for i in range(2)]
    for path in copies:
        path.write_bytes(screenshot_png(40))
    sorter = Sorter(
        Library(settings.library), Journal.for_state_dir(settings.state_dir), duplicates="quarantine"
    )
    outcomes: list[Outcome] = []
    workers = [
        threading.Thread(target=lambda p=p: outcomes.append(sorter.sort(stub_pipeline(settings), p)))
        for p in copies
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=HUNG_S)
    assert met == [True, True], "the two decisions never met: nothing was raced"
    assert sorted(o.decision.reason for o in outcomes if o.decision) == ["duplicate", "unsure"]


@pytest.mark.parametrize(
    "name",
    ["Screenshot_0005.png", "a.png", "é" * 120 + ".png", os.fsdecode(b"shot\xff.png"), "co:lon?.png"],
)
def test_recovery_finds_the_names_a_move_may_give_as_making_every_one_did(name: str) -> None:
    """Recovery made all 30,000 names a move may give and looked each up (80 ms, before every move
    while a killed process's move is left); it now looks only at the listing's names that can be
    one of them. Same names, same order, whatever the listing holds (names cut to fit, names a
    filesystem refuses, other files sharing the stem's start)."""
    dest = Path("/lib/happy") / name
    every = list(numbered_names(dest))
    taken = [every[k].name for k in (0, 1, 7, len(every) // 2, len(every) - 1)]
    listing = {*taken, *(f"{n}{dest.suffix}" for n in (dest.stem + " 2", dest.stem[:16] + "x", "other"))}
    expected = [c for c in every if c.name in listing]
    assert numbered_names_among(dest, listing) == expected and len(expected) == len(set(taken))
