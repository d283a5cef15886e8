"""`undo` and `model` driven as a hostile user drives them: files changed, renamed or put back
under a taken name, two undos at once, odd `--since` values; each file must end up exactly once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from synthetic import screenshot_png

from facesortd import cli
from facesortd.config import Settings
from facesortd.journal import UNDOING, Journal
from facesortd.status import interrupted_moves
from facesortd.undo import undo


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


def test_a_move_another_undo_took_meanwhile_is_left_alone(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """An undo waiting at its question ("undo these 25 moves?") while another undid one of them and
    the file was sorted again by hand: it put that new sort's file back, its move left as done, and
    the next `sort` of the inbox sorted it a third time."""
    shot = env.inbox / "a.png"
    shot.write_bytes(screenshot_png(1))
    assert cli.main(["sort"]) == 0
    journal = Journal.for_state_dir(env.state_dir)
    chosen = journal.done_moves(limit=1)  # the plan of the undo that waits
    assert cli.main(["undo", "1"]) == 0 and cli.main(["sort", str(shot)]) == 0
    [late] = undo(journal, chosen, env.library, env.inbox)
    journal.close()
    assert late.back_to is None and late.why_not == "undone meanwhile (by another undo); skipped"
    capsys.readouterr()
    assert cli.main(["undo", "1"]) == 0 and shot.is_file()  # the sort by hand is undone as any
    assert cli.main(["sort"]) == 0 and shot.is_file() and "you undid its sort" in capsys.readouterr().err


def test_undo_since_longer_ago_than_any_clock_takes_every_move(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undo --since 999…9d` (meaning all of them) ended in a traceback: "OverflowError: int too
    large to convert to float"."""
    (env.inbox / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["sort"]) == 0
    capsys.readouterr()
    assert cli.main(["undo", "--since", "9" * 400 + "d", "--dry-run"]) == 0
    assert f"would go back to {env.inbox}" in capsys.readouterr().out


def test_the_next_undo_first_finishes_one_killed_while_putting_a_file_back(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kill -9` of `undo` between linking a file back into the inbox and unlinking it from the
    library, then `undo` again before any `sort` or start of the daemon: the second marked its own
    undo over the first's mark, which recovery then never saw, and the file stayed in both places
    for good (the library's name unknown to the journal)."""
    for seed, name in enumerate(("a.png", "b.png")):
        (env.inbox / name).write_bytes(screenshot_png(seed))
        assert cli.main(["sort", str(env.inbox / name)]) == 0
    journal = Journal.for_state_dir(env.state_dir)
    killed = next(m for m in journal.done_moves() if m.source.name == "a.png")
    journal.set_meta(UNDOING, str(killed.id))  # what the killed undo had done, up to the kill
    journal.finish(killed.id, "undone")
    os.link(killed.destination, killed.source)
    problems: list[str] = []  # and `status` said the inbox's name alone: "you undid its sort"
    interrupted_moves(env, journal, problems)
    journal.close()
    [problem] = problems
    assert f"(killed, or its journal refused a write) while putting {killed.destination} back" in problem
    assert cli.main(["undo", "1"]) == 0
    assert "completed the interrupted undo" in capsys.readouterr().err
    assert sorted(p.name for p in env.inbox.iterdir()) == ["a.png", "b.png"]
    assert not [p for p in env.library.rglob("*") if p.is_file()]


def test_the_plan_names_the_very_names_the_undo_then_gives(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undo --dry-run` said "would go back to inbox" of a file whose name was taken there, and the
    undo then said "-> inbox/a (1).png": the plan was not what was done."""
    for seed, name in enumerate(("a.png", "b.png")):
        (env.inbox / name).write_bytes(screenshot_png(seed))
        assert cli.main(["sort", str(env.inbox / name)]) == 0
    (env.inbox / "a.png").write_bytes(screenshot_png(9))  # another a.png saved since
    capsys.readouterr()
    assert cli.main(["undo", "2", "--dry-run"]) == 0
    plan = capsys.readouterr().out.splitlines()
    assert plan[-1] == "nothing undone (dry run)" and f"would go back to {env.inbox / 'a (1).png'}" in plan[1]
    assert cli.main(["undo", "2"]) == 0
    assert [
        line.replace(" would go back to ", " -> ") for line in plan[:-1]
    ] == capsys.readouterr().out.splitlines()


def test_undo_model_of_a_name_no_model_has_is_refused_with_the_one_meant(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undo --model defualt` was "nothing to undo: no file that defualt sorted is still where it
    put it", exit 0: read as every file of the model meant put back already."""
    (env.inbox / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["sort"]) == 0
    capsys.readouterr()
    assert cli.main(["undo", "--model", "defualt"]) == 2
    err = capsys.readouterr().err
    assert "--model defualt: no model of that name sorted a file here (did you mean `" in err
    assert " --model default`?" in err
    assert cli.main(["undo", "--model", "default"]) == 0  # it quarantined its one file as unsure
    assert capsys.readouterr().out.startswith("nothing to undo: no file that default sorted is still")


def test_undo_of_a_file_undone_already_says_so(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """`undo FILE` of a file undo had put back was "the journal has no move of facesortd that put
    this file there", as if facesortd had never touched it."""
    shot = env.inbox / "a.png"
    shot.write_bytes(screenshot_png(1))
    assert cli.main(["sort"]) == 0
    [placed] = [p for p in env.library.rglob("a.png")]
    assert cli.main(["undo", str(placed)]) == 0 and shot.is_file()
    capsys.readouterr()
    assert cli.main(["undo", str(shot)]) == 2
    err = capsys.readouterr().err
    assert f"{shot}: its sort was undone already, and this is where it went back (`" in err, err


@pytest.mark.parametrize("option", ["--since", "--library"])
def test_an_empty_time_or_library_given_to_undo_is_refused(
    env: Settings, option: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`undo --since "$WHEN"` with the variable empty undid the last move (as a bare `undo`);
    `undo --library ""` was the current folder, every move inside it trusted and undone."""
    (env.inbox / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["sort"]) == 0
    monkeypatch.chdir(env.library.parent)  # the library inside the current folder
    code = 0
    try:
        code = cli.main(["undo", option, ""])
    except SystemExit as exit_info:  # argparse's refusal
        code = int(str(exit_info.code))
    assert code == 2 and not (env.inbox / "a.png").exists()
    assert "empty" in capsys.readouterr().err or option == "--since"


def test_sort_into_an_empty_library_name_is_refused_not_into_the_current_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sort --library "$LIB" shot.png` with the variable empty sorted into the current folder."""
    (tmp_path / "a.png").write_bytes(screenshot_png(1))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sort", "--library", "", "a.png"])
    assert exit_info.value.code == 2 and "argument --library: an empty name" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_model_use_of_an_empty_name_says_what_it_takes(capsys: pytest.CaptureFixture[str]) -> None:
    """`model use "$MODEL"` with the variable empty: "model file . is a folder"."""
    assert cli.main(["model", "use", ""]) == 2
    assert "`model use` takes `default` or a model FILE" in capsys.readouterr().err


def test_undo_into_a_folder_made_a_file_since_says_so(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort ~/shots/a.png`, then ~/shots made a file: "it came from ~/shots, which no longer exists"
    of a name that is there."""
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["sort", str(shots / "a.png")]) == 0
    shots.rmdir()
    shots.write_bytes(b"a file now")
    capsys.readouterr()
    assert cli.main(["undo", "1"]) == 0
    assert f"it came from {shots}, which is no folder now; left alone" in capsys.readouterr().out
    assert len(list(env.library.rglob("a.png"))) == 1


def test_a_file_named_twice_is_undone_once_and_said_once(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`undo happy/a.png ./a.png` (one file, two names): the second was "undone meanwhile (by
    another undo); skipped", of this very undo."""
    (env.inbox / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["sort"]) == 0
    [placed] = list(env.library.rglob("a.png"))
    monkeypatch.chdir(placed.parent)
    capsys.readouterr()
    assert cli.main(["undo", str(placed), "./a.png"]) == 0
    assert capsys.readouterr().out == f"{placed} -> {env.inbox / 'a.png'}\n"
