"""Leftovers of the state and file sweep: what `status` and `undo` said (or did not) of a quarantine
linked out of the library, old relative journal rows, the models folder after a change by hand, and
`undo` beside a process holding the journal. Each test here failed on the code before its fix,
unless its docstring says otherwise."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from journal_holder import journal_held
from synthetic import screenshot_png, stub_pipeline
from tree_files import files_in as _files
from waiting import running_daemon, wait_until

from facesortd import cli, status
from facesortd import journal as journal_module
from facesortd.config import Settings
from facesortd.content import content_id
from facesortd.decide import Decision
from facesortd.journal import Journal, ModelId
from facesortd.library import Library
from facesortd.placement import journaled_apply
from facesortd.state import JOURNAL_FILE

HAPPY = Decision("sorted", emotion="happy", confidence=0.9)


def _link_out(folder: Path, outside: Path) -> None:
    """``folder`` made a symbolic link to ``outside`` (a folder out of the library), its files kept aside."""
    outside.mkdir(parents=True, exist_ok=True)
    if folder.exists():
        folder.rename(folder.with_name(folder.name + ".kept"))
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to(outside)


@pytest.mark.parametrize("linked", ["_quarantine", "_quarantine/unsure"])
def test_status_names_a_quarantine_folder_linked_out_of_the_library(
    daemon_settings: Settings, tmp_path: Path, linked: str
) -> None:
    """A `_quarantine/<reason>` folder made a link out of the library was refused at the move (the
    folder opened and found outside), each file waiting in the inbox, but `status` said nothing of
    it; nor of `_quarantine` itself while no daemon ran (only a running daemon's record said it)."""
    folder = daemon_settings.library / linked
    _link_out(folder, tmp_path / "outside")
    (tmp_path / "outside" / "x.png").write_bytes(screenshot_png(3))  # not the library's: not counted
    found = status.gather(daemon_settings)
    [problem] = found["problems"]
    assert f"cannot use {folder} (a link to {tmp_path / 'outside'}, outside the library)" in problem
    assert f"make {folder} a folder of the library again" in problem
    assert found["waiting_for_review"] == {}  # as the review page lists it: nothing of the link's


def test_status_says_the_quarantine_linked_out_once_beside_the_daemon(
    daemon_settings: Settings, tmp_path: Path
) -> None:
    """The daemon says the quarantine linked out in its own status record; `status` looking for
    itself does not say it a second time. (Passed before: a guard of the fix above.)"""
    with running_daemon(daemon_settings, stub_pipeline):
        _link_out(daemon_settings.library / "_quarantine", tmp_path / "outside")
        wait_until(lambda: json.loads((daemon_settings.state_dir / "status.json").read_text())["problems"])
        problems = status.gather(daemon_settings)["problems"]
    assert sum("outside the library" in p for p in problems) == 1


@pytest.mark.parametrize("linked", ["_quarantine", "_quarantine/unsure"])
def test_undo_into_a_quarantine_linked_out_is_refused_and_undo_n_goes_past_it(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], linked: str
) -> None:
    """A file labelled out of `_quarantine/unsure/` (here: moved into happy/ by a journaled move) goes
    back there on `undo`; with the quarantine (or that folder) made a link out of the library since,
    the command line followed it and put the file out of the library (the review page refused it).
    Now it is refused with the move's own words, the file left where it is, and `undo 1` goes on to
    the next move it can undo, as past any other move it cannot."""
    settings = cli_settings
    journal = Journal.for_state_dir(settings.state_dir)
    library = Library(settings.library)
    older = settings.inbox / "older.png"
    older.write_bytes(screenshot_png(4))
    sorted_older = journaled_apply(journal, library, older, content_id(older), HAPPY, ModelId("m"))
    quarantined = settings.library / "_quarantine" / "unsure" / "a.png"
    quarantined.parent.mkdir(parents=True)
    quarantined.write_bytes(screenshot_png(5))
    labelled = journaled_apply(journal, library, quarantined, content_id(quarantined), HAPPY, ModelId("m"))
    journal.close()
    outside = tmp_path / "outside"
    _link_out(settings.library / linked, outside)
    (outside / "unsure").mkdir(exist_ok=True)  # where the file went by the link
    capsys.readouterr()
    assert cli.main(["undo", "1"]) == 1  # a move refused by a folder: worth a script's attention
    out = capsys.readouterr().out
    assert f"{labelled}: cannot use {settings.library / linked} (a link to {outside}" in out
    assert f"{sorted_older} -> {older}" in out
    assert labelled.is_file() and older.is_file() and _files(outside) == []
    (settings.library / linked).unlink()
    (settings.library / (linked + ".kept")).rename(settings.library / linked)
    assert cli.main(["undo", "1"]) == 0
    assert quarantined.is_file() and not labelled.exists()


def test_undo_beside_a_process_holding_the_journal_names_it_and_stops(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A process holding the journal's write lock (here a stuck daemon) made `undo` wait the lock's
    whole wait once per file, each then failed alike. Now, as `sort`: one wait, one line naming the
    holder with the fix, the moves after it listed as not undone, exit 1, every file where it was."""
    settings = cli_settings
    folder = tmp_path / "screens"
    folder.mkdir()
    for n in range(3):
        (folder / f"{n}.png").write_bytes(screenshot_png(20 + n))
    assert cli.main(["sort", "--workers", "1", str(folder)]) == 0
    sorted_files = _files(settings.library)
    monkeypatch.setattr(journal_module, "LOCK_WAIT_S", 0.2)
    with journal_held(settings.state_dir) as holder:
        capsys.readouterr()
        assert cli.main(["undo", "3"]) == 1
    out, err = capsys.readouterr()
    assert (
        f"pid {holder.pid} (" in err and "the facesortd daemon" in err and "systemctl --user restart" in err
    )
    assert err.count("stayed locked") == 1 and "stayed locked" not in out  # one wait, said once
    assert out.count("not undone (see the error above)") == 3
    assert _files(settings.library) == sorted_files and _files(folder) == []


def _relative_row(settings: Settings, cwd: Path, seed: int, arrived: bool) -> tuple[Journal, Path]:
    """A move of shots/a.png (kept as typed, as older versions did) into happy/, killed before its
    `done` mark: (the journal, where the file is). ``arrived``: the file had reached the library."""
    src = cwd / "shots" / "a.png"
    src.parent.mkdir(parents=True)
    src.write_bytes(screenshot_png(seed))
    journal = Journal.for_state_dir(settings.state_dir)
    moved = settings.library / "happy" / "a.png"
    journal.plan(content_id(src), src, moved, HAPPY, "m")
    journal._db.execute("UPDATE moves SET source = CAST('shots/a.png' AS BLOB)")  # as older versions wrote it
    if arrived:
        moved.parent.mkdir(parents=True)
        src.rename(moved)
    return journal, moved if arrived else src


def test_undo_forget_relative_shows_each_old_relative_row_and_clears_it_touching_no_file(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An interrupted move an older facesortd journaled by a relative path is never acted on by
    recovery and stayed `planned` for good, `status` saying so at every call: no command cleared it
    (only a sqlite3 shell). `undo --forget-relative` shows it (source, destination, each there or not)
    and clears it; the file reached the library, so it is recorded done there (rolled back, it was
    taken for a person's label), and no file is touched."""
    settings = cli_settings
    cwd = tmp_path / "where-sort-ran"
    journal, moved = _relative_row(settings, cwd, 8, arrived=True)
    digest = content_id(moved)
    monkeypatch.chdir(cwd)
    journal.close()
    assert "undo --forget-relative" in " ".join(status.gather(settings)["problems"])
    capsys.readouterr()
    assert cli.main(["undo", "--forget-relative", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "'shots/a.png' -> " in out and f"from shots/a.png in {cwd} (this folder): not there" in out
    assert f"to {moved}: there, the same content" in out and "would be recorded as done" in out
    journal = Journal.for_state_dir(settings.state_dir)
    assert len(journal.planned()) == 1  # a dry run clears nothing
    journal.close()
    before = {p: p.read_bytes() for p in _files(tmp_path) if "state" not in p.parts}
    assert cli.main(["undo", "--forget-relative"]) == 0
    out = capsys.readouterr().out
    assert (
        f"recorded as done, the file in the library at {moved}" in out and "1 journal row(s) cleared" in out
    )
    assert {p: p.read_bytes() for p in _files(tmp_path) if "state" not in p.parts} == before
    journal = Journal.for_state_dir(settings.state_dir)
    assert journal.planned() == [] and journal.done_at(moved) is not None
    assert journal.placed_at(moved, digest) is not None  # facesortd's placement, not a person's label
    journal.close()
    assert "relative" not in " ".join(status.gather(settings)["problems"])
    assert cli.main(["undo", "--forget-relative"]) == 0
    assert "nothing to forget" in capsys.readouterr().out


def test_undo_forget_relative_rolls_back_a_row_whose_file_never_reached_the_library(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The file still where `sort` ran (looked for in this folder, and said so): rolled back, kept."""
    settings = cli_settings
    cwd = tmp_path / "where-sort-ran"
    journal, src = _relative_row(settings, cwd, 9, arrived=False)
    journal.close()
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    assert cli.main(["undo", "--forget-relative"]) == 0
    out = capsys.readouterr().out
    assert f"from shots/a.png in {cwd} (this folder): there, the same content" in out
    assert "happy/a.png: not there" in out and "recorded as rolled back" in out
    assert src.is_file() and _files(settings.library) == []
    journal = Journal.for_state_dir(settings.state_dir)
    assert journal.planned() == [] and journal.move(1).state == "rolled_back"  # type: ignore[union-attr]
    journal.close()


def test_a_daemon_problem_naming_a_non_utf8_folder_shows_its_byte_once_in_status(
    daemon_settings: Settings, tmp_path: Path
) -> None:
    """The daemon's problems came back from its JSON record with a stray byte already shown as
    ``\\xff``; `status` showed them again, so that backslash was doubled (``\\\\xff``), the name
    unlike every other place it is printed. The daemon now writes them as one line each, and
    `status` prints them as they are."""
    outside = tmp_path / os.fsdecode(b"out\xff")
    with running_daemon(daemon_settings, stub_pipeline):
        _link_out(daemon_settings.library / "_quarantine", outside)
        wait_until(lambda: json.loads((daemon_settings.state_dir / "status.json").read_text())["problems"])
        shown = status.report(daemon_settings)
    lines = [line for line in shown.splitlines() if line.startswith("PROBLEM:") and "outside the" in line]
    assert len(lines) == 1, shown
    [line] = lines
    assert "out\\xff" in line
    assert "out\\\\xff" not in line


def test_an_error_about_a_non_utf8_name_reaches_status(daemon_settings: Settings) -> None:
    """SQLite's text refused a message holding a name that is not UTF-8, so the error went to the
    log only ("cannot record that error in the journal either") and never to `status`."""
    name = daemon_settings.inbox / os.fsdecode(b"shot\xff.png")
    journal = Journal(daemon_settings.state_dir / JOURNAL_FILE)
    journal.error(name, f"{name}: cannot be read")
    journal.close()
    [error] = status.gather(daemon_settings)["last_errors"]
    assert error["message"] == f"{name}: cannot be read"
    assert "shot\\xff.png: cannot be read" in status.report(daemon_settings)
