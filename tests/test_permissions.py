"""What an ordinary user's permissions refuse (checked by hand as a non-root user, sixth round): each
test is the minimal repro of a defect found then. The suite runs as root, whom permissions never
refuse, so the refusals are simulated where the kernel would make them."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from loguru import logger
from review_setup import quarantine, review_settings
from synthetic import BrightBlobDetector, draw_face, screenshot_png, stub_pipeline
from waiting import running_daemon, wait_until

from facesortd import cli, doctor, durable, service, state, status, watch
from facesortd import content as content_module
from facesortd import emotion as emotion_module
from facesortd.config import Settings, load_settings
from facesortd.content import content_id
from facesortd.decide import Decision, Pipeline
from facesortd.journal import Journal, ModelId
from facesortd.learn import datasets, review
from facesortd.library import Library
from facesortd.placement import end_killed_moves, journaled_apply
from facesortd.recovery import recover
from facesortd.review_page import decisions as decisions_module
from facesortd.review_page.decisions import DecisionError, Decisions
from facesortd.review_page.queue import Contents, scan
from facesortd.review_page.server import ReviewServer
from facesortd.state import DAEMON_LOCK, JOURNAL_FILE, MOVE_LOCK, STATUS_FILE, DaemonLock


def _denied(path: Path) -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied", str(path))


def _as_configured(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """`facesortd` commands run by the test use these folders."""
    for key in ("inbox", "library", "state_dir"):
        monkeypatch.setenv(f"FACESORTD_{key.upper()}", str(getattr(settings, key)))


@pytest.fixture
def unlistable(monkeypatch: pytest.MonkeyPatch) -> set[Path]:
    """Folders this user may not list, as a folder made chmod 300 (or another user's 700) refuses."""
    locked: set[Path] = set()
    real_iterdir, real_scandir = Path.iterdir, os.scandir

    def iterdir(folder: Path):  # type: ignore[no-untyped-def]
        if folder in locked:
            raise _denied(folder)
        return real_iterdir(folder)

    def scandir(folder):  # type: ignore[no-untyped-def]
        if Path(folder) in locked:
            raise _denied(folder)
        return real_scandir(folder)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    monkeypatch.setattr(os, "scandir", scandir)
    return locked


@pytest.fixture
def unreadable(monkeypatch: pytest.MonkeyPatch) -> set[Path]:
    """Files this user may not read (root's mode-600 files): hashing them is refused, as the
    kernel refuses opening them; moving them is not."""
    refused: set[Path] = set()
    real_hash = content_module.file_hash

    def file_hash(path: Path) -> str:
        if Path(path) in refused:
            raise _denied(path)
        return real_hash(path)

    monkeypatch.setattr(content_module, "file_hash", file_hash)
    for module in (review, decisions_module):  # where the label scan and the page once hashed
        monkeypatch.setattr(module, "file_hash", file_hash, raising=False)
    return refused


def test_a_file_we_may_not_read_in_the_library_does_not_cost_the_labels_given_beside_it(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, unreadable: set[Path]
) -> None:
    """A root-owned mode-600 file dropped into the inbox is sorted to unreadable/ (it can be moved,
    not read). The label scan then hashed it, failed, and with it every label of that scan."""
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    lib = daemon_settings.library
    secret = daemon_settings.inbox / "secret.png"
    unreadable.update({secret, lib / "_quarantine" / "unreadable" / "secret.png"})
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"not ours to read")
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    unreadable = Decision.quarantine("unreadable", detail="cannot read file: Permission denied")
    journaled_apply(journal, Library(lib), secret, content_id(secret), unreadable, ModelId("m"))
    (lib / "happy").mkdir(parents=True)
    (lib / "happy" / "b.png").write_bytes(screenshot_png(7))

    assert review.Reviewer(daemon_settings, journal).scan() == 1  # b.png's label, nothing else
    assert [label for _h, label, *_ in journal.labels()] == ["happy"]
    journal.close()


def test_a_folder_we_may_not_list_holds_back_only_its_own_labels(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, unlistable: set[Path]
) -> None:
    """An emotion folder made unreadable (chmod 300) failed every scan: no label anywhere counted."""
    warnings: list[str] = []
    logger.add(warnings.append, level="WARNING", format="{message}")
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    lib = daemon_settings.library
    for emotion, seed in (("happy", 1), ("sad", 2)):
        (lib / emotion).mkdir(parents=True)
        (lib / emotion / f"{emotion}.png").write_bytes(screenshot_png(seed))
    unlistable.add(lib / "happy")
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    reviewer = review.Reviewer(daemon_settings, journal)
    assert reviewer.scan() == 1  # sad's label
    assert reviewer.scan() == 0
    assert [w.rstrip() for w in warnings] == [
        f"cannot list {lib / 'happy'} (Permission denied): make it readable (chmod u+rwx '{lib / 'happy'}'); "
        "labels given there are not seen until then"
    ]
    unlistable.clear()  # the person lets facesortd in again: the label waiting there counts now
    assert reviewer.scan() == 1
    assert sorted(label for _h, label, *_ in journal.labels()) == ["happy", "sad"]
    journal.close()


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> set[Path]:
    """Folders that refuse new files as a read-only folder (chmod 555) refuses an ordinary user."""
    locked: set[Path] = set()
    real_link, real_access = durable.os.link, durable.os.access

    def link(src, dest, **kw):  # type: ignore[no-untyped-def]
        into = kw.get("dst_dir_fd")  # a quarantined file is linked into its folder as opened
        if (Path(os.readlink(f"/proc/self/fd/{into}")) if into is not None else Path(dest).parent) in locked:
            raise OSError(errno.EACCES, "Permission denied", str(src), None, str(dest))
        return real_link(src, dest, **kw)

    monkeypatch.setattr(durable.os, "link", link)
    monkeypatch.setattr(durable.os, "access", lambda p, mode: Path(p) not in locked and real_access(p, mode))
    return locked


def _sorted_from(settings: Settings, journal: Journal, folder: Path, name: str, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / name
    src.write_bytes(screenshot_png(seed))
    return journaled_apply(
        journal, Library(settings.library), src, content_id(src), Decision.quarantine("no-face"), ModelId("m")
    )


def test_undo_into_a_folder_that_refuses_says_so_and_undoes_the_rest(
    daemon_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    refusing: set[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`undo 2` when one file came from a folder made read-only since: a traceback, and the other
    file was not put back either."""
    _as_configured(monkeypatch, daemon_settings)
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    a = _sorted_from(daemon_settings, journal, daemon_settings.inbox, "a.png", 1)
    b = _sorted_from(daemon_settings, journal, tmp_path / "screens", "b.png", 2)
    journal.close()
    refusing.add(tmp_path / "screens")

    assert cli.main(["undo", "2"]) == 1
    out = capsys.readouterr().out
    assert f"{b}: cannot write into {tmp_path / 'screens'} (Permission denied)" in out
    assert (daemon_settings.inbox / "a.png").is_file() and not a.exists()
    assert b.is_file() and not (tmp_path / "screens" / "b.png").exists()
    refusing.clear()  # fixed: the same undo now puts it back
    assert cli.main(["undo", str(b)]) == 0
    assert (tmp_path / "screens" / "b.png").is_file() and not b.exists()


def test_the_review_page_says_which_folder_refused_a_label_and_keeps_its_undo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusing: set[Path]
) -> None:
    """A label into a read-only emotion folder was an "internal error" (500); its undo into a
    read-only quarantine folder was too, and the page had forgotten it: "nothing to undo"."""
    settings = review_settings(tmp_path, monkeypatch)
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    happy, unsure = settings.library / "happy", settings.library / "_quarantine" / "unsure"
    journal = Journal.for_state_dir(settings.state_dir)
    decisions = Decisions(settings, journal, Contents())
    [item] = scan(settings.library, {})
    refusing.add(happy)
    with pytest.raises(DecisionError, match=rf"a.png stays where it is: cannot write into {happy} \("):
        decisions.label(item, "happy")
    assert files["a.png"].is_file()
    refusing.clear()
    assert decisions.label(item, "happy").path == happy / "a.png"
    refusing.add(unsure)
    with pytest.raises(DecisionError, match=rf"cannot write into {unsure} .*press u again once fixed"):
        decisions.undo()
    assert (happy / "a.png").is_file()
    refusing.clear()
    assert decisions.undo()[1] == files["a.png"] and files["a.png"].is_file()
    journal.close()


def test_status_names_folders_it_may_not_list_instead_of_a_traceback(
    daemon_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unlistable: set[Path],
) -> None:
    """A quarantine folder made unreadable: `status` died with a traceback. An unreadable inbox:
    `status` said nothing of it, while every file in it waited unseen."""
    _as_configured(monkeypatch, daemon_settings)
    no_face = daemon_settings.library / "_quarantine" / "no-face"
    no_face.mkdir(parents=True)
    (no_face / "a.png").write_bytes(screenshot_png(1))
    daemon_settings.inbox.mkdir()
    unlistable.update({no_face, daemon_settings.inbox})
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    for folder in unlistable:
        assert (
            f"PROBLEM: cannot list {folder} (Permission denied): make it readable (chmod u+rwx '{folder}')"
            in out
        )


def test_a_label_that_cannot_be_recorded_yet_is_said_once_until_the_file_changes(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state folder's faces/ not writable: the label is tried again at every scan (every 30 s),
    and the same warning filled the log at each one."""
    warnings: list[str] = []
    logger.add(warnings.append, level="WARNING", format="{message}")
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    shot = daemon_settings.library / "happy" / "a.png"
    shot.parent.mkdir(parents=True)
    shot.write_bytes(screenshot_png(1))
    real_keep_face = review.keep_face
    refused = True

    def keep_face(settings: Settings, digest: str, *args: object) -> Path:
        if refused:
            raise _denied(settings.state_dir / "faces" / f"{digest}.png")
        return real_keep_face(settings, digest, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(review, "keep_face", keep_face)
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    reviewer = review.Reviewer(daemon_settings, journal)
    for _ in range(3):
        assert reviewer.scan() == 0
    assert len(warnings) == 1 and warnings[0].startswith(f"{shot}: cannot record your label yet")
    os.utime(shot, ns=(1, 1))  # the file changed: said again
    assert reviewer.scan() == 0 and len(warnings) == 2
    refused = False
    assert reviewer.scan() == 1 and len(warnings) == 2
    assert [label for _h, label, *_ in journal.labels()] == ["happy"]
    journal.close()


def test_status_of_a_daemon_that_cannot_write_its_state_folder_is_not_not_running(
    daemon_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    """The state folder made read-only under a running daemon: its status file went stale and
    `status` said "not running (start it ...)", sending the person to start a second daemon."""
    _as_configured(monkeypatch, daemon_settings)
    state_dir = daemon_settings.state_dir
    state_dir.mkdir()
    stale = {"pid": os.getpid(), "started": time.time() - 600, "updated": time.time() - 120, "queue": 0}
    (state_dir / STATUS_FILE).write_text(json.dumps(stale | {"model": "m"}))
    lock = DaemonLock(state_dir).acquire()  # this process is the daemon
    request.addfinalizer(lock.release)
    real_access = os.access
    monkeypatch.setattr(status.os, "access", lambda p, mode: Path(p) != state_dir and real_access(p, mode))
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"daemon: running (pid {os.getpid()}" in out
    problem = (
        f"PROBLEM: the daemon (pid {os.getpid()}) runs, but last wrote its status 12[01] s ago: it "
        f"cannot write into {state_dir}: make it writable (chmod u+rwx '{state_dir}')"
    )
    assert re.search(re.escape(problem).replace(re.escape("12[01]"), "12[01]"), out), out


def test_a_stale_status_file_naming_another_facesortd_is_not_a_running_daemon(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon killed -9 (or the state folder copied from another machine): its old status file's
    pid named another facesortd process now, and `status` called it this folder's daemon, "stuck"."""
    _as_configured(monkeypatch, daemon_settings)
    state_dir = daemon_settings.state_dir
    DaemonLock(state_dir).acquire().release()  # a daemon ran here once
    code = "import sys; print('up', flush=True); sys.stdin.read()"
    other = subprocess.Popen(
        [sys.executable, "-c", code, "facesortd", "run"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert other.stdout is not None and other.stdout.readline() == b"up\n"
        stale = {"pid": other.pid, "started": 0, "updated": time.time() - 120, "queue": 0, "model": "m"}
        (state_dir / STATUS_FILE).write_text(json.dumps(stale))
        assert cli.main(["status"]) == 0
        out = capsys.readouterr().out
    finally:
        other.communicate(b"")
    assert "daemon: not running" in out and "PROBLEM" not in out


def test_a_library_that_refuses_its_emotion_folders_does_not_stop_the_daemon_starting(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only library missing one emotion folder: `run` died at start (exit 1, which systemd
    restarts in a loop) instead of sorting what it can and naming the folder."""
    lib = daemon_settings.library
    real_mkdir = Path.mkdir

    def mkdir(folder: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if folder == lib / "sad":
            raise _denied(folder)
        return real_mkdir(folder, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    warnings: list[str] = []
    logger.add(warnings.append, level="WARNING", format="{message}")

    def pipeline(settings: Settings) -> Pipeline:
        made = stub_pipeline(settings)
        made.model = SimpleNamespace(labels=["happy", "sad"])  # only its classes are asked for
        return made

    with running_daemon(daemon_settings, pipeline):
        (daemon_settings.inbox / "noise.png").write_bytes(screenshot_png(4, face=False))
        wait_until(lambda: (lib / "_quarantine" / "no-face" / "noise.png").is_file())
    assert (lib / "happy").is_dir()
    assert any(
        w.startswith(f"cannot create the emotion folders in {lib} (Permission denied)") for w in warnings
    )


def test_sort_of_a_folder_it_may_not_list_is_one_line_with_the_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unlistable: set[Path],
) -> None:
    """`facesortd sort FOLDER` on a folder the user may not read (or a file in one they may not
    enter) ended in a traceback."""
    folder = tmp_path / "screens"
    folder.mkdir()
    unlistable.add(folder)
    real_stat = Path.stat

    def stat(path: Path, **kwargs):  # type: ignore[no-untyped-def]
        if path.parent == folder:
            raise _denied(path)
        return real_stat(path, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    for named in (folder, folder / "a.png"):
        assert cli.main(["sort", "--library", str(tmp_path / "lib"), str(named)]) == 2
        assert capsys.readouterr().err == (
            f"facesortd: error: {named}: cannot get at it (Permission denied): give yourself access to "
            "it and the folders it is in (chmod u+rx)\n"
        )


def test_doctor_names_a_library_folder_that_refuses_files(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quarantine folder made read-only held every file bound for it in the inbox, and `doctor`
    said "all good": it looked at the library's root only."""
    _as_configured(monkeypatch, daemon_settings)
    no_face = daemon_settings.library / "_quarantine" / "no-face"
    no_face.mkdir(parents=True)
    (daemon_settings.library / "happy").mkdir()
    real_access = os.access
    monkeypatch.setattr(doctor.os, "access", lambda p, mode: Path(p) != no_face and real_access(p, mode))
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert (
        f"FIX   library folder {no_face} is not writable by this user: files bound for it wait in the "
        f"inbox; fix its permissions (chmod u+rwx '{no_face}')"
    ) in out
    assert "happy" not in out and "1 problem(s) found" in out


@pytest.mark.parametrize("locked", ["library", "_quarantine"])
def test_doctor_names_a_library_folder_it_may_not_list(
    daemon_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unlistable: set[Path],
    locked: str,
) -> None:
    """A library or quarantine folder it may not list (chmod 300, an ACL): `doctor` said "all good",
    its own listing swallowing the refusal, while `status` and the review page left it out."""
    _as_configured(monkeypatch, daemon_settings)
    library = daemon_settings.library
    (library / "_quarantine" / "no-face").mkdir(parents=True)
    folder = library if locked == "library" else library / "_quarantine"
    unlistable.add(folder)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert (
        f"FIX   cannot list {folder} (Permission denied): make it readable (chmod u+rwx '{folder}'); "
        "status, the review page and the label scan leave out what is in it until then"
    ) in out.splitlines()
    assert "1 problem(s) found" in out


def test_doctor_says_once_that_the_library_is_not_usable(
    daemon_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    unlistable: set[Path],
) -> None:
    """A library this user may not enter at all is one problem, not also each listing it refuses."""
    _as_configured(monkeypatch, daemon_settings)
    library = daemon_settings.library
    library.mkdir(parents=True)
    unlistable.add(library)
    real_access = os.access
    monkeypatch.setattr(doctor.os, "access", lambda p, mode: Path(p) != library and real_access(p, mode))
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"FIX   library {library} is not writable by this user: fix its permissions (chmod u+rwx)" in out
    assert "cannot list" not in out and "1 problem(s) found" in out


@pytest.mark.parametrize("refused", [JOURNAL_FILE, DAEMON_LOCK, MOVE_LOCK])
def test_a_state_file_left_by_sudo_is_one_line_with_the_fix_not_a_traceback(
    daemon_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    refused: str,
) -> None:
    """`sudo facesortd sort` once leaves root-owned files in the state folder: every command then
    died with a PermissionError traceback (`run` with exit 1, restarted by systemd in a loop)."""
    _as_configured(monkeypatch, daemon_settings)
    Journal.for_state_dir(daemon_settings.state_dir).close()  # what the earlier runs left
    real_open = state.os.open

    def open_(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(path).name == refused:
            raise _denied(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(state.os, "open", open_)
    state_dir = daemon_settings.state_dir
    commands = [["run"], ["status"]] if refused == JOURNAL_FILE else [["run"]]
    for command in commands:
        assert cli.main(command) == 2
        assert capsys.readouterr().err == (
            f"facesortd: error: cannot use {state_dir / refused} (Permission denied): the state folder and "
            f"its files must be yours and writable (ls -l '{state_dir}'; made by `sudo facesortd`? sudo "
            f"chown -R \"$USER\" '{state_dir}')\n"
        )


def test_a_status_file_the_daemon_cannot_write_is_said_once_with_the_fix(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state folder made read-only under the daemon: the warning named no fix, and `status`
    then called the daemon not running."""
    warnings: list[str] = []
    logger.add(warnings.append, level="WARNING", format="{message}")
    tries: list[Path] = []

    def refused(path: Path):  # type: ignore[no-untyped-def]
        tries.append(path)
        raise _denied(path.parent / ".facesortd-tmp-x")

    with running_daemon(daemon_settings, stub_pipeline):
        monkeypatch.setattr(service, "atomic_writer", refused)
        wait_until(lambda: len(tries) >= 3)  # the daemon rewrites it every second
    state_dir = daemon_settings.state_dir
    assert [w.rstrip() for w in warnings if "status file" in w] == [
        f"cannot write the status file (Permission denied): `facesortd status` cannot follow this "
        f"daemon until {state_dir} takes files again (chmod u+rwx '{state_dir}')"
    ]


def test_a_sub_folder_of_the_inbox_it_may_not_list_is_named_when_recursive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`watch.recursive = true` and a sub-folder the user may not read: its files waited for ever and
    neither the daemon nor `status` said a word."""
    settings = load_settings(inbox=tmp_path / "in", watch={"recursive": True})
    inbox = settings.inbox
    for folder, name in (("open", "a.png"), ("locked", "b.png")):
        (inbox / folder).mkdir(parents=True)
        (inbox / folder / name).write_bytes(screenshot_png(len(folder)))
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path) == inbox / "locked":
            raise _denied(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    warnings: list[str] = []
    logger.add(warnings.append, level="WARNING", format="{message}")
    assert list(watch.scan(inbox, settings.watch)) == [inbox / "open" / "a.png"]
    assert [w.rstrip() for w in warnings] == [
        f"cannot list {inbox / 'locked'} (Permission denied): make it readable "
        f"(chmod u+rwx '{inbox / 'locked'}'); the files in it are not sorted until then"
    ]


def test_a_state_folder_its_owner_made_read_only_stays_read_only(tmp_path: Path) -> None:
    """Closing the state folder to others (0700) opened a folder its owner had made read-only (555)
    back up to them: facesortd undid the person's chmod without a word."""
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(0o555)
    state.ensure_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o500
    folder.chmod(0o755)
    state.ensure_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_recovery_is_not_stopped_by_a_file_it_may_not_read(
    daemon_settings: Settings, unreadable: set[Path]
) -> None:
    """A move cut short (kill -9) whose destination folder holds a file of the same name facesortd
    may not read (root's mode-600 file, sorted to unreadable/ before): recovery hashed it and failed,
    and with it every start of `run`, which systemd restarted in a loop."""
    lib = daemon_settings.library
    theirs = lib / "_quarantine" / "unreadable" / "shot.png"
    unreadable.add(theirs)
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"not ours to read")
    mine = daemon_settings.inbox / "shot.png"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"not an image either")
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    journal.plan(content_id(mine), mine, theirs, Decision.quarantine("unreadable"), "m")  # then: kill -9

    assert list(recover(journal)) == [
        f"rolled back the interrupted move of {mine} (it stays in {mine.parent})"
    ]
    assert mine.read_bytes() == b"not an image either" and theirs.read_bytes() == b"not ours to read"
    journal.close()


def test_a_recovery_that_keeps_failing_is_said_once_until_it_changes_or_succeeds(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recovery runs before every move (`placement.end_killed_moves`): an extra copy a killed move
    left on a library made read-only since, which it cannot remove, logged the same error once per
    file sorted."""
    mine = daemon_settings.inbox / "shot.png"
    extra = daemon_settings.library / "happy" / "shot.png"
    for path in (mine, extra):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"the same bytes")
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    journal.plan(content_id(mine), mine, extra, Decision.quarantine("unreadable"), "m")  # then: kill -9
    refusal = [errno.EROFS]
    real_unlink = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path == extra and refusal:
            raise OSError(refusal[0], os.strerror(refusal[0]), str(path))
        real_unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    said: list[str] = []
    logger.add(said.append, level="INFO", format="{level} {message}")
    for _ in range(2):
        end_killed_moves(journal)
    refusal[0] = errno.EIO
    end_killed_moves(journal)
    refusal.clear()
    end_killed_moves(journal)
    failed = (
        f"ERROR cannot bring the journal up to date yet ([Errno {{}}] {{}}: '{extra}'); trying again later"
    )
    assert [line.rstrip() for line in said] == [
        failed.format(errno.EROFS, os.strerror(errno.EROFS)),
        failed.format(errno.EIO, os.strerror(errno.EIO)),
        f"WARNING rolled back the interrupted move of {mine} (it stays in {mine.parent})",
        "INFO the journal is up to date again",
    ]
    assert mine.is_file() and not extra.exists()
    journal.close()


def test_the_review_page_labels_a_file_it_may_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unreadable: set[Path]
) -> None:
    """Root's mode-600 file, sorted to unreadable/: a label on the page was an "internal error"
    (the page hashed the file), though a file manager moves it, and the sorter had moved it there."""
    settings = review_settings(tmp_path, monkeypatch)
    files = quarantine(settings, "unreadable", [("theirs.png", "happy")])
    unreadable.add(files["theirs.png"])
    journal = Journal.for_state_dir(settings.state_dir)
    [item] = scan(settings.library, {})
    done = Decisions(settings, journal, Contents()).label(item, "happy")
    assert done.path == settings.library / "happy" / "theirs.png" and done.path.is_file()
    assert not files["theirs.png"].exists()
    assert [label for _h, label, *_ in journal.labels()] == ["happy"]
    journal.close()


def test_a_face_crop_it_may_not_keep_leaves_the_label_for_the_next_look(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`<state_dir>/faces/` left to root by a `sudo facesortd retrain`: keeping a label's face
    failed the whole scan, and the labels met in it were marked seen and never recorded."""
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    real_keep = review.keep_face
    refusing = [True]

    def keep_face(settings: Settings, digest: str, gray, box):  # type: ignore[no-untyped-def]
        if refusing[0]:
            raise _denied(settings.state_dir / "faces" / f"{digest}.png")
        return real_keep(settings, digest, gray, box)

    monkeypatch.setattr(review, "keep_face", keep_face)
    lib = daemon_settings.library
    for emotion, seed in (("happy", 1), ("sad", 2)):
        (lib / emotion).mkdir(parents=True)
        (lib / emotion / f"{emotion}.png").write_bytes(screenshot_png(seed))
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    reviewer = review.Reviewer(daemon_settings, journal)
    assert reviewer.scan() == 0 and journal.labels() == []
    refusing[0] = False  # the person gave the folder back
    assert reviewer.scan() == 2
    assert sorted(label for _h, label, *_ in journal.labels()) == ["happy", "sad"]
    journal.close()


def test_a_class_folder_it_may_not_read_is_named_not_left_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train`/`import-labels` on ~/labelled with sad/ unreadable: the class was left out without a
    word (a model of the other emotions only)."""
    for emotion in ("happy", "sad"):
        (tmp_path / emotion).mkdir()
        (tmp_path / emotion / "a.png").write_bytes(screenshot_png(1))
    real_access = os.access
    monkeypatch.setattr(datasets.os, "access", lambda p, mode: Path(p).name != "sad" and real_access(p, mode))
    with pytest.raises(datasets.DatasetError, match=rf"cannot read {tmp_path / 'sad'} \(permission denied\)"):
        datasets.labelled_images(tmp_path)


def test_the_review_page_opens_with_a_quarantine_folder_it_may_not_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_quarantine/no-face/` made unreadable: `facesortd review` refused to start with "cannot
    listen on 127.0.0.1:0 (Permission denied): pass another --port", which was not the problem.
    Then the page said so again at every listing (every request); now once per folder, and again
    only if the folder could be listed meanwhile and then not."""
    settings = review_settings(tmp_path, monkeypatch)
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    quarantine(settings, "no-face", [("b.png", "sad")])
    locked = settings.library / "_quarantine" / "no-face"
    denied = True
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if denied and Path(path) == locked:
            raise _denied(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    warnings: list[str] = []
    logger.add(warnings.append, level="WARNING", format="{message}")
    server = ReviewServer(settings, 0)
    try:
        listed = [server.app.listing("", 0, 10) for _ in range(3)]
        said = len(warnings)
        denied = False
        listed.append(server.app.listing("", 0, 10))
        denied = True
        listed.append(server.app.listing("", 0, 10))
    finally:
        server.close()
    assert [i["name"] for i in listed[0]["items"]] == [files["a.png"].name]
    assert [page["total"] for page in listed] == [1, 1, 1, 2, 1]
    assert warnings[0].rstrip() == (
        f"review page: cannot list {locked} (Permission denied): make it readable (chmod u+rwx '{locked}'); "
        "its files are not shown until then"
    )
    assert said == 1 and warnings == [warnings[0]] * 2


def test_a_model_file_it_may_not_read_is_not_called_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`model use FILE` with a file the user may not read: "corrupt or not a facesortd model"."""
    path = tmp_path / "m.fsm.npz"
    path.write_bytes(b"a model, in fact")

    def load(*_a, **_k):  # type: ignore[no-untyped-def]
        raise _denied(path)

    monkeypatch.setattr(emotion_module.np, "load", load)
    with pytest.raises(emotion_module.ModelError) as caught:
        emotion_module.EmotionModel.load(path)
    assert str(caught.value) == f"cannot read the model file {path} (permission denied): chmod u+r '{path}'"


@contextlib.contextmanager
def _sorting_on_with_a_retrain_problem(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    looked_through: str,
    problem: str,
) -> Iterator[None]:
    """The daemon, whose retrain the person's folders refuse: a file dropped is sorted all the same,
    the learning looks come again (counted through ``service.<looked_through>``), `status` shows
    ``problem`` and the log has said it once. The block runs with the daemon still up."""
    looks: list[object] = []
    real = getattr(service, looked_through)
    monkeypatch.setattr(service, looked_through, lambda *a, **kw: looks.append(a) or real(*a, **kw))
    lines: list[str] = []
    logger.add(lines.append, level="ERROR", format="{message}")
    with running_daemon(settings, stub_pipeline):
        (settings.inbox / "a.png").write_bytes(screenshot_png(1))
        wait_until(lambda: not (settings.inbox / "a.png").exists())  # sorting goes on
        wait_until(lambda: len(looks) >= 3)
        assert cli.main(["status"]) == 0
        assert f"PROBLEM: {problem}" in capsys.readouterr().out.splitlines()
        assert [line.rstrip() for line in lines if "cannot retrain" in line] == [problem]
        assert not [line for line in lines if line.startswith("learning from your labels failed")]
        yield


def _labels_for_a_retrain(settings: Settings, seed: int) -> None:
    """Two labels each of happy and sad faces, recorded as a person's."""
    from facesortd.learn import kept_faces

    journal = Journal.for_state_dir(settings.state_dir)
    rng = np.random.default_rng(3 + seed)
    for emotion in ("happy", "sad"):
        for k in range(2):
            digest, box = f"{emotion}{k}-{seed}", (50, 50, 100, 100)
            img = np.full((200, 200), 60, np.uint8)
            img[50:150, 50:150] = draw_face(emotion, 100, rng)
            face = kept_faces.keep_face(settings, digest, img, box)
            journal.add_label(digest, emotion, "human", (face, box), f"shot{k}", Path(f"{digest}.png"))
    journal.close()


def _quick_retrains(daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The configured settings of a daemon that looks often and retrains at each new label, from two
    per class and from labels alone (no shipped model to start from: quick)."""
    from facesortd import model_store

    monkeypatch.setattr(model_store, "shipped_model", lambda: None)
    settings = daemon_settings.model_copy(
        update={
            "learning": daemon_settings.learning.model_copy(
                update={"review_scan_s": 0.1, "retrain_after_labels": 1, "min_per_class": 2}
            )
        }
    )
    _as_configured(monkeypatch, settings)
    return settings


def test_a_retrain_with_no_room_for_its_model_is_not_trained_at_each_look(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full state disk refused a retrained model only once it was trained: the daemon trained it
    again at every look (every 30 s) and logged a traceback each time. Now the room is asked for
    first, as the permission to write there is: said once, named by `status`, nothing trained."""
    from facesortd import model_store
    from facesortd.learn import retrain

    settings = _quick_retrains(daemon_settings, monkeypatch)
    _labels_for_a_retrain(settings, 0)
    journal = Journal.for_state_dir(settings.state_dir)
    try:  # a model of those labels in force: how much room a new one needs
        made = retrain.retrain_if_due(settings, journal, review.user_labels(journal), force=True)
    finally:
        journal.close()
    assert made is not None and made.adopted
    _labels_for_a_retrain(settings, 1)  # new labels: a retrain is due
    models = model_store.models_dir(settings)
    full = True
    real_usage, real_open = shutil.disk_usage, os.open
    monkeypatch.setattr(
        shutil, "disk_usage", lambda p: real_usage(p)._replace(free=1000) if full else real_usage(p)
    )

    def open_(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        # An empty file still fits (so does the writable check's); a model's bytes do not. Reads go on.
        writes = flags & (os.O_WRONLY | os.O_RDWR) and flags & os.O_TMPFILE != os.O_TMPFILE
        if full and Path(path).parent == models and writes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    trained: list[object] = []
    real_retrain = retrain.retrain
    monkeypatch.setattr(retrain, "retrain", lambda *a, **kw: trained.append(a) or real_retrain(*a, **kw))
    needed = 2 * made.path.stat().st_size / 1e6
    problem = (
        f"cannot retrain: no room for a new model in {models} (No space left on device): it needs about "
        f"{needed:.0f} MB, 0 MB are free: free some space on that disk; sorting goes on with the model "
        "in force"
    )
    with _sorting_on_with_a_retrain_problem(settings, monkeypatch, capsys, "retrain_if_due", problem):
        assert trained == []
        full = False  # the person made room: the next look retrains, and status says no more
        wait_until(lambda: trained)
        wait_until(lambda: not json.loads((settings.state_dir / "status.json").read_text())["problems"])


def test_a_retrain_that_cannot_store_its_model_leaves_the_daemon_sorting_and_status_names_it(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state folder's models/ made read-only (chmod 555): a due retrain trained for minutes, then
    died with a traceback at its end, was started over at every look (every 30 s), and `status`
    said nothing of it. Now nothing is trained that could not be kept, the daemon sorts on with
    the model in force, says it once, and `status` names it with the fix until it is fixed."""
    from facesortd import model_store
    from facesortd.learn import retrain

    settings = _quick_retrains(daemon_settings, monkeypatch)
    models = model_store.models_dir(settings)
    models.mkdir(parents=True)
    _labels_for_a_retrain(settings, 0)
    real_open = os.open
    read_only = True

    def open_(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        # What the kernel answers a user who may not write into models/ (root: simulated).
        if read_only and (Path(path).parent == models or (Path(path) == models and flags & os.O_TMPFILE)):
            raise _denied(path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    trained: list[object] = []
    real_retrain = retrain.retrain
    monkeypatch.setattr(retrain, "retrain", lambda *a, **kw: trained.append(a) or real_retrain(*a, **kw))
    problem = (
        f"cannot retrain: cannot write into {models} (Permission denied): facesortd must be able to "
        f"write there (chmod u+rwx '{models}'); sorting goes on with the model in force"
    )
    with _sorting_on_with_a_retrain_problem(settings, monkeypatch, capsys, "retrain_if_due", problem):
        assert trained == [] and model_store.model_in_force(settings) is None
        read_only = False  # the person fixed it: the next look retrains, and status says no more
        wait_until(lambda: trained)
        wait_until(lambda: not json.loads((settings.state_dir / "status.json").read_text())["problems"])
    read_only = True
    assert cli.main(["retrain"]) == 2  # one line with the fix, no traceback
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"facesortd: error: cannot write into {models} (Permission denied): facesortd must be able to "
        f"write there (chmod u+rwx '{models}')"
    )


def test_learning_that_keeps_failing_is_said_once_and_named_by_status(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failure of ours that stays (a damaged model file, say) logged a traceback and added a row
    to the journal's errors at every look (every 30 s), so `status`'s last errors held nothing else."""
    settings = daemon_settings.model_copy(
        update={"learning": daemon_settings.learning.model_copy(update={"review_scan_s": 0.1})}
    )
    _as_configured(monkeypatch, settings)
    looks: list[object] = []

    def failing(*args: object, **kwargs: object) -> None:
        looks.append(args)
        raise ValueError("the model file is damaged")

    monkeypatch.setattr(service, "retrain_if_due", failing)
    lines: list[str] = []
    logger.add(lines.append, level="ERROR", format="{message}")
    with running_daemon(settings, stub_pipeline):
        wait_until(lambda: len(looks) >= 3)
        assert cli.main(["status"]) == 0
    problem = (
        "learning from your labels failed: the model file is damaged; sorting goes on with the model in force"
    )
    out = capsys.readouterr().out
    assert len([line for line in lines if line.startswith(problem)]) == 1  # with its traceback
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        assert [m for _at, _p, m in journal.last_errors(10)] == ["learning failed: the model file is damaged"]
    finally:
        journal.close()
    assert f"PROBLEM: {problem}" in out.splitlines()


def test_a_retrain_lock_left_by_sudo_is_a_problem_in_status_not_a_traceback_at_each_look(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sudo facesortd retrain` once leaves a root-owned retrain.lock: every look (every 30 s) then
    logged a traceback, and `status` said nothing. Now it is said once, `status` names it with the
    fix, and the daemon sorts on."""
    settings = daemon_settings.model_copy(
        update={"learning": daemon_settings.learning.model_copy(update={"review_scan_s": 0.1})}
    )
    _as_configured(monkeypatch, settings)
    lock = settings.state_dir / state.RETRAIN_LOCK
    real_open = state.os.open

    def open_(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(path) == lock:
            raise _denied(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(state.os, "open", open_)
    state_dir = settings.state_dir
    problem = (
        f"cannot retrain: cannot use {lock} (Permission denied): the state folder and its files must be "
        f"yours and writable (ls -l '{state_dir}'; made by `sudo facesortd`? sudo chown -R \"$USER\" "
        f"'{state_dir}'); sorting goes on with the model in force"
    )
    with _sorting_on_with_a_retrain_problem(settings, monkeypatch, capsys, "retrain_lock", problem):
        pass
