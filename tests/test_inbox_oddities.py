"""What a demanding user drops or does beside the daemon (checked by hand, fifth round): each test is
the minimal repro of a defect found then, kept so that it stays fixed."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from loguru import logger
from synthetic import BrightBlobDetector, screenshot_png, stub_pipeline
from waiting import HUNG_S, log_lines, running_daemon, wait_until

from facesortd import cli, durable, watch
from facesortd.config import Settings, load_settings
from facesortd.content import file_hash
from facesortd.decide import Decision
from facesortd.durable import TMP_PREFIX
from facesortd.images import UnreadableImage, read_image
from facesortd.journal import UNDOING, Journal, ModelId
from facesortd.learn import review
from facesortd.library import Library
from facesortd.placement import journaled_apply
from facesortd.recovery import recover
from facesortd.sorter import Sorter
from facesortd.undo import undo


def _returns_soon(call: Callable[[], object], fifo: Path) -> object:
    """Run ``call``; if it is still blocked after HUNG_S (reading the FIFO), free it and fail: a
    `sort` loading its model on a loaded machine is merely slow."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(call()), daemon=True)
    thread.start()
    thread.join(timeout=HUNG_S)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a writer comes and goes: the read ends
        thread.join(timeout=5)
        pytest.fail(f"blocked reading the FIFO {fifo.name}")
    return result[0] if result else None


def test_hashing_a_fifo_fails_at_once_instead_of_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)

    def attempt() -> str:
        with pytest.raises(OSError, match="not a regular file"):
            file_hash(fifo)
        return "raised"

    assert _returns_soon(attempt, fifo) == "raised"


def test_status_names_a_fifo_in_the_inbox_instead_of_hanging(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("inbox", "library", "state_dir"):
        monkeypatch.setenv(f"FACESORTD_{key.upper()}", str(getattr(daemon_settings, key)))
    inbox = daemon_settings.inbox
    inbox.mkdir(parents=True)
    os.mkfifo(inbox / "fifo.png")
    Journal.for_state_dir(daemon_settings.state_dir).close()  # a journal exists: status hashes
    assert _returns_soon(lambda: cli.main(["status", "--json"]), inbox / "fifo.png") == 0
    why = {Path(e["path"]).name: e["why"] for e in json.loads(capsys.readouterr().out)["inbox"]["stuck"]}
    assert why["fifo.png"].startswith("not a regular file (a FIFO")


def test_a_file_gone_before_its_turn_is_gone_not_a_strange_file(daemon_settings: Settings) -> None:
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    sorter = Sorter(Library(daemon_settings.library), journal)
    outcome = sorter.sort(stub_pipeline(daemon_settings), daemon_settings.inbox / "renamed-away.png")
    assert outcome.kind == "gone"
    journal.close()


def test_a_file_whose_events_were_lost_is_sorted_after_the_burst(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """inotify drops events when its queue overflows (a program renaming files in a busy loop did it
    here); such files waited for the 5-minute rescan. Here the periodic rescan is off and the
    watcher never hears of ``lost.png``."""
    real_path = watch._Handler._path
    monkeypatch.setattr(
        watch._Handler,
        "_path",
        lambda self, raw: None if b"lost" in os.fsencode(raw) else real_path(self, raw),
    )
    inbox = daemon_settings.inbox
    with running_daemon(daemon_settings, stub_pipeline):
        (inbox / "lost.png").write_bytes(screenshot_png(1))
        (inbox / "heard.png").write_bytes(screenshot_png(2))
        wait_until(lambda: not any(inbox.iterdir()))
    placed = sorted(p.name for p in daemon_settings.library.rglob("*.png"))
    assert placed == ["heard.png", "lost.png"]


def test_the_periodic_rescan_finds_a_file_no_event_told_of(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing placed, no look after a burst comes: the periodic rescan is what finds it."""
    real_path = watch._Handler._path
    monkeypatch.setattr(
        watch._Handler,
        "_path",
        lambda self, raw: None if b"lost" in os.fsencode(raw) else real_path(self, raw),
    )
    settings = daemon_settings.model_copy(
        update={"watch": daemon_settings.watch.model_copy(update={"rescan_interval_s": 0.3})}
    )
    with running_daemon(settings, stub_pipeline):
        (settings.inbox / "lost.png").write_bytes(screenshot_png(4))
        wait_until(lambda: not (settings.inbox / "lost.png").exists())
    assert [p.name for p in settings.library.rglob("*.png")] == ["lost.png"]


def _sorted_once(settings: Settings, name: str, data: bytes, *, copy: bool) -> tuple[Journal, Path]:
    source = settings.inbox / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(data)
    journal = Journal.for_state_dir(settings.state_dir)
    unsure = Decision.quarantine("unsure")
    journaled_apply(
        journal, Library(settings.library), source, file_hash(source), unsure, ModelId("m"), copy=copy
    )
    return journal, source


def test_undo_puts_a_moved_file_back_beside_the_same_content_dropped_again(
    daemon_settings: Settings,
) -> None:
    """The same screenshot dropped again after its first copy was sorted: undo used to delete the
    sorted copy (as if it were a `sort --copy`), leaving one file of the two dropped."""
    journal, source = _sorted_once(daemon_settings, "shot.png", b"same bytes", copy=False)
    source.write_bytes(b"same bytes")
    [outcome] = undo(journal, journal.done_moves(limit=1), daemon_settings.library, daemon_settings.inbox)
    journal.close()
    assert outcome.back_to == daemon_settings.inbox / "shot (1).png"
    assert sorted(p.read_bytes() for p in daemon_settings.inbox.iterdir()) == [b"same bytes"] * 2
    assert not [p for p in daemon_settings.library.rglob("*") if p.is_file()]


def test_undo_across_filesystems_of_a_file_written_to_as_it_is_copied_back_says_so(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`undo` with the inbox on another filesystem copies the file back; written to in the library
    as it was copied (an image viewer saving a rotation), the copy is not named and the file stays.
    It was said "moved away or replaced by another process meanwhile" of a file still there."""
    import errno

    journal, _source = _sorted_once(daemon_settings, "shot.png", b"bytes", copy=False)
    [move] = journal.done_moves(limit=1)
    real_link, real_open = durable.os.link, durable.open_regular

    def link(src, dst, *args, **kw):  # type: ignore[no-untyped-def]
        if Path(src) == move.destination:  # the inbox is on another filesystem
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return real_link(src, dst, *args, **kw)

    def opened(path: Path):  # type: ignore[no-untyped-def]
        if path == move.destination:
            path.write_bytes(b"BYTES")  # saved over as the copy begins
        return real_open(path)

    monkeypatch.setattr(durable.os, "link", link)
    monkeypatch.setattr(durable, "open_regular", opened)
    [outcome] = undo(journal, [move], daemon_settings.library, daemon_settings.inbox)
    journal.close()
    assert outcome.back_to is None and outcome.retry
    assert "written to or replaced while it was copied back" in outcome.why_not, outcome.why_not
    assert "moved away" not in outcome.why_not
    assert move.destination.read_bytes() == b"BYTES" and not list(daemon_settings.inbox.iterdir())


def test_undo_of_a_copy_in_a_journal_from_before_copies_were_recorded_still_removes_the_copy(
    daemon_settings: Settings,
) -> None:
    journal, source = _sorted_once(daemon_settings, "shot.png", b"bytes", copy=True)
    journal.close()
    db = sqlite3.connect(daemon_settings.state_dir / "journal.sqlite")
    db.execute("ALTER TABLE moves DROP COLUMN copied")  # the journal as older versions wrote it
    db.commit()
    db.close()
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    [move] = journal.done_moves(limit=1)
    assert move.copied is None
    [outcome] = undo(journal, [move], daemon_settings.library, daemon_settings.inbox)
    journal.close()
    assert outcome.back_to == source and source.read_bytes() == b"bytes"
    assert not [p for p in daemon_settings.library.rglob("*") if p.is_file()]


def test_ctrl_c_during_undo_leaves_the_file_once(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C between the link back into the inbox and the unlink in the library left the file in
    both; the journal still said "done", so the daemon then sorted the inbox one a second time."""
    journal, source = _sorted_once(daemon_settings, "shot.png", b"bytes", copy=False)
    real_fsync = durable.fsync_dir
    interrupted: list[Path] = []

    def fsync_dir(path: Path) -> None:
        if path == daemon_settings.inbox and not interrupted:
            interrupted.append(path)
            raise KeyboardInterrupt
        real_fsync(path)

    monkeypatch.setattr(durable, "fsync_dir", fsync_dir)
    with pytest.raises(KeyboardInterrupt):
        undo(journal, journal.done_moves(limit=1), daemon_settings.library, daemon_settings.inbox)
    files = [p for root in (daemon_settings.inbox, daemon_settings.library) for p in root.rglob("*.png")]
    [move] = journal.done_moves(limit=1)
    journal.close()
    assert interrupted and [p.read_bytes() for p in files] == [b"bytes"]
    assert files == [move.destination] and not source.exists()


@pytest.mark.parametrize("linked_back", [True, False])
def test_recovery_finishes_an_undo_killed_while_putting_a_file_back(
    daemon_settings: Settings, linked_back: bool
) -> None:
    """`kill -9` of `undo` between the link back into the inbox and the unlink in the library left
    the file in both places for good: undo's put-back was not known to recovery."""
    journal, source = _sorted_once(daemon_settings, "shot.png", b"bytes", copy=False)
    [move] = journal.done_moves(limit=1)
    journal.set_meta(UNDOING, str(move.id))  # what undo records, up to the instant it died
    journal.finish(move.id, "undone")
    if linked_back:
        os.link(move.destination, source)
    assert list(recover(journal))
    state = journal.move(move.id)
    journal.close()
    files = [p for root in (daemon_settings.inbox, daemon_settings.library) for p in root.rglob("*.png")]
    assert [p.read_bytes() for p in files] == [b"bytes"]
    assert files == ([source] if linked_back else [move.destination])
    assert state is not None and state.state == ("undone" if linked_back else "done")


@pytest.mark.parametrize("linked_back", [True, False])
def test_recovery_of_an_undo_killed_putting_a_file_back_beside_one_of_its_name_journals_its_name(
    daemon_settings: Settings, linked_back: bool
) -> None:
    """`kill -9` of `undo` putting a file back as 'shot (1).png' (another file saved as 'shot.png'
    since): recovery finished the undo, journaled as gone back to 'shot.png', and the daemon sorted
    'shot (1).png' again at once."""
    journal, source = _sorted_once(daemon_settings, "shot.png", b"bytes", copy=False)
    source.write_bytes(b"another shot")
    [move] = journal.done_moves(limit=1)
    journal.set_meta(UNDOING, str(move.id))  # what undo records, up to the instant it died
    journal.finish(move.id, "undone")
    back = source.with_name("shot (1).png")
    os.link(move.destination, back)
    if not linked_back:  # the library's name removed too, just before the kill
        move.destination.unlink()
    assert list(recover(journal))
    undone = journal.undone_from(back, move.hash)
    journal.close()
    assert undone and not move.destination.exists() and back.read_bytes() == b"bytes"


def test_recovery_finishes_an_undo_killed_while_putting_back_a_file_written_to_meanwhile(
    daemon_settings: Settings,
) -> None:
    """`kill -9` of `undo` between the link back into the inbox and the unlink in the library, the
    file written to in between (an image viewer saving a rotation in place): it held no longer the
    journaled content, so recovery took the undo for finished and left the one file under both
    names; the daemon sorted the inbox's name again, the file twice in the library (two emotion
    folders: the label scan took one for a person's label)."""
    journal, source = _sorted_once(daemon_settings, "shot.png", b"bytes", copy=False)
    [move] = journal.done_moves(limit=1)
    journal.set_meta(UNDOING, str(move.id))  # what undo records, up to the instant it died
    journal.finish(move.id, "undone")
    os.link(move.destination, source)
    with open(source, "r+b") as fh:
        fh.write(b"B")
    assert list(recover(journal))
    state = journal.move(move.id)
    journal.close()
    files = [p for root in (daemon_settings.inbox, daemon_settings.library) for p in root.rglob("*.png")]
    assert files == [source] and source.read_bytes() == b"Bytes"
    assert state is not None and state.state == "undone"


def test_recovery_removes_a_half_copy_an_undo_left_in_the_inbox(daemon_settings: Settings) -> None:
    """`undo` across filesystems copies into a hidden temp file beside the source first; a crash
    there left it in the inbox, where recovery (which cleaned destination folders only) never looked."""
    journal, source = _sorted_once(daemon_settings, "shot.png", b"bytes", copy=False)
    [move] = journal.done_moves(limit=1)
    journal.set_meta(UNDOING, str(move.id))  # what undo records, up to the instant it died
    journal.finish(move.id, "undone")
    half = source.parent / f"{TMP_PREFIX}shot"
    half.write_bytes(b"by")  # the copy back, cut short
    list(recover(journal))
    state = journal.move(move.id)
    journal.close()
    assert not half.exists() and move.destination.read_bytes() == b"bytes"
    assert state is not None and state.state == "done"  # it stays sorted, once


def test_an_inbox_renamed_away_and_made_anew_is_watched_again(daemon_settings: Settings) -> None:
    """inotify follows a renamed folder: the daemon went on watching `inbox.old` and saw nothing
    dropped into the new `inbox` until the periodic rescan (off here; 5 minutes by default). Said as
    a warning: it was an ERROR line (`journalctl -p err`) for what the daemon puts right itself."""
    inbox = daemon_settings.inbox
    with log_lines("WARNING") as said, running_daemon(daemon_settings, stub_pipeline):
        inbox.rename(inbox.with_name("inbox.old"))
        inbox.mkdir(exist_ok=True)  # the daemon may have made it again first
        (inbox / "new.png").write_bytes(screenshot_png(3))
        wait_until(lambda: not (inbox / "new.png").exists())
    assert [p.name for p in daemon_settings.library.rglob("*.png")] == ["new.png"]
    assert said == ["WARNING the watcher stopped (inbox removed or renamed?); restarting it and rescanning"]


def test_labels_given_under_names_that_are_not_utf8(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose name is not UTF-8 moved into `happy/`, and a folder so named beside it: recording
    the label (its group, or the folder's name as the label, are text) failed the whole scan with
    UnicodeEncodeError (`facesortd retrain`: a traceback, every time), and the labels of the files
    after it in that scan were lost. Now the file's label counts, and the folder is said once."""
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    library = daemon_settings.library
    odd_folder = library / os.fsdecode(b"h\xffappy")
    for folder, name in ((library / "happy", os.fsdecode(b"\xff shot.png")), (odd_folder, "b.png")):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(screenshot_png(len(str(folder))))
    (library / "sad").mkdir()
    (library / "sad" / "c.png").write_bytes(screenshot_png(7))
    warnings: list[str] = []
    logger.add(warnings.append, level="WARNING", format="{message}")
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    reviewer = review.Reviewer(daemon_settings, journal)
    assert reviewer.scan() == 2  # happy's and sad's
    assert reviewer.scan() == 0
    assert sorted(label for label, _ in map(journal.label_for_hash, _hashes(library, "happy", "sad"))) == [
        "happy",
        "sad",
    ]
    said = [w.rstrip() for w in warnings if "not UTF-8" in w]
    assert said == [
        f"{library}/h\\xffappy: a folder name with a line break, control or zero-width character or byte"
        " that is not UTF-8 cannot be a label: rename it (labels given there are not seen until then)"
    ]
    journal.close()


def _hashes(library: Path, *folders: str) -> list[str]:
    return [file_hash(p) for folder in folders for p in (library / folder).iterdir()]


def test_an_inbox_replaced_by_a_file_is_said_once_and_the_daemon_lives_on(
    daemon_settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox renamed away and a file put in its place: the main loop died with FileExistsError
    (making the inbox anew) and the process hung on its workers. Now it is said once, `status`
    names it, and once the file is moved away the daemon watches the inbox again."""
    for key in ("inbox", "library", "state_dir"):
        monkeypatch.setenv(f"FACESORTD_{key.upper()}", str(getattr(daemon_settings, key)))
    inbox = daemon_settings.inbox
    lines: list[str] = []
    logger.add(lines.append, level="ERROR", format="{message}")
    problem = f"inbox {inbox} is not a folder: point inbox at a folder, or move that file away"
    with running_daemon(daemon_settings, stub_pipeline) as daemon:
        inbox.rename(inbox.with_name("inbox.old"))
        inbox.write_bytes(b"a file")
        wait_until(lambda: any(problem in line for line in lines))
        wait_until(lambda: json.loads((daemon_settings.state_dir / "status.json").read_text())["problems"])
        assert cli.main(["status"]) == 2  # `status` refuses the setting as every command does
        assert problem in capsys.readouterr().err
        inbox.unlink()
        wait_until(inbox.is_dir)
        (inbox / "new.png").write_bytes(screenshot_png(3))
        wait_until(lambda: not (inbox / "new.png").exists())
        assert daemon.stop_event.is_set() is False
    assert [line.rstrip() for line in lines if problem in line] == [
        f"{problem}; nothing new is sorted until then"
    ]
    assert [p.name for p in daemon_settings.library.rglob("*.png")] == ["new.png"]


def test_a_file_moved_on_while_labels_are_scanned_does_not_fail_the_scan(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person moving files between folders while the daemon looks for their labels: a file gone
    between the listing and the reading failed the whole scan ("learning from your labels failed")."""
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    happy = daemon_settings.library / "happy"
    happy.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (happy / name).write_bytes(screenshot_png(len(name) + ord(name[0])))
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    reviewer = review.Reviewer(daemon_settings, journal)
    listed = reviewer._changed_images

    def listing_then_a_move(folder: Path, present: set[Path], names: set[Path]) -> list[Path]:
        found = listed(folder, present, names)
        (folder / "a.png").unlink(missing_ok=True)
        return found

    monkeypatch.setattr(reviewer, "_changed_images", listing_then_a_move)
    assert reviewer.scan() == 1  # b.png's label; a.png is met again where it went
    journal.close()


def test_a_recursive_inbox_leaves_the_files_of_hidden_and_ignored_sub_folders_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`watch.ignore` leaves hidden and temp names alone, but with `watch.recursive = true` the
    daemon took the files inside such folders (`.stversions/`, Syncthing's old versions; `.git/`):
    their names are ordinary. A folder so named is left whole, and `status` says why."""
    inbox = tmp_path / "in"
    for folder in (".stversions", "album", "dl.part"):
        (inbox / folder).mkdir(parents=True)
        (inbox / folder / "a.png").write_bytes(screenshot_png(11))
    monkeypatch.setenv("FACESORTD_INBOX", str(inbox))
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FACESORTD_WATCH__RECURSIVE", "true")
    settings = load_settings()
    assert list(watch.scan(inbox, settings.watch)) == [inbox / "album" / "a.png"]
    handler = watch._Handler(inbox, settings.watch, lambda *args, **kwargs: None, polling=False)
    assert handler._path(str(inbox / ".stversions" / "b.png")) is None
    assert handler._path(str(inbox / "album" / "b.png")) == inbox / "album" / "b.png"
    assert cli.main(["status", "--json"]) == 0
    why = {Path(s["path"]).name: s["why"] for s in json.loads(capsys.readouterr().out)["inbox"]["stuck"]}
    assert "watch.ignore" in why[".stversions"] and "watch.ignore" in why["dl.part"]


def test_undo_refuses_a_move_an_older_version_journaled_by_a_relative_path(
    daemon_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before paths were stored absolute, `sort shots/a.png` kept "shots/a.png": undo run from any
    other folder holding a shots/ put the file there, a folder it never came from."""
    journal, _ = _sorted_once(daemon_settings, "a.png", b"old bytes", copy=False)
    journal.close()
    db = sqlite3.connect(daemon_settings.state_dir / "journal.sqlite")
    db.execute("UPDATE moves SET source = CAST('shots/a.png' AS BLOB)")  # as older versions wrote it
    db.commit()
    db.close()
    (tmp_path / "elsewhere" / "shots").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    [outcome] = undo(journal, journal.done_moves(limit=1), daemon_settings.library, daemon_settings.inbox)
    journal.close()
    assert outcome.back_to is None and "shots/a.png" in outcome.why_not and "by hand" in outcome.why_not
    assert not list((tmp_path / "elsewhere" / "shots").iterdir())
    assert [p.read_bytes() for p in daemon_settings.library.rglob("*") if p.is_file()] == [b"old bytes"]


def test_detect_of_a_fifo_says_it_is_not_a_regular_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd detect fifo.png` said "unreadable: empty file (0 bytes)": a FIFO's size."""
    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    assert _returns_soon(lambda: cli.main(["detect", str(fifo)]), fifo) == 1
    out = capsys.readouterr().out
    assert "not a regular file (a FIFO" in out and "empty" not in out, out


def test_a_fifo_swapped_in_after_the_check_is_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checked as a regular file of some size, then replaced by a FIFO before it was read (a person's
    rename, a tool's): reading it by its name waited for a writer for ever, and a worker with it."""
    regular = tmp_path / "real.png"
    regular.write_bytes(screenshot_png(3))
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    looked, limits = regular.stat(), load_settings().images
    monkeypatch.setattr(Path, "stat", lambda self, **kw: looked)  # what was seen before the swap
    monkeypatch.setattr(Path, "lstat", lambda self: looked)

    def attempt() -> str:
        with pytest.raises(UnreadableImage, match="not a regular file"):
            read_image(fifo, limits)
        return "raised"

    assert _returns_soon(attempt, fifo) == "raised"


def test_the_daemon_and_sort_pass_a_fifo_in_the_inbox_by(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FIFO named like an image in the inbox: the daemon sorts the files beside it and lives on,
    a bare `sort` too, and `sort` naming it says what it is; none of them opens it to wait."""
    inbox = daemon_settings.inbox
    inbox.mkdir(parents=True)
    fifo = inbox / "fifo.png"
    os.mkfifo(fifo)
    with running_daemon(
        daemon_settings.model_copy(
            update={"watch": daemon_settings.watch.model_copy(update={"rescan_interval_s": 0.2})}
        ),
        stub_pipeline,
    ):
        (inbox / "a.png").write_bytes(screenshot_png(4))
        wait_until(lambda: sorted(p.name for p in inbox.iterdir()) == ["fifo.png"])
    for key in ("inbox", "library", "state_dir"):
        monkeypatch.setenv(f"FACESORTD_{key.upper()}", str(getattr(daemon_settings, key)))
    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    assert _returns_soon(lambda: cli.main(["sort"]), fifo) == 0
    assert _returns_soon(lambda: cli.main(["sort", "--json", str(fifo)]), fifo) == 0
    assert "not a regular file (a FIFO" in capsys.readouterr().out
    assert fifo.exists() and [p.name for p in daemon_settings.library.rglob("*.png")] == ["a.png"]
