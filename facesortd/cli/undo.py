"""`undo`: which journaled moves to put back (the last N, --since, the files named), the plan shown
and confirmed, each file's outcome printed."""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path

from facesortd.advice import advised
from facesortd.cli.arg_types import named_folder
from facesortd.cli.common import UsageError, settings_for
from facesortd.cli.stopping import say
from facesortd.config import Settings
from facesortd.content import content_id
from facesortd.journal import Journal, JournalError, ModelId, Move
from facesortd.model_store import DEFAULT, history, model_id, name_of, resolve
from facesortd.mounts import drive_not_mounted
from facesortd.progress import written
from facesortd.recovery import arrived_at, forget_relative, relative_rows
from facesortd.shown_names import one_line
from facesortd.spelling import nearest
from facesortd.state import JOURNAL_FILE
from facesortd.undo import Outcome, Selection, left_waiting, placed_by, select, undo

SPAN = re.compile(r"(\d+)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)\s*(ago)?")
"""``2h``, ``30m``, ``1d``, ``1w`` as the help writes them, and the words spelt out (``2 days``,
``3hours ago``), which were refused as not a time. Weeks too: a person tidying a library goes back
in weeks, and ``1w`` was refused."""
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
"""Each unit of :data:`SPAN` in seconds, by its first letter."""
SINCE_EXAMPLES = "2h, 30m, 1d, 1w ago, 2 weeks, 2026-11-24T10:00"


def _parse_since(text: str) -> float:
    """``2h``, ``30m``, ``1d``, ``1w`` ago (with or without the word, spelt out or not: :data:`SPAN`), or an
    ISO date/time (``2026-11-24 10:00``)."""
    if span := SPAN.fullmatch(text.strip().lower()):
        ago, now = int(span.group(1)) * UNITS[span.group(2)[0]], time.time()
        # longer ago than the clock's start (`--since 99999999999999999999999d`, meaning all): every
        # move, where the float subtraction ended in a traceback ("int too large to convert to float")
        return now - ago if ago < now else 0.0
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(f"--since takes e.g. {SINCE_EXAMPLES}; got {text!r}") from None


def _no_library_of_a_sort(settings: Settings) -> str:
    """Why ``settings.library``, given as `undo --library`, is no folder a `sort --library` sorted
    into ("" if it may be one): it holds the state folder or the inbox, or is inside the inbox, as
    `sort` refuses. Undo puts a file back into a folder below the library it is given even where
    that folder is gone: `undo --library /` made again the folders files had been sorted from,
    deleted since, wherever they had been. One holding the config's library may be one (`sort
    --library ~` with the library in ~/Pictures): undo trusts only the moves into its own folders
    (``undo._sorted_into``), not the library's below it; refused until 2026-12-03, such a sort could
    not be undone at all."""
    folder = settings.library.resolve()
    mine = (("state folder", settings.state_dir), ("inbox", settings.inbox))
    held = [f"the {name} {where}" for name, where in mine if where.resolve().is_relative_to(folder)]
    if held:
        why = f"holds {' and '.join(held)}"
    elif folder.is_relative_to(settings.inbox.resolve()):
        why = f"is inside the inbox {settings.inbox}"
    else:
        return ""
    return (
        f"{why}, so it is no folder `sort --library` sorted into: name that folder itself (the "
        "library's own moves are undone without --library)"
    )


CONFIRM_UNDO_OVER = 20
"""Undoing more files than this from a terminal asks first (after showing the plan)."""


def cmd_undo(args: argparse.Namespace) -> int:
    settings = settings_for(args, library=args.library)
    if args.forget_relative:
        journal = Journal.for_state_dir(settings.state_dir)
        try:
            return _forget_relative(journal, args.dry_run)
        finally:
            journal.close()
    if args.library is not None and not settings.library.is_dir():
        # A typo'd --library refused every move of the journal in turn, "not inside the library",
        # a line each, and exited 0 having undone nothing.
        raise UsageError(
            f"--library {args.library}: no such folder (name the folder `sort --library` sorted into)"
        )
    if args.library is not None and (why := _no_library_of_a_sort(settings)):
        raise UsageError(f"--library {args.library} {why}")
    count = int(args.targets[0]) if len(args.targets) == 1 and args.targets[0].isdigit() else None
    if count == 0:
        raise UsageError("undo N takes how many of the last moves to undo: 1 or more")
    files = [] if count is not None else [Path(t) for t in args.targets]
    since = _parse_since(args.since) if args.since is not None else None  # "": refused, not `undo 1`
    if since is not None and since > time.time():  # "nothing to undo", exit 0, read as nothing sorted
        raise UsageError(
            f"--since {args.since} is in the future: give a time in the past, such as 2h or "
            f"{datetime.now().date().isoformat()}T10:00"
        )
    model = _judge(settings, args.model) if args.model is not None else None
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        chosen = select(journal, count, since, files, settings.library, settings.inbox, model)
        moves = chosen.moves
        if since is not None:
            _say_clock_ahead(chosen, args.since)
        if not moves and model is not None and model.version is None:
            _known(settings, journal, model.name, args.model)
        if not moves:  # and no "nothing undone (dry run)" after it: one line for one fact
            why = f": no file that {one_line(args.model)} sorted is still where it put it" if model else ""
            say(f"nothing to undo{why}")
            return 0
        if args.dry_run or (len(moves) > CONFIRM_UNDO_OVER and sys.stdin.isatty() and not args.yes):
            plans = undo(journal, moves, settings.library, settings.inbox, dry_run=True)
            # asked to confirm: the undo itself says what stopped it
            if (stopped := _report(plans, moves, "would go back to", stop=args.dry_run)) is not None:
                return stopped
            if args.dry_run:
                _say_short(chosen, count, plans, "would undo")
            if args.dry_run or not _confirm(f"undo these {len(moves)} moves?"):
                say("nothing undone" + (" (dry run)" if args.dry_run else ""))
                return 0
        outcomes = undo(journal, moves, settings.library, settings.inbox)
        if (stopped := _report(outcomes, moves, "->", stop=True)) is not None:
            return stopped
        _say_short(chosen, count, outcomes, "undid")
    except LookupError as exc:
        raise UsageError(str(exc)) from exc
    finally:
        journal.close()
    # as `sort`: a move that failed is worth a script's attention
    return 1 if any(done.retry for done in outcomes) else 0


def _judge(settings: Settings, model: str) -> ModelId:
    """The model `undo --model NAME` means, as the journal knows it: ``default`` the shipped model, a
    name `facesortd model` lists one in the models folder, else a model file's path. By its content
    where that file is there: not what another file of its name sorted (an earlier facesortd's
    shipped model, another pinned file of that name); by its name alone where it is gone."""
    path = resolve(settings, model)
    if path is None and (given := Path(model).expanduser()).is_file():
        path = given
    return model_id(path) if path is not None else ModelId(Path(model).name)


def _known(settings: Settings, journal: Journal, name: str, typed: str) -> None:
    """Refuse `undo --model NAME` of a name no model file has and no move was journaled under: a
    typo (`undo --model defualt`) was "nothing to undo: no file that defualt sorted is still where
    it put it", read as every file of the model meant put back already. ``typed``: as given."""
    journaled = journal.model_names()
    if name in journaled:
        return
    meant = nearest(name, [DEFAULT, *(entry.path.name for entry in history(settings)), *journaled])
    guess = f"did you mean `{advised('undo', '--model', meant)}`? " if meant else ""
    raise UsageError(
        f"--model {one_line(typed)}: no model of that name sorted a file here ({guess}"
        f"`{advised('model')}` lists the models; a model file's path names it too)"
    )


def left_by(settings: Settings, model: Path | None) -> str:
    """After ``model`` was taken out of force by hand (`model rollback`, `model use`, `train
    --activate`): how many files it sorted still sit in the emotion folders it chose, and how to put
    them back ("" if none). They stayed there unsaid: a person rolling a bad model back had its
    mistakes in the folders still, and no way to find them but the journal. The count is
    :func:`~facesortd.undo.placed_by`'s, what `undo --model` takes up. Not said of a retrain's own
    adoption: the model it replaces was not shown wrong, and a line after each retrain would invite
    putting back hundreds of files sorted right."""
    if model is None or not (settings.state_dir / JOURNAL_FILE).is_file():  # nothing ever sorted here
        return ""
    name = name_of(settings, model)  # as `undo --model` takes it
    if (away := drive_not_mounted(settings.library)) is not None:  # its files unseen: not "none left"
        return f"the files {name} sorted could not be counted: {away}"
    try:
        journal = Journal.for_state_dir(settings.state_dir)
        try:
            left = len(placed_by(journal, model_id(model), settings.library))
        finally:
            journal.close()
    except (JournalError, sqlite3.Error) as exc:  # the change is made: said, not a traceback after it
        return f"the files {name} sorted could not be counted: {exc}"
    if not left:
        return ""
    return (
        f"{left} file(s) that {name} sorted still sit in the emotion folders it chose: "
        f"`{advised('undo', '--model', name, '--dry-run')}` lists them; without --dry-run it puts them "
        "back where they came from (the daemon's into the inbox, which the daemon then leaves alone: "
        f"`{advised('sort', str(settings.inbox))}` sorts them with the model in force)"
    )


def _report(outcomes: list[Outcome], moves: list[Move], went: str, *, stop: bool) -> int | None:
    """A line per file (``went``: "->", or a plan's "would go back to"), but one line for all the
    files waiting for one folder's drive (Outcome.waits_for), after the others: undoing hundreds of
    files into an inbox whose drive is away said the same advice hundreds of times. With ``stop``, an
    outcome that stopped the undo ends it: :func:`_stopped`'s exit status (None: it went through)."""
    waiting: dict[Path, list[Outcome]] = {}
    for done in outcomes:
        if done.stopped and stop:
            _say_waiting(waiting)
            return _stopped(done.why_not, moves[len(outcomes) - 1 :])
        here = one_line(done.moved_from)
        if done.waits_for is not None:
            waiting.setdefault(done.waits_for.folder, []).append(done)
        elif done.back_to:
            say(f"{here} {went} {one_line(done.back_to)}")
            if done.unmade:
                say(done.unmade)
        else:
            say(f"{here}: {one_line(done.why_not)}")
    _say_waiting(waiting)
    return None


def _say_short(chosen: Selection, asked: int | None, outcomes: list[Outcome], did: str) -> None:
    """`undo N` where the journal holds fewer than N moves that can be undone: how many were
    (``did``: "undid", or the plan's "would undo"), after the line each file got. The lines alone
    read as the N asked."""
    if asked is None or chosen.undoable is None or chosen.undoable >= asked:
        return
    done = sum(o.back_to is not None for o in outcomes)
    say(f"{did} {done} of the {asked} asked: there were only {chosen.undoable} that can be undone")


def _say_clock_ahead(chosen: Selection, since: str) -> None:
    """`undo --since` where the journal holds moves at times ahead of this computer's clock (set far
    ahead once and put right since, or set back now): those taken, as each came after a move made
    since then, and those left out, not known to be (``Journal.done_since``), with the command that
    shows them. Unsaid, a person could not tell why a move they remember was not undone."""
    now = time.time()
    if ahead := [move for move in chosen.moves if (move.finished or 0) > now]:
        say(
            f"{len(ahead)} of these moves were journaled at times ahead of this computer's clock (its "
            f"clock was wrong then, or is now): taken, as each came after a move made within --since {since}"
        )
    if chosen.unplaced:
        newest = datetime.fromtimestamp(max(move.finished or 0 for move in chosen.unplaced))
        last = len(chosen.moves) + len(chosen.unplaced)
        say(
            f"left out {len(chosen.unplaced)} move(s) journaled at times ahead of this computer's clock "
            f"(up to {newest.isoformat(' ', 'minutes')}; its clock was wrong then, or is now): whether they "
            f"came within --since {since} is not known. They are the last ones before these: "
            f"`{advised('undo', str(last), '--dry-run')}` shows them with these"
        )


def _say_waiting(waiting: dict[Path, list[Outcome]]) -> None:
    """The files waiting for each folder's drive: one file by its name, several by their count."""
    for folder, files in waiting.items():
        drive = files[0].waits_for
        assert drive is not None, "grouped by it"
        who = (
            f"{len(files)} files going back to {one_line(folder)}"
            if files[1:]
            else one_line(files[0].moved_from)
        )
        say(f"{who}: {one_line(left_waiting(drive, len(files)))}")


def _stopped(why: str, left: list[Move]) -> int:
    """An undo (or its plan) stopped at a move by what stops every later one (the journal locked by
    another process): the error said once, each move left named; exit 1. The plan
    showed the error as its first move's line and not the others, exit 0, as if they would go back."""
    written(sys.stderr, f"facesortd: error: {one_line(why)}\n")  # its terminal gone: not a traceback
    for move in left:
        say(f"{one_line(move.destination)}: not undone (see the error above)")
    return 1


def _forget_relative(journal: Journal, dry_run: bool) -> int:
    """`undo --forget-relative`: each interrupted move an older facesortd journaled by relative paths,
    as it was and what is where now, then cleared from the journal (``recovery.forget_relative``), no
    file touched. Recovery never acts on such a row, so it stayed ``planned`` for good, said by
    `status` at every call, and only a sqlite3 shell could clear it."""
    rows = relative_rows(journal)
    if not rows:
        say("no interrupted move journaled by relative paths: nothing to forget")
        return 0
    for move in rows:
        when = datetime.fromtimestamp(move.started).isoformat(" ", "minutes")
        say(f"'{one_line(move.source)}' -> '{one_line(move.destination)}' (begun {when}, never finished)")
        say(f"  from {_there(move.source, move.hash)}")
        found = arrived_at(journal, move)
        if not move.destination.is_absolute():
            say(f"  to {one_line(move.destination)}: relative too, not looked for")
        else:
            say(f"  to {_there(found or move.destination, move.hash)}")
        if not dry_run:
            found = forget_relative(journal, move)
        what = f"done, the file in the library at {one_line(found)}" if found else "rolled back"
        say(f"  {'would be recorded' if dry_run else 'recorded'} as {what}")
    done = "nothing cleared (dry run)" if dry_run else f"{len(rows)} journal row(s) cleared"
    say(f"{done}; no file was touched")
    return 0


def _there(path: Path, digest: str) -> str:
    """Whether ``path`` holds the journaled content now, in words; a relative path is looked for in
    the folder this runs in, said as such (the one an older `sort` ran in is not recorded)."""
    where = Path.cwd() / path if not path.is_absolute() else path
    named = one_line(path) + (f" in {one_line(Path.cwd())} (this folder)" if not path.is_absolute() else "")
    if not os.path.lexists(where):
        return f"{named}: not there"
    try:
        same = where.is_file() and not where.is_symlink() and content_id(where) == digest
    except OSError as exc:
        return f"{named}: there, unreadable ({exc.strerror or exc})"
    return f"{named}: there, " + ("the same content" if same else "not the journaled content")


def _confirm(question: str) -> bool:
    """The person's yes; no answer is a no: Ctrl-D (the line ended, for what is said next), or a
    terminal gone (EIO reading it), whose prompt written raised a traceback, as its read did."""
    say(f"{question} [y/N] ", end="", flush=True)
    try:
        return input().strip().lower() in ("y", "yes")
    except (EOFError, OSError):
        say("")
        return False


def add_undo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "undo",
        help="move sorted files back to where they came from",
        description="Move files back to the folder they came from, using the journal: the last file "
        "moved (default), the last N that can be undone (naming the newer ones skipped, and why, and "
        "how many there were if fewer), "
        "those moved --since a time, the FILEs named (where they are now), or those a model sorted "
        "that are still in the emotion folder it chose (--model NAME); the moves of the "
        "daemon, `sort` and the review page alike. A file goes back beside "
        "what is there (a name taken becomes 'name (1).png'); undoing a `sort --copy` deletes the "
        "copy if the original is still there, unchanged. A file changed since is left alone. The "
        "daemon leaves an undone file alone; sort it by hand with `facesortd sort FILE`. Prints a line "
        "per file on stdout; a file whose folder refuses it stays where it is, with the reason, and "
        "the exit status is then 1.",
    )
    # One selector at a time: given both, one was silently ignored (N under --since, --since under FILEs).
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "targets",
        nargs="*",
        default=[],
        metavar="N|FILE",
        help="how many of the last moves to undo (those it can), or the files to put back (where they "
        "are now); "
        "not with --since",
    )
    which.add_argument(
        "--forget-relative",
        action="store_true",
        help="clear the interrupted moves an older facesortd journaled by relative paths (which `status` "
        "names and recovery never acts on): shows each, its source and destination and whether "
        "each file is there now, then clears its journal row; touches no file. Put each file right "
        "by hand first (with --dry-run it only shows them)",
    )
    which.add_argument(
        "--since",
        metavar="TIME",
        help="undo every move since TIME: so many seconds, minutes, hours, days or weeks ago (s, m, h, d, "
        f"w, or spelt out), or a local time; e.g. {SINCE_EXAMPLES}",
    )
    which.add_argument(
        "--model",
        metavar="NAME",
        help="undo every move into an emotion folder that the model NAME decided (as `facesortd model` "
        "lists it, default for the shipped one, or a model file's path; told by its content, so not "
        "what an earlier version's shipped model or another file of that name sorted) whose file is "
        "still there: what a model rolled back "
        "left behind. The files go back where they came from: the daemon's into the inbox, where "
        "`facesortd sort INBOX` sorts them with the model in force",
    )
    p.add_argument(
        "--library",
        type=named_folder,
        metavar="FOLDER",
        help="the library the files were sorted into (default: the config's library; for a `sort "
        "--library FOLDER`, that FOLDER; one holding the inbox or the state folder is refused): files "
        "in other folders, another library's below it too, are left alone",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be moved back; touch nothing")
    p.add_argument(
        "--yes",
        action="store_true",
        help=f"do not ask before undoing more than {CONFIRM_UNDO_OVER} files (asked only on a terminal)",
    )
    p.set_defaults(func=cmd_undo)
