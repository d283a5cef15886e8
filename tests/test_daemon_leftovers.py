"""Leftovers of the live sweep: the daemon's locks, folders and messages under a running daemon (its
lock file deleted, its quarantine or library re-pointed, a move refused for a long time) and `sort`'s
wait for a half-written file. Each test here failed on the code before its fix."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from loguru import logger
from review_setup import quarantine, review_settings
from synthetic import screenshot_png, stub_pipeline
from waiting import HUNG_S, log_lines, running_daemon, wait_until

from facesortd import cli, status
from facesortd.config import Settings, load_settings
from facesortd.content import content_id
from facesortd.decide import Decision
from facesortd.journal import Journal, ModelId
from facesortd.library import Library
from facesortd.placement import journaled_apply
from facesortd.refusals import Refused
from facesortd.review_page.decisions import DecisionError, Decisions
from facesortd.review_page.queue import Contents, scan
from facesortd.service import Service
from facesortd.sort_batch import SortBatch
from facesortd.sorter import Sorter
from facesortd.state import StateBusy, daemon_running, move_lock


@pytest.fixture
def log() -> Iterator[list[str]]:
    """Every log line's message, from INFO up."""
    with log_lines("INFO") as lines:
        yield lines


def _settle(settings: Settings, seconds: float) -> Settings:
    return settings.model_copy(
        update={"watch": settings.watch.model_copy(update={"unreadable_settle_s": seconds})}
    )


def test_a_file_gone_while_it_waited_is_forgotten(daemon_settings: Settings, log: list[str]) -> None:
    """The daemon's monotonic wait for a half-written file kept a record for each file that went away
    while it waited (deleted, renamed by its writer): a daemon running for months grew by one per file."""
    settings = _settle(daemon_settings, 0.5)
    half = settings.inbox / "half.png"
    with running_daemon(settings, stub_pipeline) as service:
        half.write_bytes(screenshot_png(30)[:300])
        wait_until(lambda: any("waiting" in line for line in log))
        assert len(service.sorter.unreadable_since) == 1
        half.unlink()
        wait_until(lambda: len(service.sorter.unreadable_since) == 0)


def test_a_refused_move_is_said_once_per_file_and_reason(
    daemon_settings: Settings, log: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A move refused for as long as the person takes to fix it (a folder not writable, a library too
    deep for the name) logged an error, and recorded it, at every retry (up to every 300 s): now once
    per file and reason, again when the reason changes; `status` shows it meanwhile."""
    reasons = ["not writable"] * 4 + ["too deep"] * 4
    real_apply = Library.apply

    def refusing(self: Library, src: Path, decision: Decision, **kw: bool) -> Path:
        if reasons:
            raise Refused(
                OSError(errno.EACCES, "Permission denied"), f"cannot move it: {reasons.pop(0)}", "fix"
            )
        return real_apply(self, src, decision, **kw)

    monkeypatch.setattr(Library, "apply", refusing)
    monkeypatch.setattr("facesortd.service.FIRST_BACKOFF_S", 0.05)
    monkeypatch.setattr("facesortd.service.MAX_BACKOFF_S", 0.05)
    shot = daemon_settings.inbox / "a.png"
    with running_daemon(daemon_settings, stub_pipeline) as service:
        shot.write_bytes(screenshot_png(31))
        wait_until(lambda: not shot.exists())
        errors = service.journal.last_errors(50)
    said = [line for line in log if "cannot move it into the library" in line]
    assert len(said) == 2 and "not writable" in said[0] and "too deep" in said[1]
    assert [m for _at, _p, m in errors if "move failed" in m] == [
        "move failed: cannot move it: too deep (Permission denied): fix",
        "move failed: cannot move it: not writable (Permission denied): fix",
    ]


def test_a_second_daemon_is_refused_after_the_first_ones_lock_file_was_deleted(
    daemon_settings: Settings, log: list[str]
) -> None:
    """`rm <state_dir>/daemon.lock` while a daemon ran (taken for a stale pid file): a second `run`
    made a new one, took it at once and raced the first for every file. It is refused now, naming
    the first, and the first puts its lock file back (`status` and an older facesortd look there)."""
    lock = daemon_settings.state_dir / "daemon.lock"
    with running_daemon(daemon_settings, stub_pipeline):
        lock.unlink()
        with pytest.raises(StateBusy, match=f"pid {os.getpid()}"):
            Service(daemon_settings, stub_pipeline).run()
        wait_until(lambda: lock.exists() and daemon_running(daemon_settings.state_dir))
        with pytest.raises(StateBusy):
            Service(daemon_settings, stub_pipeline).run()
    assert not daemon_running(daemon_settings.state_dir)


def _problems(settings: Settings) -> list[str]:
    return json.loads((settings.state_dir / "status.json").read_text())["problems"]


def test_a_quarantine_linked_out_of_the_library_is_not_used_by_the_daemon(
    daemon_settings: Settings, tmp_path: Path, log: list[str]
) -> None:
    """`_quarantine` made a symbolic link to a folder outside the library: the review page no longer
    follows it, but the daemon still put quarantined files there (out of the library, where no undo
    or review looks as the library's). Now the move is refused, said once and by `status` with the
    fix, the file stays in the inbox, and goes into the quarantine once it is a folder again."""
    outside = tmp_path / "outside"
    outside.mkdir()
    shot = daemon_settings.inbox / "a.png"
    with running_daemon(daemon_settings, stub_pipeline):
        quarantine = daemon_settings.library / "_quarantine"
        quarantine.symlink_to(outside)
        wait_until(lambda: _problems(daemon_settings))
        assert "outside the library" in _problems(daemon_settings)[0]
        shot.write_bytes(screenshot_png(32))
        wait_until(lambda: any("a.png: cannot move it" in line for line in log))
        assert shot.exists() and not list(outside.rglob("*"))
        quarantine.unlink()
        wait_until(lambda: not shot.exists())
        wait_until(lambda: not _problems(daemon_settings))
    assert [p.parent.name for p in quarantine.rglob("*.png")] == ["unsure"]
    assert sum("outside the library" in line and "a.png" not in line for line in log) == 1


def test_a_library_re_pointed_while_the_daemon_runs_is_not_used(tmp_path: Path, log: list[str]) -> None:
    """The library a symbolic link whose target was changed while the daemon ran: the daemon moved
    the files where it led now (into the inbox itself, the state folder, another library), past the
    checks `run` made at its start, and the journal's paths no longer found them. Now a move there is
    refused until the link is put back (or the daemon restarted), the file left in the inbox."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    link = tmp_path / "lib"
    link.symlink_to(first)
    settings = load_settings(
        inbox=tmp_path / "inbox",
        library=link,
        state_dir=tmp_path / "state",
        watch={"settle_s": 0.2, "rescan_interval_s": 0, "unreadable_settle_s": 0},
    )
    shot = settings.inbox / "a.png"
    with running_daemon(settings, stub_pipeline):
        link.unlink()
        link.symlink_to(second)
        wait_until(lambda: _problems(settings))
        assert f"leads to {second} now" in _problems(settings)[0]
        shot.write_bytes(screenshot_png(33))
        wait_until(lambda: any("a.png: cannot move it" in line for line in log))
        assert shot.exists() and not list(second.rglob("*.png"))
        link.unlink()
        link.symlink_to(first)
        wait_until(lambda: not shot.exists())
    assert len(list(first.rglob("*.png"))) == 1 and not list(second.rglob("*.png"))


@pytest.mark.parametrize("step_s", [-86400.0, 86400.0])
def test_sort_waits_for_a_half_written_file_whatever_the_wall_clock_does(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, step_s: float
) -> None:
    """A bare `sort` judged whether an unreadable inbox file might still be written by its date
    against the wall clock: stepped a day back or forward (NTP at boot, a resumed VM), a file its
    writer paused on looked long finished (or dated ahead, so no writer's) and was quarantined as
    unreadable; the writer's next chunk began a second file. `sort` now waits by the monotonic
    clock, as the daemon does, and takes the file whole once its writer finished it meanwhile."""
    monkeypatch.setenv("FACESORTD_WATCH__UNREADABLE_SETTLE_S", "0.2")
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + step_s)
    data = screenshot_png(34)
    target = cli_settings.inbox / "chunked.png"
    target.write_bytes(data[: len(data) // 2])
    real_wait = getattr(SortBatch, "_waited", None)

    def writer_finishes(self: SortBatch, seconds: float) -> bool:
        target.write_bytes(data)
        return real_wait(self, seconds) if real_wait else True

    monkeypatch.setattr(SortBatch, "_waited", writer_finishes, raising=False)
    assert cli.main(["sort"]) == 0
    placed = [p for p in cli_settings.library.rglob("*") if p.is_file()]
    assert len(placed) == 1 and placed[0].parent.name != "unreadable" and placed[0].read_bytes() == data


def test_the_review_page_refuses_its_moves_in_a_library_re_pointed_since_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library link re-pointed while the review page ran (here at a hard-linked copy, where
    the page's ids still match): a label was refused by Library.refusal, but the page's undo moved
    the file where the link led now and marked the move undone, its label withdrawn, while the file
    stayed in the emotion folder of the library the page had started on. Both are refused now, with
    the daemon's message, and the undo goes through once the link is put back."""
    settings = review_settings(tmp_path, monkeypatch)
    first, second, link = tmp_path / "first", tmp_path / "second", tmp_path / "linked"
    first.mkdir()
    link.symlink_to(first)
    settings = settings.model_copy(update={"library": link})
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    journal = Journal.for_state_dir(settings.state_dir)
    decisions = Decisions(settings, journal, Contents())
    a, b = sorted(scan(link, {}), key=lambda i: i.path.name)
    decisions.label(b, "sad")

    def re_point(to: Path) -> None:
        link.unlink()
        link.symlink_to(to)

    shutil.copytree(first, second, copy_function=os.link)  # the same inodes: the same page ids
    re_point(second)
    refused = f"cannot use the library {link} (it leads to {second} now, not to {first} as at the start)"
    with pytest.raises(DecisionError, match=re.escape(f"a.png stays where it is: {refused}")):
        decisions.label(a, "happy")
    with pytest.raises(DecisionError, match=re.escape(f"b.png: {refused}")):
        decisions.undo()
    assert (first / "sad" / "b.png").is_file() and (second / "sad" / "b.png").is_file()
    assert not (second / "_quarantine" / "unsure" / "b.png").exists()
    with pytest.raises(
        DecisionError, match=re.escape("or restart `facesortd review` to use where it leads now")
    ):
        decisions.label(a, "happy")  # the page, on its own, restarts itself: not the daemon ("facesortd")
    re_point(first)
    assert decisions.undo()[1] == files["b.png"] and (first / "_quarantine" / "unsure" / "b.png").is_file()
    journal.close()


def test_an_unexpected_error_is_said_with_its_traceback_once_per_file_and_type(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error of ours that a file meets at every try (a bug) logged its whole traceback at each
    retry, up to every 300 s for as long as the daemon ran, and added a journal row each time. Now
    the traceback is logged once per file and error type (and the row recorded once, which `status`
    shows beside the file in the inbox); each later retry is one line, its traceback at debug level."""
    lines: list[tuple[str, str]] = []
    sink = logger.add(
        lambda m: lines.append((m.record["level"].name, str(m))), level="DEBUG", format="{message}"
    )
    errors = [RuntimeError("bug 1"), RuntimeError("bug 2"), RuntimeError("bug 3"), KeyError("x")]
    fixed = threading.Event()
    real_sort = Sorter.sort

    def failing(self: Sorter, pipeline: object, path: Path, **how: object) -> object:
        if errors:
            raise errors.pop(0)
        if not fixed.is_set():
            raise KeyError("y")
        return real_sort(self, pipeline, path, **how)

    def said() -> list[tuple[str, str]]:
        return [(level, text) for level, text in list(lines) if "a.png: unexpected error" in text]

    monkeypatch.setattr(Sorter, "sort", failing)
    monkeypatch.setattr("facesortd.service.FIRST_BACKOFF_S", 0.05)
    monkeypatch.setattr("facesortd.service.MAX_BACKOFF_S", 0.05)
    shot = daemon_settings.inbox / "a.png"
    try:
        with running_daemon(daemon_settings, stub_pipeline) as service:
            shot.write_bytes(screenshot_png(35))
            wait_until(lambda: len(said()) >= 6)
            [stuck] = status.inbox_entries(daemon_settings, service.journal, True, [])["stuck"]
            assert stuck["why"].startswith("failed: unexpected: ")  # the file's error, not "waiting"
            fixed.set()
            wait_until(lambda: not shot.exists())
            recorded = [m for _at, _p, m in service.journal.last_errors(50) if "unexpected" in m]
    finally:
        logger.remove(sink)
    levels = [level for level, _ in said()]
    assert levels[:5] == ["ERROR", "WARNING", "WARNING", "ERROR", "WARNING"]
    assert set(levels[5:]) == {"WARNING"}
    assert [level for level, text in lines if "Traceback" in text] == [
        "DEBUG" if level == "WARNING" else level for level in levels
    ]
    assert all("\n" not in text.rstrip("\n") for level, text in said() if level == "WARNING")
    assert recorded == ["unexpected: 'x'", "unexpected: bug 1"]


@pytest.mark.parametrize("copy", [False, True])
def test_a_quarantine_swapped_for_a_link_at_the_move_itself_keeps_the_file(
    daemon_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy: bool
) -> None:
    """`_quarantine` replaced by a link out of the library after Library.refusal looked at it and
    before the file was linked in: the move followed the link and the file left the library. The
    move now links into the folder it opened and found inside the library (a directory fd), so such a
    swap is refused like the one refusal sees, the file left where it was and nothing placed outside
    (a copy too: `sort --copy`, and every move from an inbox on another filesystem)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    quarantine_dir = daemon_settings.library / "_quarantine"
    (quarantine_dir / "unsure").mkdir(parents=True)
    _swap_for_a_link_at_the_move(monkeypatch, quarantine_dir, outside, tmp_path / "moved-away")
    daemon_settings.inbox.mkdir(parents=True, exist_ok=True)
    shot = daemon_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(36))
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    library = Library(daemon_settings.library)
    with pytest.raises(Refused, match=f"cannot use {quarantine_dir} .*outside the library"):
        journaled_apply(
            journal, library, shot, content_id(shot), Decision.quarantine("unsure"), ModelId("m"), copy
        )
    journal.close()
    assert shot.is_file() and not list(outside.rglob("*.png"))


def test_the_review_pages_undo_does_not_follow_a_quarantine_swapped_for_a_link_at_the_move(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's `u` puts a labelled file back into the quarantine: `_quarantine` replaced by a
    link out of the library after its guard looked took the file out of the library. Refused now,
    the file left in its emotion folder, and `u` works again once the quarantine is put back."""
    import facesortd.durable as durable

    settings = review_settings(tmp_path, monkeypatch)
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    journal = Journal.for_state_dir(settings.state_dir)
    decisions = Decisions(settings, journal, Contents())
    [item] = scan(settings.library, {})
    labelled = decisions.label(item, "happy").path
    outside, quarantine_dir = tmp_path / "outside", settings.library / "_quarantine"
    outside.mkdir()
    real_make = _swap_for_a_link_at_the_move(monkeypatch, quarantine_dir, outside, tmp_path / "moved-away")
    with pytest.raises(DecisionError, match=f"cannot use {quarantine_dir} .*outside the library"):
        decisions.undo()
    assert labelled.is_file() and not list(outside.rglob("*.png"))
    monkeypatch.setattr(durable, "_make_folder", real_make)
    quarantine_dir.unlink()
    (tmp_path / "moved-away").rename(quarantine_dir)
    assert decisions.undo()[1] == files["a.png"] and files["a.png"].is_file() and not labelled.exists()
    journal.close()


def _swap_for_a_link_at_the_move(
    monkeypatch: pytest.MonkeyPatch, quarantine_dir: Path, outside: Path, moved_away: Path
) -> Callable[[Path], None]:
    """``quarantine_dir`` replaced by a link to ``outside`` at the move's first step (making its
    folder), after every look before the move: the instant a path check cannot see. Returns the
    real folder maker, to put back."""
    import facesortd.durable as durable

    real_make = durable._make_folder

    def swapped_first(folder: Path) -> None:
        if not quarantine_dir.is_symlink():
            quarantine_dir.rename(moved_away)
            quarantine_dir.symlink_to(outside)
        real_make(folder)

    monkeypatch.setattr(durable, "_make_folder", swapped_first)
    return real_make


def test_a_retry_called_for_while_a_worker_still_holds_the_failed_file_still_comes(
    daemon_settings: Settings,
) -> None:
    """The library put right just as a worker's move was refused (its retry timer set, the file not
    yet let go): the call to retry every waiting file now cancelled that timer and found the file
    busy, so it was queued by nobody and stayed in the inbox until a rescan or a restart (a daemon
    test timed out so under load). It is queued once the worker lets go."""
    service = Service(daemon_settings, stub_pipeline)
    shot = daemon_settings.inbox / "a.png"
    with service._lock:
        service._claimed.add(shot)  # the worker that failed it
    service._failures[shot] = 1
    service._later(300.0, shot)  # its backed-off retry
    service._retry_waiting_now()
    assert service._queue.empty()  # busy: not queued twice
    with service._lock:
        service._claimed.discard(shot)
    wait_until(lambda: not service._queue.empty())
    assert service._queue.get_nowait() == shot
    service._cancel_timers()


def test_a_move_lock_taken_at_once_starts_no_thread_to_say_a_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The words for a wait on the move lock come from a timer thread: started for every move, a
    backlog of 1,000 files started 1,000 threads for nothing. Only a lock that is not free starts one."""
    started = []
    monkeypatch.setattr("facesortd.progress.threading.Timer.start", lambda timer: started.append(timer))
    tmp_path.chmod(0o700)
    with move_lock(tmp_path):
        pass
    assert started == []


def test_a_sort_waiting_for_a_daemon_stopped_mid_move_says_what_it_waits_for(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon holding the move lock, stopped (Ctrl-Z, SIGSTOP) mid-move: `sort` beside it waited for
    the lock without a word, the person left to wonder whether it hung. After a second it says which
    process holds it, and how to let it go on; the sort ends once it does."""
    state = cli_settings.state_dir
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from facesortd.state import DaemonLock, move_lock;"
            " state = Path(sys.argv[1]); DaemonLock(state).acquire(); lock = move_lock(state);"
            " lock.__enter__(); print('held', flush=True); sys.stdin.read()",
            str(state),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    shots = tmp_path / "screens"
    shots.mkdir()
    (shots / "a.png").write_bytes(screenshot_png(5))
    codes: list[int] = []
    sorting = threading.Thread(target=lambda: codes.append(cli.main(["sort", str(shots)])))
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        holder.send_signal(signal.SIGSTOP)
        sorting.start()
        err: list[str] = []  # the sort's log: its own, on stderr (`main` sets it up)
        wait_until(lambda: err.append(capsys.readouterr().err) or "waiting for the move lock" in "".join(err))
        assert (shots / "a.png").exists() and not codes
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.communicate("", timeout=HUNG_S)
        sorting.join(timeout=HUNG_S)
    [line] = [line for line in "".join(err).splitlines() if "waiting for the move lock" in line]
    assert f"held by pid {holder.pid} (" in line and "the facesortd daemon: it is stopped" in line
    assert f"`kill -CONT {holder.pid}` lets it go on" in line
    assert codes == [0] and not (shots / "a.png").exists()
