"""`status`: what the daemon is doing, what it sorted and what waits for the person."""

from __future__ import annotations

import argparse
import os
import sys

from facesortd.cli.common import SaidAbove
from facesortd.cli.stopping import say
from facesortd.config import load_settings
from facesortd.shown_names import json_text


def cmd_status(args: argparse.Namespace) -> int:
    from facesortd.status import gather, report

    # Not settings_for: a folder setting that names a file is said in the report (``gather``), beside
    # the daemon that may be running all the same.
    settings = load_settings(args.config)
    refused: list[Exception] = []
    say(json_text(gather(settings, refused), indent=2) if args.json else report(settings, refused))
    if refused:  # said in the report; the exit status and the line on stderr every command has for it
        raise SaidAbove(refused[0]) if _one_terminal() else refused[0]
    return 0


def _one_terminal() -> bool:
    """Whether stdout and stderr are the same terminal, where the report's PROBLEM line was just read:
    a damaged journal's message was shown twice there, the second time as "facesortd: error"."""
    try:
        out, err = (os.fstat(stream.fileno()) for stream in (sys.stdout, sys.stderr))
    except (OSError, ValueError):  # a stream of no descriptor (a test's, a program's): not one
        return False
    return sys.stdout.isatty() and sys.stderr.isatty() and out.st_rdev == err.st_rdev


def add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="is the daemon running, what it sorted, what waits for you, last errors",
        description="Daemon (uptime, queue), the model and threshold in force, the inbox and library "
        "folders, files placed today and "
        "in total per folder, files you labelled (on the review page or by moving them), files waiting "
        "in each quarantine folder, what sits in the inbox and why, "
        "labels for training and the last errors. The report goes to stdout, and status exits 0 "
        "whenever it could make one, problems included: a script looks for the lines that start "
        '"PROBLEM:" (or the "problems" list of --json), not at the exit status, which is 2 for '
        "settings it cannot read (with no report), and after the report 2 for a journal or model it "
        "cannot use (damaged, of a newer facesortd), 1 for a journal whose disk is full or read-only.",
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
