"""`undo` and `model` driven as a hostile user drives them: files changed, renamed or put back
under a taken name, two undos at once, odd `--since` values; each file must end up exactly once."""

from __future__ import annotations

import pytest
from synthetic import screenshot_png

from facesortd import cli
from facesortd.config import Settings


@pytest.fixture
def env(cli_settings: Settings) -> Settings:
    """The CLI sees the test's folders and detects the drawn faces (conftest's cli_settings)."""
    return cli_settings


def test_a_file_undone_beside_one_of_its_name_stays_in_the_inbox(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Undone into an inbox where another file took its name since, the file went back as
    'a (1).png', which the daemon (and a bare `sort`) did not know as undone: sorted again at once."""
    shot = env.inbox / "a.png"
    shot.write_bytes(screenshot_png(1))
    assert cli.main(["sort"]) == 0 and not shot.exists()
    shot.write_bytes(screenshot_png(2))  # another screenshot, saved under the same name since
    assert cli.main(["undo", "1"]) == 0
    back = env.inbox / "a (1).png"
    assert f"-> {back}" in capsys.readouterr().out
    assert cli.main(["sort"]) == 0
    assert back.read_bytes() == screenshot_png(1) and "you undid its sort" in capsys.readouterr().err
    assert not shot.exists()  # the new one is sorted as any new file
