"""A hostile user's walk of the running daemon (2026-12-03): each test is the minimal repro of what a
file, or the words said of it, suffered then, kept so that it stays fixed."""

from __future__ import annotations

import inspect
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from synthetic import screenshot_png, stub_pipeline
from waiting import log_lines, running_daemon, wait_until

from facesortd import cli, watch
from facesortd.config import Settings
from facesortd.decide import Decision, Pipeline
from facesortd.journal import Journal
from facesortd.library import Library
from facesortd.sdnotify import watchdog_period
from facesortd.service import Service
from facesortd.sorter import Sorter
from facesortd.state import DAEMON_LOCK, STATUS_FILE, StateBusy


def _deaf_to(monkeypatch: pytest.MonkeyPatch, word: bytes) -> None:
    """The watcher hears no event for a name holding ``word``: inotify's queue overflowed."""
    real_path = watch._Handler._path
    monkeypatch.setattr(
        watch._Handler,
        "_path",
        lambda self, raw: None if word in os.fsencode(raw) else real_path(self, raw),
    )


@pytest.mark.parametrize("folder", ["", "sub"])
def test_files_whose_events_were_all_lost_are_sorted_without_waiting_for_the_rescan(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    """The daemon stopped (Ctrl-Z, SIGSTOP) or starved while 20 files were dropped: inotify's queue
    (64 events here, `fs.inotify.max_queued_events`) overflowed and no event of theirs was read. With
    nothing else placed, no look after a burst came, and they waited for the rescan (5 minutes by
    default; here off). A change to the inbox's folders is now looked into once the daemon is idle."""
    _deaf_to(monkeypatch, b"lost")
    settings = daemon_settings.model_copy(
        update={"watch": daemon_settings.watch.model_copy(update={"recursive": bool(folder)})}
    )
    where = settings.inbox / folder
    where.mkdir(parents=True)
    with running_daemon(settings, stub_pipeline):
        for i in range(3):
            (where / f"lost{i}.png").write_bytes(screenshot_png(40 + i))
        wait_until(lambda: not list(where.iterdir()))
    assert sorted(p.name for p in settings.library.rglob("*.png")) == ["lost0.png", "lost1.png", "lost2.png"]


def test_inotifys_overflow_is_said_once_in_the_logs_words_not_bare_on_stderr(
    daemon_settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    """watchdog logs through the standard `logging`, which facesortd does not set up: its "Inotify
    queue overflowed; filesystem events were lost" went bare to stderr (the journal), 41 times in a
    burst of 3,000 files, with no word of what it meant for them."""
    from watchdog.observers import inotify_c

    overflow = "Inotify queue overflowed; filesystem events were lost"
    assert overflow in inspect.getsource(inotify_c)  # what watchdog says, as this version words it
    with log_lines("WARNING") as lines, running_daemon(daemon_settings, stub_pipeline):
        for _ in range(41):
            logging.getLogger(inotify_c.__name__).warning(overflow)
        logging.getLogger(inotify_c.__name__).error("Unable to rebuild recursive inotify watches")
    said = [line for line in lines if "overflowed" in line]
    assert len(said) == 1 and "looks through the inbox itself" in said[0]
    assert "ERROR watchdog: Unable to rebuild recursive inotify watches" in lines
    assert overflow not in capfd.readouterr().err


_HOLD_OPEN = "import sys; f = open(sys.argv[1]); print(flush=True); sys.stdin.read()"
"""A process that holds its argument open (as the daemon holds its lock) until its stdin closes."""


@pytest.mark.parametrize("stopped", [True, False])
def test_status_of_a_stopped_daemon_says_so_and_how_to_go_on(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str], stopped: bool
) -> None:
    """`facesortd run` in a terminal, Ctrl-Z (or SIGSTOP): `status` said it "looks stuck: restart it
    (systemctl --user restart facesortd)", a command that fails for a daemon systemd did not start,
    where `fg` (or SIGCONT) is all it takes. A stuck one that systemd did not start is told to restart
    the terminal's way."""
    state_dir = cli_settings.state_dir
    state_dir.mkdir()
    (state_dir / DAEMON_LOCK).write_text("")
    holder = subprocess.Popen(  # holds the daemon lock's file open, as the daemon does
        [sys.executable, "-c", _HOLD_OPEN, str(state_dir / DAEMON_LOCK)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"\n"
        stale = {"pid": holder.pid, "started": time.time() - 600, "updated": time.time() - 120, "queue": 0}
        (state_dir / STATUS_FILE).write_text(json.dumps(stale | {"model": "m"}))
        if stopped:
            holder.send_signal(signal.SIGSTOP)
            wait_until(
                lambda: Path(f"/proc/{holder.pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"
            )
        assert cli.main(["status"]) == 0
        out = capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait()
    problem = next((line for line in out.splitlines() if line.startswith("PROBLEM: the daemon")), out)
    assert "systemctl" not in problem
    if stopped:
        assert (
            "it is stopped (Ctrl-Z in its terminal, or SIGSTOP): nothing is sorted until it goes on"
            in problem
        )
        assert f"`fg` in that terminal, or kill -CONT {holder.pid}" in problem
    else:
        assert (
            f"it looks stuck: restart it (Ctrl-C in the terminal it runs in, or kill {holder.pid}" in problem
        )


def test_a_file_whose_folder_is_renamed_while_it_is_judged_is_gone_not_a_failed_move(
    daemon_settings: Settings,
) -> None:
    """`watch.recursive = true`, a sub-folder of the inbox renamed (or moved out) while its files
    waited for their turn: a file met mid-way was "cannot move it into the library ([Errno 2] No such
    file or directory: '…/inbox/sub')", an ERROR, a journal error `status` showed, and a retry timer
    for a name that no longer was; `sort` failed it alike. It is gone from there, as a file renamed
    away is (the daemon finds it under its new folder's name)."""
    sub = daemon_settings.inbox / "sub"
    sub.mkdir(parents=True)
    (sub / "a.png").write_bytes(screenshot_png(5))
    pipeline = stub_pipeline(daemon_settings)
    judge = pipeline.decide

    def judged_as_the_folder_is_renamed(path: Path) -> Decision:
        decision = judge(path)
        sub.rename(sub.with_name("renamed"))
        return decision

    pipeline.decide = judged_as_the_folder_is_renamed  # type: ignore[method-assign]
    library = Library(daemon_settings.library)
    library.folder_for(Decision.quarantine("unsure")).mkdir(parents=True)  # a file went there before
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    try:
        outcome = Sorter(library, journal).sort(pipeline, sub / "a.png")
    finally:
        journal.close()
    assert outcome.kind == "gone"
    assert [p.name for p in daemon_settings.inbox.rglob("*.png")] == ["a.png"]


def _watched(folder: Path) -> bool:
    """Does an inotify instance of this process watch ``folder`` (as /proc shows its watches)?"""
    ino = f"ino:{os.stat(folder).st_ino:x} "
    for info in Path("/proc/self/fdinfo").iterdir():
        try:
            if any(line.startswith("inotify wd:") and ino in line for line in info.read_text().splitlines()):
                return True
        except OSError:  # closed since it was listed
            continue
    return False


def test_a_sub_folder_moved_out_and_back_in_is_watched_without_watchdogs_warning(
    daemon_settings: Settings, recwarn: pytest.WarningsRecorder
) -> None:
    """watchdog warned "RuntimeWarning: Callback with id '…' already exists for watch <…>. It will be
    Overwritten." (a line of 900 characters of its internals) bare on stderr, the journal's log."""
    settings = daemon_settings.model_copy(
        update={"watch": daemon_settings.watch.model_copy(update={"recursive": True})}
    )
    inbox = settings.inbox
    with running_daemon(settings, stub_pipeline):
        (inbox / "sub").mkdir()
        wait_until(lambda: _watched(inbox / "sub"))  # watchdog adds its watch on hearing of it
        (inbox / "sub").rename(inbox / "sub2")
        (inbox / "sub2").rename(settings.library.parent / "out")
        (settings.library.parent / "out").rename(inbox / "sub3")
        (inbox / "sub3" / "a.png").write_bytes(screenshot_png(6))
        wait_until(lambda: not (inbox / "sub3" / "a.png").exists())
    assert [p.name for p in settings.library.rglob("*.png")] == ["a.png"]
    assert not [w for w in recwarn if "watchdog" in w.filename], [str(w.message)[:80] for w in recwarn]


def _labelled_pipeline(settings: Settings) -> Pipeline:
    """The stub pipeline holding a model that knows two emotions (no file is judged by it here)."""
    pipeline = stub_pipeline(settings)
    pipeline.model = SimpleNamespace(labels=("happy", "sad"))  # type: ignore[assignment]
    return pipeline


@pytest.mark.parametrize("how", ["deleted", "renamed away"])
def test_a_library_gone_under_the_daemon_is_made_again_with_its_emotion_folders_and_said(
    daemon_settings: Settings, how: str
) -> None:
    """The library deleted or renamed away (archived as `library-2025`) while the daemon ran: the next
    move made a new one without a word, holding only the folder that file went to, so the person,
    reviewing with a file manager, found no emotion folder to drop a file into until one was sorted
    there, and nothing said facesortd had gone on in a new library."""
    library = daemon_settings.library
    with log_lines("WARNING") as lines, running_daemon(daemon_settings, _labelled_pipeline):
        assert (library / "happy").is_dir()
        if how == "deleted":
            shutil.rmtree(library)
        else:
            library.rename(library.with_name("library-2025"))
        wait_until(lambda: (library / "happy").is_dir() and (library / "sad").is_dir())
        wait_until(lambda: any("was gone" in line for line in lines))
    said = [line for line in lines if str(library) in line]
    assert said == [
        f"WARNING the library {library} was gone (deleted, or renamed away): made again, with its emotion "
        "folders; `undo` finds the files sorted before only if they are put back in it"
    ]


def test_status_says_a_file_some_process_still_writes_is_being_written(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A screen recorder or a hung tool holding its file open: the daemon leaves it alone until it is
    closed, for good if it never is, and `status` said only "waiting to be sorted", naming no reason."""
    held = cli_settings.inbox / "held.png"
    with held.open("wb") as writer:
        writer.write(screenshot_png(7))
        writer.flush()
        assert cli.main(["status", "--json"]) == 0
    why = {Path(e["path"]).name: e["why"] for e in json.loads(capsys.readouterr().out)["inbox"]["stuck"]}
    assert why["held.png"] == "being written: a process holds it open for writing; sorted once it closes it"


def test_the_look_after_a_placement_comes_where_the_folders_time_does_not_show_the_change(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FAT inbox's folder times count in 2 s: a change made in the tick of the last look's stamp
    does not show. The look after a placement comes anyway, as it did before the folders were
    stamped; here the folders' times never change."""
    _deaf_to(monkeypatch, b"lost")
    monkeypatch.setattr(watch, "_stamp", lambda folder: (1, 0))
    inbox = daemon_settings.inbox
    with running_daemon(daemon_settings, stub_pipeline):
        (inbox / "lost.png").write_bytes(screenshot_png(8))
        (inbox / "heard.png").write_bytes(screenshot_png(9))
        wait_until(lambda: not any(inbox.iterdir()))
    assert sorted(p.name for p in daemon_settings.library.rglob("*.png")) == ["heard.png", "lost.png"]


def test_files_waiting_their_turn_do_not_take_a_thread_each(daemon_settings: Settings) -> None:
    """5,000 empty files dropped at once (a sync tool's placeholders; or, alike, a backlog failing on a
    full disk, each waiting for its retry) took a timer thread each, 2,344 at once: under a limit on
    tasks (systemd's TasksMax; 200 here) "can't start new thread" killed a worker, and the daemon
    exited 1, for systemd to restart it into the same backlog. Every wait now shares one thread."""
    settings = daemon_settings.model_copy(
        update={"watch": daemon_settings.watch.model_copy(update={"unreadable_settle_s": 2.0})}
    )
    count = 120
    unreadable = settings.library / "_quarantine" / "unreadable"
    with log_lines("INFO") as lines, running_daemon(settings, stub_pipeline):
        before = threading.active_count()
        for i in range(count):
            (settings.inbox / f"empty{i:03d}.png").write_bytes(b"")
        wait_until(lambda: sum("waiting 2 s" in line for line in lines) >= count or unreadable.is_dir())
        assert threading.active_count() < before + 5
        wait_until(lambda: unreadable.is_dir() and len(list(unreadable.iterdir())) == count)
    assert not any(settings.inbox.iterdir())


@pytest.mark.parametrize(("usec", "period"), [("4000000", 2.0), ("abc", None), ("0", None), ("-5", None)])
def test_the_watchdog_period_is_read_from_systemds_variable_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, usec: str, period: float | None
) -> None:
    """WATCHDOG_USEC that is no number ended `run` in a traceback; a negative one made the main loop
    wait a negative time, a loop spinning a core. Neither is systemd's: no pings then, as without it."""
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_period() == period


def test_a_second_daemon_on_the_same_inbox_with_another_state_folder_is_refused(
    daemon_settings: Settings, tmp_path: Path
) -> None:
    """Two configs naming one inbox (a unit plus a `run` by hand with another state_dir): nothing the
    two shared held a lock, and they raced for every file; 2 of 300 files were placed twice (two names
    in the library), each daemon journaling its own. The second is refused as a second daemon on one
    state folder is, naming the first."""
    other = daemon_settings.model_copy(update={"state_dir": tmp_path / "state2"})
    with running_daemon(daemon_settings, stub_pipeline):
        second = Service(other, stub_pipeline)
        with pytest.raises(StateBusy) as refused:
            second.run()
    assert str(refused.value) == (
        f"another facesortd daemon (pid {os.getpid()}) already watches {daemon_settings.inbox}: two daemons "
        "on one inbox race each other for every file: stop it first (Ctrl-C in the terminal it runs in, or "
        f"kill {os.getpid()}), or give this one another inbox"
    )
    # The first one gone, its inbox is free again.
    with running_daemon(other, stub_pipeline):
        (other.inbox / "a.png").write_bytes(screenshot_png(10))
        wait_until(lambda: not (other.inbox / "a.png").exists())


def _open_below(folder: Path) -> list[str]:
    """What this process holds open at or below ``folder`` (an open file or folder there keeps its
    drive busy: `umount` and a file manager's eject fail with "target is busy")."""
    fds = Path("/proc/self/fd")
    held = []
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target == str(folder) or target.startswith(f"{folder}/"):
            held.append(target)
    return held


def test_the_inbox_lock_keeps_nothing_of_the_inbox_open(daemon_settings: Settings, tmp_path: Path) -> None:
    """The lock that refuses a second daemon on one inbox was a flock on the inbox folder itself,
    held open for the daemon's life: a USB drive holding the inbox could not be ejected while it ran.
    It is a file in the user's runtime folder now, named by the inbox, removed at the stop; still
    refused on the same inbox under another path (a link to it)."""
    inbox = daemon_settings.inbox
    folder = watch._lock_folder()
    assert folder is not None
    with running_daemon(daemon_settings, stub_pipeline):
        lock_file = folder / f"inbox-{inbox.stat().st_dev}-{inbox.stat().st_ino}.lock"
        assert lock_file.is_file() and _open_below(inbox) == []
        other = daemon_settings.model_copy(
            update={"state_dir": tmp_path / "state2", "inbox": tmp_path / "link"}
        )
        other.inbox.symlink_to(inbox)
        with pytest.raises(StateBusy, match="already watches"):
            Service(other, stub_pipeline).run()
    assert not lock_file.exists()


def test_an_inbox_made_a_link_to_another_daemons_inbox_is_not_watched_until_put_right(
    daemon_settings: Settings, tmp_path: Path
) -> None:
    """An inbox path made a symbolic link to the inbox of a daemon of another config: said once, and
    watched again once put right."""
    other = daemon_settings.model_copy(update={"state_dir": tmp_path / "state2", "inbox": tmp_path / "in2"})
    with (
        running_daemon(daemon_settings, stub_pipeline),
        log_lines("ERROR") as lines,
        running_daemon(other, stub_pipeline) as second,
    ):
        other.inbox.rmdir()
        other.inbox.symlink_to(daemon_settings.inbox)
        wait_until(lambda: any("already watches" in line for line in lines))
        assert second._inbox_problem and "already watches" in second._inbox_problem
        other.inbox.unlink()
        wait_until(lambda: not second._inbox_problem and other.inbox.is_dir())
        (other.inbox / "b.png").write_bytes(screenshot_png(11))
        wait_until(lambda: not (other.inbox / "b.png").exists())
    assert sum("already watches" in line for line in lines) == 1


def test_files_whose_events_were_lost_are_sorted_while_another_file_is_held_open(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look for files no event told of waited for the daemon to be idle, and a file some process
    held open for good (a hung tool) kept it from being idle: the files whose events were lost
    waited for the periodic rescan (here off) as long as it was held."""
    _deaf_to(monkeypatch, b"lost")
    inbox = daemon_settings.inbox
    with running_daemon(daemon_settings, stub_pipeline), (inbox / "held.png").open("wb") as held:
        held.write(b"half")
        held.flush()
        (inbox / "lost.png").write_bytes(screenshot_png(12))
        wait_until(lambda: not (inbox / "lost.png").exists())
        assert [p.name for p in daemon_settings.library.rglob("*.png")] == ["lost.png"]
