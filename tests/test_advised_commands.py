"""Every `facesortd ...` command a message advises carries the ``--config FILE`` the person ran with:
without it the advised command read the default config and acted on another inbox, library and
state folder (2026-12-02: `review`, `retrain`, `model use default`, `sort FILE` ... were all said bare).
It carries the folder options (``--library DIR``) the command was given too, where the advised
command takes them: `sort --library DIR` advised a bare `sort FILE`, into the config's library."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from synthetic import screenshot_png

from facesortd import cli
from facesortd.advice import advised


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config that is not the default one, in a folder with a space (the advice must quote it)."""
    folder = tmp_path / "my configs"
    folder.mkdir()
    path = folder / "facesortd.toml"
    path.write_text(
        f'inbox = "{tmp_path / "in"}"\nlibrary = "{tmp_path / "lib"}"\nstate_dir = "{tmp_path / "state"}"\n'
    )
    (tmp_path / "in").mkdir()
    return path


def _advised(text: str) -> list[str]:
    """Every `facesortd ...` command quoted with backticks in ``text``."""
    return re.findall(r"`([^`]*?\bfacesortd [^`]*)`", text)


def test_status_advises_review_and_model_commands_with_the_config(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unsure = tmp_path / "lib" / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    (unsure / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["--config", str(config), "status"]) == 0
    said = _advised(capsys.readouterr().out)
    option = shlex.join(["--config", str(config)])
    assert f"facesortd {option} review" in said
    assert f"facesortd {option} model use default" in said
    assert said and all(s.startswith(f"facesortd {option} ") for s in said), said


def test_retrain_advises_the_review_of_the_same_config(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--config", str(config), "retrain"]) == 1
    out = capsys.readouterr().out
    assert shlex.join(["facesortd", "--config", str(config), "review"]) in _advised(out), out


def test_a_file_whose_sort_was_undone_is_told_how_to_sort_it_with_the_config(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from synthetic import BrightBlobDetector

    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    (tmp_path / "in" / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["--config", str(config), "sort"]) == 0
    assert cli.main(["--config", str(config), "undo"]) == 0
    capsys.readouterr()
    assert cli.main(["--config", str(config), "sort"]) == 0
    err = capsys.readouterr().err
    assert shlex.join(["facesortd", "--config", str(config), "sort", "FILE"]) in err, err


def test_a_file_whose_sort_was_undone_is_told_how_to_sort_it_into_the_library_named(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort --library DIR` of a file whose sort was undone said `facesortd sort FILE`: typed as
    said, it sorted the file into the config's library."""
    from synthetic import BrightBlobDetector

    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in" / "a.png").write_bytes(screenshot_png(1))
    other = ["--library", "other library"]  # relative: the advice names it absolute
    assert cli.main(["--config", str(config), "sort", *other]) == 0
    assert cli.main(["--config", str(config), "undo", *other]) == 0
    capsys.readouterr()
    assert cli.main(["--config", str(config), "sort", *other]) == 0
    err = capsys.readouterr().err
    library = str(tmp_path / "other library")
    assert shlex.join(["facesortd", "--config", str(config), "sort", "--library", library, "FILE"]) in err, (
        err
    )


def test_every_folder_option_is_carried_by_each_command_that_takes_it() -> None:
    """Whatever command takes a folder option (config.FOLDERS: --library today, --inbox or
    --state-dir if one ever does), the advice of each command that takes it carries it; a command
    without it is said with the config alone, and an advice naming the option itself keeps its own."""
    from facesortd.advice import SHOWING, advise_with
    from facesortd.cli.app import build_parser, commands, folder_options, given_folders
    from facesortd.config import FOLDERS

    parser = build_parser()
    taken = [
        (action.option_strings[0], command)
        for command, its in commands(parser).items()
        for action in its._actions
        for name in FOLDERS
        if action.dest == name and action.option_strings
    ]
    assert ("--library", "sort") in taken and ("--library", "undo") in taken
    for option, command in taken:
        args = parser.parse_args(["--config", "c.toml", command, option, "here"])
        advise_with(args.config, folder_options(parser), given_folders(parser, args))
        here = str(Path("here").absolute())
        takers = {c for o, c in taken if o == option}
        variable = f"FACESORTD_{option.removeprefix('--').replace('-', '_').upper()}={here}"
        for other in commands(parser):
            words = shlex.split(advised(other, "X"))
            assert ([option, here] == words[4:6]) == (other in takers), (option, command, other, words)
            assert (words[0] == variable) == (other in SHOWING - takers), (option, other, words)
        assert shlex.split(advised(command, option, "FOLDER"))[3:] == [command, option, "FOLDER"]


def _typed(advice: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """``advice`` run as a person types it into a terminal that has none of the FACESORTD_* variables
    the advising process had: its own leading ``VAR=value`` words, then `facesortd`'s arguments."""
    import os

    for var in [v for v in os.environ if v.startswith("FACESORTD_")]:
        monkeypatch.delenv(var)
    words = shlex.split(advice)
    while "=" in words[0]:
        monkeypatch.setenv(*words.pop(0).split("=", 1))
    assert words[0] == "facesortd", advice
    return cli.main(words[1:])


def test_folders_set_by_facesortd_variables_are_named_in_the_advice(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon whose unit sets FACESORTD_LIBRARY and FACESORTD_STATE_DIR advised `facesortd review`
    and `facesortd model use default` bare: typed in the person's terminal, without those variables,
    they acted on the config's library and state folder. Now each carries them, as an option where the
    command takes one (`sort --library`), else as a variable set before `facesortd` (its value quoted,
    not the whole word, which the shell would take for a command's name)."""
    library, state = tmp_path / "unit library", tmp_path / "unit state"
    monkeypatch.setenv("FACESORTD_LIBRARY", str(library))
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(state))
    unsure = library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    (unsure / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["--config", str(config), "status"]) == 0
    said = _advised(capsys.readouterr().out)
    variables = f"FACESORTD_LIBRARY={shlex.quote(str(library))} FACESORTD_STATE_DIR={shlex.quote(str(state))}"
    option = shlex.join(["--config", str(config)])
    assert f"{variables} facesortd {option} review" in said, said
    assert f"{variables} facesortd {option} model use default" in said, said
    assert all(s.startswith(f"{variables} facesortd ") for s in said), said
    library_option = shlex.join(["--library", str(library)])
    assert (
        advised("sort", "FILE")
        == f"FACESORTD_STATE_DIR={shlex.quote(str(state))} facesortd {option} sort {library_option} FILE"
    )
    assert advised("undo", "--library", "FOLDER").endswith(" undo --library FOLDER")

    # Typed as said where the variables are not, `status` counts the file waiting in the unit's library.
    capsys.readouterr()
    assert _typed(advised("status"), monkeypatch) == 0
    assert f"library: {library}\n" in capsys.readouterr().out


def test_a_variable_that_names_the_configs_own_folder_is_not_said(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a folder the command would not use without the variable is named: one equal to the
    config's is noise in every message."""
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    assert cli.main(["--config", str(config), "status"]) == 0
    assert advised("review") == shlex.join(["facesortd", "--config", str(config), "review"])


def test_a_folder_option_given_beats_the_variable_where_the_command_takes_it(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sort --library DIR` under FACESORTD_LIBRARY sorts into DIR: the advised `sort FILE` names DIR,
    and so does `review` (by the variable: it takes no --library), which shows DIR's quarantine;
    `run` is the daemon's, on the variable's library."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "unit library"))
    assert cli.main(["--config", str(config), "sort", "--library", "mine"]) == 0
    assert shlex.split(advised("sort", "FILE"))[3:] == ["sort", "--library", str(tmp_path / "mine"), "FILE"]
    assert shlex.split(advised("review"))[0] == f"FACESORTD_LIBRARY={tmp_path / 'mine'}"
    assert shlex.split(advised("run"))[0] == f"FACESORTD_LIBRARY={tmp_path / 'unit library'}"


def test_after_sort_into_another_library_each_advised_command_names_the_right_library(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort --library DIR` advised a bare `review`, which takes no --library: the page showed the
    config library's quarantine, not DIR's, where the files sorted are. The commands that show the
    files (`review`, `status`) are now said with DIR by the variable; typed as said, `status` counts
    DIR. The daemon (`run`) and the commands that never look into a library are said without it:
    `FACESORTD_LIBRARY=DIR facesortd run` would sort the inbox into DIR for good."""
    from synthetic import BrightBlobDetector

    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in" / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["--config", str(config), "sort", "--library", "other library"]) == 0
    mine = tmp_path / "other library"
    option = shlex.join(["--config", str(config)])
    variable = f"FACESORTD_LIBRARY={shlex.quote(str(mine))}"
    assert advised("review") == f"{variable} facesortd {option} review"
    assert advised("status") == f"{variable} facesortd {option} status"
    assert advised("undo") == f"facesortd {option} undo {shlex.join(['--library', str(mine)])}"
    for bare in (["run"], ["model", "use", "default"], ["train", "DATASET"], ["install-service"]):
        assert advised(*bare) == shlex.join(["facesortd", "--config", str(config), *bare])
    capsys.readouterr()
    assert _typed(advised("status"), monkeypatch) == 0
    assert f"library: {mine}\n" in capsys.readouterr().out


def test_without_a_config_option_the_advice_is_the_bare_command(capsys: pytest.CaptureFixture[str]) -> None:
    """The default config needs no option, and a process run after one with --config forgets it."""
    assert cli.main(["status"]) == 0
    capsys.readouterr()
    assert advised("review") == "facesortd review"


NAMES_NOT_ADVICE = {
    "Trained by facesortd train-detector",  # a cascade's comment: how it was made
    "facesortd train-detector",
    "# Written by `facesortd install-service`",  # the unit's own comment
    "facesortd model file",  # what a file is
    "written by facesortd train",
    "`facesortd model` keeps",
    "a facesortd model",
    "(by `facesortd undo`?)",  # guesses at who moved a file, or who holds a lock
    "or `facesortd retrain`): waiting",
    "another `facesortd sort`",
    "the URL `facesortd review` printed",  # the command the person already ran
    "facesortd config --example",  # prints the shipped example whatever the config: nothing to carry
}


def test_no_message_writes_an_advised_command_by_hand() -> None:
    """Every string in the package that names a `facesortd COMMAND`, outside docstrings and --help
    texts (help, description, epilog: they describe the commands, not this installation's), is built
    by ``advised``: a twin written by hand lost the --config again. So is every list of a command
    line's words (`train` wrote ``shlex.join(["facesortd", "model", "use", out])``, without it)."""
    import ast

    from facesortd.cli.app import build_parser

    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    names = "|".join(map(re.escape, choices))
    command = re.compile(rf"facesortd ({names})\b")
    package = Path(cli.__file__).parents[1]
    found = []
    for source in sorted(package.rglob("*.py")):
        nodes = list(ast.walk(ast.parse(source.read_text(encoding="utf-8"))))  # walked once, asked thrice
        prose = {id(n.value) for n in nodes if isinstance(n, ast.Expr)}  # docstrings
        prose |= {
            id(inner)
            for n in nodes
            if isinstance(n, ast.keyword) and n.arg in ("help", "description", "epilog")
            for inner in ast.walk(n.value)
        }
        found += [
            f"{source.relative_to(package)}:{n.lineno}: {n.value!r}"
            for n in nodes
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and id(n) not in prose
            and command.search(n.value)
            and not any(allowed in n.value for allowed in NAMES_NOT_ADVICE)
        ]
        found += [  # the words of a command line: shlex.join(["facesortd", "model", "use", ...])
            f"{source.relative_to(package)}:{n.lineno}: {ast.unparse(n)}"
            for n in nodes
            if isinstance(n, ast.List | ast.Tuple)
            and len(n.elts) > 1
            and all(isinstance(e, ast.Constant) for e in n.elts[:2])
            and n.elts[0].value == "facesortd"  # type: ignore[attr-defined]
            and n.elts[1].value in choices  # type: ignore[attr-defined]
        ]
    assert not found, "\n".join(found)


def test_the_review_page_advises_with_the_config_too(config: Path, tmp_path: Path) -> None:
    """page.js wrote "`facesortd run` starts it" and "`facesortd eval DATASET --plots DIR` draws one"
    itself; the panels now carry those commands, built like every other."""
    from facesortd.advice import advise_with
    from facesortd.config import load_settings
    from facesortd.journal import Journal
    from facesortd.review_page.panels import Learning, model_panel

    advise_with(config)
    settings = load_settings(config)
    option = shlex.join(["--config", str(config)])
    assert model_panel(settings)["draw_plots"] == f"facesortd {option} eval DATASET --plots DIR"
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        assert Learning(settings, journal).panel()["start_daemon"] == f"facesortd {option} run"
    finally:
        journal.close()
    page = (Path(cli.__file__).parents[1] / "review_page" / "static" / "page.js").read_text()
    assert not re.search(r"`facesortd [a-z]", page)
