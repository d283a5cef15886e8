"""`facesortd sort` walked as a hostile user: odd paths named, odd libraries, odd files; each test is
a defect a user met, and what `sort` does now."""

from __future__ import annotations

import errno
import itertools
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from loguru import logger
from synthetic import screenshot_png
from terminal import Terminal
from tree_files import files_in
from waiting import HUNG_S

from facesortd import cli, progress
from facesortd.cli.stopping import stop_requests
from facesortd.config import MAX_WORKERS, Settings
from facesortd.decide import Decision, Pipeline
from facesortd.journal import Journal
from facesortd.library import Library
from facesortd.sorter import Sorter


def test_a_symbolic_link_that_loops_named_to_sort_is_skipped_not_a_traceback(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort loop.png` (loop.png -> loop.png) beside a real file ended in a traceback ("Symlink loop")
    before anything was sorted; the link is now skipped with a line and a `--json` record, the
    rest sorted."""
    (tmp_path / "a.png").write_bytes(screenshot_png(1))
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    named = [str(tmp_path / "loop.png"), str(tmp_path / "a.png")]
    assert cli.main(["sort", "--json", *named]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(Path(r["path"]).name, r["action"]) for r in records] == [
        ("loop.png", "skipped"),
        ("a.png", "quarantined"),
    ]
    assert (tmp_path / "loop.png").is_symlink() and len(files_in(cli_settings.library)) == 1


def test_a_fifo_or_socket_in_a_folder_named_to_sort_is_said_skipped(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort DIR` with a FIFO or a socket of an image name in DIR passed over it without a word (no
    line, no `--json` record, not counted), while each named alone, or a symbolic link in DIR, was
    said skipped; a person was left wondering why it stayed. Each is now said skipped, left where
    it is, never opened."""
    shots = tmp_path / "screens"
    shots.mkdir()
    (shots / "a.png").write_bytes(screenshot_png(8))
    os.mkfifo(shots / "fifo.png")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(shots / "sock.png"))
        assert cli.main(["sort", "--json", str(shots)]) == 0
    captured = capsys.readouterr()
    records = {Path(r["path"]).name: r for r in map(json.loads, captured.out.splitlines())}
    assert {name: r["action"] for name, r in records.items()} == {
        "a.png": "quarantined",
        "fifo.png": "skipped",
        "sock.png": "skipped",
    }
    assert records["fifo.png"]["detail"].startswith("not a regular file (a FIFO, socket or device)")
    assert "; skipped 2" in captured.err
    assert sorted(p.name for p in shots.iterdir()) == ["fifo.png", "sock.png"]


@pytest.mark.parametrize("below", [False, True], ids=["the-link", "below-it"])
@pytest.mark.parametrize(("target", "said"), [("link", "which loops"), ("nowhere", "which does not exist")])
def test_a_library_that_is_or_is_below_a_link_to_no_folder_is_refused_before_anything_moves(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    below: bool,
    target: str,
    said: str,
) -> None:
    """`sort --library LINK` with LINK looping ended in a traceback; with LINK leading nowhere each
    file failed in turn, "LINK is a file, not a folder: move that file away" (exit 1), and so did
    `--library LINK/lib` once the first was refused, while `doctor` said such a library "does not exist
    yet; created on first use". All are now refused up front with what the link is, every file left
    where it was, and `doctor` says it alike."""
    link = tmp_path / "link"
    link.symlink_to(tmp_path / target)
    library = link / "lib" if below else link
    shot = cli_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(2))
    assert cli.main(["sort", "--library", str(library), str(shot)]) == 2
    what = f"is a symbolic link to {tmp_path / target}, {said}"
    part = f"library {library}: {link}, a part of its path, {what}" if below else f"library {link} {what}"
    assert part in capsys.readouterr().err and shot.is_file() and link.is_symlink()
    monkeypatch.setenv("FACESORTD_LIBRARY", str(library))
    assert cli.main(["doctor"]) == 1 and part.removeprefix(f"library {library}: ") in capsys.readouterr().out


def test_more_workers_than_the_daemon_may_have_is_refused_before_any_is_made(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort --workers 100000` on a big folder made a pipeline (some MB each) per file before the
    first was sorted, until the kernel killed it; it is now refused as watch.workers is."""
    shot = cli_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(3))
    with pytest.raises(SystemExit) as ended:
        cli.main(["sort", "--workers", str(MAX_WORKERS + 1), str(shot)])
    assert ended.value.code == 2 and f"must be at most {MAX_WORKERS}" in capsys.readouterr().err
    assert shot.is_file()


def test_a_dry_runs_plan_on_a_terminal_keeps_off_the_progress_bars_line(
    cli_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sort --dry-run DIR` on a terminal printed each line of its plan (stdout) after the bar's text
    (stderr, the same terminal): ``[##...] sorting 1/12 (8%) 1.6/s ETA 7sb.png would go to ...``."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(4):
        (shots / f"shot{i}.png").write_bytes(screenshot_png(10 + i))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", terminal)
    seconds = SimpleNamespace(monotonic=itertools.count().__next__)  # a second per look: always due
    monkeypatch.setattr("facesortd.progress.time", seconds)
    assert cli.main(["sort", "--dry-run", str(shots)]) == 0
    screen = [line for line in terminal.screen() if line]
    planned = [line for line in screen if "would go to" in line]
    assert len(planned) == 4 and all(line.startswith(str(shots)) for line in planned)
    assert screen[-2].startswith("[####") and "4/4" in screen[-2]


def test_a_sort_into_a_read_only_library_stops_at_the_first_refusal(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A library on a drive mounted read-only (or remounted so by the kernel after an error): each
    file was classified and failed with the same line, thousands of them; the sort now stops at the
    first as on a full disk, exit 1, the rest left where they were for the same command."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(12):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(i))
    library = cli_settings.library.resolve()
    real_link, real_statvfs = os.link, os.statvfs

    def link(src: object, dst: object, **kw: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    def statvfs(path: object) -> object:
        st = real_statvfs(path)  # type: ignore[arg-type]
        if Path(os.path.realpath(path)).is_relative_to(library):  # type: ignore[arg-type]
            return SimpleNamespace(f_flag=st.f_flag | os.ST_RDONLY)
        return st

    monkeypatch.setattr("facesortd.durable.os.link", link)
    monkeypatch.setattr(os, "statvfs", statvfs)
    assert cli.main(["sort", "--workers", "2", str(shots)]) == 1
    err = capsys.readouterr().err
    failed = err.count("could not move it")
    assert 1 <= failed <= 9 and "read-only filesystem" in err  # those under way, not the 12
    assert f"{12 - failed} file(s) left where they were" in err and "once it is mounted writable" in err
    monkeypatch.setattr("facesortd.durable.os.link", real_link)
    monkeypatch.setattr(os, "statvfs", real_statvfs)
    assert cli.main(["sort", str(shots)]) == 0 and not files_in(shots)


def test_emotion_folders_not_made_on_a_read_only_drive_are_not_to_be_fixed_by_chmod(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library on a drive mounted read-only: its emotion folders could not be made, and the fix
    said was chmod u+rwx, which cannot help there."""

    def mkdir(self: Path, *args: object, **kw: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    said: list[str] = []
    logger.add(lambda message: said.append(str(message)), level="WARNING")
    monkeypatch.setattr(Path, "mkdir", mkdir)
    Library(tmp_path / "lib").make_emotion_folders(["happy"])
    assert len(said) == 1 and "mount it writable" in said[0] and "chmod" not in said[0]


def test_a_folder_sorted_before_named_again_through_a_link_is_said_to_be_done(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort shots` once all was sorted says so; `sort LINK` (LINK -> shots) or `sort shots/../shots`
    was refused as "no images in LINK", exit 2, as if the wrong folder were named."""
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "a.png").write_bytes(screenshot_png(5))
    (tmp_path / "link").symlink_to(shots)
    assert cli.main(["sort", str(shots)]) == 0
    capsys.readouterr()
    for again in (tmp_path / "link", shots / ".." / "shots"):
        assert cli.main(["sort", str(again)]) == 0
        assert "1 file(s) were sorted out of it before" in capsys.readouterr().err


@pytest.mark.parametrize("own", ["review/thumbs", "faces", "models"])
def test_a_library_inside_the_state_folders_own_folders_is_refused(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str], own: str
) -> None:
    """`sort --library <state_dir>/review/thumbs` sorted into a folder the review page's start prunes
    (`thumbs/*/*` not in the quarantine): a screenshot sorted to happy/ was deleted there. A library
    (or inbox) in the state folder's own folders is refused now; one beside them is a person's."""
    shot = cli_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(6))
    inside = cli_settings.state_dir / own
    assert cli.main(["sort", "--library", str(inside), str(shot)]) == 2
    assert f"the library {inside.resolve()} is inside" in capsys.readouterr().err and shot.is_file()
    assert cli.main(["sort", "--library", str(cli_settings.state_dir / "mine"), str(shot)]) == 0


def test_a_sort_whose_output_reader_left_says_what_it_did_and_what_it_left(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sort --json DIR | head -1`: the print that met the closed pipe ended the sort without a word,
    the files the workers placed meanwhile not counted, nor those left said; it now stops as Ctrl-C
    does, says both, and exits 141 as SIGPIPE would."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(12):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(30 + i))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone
    with open(write_end, "w") as piped:
        monkeypatch.setattr(sys, "stdout", piped)
        assert cli.main(["sort", "--json", "--workers", "2", str(shots)]) == 141
    err = capsys.readouterr().err
    placed = len(files_in(cli_settings.library))
    assert f"stopped, stdout's reader gone: sorted 0; quarantined {placed} " in err
    assert f"{12 - placed} file(s) left where they were" in err and len(files_in(shots)) == 12 - placed


def test_an_empty_name_is_refused_not_taken_for_the_working_folder(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sort "$SHOTS"` with the variable unset is `sort ""`, which sorted the working folder: its
    pictures went into the library."""
    (tmp_path / "mine.png").write_bytes(screenshot_png(7))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as ended:
        cli.main(["sort", ""])
    assert ended.value.code == 2 and "an empty name: name the file or folder" in capsys.readouterr().err
    assert (tmp_path / "mine.png").is_file() and not files_in(cli_settings.library)


def test_a_journal_replaced_mid_sort_stops_it_with_every_file_placed_said(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The state folder removed (or its journal replaced) under `sort --workers 2`: the error ended the
    sort at once, the files the other worker placed meanwhile neither said nor counted, and no word
    of those left; it now stops as on a full disk, each file placed said, exit 1."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(12):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(50 + i))
    looks = itertools.count()
    monkeypatch.setattr(Journal, "replaced", lambda self: next(looks) >= 3)
    assert cli.main(["sort", "--json", "--workers", "2", str(shots)]) == 1
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    placed = [r for r in records if r["action"] == "quarantined"]
    assert len(placed) == len(files_in(cli_settings.library)) >= 3
    left = 12 - len(records)
    assert "stopped: the journal" in err and f"{left} file(s) left where they were" in err
    assert len(files_in(shots)) == 12 - len(placed)


def test_the_terminal_closed_mid_sort_stops_it_between_files(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The terminal closed under `sort` (a logout, an SSH connection dropped) sends SIGHUP, which
    ended it at once, as SIGTERM did before: a file between its move's link and unlink was left in
    two places, and nothing was said. It now stops between files as for Ctrl-C, exit 129."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(10):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(70 + i))
    real_decide = Pipeline.decide

    def hung_up_on_the_third(self: Pipeline, path: Path) -> Decision:
        if path.name == "shot02.png":
            os.kill(os.getpid(), signal.SIGHUP)
        return real_decide(self, path)

    unhandled: list[int] = []  # were SIGHUP left to its default, it would end the test run
    before = signal.signal(signal.SIGHUP, lambda signum, _frame: unhandled.append(signum))
    try:
        monkeypatch.setattr(Pipeline, "decide", hung_up_on_the_third)
        assert cli.main(["sort", "--workers", "2", str(shots)]) == 129 and not unhandled
    finally:
        signal.signal(signal.SIGHUP, before)
    placed = len(files_in(cli_settings.library))
    assert f"interrupted: sorted 0; quarantined {placed} " in capsys.readouterr().err
    assert 3 <= placed < 10 and len(files_in(shots)) == 10 - placed


class _ClosedTerminal(Terminal):
    """A terminal whose connection drops (``gone``): every write to it then fails, EIO."""

    gone = False

    def write(self, text: str) -> int:
        if self.gone:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return super().write(text)


@pytest.mark.parametrize("output", ["lines", "--json", "--dry-run"])
def test_a_sort_on_a_terminal_that_is_gone_stops_by_its_hang_up_not_a_traceback(
    cli_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    """An SSH connection dropped under `sort DIR`: SIGHUP, and every write to the terminal failing
    (EIO). The progress bar's next write (or the stop's last one, or a ``--json`` record) raised a
    traceback no one saw and the exit status was the interpreter's 1, read as "a file could not be
    moved"; with ``--json`` the record's failure and SIGHUP together were "asked twice", ended at
    once (130). It now stops between files as for SIGHUP alone, 129, each file placed or left."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(10):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(100 + i))
    terminal = _ClosedTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr("facesortd.progress.time", SimpleNamespace(monotonic=itertools.count().__next__))
    real_decide = Pipeline.decide

    def connection_dropped_on_the_third(self: Pipeline, path: Path) -> Decision:
        if path.name == "shot02.png":
            terminal.gone = True
            os.kill(os.getpid(), signal.SIGHUP)
        return real_decide(self, path)

    monkeypatch.setattr(Pipeline, "decide", connection_dropped_on_the_third)
    unhandled: list[int] = []  # were SIGHUP left to its default, it would end the test run
    before = signal.signal(signal.SIGHUP, lambda signum, _frame: unhandled.append(signum))
    try:
        given = [] if output == "lines" else [output]
        assert cli.main(["sort", *given, "--workers", "2", str(shots)]) == 129 and not unhandled
    finally:
        signal.signal(signal.SIGHUP, before)
    placed = len(files_in(cli_settings.library))
    assert (placed == 0) if output == "--dry-run" else (3 <= placed < 10)
    assert len(files_in(shots)) == 10 - placed


def test_a_stream_whose_reader_is_gone_takes_no_more_and_fails_no_exit() -> None:
    """Output that no one reads any more is dropped, and the stream goes to /dev/null: what stayed
    buffered for it failed again at the interpreter's exit, which then exits 120."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w") as stream:
        progress.written(stream, "a line for no one\n")  # BrokenPipeError before
        stream.write("the rest of it")
        stream.flush()  # what the interpreter's exit does


def test_files_on_a_read_only_filesystem_are_pointed_to_sort_copy(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sort` of a card, an image or a snapshot mounted read-only: each file failed, "it is on a
    read-only filesystem; facesortd must be able to write there", with no word of `sort --copy`,
    which is for them; it is now said once at the end. Each stays once, where it was."""
    card = tmp_path / "card"
    card.mkdir()
    for i in range(2):
        (card / f"shot{i}.png").write_bytes(screenshot_png(80 + i))
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.parent == card:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    assert cli.main(["sort", str(card)]) == 1
    assert "--copy PATH` copies such files into the library" in capsys.readouterr().err
    assert len(files_in(card)) == 2 and not files_in(cli_settings.library)


def test_a_sort_run_under_nohup_sorts_on_once_the_terminal_is_closed() -> None:
    """`nohup facesortd sort DIR &` ignores SIGHUP so that the sort goes on after a logout; `sort`,
    which stops on SIGHUP, leaves it ignored."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_requests() as stop:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
            assert not stop()
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize("inside", ["happy", "happy/nested", "_quarantine/unsure"])
def test_a_library_inside_an_emotion_folder_or_the_quarantine_is_refused(
    cli_settings: Settings, capsys: pytest.CaptureFixture[str], inside: str
) -> None:
    """`sort --library <library>/happy` was taken: its `sad/` files were then learnt by `train` as
    "happy" (an emotion folder is read at any depth), and a library in the quarantine was reviewed as
    its files. It is refused now, exit 2, every file left where it was."""
    shot = cli_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(90))
    nested = cli_settings.library / inside
    assert cli.main(["sort", "--library", str(nested), str(shot)]) == 2
    top = inside.split("/")[0]
    assert f"is in {top}/ of the library {cli_settings.library}" in capsys.readouterr().err
    assert shot.is_file() and not nested.exists()


def test_a_library_whose_folders_cannot_be_made_stops_the_sort_said_so(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort --library /proc/foo` (mkdir answers ENOENT there) said each file "written to or replaced
    while it was sorted", exit 0, and its emotion folders were advised a chmod. It now stops at the
    first, saying the folder cannot be made, exit 1."""
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(8):  # one worker is handed four ahead: the rest are left
        (shots / f"shot{i}.png").write_bytes(screenshot_png(91 + i))
    assert cli.main(["sort", "--workers", "1", "--library", "/proc/facesortd-nowhere", str(shots)]) == 1
    err = capsys.readouterr().err
    assert "written to or replaced" not in err and "chmod" not in err  # of the emotion folders too
    assert "stopped: cannot make the folder /proc/facesortd-nowhere/_quarantine/unsure" in err
    assert "/proc takes no folders made in it" in err and "file(s) left where they were" in err
    assert len(files_in(shots)) == 8


def test_a_library_folder_that_vanishes_each_time_it_is_made_stops_the_sort_said_so(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The library deleted under `sort` (its folder gone again each time it was made) was said as
    each file "written to or replaced while it was sorted", exit 0; now the sort stops, exit 1."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(8):
        (shots / f"shot{i}.png").write_bytes(screenshot_png(100 + i))
    monkeypatch.setattr("facesortd.durable._make_folder", lambda folder: None)  # made, and gone at once
    assert cli.main(["sort", "--workers", "1", str(shots)]) == 1
    err = capsys.readouterr().err
    assert "written to or replaced" not in err and "it vanished each time it was made" in err
    assert "file(s) left where they were" in err and len(files_in(shots)) == 8


def test_a_library_below_something_not_a_folder_names_it_without_advice_to_move_it(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort --library /dev/null/x` failed each file with advice to "move that file away" of
    /dev/null. It is refused up front, naming the part of the path that is not a folder; moving it
    is advised only for a file of the user's own."""
    shot = cli_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(97))
    assert cli.main(["sort", "--library", "/dev/null/x", str(shot)]) == 2
    err = capsys.readouterr().err
    assert "library /dev/null/x is not a folder (/dev/null, a part of its path, is not a folder)" in err
    assert "away" not in err
    note = tmp_path / "note"
    note.write_text("mine")
    assert cli.main(["sort", "--library", str(note / "x"), str(shot)]) == 2
    assert f"or move {note} away" in capsys.readouterr().err and shot.is_file()


def test_why_a_sort_stopped_is_said_when_every_file_was_under_way(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Files under way when a run stops say "could not move it, for the reason said below"; with none
    left after them the reason was said nowhere. It is said now."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(2):
        (shots / f"shot{i}.png").write_bytes(screenshot_png(110 + i))
    monkeypatch.setattr("facesortd.durable._make_folder", lambda folder: None)
    # Both under way before either fails: one worker's second file was cancelled or not by a race
    # with the stop (under load the stop won, and the test failed). Met in the sorter: a file not
    # begun once the run stopped is left untouched (SortBatch._sort_one), not under way.
    both_started = threading.Barrier(2, timeout=HUNG_S)
    sort = Sorter.sort

    def started_together(self: Sorter, *args: Any, **kwargs: Any) -> Any:
        both_started.wait()
        return sort(self, *args, **kwargs)

    monkeypatch.setattr(Sorter, "sort", started_together)
    assert cli.main(["sort", "--workers", "2", str(shots)]) == 1
    err = capsys.readouterr().err
    assert "for the reason said below" in err and "stopped: cannot make the folder" in err
    assert "left where they were" not in err and len(files_in(shots)) == 2
