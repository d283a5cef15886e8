"""The daemon on temp folders, with files arriving the ways real tools deliver them."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from synthetic import screenshot_png as _png_bytes
from synthetic import stub_pipeline as _stub_pipeline
from terminal import Terminal
from waiting import HUNG_S, running_daemon, wait_until

from facesortd import service
from facesortd.config import Settings
from facesortd.content import file_hash
from facesortd.journal import Journal
from facesortd.recovery import recover
from facesortd.service import Service


@pytest.fixture
def settings(daemon_settings: Settings) -> Settings:
    return daemon_settings


@pytest.fixture
def daemon(settings: Settings) -> Iterator[Service]:
    with running_daemon(settings, _stub_pipeline) as service:
        yield service


def _library_files(settings: Settings) -> dict[str, Path]:
    return {file_hash(p): p for p in settings.library.rglob("*") if p.is_file()}


def test_backlog_present_before_start_is_sorted(settings: Settings) -> None:
    settings.inbox.mkdir(parents=True)
    for i in range(5):
        (settings.inbox / f"old {i}.png").write_bytes(_png_bytes(i, face=i % 2 == 0))
    service = Service(settings, _stub_pipeline)
    thread = threading.Thread(target=service.run)
    thread.start()
    wait_until(lambda: not any(settings.inbox.iterdir()))
    service.stop()
    thread.join(timeout=HUNG_S)
    assert len(list((settings.library / "_quarantine" / "unsure").iterdir())) == 3
    assert len(list((settings.library / "_quarantine" / "no-face").iterdir())) == 2


@pytest.fixture
def open_checks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, Path]]:
    """When the daemon's settler found a file still held open (before the daemon starts)."""
    from facesortd import watch

    checks: list[tuple[float, Path]] = []
    real = watch._Handler.is_open

    def recording(self: watch._Handler, path: Path) -> bool:
        held = real(self, path)
        if held:
            checks.append((time.monotonic(), path))
        return held

    monkeypatch.setattr(watch._Handler, "is_open", recording)
    return checks


def test_slow_writer_is_not_touched_until_it_closes(
    open_checks: list[tuple[float, Path]], settings: Settings
) -> None:
    # Each of the four pauses lasts a settle time: 0.05 s, not the fixture's 0.2, is enough for that.
    settings = settings.model_copy(update={"watch": settings.watch.model_copy(update={"settle_s": 0.05})})
    data = _png_bytes(1)
    target = settings.inbox / "slow.png"
    with running_daemon(settings, _stub_pipeline):
        with target.open("wb") as fh:
            for i in range(0, len(data), len(data) // 4 + 1):
                fh.write(data[i : i + len(data) // 4 + 1])
                fh.flush()
                paused = time.monotonic() + settings.watch.settle_s
                # The writer pauses until the settler, a settle time later, found the file still
                # open: only the close may count as arrival.
                wait_until(lambda after=paused: any(t >= after and p == target for t, p in list(open_checks)))
                assert target.exists(), "moved while still being written"
        wait_until(lambda: not target.exists())
    assert hashlib.sha256(data).hexdigest() in _library_files(settings)


def test_write_then_rename_and_temp_names_are_left_alone(daemon: Service, settings: Settings) -> None:
    part = settings.inbox / "download.png.part"
    part.write_bytes(_png_bytes(2))
    hidden = settings.inbox / ".hidden.png"
    hidden.write_bytes(_png_bytes(3))
    notes = settings.inbox / "notes.txt"
    notes.write_text("not an image")
    # A real image dropped after them: once it is sorted, the events before it have been seen.
    (settings.inbox / "after.png").write_bytes(_png_bytes(4))
    wait_until(lambda: not (settings.inbox / "after.png").exists())
    assert part.exists() and hidden.exists()
    part.rename(settings.inbox / "download.png")
    wait_until(lambda: not (settings.inbox / "download.png").exists())
    assert hidden.exists() and notes.exists()


def test_copy_from_another_folder_and_odd_names(daemon: Service, settings: Settings, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    names = ["with space ü.png", "new\nline.png", "x" * 200 + ".png", "ünïcödé 表情.png"]
    for i, name in enumerate(names):
        (elsewhere / name).write_bytes(_png_bytes(10 + i))
        shutil.copy(elsewhere / name, settings.inbox / name)
    wait_until(lambda: not any(settings.inbox.iterdir()))
    assert {hashlib.sha256(_png_bytes(10 + i)).hexdigest() for i in range(4)} <= set(_library_files(settings))


def test_bad_files_go_to_unreadable_and_symlinks_stay(
    daemon: Service, settings: Settings, tmp_path: Path
) -> None:
    (settings.inbox / "empty.png").write_bytes(b"")
    (settings.inbox / "text.png").write_text("hello")
    (settings.inbox / "cut.png").write_bytes(_png_bytes(5)[:300])
    outside = tmp_path / "outside.png"
    outside.write_bytes(_png_bytes(6))
    (settings.inbox / "link.png").symlink_to(outside)
    wait_until(lambda: len(list((settings.library / "_quarantine" / "unreadable").glob("*"))) == 3)
    daemon.enqueue(settings.inbox / "link.png")  # even when asked directly
    wait_until(lambda: settings.inbox / "link.png" in daemon._told)  # looked at, and left
    assert (settings.inbox / "link.png").is_symlink() and outside.exists()
    (settings.inbox / "link.png").unlink()  # a real image under that name later is sorted, and forgotten
    (settings.inbox / "link.png").write_bytes(_png_bytes(7))
    wait_until(lambda: not (settings.inbox / "link.png").exists())
    wait_until(lambda: settings.inbox / "link.png" not in daemon._told)
    assert hashlib.sha256(_png_bytes(7)).hexdigest() in set(_library_files(settings))


@pytest.mark.slow
def test_burst_of_500_files_loses_nothing(daemon: Service, settings: Settings, tmp_path: Path) -> None:
    """Files renamed in far faster than the workers sort them (each move is fsynced and journaled,
    about 3 ms): every one is sorted, byte for byte. 500 are a queue hundreds deep, as 2000 were
    (no bound in the daemon or watchdog lies between; inotify's 16,384 events are out of reach of
    both), at a quarter of the time: this test was the suite's slowest."""
    staging = tmp_path / "staging"
    staging.mkdir()
    expected = set()
    for i in range(500):
        data = _png_bytes(i, face=False, shape=(16, 16))
        expected.add(hashlib.sha256(data).hexdigest())
        (staging / f"b{i}.png").write_bytes(data)
    for p in staging.iterdir():
        p.rename(settings.inbox / p.name)
    wait_until(lambda: not any(settings.inbox.iterdir()), timeout=120)
    wait_until(lambda: daemon.queue_length() == 0)
    files = [p for p in settings.library.rglob("*") if p.is_file()]
    assert len(files) == 500 and {file_hash(p) for p in files} == expected


def test_disk_full_keeps_the_file_in_the_inbox_and_retries(
    daemon: Service, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from facesortd.library import Library

    real_apply = Library.apply
    calls = []

    def full_once(self: Library, src: Path, decision, **kw):  # the library's disk is full the first time
        calls.append(src)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_apply(self, src, decision, **kw)

    monkeypatch.setattr(Library, "apply", full_once)
    monkeypatch.setattr("facesortd.service.MAX_BACKOFF_S", 0.5)
    (settings.inbox / "a.png").write_bytes(_png_bytes(7))
    wait_until(lambda: len(calls) == 1)
    assert (settings.inbox / "a.png").exists()
    wait_until(lambda: not (settings.inbox / "a.png").exists())
    assert len(calls) == 2 and daemon.journal.last_errors()[0][2].startswith("move failed")


def test_a_file_deleted_while_it_waits_for_its_retry_is_forgotten(
    daemon: Service, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose move failed, then deleted by its owner before the retry: the daemon kept its
    failure count for good (a small leak per such file in a service that runs for months)."""
    import errno

    from facesortd.library import Library

    def full(self: Library, src: Path, decision, **kw):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Library, "apply", full)
    monkeypatch.setattr("facesortd.service.MAX_BACKOFF_S", 0.3)
    path = settings.inbox / "a.png"
    path.write_bytes(_png_bytes(7))
    wait_until(lambda: path in daemon._failures)
    path.unlink()
    wait_until(lambda: path not in daemon._failures)
    assert not daemon._waiting()


def test_library_errors_keep_the_file_in_the_inbox_and_retry(daemon: Service, settings: Settings) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    quarantine = settings.library / "_quarantine"
    quarantine.mkdir(parents=True)
    quarantine.chmod(0o500)
    try:
        (settings.inbox / "a.png").write_bytes(_png_bytes(7))
        wait_until(lambda: daemon.journal.last_errors())  # the move failed and will be retried
        assert (settings.inbox / "a.png").exists()
    finally:
        quarantine.chmod(0o700)
    wait_until(lambda: not (settings.inbox / "a.png").exists())


def test_undo_puts_a_file_back_and_the_daemon_leaves_it(daemon: Service, settings: Settings) -> None:
    from facesortd import cli

    (settings.inbox / "oops.png").write_bytes(_png_bytes(8))
    wait_until(lambda: daemon.journal.done_moves(limit=1))  # journaled as done after it left the inbox
    env = {
        "FACESORTD_STATE_DIR": str(settings.state_dir),
        "FACESORTD_LIBRARY": str(settings.library),
        "FACESORTD_INBOX": str(settings.inbox),
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert cli.main(["undo", "1"]) == 0
    assert (settings.inbox / "oops.png").exists()
    daemon.enqueue(settings.inbox / "oops.png")
    wait_until(lambda: settings.inbox / "oops.png" in daemon._told)  # looked at, and left
    assert (settings.inbox / "oops.png").exists()


def test_recovery_rolls_back_or_completes_interrupted_moves(settings: Settings) -> None:
    from facesortd.decide import Decision

    settings.inbox.mkdir(parents=True)
    dest_dir = settings.library / "happy"
    dest_dir.mkdir(parents=True)
    journal = Journal.for_state_dir(settings.state_dir)
    decision = Decision("sorted", emotion="happy", confidence=0.9)
    a = settings.inbox / "a.png"
    a.write_bytes(b"A" * 100)
    os.link(a, dest_dir / "a.png")  # crash after link, before unlink: file in both places
    journal.plan(file_hash(a), a, dest_dir / "a.png", decision, "m")
    b = settings.inbox / "b.png"
    (dest_dir / "b.png").write_bytes(b"B" * 100)  # crash after unlink, before 'done'
    journal.plan(file_hash(dest_dir / "b.png"), b, dest_dir / "b.png", decision, "m")
    (dest_dir / ".facesortd-tmp-half").write_bytes(b"half a copy")
    lines = list(recover(journal))
    assert len(lines) == 2
    assert a.read_bytes() == b"A" * 100 and not (dest_dir / "a.png").exists()
    assert (dest_dir / "b.png").exists() and not b.exists()
    assert not (dest_dir / ".facesortd-tmp-half").exists()
    assert journal.planned() == [] and journal.counts(settings.library) == {"happy": 1}


def test_sd_notify_ready_and_status(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    service = Service(settings, _stub_pipeline)
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        messages = {sock.recv(4096).decode() for _ in range(2)}
        assert "READY=1" in messages and any(m.startswith("STATUS=") for m in messages)
    finally:
        service.stop()
        thread.join(timeout=HUNG_S)
        sock.close()


def test_status_reports_counts(daemon: Service, settings: Settings) -> None:
    from facesortd.status import report

    (settings.inbox / "s.png").write_bytes(_png_bytes(9, face=False))
    wait_until(lambda: daemon.journal.done_moves(limit=1))  # counted once journaled as done
    text = report(settings)
    assert "daemon: running" in text and "quarantine/no-face 1" in text and "today: 1 file(s)" in text


def test_a_file_waiting_for_its_retry_is_not_offered_again_by_the_rescan(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The periodic rescan handed a file waiting in back-off to the workers again: one more failed
    attempt, error line and journal row per rescan, and one more retry timer each time, all of them
    firing later. Now it waits its time; and at no moment do two workers hold it."""
    import errno

    from loguru import logger

    from facesortd.library import Library

    real_apply = Library.apply
    calls: list[float] = []
    inside: list[Path] = []
    overlaps: list[Path] = []

    def full_once(self: Library, src: Path, decision, **kw):  # type: ignore[no-untyped-def]
        overlaps.extend(p for p in inside if p == src)
        inside.append(src)
        try:
            calls.append(time.monotonic())
            if len(calls) == 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_apply(self, src, decision, **kw)
        finally:
            inside.remove(src)

    monkeypatch.setattr(Library, "apply", full_once)
    monkeypatch.setattr("facesortd.service.MAX_BACKOFF_S", 0.5)  # the first back-off: 2 s otherwise
    lines: list[str] = []
    logger.add(lines.append, level="ERROR", format="{message}")
    settings = settings.model_copy(
        update={"watch": settings.watch.model_copy(update={"rescan_interval_s": 0.1})}
    )
    with running_daemon(settings, _stub_pipeline) as daemon:
        assert settings.watch.workers == 2
        (settings.inbox / "a.png").write_bytes(_png_bytes(7))
        wait_until(lambda: not (settings.inbox / "a.png").exists())
        wait_until(lambda: not daemon.queue_length())
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.5  # the first back-off delay, rescans or not
    assert sum("cannot move it into the library" in line for line in lines) == 1
    assert overlaps == []


def _full_the_first_time(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The library's disk full at the first move only; when each move was tried."""
    import errno

    from facesortd.library import Library

    real_apply = Library.apply
    calls: list[float] = []

    def full_once(self: Library, src: Path, decision, **kw):  # type: ignore[no-untyped-def]
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_apply(self, src, decision, **kw)

    monkeypatch.setattr(Library, "apply", full_once)
    return calls


def test_an_event_for_a_file_waiting_for_its_retry_leaves_it_to_its_timer(
    daemon: Service, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A close event for a file backing off after a failed move (a late one, or a program that
    opened it to write and wrote nothing) queued it at once: the back-off only held for rescans."""
    calls = _full_the_first_time(monkeypatch)
    # 0.5 s, not the 2 s default: still well above the next settler tick (0.05 s), or the 0.2 s
    # settle, after which the event would queue it.
    monkeypatch.setattr(service, "FIRST_BACKOFF_S", 0.5)
    path = settings.inbox / "a.png"
    path.write_bytes(_png_bytes(7))
    wait_until(lambda: path in daemon._waiting())
    open(path, "ab").close()  # a close-write event, the file unchanged
    wait_until(lambda: not path.exists())
    assert len(calls) == 2 and calls[1] - calls[0] >= service.FIRST_BACKOFF_S


def test_a_file_renumbered_by_a_fuse_drive_while_it_waits_for_its_retry_still_waits(
    daemon: Service, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An inbox on a FUSE drive (exfat-fuse) gives a file a new inode number whenever the kernel
    drops it from its cache: the file backing off after a failed move was taken for a new arrival
    at its next event and tried at once, back-off or not."""
    calls = _full_the_first_time(monkeypatch)
    monkeypatch.setattr(service, "FIRST_BACKOFF_S", 0.5)
    path = settings.inbox / "a.png"
    path.write_bytes(_png_bytes(7))
    wait_until(lambda: path in daemon._waiting())
    seen = path.stat()
    renumbered = tmp_path / "a.png"
    shutil.copyfile(path, renumbered)
    os.utime(renumbered, ns=(seen.st_atime_ns, seen.st_mtime_ns))
    os.replace(renumbered, path)  # the same file, as the drive numbers it now
    wait_until(lambda: not path.exists())
    assert len(calls) == 2 and calls[1] - calls[0] >= service.FIRST_BACKOFF_S


def test_a_new_file_under_the_name_of_one_waiting_for_its_retry_goes_at_once(
    daemon: Service, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Another file renamed into place under the name of one backing off (another inode) is a new
    arrival: it is sorted now, not when the old file's retry falls due."""
    calls = _full_the_first_time(monkeypatch)
    monkeypatch.setattr(service, "FIRST_BACKOFF_S", 60.0)
    monkeypatch.setattr(service, "MAX_BACKOFF_S", 60.0)
    path = settings.inbox / "a.png"
    path.write_bytes(_png_bytes(7))
    wait_until(lambda: path in daemon._waiting())
    replacement = tmp_path / "new.png"
    replacement.write_bytes(_png_bytes(8))
    new = file_hash(replacement)
    os.replace(replacement, path)
    wait_until(lambda: new in _library_files(settings))
    assert len(calls) == 2 and not daemon._waiting()


def test_a_backlog_bar_the_daemon_was_stopped_in_the_middle_of_ends_its_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`facesortd run` on a terminal stopped during its backlog left the bar drawn without a line
    end: whatever came next (the shell's prompt, `facesortd: interrupted`) went on after its text."""
    import itertools
    import sys
    from types import SimpleNamespace

    from loguru import logger

    from facesortd.progress import LogStream

    settings.inbox.mkdir(parents=True)
    for i in range(6):
        (settings.inbox / f"old {i}.png").write_bytes(_png_bytes(i))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr("facesortd.progress.time", SimpleNamespace(monotonic=itertools.count().__next__))
    sink = logger.add(LogStream(terminal), format="{message}")
    release, first = threading.Event(), threading.Lock()

    def one_then_held(settings: Settings):  # type: ignore[no-untyped-def]
        pipeline = _stub_pipeline(settings)
        decide = pipeline.decide

        def held(path: Path):  # type: ignore[no-untyped-def]
            if not first.acquire(blocking=False):  # every file but the first waits for the stop
                release.wait(timeout=30)
            return decide(path)

        pipeline.decide = held
        return pipeline

    service = Service(settings, one_then_held)
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        wait_until(lambda: service.backlog is not None and service.backlog.done >= 1)
        service.stop()
    finally:
        release.set()
        thread.join(timeout=HUNG_S)
        logger.remove(sink)
    screen = terminal.screen()
    assert screen[-1] == "", screen  # the line after the bar is free
    bar = screen[-2]
    assert bar.startswith("[") and "backlog" in bar and "6/6" not in bar, screen
