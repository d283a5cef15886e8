"""A library (or inbox, or state folder) on a drive formatted exFAT, FAT or NTFS.

CI cannot mount one; ``foreign_fs.make_foreign`` acts out what the real mounts did (see there).
"""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from foreign_fs import (
    Drive,
    coarse_now,
    make_foreign,
    renumber,
    renumbered,
    windows_names_refusal,
    written_over,
)
from loguru import logger
from synthetic import BrightBlobDetector, screenshot_png, stored_png, stub_pipeline
from tree_files import files_in as _files
from waiting import running_daemon, wait_until

from facesortd import cli, durable, file_names, mounts, placement, refusals, status
from facesortd import content as content_module
from facesortd.config import FOLDERS, Settings
from facesortd.content import file_hash
from facesortd.decide import Decision
from facesortd.durable import time_may_hide_a_write
from facesortd.journal import (
    CLAIM_LABELS_WITHDRAWN,
    UNDOING,
    Journal,
    JournalUnavailable,
    ModelId,
    claim_mark,
)
from facesortd.learn import review
from facesortd.library import Library
from facesortd.placement import journaled_apply
from facesortd.recovery import recover
from facesortd.review_page import queue
from facesortd.sorter import Sorter
from facesortd.state import models_lock, move_lock
from facesortd.undo import undo

UNSURE = Decision.quarantine("unsure")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("name", "portable"),
    [
        ("co:lon.png", "co_lon.png"),
        ('q?*"<>|\\.png', "q_______.png"),
        ("tab\there.png", "tab_here.png"),
        (os.fsdecode(b"bad\xff.png"), "bad_.png"),
    ],
    ids=["colon", "reserved", "control", "not-utf8"],
)
def test_a_name_the_library_drive_refuses_is_sorted_under_a_name_it_takes_and_undo_gives_its_own_back(
    cli_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    portable: str,
) -> None:
    """exFAT refuses ``a:b.png`` with ENOENT, and a name that is not UTF-8 with EILSEQ: `sort` said
    "skipped, gone meanwhile" (the daemon nothing at all) of a file still in the inbox, or failed it
    with a bare errno, every retry, for ever."""
    env = cli_settings
    make_foreign(monkeypatch, env.library)
    shot = env.inbox / name
    shot.write_bytes(screenshot_png(3))
    assert cli.main(["sort"]) == 0
    err = capsys.readouterr().err
    assert "gone meanwhile" not in err and not shot.exists()
    [placed] = _files(env.library)
    assert placed.name == portable and file_hash(placed) == sha256(screenshot_png(3))
    assert cli.main(["undo", "1", "--yes"]) == 0
    assert shot.read_bytes() == screenshot_png(3) and _files(env.library) == []


def test_a_portable_name_taken_is_numbered_never_overwritten(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = cli_settings
    make_foreign(monkeypatch, env.library)
    taken = env.library / "_quarantine" / "unsure" / "a_b.png"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"a person's own")
    (env.inbox / "a:b.png").write_bytes(screenshot_png(4))
    assert cli.main(["sort"]) == 0
    assert taken.read_bytes() == b"a person's own"
    assert (taken.parent / "a_b (1).png").read_bytes() == screenshot_png(4)


@pytest.mark.parametrize("chmod", [errno.EPERM, errno.ENOSYS], ids=["eperm", "fusefat"])
def test_a_library_drive_without_permissions_takes_the_copies(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], chmod: int
) -> None:
    """A copy into the library is given its source's times and mode; FAT keeps no mode, and fusefat
    refuses the chmod (ENOSYS), so every file failed for ever, "[Errno 38] Function not
    implemented" (a driver's EPERM: "cannot remove it from <inbox>", advice to chmod the inbox)."""
    env = cli_settings
    make_foreign(monkeypatch, env.library, chmod=chmod)
    shot = env.inbox / "a.png"
    shot.write_bytes(screenshot_png(14))
    os.utime(shot, (1_600_000_000, 1_600_000_000))
    monkeypatch.setattr(durable.os, "link", _across(durable.os.link, env.inbox))
    assert cli.main(["sort"]) == 0, capsys.readouterr().err
    [placed] = _files(env.library)
    assert placed.read_bytes() == screenshot_png(14) and not shot.exists()
    assert placed.stat().st_mtime == 1_600_000_000  # the times are kept where the drive takes them


def _across(link, inbox: Path):  # type: ignore[no-untyped-def]
    """``os.link`` for an inbox on another filesystem than the library: its files are copied."""

    def cross(a, b, **kw):  # type: ignore[no-untyped-def]
        if Path(a).parent == inbox:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        return link(a, b, **kw)

    return cross


def test_a_name_the_library_drive_refuses_with_eperm_is_blamed_on_the_name_not_the_inbox(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """fusefat refuses names with EPERM: the file, copied across, was said to be refused by the
    inbox it came from ("cannot remove it from <inbox> ... chmod u+rwx")."""
    env = cli_settings
    make_foreign(monkeypatch, env.library, lambda n: errno.EPERM if n.startswith(("é", "e")) else None)
    shot = env.inbox / "é.png"
    shot.write_bytes(screenshot_png(15))
    monkeypatch.setattr(durable.os, "link", _across(durable.os.link, env.inbox))
    assert cli.main(["sort"]) == 1
    err = capsys.readouterr().err
    assert "refuses that name" in err and f"cannot remove it from {env.inbox}" not in err
    assert shot.read_bytes() == screenshot_png(15) and _files(env.library) == []


def test_a_name_refused_even_as_portable_is_said_with_the_fix_not_gone(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refusal no substitution helps (fusefat refuses every name that is not ASCII, with ENOENT
    for some steps): the file stays, said as refused with what to do, never "gone meanwhile"."""
    env = cli_settings
    make_foreign(monkeypatch, env.library, lambda n: 2 if n.startswith("nope") else None)
    shot = env.inbox / "nope.png"
    shot.write_bytes(screenshot_png(5))
    assert cli.main(["sort"]) == 1
    err = capsys.readouterr().err
    assert "gone meanwhile" not in err and "refuses that name" in err and "rename the file" in err
    assert shot.read_bytes() == screenshot_png(5) and _files(env.library) == []


@pytest.mark.parametrize("source_removed", [False, True], ids=["before-unlink", "after-unlink"])
def test_recovery_finds_a_move_killed_under_the_name_the_drive_took(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, source_removed: bool
) -> None:
    """Killed after the copy was whole under ``co_lon.png``: recovery looked only for ``co:lon.png``
    and its numbered names, so the copy stayed as a second one (source still there) or the move was
    "found no file" and the file was unknown to the journal, which `undo` and the labels need."""
    env = cli_settings
    make_foreign(monkeypatch, env.library)
    src = env.inbox / "co:lon.png"
    src.write_bytes(screenshot_png(6))
    journal = Journal.for_state_dir(env.state_dir)
    planned = env.library / "_quarantine" / "unsure" / "co:lon.png"
    journal.plan(file_hash(src), src, planned, UNSURE, "m")
    planned.parent.mkdir(parents=True)
    placed = durable.move_no_replace(src, planned, copy=True)  # the copy step; the kill comes here
    assert placed.name == "co_lon.png"
    if source_removed:
        src.unlink()
    [line] = list(recover(journal))
    if source_removed:
        assert line == f"completed the interrupted move of {src} -> {placed}"
        assert [m.destination for m in journal.done_moves()] == [placed]
    else:
        assert line.startswith("rolled back") and not placed.exists() and src.exists()


def test_a_library_drive_unmounted_under_the_daemon_is_not_made_anew_on_the_disk_below(
    daemon_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library on a USB drive mounted at <drive>; the drive unmounted while the daemon ran:
    each move made <drive>/library/... anew on the internal disk and put the file there, where it
    was hidden once the drive was mounted again (and exfat-fuse refused the mount point, no longer
    empty). The file now stays where it is until the drive is back, then goes in."""
    drive = Drive(monkeypatch, tmp_path / "drive")
    settings = daemon_settings.model_copy(update={"library": drive.folder / "library"})
    library = Library(settings.library)
    sorter = Sorter(library, Journal.for_state_dir(settings.state_dir))
    pipeline = stub_pipeline(settings)
    settings.inbox.mkdir(parents=True)
    first, second = settings.inbox / "a.png", settings.inbox / "b.png"
    first.write_bytes(screenshot_png(7))
    second.write_bytes(screenshot_png(8))
    assert sorter.sort(pipeline, first).kind == "placed"

    drive.mounted = False  # unmounted: what was on it is gone from <drive>, an empty folder of the disk below
    shutil.rmtree(settings.library)
    assert (refused := library.refusal()) is not None and "mount it at" in str(refused)
    with pytest.raises(refusals.Refused, match="is not there now"):
        sorter.sort(pipeline, second)
    assert second.read_bytes() == screenshot_png(8) and list(drive.folder.iterdir()) == []

    drive.mounted = True  # mounted again
    settings.library.mkdir()
    assert library.refusal() is None and sorter.sort(pipeline, second).kind == "placed"
    assert not second.exists() and len(_files(settings.library)) == 1


def test_an_inbox_drive_unmounted_under_the_daemon_is_not_made_anew_and_is_watched_once_back(
    daemon_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox on a drive unmounted while the daemon ran: the daemon made the inbox anew on the
    disk below, where files were hidden once the drive was back, and exfat-fuse then refused to
    mount over the folder no longer empty. Mounted again, the inbox looked alive to the daemon (the
    same device and inode as before) and nothing dropped there was heard of."""
    drive = Drive(monkeypatch, tmp_path / "drive")
    settings = daemon_settings.model_copy(update={"inbox": drive.folder / "inbox"})
    lines: list[str] = []
    logger.add(lines.append, level="ERROR", format="{message}")
    with running_daemon(settings, stub_pipeline) as daemon:
        drive.mounted = False
        shutil.rmtree(settings.inbox)
        wait_until(lambda: any("is not there now): mount it at" in line for line in lines))
        # in the library's words (one helper: refusals.mount_moved), the folder named in the fix too
        said = next(line for line in lines if "is not there now" in line)
        assert said.startswith(f"cannot use the inbox {settings.inbox} (the drive mounted at {drive.folder} ")
        assert f"again, or restart facesortd to use {settings.inbox} on the filesystem at " in said
        assert list(drive.folder.iterdir()) == []
        drive.mounted = True
        settings.inbox.mkdir()
        (settings.inbox / "back.png").write_bytes(screenshot_png(9))
        wait_until(lambda: not (settings.inbox / "back.png").exists())
        assert not daemon.stop_event.is_set()
    assert [p.name for p in settings.library.rglob("*.png")] == ["back.png"]


def test_a_file_fuse_numbered_anew_since_it_was_decided_is_still_moved(daemon_settings: Settings) -> None:
    """exfat-fuse gives a file another inode number once the kernel dropped it from its cache (seen
    on the mount: 44, then 46); the identity check before the move took it for another file, and
    under memory pressure every file of an inbox on such a drive was "skipped, gone meanwhile"."""
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    shot = settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(10))
    journal = Journal.for_state_dir(settings.state_dir)
    seen = renumbered(shot.lstat())
    final = journaled_apply(
        journal, Library(settings.library), shot, file_hash(shot), UNSURE, ModelId("m"), seen=seen
    )
    assert final.read_bytes() == screenshot_png(10) and not shot.exists()
    shot.write_bytes(screenshot_png(11))  # and one really replaced (same size, time) is still refused
    seen = renumbered(shot.lstat())
    with pytest.raises(FileNotFoundError):
        journaled_apply(
            journal, Library(settings.library), shot, sha256(b"other"), UNSURE, ModelId("m"), seen=seen
        )
    assert shot.exists()


def test_a_source_fuse_numbered_anew_during_its_copy_is_removed_not_left_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox on an exFAT drive, the library on the internal disk: the file is copied, then its
    source removed if it is still the very file. Numbered anew meanwhile, it was taken for another
    file and left in the inbox beside its copy, which the daemon then sorted a second time."""
    src = tmp_path / "drive" / "a.png"
    src.parent.mkdir()
    src.write_bytes(screenshot_png(12))
    real_lstat, real_link, copied = os.lstat, os.link, []
    monkeypatch.setattr(durable, "_copy_no_replace", _noting(durable._copy_no_replace, copied))

    def lstat(path, *args, **kw):
        st = real_lstat(path, *args, **kw)
        return renumbered(st) if copied and Path(path) == src else st

    def link(a, b, **kw):  # the library is on another filesystem than the inbox
        if Path(a) == src:
            raise OSError(errno.EXDEV, "cross-device")
        return real_link(a, b, **kw)

    monkeypatch.setattr(durable.os, "lstat", lstat)
    monkeypatch.setattr(durable.os, "link", link)
    final = durable.move_no_replace(src, tmp_path / "lib" / "a.png")
    assert final.read_bytes() == screenshot_png(12) and not src.exists()


def _noting(call, calls: list[object]):  # type: ignore[no-untyped-def]
    def noted(*args, **kw):  # type: ignore[no-untyped-def]
        result = call(*args, **kw)
        calls.append(result)
        return result

    return noted


def _killed_at_the_rename_onto_its_claim(act: Callable[[Journal], object], state_dir: Path) -> None:
    """``act`` on the journal in a child process, SIGKILLed as it renames the file onto the name
    it claimed (a kill -9 between the claim and the rename): nothing after runs, nothing is marked."""

    def child() -> None:
        def killed(*_args: object, **_kw: object) -> None:
            os.kill(os.getpid(), signal.SIGKILL)

        os.rename = killed  # durable's only rename on a drive without a no-replace rename
        act(Journal.for_state_dir(state_dir))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(timeout=60)
    assert process.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("interrupted", ["move", "undo"])
def test_recovery_removes_the_name_a_move_killed_between_claim_and_rename_claimed_and_no_other(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, interrupted: str
) -> None:
    """exFAT and FAT through FUSE have no hard links and answer EINVAL to the no-replace rename, so
    every move into a library there (and `undo` into an inbox there) claims its name with an empty
    file first and renames the file onto it. A kill -9 between the two left the empty file for
    good: in the library the file, sorted again, went in as ``a (1).png`` beside it; in the inbox
    the daemon quarantined it as unreadable. Recovery removed it, but with it any empty file made
    since under a name the move might have taken: a screenshot its tool had just created as ``a
    (1).png`` and was writing, its bytes then written into a file no longer there."""
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(13))
    library = Library(settings.library)
    if interrupted == "move":
        make_foreign(monkeypatch, settings.library)
        claim = settings.library / "_quarantine" / "unsure" / "a.png"
        _killed_at_the_rename_onto_its_claim(
            lambda journal: journaled_apply(journal, library, src, file_hash(src), UNSURE, ModelId("m")),
            settings.state_dir,
        )
        whose = f"the interrupted move of {src}"
    else:
        journal = Journal.for_state_dir(settings.state_dir)
        placed = journaled_apply(journal, library, src, file_hash(src), UNSURE, ModelId("m"))
        journal.close()
        make_foreign(monkeypatch, settings.inbox)
        claim = src
        _killed_at_the_rename_onto_its_claim(
            lambda journal: undo(journal, journal.done_moves(), settings.library, settings.inbox),
            settings.state_dir,
        )
        whose = f"the interrupted undo of {placed}"
    assert claim.read_bytes() == claim_mark(1, file_hash(placed if interrupted == "undo" else src))
    theirs = claim.with_name("a (1).png")
    journal = Journal.for_state_dir(settings.state_dir)
    with open(theirs, "wb") as being_written:  # made as the daemon restarts; its writer is at work
        lines = list(recover(journal))
        being_written.write(b"the screenshot")
    assert lines[0] == f"removed {claim}, the name {whose} had claimed"
    assert theirs.read_bytes() == b"the screenshot"
    if interrupted == "move":
        assert lines[1].startswith("rolled back") and src.read_bytes() == screenshot_png(13)
        assert (
            journaled_apply(journal, library, src, file_hash(src), UNSURE, ModelId("m")) == claim
        )  # sorted once
        assert _files(settings.library) == sorted([claim, theirs])
        assert claim.read_bytes() == screenshot_png(13)
    else:
        assert lines[1] == f"the interrupted undo of {placed} had not begun; it stays sorted"
        assert _files(settings.inbox) == [theirs] and placed.read_bytes() == screenshot_png(13)


def _interrupted(journal: Journal, settings: Settings, src: Path, interrupted: str) -> tuple[int, Path, Path]:
    """``src`` (in the inbox) as a kill left it: a ``move`` into ``_quarantine/unsure/`` planned, not
    begun, or sorted there and an ``undo`` of it marked begun, before the put-back. The move's id, the
    name a claim of it would take (where the file goes) and where the file is now."""
    if interrupted == "move":
        folder = settings.library / "_quarantine" / "unsure"
        folder.mkdir(parents=True)
        return journal.plan(file_hash(src), src, folder / "a.png", UNSURE, "m"), folder / "a.png", src
    placed = journaled_apply(journal, Library(settings.library), src, file_hash(src), UNSURE, ModelId("m"))
    [move] = journal.done_moves()
    journal.set_meta(UNDOING, str(move.id))  # as `undo` marks it before the put-back
    journal.finish(move.id, "undone")
    return move.id, src, placed


@pytest.mark.parametrize("interrupted", ["move", "undo"])
@pytest.mark.parametrize("found", ["empty", "written", "marked", "renamed onto"])
def test_recovery_removes_a_claimed_name_only_while_it_holds_the_moves_mark(
    daemon_settings: Settings, found: str, interrupted: str
) -> None:
    """On FAT and exFAT through FUSE a move (or `undo`) journals the name it claims, then makes it
    with O_EXCL, then renames the file onto it. Killed between the journal's write and the making,
    the name was left free: a screenshot tool creating its next file under it as the daemon
    restarted (``empty``, being written) had it removed by recovery, and its bytes then went into a
    file no longer there. The claim is now made holding a mark of that move alone, and only that is
    removed (``marked``: killed after the making). An empty file, which a kill between the making and
    its mark leaves too, and any other file (``written``) are left and said; the moved file itself
    (``renamed onto``: killed after the rename) is found there. Each step is acted out by hand."""
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(13))
    journal = Journal.for_state_dir(settings.state_dir)
    move_id, claim, moving = _interrupted(journal, settings, src, interrupted)
    whose = f"the interrupted {interrupted} of {moving}"
    mark = journal.claiming(move_id, claim)  # the kill comes after this, before or after the making
    held = {"empty": b"", "written": b"the screenshot", "marked": mark}.get(found)
    if held is None:
        claim.write_bytes(mark)
        os.rename(moving, claim)
    else:
        claim.write_bytes(held)
    lines = list(recover(journal))
    if found == "marked":
        assert lines[0] == f"removed {claim}, the name {whose} had claimed"
    elif found == "empty":
        assert lines[0].startswith(f"left {claim}, the name {whose} had claimed, as it is: an empty file")
    elif found == "written":
        assert lines[0] == f"left {claim}, the name {whose} had claimed, as it is: another file is there now"
    if found == "renamed onto":  # the file is where the move took it, once
        done = f"completed the interrupted move of {src} -> {claim}"
        assert lines == [done if interrupted == "move" else f"the interrupted undo of {moving} had finished"]
        assert _files(settings.inbox) + _files(settings.library) == [claim]
        assert claim.read_bytes() == screenshot_png(13)
        return
    kept = [] if found == "marked" else [claim]  # beside the file, still where it was
    if interrupted == "move":
        assert lines[-1].startswith("rolled back") and _files(settings.library) == kept
    else:
        assert lines[-1] == f"the interrupted undo of {moving} had not begun; it stays sorted"
        assert _files(settings.inbox) == kept
    assert moving.read_bytes() == screenshot_png(13) and [p.read_bytes() for p in kept] == [held] * len(kept)


def test_a_claim_left_in_an_emotion_folder_is_no_label_and_is_not_read_as_a_picture(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move into ``happy/`` on a FAT or exFAT library killed between making its claim and writing
    the mark leaves an empty ``happy/a.png``, which recovery keeps (it may be a screenshot being
    written); one holding the mark recovery could not remove stays too. The label scan recorded each
    as a person's label with no face, and `status` counted it. Both are passed over now, neither
    hashed; the empty one, once written into, is a label like any picture put there."""
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(13))
    happy = settings.library / "happy"
    happy.mkdir(parents=True)
    journal = Journal.for_state_dir(settings.state_dir)
    move_id = journal.plan(file_hash(src), src, happy / "a.png", Decision.label("happy"), "m")
    journal.claiming(move_id, happy / "a.png")
    (happy / "a.png").touch()  # the claim made; the kill came before its mark
    left, rolled_back = recover(journal)
    assert left.startswith(f"left {happy / 'a.png'}") and "an empty file" in left
    assert rolled_back.startswith("rolled back") and src.exists()
    unremoved = happy / "b.png"
    unremoved.write_bytes(claim_mark(7, sha256(b"another screenshot")))
    (happy / "c.png").write_bytes(screenshot_png(14))  # a person's label beside them
    real, read = content_module.file_hash, []
    monkeypatch.setattr(content_module, "file_hash", lambda path: read.append(path.name) or real(path))
    reviewer = review.Reviewer(settings, journal)
    assert reviewer.scan() == 1 and read == ["c.png"]
    assert review.label_summary(journal) == ({"happy": 1}, 0, 0)
    assert reviewer.scan() == 0 and read == ["c.png"]
    (happy / "a.png").write_bytes(screenshot_png(15))  # it was a screenshot being written after all
    assert reviewer.scan() == 1 and review.label_summary(journal) == ({"happy": 2}, 0, 0)
    journal.close()


def test_labels_an_older_label_scan_recorded_from_claims_a_crash_left_are_withdrawn_once(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal written before the label scan passed over claims holds, for each claim a crash left
    in an emotion folder (empty, or holding a move's mark), a person's label with no face, counted
    by `status`: withdrawn when the journal is next opened, and only those; on a state disk that
    takes no write then, the journal still opens, and they go at the next open."""
    settings = daemon_settings
    happy = settings.library / "happy"
    journal = Journal.for_state_dir(settings.state_dir)
    shot = sha256(b"a screenshot")
    move_id = journal.plan(shot, settings.inbox / "a.png", happy / "a.png", Decision.label("happy"), "m")
    journal.claiming(move_id, happy / "a.png")
    journal.finish(move_id, "rolled_back")
    marked = sha256(claim_mark(move_id, shot))
    for digest, name in ((marked, "a.png"), (sha256(b""), "b.png"), (sha256(b"no face"), "c.png")):
        journal.add_label(digest, "happy", "human", None, "g", happy / name)  # as the older scan did
    journal._rows("DELETE FROM meta WHERE key = ?", (CLAIM_LABELS_WITHDRAWN,))  # a journal of then
    assert review.label_summary(journal) == ({}, 3, 0)
    journal.close()

    def full(*_args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as disk:
        disk.setattr(Journal, "set_meta", full)
        journal = Journal.for_state_dir(settings.state_dir)
        assert review.label_summary(journal) == ({}, 3, 0)
        journal.close()
    journal = Journal.for_state_dir(settings.state_dir)
    assert [digest for digest, *_ in journal.labels()] == [sha256(b"no face")]
    journal.add_label(sha256(b""), "happy", "human", None, "g", happy / "b.png")  # by hand, since: kept
    journal.close()
    journal = Journal.for_state_dir(settings.state_dir)
    assert review.label_summary(journal) == ({}, 2, 0)
    journal.close()


def test_a_marked_claim_in_the_inbox_is_quarantined_as_unreadable_never_sorted(
    daemon_settings: Settings,
) -> None:
    """An `undo` into a FAT or exFAT inbox claims the name first; a claim holding its mark that
    recovery could not remove, found in the inbox, does not decode as a picture: the daemon's sorter
    puts it into ``_quarantine/unreadable/``, never an emotion folder, and no label comes of it."""
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    claim = settings.inbox / "a.png"
    claim.write_bytes(claim_mark(3, sha256(b"a screenshot")))
    journal = Journal.for_state_dir(settings.state_dir)
    outcome = Sorter(Library(settings.library), journal).sort(stub_pipeline(settings), claim)
    quarantined = settings.library / "_quarantine" / "unreadable" / "a.png"
    assert outcome.kind == "placed" and outcome.destination == quarantined
    assert review.Reviewer(settings, journal).scan() == 0 and review.label_summary(journal) == ({}, 0, 0)
    journal.close()


def test_recovery_removes_the_empty_claim_of_a_move_journaled_before_claims_were(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A journal from before 2026-12-03 did not record the name a move claimed: an interrupted move
    of such a journal has its empty claim removed by the older rule (an empty file made since the
    move under a name it might have taken, in a folder where names are claimed); an empty file a
    person had there from before is kept."""
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(13))
    folder = settings.library / "_quarantine" / "unsure"
    folder.mkdir(parents=True)
    make_foreign(monkeypatch, settings.library)
    theirs = folder / "a.png"
    theirs.touch()
    os.utime(theirs, (1_000_000_000, 1_000_000_000))  # there long before the move
    journal = Journal.for_state_dir(settings.state_dir)
    journal.plan(file_hash(src), src, folder / "a.png", UNSURE, "m")
    journal.close()
    db = sqlite3.connect(settings.state_dir / "journal.sqlite")
    db.execute("ALTER TABLE moves DROP COLUMN claimed")  # the journal as older versions wrote it
    db.commit()
    db.close()
    claim = folder / "a (1).png"
    claim.touch()  # the older version's claim; the kill came before the rename onto it
    lines = list(recover(Journal.for_state_dir(settings.state_dir)))
    assert lines[0] == f"removed {claim}, the empty name the interrupted move of {src} had claimed"
    assert lines[1].startswith("rolled back") and src.read_bytes() == screenshot_png(13)
    assert _files(settings.library) == [theirs]


def test_a_quarantined_file_fuse_numbered_anew_since_the_listing_is_still_labelled(tmp_path: Path) -> None:
    """The review page names files by an id of their device, inode, size and time. exfat-fuse gives
    a file another inode number once the kernel dropped it from its cache (seen on the mount after
    `drop_caches`): each of 6 labels given then was "no such file in the quarantine (any more); reload"."""
    library = tmp_path / "library"
    shot = library / "_quarantine" / "unsure" / "a.png"
    shot.parent.mkdir(parents=True)
    shot.write_bytes(screenshot_png(16))
    [listed] = queue.scan(library, {})
    renumber(shot)
    assert queue.current(listed, library) == listed
    shot.write_bytes(screenshot_png(17) + b"more")  # a file written since is not the one listed
    assert queue.current(listed, library) is None


def test_the_label_scan_reads_no_file_again_for_being_fuse_numbered_anew(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The label scan (every `learning.review_scan_s`) knew the files it had looked at by their
    inode number too: on a library on exfat-fuse or fusefat, where the kernel dropping a file from
    its cache numbers it anew, it read every such file again at each scan. One saved over within
    the clock's tick (same size and time) is still read again, and its new picture's label counted."""
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    happy = daemon_settings.library / "happy"
    happy.mkdir(parents=True)
    (happy / "a.png").write_bytes(screenshot_png(20))
    (happy / "b.png").write_bytes(stored_png(21, "happy"))
    coarse_now(happy / "b.png")
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    reviewer = review.Reviewer(daemon_settings, journal)
    assert reviewer.scan() == 2
    real, read = content_module.file_hash, []
    monkeypatch.setattr(content_module, "file_hash", lambda path: read.append(path.name) or real(path))
    for _ in range(2):
        renumber(happy / "a.png")
        assert reviewer.scan() == 0
    assert "a.png" not in read
    written_over(happy / "b.png", stored_png(22, "sad"), in_place=True)
    assert reviewer.scan() == 1
    assert journal.label_for_hash(file_hash(happy / "b.png"))[0] == "happy"
    journal.close()


def test_the_label_scan_looks_again_at_a_picture_written_over_keeping_its_size_and_time(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cp -p` (or `rsync -t`) of a picture with the same size and time over a labelled one: the
    same inode, size and time, only its change time (ctime) moved. The label scan did not look at
    it again, so the new picture's label never counted; it does now, and a chmod, which changes the
    ctime too, costs one read of the file, not one at every scan."""
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    happy = daemon_settings.library / "happy"
    happy.mkdir(parents=True)
    shot = happy / "a.png"
    shot.write_bytes(stored_png(30, "happy"))
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    reviewer = review.Reviewer(daemon_settings, journal)
    assert reviewer.scan() == 1
    inode = shot.stat().st_ino
    written_over(shot, stored_png(31, "sad"), in_place=True)
    assert shot.stat().st_ino == inode and not time_may_hide_a_write(shot.stat())
    assert reviewer.scan() == 1
    assert journal.label_for_hash(file_hash(shot))[0] == "happy"
    real, read = content_module.file_hash, []
    monkeypatch.setattr(content_module, "file_hash", lambda path: read.append(path.name) or real(path))
    shot.chmod(0o600)
    for _ in range(3):
        assert reviewer.scan() == 0
    assert read == ["a.png"]
    journal.close()


def test_a_state_folder_on_fusefat_is_not_called_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fusefat refuses SQLite's -shm file its size ("disk I/O error") and says its size is 0 blocks
    (statvfs): every command said "its disk is full: free some space there" of a drive with room."""
    nothing = os.statvfs_result((1024, 1024, 0, 0, 0, 129022, 123238, 123238, 4102, 255))
    monkeypatch.setattr("facesortd.journal.os.statvfs", lambda _folder: nothing)
    monkeypatch.setattr("facesortd.journal.filesystem_type", lambda _folder: "fuse.fusefat")
    said = str(JournalUnavailable(tmp_path / "journal.sqlite", sqlite3.OperationalError("disk I/O error")))
    assert "full" not in said and "is on fuse.fusefat" in said and "state_dir on a Linux filesystem" in said


def test_a_state_folder_whose_drive_was_pulled_out_is_said_to_be_out_of_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FUSE drive pulled out under the state folder answers "Transport endpoint is not connected";
    the journal's error blamed the filesystem's kind (or sent the person to dmesg)."""

    def pulled(_folder: Path) -> os.statvfs_result:
        raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))

    monkeypatch.setattr("facesortd.journal.os.statvfs", pulled)
    monkeypatch.setattr("facesortd.journal.filesystem_type", lambda _folder: "fuseblk")
    said = str(JournalUnavailable(tmp_path / "journal.sqlite", sqlite3.OperationalError("disk I/O error")))
    assert said == (
        f"cannot use the journal {tmp_path / 'journal.sqlite'} (disk I/O error): {tmp_path} cannot be "
        "reached now (Transport endpoint is not connected): if it is on a drive, plug it in and mount it "
        "again; it is not damaged, keep it"
    )


def test_a_state_folder_not_made_on_a_read_only_mount_is_not_called_out_of_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state folder not made yet, whose parent is on a read-only mount: every command that opens
    the journal (`import-labels`, `undo`, `sort`, `run` ...) said it "cannot be reached now (No such
    file or directory): plug it in", of a folder that was never made, and to keep a journal there
    was none of."""
    real = os.statvfs
    frozen = os.statvfs_result((*real(tmp_path)[:8], os.ST_RDONLY, 255))
    monkeypatch.setattr("facesortd.journal.os.statvfs", lambda f: frozen if Path(f) == tmp_path else real(f))
    folder = tmp_path / "state"
    said = str(JournalUnavailable(folder / "journal.sqlite", OSError(errno.EROFS, os.strerror(errno.EROFS))))
    assert said == (
        f"cannot use the journal {folder / 'journal.sqlite'} (Read-only file system): {folder} cannot be "
        f"made: {tmp_path} is on a read-only filesystem: mount it writable, or set state_dir to a "
        "folder on a writable one"
    )


def test_the_filesystem_type_is_read_for_the_folder_a_path_is_in(tmp_path: Path) -> None:
    """The type of a folder's filesystem, for messages: what /proc/self/mountinfo says of the mount
    holding it (a folder not made yet: of the nearest one that is)."""
    kind = mounts.filesystem_type(tmp_path / "not" / "made")
    assert kind is not None and kind == mounts.filesystem_type(tmp_path)


def test_a_name_longer_than_255_bytes_that_the_drive_takes_is_kept_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """exFAT and NTFS take 255 UTF-16 units, not bytes: 100 of ``あ`` (304 bytes with ``.png``) is a
    name there. It was cut to 255 bytes going into a library on such a drive, and `undo` gave it
    back cut into an inbox on one (seen on exfat-fuse). Here NAME_MAX is made shorter than what the
    test's filesystem takes, which is how such a drive looks to facesortd."""
    monkeypatch.setattr(file_names, "NAME_MAX", 40)
    name = "\u3042" * 20 + ".png"  # 64 bytes
    src = tmp_path / "inbox" / name
    src.parent.mkdir()
    src.write_bytes(b"x")
    final = durable.move_no_replace(src, tmp_path / "lib" / name)
    assert final.name == name and final.read_bytes() == b"x"
    assert next(file_names.numbered_names(final)) == final  # where recovery looks first
    src.write_bytes(b"y")  # the same name again: numbered, cut to NAME_MAX as before
    again = durable.move_no_replace(src, tmp_path / "lib" / name)
    assert again.name.endswith(" (1).png") and len(os.fsencode(again.name)) <= 40


def test_a_name_longer_than_the_filesystem_takes_is_still_cut_to_fit(tmp_path: Path) -> None:
    """From an inbox on exFAT (a 304-byte name) into a library on ext4, which takes 255 bytes."""
    name = "\u3042" * 100 + ".png"
    src = tmp_path / "inbox" / "a.png"
    src.parent.mkdir()
    src.write_bytes(b"x")
    final = durable.move_no_replace(src, tmp_path / "lib" / name)
    assert len(os.fsencode(final.name)) <= 255 and final.name.startswith("\u3042" * 50)
    assert final.read_bytes() == b"x"


def test_a_copy_across_filesystems_whose_last_step_fails_is_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy linked into the library, then its folder's fsync failed (an I/O error on a USB
    drive): the move failed and the source stayed, but so did the copy, which the journal marked
    rolled back: the retry copied the file again, ``a (1).png`` beside ``a.png``."""
    src = tmp_path / "inbox" / "a.png"
    src.parent.mkdir()
    src.write_bytes(b"x" * 100)
    library = tmp_path / "lib"
    real_fsync_dir, failed = durable.fsync_dir, []

    def fsync_dir(path: Path) -> None:
        if Path(path) == library and not failed:
            failed.append(path)
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        real_fsync_dir(path)

    monkeypatch.setattr(durable, "fsync_dir", fsync_dir)
    monkeypatch.setattr(durable.os, "link", _across(os.link, src.parent))
    with pytest.raises(OSError):
        durable.move_no_replace(src, library / "a.png")
    assert src.read_bytes() == b"x" * 100 and _files(library) == []
    final = durable.move_no_replace(src, library / "a.png")  # the retry
    assert final.name == "a.png" and _files(library) == [final] and not src.exists()


def test_doctor_says_what_a_drive_for_windows_means_and_that_a_state_folder_there_is_not_private(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A state folder on exFAT or NTFS cannot be made 0700: the journal, which names every file
    sorted, was as readable as the drive's mount options made it, and `doctor` said "all good"."""
    env = cli_settings
    on_drive = {env.library, env.state_dir}
    monkeypatch.setattr("facesortd.doctor.filesystem_type", lambda f: "fuseblk" if f in on_drive else "ext4")
    env.state_dir.mkdir(parents=True)
    env.state_dir.chmod(0o777)  # what the drive shows, whatever facesortd asks
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "library is on fuseblk (exFAT or NTFS through FUSE): names it refuses get _" in out
    assert f"FIX   state_dir {env.state_dir} is on fuseblk" in out and "readable by other users" in out
    assert "inbox is on" not in out


def test_a_state_folder_gone_with_its_drive_is_not_made_anew_on_the_disk_below(
    daemon_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state folder on a drive unmounted under the daemon: the daemon stops for it (its journal
    is gone), but its status file, written once more as it stopped, made the state folder anew on
    the disk below the mount point, which exfat-fuse then refused to mount over (seen on the mount)."""
    drive = Drive(monkeypatch, tmp_path / "drive")
    settings = daemon_settings.model_copy(update={"state_dir": drive.folder / "state"})
    lines: list[str] = []
    logger.add(lines.append, level="CRITICAL", format="{message}")
    with running_daemon(settings, stub_pipeline):
        drive.mounted = False
        shutil.rmtree(settings.state_dir)
        wait_until(lambda: any("was removed or replaced" in line for line in lines))
    assert list(drive.folder.iterdir()) == []


def test_a_copy_cut_short_by_a_drive_pulled_out_is_tidied_once_it_is_back(
    daemon_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's drive pulled out during a copy: the copy's temp file could not be removed then,
    nor by the recovery the failure asked for (the drive was away), and stayed on the drive (20 MB
    of a full 64 MB one, seen on the mount) until the daemon's next start."""
    drive = Drive(monkeypatch, tmp_path / "drive")
    settings = daemon_settings.model_copy(update={"library": drive.folder / "library"})
    with running_daemon(settings, stub_pipeline) as daemon:
        (settings.inbox / "a.png").write_bytes(screenshot_png(18))
        wait_until(lambda: not (settings.inbox / "a.png").exists())
        [placed] = _files(settings.library)
        drive.mounted = False
        wait_until(lambda: daemon._library_problem is not None)
        left = placed.parent / f"{durable.TMP_PREFIX}cut-short"
        left.write_bytes(b"half a screenshot")
        drive.mounted = True
        wait_until(lambda: not left.exists())
    assert _files(settings.library) == [placed]


def test_sort_stops_at_a_library_drive_pulled_out_and_leaves_the_rest(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The library's drive pulled out under a `sort` of many files: each file left was classified,
    to fail with the same line; `sort` now stops at the first, as at a full disk, exit 1. The file
    under way fails, left where it was and said; a file handed to the worker ahead of time but not
    begun is left untouched, as the files not reached (it failed too when the worker took it before
    the run was seen blocked: 1, 2 or 3 failed by the machine's load)."""
    drive = Drive(monkeypatch, tmp_path / "drive")
    monkeypatch.setenv("FACESORTD_LIBRARY", str(drive.folder / "library"))
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(30):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(i))
    real_link = os.link

    def link(src: object, dst: object, **kw: object) -> None:  # pulled out after three files
        if len(_files(drive.folder)) >= 3:
            drive.mounted = False
        real_link(src, dst, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("facesortd.durable.os.link", link)
    assert cli.main(["sort", "--workers", "1", str(shots)]) == 1
    err = capsys.readouterr().err
    assert "stopped: cannot use the library" in err and "once the drive is mounted again" in err
    assert err.count("could not move it") == 1 and "failed 1; 25 file(s) left where they were" in err
    assert len(_files(shots)) + len(_files(drive.folder)) == 30


def test_a_drive_mounted_over_the_library_since_the_start_is_said_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon started before the drive was plugged in made its library on the disk below; the
    drive mounted over it since is not where the journal's files are: said so, with what to do
    (not "the drive mounted at / is not there now: mount it at / again")."""
    drive = Drive(monkeypatch, tmp_path / "drive")
    drive.mounted = False
    library = Library(drive.folder / "library")
    drive.mounted = True
    said = str(library.refusal())
    assert f"a drive was mounted at {drive.folder} since the start" in said
    assert f"unmount it from {drive.folder}" in said and "or restart facesortd" in said


@pytest.mark.parametrize(
    ("name", "portable"), [("CON.png", "CON_.png"), ("aux.png", "aux_.png"), ("a:b.png", "a_b.png")]
)
def test_names_ntfs_refuses_with_windows_names_are_sorted_under_names_it_takes(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str, portable: str
) -> None:
    """`ntfs-3g -o windows_names` refuses Windows' device names with EINVAL (seen on the mount:
    CON.png and aux.png failed, "its filesystem refuses that name")."""
    env = cli_settings
    make_foreign(monkeypatch, env.library, windows_names_refusal)
    (env.inbox / name).write_bytes(screenshot_png(19))
    assert cli.main(["sort"]) == 0
    [placed] = _files(env.library)
    assert placed.name == portable and placed.read_bytes() == screenshot_png(19)


@pytest.mark.parametrize(("name", "ascii"), [("é ü.png", "e u.png"), ("\u3042\u3044.png", "__.png")])
def test_a_name_only_ascii_would_do_for_is_sorted_in_ascii_and_undo_gives_its_own_back(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str, ascii: str
) -> None:
    """fusefat (and FAT mounted without UTF-8) refuses every name that is not ASCII: such files
    stayed in the inbox for ever, said refused (seen on the mount: 3 of 11)."""
    env = cli_settings
    make_foreign(monkeypatch, env.library, lambda n: None if n.isascii() else errno.EPERM)
    shot = env.inbox / name
    shot.write_bytes(screenshot_png(21))
    monkeypatch.setattr(durable.os, "link", _across(durable.os.link, env.inbox))
    assert cli.main(["sort"]) == 0
    [placed] = _files(env.library)
    assert placed.name == ascii and placed.read_bytes() == screenshot_png(21)
    assert cli.main(["undo", "1", "--yes"]) == 0 and shot.read_bytes() == screenshot_png(21)


@pytest.mark.parametrize("when", ["after-the-check", "during-the-copy"])
def test_a_library_drive_pulled_out_after_the_check_is_not_made_anew_on_the_disk_below(
    daemon_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """The drive gone just after Library.refusal looked, or while the file was copied onto it (the
    link of the whole copy then found no folder): the move made the library's folders anew on the
    disk below the mount point and put the file there, hidden once the drive was back (and FUSE
    refused to mount over the folder no longer empty). It stays where it is, said as the drive gone."""
    drive = Drive(monkeypatch, tmp_path / "drive")
    settings = daemon_settings.model_copy(update={"library": drive.folder / "library"})
    settings.library.mkdir()
    settings.inbox.mkdir(parents=True)
    shot = settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(22))

    def pull_out() -> None:
        drive.mounted = False
        shutil.rmtree(settings.library)

    if when == "after-the-check":
        real_move = durable.move_no_replace

        def move_no_replace(*args: object, **kw: object) -> Path:
            pull_out()
            return real_move(*args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr("facesortd.library.move_no_replace", move_no_replace)
    else:
        real_link_no_replace = durable.link_no_replace

        def link_no_replace(src: Path, dest: Path, *args: object, **kw: object) -> Path:
            if drive.mounted:  # the copy was whole on the drive, which is gone: its folder with it
                pull_out()
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(dest))
            return real_link_no_replace(src, dest, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(durable, "link_no_replace", link_no_replace)
        monkeypatch.setattr(durable.os, "link", _across(durable.os.link, settings.inbox))
    sorter = Sorter(Library(settings.library), Journal.for_state_dir(settings.state_dir))
    with pytest.raises(refusals.Refused, match="is not there now"):
        sorter.sort(stub_pipeline(settings), shot)
    assert shot.read_bytes() == screenshot_png(22) and list(drive.folder.iterdir()) == []


def test_an_inbox_drive_pulled_out_after_the_copy_leaves_the_copy_known_to_the_journal(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inbox on a USB drive, the library on the internal disk: the drive pulled out once the
    copy was whole, before the source was removed. The copy is kept (the source's fate unknown: it
    may be the only one left), but the move then failed making the inbox's removal durable in a
    folder no longer there: journaled rolled back, the copy in the library was unknown to the
    journal (no `undo`; in an emotion folder, taken for a person's label) and the file, back with
    its drive, was not known as sorted before (a duplicate the `duplicates` rule could not see)."""
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    shot = settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(23))
    digest = file_hash(shot)
    real_copy = durable._copy_no_replace

    def copy_then_pull_out(*args: object, **kw: object) -> Path:
        copied = real_copy(*args, **kw)  # type: ignore[arg-type]
        shutil.rmtree(settings.inbox)  # its drive gone: the inbox with it
        return copied

    monkeypatch.setattr(durable, "_copy_no_replace", copy_then_pull_out)
    monkeypatch.setattr(durable.os, "link", _across(durable.os.link, settings.inbox))
    journal = Journal.for_state_dir(settings.state_dir)
    final = journaled_apply(journal, Library(settings.library), shot, digest, UNSURE, ModelId("m"))
    assert file_hash(final) == digest and journal.done_at(final) is not None


def test_the_daemon_says_once_that_the_files_wait_for_a_library_drive_gone(
    daemon_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal's fix said the files stay where they are, and the daemon (and `status`) added
    that they stay where they are until then: the same thing twice in one line."""
    drive = Drive(monkeypatch, tmp_path / "drive")
    settings = daemon_settings.model_copy(update={"library": drive.folder / "library"})
    with running_daemon(settings, stub_pipeline) as daemon:
        drive.mounted = False
        wait_until(lambda: daemon._library_problem is not None)
        said = daemon._library_problem or ""
    assert "is not there now): mount it at" in said and said.count("stay where they are") == 1


@pytest.mark.parametrize("interrupted", ["move", "undo"])
def test_recovery_leaves_an_empty_file_where_no_move_ever_claims_a_name(
    daemon_settings: Settings, interrupted: str
) -> None:
    """A name is claimed empty first only where the kernel's no-replace rename is refused (FAT and
    exFAT through FUSE). On ext4 no move leaves an empty claim, yet recovery removed any empty file
    made since the interrupted move (or `undo`) under a name it might have taken: a screenshot the
    tool had just created there and was writing (its bytes then went to a file no longer there), or
    an empty file a person dropped since."""
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(24))
    journal = Journal.for_state_dir(settings.state_dir)
    _move_id, theirs, placed = _interrupted(journal, settings, src, interrupted)
    with open(theirs, "wb") as being_written:  # made since the kill; its writer is at work
        list(recover(journal))
        being_written.write(b"the screenshot")
    assert theirs.read_bytes() == b"the screenshot"
    if interrupted == "undo":
        assert placed.read_bytes() == screenshot_png(24)


@pytest.mark.parametrize("written", ["just now", "by a clock ahead", "long ago"])
def test_a_file_rewritten_within_a_fat_clock_tick_is_not_moved_with_the_old_decision(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, written: str
) -> None:
    """FAT keeps a file's time to 2 s: a screenshot tool saving over one name twice within that,
    the same size, left inode, size and time as they were, and the new picture went into the folder
    the old one was decided for (under the old one's hash, which undo then refused). A whole-second
    time set in the last minute is now checked by content; one from long ago (files unpacked from
    an archive keep whole seconds) is not read again. A time ahead of this clock (a network drive's
    server set it: sshfs keeps whole seconds) is checked too: a write by that clock may hide there."""
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    shot = settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(10))
    tick = int(time.time()) + {"just now": 0, "by a clock ahead": 300, "long ago": -86_400}[written]
    os.utime(shot, (tick, tick))
    seen, digest = shot.lstat(), file_hash(shot)
    if written != "long ago":
        with open(shot, "r+b") as fh:  # saved over in place: the same inode
            fh.write(screenshot_png(11)[:64])
        os.utime(shot, (tick, tick))
    journal = Journal.for_state_dir(settings.state_dir)
    hashed: list[Path] = []
    real_holds = placement.holds
    monkeypatch.setattr(placement, "holds", lambda path, d: hashed.append(path) or real_holds(path, d))
    if written != "long ago":
        with pytest.raises(FileNotFoundError):
            journaled_apply(journal, Library(settings.library), shot, digest, UNSURE, ModelId("m"), seen=seen)
        assert shot.exists() and hashed == [shot]
    else:
        final = journaled_apply(
            journal, Library(settings.library), shot, digest, UNSURE, ModelId("m"), seen=seen
        )
        assert final.read_bytes() == screenshot_png(10) and hashed == []


def _place(folder: Path) -> Path | None:
    """Where no drive is mounted that ``folder`` would be on (None: it may be used)."""
    away = mounts.drive_not_mounted(folder)
    return None if away is None else away.place


@pytest.fixture
def drive_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """/media, /run/media and /mnt, as folders of the test's own."""
    places = (tmp_path / "media", tmp_path / "run-media", tmp_path / "mnt")
    for place in places:
        place.mkdir()
    monkeypatch.setattr(mounts, "DRIVE_PLACES", places)
    return places


def test_a_missing_folder_where_no_drive_is_mounted_is_told_from_one_not_made_yet(
    drive_places: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media, run_media, mnt = drive_places
    (media / "bob").mkdir()
    (run_media / "bob" / "USB").mkdir(parents=True)  # a label folder udisks left behind
    (mnt / "usb").mkdir()
    assert _place(media / "bob" / "USB" / "library") == media / "bob"
    assert _place(run_media / "bob" / "USB" / "library") == run_media / "bob" / "USB"
    assert _place(mnt / "usb" / "library") == mnt / "usb"
    assert _place(mnt / "disk" / "library") == mnt
    assert mounts.drive_not_mounted(mnt / "usb") is None  # there: nothing to make
    assert mounts.drive_not_mounted(tmp_path / "home" / "library") is None  # no place of drives
    monkeypatch.setattr(mounts.os.path, "ismount", lambda path: Path(path) == mnt / "usb")
    assert mounts.drive_not_mounted(mnt / "usb" / "library") is None  # mounted: only not made yet


@pytest.mark.parametrize("away", ["library", "state_dir"])
@pytest.mark.parametrize("command", ["run", "sort"])
def test_run_and_sort_make_no_library_below_a_mount_point_whose_drive_is_away(
    cli_settings: Settings,
    drive_places: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    away: str,
) -> None:
    """A library on a USB drive that was not plugged in when the daemon (or `sort`) started was made
    on the disk below the mount point and the files sorted there, hidden once the drive came (and
    exfat-fuse refuses to mount over a folder that is not empty). Exit 1: systemd starts the daemon
    again until the drive is there. A state folder there is refused alike (by the journal, which
    every command opens before it makes anything there)."""
    usb = drive_places[2] / "usb"
    usb.mkdir()
    folder = usb / away
    monkeypatch.setenv(f"FACESORTD_{away.upper()}", str(folder))
    shot = cli_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(3))
    capsys.readouterr()
    assert cli.main([command]) == 1
    assert " ".join(capsys.readouterr().err.split()) == (
        f"facesortd: error: {folder} is not there, and {usb} is where drives are mounted (no drive is "
        f"mounted there now): mount the drive that holds it, or make {folder} yourself if it belongs on "
        "this disk"
    )
    assert list(usb.iterdir()) == [] and shot.exists()
    said = f"{away} {folder} is not there, and {usb} is where drives are mounted"
    assert cli.main(["doctor"]) == 1  # and doctor says so, as a FIX, and status as a PROBLEM
    assert said in " ".join(capsys.readouterr().out.split())
    assert cli.main(["status"]) == 0
    assert f"PROBLEM: {said}" in " ".join(capsys.readouterr().out.split())
    assert list(usb.iterdir()) == []


def test_sort_of_a_file_written_to_during_its_copy_says_it_stays_not_gone(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The library on another filesystem: a file written to while it was copied there keeps its
    place, its copy taken back. `sort` said it "gone meanwhile (moved by a person, the daemon or
    another `facesortd sort`)" of a file still in the inbox, which the person then looked for."""
    shot = cli_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(3))
    real_link, real_copy = os.link, durable.shutil.copyfileobj

    def link(a, b, **kw):  # type: ignore[no-untyped-def]
        if Path(a) == shot:
            raise OSError(errno.EXDEV, "cross-device")
        return real_link(a, b, **kw)

    def copy_then_appended(inp, out, length=0):  # type: ignore[no-untyped-def]
        real_copy(inp, out, length)
        with open(shot, "ab") as fh:
            fh.write(b"more")

    monkeypatch.setattr(durable.os, "link", link)
    monkeypatch.setattr(durable.shutil, "copyfileobj", copy_then_appended)
    capsys.readouterr()
    assert cli.main(["sort", str(shot)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "gone meanwhile" not in err and "written to or replaced while it was sorted" in err
    assert shot.read_bytes() == screenshot_png(3) + b"more" and _files(cli_settings.library) == []


def test_a_folder_reached_through_a_link_into_a_place_of_drives_is_told_too(
    drive_places: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """A library named through a link (~/usb -> /mnt/usb, a person's shortcut to the drive): the
    link's own folder was taken as the nearest, no place of drives, and the library was made on the
    disk below /mnt/usb with the drive away, hidden once it came."""
    usb = drive_places[2] / "usb"
    usb.mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "usb").symlink_to(usb)
    assert _place(tmp_path / "home" / "usb" / "library") == usb


@pytest.mark.parametrize("command", [["undo", "1", "--yes"], ["undo", "--dry-run", "1"]])
def test_undo_makes_no_state_folder_below_a_mount_point_whose_drive_is_away(
    cli_settings: Settings,
    drive_places: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    """`run` and `sort` refused to make a state folder where a drive is not mounted; `undo` made it
    (the journal opened): an empty journal on the disk below ("nothing to undo"), which the next
    `run` then took for the state folder, and a folder not empty that exfat-fuse refuses to mount
    the drive over."""
    usb = drive_places[2] / "usb"
    usb.mkdir()
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(usb / "state"))
    capsys.readouterr()
    assert cli.main(command) == 1
    assert "is where drives are mounted" in capsys.readouterr().err
    assert list(usb.iterdir()) == []


def test_undo_of_a_file_sorted_from_a_drive_now_away_says_to_mount_it(
    cli_settings: Settings, drive_places: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort /mnt/usb/screens`, then the drive pulled out: `undo` said the folder "no longer exists;
    left alone (move it by hand)", as of a folder a person deleted, where mounting the drive is all
    it takes. The file stays sorted, and is undone once the drive is back."""
    screens = drive_places[2] / "usb" / "screens"
    screens.mkdir(parents=True)
    shot = screens / "a.png"
    shot.write_bytes(screenshot_png(3))
    assert cli.main(["sort", str(screens)]) == 0
    [placed] = _files(cli_settings.library)
    screens.rmdir()  # the drive pulled out: /mnt/usb, its mount point, stays
    capsys.readouterr()
    assert cli.main(["undo", "1", "--yes"]) == 1  # not undone: worth a script's attention
    out = " ".join(capsys.readouterr().out.split())
    assert "move it by hand" not in out and f"{drive_places[2] / 'usb'} is where drives are mounted" in out
    assert _files(cli_settings.library) == [placed]
    screens.mkdir()
    assert cli.main(["undo", "1", "--yes"]) == 0
    assert shot.read_bytes() == screenshot_png(3)


def test_undo_and_status_ask_each_folder_s_drive_once(
    cli_settings: Settings, drive_places: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each asking of a folder's drive reads fstab and the mount table. `undo` asked twice per move
    going back to a folder missing outside the inbox and the library (its refusal, then its wait for
    the drive); `status` asked thrice of the state folder (its problem line, before opening the
    journal, and the journal's opening). Once each now, with the same answers (the tests above)."""
    screens = drive_places[2] / "usb" / "screens"
    screens.mkdir(parents=True)
    (screens / "a.png").write_bytes(screenshot_png(3))
    assert cli.main(["sort", str(screens)]) == 0
    screens.rmdir()  # the drive pulled out
    reads: list[Path] = []
    real = mounts._listed_but_away
    monkeypatch.setattr(mounts, "_listed_but_away", lambda at, *a: reads.append(at) or real(at, *a))
    status.gather(cli_settings)
    assert sorted(reads) == sorted(Path(os.path.realpath(getattr(cli_settings, name))) for name in FOLDERS)
    journal = Journal.for_state_dir(cli_settings.state_dir)
    reads.clear()
    [outcome] = undo(journal, journal.done_moves(), cli_settings.library, cli_settings.inbox)
    assert outcome.waits_for is not None and reads == [screens]


def test_doctor_asks_each_folder_s_drive_once(
    cli_settings: Settings, fstab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`doctor` asked the state folder's drive twice (each asking reads fstab and the mount table):
    in its folder check, and again as it opened the journal. Once each now; with that drive away,
    the journal on the disk below is still not opened, and said so."""
    journal = cli_settings.state_dir / "journal.sqlite"
    Journal(journal).close()
    reads: list[Path] = []
    real = mounts._listed_but_away
    monkeypatch.setattr(mounts, "_listed_but_away", lambda at, *a: reads.append(at) or real(at, *a))
    assert cli.main(["doctor"]) in (0, 1)  # the service unit is not this test's
    folders = sorted(Path(os.path.realpath(getattr(cli_settings, name))) for name in FOLDERS)
    assert sorted(reads) == folders and f"ok    journal: {journal}\n" in capsys.readouterr().out
    fstab.write_text(f"/dev/sdb1 {cli_settings.state_dir} exfat nofail 0 0\n")  # its drive away
    reads.clear()
    assert cli.main(["doctor"]) == 1
    said = _printed_lines(capsys)
    assert sorted(reads) == folders
    assert f"FIX journal: {journal} not opened, as its drive is not mounted (see state_dir)" in said


def _printed_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What a command printed since the last look, a line each, its wrapping undone."""
    return [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]


def test_undo_into_an_inbox_whose_drive_is_away_leaves_the_file_sorted(
    cli_settings: Settings,
    drive_places: tuple[Path, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`undo` with the inbox's drive unplugged made the inbox anew on the disk below its mount point
    and put the file there: hidden once the drive was back (and exfat-fuse refuses to mount over a
    folder that is not empty). Each file waits, sorted, until the inbox is there again; the advice
    is said once for them all, with their count (it was said once per file, the same line hundreds
    of times for hundreds of files), in the plan too, after the lines of the files that go back."""
    inbox = drive_places[2] / "usb" / "inbox"
    inbox.mkdir(parents=True)
    monkeypatch.setenv("FACESORTD_INBOX", str(inbox))
    for n in (3, 4, 5):
        (inbox / f"{n}.png").write_bytes(screenshot_png(n))
    assert cli.main(["sort"]) == 0
    placed = _files(cli_settings.library)
    screens = tmp_path / "screens"  # a folder on a disk that is there: its file goes back
    screens.mkdir()
    (screens / "6.png").write_bytes(screenshot_png(6))
    assert cli.main(["sort", str(screens)]) == 0
    inbox.rmdir()  # the drive pulled out: /mnt/usb, its mount point, stays
    usb = drive_places[2] / "usb"
    wait = (
        f"3 files going back to {inbox}: {inbox} is not there, and {usb} is where drives are mounted (no "
        f"drive is mounted there now): mount the drive that holds it, or make {inbox} yourself if it "
        "belongs on this disk; left where they are, to undo again then"
    )
    capsys.readouterr()
    assert cli.main(["undo", "--dry-run", "4"]) == 0
    lines = _printed_lines(capsys)
    assert lines[1:] == [wait, "nothing undone (dry run)"] and "6.png would go back to" in lines[0], lines
    assert cli.main(["undo", "4", "--yes"]) == 1  # not undone: worth a script's attention
    lines = _printed_lines(capsys)
    assert lines[1:] == [wait] and lines[0].endswith(f"-> {screens / '6.png'}"), lines
    assert not inbox.exists() and _files(cli_settings.library) == placed
    inbox.mkdir()  # back: undone as asked
    assert cli.main(["undo", "3", "--yes"]) == 0
    assert sorted(p.name for p in _files(inbox)) == ["3.png", "4.png", "5.png"]
    assert _files(cli_settings.library) == []


def test_undo_into_an_inbox_deleted_by_hand_makes_it_again(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """An inbox a person removed, on a disk that is there: `undo` refused it ("mount its drive (or
    make it)", exit 1) as if a drive were away; it makes the inbox again and puts the file back, as
    it did before, and as the daemon makes its inbox again."""
    shot = cli_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(3))
    assert cli.main(["sort"]) == 0
    cli_settings.inbox.rmdir()
    assert cli.main(["undo", "1", "--yes"]) == 0
    assert shot.read_bytes() == screenshot_png(3) and _files(cli_settings.library) == []


@pytest.fixture
def fstab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """/etc/fstab, as a file of the test's own (empty: written by the test), on a machine (not a
    container, where its drives count for nothing) whatever the tests run in."""
    path = tmp_path / "fstab"
    path.write_text("")
    monkeypatch.setattr(mounts, "FSTAB", path)
    monkeypatch.setattr(mounts, "_in_container", lambda: False)
    return path


def _mounted_at_too(monkeypatch: pytest.MonkeyPatch, place: Path, kind: str = "exfat") -> None:
    """``place`` listed by the mount table as a mount point of ``kind`` (a drive mounted there)."""
    real = mounts._mount_table
    monkeypatch.setattr(mounts, "_mount_table", lambda: [*(real() or []), (place, kind)])


def test_a_folder_on_a_drive_fstab_lists_is_refused_while_that_drive_is_not_mounted(
    fstab: Path, tmp_path: Path
) -> None:
    """A mount point /etc/fstab lists outside /media, /run/media and /mnt (`/data/usb`), or the
    folder of one that is there, empty, with its drive away (`/mnt/usb` itself as the inbox): the
    folder was used as is and the files put on the disk below, hidden once the drive was mounted.
    Told by the mount table, whatever the entry's options (`noauto`, `nofail`: a drive all the
    same); swap and filesystems with no drive behind them are no drive."""
    data = tmp_path / "data"
    usb, spaced, ram = data / "usb", data / "my drive", data / "ram"
    for folder in (usb, spaced, ram):
        folder.mkdir(parents=True)
    escaped = str(spaced).replace(" ", "\\040")  # as fstab writes a space
    fstab.write_text(
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        f"UUID=1234-ABCD\t{usb}  exfat noauto,nofail,uid=1000 0 0\n"
        f"LABEL=backup {escaped} ext4 defaults 0 2\n"
        f"tmpfs {ram} tmpfs defaults 0 0\n"
        "/swapfile none swap sw 0 0\n"
        "\n"
    )
    away = mounts.drive_not_mounted(usb)  # the mount point's own empty folder
    assert away is not None and (away.folder, away.place) == (usb, usb)
    assert " ".join(str(away).split()) == (
        f"{usb} is on the drive {fstab} mounts at {usb}, and no drive is mounted there now (files put "
        f"there would be hidden once it is): mount its drive, or take {usb} out of {fstab} if that drive "
        "is gone for good"
    )
    assert _place(usb / "library") == usb
    (usb / "library").mkdir()  # made on the disk below before: no less the drive's
    assert _place(usb / "library") == usb
    assert _place(spaced / "library") == spaced
    assert mounts.drive_not_mounted(ram / "library") is None
    assert mounts.drive_not_mounted(data / "library") is None  # on no drive fstab lists
    shutil.rmtree(usb)  # even its mount point's folder gone: the library is still the drive's
    assert _place(usb / "library") == usb


def test_a_folder_on_a_drive_fstab_lists_is_used_while_that_drive_is_mounted(
    fstab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal above is of a drive away only: the drive holding the test's own folder (as its
    device tells, asked of the real mount table), and one mounted at the listed folder, or an
    automount there (`x-systemd.automount`: the mount table lists its trigger, and using the
    folder mounts the drive), are used; with no mount table (no /proc), devices tell."""
    usb = tmp_path / "usb"
    usb.mkdir()
    fstab.write_text(
        f"/dev/sda1 {mounts.mounted_at(tmp_path)} ext4 defaults 0 1\n/dev/sdb1 {usb} exfat nofail 0 0\n"
    )
    assert mounts.drive_not_mounted(tmp_path / "library") is None
    assert mounts.drive_not_mounted(usb / "library") is not None
    with monkeypatch.context() as patch:
        patch.setattr(mounts, "_mount_table", lambda: None)
        assert mounts.drive_not_mounted(tmp_path / "library") is None
        assert mounts.drive_not_mounted(usb / "library") is not None
    for kind in ("exfat", "autofs"):
        with monkeypatch.context() as patch:
            _mounted_at_too(patch, usb, kind)
            assert mounts.drive_not_mounted(usb) is None
            assert mounts.drive_not_mounted(usb / "library") is None


@pytest.mark.parametrize("away", ["inbox", "library", "state_dir"])
@pytest.mark.parametrize("command", ["run", "sort"])
def test_run_and_sort_use_no_folder_on_a_drive_fstab_lists_while_it_is_away(
    cli_settings: Settings,
    fstab: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    away: str,
) -> None:
    """An inbox that is the empty folder of a mount point fstab lists (`/data/usb`), a library and a
    state folder (with a journal on the disk below: recovery took it for the drive's) in one, the
    drive away: the files were sorted from it, or into it, hidden once the drive was mounted. Now
    refused as where drives are mounted: exit 1, doctor's FIX and status' PROBLEM."""
    usb = tmp_path / "data" / "usb"
    folder = usb if away == "inbox" else usb / away
    folder.mkdir(parents=True)
    if away == "state_dir":
        Journal.for_state_dir(folder).close()
    left = sorted(usb.rglob("*"))
    fstab.write_text(f"/dev/sdb1 {usb} ext4 nofail 0 2\n")
    monkeypatch.setenv(f"FACESORTD_{away.upper()}", str(folder))
    shot = cli_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(3))
    capsys.readouterr()
    assert cli.main([command]) == 1
    said = f"{folder} is on the drive {fstab} mounts at {usb}, and no drive is mounted there now"
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"facesortd: error: {said}") and "mount its drive" in err
    assert sorted(usb.rglob("*")) == left and shot.exists()
    assert cli.main(["doctor"]) == 1
    assert f"{away} {said}" in " ".join(capsys.readouterr().out.split())
    assert cli.main(["status"]) == 0
    assert f"PROBLEM: {away} {said}" in " ".join(capsys.readouterr().out.split())
    assert sorted(usb.rglob("*")) == left


def test_undo_into_an_inbox_on_a_drive_fstab_lists_waits_while_that_drive_is_away(
    cli_settings: Settings, fstab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The inbox is a mount point fstab lists, its drive unmounted since the files were sorted: its
    empty folder is there, and `undo` put the files into it, on the disk below, hidden once the
    drive was mounted again. They wait, sorted, said once for them all, until it is."""
    env = cli_settings
    fstab.write_text(f"/dev/sdb1 {env.inbox} exfat noauto,user 0 0\n")
    with monkeypatch.context() as patch:
        _mounted_at_too(patch, env.inbox)
        for n in (3, 4):
            (env.inbox / f"{n}.png").write_bytes(screenshot_png(n))
        assert cli.main(["sort"]) == 0
    placed = _files(env.library)
    wait = (
        f"2 files going back to {env.inbox}: {env.inbox} is on the drive {fstab} mounts at {env.inbox}, and "
        f"no drive is mounted there now (files put there would be hidden once it is): mount its drive, or "
        f"take {env.inbox} out of {fstab} if that drive is gone for good; left where they are, to undo "
        "again then"
    )
    capsys.readouterr()
    assert cli.main(["undo", "--dry-run", "2"]) == 0
    lines = _printed_lines(capsys)
    assert lines == [wait, "nothing undone (dry run)"]
    assert cli.main(["undo", "2", "--yes"]) == 1
    assert _printed_lines(capsys) == [wait]
    assert list(env.inbox.iterdir()) == [] and _files(env.library) == placed
    _mounted_at_too(monkeypatch, env.inbox)  # the drive back
    assert cli.main(["undo", "--yes", "2"]) == 0
    assert sorted(p.name for p in env.inbox.iterdir()) == ["3.png", "4.png"]


def test_the_daemon_sorts_a_file_again_once_it_was_written_to_during_its_copy(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library on another filesystem: a file written to while it was copied keeps its place,
    its copy taken back, and the daemon (which was told of the write while it held the file) sorts
    it whole once it is written, without a new event, not left for the next rescan."""
    settings = daemon_settings.model_copy(
        update={"watch": daemon_settings.watch.model_copy(update={"rescan_interval_s": 3600})}
    )
    real_link, real_copy = os.link, durable.shutil.copyfileobj
    writes: list[Path] = []
    shot = settings.inbox / "a.png"

    def link(a, b, **kw):  # type: ignore[no-untyped-def]
        if Path(a).parent == settings.inbox:
            raise OSError(errno.EXDEV, "cross-device")
        return real_link(a, b, **kw)

    def copy_then_appended_once(inp, out, length=0):  # type: ignore[no-untyped-def]
        real_copy(inp, out, length)
        if not writes:
            writes.append(shot)
            with open(shot, "ab") as fh:
                fh.write(b"more")

    monkeypatch.setattr(durable.os, "link", link)
    monkeypatch.setattr(durable.shutil, "copyfileobj", copy_then_appended_once)
    with running_daemon(settings, stub_pipeline):
        shot.write_bytes(screenshot_png(3))
        wait_until(lambda: not shot.exists())
    [placed] = _files(settings.library)
    assert writes and placed.read_bytes() == screenshot_png(3) + b"more"


@pytest.mark.parametrize("marks", ["taken", "refused too"])
def test_undo_into_a_fat_inbox_the_journal_refuses_leaves_the_file_sorted_and_says_why(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], marks: str
) -> None:
    """Into an inbox on FAT or exFAT a put-back journals the name it claims before claiming it. The
    state disk full at that write ended `undo` with a traceback; now the file stays sorted, `undo`
    says the journal refused it and the fix (exit 1). Were the move's own mark refused too, the
    undo's mark is left for recovery, which finds the file still in the library: it stays sorted."""
    (cli_settings.inbox / "a.png").write_bytes(screenshot_png(5))
    assert cli.main(["sort", str(cli_settings.inbox)]) == 0
    [placed] = _files(cli_settings.library)
    make_foreign(monkeypatch, cli_settings.inbox)
    full = sqlite3.OperationalError("database or disk is full")

    def refused(*_args: object) -> None:
        raise full

    monkeypatch.setattr(Journal, "claiming", refused)
    real_finish = Journal.finish
    if marks == "refused too":

        def finish(self: Journal, move_id: int, state: str, destination: Path | None = None) -> None:
            if state == "done":
                raise full
            real_finish(self, move_id, state, destination)

        monkeypatch.setattr(Journal, "finish", finish)
    capsys.readouterr()
    assert cli.main(["undo", "1", "--yes"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "the journal refused it (database or disk is full): free some space in" in out, out
    assert _files(cli_settings.library) == [placed] and _files(cli_settings.inbox) == []
    monkeypatch.setattr(Journal, "finish", real_finish)
    journal = Journal.for_state_dir(cli_settings.state_dir)
    lines = list(recover(journal))
    if marks == "refused too":
        assert lines == [f"the interrupted undo of {placed} had not begun; it stays sorted"]
    else:
        assert lines == []
    assert [move.destination for move in journal.done_moves()] == [placed]


@pytest.mark.parametrize("listed", [False, True], ids=["missing-in-mnt", "fstab-stand-in"])
@pytest.mark.parametrize(
    "command",
    [
        ["retrain"],
        ["review", "--no-browser", "--port", "0"],
        ["import-labels", "DRIVE"],
        ["train", "DRIVE", "--kind", "crops"],
    ],
    ids=lambda command: command[0],
)
def test_commands_that_read_the_library_or_a_dataset_refuse_its_drive_away(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    command: list[str],
    listed: bool,
) -> None:
    """The library (or a dataset) on a drive that is away: missing under /mnt/usb, or a stand-in on
    the disk below a mount point fstab lists. `retrain` trained on the labels with none of the files
    placed lately to judge the auto-sorted share (a model sorting fewer passed), `review` moved files
    into emotion folders made anew on the disk below, `import-labels` and `train` read nothing and
    said "nothing to import" or "no usable faces". Refused as `run` and `sort` refuse it: exit 1, one
    line, nothing made or changed on the disk below."""
    if listed:
        usb = tmp_path / "data" / "usb"
        usb.mkdir(parents=True)
        request.getfixturevalue("fstab").write_text(f"/dev/sdb1 {usb} exfat nofail 0 0\n")
    else:
        usb = request.getfixturevalue("drive_places")[2] / "usb"
        usb.mkdir()
    folder = usb / ("library" if command[0] in ("retrain", "review") else "faces")
    if listed:
        (folder / "happy").mkdir(parents=True)  # made on the disk below before: a stand-in
    if command[0] in ("retrain", "review"):
        monkeypatch.setenv("FACESORTD_LIBRARY", str(folder))
    from facesortd.review_page.server import ReviewServer

    def serve_forever(self: ReviewServer) -> None:
        raise KeyboardInterrupt  # served and stopped at once: the test needs no browser

    monkeypatch.setattr(ReviewServer, "serve_forever", serve_forever)
    left = sorted(usb.rglob("*"))
    models = cli_settings.state_dir / "models"
    said = " ".join(str(mounts.drive_not_mounted(folder)).split())
    capsys.readouterr()
    assert cli.main([str(folder) if arg == "DRIVE" else arg for arg in command]) == 1
    out, err = capsys.readouterr()
    assert (out, " ".join(err.split())) == ("", f"facesortd: error: {said}")
    assert sorted(usb.rglob("*")) == left and not models.exists()


def test_the_daemon_puts_off_its_retrain_while_the_library_drive_is_away(
    daemon_settings: Settings,
    drive_places: tuple[Path, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The library's drive pulled out under the daemon, a retrain due: it trained on the labels with
    none of the files placed lately to judge the auto-sorted share by. Put off, said once however
    many looks meet it, and tried again once the drive is back."""
    from facesortd import service as service_module
    from facesortd.learn import retrain

    usb = drive_places[2] / "usb"
    library = usb / "library"
    library.mkdir(parents=True)
    settings = daemon_settings.model_copy(update={"library": library})
    monkeypatch.setattr(
        service_module, "retrain_if_due", lambda *a, **kw: retrain.retrain_if_due(*a, **kw, force=True)
    )
    daemon = service_module.Service(settings, stub_pipeline)
    said: list[str] = []
    sink = logger.add(said.append, level="WARNING", format="{message}")
    try:
        shutil.rmtree(library)  # pulled out
        for _ in range(3):
            daemon._learn(review.Reviewer(settings, daemon.journal))
        away = " ".join(str(mounts.drive_not_mounted(library)).split())
        put_off = [" ".join(line.split()) for line in said if "retrain" in line]
        assert put_off == [f"retrain put off until the library is back: {away}"]
        assert daemon.journal.get_meta(retrain.RETRAIN_HELD_BACK) == ""
        assert list(usb.iterdir()) == []
        library.mkdir()  # back
        daemon._learn(review.Reviewer(settings, daemon.journal))
        assert "not enough labels" in daemon.journal.get_meta(retrain.RETRAIN_HELD_BACK)
    finally:
        logger.remove(sink)
        daemon.journal.close()


@pytest.mark.parametrize("listed", [False, True], ids=["missing-in-mnt", "fstab-stand-in"])
@pytest.mark.parametrize(
    "command",
    [
        ["model", "rollback"],
        ["model", "use", "default"],
        ["model"],
        ["train", "DATASET", "--kind", "crops"],
        ["eval", "DATASET", "--kind", "crops"],
    ],
    ids=" ".join,
)
def test_model_commands_make_no_state_folder_below_a_mount_point_whose_drive_is_away(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
    command: list[str],
    listed: bool,
) -> None:
    """`model use` and `rollback` made the state folder anew on the disk below /mnt/usb (its models
    folder and locks: exfat-fuse then refuses to mount the drive over it), and put a model in force
    there; `model` listed that stand-in's "no models yet"; `train` trained, then wrote its model there;
    `eval` measured the shipped model (or the stand-in's) as the model in force. Refused as `run` and
    `sort` refuse it, before any work, whether the state folder is missing under /mnt/usb or a stand-in
    on the disk below a mount point fstab lists."""
    if listed:
        usb = tmp_path / "data" / "usb"
        request.getfixturevalue("fstab").write_text(f"/dev/sdb1 {usb} exfat nofail 0 0\n")
        (usb / "state").mkdir(parents=True)  # made on the disk below before: a stand-in
    else:
        usb = request.getfixturevalue("drive_places")[2] / "usb"
        usb.mkdir()
    state = usb / "state"
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(state))
    said = " ".join(str(mounts.drive_not_mounted(state)).split())
    left = sorted(usb.rglob("*"))
    capsys.readouterr()
    assert cli.main([str(tmp_path) if arg == "DATASET" else arg for arg in command]) == 1
    out, err = capsys.readouterr()
    assert (out, " ".join(err.split())) == ("", f"facesortd: error: {said}")
    assert sorted(usb.rglob("*")) == left


def test_eval_of_the_model_the_config_pins_needs_no_state_folder(
    drive_places: tuple[Path, Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`eval` with `recognition.model` pinned in the config was refused while the state folder's
    drive was away, though that model comes from no state folder. Measured now; a model pinned in
    that state folder is still refused, as the model in force from its pointer is."""
    from conftest import write_crop_dataset

    from facesortd import model_store

    usb = drive_places[2] / "usb"
    usb.mkdir()
    state = usb / "state"
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(state))
    shipped = model_store.shipped_model()
    assert shipped is not None
    monkeypatch.setenv("FACESORTD_RECOGNITION__MODEL", str(shipped))
    crops = write_crop_dataset(tmp_path / "faces", per_class=2, seed=5)
    assert cli.main(["eval", str(crops), "--kind", "crops", "--json"]) == 0
    assert "balanced_accuracy" in capsys.readouterr().out and not state.exists()
    monkeypatch.setenv("FACESORTD_RECOGNITION__MODEL", str(state / "models" / "mine.fsm.npz"))
    said = " ".join(str(mounts.drive_not_mounted(state / "models")).split())
    assert cli.main(["eval", str(crops), "--kind", "crops"]) == 1
    out, err = capsys.readouterr()
    assert (out, " ".join(err.split())) == ("", f"facesortd: error: {said}")


def test_no_state_folder_is_made_below_a_mount_point_whose_drive_is_away(
    drive_places: tuple[Path, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each lock of the state folder (the move lock around every move, the retrain and models locks)
    made the folder where it was missing, its drive away or not: on the disk below /mnt/usb, hidden
    once the drive was back. Refused; and asked only of a folder missing, so a move (which opens its
    lock each time) reads neither fstab nor the mount table."""
    state = drive_places[2] / "usb" / "state"
    state.parent.mkdir()
    for lock in (move_lock, models_lock):
        with pytest.raises(mounts.DriveNotMounted, match="is where drives are mounted"), lock(state):
            pass
    assert list(state.parent.iterdir()) == []
    reads: list[str] = []
    for table in ("_mount_table", "_fstab_mount_points"):
        real = getattr(mounts, table)
        monkeypatch.setattr(mounts, table, lambda real=real, table=table: reads.append(table) or real())
    here = tmp_path / "state"
    with move_lock(here):  # made: asked once
        assert reads and here.is_dir()
    reads.clear()
    for _ in range(3):
        with move_lock(here):
            pass
    assert reads == []
