"""The `facesortd` parser and `main`: every command group's options, and user errors as one-line messages."""

from __future__ import annotations

import argparse
import functools
import io
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger

from facesortd import __version__, start_signals
from facesortd.advice import FolderOption, advise_with
from facesortd.cli import (
    configuration,
    detect,
    doctor,
    evaluate,
    install_service,
    labels,
    models,
    retrain,
    run,
    sort,
    status,
    train,
    undo,
)
from facesortd.cli.common import SaidAbove, UsageError
from facesortd.cli.stopping import InterruptedAfter, StdoutFailed, quiet_stdout, reader_gone, writing_stdout
from facesortd.config import (
    DEFAULT_FOLDERS,
    FOLDERS,
    LOG_LEVELS,
    ConfigError,
    Settings,
    environment_folders,
    load_settings,
)
from facesortd.detect import DetectorError
from facesortd.emotion import ModelError
from facesortd.feature_net import FeatureNetError
from facesortd.interrupts import exit_status
from facesortd.journal import JournalError, JournalLocked, JournalReplaced, JournalUnavailable
from facesortd.learn.datasets import DatasetError
from facesortd.mounts import DriveNotMounted
from facesortd.progress import LogStream, written
from facesortd.refusals import NotWritten, Refused
from facesortd.shown_names import NAME_BYTES, one_line
from facesortd.spelling import nearest
from facesortd.state import StateBusy

if TYPE_CHECKING:
    from loguru import Record

USER_ERRORS = (
    UsageError,
    ConfigError,
    DetectorError,
    ModelError,
    DatasetError,
    FeatureNetError,
    StateBusy,
    JournalError,
    Refused,
)
"""Errors a user can cause: shown as one line that names the fix (``one_line``: a name in it with a line
break does not make it two), exit status 2, no traceback."""

NOT_YET = (JournalUnavailable, JournalLocked, JournalReplaced, DriveNotMounted, NotWritten)
"""Errors said as ``USER_ERRORS`` are, but exit status 1, not 2: systemd restarts `run` until the
journal is free (or opens the one there now) or the drive is back; a file not written (a full disk)
is no mistake in the command line."""


def _show_any_name() -> None:
    """Every name printed or logged reaches the person, whatever its bytes and the terminal's locale."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=NAME_BYTES)


def _setup_logging(level: str) -> None:
    logger.remove()
    logger.add(LogStream(sys.stderr), level=level, format=_log_line)


def _log_line(record: Record) -> str:
    """Each message on one line (the daemon's journal, `sort`'s lines): a name holding a line break
    or a terminal escape is shown escaped (``one_line``), not as a second line that reads as
    another file. The message is put in as a value, so that no ``<tag>`` in a name is taken for colour."""
    record["extra"]["one_line"] = one_line(record["message"])
    return "<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {extra[one_line]}\n{exception}"


class _Parser(argparse.ArgumentParser):
    """argparse's parser, naming the nearest choice when one is misspelt (`facesortd sotr`,
    `facesortd reveiw`, `model rollbak`): argparse listed every choice and left the person to find
    the one meant. Said as a typo'd config key is (``spelling.nearest``). Where a command or
    another word of the command line is expected, `--help` is near too: `facesortd help` was
    refused with the list alone. Each command's parser is one too (``add_subparsers`` makes them of
    the parser's own class)."""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError:
            choices = [str(c) for c in action.choices or ()]
            meant = nearest(str(value), choices + ([] if action.option_strings else ["--help"]))
            if meant is None:
                raise
            listed = ", ".join(map(repr, choices))
            raise argparse.ArgumentError(
                action, f"invalid choice: {value!r} (did you mean {meant}? choose from {listed})"
            ) from None


def build_parser() -> argparse.ArgumentParser:
    """Every command's options, added by its group's module in the order `--help` lists them."""
    parser = _Parser(
        prog="facesortd",
        description="Sort anime screenshots into <library>/<emotion>/ by the faces in them; "
        "files it is unsure about go to <library>/_quarantine/<reason>/ for review. A file is moved, "
        "never over another one, and every move is journaled (`facesortd undo` puts it back). The "
        "inbox, library and state folder are the config's (`facesortd status` names them); "
        f"{DEFAULT_FOLDERS}. To start: `facesortd run` sorts what is in the inbox and every file "
        "dropped there after, until Ctrl-C (`facesortd install-service` has systemd run it for you); "
        "`facesortd status` says what it did, `facesortd review` labels what it was unsure of. "
        "`facesortd COMMAND --help` says what each command does.",
        # What main's exits mean, said once for every command at the foot of `facesortd --help`.
        epilog=(
            "Exit status: 0 done; 1 what a command's own help names (a file `sort` could not move, a "
            "problem `doctor` found, ...), or the journal in use by another process, unable to take "
            "writes or replaced meanwhile; 2 a mistake in the command line or the configuration (a line "
            "saying so, with the fix); 130 stopped by Ctrl-C (`run` and `review`, which run until it: "
            "0); 141 the reader of the output left (`facesortd status | head`)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"facesortd {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML config file (default: $XDG_CONFIG_HOME/facesortd/config.toml, ~/.config/facesortd/"
        "config.toml unless XDG_CONFIG_HOME is set, if present; else built-in defaults); FACESORTD_<KEY> "
        "variables override it",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        metavar="LEVEL",
        help="how much goes to stderr: "
        + ", ".join(LOG_LEVELS)
        + f" (default: the config's log_level, {Settings.model_fields['log_level'].default} unless set)",
    )
    # Not required: a bare `facesortd` is shown this help (main), not "the following arguments are required".
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sort.add_sort(sub)
    detect.add_detect(sub)
    train.add_train(sub)
    evaluate.add_eval(sub)
    run.add_run(sub)
    status.add_status(sub)
    undo.add_undo(sub)
    retrain.add_retrain(sub)
    labels.add_import_labels(sub)
    labels.add_review(sub)
    install_service.add_install_service(sub)
    models.add_model(sub)
    doctor.add_doctor(sub)
    configuration.add_config(sub)
    _add_train_detector(sub)
    return parser


def _add_train_detector(sub: argparse._SubParsersAction) -> None:
    try:
        from facesortd.cascade_train import command
    except ImportError:
        return
    p = sub.add_parser(
        "train-detector",
        help="train the face detector: an LBP cascade and its CNN verifier",
        description="Train the face detector from labelled faces and face-free images: an LBP cascade "
        "written to --out (rewritten after every stage) and, with --verifier-out, the CNN verifier that "
        "takes a second look at each box it proposes. For developers: facesortd ships both; put new "
        "ones in force with the config's detection.cascades and detection.verifier.",
    )
    command.add_arguments(p)
    p.set_defaults(func=command.run)


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The arguments, or exit 2 with the usage of the command they were given to: argparse says an
    unknown one (`status --json extra`) with the usage of `facesortd` itself, which lists every
    command and none of that command's options. One before the command is `facesortd`'s own, and one
    of `facesortd`'s own given after the command (`status --config FILE`, as many tools take it) is
    said with the command line that works."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        given = sys.argv[1:] if argv is None else argv
        _refuse_misplaced(parser, given, unknown)
        before = given[: given.index(args.command)] if args.command in given else given
        wrong = parser if any(u in before for u in unknown) else commands(parser)[args.command]
        hints = _meant_options(wrong, unknown) + _dash_names(unknown)
        wrong.error(f"unrecognized arguments: {' '.join(unknown)}{hints}")
    return args


def _meant_options(parser: argparse.ArgumentParser, unknown: list[str]) -> str:
    """The options of ``parser`` nearest to misspelt ones (`sort --dryrun`: " (did you mean
    --dry-run?)"), as a misspelt command is said; "" if none is near. It was the usage line alone."""
    options = [s for a in parser._actions for s in a.option_strings]
    meant = [
        near
        for given in unknown
        if given.startswith("-") and (near := nearest(given.split("=", 1)[0], options)) is not None
    ]
    return f" (did you mean {' '.join(meant)}?)" if meant else ""


def _dash_names(unknown: list[str]) -> str:
    """How to name files whose names begin with ``-`` (`sort -weird.png`), which argparse takes for
    options: it said "unrecognized arguments" alone, no word of the file. "" if none is a file."""
    files = [given for given in unknown if given.startswith("-") and os.path.lexists(given)]
    if not files:
        return ""
    return f" ({files[0]} is a file: name it ./{files[0]}, or put -- before the file names)"


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's name and its own parser."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def folder_options(parser: argparse.ArgumentParser) -> list[FolderOption]:
    """Each folder setting (of ``config.FOLDERS``) some command takes as an option (``sort --library
    DIR``), with every command that takes it, for the advice to give it by."""
    found = []
    for name in FOLDERS:
        option = next(
            (
                a.option_strings[0]
                for its in commands(parser).values()
                for a in its._actions
                if a.dest == name and a.option_strings
            ),
            None,
        )
        if option is None:
            continue
        taking = {
            command
            for command, its in commands(parser).items()
            if any(option in a.option_strings for a in its._actions)
        }
        found.append(FolderOption(name, option, frozenset(taking)))
    return found


def given_folders(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Path]:
    """The folders the command was given by those options, by setting, for the advice to carry."""
    own = commands(parser)[args.command]._actions
    return {
        name: folder
        for name in FOLDERS
        if any(a.dest == name and a.option_strings for a in own)
        and (folder := getattr(args, name, None)) is not None
    }


def _refuse_misplaced(parser: argparse.ArgumentParser, given: list[str], unknown: list[str]) -> None:
    """Exit 2 if ``unknown`` holds an option of `facesortd` itself (``--config``, ``--log-level``),
    naming the command line with it before the command."""
    own = {s for a in parser._actions if a.option_strings and a.nargs != 0 for s in a.option_strings}
    misplaced = next((u for u in unknown if u.split("=", 1)[0] in own), None)
    if misplaced is None:
        return
    at = given.index(misplaced)
    taken = given[at : at + (1 if "=" in misplaced else 2)]
    fixed = shlex.join(["facesortd", *taken, *given[:at], *given[at + len(taken) :]])
    parser.error(
        f"{misplaced.split('=', 1)[0]} is an option of facesortd itself: give it before the command ({fixed})"
    )


@functools.cache
def _the_parser() -> argparse.ArgumentParser:
    """``build_parser``'s parser, made once a process: nothing in it depends on more than the code
    (no option's default or help reads the config or the environment), parsing leaves it as it
    was, and `main` is called again and again by a program driving facesortd (the tests: hundreds
    of times, some 5-10 ms each to build it)."""
    return build_parser()


def main(argv: list[str] | None = None) -> int:
    _show_any_name()
    parser = _the_parser()
    args = _parse(parser, argv)
    if args.command != "run":  # the daemon takes up those that came while it started
        start_signals.give_back()
    if args.command is None:  # a first try, most often: what the tool does and where to start
        parser.print_help(sys.stderr)
        return 2
    # every command advised from here carries them
    advise_with(
        args.config, folder_options(parser), given_folders(parser, args), environment_folders(args.config)
    )
    _setup_logging(args.log_level or "INFO")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        # `doctor` and `config` read the config file themselves: a broken one is what they are for.
        # Not settings_for: the folders are each command's to check, with its own options (`sort
        # --library DIR` was refused for the config's library, a file) or not at all (`status`).
        if args.log_level is None and args.command not in ("doctor", "config"):
            _setup_logging(load_settings(args.config).log_level)
        code = func(args)
        with writing_stdout():  # a reader that left (`status | head`), a full disk: shows here
            sys.stdout.flush()
        return code
    except StdoutFailed as failed:  # said once, not a traceback (nor a second at the exit's flush)
        if reader_gone(failed.error):  # the reader has what it wanted
            return 141
        _say(f"facesortd: error: {failed}")
        return 1
    except SaidAbove as said:
        return _exit_status(said.error)
    except (*NOT_YET, *USER_ERRORS) as exc:
        # One line, a name's line break shown escaped (the journal's holder's command line was a
        # second line); a configuration error lists its keys a line each.
        _say(f"facesortd: error: {exc if isinstance(exc, ConfigError) else one_line(exc)}")
        return _exit_status(exc)
    except KeyboardInterrupt as exc:
        _say(
            f"facesortd: interrupted; {exc.outcome}"
            if isinstance(exc, InterruptedAfter)
            else "facesortd: interrupted"
        )
        return exit_status(exc)
    except BrokenPipeError:  # `facesortd model | head`: a command's own print, the reader gone
        quiet_stdout()
        return 141


def _exit_status(error: Exception) -> int:
    return 1 if isinstance(error, NOT_YET) else 2


def _say(line: str) -> None:
    """``main``'s last line, on stderr; dropped if its terminal is gone (``progress.written``): a
    traceback there went nowhere and made the exit status 1 whatever it was to be."""
    written(sys.stderr, line + "\n")
