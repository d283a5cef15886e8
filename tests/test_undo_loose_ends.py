"""`undo`'s --since units and --library checks, as a person tidying a library meets them."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from synthetic import screenshot_png, stub_pipeline

from facesortd import cli
from facesortd.cli import undo as undo_command
from facesortd.config import Settings


@pytest.mark.parametrize(
    ("since", "seconds"), [("1w", 7 * 86400), ("2 weeks ago", 14 * 86400), ("3wks", 21 * 86400)]
)
def test_undo_since_takes_weeks(since: str, seconds: int) -> None:
    """`undo --since 1w` was refused ("--since takes e.g. 2h, 30m, 1d ..."): weeks are how a person
    tidying a library counts back."""
    assert abs(undo_command._parse_since(since) - (time.time() - seconds)) < 5


def test_undo_help_names_its_units_and_each_example_is_taken(capsys: pytest.CaptureFixture[str]) -> None:
    """The help says which units --since takes, and each example it gives is one it takes."""
    with pytest.raises(SystemExit):
        cli.main(["undo", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "seconds, minutes, hours, days or weeks" in shown and undo_command.SINCE_EXAMPLES in shown
    for example in undo_command.SINCE_EXAMPLES.split(", "):
        assert undo_command._parse_since(example) < time.time()


def test_undo_library_holding_the_library_or_inbox_is_refused(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undo --library ~` (or `/`) trusted every move journaled below it, and put a file back into
    the folder it was sorted from even where that folder was gone, made again there: no `sort
    --library` sorts into a folder holding the inbox or the library, so it is refused, exit 2."""
    shots = tmp_path / "screens"
    shots.mkdir()
    (shots / "a.png").write_bytes(screenshot_png(9))
    assert cli.main(["sort", str(shots / "a.png")]) == 0
    [placed] = [p for p in cli_settings.library.rglob("*") if p.is_file()]
    shutil.rmtree(shots)  # tidied away, sorted
    capsys.readouterr()
    for folder in (tmp_path, Path("/"), cli_settings.inbox / "sub"):
        folder.mkdir(exist_ok=True)
        assert cli.main(["undo", "--library", str(folder), "--since", "1h"]) == 2
        err = capsys.readouterr().err
        assert f"--library {folder} " in err and "no folder `sort --library` sorted into" in err
    assert placed.exists() and not shots.exists()
    assert cli.main(["undo", "--library", str(cli_settings.library)]) == 0  # the library itself: as ever
    assert "which no longer exists; left alone" in capsys.readouterr().out
    assert placed.exists() and not shots.exists()


def test_a_sort_into_a_folder_holding_the_library_is_undone_the_library_s_moves_not(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sort --library ~ shot.png` with the config's library in ~/Pictures (sort takes it): `undo
    --library ~` was refused as holding the library, and without --library the move was "not inside
    the library": that sort could never be undone. Now undo trusts the moves into that library's own
    folders, and those alone: the config's library's moves below it are left, said so."""
    home = tmp_path / "home"
    monkeypatch.setenv("FACESORTD_LIBRARY", str(home / "Pictures"))
    shots = tmp_path / "screens"
    shots.mkdir()
    for seed, name in enumerate(("a.png", "b.png")):
        (shots / name).write_bytes(screenshot_png(seed))
    assert cli.main(["sort", str(shots / "a.png")]) == 0  # into the config's library, below ~
    assert cli.main(["sort", "--library", str(home), str(shots / "b.png")]) == 0
    [mine] = [p for p in (home / "Pictures").rglob("*") if p.is_file()]
    capsys.readouterr()
    assert cli.main(["undo", "--library", str(home), "--since", "1h"]) == 0
    out = capsys.readouterr().out
    assert f"-> {shots / 'b.png'}" in out
    assert f"{mine}: in {mine.parent}, below the library {home} but none of its own folders" in out
    assert sorted(p.name for p in shots.iterdir()) == ["b.png"] and mine.is_file()
    assert [p for p in home.rglob("*") if p.is_file()] == [mine]
    assert cli.main(["undo", "1"]) == 0  # the config library's own, undone as ever
    assert sorted(p.name for p in shots.iterdir()) == ["a.png", "b.png"]


@pytest.mark.parametrize(("name_taken", "busy"), [(False, False), (True, False), (True, True)])
def test_a_daemon_finishes_an_undo_killed_beside_it_as_the_file_comes_back(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, name_taken: bool, busy: bool
) -> None:
    """An `undo` killed -9 between linking a file back into the inbox and unlinking it from the
    library left it in both; the running daemon, whose inbox saw the new name arrive, left the library's
    name until its next label scan (about 30 s), and where the name was taken (`a (1).png`, its
    put-back not journaled yet) sorted it into the library again: the undo reversed. The worker that
    looks at it finishes the killed undo first; ``busy``: the move lock held by another move as it
    first looks (whose own recovery finishes the undo), looked at again under the lock."""
    from facesortd.journal import UNDOING
    from facesortd.service import Service

    inbox = daemon_settings.inbox
    inbox.mkdir(parents=True)
    (inbox / "a.png").write_bytes(screenshot_png(9))
    service = Service(daemon_settings)
    try:
        placed = service.process(stub_pipeline(daemon_settings), inbox / "a.png")
        assert placed is not None
        move = service.journal.done_at(placed)
        assert move is not None
        if name_taken:  # a new a.png dropped since: the undo puts it back as a (1).png
            (inbox / "a.png").write_bytes(screenshot_png(10))
        back = inbox / ("a (1).png" if name_taken else "a.png")
        service.journal.set_meta(UNDOING, str(move.id))  # the undo's steps, up to its kill
        service.journal.finish(move.id, "undone")
        os.link(placed, back)
        if busy:
            monkeypatch.setattr("facesortd.sorter.move_lock_if_free", _held_by_another)
        service.process(stub_pipeline(daemon_settings), back)  # the new name's inbox event
        assert back.is_file() and not placed.exists()  # once, where the undo put it
        assert not [p for p in daemon_settings.library.rglob("*") if p.is_file()]
        assert service.journal.get_meta(UNDOING) == ""
        assert service.journal.undone_from(back, move.hash)  # left alone from now on, as undone
    finally:
        service.journal.close()


@contextlib.contextmanager
def _held_by_another(state_dir: Path) -> Iterator[bool]:
    yield False
