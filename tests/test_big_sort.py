"""`facesortd sort` on an old folder of many screenshots: stopped by Ctrl-C or SIGTERM part way,
run again, odd entries among the files. Every file ends whole in exactly one place."""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from synthetic import screenshot_png
from terminal import Terminal
from waiting import wait_until

from facesortd import cli
from facesortd.config import Settings


def _files(*roots: Path) -> list[Path]:
    return sorted(p for root in roots if root.exists() for p in root.rglob("*") if p.is_file())


def _contents(*roots: Path) -> Counter[str]:
    """Every file's content under ``roots`` (hidden temp files too), counted: lost, doubled or
    half-written files all change it."""
    return Counter(hashlib.sha256(p.read_bytes()).hexdigest() for p in _files(*roots))


def _sort(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "facesortd", "sort", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_sort_stopped_part_way_reports_what_it_did_and_the_same_command_sorts_the_rest(
    cli_settings: Settings, tmp_path: Path, sig: signal.Signals
) -> None:
    """Ctrl-C raised KeyboardInterrupt wherever the main thread was: the files the workers finished
    meanwhile were moved without a line or --json record, and no summary was said. SIGTERM ended the
    process at once (exit -15), a file between its move's link and unlink left in both places."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(60):
        (shots / f"shot{i:03d}.png").write_bytes(screenshot_png(i, face=i % 5 == 0))
    before = _contents(shots)
    sort = _sort("--json", str(shots))
    wait_until(lambda: len(_files(cli_settings.library)) >= 3)
    sort.send_signal(sig)
    out, err = sort.communicate(timeout=60)
    assert sort.returncode == 128 + sig, err
    assert "Traceback" not in err and "interrupted: " in err and "left where they were" in err
    records = [json.loads(line) for line in out.splitlines()]
    placed = _files(cli_settings.library)
    assert sorted(Path(r["destination"]) for r in records) == placed  # every file moved is reported
    assert 0 < len(placed) < 60 and f"{60 - len(placed)} file(s) left" in err
    assert _contents(shots, cli_settings.library) == before  # none lost, doubled or half-written
    # The same command again; in this process, as a second start would cost a second of imports.
    assert cli.main(["sort", str(shots)]) == 0
    assert not _files(shots) and len(_files(cli_settings.library)) == 60
    assert _contents(cli_settings.library) == before


def test_the_progress_bar_on_a_terminal_keeps_to_its_own_line(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The bar was drawn without a line end and each file's log line written after it, so on a
    terminal every line read ``[##....] sorting 2/40 (5%) 12.2/s ETA 3s15:47:23 INFO shot.png -> ...``."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(12):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(i, face=i % 3 == 0))
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    seconds = SimpleNamespace(monotonic=itertools.count().__next__)  # a second per look: always due
    monkeypatch.setattr("facesortd.progress.time", seconds)
    assert cli.main(["sort", "--workers", "2", str(shots)]) == 0
    screen = [line for line in terminal.screen() if line]
    logged = [line for line in screen if " INFO " in line]
    assert len(logged) == 13  # a line per file and the summary, none sharing a line with the bar
    assert all(not line.startswith("[") for line in logged)
    assert screen[-2].startswith("[####") and "12/12" in screen[-2] and "sorted 0" in screen[-1]
    monkeypatch.setattr(sys, "stderr", Terminal())
    (shots / "more.png").write_bytes(screenshot_png(99))
    for i in (1, 2):
        (shots / f"more{i}.png").write_bytes(screenshot_png(90 + i))
    assert cli.main(["sort", "--json", str(shots)]) == 0
    assert "sorting" not in sys.stderr.getvalue() and len(capsys.readouterr().out.splitlines()) == 3


def test_a_sort_into_a_library_whose_disk_fills_up_stops_and_says_where(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The library's disk full after a few files: each of the others was classified and failed with
    "[Errno 28] No space left on device", no folder named, a line each (thousands of them, minutes
    of detection for nothing). Now the first says which folder and what to do, the sort stops, exits
    1 and leaves the rest whole where they were, for the same command once there is room."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(40):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(i, face=i % 4 == 0))
    before = _contents(shots)
    real_link = os.link

    def link(src: object, dst: object, **kw: object) -> None:  # the disk takes three files
        into = kw.get("dst_dir_fd")  # a quarantined file is linked into its folder as opened
        where = Path(os.readlink(f"/proc/self/fd/{into}")) / str(dst) if into is not None else Path(str(dst))
        if where.is_relative_to(cli_settings.library) and len(_files(cli_settings.library)) >= 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        real_link(src, dst, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr("facesortd.durable.os.link", link)
    assert cli.main(["sort", "--workers", "2", str(shots)]) == 1
    err = capsys.readouterr().err
    failed = err.count("could not move it")
    assert 1 <= failed <= 9  # those under way when the first failed, not the 37 left
    assert f"cannot write into {cli_settings.library}" in err and "its disk is full: free some space" in err
    assert f"{37 - failed} file(s) left where they were" in err and "stopped: cannot write into" in err
    assert len(_files(cli_settings.library)) == 3 and _contents(shots, cli_settings.library) == before
    monkeypatch.setattr("facesortd.durable.os.link", real_link)  # room made
    assert cli.main(["sort", str(shots)]) == 0
    assert not _files(shots) and _contents(cli_settings.library) == before


def _killed_mid_move(settings: Settings, shot: Path) -> None:
    """``shot`` as a `sort` killed (kill -9) between its move's link and unlink leaves it: in its
    folder and in the library, the journal's row planned."""
    from facesortd.content import content_id
    from facesortd.decide import Decision
    from facesortd.journal import Journal

    half = settings.library / "_quarantine" / "no-face" / shot.name
    half.parent.mkdir(parents=True)
    os.link(shot, half)
    journal = Journal.for_state_dir(settings.state_dir)
    journal.plan(content_id(shot), shot, half, Decision.quarantine("no-face"), "m")
    journal.close()


def test_a_move_of_a_sort_killed_mid_move_is_rolled_back_into_the_folder_it_came_from(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort ~/screens` killed (kill -9) between a move's link and unlink: the next `sort` rolled it
    back and said "it stays in the inbox", of a file that had never been in the inbox."""
    shot = tmp_path / "screens" / "a.png"
    shot.parent.mkdir()
    shot.write_bytes(screenshot_png(3))
    _killed_mid_move(cli_settings, shot)
    assert cli.main(["sort", str(shot.parent)]) == 0
    err = capsys.readouterr().err
    assert f"rolled back the interrupted move of {shot} (it stays in {shot.parent})" in err
    assert len(_files(cli_settings.library)) == 1 and not shot.exists()  # then sorted, once


def test_status_names_a_move_a_killed_sort_left_half_done(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a kill -9 of `sort` mid-move, `status` said nothing of the file left in two places
    (and counted it waiting for review); it names it until the next `sort` puts it in one."""
    shot = tmp_path / "screens" / "a.png"
    shot.parent.mkdir()
    shot.write_bytes(screenshot_png(3))
    _killed_mid_move(cli_settings, shot)
    assert cli.main(["status", "--json"]) == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p for p in problems if "1 move(s) interrupted" in p and str(shot) in p], problems
    assert cli.main(["sort", str(shot)]) == 0
    assert cli.main(["status"]) == 0
    assert "interrupted" not in capsys.readouterr().out


def test_the_same_folder_sorted_again_once_all_is_sorted_is_no_error(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort ~/screens` run again to finish what a Ctrl-C left, when nothing was left: refused as
    the wrong folder named ("no images in ..."), exit 2, as if it had never held a picture."""
    shots = tmp_path / "screens"
    (shots / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        (shots / name).write_bytes(screenshot_png(len(name)))
    assert cli.main(["sort", str(shots), str(shots / "sub")]) == 0
    capsys.readouterr()
    assert cli.main(["sort", str(shots), str(shots / "sub")]) == 0
    err = capsys.readouterr().err
    assert f"nothing left to sort in {shots}: 1 file(s) were sorted out of it before" in err
    assert f"nothing left to sort in {shots / 'sub'}: 1 file(s) were" in err and "error" not in err
    assert "drop screenshots into" not in err
    assert cli.main(["sort", str(tmp_path)]) == 2  # a folder nothing was ever sorted from still is
    assert f"no images in {tmp_path}" in capsys.readouterr().err


def test_a_sort_whose_journal_disk_fills_up_stops_and_says_where(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The state folder's disk full: every file left was classified, then failed with "database or
    disk is full", which names no disk. The sort stops and names the journal's folder and the fix."""
    from facesortd.journal import Journal

    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(20):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(i))
    before = _contents(shots)

    def plan(*_args: object, **_kw: object) -> int:
        full = sqlite3.OperationalError("database or disk is full")
        full.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]  # as SQLite's own
        raise full

    monkeypatch.setattr(Journal, "plan", plan)
    assert cli.main(["sort", "--workers", "2", str(shots)]) == 1
    err = capsys.readouterr().err
    assert err.count("could not move it") <= 9
    assert (
        f"stopped: the journal has no room (database or disk is full): its disk is full: free some space "
        f"there (df -h '{cli_settings.state_dir}')" in err
    )
    assert _contents(shots) == before and not _files(cli_settings.library)
