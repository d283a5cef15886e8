"""`run`, `status`, `install-service` and `doctor`: the daemon, what it is doing, and setting it up."""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import re
import shlex
import sys
from pathlib import Path

from facesortd.advice import advised
from facesortd.cli.common import refuse_overlap, settings_for
from facesortd.config import config_home, config_option
from facesortd.durable import DISK_FULL, Refused, atomic_writer, write_new
from facesortd.package_data import README, SERVICE_TEMPLATE, data_file, package_file
from facesortd.shown_names import json_text, one_line


def cmd_run(args: argparse.Namespace) -> int:
    """Watch the inbox and sort files as they arrive, until SIGTERM/SIGINT (as systemd runs it)."""
    from facesortd.service import Service

    settings = settings_for(args)
    refuse_overlap(settings)
    code = Service(settings).run()
    # Every file is placed and synced, the journal closed and the workers joined: what is left of
    # an exit is the interpreter's teardown, where native libraries' destructors can race threads
    # they started themselves (a daemon once died of SIGSEGV there). Skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_status(args: argparse.Namespace) -> int:
    from facesortd.status import gather, report

    settings = settings_for(args)
    print(json_text(gather(settings), indent=2) if args.json else report(settings))
    return 0


def own_command() -> list[str]:
    """The command that starts this very facesortd, for the unit: the script installed beside the
    interpreter running now (a virtual environment's or pipx's ``bin/``). A `facesortd` found on
    PATH may be another installation (or none: a virtual environment is rarely on systemd's PATH),
    and the unit must run the one the user installed it with."""
    script = Path(sys.executable).parent / "facesortd"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "facesortd"]


def unit_word(word: str, *, argument: bool = False) -> str:
    """``word`` as one word of a unit file's value, as systemd reads it back: a ``%`` doubled (a
    specifier otherwise: a path or ``file:`` URI holding one was refused), and quoted where it holds
    a space, a quote, a backslash or a control character (a folder such as "My Apps" split ExecStart;
    a line break, escaped, ended the line). A ``$`` is doubled
    in an ``argument`` of ExecStart, where systemd expands ``${NAME}`` (a --config path in a folder
    "${USER}s stuff" was read as "rootstuff"); it stays in the command's path, which systemd runs
    unexpanded, and a URI never holds one."""
    word = word.replace("%", "%%")
    if argument:
        word = word.replace("$", "$$")
    if any(c.isspace() or not c.isprintable() or c in "\\\"'" for c in word):
        quoted = word.replace("\\", "\\\\").replace('"', '\\"')
        # A line break (any control character) as a C escape, which systemd reads back in a quoted
        # word: written as it is, it ended the line, and the rest of the path was a unit line of its own.
        return '"' + "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in quoted) + '"'
    return word


def unit_text(config: Path | None = None) -> str:
    """The unit for this facesortd: it runs this very command, with the ``--config`` it was given
    (without it the service read the default config, another inbox than the one the person tried),
    and its ``Documentation=`` is the README installed with it (a ``file:`` URI, as systemd.unit(5)
    allows, that every installed copy has; a web address we do not own was not)."""
    command = own_command() + config_option(config)
    fill = {
        "{exec_start}": " ".join(unit_word(w, argument=i > 0) for i, w in enumerate(command)),
        "{documentation}": unit_word(package_file(README).absolute().as_uri()),
    }
    text = data_file(SERVICE_TEMPLATE).read_text(encoding="utf-8")
    for field, value in fill.items():
        text = text.replace(field, value)
    return _signed(text)


UNIT_SUM = "# Written by `facesortd install-service`, which keeps an edited copy; sha256 of the lines above: "


def _signed(text: str) -> str:
    return f"{text}{UNIT_SUM}{hashlib.sha256(text.encode()).hexdigest()}\n"


def _written_as_is(unit: bytes) -> bool:
    """Whether ``unit`` is as `install-service` wrote it (for this facesortd or another): its last
    line sums the lines above. Anything else (edited by hand, written by an older facesortd without
    that line, or by the person) is not replaced without a copy."""
    text = unit.decode(errors="replace")
    return UNIT_SUM in text and text == _signed(text[: text.rindex(UNIT_SUM)])


def unit_file() -> Path:
    """Where `install-service` writes the unit: systemd's folder for a user's own units."""
    return config_home().parent / "systemd" / "user" / "facesortd.service"


def cmd_install_service(args: argparse.Namespace) -> int:
    unit_dir = unit_file().parent
    # What `run` checks before it starts: a unit for settings the service refuses failed at once
    # (exit 2, not restarted) while this said "now run: systemctl ... enable --now".
    refuse_overlap(settings_for(args))
    text = unit_text(args.config)
    if args.print:
        print(text, end="")
        return 0
    unit = unit_file()
    try:
        old = unit.read_bytes() if unit.is_file() else None
        if old == text.encode():
            print(f"already installed: {unit} (`systemctl --user enable --now facesortd` starts it)")
            return 0
        if old is not None and not _written_as_is(old):
            kept = write_new(unit.with_name(unit.name + ".bak"), lambda fh: fh.write(old), stat_from=unit)
            print(f"kept the unit that was there, which facesortd did not write as it is, as {kept}")
        with atomic_writer(unit) as fh:  # a full disk must not leave systemd half a unit
            fh.write(text.encode())
    except OSError as exc:  # the unit before (if any) is whole: atomic_writer replaces it only when done
        raise Refused(exc, f"cannot write {unit}", _unit_fix(exc, unit_dir)) from None
    # A unit replaced may be running: `enable --now` leaves a running service as it is, on the old unit.
    start = (
        "enable facesortd\n  systemctl --user restart facesortd"
        if old is not None
        else "enable --now facesortd"
    )
    print(f"wrote {unit}\nnow run:\n  systemctl --user daemon-reload\n  systemctl --user {start}")
    return 0


def _unit_fix(exc: OSError, unit_dir: Path) -> str:
    """What the person does about a unit that could not be written: the errors a user's disk or
    folders cause, each with its own remedy (chmod does not help a full disk or a read-only mount)."""
    if exc.errno in DISK_FULL:
        return "free some space on that disk"
    if exc.errno == errno.EROFS:
        by_hand = advised("install-service", "--print")
        return f"it is on a read-only filesystem: install the unit by hand ({by_hand})"
    folder = next(p for p in (unit_dir, *unit_dir.parents) if p.exists())  # the one mkdir needs
    if not folder.is_dir():
        return f"{folder} is not a folder: move that file away"
    return f"make {folder} writable for you (chmod u+rwx '{folder}')"


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check each thing facesortd needs and say how to fix what is wrong, a line each on stdout
    ("ok" or "FIX"); exit 1 if anything is wrong."""
    from facesortd.doctor import run_checks

    problems = 0
    for ok, message in (*run_checks(args.config), _unit_check(args.config)):
        # A line each, a name's line break escaped; a configuration error lists its keys a line each.
        shown = message if message.startswith("configuration: ") else one_line(message)
        print(("ok    " if ok else "FIX   ") + shown)
        problems += not ok
    print("all good" if not problems else f"{problems} problem(s) found")
    return 1 if problems else 0


def _unit_check(config: Path | None) -> tuple[bool, str]:
    """What the installed service runs: a unit whose program or --config file is gone fails at its
    start (a config exit 2, not restarted), said only in systemd's journal, while every check above
    passed for the command and config doctor itself was run with."""
    unit = unit_file()
    if not os.path.lexists(unit):
        return True, f"service unit: not installed (`{advised('install-service')}` writes {unit})"
    try:
        text = unit.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:  # a folder in its place, a link to nowhere, a file this user may not read
        return False, f"service unit: cannot read {unit} ({exc.strerror or exc}): make it a file you may read"
    if text == unit_text(config):
        return True, f"service unit: {unit}, for this facesortd and this config"
    found = re.search(r"^ExecStart=[-@:+!]*(.*)$", text, re.MULTILINE)
    try:  # systemd's quoting, as unit_word writes it: a doubled % or $ is one
        words = [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(found[1])] if found else []
    except ValueError:
        words = []
    if not words:
        return True, f"service unit: {unit} (not one facesortd can read: check it by hand)"
    config_named = words[words.index("--config") + 1] if "--config" in words[:-1] else None
    reinstall = shlex.join([*own_command(), *config_option(config), "install-service"])
    fix = (
        f"`{reinstall}` writes it for this one, then "
        "systemctl --user daemon-reload && systemctl --user restart facesortd"
    )
    if not os.access(words[0], os.X_OK):
        return False, f"service unit: {unit} runs {words[0]}, which is not there: {fix}"
    if config_named and not Path(config_named).is_file():
        return False, f"service unit: {unit} reads the config file {config_named}, which is not there: {fix}"
    return True, f"service unit: {unit} runs `{shlex.join(words)}` (not the command or config checked here)"


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="watch the inbox and sort files as they arrive (the daemon)",
        description="Run in the foreground, as systemd does: sort what is already in the inbox, then "
        "every file saved there, into the library (the config's inbox and library; by default "
        "~/Pictures/facesortd/inbox and ~/Pictures/facesortd/library, or under the desktop's own pictures "
        "folder such as ~/Bilder; `facesortd status` names them). "
        "Its log goes to stderr (under systemd, to the journal: journalctl --user -u facesortd). "
        "SIGTERM or Ctrl-C stops it cleanly, once the files in progress are placed.",
    )
    p.set_defaults(func=cmd_run)


def add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="is the daemon running, what it sorted, what waits for you, last errors",
        description="Daemon (uptime, queue), the model and threshold in force, the inbox and library "
        "folders, files placed today and "
        "in total per folder, files you labelled (on the review page or by moving them), files waiting "
        "in each quarantine folder, what sits in the inbox and why, "
        "labels for training and the last errors.",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print it as one JSON object: {"total": {"<emotion>" | "_quarantine/<reason>": n, ...}, '
        '"today": {...}, "labelled": {"total": {"<emotion>": n}, "today": {...}}, '
        '"waiting_for_review": {...}, "inbox": {...}, "daemon": {...}, "model": {...}, "labels": {...}, '
        '"retrain": {...}, "last_errors": [...], "problems": ["<what is wrong (a folder facesortd may '
        'not use, a daemon on other settings, Happy/ beside happy/ ...), and the fix>", ...]} on stdout '
        '(README: "What status tells you")',
    )
    p.set_defaults(func=cmd_status)


def add_install_service(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "install-service",
        help="install the systemd user unit",
        description="Write facesortd.service into $XDG_CONFIG_HOME/systemd/user/ (~/.config/systemd/"
        "user/) and print the systemctl commands that enable it (it runs none itself). A unit there "
        "that facesortd wrote is replaced; one edited by hand (or not written by facesortd) is kept "
        "as facesortd.service.bak first. The unit runs this very facesortd, the one in the "
        "environment you run this command from, with the --config FILE given before install-service.",
    )
    p.add_argument(
        "--print", action="store_true", help="print the unit to stdout instead (to install it by hand)"
    )
    p.set_defaults(func=cmd_install_service)


def add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check config, folders, cascade, model and service unit",
        description=cmd_doctor.__doc__,
    )
    p.set_defaults(func=cmd_doctor)
