"""The live sweep: what a hostile environment does to a daemon that has been running for a while
(its state folder deleted, its journal swapped, names and paths at the kernel's limits, signals).
Each test here failed on the code before its fix."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger
from review_setup import quarantine, review_settings, serving
from synthetic import screenshot_png, stub_pipeline
from test_review_page import Client
from waiting import HUNG_S, log_lines, running_daemon, wait_until

from facesortd import durable
from facesortd.config import Settings
from facesortd.durable import move_no_replace
from facesortd.file_names import PATH_MAX, numbered_names
from facesortd.journal import Journal
from facesortd.library import Library
from facesortd.model_store import shipped_model
from facesortd.refusals import Refused
from facesortd.service import Service
from facesortd.sorter import Sorter
from facesortd.state import move_lock, move_lock_if_free


@pytest.fixture
def log() -> Iterator[list[str]]:
    """Every log line's message, from WARNING up."""
    with log_lines("WARNING") as lines:
        yield lines


class Daemon:
    """`facesortd run` in a thread, whose exit code the test reads (running_daemon hides it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service = Service(settings, stub_pipeline)
        self.code: int | None = None
        settings.inbox.mkdir(parents=True, exist_ok=True)
        self.thread = threading.Thread(target=self._run)
        self.thread.start()
        wait_until(lambda: (settings.state_dir / "status.json").exists())

    def _run(self) -> None:
        self.code = self.service.run()

    def stop(self) -> int | None:
        self.service.stop()
        self.thread.join(timeout=HUNG_S)
        assert not self.thread.is_alive()
        return self.code


def _sorted(settings: Settings, name: str) -> None:
    (settings.inbox / name).write_bytes(screenshot_png(len(name)))
    wait_until(lambda: not (settings.inbox / name).exists())


@pytest.mark.parametrize("how", ["state folder deleted", "journal moved aside and replaced", "-wal deleted"])
def test_a_journal_gone_from_under_the_daemon_stops_it_for_a_restart_and_records_nothing_in_the_old(
    daemon_settings: Settings, log: list[str], how: str, tmp_path: Path
) -> None:
    """SQLite goes on writing into the file it has open: with the state folder deleted (`rm -rf
    ~/.local/state/facesortd` to start afresh), the journal moved aside and a copy put back (a
    restore), or its `-wal` deleted (then every other command also said "disk I/O error"), every
    later move was recorded where no undo, status or recovery looks (or a kill -9 lost it), and the
    deleted daemon lock let a second daemon start. Now no move is planned in it; the daemon says so
    once and exits 1, which systemd restarts; the file waits in the inbox for the daemon started
    anew."""
    settings = daemon_settings
    daemon = Daemon(settings)
    try:
        _sorted(settings, "first.png")
        journal = settings.state_dir / "journal.sqlite"
        if how == "state folder deleted":
            shutil.rmtree(settings.state_dir)
        elif how == "-wal deleted":
            journal.with_name("journal.sqlite-wal").unlink()
        else:
            journal.rename(tmp_path / "aside.sqlite")
            shutil.copy(tmp_path / "aside.sqlite", journal)
        (settings.inbox / "second.png").write_bytes(screenshot_png(2))
        daemon.thread.join(timeout=HUNG_S)
    finally:
        code = daemon.stop()
    assert code == 1
    said = [line for line in log if line.startswith("CRITICAL")]
    assert len(said) == 1 and "was removed or replaced while facesortd had it open" in said[0], said
    assert (settings.inbox / "second.png").exists()  # not moved with its record lost
    restarted = Daemon(settings)
    try:
        wait_until(lambda: not (settings.inbox / "second.png").exists())
    finally:
        assert restarted.stop() == 0
    fresh = Journal.for_state_dir(settings.state_dir)
    sorted_ = [m.source.name for m in fresh.done_moves()]
    assert "second.png" in sorted_
    if how == "-wal deleted":  # the old connection's close wrote what the deleted -wal held back
        assert "first.png" in sorted_
    fresh.close()


def _deep(root: Path, room: int) -> Path:
    """A folder under ``root`` whose path leaves about ``room`` bytes of PATH_MAX for what is in it."""
    folder = root
    while len(os.fsencode(folder)) < PATH_MAX - room - 200:
        folder = folder / ("d" * 200)
    folder = folder / ("e" * (PATH_MAX - room - len(os.fsencode(folder)) - 1))
    folder.mkdir(parents=True)
    return folder


def test_a_library_too_deep_for_a_files_whole_name_takes_it_under_a_shorter_one(
    daemon_settings: Settings, tmp_path: Path
) -> None:
    """A library whose path leaves fewer than a long name's bytes of PATH_MAX (4096): the move
    failed with a bare "[Errno 36] File name too long" and the daemon retried it for ever, every
    5 minutes. Now its stem is cut (never inside a UTF-8 character) so the whole path fits, and
    recovery looks for it under that name too."""
    library = _deep(tmp_path / "deep", 60 + len("/_quarantine/unsure/"))
    settings = daemon_settings.model_copy(update={"library": library})
    name = "é" * 50 + "x" * 40 + ".png"
    data = screenshot_png(5)
    with running_daemon(settings, stub_pipeline):
        (settings.inbox / name).write_bytes(data)
        wait_until(lambda: not (settings.inbox / name).exists())
    [placed] = [p for p in (library / "_quarantine" / "unsure").iterdir()]
    assert placed.read_bytes() == data and len(os.fsencode(placed)) < PATH_MAX
    assert placed.name.startswith("é" * 10) and placed.name.endswith(".png")
    placed.name.encode()  # whole characters only
    journal = Journal.for_state_dir(settings.state_dir)
    assert [m.destination for m in journal.done_moves()] == [placed]
    journal.close()


def test_a_library_too_deep_for_any_name_is_said_with_the_fix_and_the_file_stays(tmp_path: Path) -> None:
    """Where not even a few bytes of the name fit, the move is a Refused naming the folder and the
    fix (it was the same bare error), and the file stays whole where it was."""
    library = _deep(tmp_path / "deep", 12 + len("/_quarantine/unsure/"))
    src = tmp_path / ("n" * 100 + ".png")
    src.write_bytes(b"data")
    with pytest.raises(Refused, match=r"use a library .* with a shorter path"):
        move_no_replace(src, library / "_quarantine" / "unsure" / src.name)
    assert src.read_bytes() == b"data"
    assert list(numbered_names(library / "_quarantine" / "unsure" / src.name)) == []  # recovery looks at none


@contextlib.contextmanager
def _daemon_process(settings: Settings, *signalled: signal.Signals) -> Iterator[subprocess.Popen[str]]:
    """`facesortd run` in a process of its own (signals reach its main thread), a file sorted by it
    first; killed after the block if it is still running. ``signalled``: sent by the daemon to itself
    as its imports begin, before anything of facesortd beyond its package (signals a test sends
    may come before or after)."""
    command = ["-m", "facesortd", "run"]
    if signalled:
        command = ["-c", _signalled_at_start("run", *signalled)]
    daemon = subprocess.Popen(
        [sys.executable, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: (settings.state_dir / "status.json").exists() or daemon.poll() is not None)
        _dropped_and_sorted(settings, daemon, "a.png")
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def _signalled_at_start(command: str, *signalled: signal.Signals) -> str:
    """A program running `facesortd COMMAND` that sends itself ``signalled`` as its imports begin."""
    return f"""
import builtins, os, sys
from facesortd.cli import main
imported = builtins.__import__
def signalled(name, *args, **kwargs):
    if name == "facesortd.cli.app":
        builtins.__import__ = imported
        for sig in {[int(sig) for sig in signalled]}:
            os.kill(os.getpid(), sig)
    return imported(name, *args, **kwargs)
builtins.__import__ = signalled
sys.exit(main([{command!r}]))
"""


def _dropped_and_sorted(settings: Settings, daemon: subprocess.Popen[str], name: str) -> None:
    """``name`` dropped into the inbox and sorted by ``daemon``, which is running after it."""
    (settings.inbox / name).write_bytes(screenshot_png(len(name)))
    wait_until(lambda: not (settings.inbox / name).exists() or daemon.poll() is not None)
    assert daemon.poll() is None and not (settings.inbox / name).exists()


def test_sighup_stops_the_daemon_as_sigterm_does_with_an_exit_systemd_restarts(
    cli_settings: Settings,
) -> None:
    """SIGHUP (`kill -HUP`, the usual way to ask a daemon to read its settings again; a terminal
    closed on `facesortd run`) killed the daemon at once, whatever move it was in, and systemd takes
    a death by SIGHUP for a clean stop: Restart=on-failure left it down. Now it stops as on SIGTERM
    (the files in progress finish) and exits 129, which systemd restarts."""
    with _daemon_process(cli_settings) as daemon:
        daemon.send_signal(signal.SIGHUP)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 128 + signal.SIGHUP, err
    assert "stopping: finishing the files in progress" in err


def test_sigpwr_stops_the_daemon_as_sigterm_does(cli_settings: Settings) -> None:
    """SIGPWR (the power failing, `lxc-stop`) killed the daemon at once, mid-move: it stops cleanly."""
    with _daemon_process(cli_settings) as daemon:
        daemon.send_signal(signal.SIGPWR)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    assert "stopping: finishing the files in progress" in err


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2], ids=lambda sig: sig.name)
def test_sigusr_is_said_and_the_daemon_sorts_on(cli_settings: Settings, sig: signal.Signals) -> None:
    """SIGUSR1 and SIGUSR2 (other daemons' "reopen your log", sent by habit or a logrotate rule)
    killed the daemon at once, mid-move: logged as ignored, the daemon goes on sorting."""
    with _daemon_process(cli_settings) as daemon:
        daemon.send_signal(sig)
        _dropped_and_sorted(cli_settings, daemon, "after.png")
        daemon.terminate()
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    [said] = [line for line in err.splitlines() if "ignored" in line]
    assert f"WARNING {sig.name} ignored: facesortd has no use for it (SIGTERM stops it" in said


def test_sigusr_while_the_daemon_starts_is_said_and_it_sorts_on(cli_settings: Settings) -> None:
    """SIGUSR1 or SIGUSR2 in the second the daemon spends importing, before its handlers were
    installed, killed it all the same."""
    with _daemon_process(cli_settings, signal.SIGUSR1, signal.SIGUSR2) as daemon:
        daemon.terminate()
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err
    said = [line.split(" WARNING ")[1][:30] for line in err.splitlines() if "ignored" in line]
    assert said == ["SIGUSR1 ignored: facesortd has", "SIGUSR2 ignored: facesortd has"]


def test_sigpwr_while_the_daemon_starts_stops_it_cleanly(cli_settings: Settings) -> None:
    """SIGPWR in the daemon's first second killed it, a death by a signal for systemd."""
    daemon = subprocess.Popen(
        [sys.executable, "-c", _signalled_at_start("run", signal.SIGPWR)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, err
    assert "stopping: finishing the files in progress" in err


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGHUP, 128 + signal.SIGHUP), (signal.SIGTERM, 0)], ids=["HUP", "TERM"]
)
def test_sighup_or_sigterm_while_the_daemon_starts_stops_it_as_later_with_its_files_and_locks_whole(
    cli_settings: Settings, sig: signal.Signals, code: int
) -> None:
    """SIGHUP in the daemon's first second (a `systemctl --user reload` or a terminal closed as it
    starts), before its handlers were installed, killed it, and systemd takes a death by SIGHUP for
    a clean stop: Restart=on-failure left it down, where a SIGHUP a moment later restarts it (exit
    129). SIGTERM killed it too, a death by a signal where a later one exits 0. Each now stops it as
    later: the files waiting in the inbox stay there whole, once each, for the next start, and the
    inbox's lock and the state folder's are free."""
    from facesortd import watch
    from facesortd.state import DaemonLock

    names = [f"{n}.png" for n in "abc"]
    for n, name in enumerate(names):
        (cli_settings.inbox / name).write_bytes(screenshot_png(n))
    daemon = subprocess.Popen(
        [sys.executable, "-c", _signalled_at_start("run", sig)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, err = daemon.communicate(timeout=120)
    assert daemon.returncode == code, err
    assert "stopping: finishing the files in progress" in err
    assert sorted(p.name for p in cli_settings.inbox.iterdir()) == names
    assert not [p for p in cli_settings.library.rglob("*") if p.is_file()]
    folder = watch._lock_folder()
    assert folder is None or not list(folder.glob(f"inbox-*-{cli_settings.inbox.stat().st_ino}.lock"))
    DaemonLock(cli_settings.state_dir).acquire()  # StateBusy if a lock were left held


def test_a_signal_the_daemon_takes_ends_another_command_as_ever(cli_settings: Settings) -> None:
    """Held while any command imports (it is not known yet which runs), then given back: `status`
    ends by it as it did, before it says anything."""
    status = _signalled_at_start("status", signal.SIGUSR1)
    done = subprocess.run([sys.executable, "-c", status], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (-signal.SIGUSR1, "")


def test_an_emotion_folder_deleted_just_before_the_link_into_it_is_made_again(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person (or a cleaner) removing the empty `unsure/` between its making and the link into it:
    the link's "No such file or directory" was taken for the file being gone, so `sort` said "gone
    meanwhile (moved by a person ...)" of a file still in its folder and left it there, and the daemon
    had it wait for its next look. The folder is made again and the file placed."""
    real = durable._make_folder
    removed: list[Path] = []

    def make_then_lose(folder: Path) -> None:
        real(folder)
        if not removed:
            removed.append(folder)
            folder.rmdir()

    monkeypatch.setattr(durable, "_make_folder", make_then_lose)
    settings = daemon_settings
    settings.inbox.mkdir(parents=True)
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(3))
    journal = Journal.for_state_dir(settings.state_dir)
    outcome = Sorter(Library(settings.library), journal).sort(stub_pipeline(settings), src)
    journal.close()
    assert removed and outcome.kind == "placed", outcome
    assert outcome.destination is not None and outcome.destination.is_file() and not src.exists()


def test_the_move_lock_holds_when_its_file_is_deleted_under_its_holder(tmp_path: Path) -> None:
    """`rm <state_dir>/*.lock` while a move (or a crash recovery) held the move lock: the next process
    made a new `move.lock` and took it at once, so a recovery could take a live move's planned row
    for a killed one's and undo it half-way, and `status` a live move for an interrupted one. The
    lock is now also held on the state folder itself."""
    state_dir = tmp_path / "state"
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with move_lock(state_dir):
            holding.set()
            done.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        (state_dir / "move.lock").unlink()
        with move_lock_if_free(state_dir) as free:
            assert not free
    finally:
        done.set()
        holder.join(timeout=HUNG_S)
    with move_lock_if_free(state_dir) as free:
        assert free


def test_an_inbox_replaced_by_a_link_into_the_library_is_refused_and_the_labels_stay(
    daemon_settings: Settings, log: list[str], tmp_path: Path
) -> None:
    """`run` refuses an inbox inside the library at its start, but the daemon watched again whatever
    the inbox's path led to once it changed: an inbox replaced by a symbolic link to `happy/` had the
    person's labelled files moved out of it into the quarantine as new screenshots. Now that is said
    once (and by `status`), nothing is sorted from there (rescans too), and a real inbox put back is
    watched again."""
    settings = daemon_settings.model_copy(
        update={"watch": daemon_settings.watch.model_copy(update={"rescan_interval_s": 0.2})}
    )
    happy = settings.library / "happy"
    happy.mkdir(parents=True)
    (happy / "mine.png").write_bytes(screenshot_png(1))
    inbox = settings.inbox
    with running_daemon(settings, stub_pipeline) as daemon:
        inbox.rename(tmp_path / "inbox.old")
        inbox.symlink_to(happy)
        wait_until(lambda: any("overlap" in line for line in log))
        wait_until(lambda: "overlap" in (settings.state_dir / "status.json").read_text())
        wait_until(lambda: daemon.counts.total() == 0 and not daemon.queue_length())
        (happy / "new.png").write_bytes(screenshot_png(2))  # an event in happy/ is no arrival either
        inbox.unlink()
        inbox.mkdir()
        (inbox / "shot.png").write_bytes(screenshot_png(3))
        wait_until(lambda: not (inbox / "shot.png").exists())
    assert sorted(p.name for p in happy.iterdir()) == ["mine.png", "new.png"]
    assert len([line for line in log if "overlap" in line]) == 1


def test_a_model_in_force_damaged_while_the_daemon_runs_is_said_once_and_sorting_goes_on(
    daemon_settings: Settings, log: list[str], tmp_path: Path
) -> None:
    """The model file in force overwritten with something that is no model (a copy half done, a
    damaged disk): each worker tried to load it for every file, which failed with a traceback and
    stayed in the inbox, retried for ever; nothing was sorted until the file was put right. Now the
    workers go on with the model they have, it is said once (its versions as it is written in place
    too) and by `status`, and a good file put back is taken up."""
    model = tmp_path / "mine.fsm.npz"
    shutil.copy(shipped_model(), model)
    settings = daemon_settings.model_copy(
        update={"recognition": daemon_settings.recognition.model_copy(update={"model": model})}
    )
    status = settings.state_dir / "status.json"
    with running_daemon(settings, stub_pipeline):
        _sorted(settings, "first.png")
        # Damaged in place: its truncation and its write are two versions of the file, each met by
        # a worker (said twice, once each; the empty one failed the file with a traceback).
        model.write_bytes(b"")
        _sorted(settings, "a.png")
        model.write_bytes(b"not a model")
        for name in ("b.png", "c.png"):
            _sorted(settings, name)
        assert "cannot load the model in force" in status.read_text()
        shutil.copy(shipped_model(), model)
        _sorted(settings, "after.png")
        wait_until(lambda: "cannot load the model" not in status.read_text())
    said = [line for line in log if "cannot load the model in force" in line]
    assert len(said) == 1 and "sorting goes on with the one loaded before" in said[0], said
    assert not [line for line in log if "unexpected" in line]


def test_a_quarantine_made_a_link_out_of_the_library_is_not_shown_nor_moved_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: list[str]
) -> None:
    """The page never lists a reason folder or a file that is a link, but followed `_quarantine`
    itself: made a link to a folder elsewhere, that folder's files were listed, shown and, labelled,
    moved into the library. Now nothing outside the library is shown, said once."""
    settings = review_settings(tmp_path, monkeypatch)
    quarantine(settings, "unsure", [("a.png", "happy")])
    outside = tmp_path / "outside"
    (settings.library / "_quarantine").rename(outside)
    (settings.library / "_quarantine").symlink_to(outside)
    with serving(settings) as server:
        client = Client(server)
        assert client.get("/api/items")["items"] == []
        assert client.get("/api/items")["items"] == []
    assert (outside / "unsure" / "a.png").is_file() and not any((settings.library / "happy").iterdir())
    said = [line for line in log if "outside the library" in line]
    assert len(said) == 1 and "make" in said[0], said


def test_a_file_listed_before_the_quarantine_became_a_link_out_is_not_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same check at the move: a file listed while `_quarantine` was the library's own, then the
    folder swapped for a link to one elsewhere holding a file of the same name and inode id."""
    settings = review_settings(tmp_path, monkeypatch)
    quarantine(settings, "unsure", [("a.png", "happy")])
    with serving(settings) as server:
        client = Client(server)
        [item] = client.get("/api/items")["items"]
        outside = tmp_path / "outside"
        (settings.library / "_quarantine").rename(outside)
        (settings.library / "_quarantine").symlink_to(outside)
        assert client.post("/api/label", {"id": item["id"], "label": "happy"})[0] == 404
    assert (outside / "unsure" / "a.png").is_file() and not any((settings.library / "happy").iterdir())


@pytest.mark.parametrize("step_s", [-86400.0, 86400.0])
def test_a_half_written_file_waits_for_its_writer_whatever_the_wall_clock_does(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, step_s: float
) -> None:
    """The wall clock stepped back or forward (NTP at boot, a resumed VM) by more than
    `watch.unreadable_settle_s` while a writer paused between chunks: the file's date against the
    clock made it look long finished (or dated ahead, so no writer's), and it was quarantined as
    unreadable at once, its writer's next chunk starting a second file in the inbox. The daemon
    now times that wait by the monotonic clock."""
    settings = daemon_settings.model_copy(
        update={"watch": daemon_settings.watch.model_copy(update={"unreadable_settle_s": 3.0})}
    )
    waiting: list[str] = []
    sink = logger.add(
        lambda m: waiting.append(str(m)), level="INFO", filter=lambda r: "waiting" in r["message"]
    )
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + step_s)
    data = screenshot_png(21)
    target = settings.inbox / "chunked.png"
    try:
        with running_daemon(settings, stub_pipeline):
            with target.open("wb") as out:
                out.write(data[: len(data) // 2])
            wait_until(lambda: waiting)
            with target.open("ab") as out:
                out.write(data[len(data) // 2 :])
            wait_until(lambda: not target.exists())
    finally:
        logger.remove(sink)
    placed = [p for p in settings.library.rglob("*") if p.is_file()]
    assert [p.parent.name for p in placed] == ["unsure"] and placed[0].read_bytes() == data
