"""`run`: the daemon in the foreground, as systemd runs it."""

from __future__ import annotations

import argparse
import os
import sys

from facesortd.cli.common import make_folder, refuse_overlap, settings_for
from facesortd.config import DEFAULT_FOLDERS
from facesortd.mounts import refuse_unmounted
from facesortd.service import HANGUP_EXIT


def cmd_run(args: argparse.Namespace) -> int:
    """Watch the inbox and sort files as they arrive, until SIGTERM/SIGINT (as systemd runs it)."""
    from facesortd.service import Service

    settings = settings_for(args)
    refuse_overlap(settings)
    refuse_unmounted(settings.inbox, settings.library)  # before either is made; the state folder: Journal
    for name in ("inbox", "library"):
        make_folder(name, getattr(settings, name))
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
        "every file saved there, into the library. The inbox and library are the config's, made if "
        f"missing (`facesortd status` names them); {DEFAULT_FOLDERS}. "
        "Its log goes to stderr (under systemd, to the journal: journalctl --user -u facesortd). "
        "SIGTERM, Ctrl-C or SIGPWR stops it cleanly, once the files in progress are placed: exit status 0. "
        f"SIGHUP stops it the same way, with exit status {HANGUP_EXIT}, which systemd restarts with the "
        "settings read anew. SIGUSR1 and SIGUSR2 are logged and change nothing. "
        "The exit status is 1 if it stopped on a fault (a worker died; the journal "
        "was replaced, is in use or takes no writes; another daemon took the state folder) or cannot "
        "start yet (the inbox, library or state folder missing where a drive is not mounted), which systemd "
        "restarts, and 2 if it cannot start (a configuration error, a daemon already running on this "
        "state folder, an inbox and library that overlap).",
    )
    p.set_defaults(func=cmd_run)
