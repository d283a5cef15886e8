"""`install-service`: the systemd user unit installed (service_unit.install), what to run next, and the
fix when it cannot be written."""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

from facesortd.advice import advised
from facesortd.cli.common import refuse_overlap, settings_for
from facesortd.cli.stopping import say
from facesortd.refusals import DISK_FULL, Refused
from facesortd.service_unit import (
    Installed,
    environment_files,
    facesortd_environment,
    install,
    masked,
    no_systemctl,
    other_environment,
    unit_environment,
    unit_file,
    unit_text,
)
from facesortd.shown_names import one_line


def cmd_install_service(args: argparse.Namespace) -> int:
    unit = unit_file()
    try:
        # The person's FACESORTD_* settings in the unit there go on into the new one: written anew
        # without them, the daemon went back to the config's folders (and advised commands for them).
        old = unit.read_text(errors="replace") if unit.is_file() else ""
        carried = facesortd_environment(old)
        # What `run` checks before it starts, of the folders the daemon will use (the config's and
        # the unit's): a unit for settings the service refuses failed at once (exit 2, not
        # restarted) while this said "now run: systemctl ... enable --now".
        with unit_environment(carried):
            refuse_overlap(settings_for(args))
        text = unit_text(args.config, carried)
        if args.print:
            say(text, end="")
            return 0
        link, was_masked = (os.readlink(unit) if unit.is_symlink() else None), masked(unit)
        installed = install(unit, text, _say_kept)
    except OSError as exc:  # the unit before (if any) is whole
        raise Refused(exc, f"cannot write {unit}", _unit_fix(exc, unit.parent)) from None
    if installed is Installed.SAME:
        say(f"already installed: {one_line(unit)} (`systemctl --user enable --now facesortd` starts it)")
        _without_systemd()
        return 0
    # A unit replaced may be running: `enable --now` leaves a running service as it is, on the old unit.
    start = (
        "enable facesortd\n  systemctl --user restart facesortd"
        if installed is Installed.REPLACED
        else "enable --now facesortd"
    )
    say(f"wrote {one_line(unit)}")
    # Written in its place, not through it: a dotfile manager's link (or systemctl's mask) gone unsaid.
    if was_masked:
        say("  it was masked (a link to /dev/null), and is not now (`systemctl --user mask facesortd`)")
    elif link is not None:
        say(f"  in place of a link to {one_line(link)}, which is left as it was")
    for word in carried:
        say(f"kept Environment={one_line(word)} from the unit that was there")
    for word in other_environment(old):  # only a unit not written as it is has one: it is in the .bak
        say(f"left out Environment={one_line(word)}, not facesortd's (the copy kept has it)")
    for path in environment_files(old):
        say(
            f"left out EnvironmentFile={one_line(path)}: the copy kept has it (the FACESORTD_* settings "
            "it gave the daemon go into the config, or into Environment= lines, which are carried)"
        )
    say(f"now run:\n  systemctl --user daemon-reload\n  systemctl --user {start}")
    _without_systemd()
    return 0


def _without_systemd() -> None:
    """The systemctl advice fails where there is no systemd ("systemctl: command not found"), with no
    word of what to run instead: said."""
    if no_systemctl():
        say(
            "but systemctl is not on this system (it does not run systemd, it seems): nothing starts the "
            f"unit here; run `{advised('run')}` yourself instead (from your session's autostart, say)"
        )


def _say_kept(copy: Path) -> None:
    say(f"kept the unit that was there, which facesortd did not write as it is, as {one_line(copy)}")


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


def add_install_service(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "install-service",
        help="install the systemd user unit",
        description="Write facesortd.service into $XDG_CONFIG_HOME/systemd/user/ (~/.config/systemd/"
        "user/) and print the systemctl commands that enable it (it runs none itself). A unit there "
        "that facesortd wrote is replaced; one edited by hand (or not written by facesortd) is kept "
        "as facesortd.service.bak first. The FACESORTD_* variables a unit there sets (Environment=) "
        "are carried into the new one, each said. The unit runs this very facesortd, the one in the "
        "environment you run this command from, with the --config FILE given before install-service.",
    )
    p.add_argument(
        "--print", action="store_true", help="print the unit to stdout instead (to install it by hand)"
    )
    p.set_defaults(func=cmd_install_service)
