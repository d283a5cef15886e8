"""`run`: the daemon in the foreground, as systemd runs it."""

from __future__ import annotations

import argparse
import os
import sys

from facesortd.cli.common import refuse_overlap, settings_for


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
