"""`undo`'s --since units and --library checks, as a person tidying a library meets them."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from synthetic import screenshot_png

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
