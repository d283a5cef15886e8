"""`undo`'s --since units and --library checks, as a person tidying a library meets them."""

from __future__ import annotations

import time

import pytest

from facesortd import cli
from facesortd.cli import undo as undo_command


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
