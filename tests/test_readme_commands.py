"""What README.md tells a user to type exists: every command line of its shell blocks parses, every
`--option` it names beside a command is that command's, every config key it names is a setting; and
every option's --help names the default it has.

A new user follows the README literally; a renamed option or key would send them into an error the
README does not explain.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex

import pytest
from conftest import REPO

from facesortd.cli.app import build_parser
from facesortd.config import Settings

README = (REPO / "README.md").read_text(encoding="utf-8")
PARSER = build_parser()
COMMANDS: dict[str, argparse.ArgumentParser] = next(
    a.choices for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)
)


def _shell_lines() -> list[str]:
    """The `facesortd ...` commands of the README's ```sh blocks (`<venv>/bin/facesortd run` in the
    install line too), comments cut off."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            for command in re.split(r"&&|;", line.split(" #")[0]):
                first, _, rest = command.strip().partition(" ")
                if (
                    first.split("/")[-1] == "facesortd" and "COMMAND" not in rest
                ):  # `facesortd COMMAND --help`
                    lines.append(f"facesortd {rest}".strip())
    return lines


def _variants(line: str) -> list[list[str]]:
    """The argument lists a line stands for: `[X]` with and without X, `a|b` each alternative."""
    out: list[list[str]] = [[]]
    for token in shlex.split(line)[1:]:
        if token.startswith("[") and token.endswith("]"):
            out = [*out, *([*args, token[1:-1]] for args in out)]
        elif "|" in token:
            out = [[*args, choice] for args in out for choice in token.split("|")]
        else:
            assert "[" not in token and "]" not in token, f"README: a bracket this test cannot read: {line}"
            out = [[*args, token] for args in out]
    return out


def _parse_error(args: list[str]) -> str | None:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            PARSER.parse_args(args)
    except SystemExit as exc:
        return err.getvalue().strip() if exc.code else None
    return None


def test_every_command_line_of_the_readme_parses() -> None:
    lines = _shell_lines()
    assert len(lines) >= 20  # the "Using it" block, the install and test lines
    failures = [
        f"{line!r} as {args}: {error}"
        for line in lines
        for args in _variants(line)
        if (error := _parse_error(args))
    ]
    assert not failures, "\n".join(failures)


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for action in parser._actions for s in action.option_strings}


def test_every_option_the_readme_names_beside_a_command_is_one() -> None:
    """`facesortd sort --dry-run`, `undo --since 2h`, `train`/`eval --plots DIR` in the prose."""
    named = re.findall(r"`(?:facesortd )?([a-z][a-z-]*)\b([^`]*)`", README)
    checked, wrong = 0, []
    for command, rest in named:
        if command not in COMMANDS:
            continue
        for option in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", rest):
            checked += 1
            if option not in _options(COMMANDS[command]) | _options(PARSER):
                wrong.append(f"{command} {option}")
    assert checked >= 20 and not wrong, wrong


def test_every_config_key_the_readme_names_is_a_setting() -> None:
    keys = re.findall(r"`([a-z]+)\.([a-z_]+)(?: = [^`]*)?`", README)
    sections = {name: field.annotation for name, field in Settings.model_fields.items()}
    checked = [(s, k) for s, k in keys if s in sections and k != "py"]
    assert len(checked) >= 20
    missing = [f"{s}.{k}" for s, k in checked if k not in sections[s].model_fields]  # type: ignore[union-attr]
    assert not missing, missing


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_names_each_options_default(command: str) -> None:
    """An option that takes a value and has a default says it in --help (`--folds`, `--face-size`
    did not: a user had to read the code to know what they get)."""
    silent = [
        action.option_strings[0]
        for action in COMMANDS[command]._actions
        if action.option_strings
        and action.nargs != 0
        and action.default not in (None, False, [], argparse.SUPPRESS)
        and "default" not in (action.help or "")
    ]
    assert not silent, f"facesortd {command}: {silent}"


def test_run_help_says_which_folders_it_watches_and_fills(capsys: pytest.CaptureFixture[str]) -> None:
    """`run --help` said "the inbox" and nothing of where it is."""
    with pytest.raises(SystemExit):
        PARSER.parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "~/Pictures/facesortd/inbox" in text and "~/Pictures/facesortd/library" in text
    assert "`facesortd status` names them" in text
