"""`import-labels` and `review`: labels from a dataset, or from a person on the review page."""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections import Counter

from loguru import logger

from facesortd.advice import advised
from facesortd.cli.arg_types import int_between
from facesortd.cli.common import UsageError, settings_for
from facesortd.cli.dataset_args import add_dataset_options, dataset_items, framing
from facesortd.cli.stopping import say
from facesortd.journal import Journal, JournalError, JournalUnavailable
from facesortd.learn.datasets import DatasetError, is_vn_faces
from facesortd.learn.kept_faces import faces_dir
from facesortd.mounts import refuse_unmounted
from facesortd.refusals import write_refused

REVIEW_PORT = 8765


def cmd_import_labels(args: argparse.Namespace) -> int:
    """Add a labelled dataset's faces to your labels (they weigh like bootstrap faces), for retraining."""
    from facesortd.learn.label_import import import_labels

    settings = settings_for(args)
    for src in args.datasets:
        if is_vn_faces(src):
            # Its sprites are transparent: `train` lays each over a background picture of its game
            # (learn/backdrops.py); read here without one, its faces would not be the faces `train` sees.
            raise UsageError(
                f"{src} is a vn_faces folder, which import-labels does not read (its sprites need the "
                f"backgrounds `train` puts behind them): train on it with `{advised('train', str(src))}`"
            )
    items = [item for found in dataset_items(args, settings).values() for item in found]
    detector, undetected = framing(args, settings)
    journal = Journal.for_state_dir(settings.state_dir)
    outcome: Counter[str] = Counter()
    try:
        import_labels(settings, journal, items, detector, args.kind, undetected, outcome)
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    except (KeyboardInterrupt, OSError, sqlite3.OperationalError) as exc:
        # "interrupted" alone left whether any label was kept unsaid; a face crop the full state
        # disk refused was a traceback, and so was a label the journal refused ("database or disk
        # is full"), which the journal's own error now says with its fix (exit 1)
        how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped"
        say(f"{_counted(outcome) or 'nothing imported'}; {how}: the same command imports the rest")
        if isinstance(exc, OSError):
            raise write_refused(exc, faces_dir(settings)) from exc
        if isinstance(exc, sqlite3.OperationalError) and not isinstance(exc, JournalError):
            raise JournalUnavailable(journal.path, exc) from exc
        raise
    finally:
        journal.close()
    say(_counted(outcome) or "nothing to import")
    if outcome["imported"]:  # said after "nothing to import" too, of labels there were none of
        say(f"they take part in the next retrain (`{advised('retrain')}`, or the daemon's own schedule)")
    return 0


def _counted(outcome: Counter[str]) -> str:
    return ", ".join(f"{what}: {n}" for what, n in sorted(outcome.items()))


def open_in_browser(url: str) -> bool:
    """Open ``url`` in the person's graphical browser; False if there is none to open.

    Without a display, Python's ``webbrowser`` falls back to a console browser (lynx, w3m, links)
    and waits in this terminal until it is quit, before the page is even served; and the page needs
    JavaScript, which those do not run. So without a display only a browser the person named in
    ``BROWSER`` is tried.
    """
    import webbrowser

    if not any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")):
        return False
    return webbrowser.open(url)


def cmd_review(args: argparse.Namespace) -> int:
    """Label the quarantine on a local web page: one key per file, the model's guesses on screen."""
    from facesortd.review_page.server import CannotListen, ReviewServer

    settings = settings_for(args)
    # Its labels move files into <library>/<emotion>/: made anew on the disk below a drive away.
    refuse_unmounted(settings.library)
    try:
        server = ReviewServer(settings, args.port)
    except CannotListen as exc:
        raise UsageError(
            f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror}): pass another --port, "
            "or --port 0 for any free one"
        ) from exc
    port = server.server_address[1]
    say(server.url, flush=True)
    logger.info("review page on 127.0.0.1:{}; Ctrl-C stops it", port)
    if not args.no_browser and not open_in_browser(server.url):
        # A server or an ssh session has no browser; the page listens on this machine only.
        logger.warning(
            "no browser to open here: open the URL above in one; from another machine, forward "
            "the port first (ssh -L {}:127.0.0.1:{} THIS-MACHINE) and open the URL there",
            port,
            port,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("review page stopped")
    finally:
        server.close()
    return 0


def add_import_labels(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import-labels",
        help="add a labelled dataset to your labels for retraining",
        description=cmd_import_labels.__doc__
        + " Each face is found and kept like a label you give by moving a file (recorded in the "
        "journal, its face crop kept in the state folder; the dataset is only read); labels you gave "
        "yourself are never replaced, and importing the same dataset twice adds nothing. Prints the "
        "counts on stdout (after Ctrl-C, those of the labels imported and kept so far; exit 130; exit 1 if "
        "the state folder's disk is full).",
    )
    add_dataset_options(p, vn_faces=False)
    p.set_defaults(func=cmd_import_labels)


def add_review(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "review",
        help="label the quarantine on a local web page",
        description=cmd_review.__doc__
        + " Prints the page's URL (with its access token) as the first line, opens it in the browser "
        "and serves it on 127.0.0.1 until Ctrl-C, which ends it with exit status 0. A label moves the "
        "file like a file manager would (journaled, undoable with `facesortd undo`) and counts as your "
        "label for retraining.",
    )
    p.add_argument(
        "--port",
        type=int_between(0, 65535),
        metavar="PORT",
        default=REVIEW_PORT,
        help="port on 127.0.0.1 (default %(default)s; 0: any free port)",
    )
    p.add_argument("--no-browser", action="store_true", help="only print the URL; open no browser")
    p.set_defaults(func=cmd_review)
