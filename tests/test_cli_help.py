"""`--help` and the refusals of bad input, read as a demanding new user reads them (2026-12-02 walk):
each test is a defect found then."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from facesortd import cli
from facesortd.cli.app import build_parser

DEVELOPER_COMMANDS = {"train-detector"}
"""Commands for the people who make facesortd's detector, not for its users: not walked."""


def _parsers(developers: bool = False) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """`facesortd` and each command's parser; the developers' commands too if ``developers``."""
    parser = build_parser()
    yield "facesortd", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from (
                (n, p) for n, p in action.choices.items() if developers or n not in DEVELOPER_COMMANDS
            )


def test_every_option_says_what_it_takes() -> None:
    """`--config CONFIG`, `--library LIBRARY`, `--model MODEL`, `--face-size FACE_SIZE`: argparse's
    upper-cased option names said nothing of the kind of value (a file? a folder? a share?), and
    README and the messages write `--config FILE`. (`train-detector` too: `--stages STAGES`,
    `--max-false-alarm MAX_FALSE_ALARM`, and its defaults of several values as Python tuples.)"""
    derived = [
        f"{name} {action.option_strings[0]} {action.dest.upper()}"
        for name, parser in _parsers(developers=True)
        for action in parser._actions
        if action.option_strings and action.nargs != 0 and action.metavar is None and not action.choices
    ]
    assert not derived, derived
    assert "--config FILE" in build_parser().format_help()
    developers = " ".join(p.format_help() for n, p in _parsers(developers=True) if n in DEVELOPER_COMMANDS)
    assert "(24, 24)" not in developers and "[640" not in developers


def test_every_argument_is_named_as_the_others_are() -> None:
    """`sort [paths ...]` and `detect images [images ...]` beside `DATASET`, `N|FILE`, `default|FILE`:
    lower-case words read as literal text to type. (`detect images` also takes folders.)"""
    lower = [
        f"{name} {action.dest}"
        for name, parser in _parsers()
        for action in parser._actions
        if not action.option_strings and action.metavar is None and not action.choices
    ]
    assert not lower, lower


def test_an_unknown_argument_is_refused_with_the_usage_of_its_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`facesortd status --json extra` showed the usage of `facesortd` (every command, none of its
    options) and "facesortd: error: unrecognized arguments", as if the command were wrong."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(["status", "--json", "extra"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "usage: facesortd status [-h] [--json]" in err
    assert "facesortd status: error: unrecognized arguments: extra" in err
    with pytest.raises(SystemExit):
        cli.main(["sort", "--dry-run", "--bogus"])
    assert "facesortd sort: error: unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--bogus", "status"])  # before the command: facesortd's own options are meant
    assert "facesortd: error: unrecognized arguments: --bogus" in capsys.readouterr().err


def test_status_json_help_says_what_problems_hold() -> None:
    """Its "problems" were said to be folders facesortd may not use; they are any problem status
    finds (a daemon on other settings, a model gone, Happy/ beside happy/), each with its fix."""
    status = " ".join(dict(_parsers())["status"].format_help().split())
    assert "<a folder facesortd may not use" not in status
    assert "problems" in status


def test_undo_since_a_time_to_come_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """`undo --since 2027-12-01` (a year typed wrong, or a day and month swapped) said "nothing to
    undo", exit 0: as if nothing had been sorted since."""
    assert cli.main(["undo", "--since", "2999-01-01"]) == 2
    assert "--since 2999-01-01 is in the future" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["list", "extra"], ["rollback", "old.fsm.npz"]])
def test_model_list_or_rollback_with_a_file_names_the_command_given(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`model list extra` was told "`model use` takes `default` or a model FILE": about a command
    not given."""
    assert cli.main(["model", *argv]) == 2
    err = capsys.readouterr().err
    assert f"`model {argv[0]}` takes nothing after it, got {argv[1]!r}" in err, err
    assert f"`facesortd model use {argv[1]}`" in err


def test_a_faces_json_naming_no_face_is_said_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eval faces.json` of a box file that lists no face said "(see the skipped counts)", and none
    were shown; `import-labels` of it said "nothing to import", then "they take part in the next
    retrain"; a file that is not JSON said "Expecting value: line 1 column 1 (char 0)"."""
    boxes = tmp_path / "faces.json"
    boxes.write_text("{}")
    assert cli.main(["eval", str(boxes)]) == 2
    err = capsys.readouterr().err
    assert "no usable faces" in err and "skipped counts" not in err, err
    assert cli.main(["import-labels", str(boxes)]) == 0
    assert capsys.readouterr().out == "nothing to import\n"
    boxes.write_text("happy: a.png")
    assert cli.main(["import-labels", str(boxes)]) == 2
    assert f"cannot read face boxes from {boxes}: not JSON (" in capsys.readouterr().err


def test_an_option_of_facesortd_given_after_the_command_says_where_it_goes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd status --config my.toml` (as most tools take it) was "unrecognized arguments"."""
    config = tmp_path / "my.toml"
    config.write_text("")
    with pytest.raises(SystemExit):
        cli.main(["status", "--config", str(config)])
    err = capsys.readouterr().err
    assert "--config is an option of facesortd itself: give it before the command" in err, err
    assert f"facesortd --config {config} status" in err


def _help(command: str) -> str:
    """``command``'s --help as one line of words (``facesortd``: the program's own)."""
    return " ".join(dict(_parsers())[command].format_help().split())


def test_the_program_help_says_where_the_folders_are_and_what_the_exit_statuses_mean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`facesortd --help` named `<library>` without saying where that is, and no help said what
    exit status 2 (a mistake in the command line or the config) or 130 meant. The default folders it
    names now are the ones the settings take (checked here, so that the two never part)."""
    from facesortd.config import DEFAULT_FOLDERS, load_settings

    program = _help("facesortd")
    for status in ("0 done", "; 1 ", "; 2 a mistake in the command line or the configuration", "; 130 "):
        assert status in program, status
    assert " ".join(DEFAULT_FOLDERS.split()) in program and " ".join(DEFAULT_FOLDERS.split()) in _help("run")
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_PICTURES_DIR"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    for folder in (settings.inbox, settings.library, settings.state_dir):
        assert f" ~/{folder.relative_to(tmp_path)}" in DEFAULT_FOLDERS, folder


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ("sort", "The exit status is 1 if a file could not be moved or a disk was full"),
        ("sort", "130 if stopped by Ctrl-C, 143 by SIGTERM"),
        ("detect", "the exit status is 1 if an image could not be read"),
        ("retrain", "the exit status is 1 if no model was made"),
        ("doctor", "exit 1 if anything is wrong"),
        ("run", "exit status 0"),
        ("run", "The exit status is 1 if it stopped on a fault"),
        ("run", "2 if it cannot start"),
        ("review", "until Ctrl-C, which ends it with exit status 0"),
    ],
)
def test_a_command_that_exits_otherwise_than_done_or_a_mistake_says_when(command: str, says: str) -> None:
    """`sort` said only "1 if a file could not be moved": not a full disk, nor 130/143 when
    stopped; `run` said nothing of 129 after SIGHUP, 1 on a fault (which systemd restarts) or 2."""
    assert says in _help(command)


def test_run_names_the_exit_status_it_takes_after_sighup() -> None:
    from facesortd.service import HANGUP_EXIT

    assert f"SIGHUP stops it the same way, with exit status {HANGUP_EXIT}" in _help("run")


def test_model_says_what_each_action_does() -> None:
    """Its `{list,rollback,use}` argument was explained as "(default list)" alone."""
    assert "list the models (the default), roll back one, or use the model named next" in _help("model")


def test_a_bare_facesortd_shows_the_help_that_says_where_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    """A bare `facesortd`, most often a first try, said "error: the following arguments are required:
    COMMAND" below a usage line: nothing of what the tool does nor where to start. It shows the help on
    stderr, exit 2 as every command line that does nothing (the tests' convention: 0 is for done)."""
    assert cli.main([]) == 2
    out, err = capsys.readouterr()
    said = " ".join(err.split())
    assert out == "" and "required" not in err
    assert said.startswith("usage: facesortd") and "Sort anime screenshots into <library>/<emotion>/" in said
    assert "To start: `facesortd run` sorts what is in the inbox" in said and "install-service" in said
    assert cli.main(["--log-level", "DEBUG"]) == 2  # facesortd's own options alone: the same


def test_a_misspelt_option_is_named_with_the_one_meant(capsys: pytest.CaptureFixture[str]) -> None:
    """`sort --dryrun` was "unrecognized arguments: --dryrun" below the usage, and the person was
    left to spot the hyphen; a misspelt command is named with the nearest one, now an option too."""
    for argv, said in (
        (
            ["sort", "--dryrun", "x.png"],
            "facesortd sort: error: unrecognized arguments: --dryrun (did you mean --dry-run?)",
        ),
        (["status", "--jsn", "--bogus"], "unrecognized arguments: --jsn --bogus (did you mean --json?)"),
        (
            ["--log-levl=DEBUG", "status"],
            "facesortd: error: unrecognized arguments: --log-levl=DEBUG (did you mean --log-level?)",
        ),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert said in capsys.readouterr().err


def test_a_file_named_like_an_option_is_said_with_how_to_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort -weird.png` (a file whose name begins with "-") was "unrecognized arguments" alone,
    no word of the file; an unknown option that is no file is said as before."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-weird.png").touch()
    for argv, hint in ((["sort", "-weird.png"], True), (["sort", "-nothing.png"], False)):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        err = " ".join(capsys.readouterr().err.split())
        assert f"unrecognized arguments: {argv[1]}" in err
        assert ("name it ./-weird.png, or put -- before the file names" in err) is hint


@pytest.mark.parametrize(
    ("argv", "typo", "meant"),
    [
        (["sotr"], "sotr", "sort"),
        (["reveiw"], "reveiw", "review"),
        (["evaluate", "x"], "evaluate", "eval"),
        (["model", "rollbak"], "rollbak", "rollback"),
        (["help"], "help", "--help"),
        (["model", "help"], "help", "--help"),
    ],
)
def test_a_misspelt_command_is_named_with_the_one_meant(
    argv: list[str], typo: str, meant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd sotr` listed every command and left the person to find the one meant; a typo'd
    config key was named with the nearest one (config's "did you mean"), now a command is too."""
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert f"invalid choice: {typo!r} (did you mean {meant}? choose from " in err, err
    with pytest.raises(SystemExit):
        cli.main(["xyzzy"])  # nothing near: argparse's own words
    assert "did you mean" not in capsys.readouterr().err


def test_the_parser_is_built_once_for_every_command_a_process_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`main` built the whole parser (every command's options) at each call, some 5-10 ms: a program
    calling it again and again (the tests, hundreds of times) paid it each time."""
    from facesortd.cli import app

    built = []
    monkeypatch.setattr(app, "build_parser", lambda: built.append(1) or build_parser())
    monkeypatch.setattr(app, "_the_parser", functools.cache(app._the_parser.__wrapped__), raising=False)
    for _ in range(3):
        assert cli.main([]) == 2  # a bare `facesortd`: its help
    assert len(built) == 1
