"""`doctor`: each thing facesortd needs, a line each, with the fix."""

from __future__ import annotations

import argparse

from facesortd.cli.stopping import say
from facesortd.shown_names import one_line


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check each thing facesortd needs and say how to fix what is wrong, a line each on stdout
    ("ok" or "FIX"); exit 1 if anything is wrong."""
    from facesortd.doctor import run_checks, unit_check

    problems = 0
    for ok, message in (*run_checks(args.config), unit_check(args.config)):
        # A line each, a name's line break escaped; a configuration error lists its keys a line each.
        shown = message if message.startswith("configuration: ") else one_line(message)
        say(("ok    " if ok else "FIX   ") + shown)
        problems += not ok
    say("all good" if not problems else f"{problems} problem(s) found")
    return 1 if problems else 0


def add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check config, folders, cascade, model and service unit",
        description=cmd_doctor.__doc__,
    )
    p.set_defaults(func=cmd_doctor)
