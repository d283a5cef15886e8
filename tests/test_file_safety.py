"""Nothing lost, nothing stalled: the state folder's locks, concurrent sorters, hostile names, a
full state disk, a damaged or forged journal. Each test here failed before issue #14's fixes."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import BrightBlobDetector, screenshot_png, stub_pipeline
from tree_files import files_in as _files
from waiting import HUNG_S, running_daemon, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from daemon_harness import forged_tiff

from facesortd import cli
from facesortd.config import Settings, load_settings
from facesortd.content import file_hash
from facesortd.decide import Decision, Pipeline
from facesortd.durable import TMP_PREFIX, move_no_replace
from facesortd.file_names import NAME_MAX
from facesortd.journal import Journal, JournalError, ModelId
from facesortd.library import Library
from facesortd.placement import journaled_apply
from facesortd.recovery import recover
from facesortd.service import Service
from facesortd.shown_names import one_line
from facesortd.state import (
    DAEMON_LOCK,
    STALE_TEMP_S,
    DaemonLock,
    StateBusy,
    how_to_stop,
    move_lock,
    retrain_lock,
)

HAPPY = Decision("sorted", emotion="happy", confidence=0.9)


@pytest.fixture
def settings(daemon_settings: Settings) -> Settings:
    return daemon_settings


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The CLI sees the same folders as the daemon under test."""
    for key in ("inbox", "library", "state_dir"):
        monkeypatch.setenv(f"FACESORTD_{key.upper()}", str(getattr(settings, key)))
    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    return settings


@pytest.fixture
def daemon(settings: Settings) -> Iterator[Service]:
    with running_daemon(settings, stub_pipeline) as service:
        yield service


# -- 1, 2: one daemon per state folder; no move is recovered, or made twice, while it runs ---------


def test_a_second_daemon_is_refused_naming_the_first(
    env: Settings, daemon: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"pid {os.getpid()}" in err and "\n" not in err and "Traceback" not in err


def test_the_daemon_refuses_an_inbox_inside_the_library(settings: Settings) -> None:
    """The library's folders are read as a person's labels: files waiting in an inbox inside it
    would be taken as labelled 'inbox'. Refused with exit 2, which systemd does not restart (in a
    process of its own, so a daemon that wrongly starts fails the test instead of hanging it)."""
    env = {
        **os.environ,
        "FACESORTD_INBOX": str(settings.library / "inbox"),
        "FACESORTD_LIBRARY": str(settings.library),
        "FACESORTD_STATE_DIR": str(settings.state_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "facesortd", "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "overlap" in done.stderr and "Traceback" not in done.stderr
    assert not (settings.state_dir / "status.json").exists()  # refused before it started


@pytest.mark.parametrize("command", [["run"], ["sort"]])
def test_a_folder_that_cannot_be_made_is_said_with_its_fix(settings: Settings, command: list[str]) -> None:
    """A library (or inbox) that cannot be made (below another user's folder, or below a file) ended
    `run` and a bare `sort` in a traceback, exit 1, which systemd restarts into it again and again."""
    below_a_file = settings.state_dir.parent / "notes.txt"
    below_a_file.write_text("a file, not a folder")
    name = "library" if command == ["run"] else "inbox"
    env = {
        **os.environ,
        "FACESORTD_INBOX": str(settings.inbox),
        "FACESORTD_LIBRARY": str(settings.library),
        "FACESORTD_STATE_DIR": str(settings.state_dir),
        f"FACESORTD_{name.upper()}": str(below_a_file / name),
    }
    done = subprocess.run(
        [sys.executable, "-m", "facesortd", *command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr == (  # said up front by config.not_a_folder, naming the part that is a file
        f"facesortd: error: {name} {below_a_file / name} is not a folder ({below_a_file}, a part of its "
        f"path, is not a folder): point {name} at a folder, or move {below_a_file} away\n"
    )


def test_the_daemon_lock_is_freed_when_its_holder_goes(tmp_path: Path) -> None:
    """The second daemon is told how to stop the first: a `facesortd run` in a terminal by Ctrl-C or
    kill (it was told `systemctl --user stop facesortd` alone, which fails for a daemon systemd does
    not run), one systemd runs by systemctl (its cgroup is the unit's)."""
    with DaemonLock(tmp_path), pytest.raises(StateBusy) as caught:
        DaemonLock(tmp_path).acquire()
    assert f"stop it first (Ctrl-C in the terminal it runs in, or kill {os.getpid()})" in str(caught.value)
    DaemonLock(tmp_path).acquire().release()


def test_recovery_waits_for_a_live_move_instead_of_undoing_it(settings: Settings) -> None:
    """The lost-files race: recovery between a running move's link and unlink deleted the file."""
    settings.inbox.mkdir(parents=True)
    journal = Journal.for_state_dir(settings.state_dir)
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(1))
    linked, finish = threading.Event(), threading.Event()
    real_fsync = __import__("facesortd.durable", fromlist=["fsync_dir"]).fsync_dir

    def slow_fsync(path: Path) -> None:  # the running move pauses between link and unlink
        real_fsync(path)
        if path.name == "happy" and not linked.is_set():
            linked.set()
            finish.wait(10)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("facesortd.durable.fsync_dir", slow_fsync)
        mover = threading.Thread(
            target=journaled_apply,
            args=(journal, Library(settings.library), src, file_hash(src), HAPPY, ModelId("m")),
        )
        mover.start()
        linked.wait(10)
        recovering = threading.Thread(target=lambda: list(recover(Journal.for_state_dir(settings.state_dir))))
        recovering.start()
        recovering.join(0.3)
        assert recovering.is_alive(), "recovery must wait for the live move"
        finish.set()
        mover.join(timeout=HUNG_S)
        recovering.join(timeout=HUNG_S)
    assert [p.name for p in _files(settings.library)] == ["a.png"] and not src.exists()


def test_two_sorters_on_one_file_place_it_once(settings: Settings) -> None:
    """Daemon and `sort` (or two workers) deciding on the same file at once: one wins, one skips."""
    settings.inbox.mkdir(parents=True)
    src = settings.inbox / "x.png"
    src.write_bytes(screenshot_png(2))
    digest = file_hash(src)
    real_fsync = __import__("facesortd.durable", fromlist=["fsync_dir"]).fsync_dir
    outcomes: list[str] = []
    # The journal there before the race, as a running daemon's is: two first openings at once take
    # turns on the move lock to switch it to WAL (Journal.__init__), and the first mover, holding that
    # lock in its slow fsync below, waited for the second to have opened: now and then "placed" alone.
    Journal.for_state_dir(settings.state_dir).close()

    started = [threading.Event(), threading.Event()]

    def sort_it(i: int) -> None:
        journal = Journal.for_state_dir(settings.state_dir)
        started[i].set()
        try:
            journaled_apply(journal, Library(settings.library), src, digest, HAPPY, ModelId("m"))
            outcomes.append("placed")
        except FileNotFoundError:
            outcomes.append("gone")

    def slow_fsync(path: Path) -> None:
        """The first mover's disk is slow: it is still moving when the second one comes for the file."""
        real_fsync(path)
        assert all(e.wait(10) for e in started)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("facesortd.durable.fsync_dir", slow_fsync)
        sorters = [threading.Thread(target=sort_it, args=(i,)) for i in range(2)]
        for t in sorters:
            t.start()
        for t in sorters:
            t.join(timeout=HUNG_S)
    assert sorted(outcomes) == ["gone", "placed"]
    assert len(_files(settings.library)) == 1
    assert Journal.for_state_dir(settings.state_dir).planned() == []


def test_a_file_a_killed_process_was_moving_is_sorted_once_by_the_one_beside_it(settings: Settings) -> None:
    """`sort INBOX` beside the daemon (or the daemon beside `sort`), one of them killed between
    linking a file into the library and unlinking it from the inbox: the other, running on, moved
    the file again under a numbered name, and the killed one's recovery at its next start completed
    its own move too: the file twice in the library. The killed move is brought to an end first
    now (recovery, under the move lock a dead process no longer holds), and the file moved once."""
    settings.inbox.mkdir(parents=True)
    journal = Journal.for_state_dir(settings.state_dir)
    src = settings.inbox / "a.png"
    src.write_bytes(screenshot_png(5))
    digest, happy = file_hash(src), settings.library / "happy"
    journal.plan(digest, src, happy / "a.png", HAPPY, "m")
    happy.mkdir(parents=True)
    os.link(src, happy / "a.png")  # killed here: linked, not yet unlinked from the inbox
    # the one running on:
    journaled_apply(journal, Library(settings.library), src, digest, HAPPY, ModelId("m"))
    list(recover(journal))  # the killed one's next start
    assert [p.relative_to(settings.library) for p in _files(settings.library)] == [Path("happy/a.png")]
    assert not src.exists() and journal.planned() == []
    journal.close()


def test_a_path_in_progress_is_not_queued_again(settings: Settings) -> None:
    entered, release = threading.Event(), threading.Event()

    class Slow(BrightBlobDetector):
        def detect(self, gray: np.ndarray) -> list:  # type: ignore[override]
            entered.set()
            release.wait(10)
            return super().detect(gray)

    def slow(s: Settings) -> Pipeline:
        return Pipeline(Slow(), None, s.recognition, s.images)  # type: ignore[arg-type]

    with running_daemon(settings, slow) as service:
        try:
            (settings.inbox / "a.png").write_bytes(screenshot_png(3))
            entered.wait(10)
            service.enqueue(settings.inbox / "a.png")  # a rescan finds it while a worker holds it
            assert service._queue.qsize() == 0
        finally:
            release.set()
    assert len(_files(settings.library)) == 1


def test_sort_beside_the_daemon_skips_what_the_daemon_took(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sort INBOX` deciding on a file the daemon moves meanwhile: skipped, not an error, rc 0."""
    env.inbox.mkdir(parents=True)
    (env.inbox / "a.png").write_bytes(screenshot_png(4))
    real_decide = Pipeline.decide

    def decide_then_daemon_moves_it(self: Pipeline, path: Path) -> Decision:
        decision = real_decide(self, path)
        move_no_replace(path, env.library / "happy" / path.name)
        return decision

    monkeypatch.setattr(Pipeline, "decide", decide_then_daemon_moves_it)
    assert cli.main(["sort", str(env.inbox)]) == 0
    assert "gone meanwhile" in capsys.readouterr().err
    assert len(_files(env.library)) == 1


# -- 3, 4: hostile names, a full state disk, a worker that cannot go on -----------------------------


def test_names_that_are_not_utf8_are_sorted_and_undoable(
    env: Settings, daemon: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [os.fsdecode(b"\xff\xfe shot.png"), os.fsdecode(b"caf\xe9.png"), "plain.png"]
    for i, name in enumerate(names):
        (env.inbox / name).write_bytes(screenshot_png(10 + i))
    wait_until(lambda: len(daemon.journal.done_moves(limit=3)) == 3)  # all three journaled as done
    assert sorted(p.name for p in _files(env.library)) == sorted(names)
    assert cli.main(["undo", "3"]) == 0
    assert sorted(p.name for p in env.inbox.iterdir()) == sorted(names)


def test_sort_of_a_name_that_is_not_utf8(env: Settings) -> None:
    env.inbox.mkdir(parents=True)
    name = os.fsdecode(b"\xff shot.png")
    (env.inbox / name).write_bytes(screenshot_png(5))
    assert cli.main(["sort", str(env.inbox)]) == 0
    assert [p.name for p in _files(env.library)] == [name]


def test_names_that_are_not_utf8_are_shown_on_a_utf8_terminal(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A UTF-8 terminal (Python's stdout then refuses the name's stray bytes): `sort --dry-run`,
    `detect` and `status` died with a UnicodeEncodeError traceback, `sort --dry-run` half way
    through its list. The bytes are shown as \\xNN, as `undo` already showed them."""
    env.inbox.mkdir(parents=True)
    path = env.inbox / os.fsdecode(b"\xff shot.png")
    path.write_bytes(screenshot_png(5))
    for command in (["sort", "--dry-run", str(env.inbox)], ["detect", str(path)], ["status"]):
        assert cli.main(command) == 0
        assert "\\xff shot.png" in capsys.readouterr().out
    assert cli.main(["sort", str(env.inbox)]) == 0
    assert cli.main(["undo", "1"]) == 0
    assert capsys.readouterr().out.endswith(f"\\xff shot.png -> {env.inbox}/\\xff shot.png\n")
    assert path.exists()


def test_a_line_break_or_other_control_character_in_a_name_stays_on_its_line(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name with a newline split `sort --dry-run`'s plan, `detect`, `status`, `undo` and the log
    into lines that read as other files (and an escape sequence in one recoloured the terminal).
    Each such character is shown as \\xNN, as a stray byte is; --json keeps the exact name."""
    env.inbox.mkdir(parents=True)
    names = ["two\nlines.png", "tab\there.png", "\x1b[31mred.png"]
    shown = ["two\\x0alines.png", "tab\\x09here.png", "\\x1b[31mred.png"]
    for i, name in enumerate(names):
        (env.inbox / name).write_bytes(screenshot_png(20 + i))

    def lines(out: str) -> list[str]:
        assert not any(c in out.replace("\n", "") for c in "\t\x1b"), out
        return out.splitlines()

    assert cli.main(["sort", "--dry-run", str(env.inbox)]) == 0
    plan = lines(capsys.readouterr().out)
    assert len(plan) == 3 and all(any(line.startswith(f"{env.inbox}/{s} ") for line in plan) for s in shown)
    assert cli.main(["sort", "--dry-run", "--json", str(env.inbox)]) == 0
    assert sorted(json.loads(line)["path"] for line in capsys.readouterr().out.splitlines()) == sorted(
        str(env.inbox / name) for name in names
    )
    assert cli.main(["detect", str(env.inbox / names[0])]) == 0
    assert lines(capsys.readouterr().out)[0].startswith(f"{env.inbox}/{shown[0]}: ")
    assert cli.main(["status"]) == 0
    said = lines(capsys.readouterr().out)
    assert all(f"  {s}: waiting to be sorted (the daemon is not running)" in said for s in shown), said
    assert cli.main(["sort", str(env.inbox)]) == 0
    logged = [line for line in lines(capsys.readouterr().err) if " -> " in line]
    assert len(logged) == 3 and all(any(s in line for line in logged) for s in shown), logged
    assert cli.main(["undo", "3"]) == 0
    back = lines(capsys.readouterr().out)
    assert len(back) == 3 and all(any(line.endswith(f"{env.inbox}/{s}") for line in back) for s in shown)
    assert sorted(p.name for p in env.inbox.iterdir()) == sorted(names)


def _read_back(line: str) -> str:
    """A line of ``one_line`` read back by the rule its module states: ``\\\\`` one backslash,
    ``\\xNN`` a control character below 80 and a stray byte from 80, ``\\uNNNN`` a character, any
    other backslash itself."""

    def char(found: re.Match[str]) -> str:
        escape = found[1]
        if escape == "\\":
            return "\\"
        code = int(escape[1:], 16)
        return chr(0xDC00 + code) if escape[0] == "x" and code >= 0x80 else chr(code)

    return re.sub(r"\\(\\|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})", char, line)


AMBIGUOUS_NAMES = [
    "a\\x0a.png",  # the text \x0a, not a line break
    "a\n.png",
    "a\\\n.png",  # a backslash, then a line break
    "a\\\\x0a.png",
    "a\\xff.png",  # the text \xff, not a stray byte
    os.fsdecode(b"a\xff.png"),
    "a\\" + os.fsdecode(b"\xff.png"),
    "a\x85.png",  # NEL (valid UTF-8), not the stray byte 0x85
    os.fsdecode(b"a\x85.png"),
    "a\\u2028.png",
    "a\u2028.png",
    "a\\x0A.png",
    "end\\",
    "a\u200b.png",  # a character of no width: printed as it is, it read as a.png
    "a\\u200b.png",
    "a\\\ufeff.png",
]


def test_a_name_holding_the_text_of_an_escape_is_not_shown_as_the_escaped_character() -> None:
    """A name holding the text ``\\x0a`` showed as the one holding a line break, ``\\xff`` as the
    one holding that stray byte, and a NEL (U+0085) as the stray byte 0x85: two files, one line. Each
    line now reads back as its own name; a backslash nothing could take for an escape is left alone."""
    lines = [one_line(name) for name in AMBIGUOUS_NAMES]
    assert [_read_back(line) for line in lines] == AMBIGUOUS_NAMES
    assert len(set(lines)) == len(lines) and not any(c in "".join(lines) for c in "\n\x85\u2028\u200b\ufeff")
    assert one_line("a\\x0a.png") == "a\\\\x0a.png" and one_line("a\n.png") == "a\\x0a.png"
    for plain in ("C:\\dir\\a.png", "a\\b.png", "a\\xyz.png", "end\\", "ascii.png"):
        assert one_line(plain) == plain


def test_sort_shows_a_name_with_the_text_of_a_line_break_apart_from_one_with_a_line_break(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    env.inbox.mkdir(parents=True)
    for i, name in enumerate(["a\\x0a.png", "a\n.png"]):
        (env.inbox / name).write_bytes(screenshot_png(40 + i))
    assert cli.main(["sort", "--dry-run", str(env.inbox)]) == 0
    plan = sorted(line.split(" ", 1)[0] for line in capsys.readouterr().out.splitlines())
    assert plan == [f"{env.inbox}/a\\\\x0a.png", f"{env.inbox}/a\\x0a.png"], plan


def test_the_model_commands_show_a_path_with_a_line_break_on_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`model use`, `model` and `train` printed the model's path as it was: a state folder (or an
    --out) named with a line break split "model in force is now ..." into two lines, where `sort`,
    `detect`, `status` and `undo` showed it escaped."""
    from facesortd.model_store import load_model, shipped_model

    shipped = shipped_model()
    assert shipped is not None
    state = tmp_path / "state\nhere"
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(state))
    mine = tmp_path / "mine.fsm.npz"
    model = load_model(shipped)  # another model than the shipped one in force (`model use` judges by bytes)
    model.info["note"] = "mine"
    model.save(mine)
    assert cli.main(["model", "use", str(mine)]) == 0
    said = capsys.readouterr().out
    assert said.startswith("model in force is now ") and said.count("\n") == 1, said
    assert "state\\x0ahere/models/" in said


def test_json_shows_names_that_are_not_utf8_one_way(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json` wrote such a name as a lone surrogate (``\\udcff``), which strict JSON readers refuse
    and others turn into U+FFFD. Each string is now valid text showing the byte as ``\\xNN`` (as the
    terminal does), and ``<member>_bytes_b64`` beside it holds the name's exact bytes."""
    env.inbox.mkdir(parents=True)
    path = env.inbox / os.fsdecode(b"\xff shot.png")
    path.write_bytes(screenshot_png(5))
    (env.inbox / "café.png").write_bytes(screenshot_png(6))  # UTF-8: as it is, no bytes member
    found: list[dict[str, object]] = []
    for command in (["sort", "--dry-run", "--json", str(env.inbox)], ["detect", "--json", str(env.inbox)]):
        assert cli.main(command) == 0
        out = capsys.readouterr().out
        assert "\\ud" not in out  # no lone surrogate escapes
        found += map(json.loads, out.splitlines())
    assert cli.main(["status", "--json"]) == 0
    found += json.loads(capsys.readouterr().out)["inbox"]["stuck"]
    odd = [d for d in found if "shot" in str(d["path"])]
    plain = [d for d in found if "café" in str(d["path"])]
    assert len(odd) == len(plain) == 3
    for d in odd:
        assert d["path"] == f"{env.inbox}/\\xff shot.png"
        assert base64.b64decode(str(d["path_bytes_b64"])) == os.fsencode(path)
    sorted_to = Path(os.fsdecode(base64.b64decode(str(odd[0]["destination_bytes_b64"]))))
    assert sorted_to.name == path.name and str(odd[0]["destination"]).endswith("\\xff shot.png")
    assert all(d["path"] == str(env.inbox / "café.png") and "path_bytes_b64" not in d for d in plain)


def test_a_full_state_disk_stalls_nothing(daemon: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite 'database or disk is full' in plan, and again when recording the error: the file
    stays in the inbox, the workers live on and sort it once there is room again."""
    full = [True]
    real_plan, real_error = Journal.plan, Journal.error

    def plan(self: Journal, *args: object, **kwargs: bool) -> int:
        if full[0]:
            raise sqlite3.OperationalError("database or disk is full")
        return real_plan(self, *args, **kwargs)  # type: ignore[arg-type]

    def error(self: Journal, *args: object) -> None:
        if full[0]:
            raise sqlite3.OperationalError("database or disk is full")
        real_error(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Journal, "plan", plan)
    monkeypatch.setattr(Journal, "error", error)
    monkeypatch.setattr("facesortd.service.MAX_BACKOFF_S", 0.3)
    inbox = daemon.settings.inbox
    for i in range(3):  # more files than workers: none may take a worker with it
        (inbox / f"{i}.png").write_bytes(screenshot_png(20 + i))
    wait_until(lambda: daemon._failures and sum(daemon._failures.values()) >= 4)
    assert len(list(inbox.iterdir())) == 3
    # Long full: each file's next retry is now 10 minutes away ...
    monkeypatch.setattr("facesortd.service.MAX_BACKOFF_S", 600.0)
    with daemon._lock:
        daemon._failures.update(dict.fromkeys(daemon._failures, 20))
    wait_until(lambda: len(daemon._failures) == 3 and min(daemon._failures.values()) > 20)
    full[0] = False
    (inbox / "new.png").write_bytes(screenshot_png(23))  # ... but the first move that works again
    wait_until(lambda: not any(inbox.iterdir()))  # sends every waiting file now
    assert len(_files(daemon.settings.library)) == 4


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the point of it
def test_a_worker_that_dies_stops_the_daemon_with_exit_1(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fatal(*_args: object) -> None:
        raise SystemExit("something only we can cause")

    monkeypatch.setattr(Service, "process", fatal)
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "a.png").write_bytes(screenshot_png(6))
    assert Service(settings, stub_pipeline).run() == 1
    assert (settings.inbox / "a.png").exists()
    # The last status a stopping daemon writes counts nothing left to do (the live worker's wake-up
    # was taken; none was put for the dead one).
    assert json.loads((settings.state_dir / "status.json").read_text())["queue"] == 0


def test_a_main_loop_that_dies_ends_the_workers_too(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main loop wakes the workers when it stops. If it died instead (an error only we can
    cause), they waited for a stop that came only with SIGTERM, once systemd's watchdog gave up on
    the silent process. Now they finish, and `run` ends with the error (exit 1: restarted)."""
    from facesortd.watch import InboxWatcher

    def broken(_self: InboxWatcher) -> bool:
        raise RuntimeError("something only we can cause")

    monkeypatch.setattr(InboxWatcher, "alive", broken)
    service = Service(settings, stub_pipeline)
    raised: list[BaseException] = []

    def run() -> None:
        try:
            service.run()
        except RuntimeError as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=HUNG_S)
    stuck = [t for t in threading.enumerate() if t.name.startswith("worker-")]
    for _worker in stuck:  # free them, or the test run could not end
        service.stop()
        service._queue.put(None)
    assert not thread.is_alive() and [str(exc) for exc in raised] == ["something only we can cause"]
    assert not stuck


# -- 5: images that lie about their size, or that only OpenCV can judge -----------------------------


@pytest.mark.parametrize(
    "data",
    [
        forged_tiff(32000, 32000),
        forged_tiff(8000, 8000),
        b"P5\n# a comment\n18000 18000\n255\n" + bytes(64),
        b"P6 30000 30000 255\n" + bytes(64),
        b"P7\nWIDTH 20000\nHEIGHT 20000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + bytes(64),
    ],
    ids=["tiff-32k", "tiff-8k", "pgm-18k", "ppm-30k", "pam-20k"],
)
def test_size_lies_in_any_format_are_refused_before_decoding(tmp_path: Path, data: bytes) -> None:
    from facesortd.images import UnreadableImage, read_image

    path = tmp_path / "bomb.png"  # the suffix lies too
    path.write_bytes(data)
    # This thread's CPU time, not the wall clock's: a loaded machine stretches the one, not the other.
    started = time.thread_time()
    with pytest.raises(UnreadableImage, match=r"images\.max_pixels"):
        read_image(path, load_settings().images)
    assert time.thread_time() - started < 0.5


def test_whatever_opencv_raises_while_decoding_is_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facesortd.images import UnreadableImage, read_image

    monkeypatch.setattr("facesortd.images.header_size", lambda _data: None)  # a format we do not parse
    path = tmp_path / "huge.tiff"
    path.write_bytes(forged_tiff(20000, 20000))
    with pytest.raises(UnreadableImage, match="OpenCV refused"):
        read_image(path, load_settings().images)


def test_a_one_pixel_high_image_is_quarantined_not_raised(tmp_path: Path) -> None:
    from facesortd.detect import FaceDetector

    path = tmp_path / "line.png"
    cv2.imwrite(str(path), np.full((1, 10000, 3), 128, np.uint8))
    settings = load_settings()
    decision = Pipeline(FaceDetector(settings.detection), None, settings.recognition, settings.images).decide(
        path
    )
    assert decision.reason == "unreadable"


def test_hostile_images_never_stop_sort(env: Settings) -> None:
    env.inbox.mkdir(parents=True)
    (env.inbox / "a bomb.png").write_bytes(forged_tiff(30000, 30000))
    (env.inbox / "b fine.png").write_bytes(screenshot_png(12))
    assert cli.main(["sort", str(env.inbox)]) == 0
    assert sorted(p.parent.name for p in _files(env.library)) == ["unreadable", "unsure"]


# -- 6, 7, 9: a damaged journal, a forged journal, a private state folder ------------------------


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_journal_is_named_with_the_fix(
    env: Settings, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = env.state_dir / "journal.sqlite"
    Journal(path).close()
    with sqlite3.connect(path) as db:  # many pages, quickly
        db.executemany(
            "INSERT INTO errors (at, path, message) VALUES (0, ?, ?)",
            [(f"/x/{i}.png", "padding so the file spans many pages " * 3) for i in range(3000)],
        )
    db.close()
    data = path.read_bytes()
    path.write_bytes(os.urandom(4096) if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(JournalError):
        Journal(path)
    for command in (["status"], ["run"], ["undo"]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err.strip()
        assert "damaged" in err and "mv " in err and "\n" not in err
    from facesortd.doctor import run_checks

    assert any(not ok and "damaged" in message for ok, message in run_checks(None))


def test_sort_of_an_empty_inbox_beside_a_damaged_journal_says_nothing_was_to_sort_and_the_fix(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort` with nothing to sort still opens the journal, to finish what a killed `sort` or `undo`
    left (README): damaged, it was refused with exit 2 in the words every command uses, read as a
    sort of the empty inbox that failed. It now says that nothing was to be sorted, why the journal
    was read, and the fix (exit 2 still: every command refuses that journal until it is moved aside)."""
    path = env.state_dir / "journal.sqlite"
    Journal(path).close()
    path.write_bytes(os.urandom(4096))
    env.inbox.mkdir(parents=True)
    assert cli.main(["sort"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(
        "facesortd: error: nothing to sort, but the journal, read to finish what a killed `sort` or "
        f"`undo` left half-way, cannot be used: the journal {path} is damaged"
    ), err
    assert f"mv '{path}' '{path}.damaged'" in err


def test_undo_refuses_journal_rows_outside_the_library_or_with_other_content(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = Journal.for_state_dir(env.state_dir)
    victim = tmp_path / "precious.txt"
    victim.write_text("not facesortd's")
    forged = journal.plan(file_hash(victim), tmp_path / "far" / "away" / "x", victim, HAPPY, "m")
    journal.finish(forged, "done", victim)
    env.inbox.mkdir(parents=True)
    sorted_file = env.library / "happy" / "a.png"
    sorted_file.parent.mkdir(parents=True)
    sorted_file.write_bytes(screenshot_png(7))
    changed = journal.plan(file_hash(sorted_file), env.inbox / "a.png", sorted_file, HAPPY, "m")
    journal.finish(changed, "done", sorted_file)
    sorted_file.write_bytes(screenshot_png(8))  # a person edited it since
    assert cli.main(["undo", "2"]) == 0
    out = capsys.readouterr().out
    assert "not inside the library" in out and "content changed" in out
    assert victim.read_text() == "not facesortd's" and not (tmp_path / "far").exists()
    assert sorted_file.exists() and not (env.inbox / "a.png").exists()


def test_recovery_lists_a_planned_moves_destination_once(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its rules (the source linked there, its content arrived, an empty claim) each listed the
    destination's folder anew; one listing serves them all."""
    from facesortd import recovery

    journal = Journal.for_state_dir(env.state_dir)
    env.inbox.mkdir(parents=True)
    shot, dest = env.inbox / "a.png", env.library / "happy" / "a.png"
    shot.write_bytes(screenshot_png(7))
    dest.parent.mkdir(parents=True)
    journal.plan(file_hash(shot), shot, dest, HAPPY, "m")  # killed before the link
    listed: list[Path] = []
    named = recovery._named
    monkeypatch.setattr(recovery, "_named", lambda path: listed.append(path) or named(path))
    assert [line for line in recover(journal) if "rolled back" in line]
    assert listed == [dest] and shot.read_bytes() == screenshot_png(7)


def test_the_state_folder_and_journal_are_private(tmp_path: Path) -> None:
    Journal.for_state_dir(tmp_path / "state").close()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "journal.sqlite").stat().st_mode) == 0o600


# -- 8, 10, 12: chunked writers, long names, undone files ----------------------------------------


def test_a_file_appended_in_chunks_is_sorted_whole(settings: Settings) -> None:
    """open/append/close four times: each close looks like an arrival of a truncated image.

    The writer appends its next chunk once the daemon has looked at the file and set its wait, not
    merely begun to look: a chunk that landed while the worker was still deciding was counted as
    part of that look, and with the writer pausing for the daemon's next look (which comes only
    once the wait is over) the half file was judged finished, now and then on a loaded machine. A
    long ``unreadable_settle_s`` costs nothing here (the whole file is sorted at once) and leaves
    a slow writer's pause far inside it."""
    settings = load_settings(
        **{**settings.model_dump(), "watch": {**settings.watch.model_dump(), "unreadable_settle_s": 60.0}}
    )
    looked_at: list[int] = []  # the sizes the daemon found the file at when it decided on it

    def recording_pipeline(s: Settings) -> Pipeline:
        pipeline = stub_pipeline(s)
        decide = pipeline.decide

        def recording(path: Path) -> Decision:
            looked_at.append(path.stat().st_size)
            return decide(path)

        pipeline.decide = recording  # type: ignore[method-assign]
        return pipeline

    data = screenshot_png(9)
    target = settings.inbox / "chunked.png"
    with running_daemon(settings, recording_pipeline) as daemon:
        step = len(data) // 4 + 1
        for i in range(0, len(data), step):
            with target.open("ab") as fh:
                fh.write(data[i : i + step])
            if i + step < len(data):  # the writer pauses until the daemon waits on the truncated file
                wait_until(lambda: target.stat().st_size in looked_at and target in daemon._timers)
                assert target.exists()
        wait_until(lambda: not target.exists())
    assert [hashlib.sha256(p.read_bytes()).digest() for p in _files(settings.library)] == [
        hashlib.sha256(data).digest()
    ]


def test_a_clash_on_a_255_byte_name_gets_a_shortened_numbered_name(tmp_path: Path) -> None:
    name = "é" * 100 + "x" * (NAME_MAX - 200 - 4) + ".png"
    assert len(os.fsencode(name)) == NAME_MAX
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / name).write_bytes(b"first")
    (tmp_path / name).write_bytes(b"second")
    final = move_no_replace(tmp_path / name, tmp_path / "lib" / name)
    assert final.name.endswith(" (1).png") and len(os.fsencode(final.name)) <= NAME_MAX
    assert final.read_bytes() == b"second" and (tmp_path / "lib" / name).read_bytes() == b"first"


def test_an_undone_file_stays_though_its_content_was_copied_elsewhere_and_is_told_once(
    env: Settings, daemon: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loguru import logger

    monkeypatch.setattr("facesortd.cli.app._setup_logging", lambda _level: None)  # keep our sink
    lines: list[str] = []
    logger.add(lines.append, level="INFO", format="{message}")
    (env.inbox / "a.png").write_bytes(screenshot_png(11))
    wait_until(lambda: daemon.journal.done_moves(limit=1))  # journaled as done after it left the inbox
    assert cli.main(["undo", "1"]) == 0
    copy = tmp_path / "other" / "a.png"
    copy.parent.mkdir()
    copy.write_bytes(screenshot_png(11))
    assert cli.main(["sort", "--copy", "--library", str(tmp_path / "lib2"), str(copy)]) == 0
    for _ in range(3):  # three rescans
        daemon.process(daemon.make_pipeline(env), env.inbox / "a.png")
    assert (env.inbox / "a.png").exists()
    assert sum("you undid its sort" in line for line in lines) == 1


def test_move_lock_excludes_threads_of_one_process(tmp_path: Path) -> None:
    inside: list[int] = []
    overlap: list[bool] = []

    def hold() -> None:
        with move_lock(tmp_path):
            inside.append(1)
            overlap.append(len(inside) > 1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HUNG_S)
    assert overlap == [False] * 4


def test_move_lock_taken_again_by_its_holder_does_not_wait_and_still_excludes_others(tmp_path: Path) -> None:
    """The sorter's last look at a duplicate and the move it makes are one step under the lock; a
    second file description of the holder's own would wait for the first for ever."""
    other_in = threading.Event()

    def other() -> None:
        with move_lock(tmp_path):
            other_in.set()

    with move_lock(tmp_path):
        with move_lock(tmp_path):  # returns at once
            waiting = threading.Thread(target=other)
            waiting.start()
            assert not other_in.wait(0.2)
        assert not other_in.is_set()  # the inner release is not the holder's
    waiting.join(timeout=HUNG_S)
    assert other_in.is_set()


def test_the_daemon_removes_temp_files_a_killed_writer_left_in_the_state_folder(settings: Settings) -> None:
    """A kill during an atomic write (a model, status.json) left a hidden temp file, a model's size,
    that nothing ever removed. The daemon's start removes old ones; a fresh one may be a live
    writer's (`train` beside it), and anything else is not facesortd's to touch."""
    models = settings.state_dir / "models"
    models.mkdir(parents=True)
    stale, fresh = models / f"{TMP_PREFIX}abc", settings.state_dir / f"{TMP_PREFIX}def"
    mine = models / "notes.txt"
    for path in (stale, fresh, mine):
        path.write_bytes(b"half a model")
    hours_ago = time.time() - 2 * STALE_TEMP_S
    os.utime(stale, (hours_ago, hours_ago))
    os.utime(mine, (hours_ago, hours_ago))
    with running_daemon(settings, stub_pipeline):
        assert not stale.exists()  # done before the daemon's first status file
        assert fresh.exists() and mine.exists()


def test_status_and_retrain_keep_working_beside_the_daemon(
    env: Settings, daemon: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status"]) == 0
    assert f"running (pid {os.getpid()}," in capsys.readouterr().out
    told, released = threading.Event(), threading.Event()
    with retrain_lock(env.state_dir) as mine:  # the daemon is retraining
        assert mine
        with retrain_lock(env.state_dir) as other:
            assert not other  # the daemon's scheduler skips instead of waiting

        def wait_for_it() -> None:
            with retrain_lock(env.state_dir, lambda _: told.set()):  # `facesortd retrain` says so and waits
                released.set()

        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        assert told.wait(10) and not released.is_set()
    waiter.join(timeout=HUNG_S)
    assert released.is_set()


def test_the_daemon_never_re_sorts_a_file_undo_is_putting_back(
    env: Settings, daemon: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """undo's move back lands in the watched inbox: the daemon must already see it as undone."""
    (env.inbox / "a.png").write_bytes(screenshot_png(13))
    wait_until(lambda: daemon.journal.done_moves(limit=1))  # journaled as done after it left the inbox
    real_move = move_no_replace

    def slow_move(src: Path, dest: Path, **kw: object) -> Path:
        final = real_move(src, dest, **kw)  # type: ignore[arg-type]
        wait_until(lambda: env.inbox / "a.png" in daemon._told)  # back in the inbox, before undo is done
        return final

    monkeypatch.setattr("facesortd.undo.move_no_replace", slow_move)
    assert cli.main(["undo", "1"]) == 0
    wait_until(lambda: env.inbox / "a.png" in daemon._told)
    assert (env.inbox / "a.png").exists() and not _files(env.library)


def test_a_journal_a_newer_facesortd_requires_more_of_is_refused_at_open_untouched(tmp_path: Path) -> None:
    """A newer version's journal whose moves need a column this one does not know: every file
    failed in turn with "could not move it: NOT NULL constraint failed: moves.size"."""
    from facesortd.journal import SCHEMA

    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        SCHEMA.replace("    finished REAL,\n", "    finished REAL,\n    size INTEGER NOT NULL,\n")
    )
    db.execute("CREATE TABLE later_things (x)")  # a table of its own is no obstacle
    db.commit()
    db.close()
    with pytest.raises(JournalError, match=r"written by a newer facesortd \(moves.size is new to this one\)"):
        Journal(path)
    db = sqlite3.connect(path)
    assert not db.execute("SELECT * FROM meta").fetchall()  # no migration ran on it
    db.close()


def test_an_error_naming_a_file_with_a_line_break_is_one_line(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd: error: …` is one line naming the fix; a name with a newline made it two, the
    second reading as another message. (A configuration error lists its keys on lines of their own.)"""
    env.inbox.mkdir(parents=True)
    odd = env.inbox / "never\nsorted.png"
    odd.write_bytes(screenshot_png(30))
    assert cli.main(["undo", str(odd)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "never\\x0asorted.png: the journal has no move" in err, err


def test_a_daemon_systemd_runs_is_stopped_by_systemctl(monkeypatch: pytest.MonkeyPatch) -> None:
    unit = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/facesortd.service\n"
    real = Path.read_text
    monkeypatch.setattr(
        Path, "read_text", lambda p, *a, **k: unit if p.name == "cgroup" else real(p, *a, **k)
    )
    assert how_to_stop(4242) == "systemctl --user stop facesortd"


def test_a_daemon_refused_while_the_holder_has_not_written_its_pid_yet_names_it(tmp_path: Path) -> None:
    """A daemon takes the lock, looks among the user's processes for a deleted one, and only then
    writes its pid: a second `run` refused in between said "pid ?" and had no process to stop."""
    fd = os.open(tmp_path / DAEMON_LOCK, os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    writer = threading.Timer(0.1, lambda: os.write(fd, f"{os.getpid()}\n".encode()))
    writer.start()
    try:
        with pytest.raises(StateBusy, match=f"pid {os.getpid()}"):
            DaemonLock(tmp_path).acquire()
    finally:
        writer.join(HUNG_S)
        os.close(fd)
