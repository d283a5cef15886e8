"""``facesortd undo``: put sorted files back where they came from, using the journal.

The journal is data, not orders: a damaged or forged row must not make undo move an arbitrary
file to an arbitrary place. So a file is moved back only if both its paths are absolute (older
versions kept relative ones as typed), it lies inside the library, still has the content the
journal recorded (SHA-256), and goes back into the inbox, the library, or a folder that still
exists (undo never creates folders elsewhere).

Undoing a person's label given on the review page (a ``labelled`` move) withdraws the label too:
the file is back in quarantine, unlabelled, as a file-manager move back would leave it; and the
folder of a new class the label made goes, if it is empty (:func:`undo_label`, which recovery calls
too when it finishes such an undo a crash cut short).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from facesortd.advice import advised
from facesortd.content import content_id, holds
from facesortd.durable import fsync_dir, link_no_replace, move_no_replace, moved_away, rename_no_replace
from facesortd.file_names import numbered_names, numbered_names_among
from facesortd.journal import UNDOING, Journal, JournalLocked, ModelId, Move
from facesortd.library import Library, quarantine_refusal
from facesortd.mounts import DriveNotMounted, drive_not_mounted
from facesortd.quarantine import QUARANTINE_DIR
from facesortd.refusals import Outside, Refused
from facesortd.shown_names import one_line
from facesortd.state import move_lock


@dataclass(frozen=True)
class Outcome:
    """What undo did with one journal entry: moved ``moved_from`` to ``back_to``, or why not.

    ``retry``: the move itself failed (a folder refused it, its drive away): undoing again may work
    once the person fixed what ``why_not`` names, unlike a file that changed or left. ``stopped``: and
    undo stopped there (the journal locked by another process), the moves after it not tried.
    ``waits_for``: the drive its folder is on, away (:func:`_drive_away`): every file going back
    there waits for the same drive, which a caller undoing hundreds says once (:func:`left_waiting`).
    ``unmade``: the line saying the folder a label made was removed as its undo left it empty (in a
    plan: would be), :func:`unmade_line`; unsaid, a class key went from the review page unexplained.
    """

    moved_from: Path
    back_to: Path | None
    why_not: str = ""
    retry: bool = False
    stopped: bool = False
    waits_for: DriveNotMounted | None = None
    unmade: str = ""


@dataclass(frozen=True)
class Selection:
    """The moves to undo, and for the last N how many of them can be undone (``undoable``; None for
    --since or files named): fewer than N when the journal holds no more, which the person asked
    for N is told (`undo 5` of 2 undid 2 and said nothing of the 3 that never were)."""

    moves: list[Move]
    undoable: int | None = None
    unplaced: list[Move] = field(default_factory=list)
    """For --since: the moves left out as journaled at times ahead of the clock, not known to be
    since the time asked (``Journal.done_since``), which the person is told of."""


def placed_by(journal: Journal, model: ModelId, library: Path) -> list[Move]:
    """The moves into ``library``'s emotion folders journaled as judged by ``model`` (its name and
    content: :meth:`ModelId.matches`) whose file still sits where it put it, newest first. A model
    taken out of force (`model rollback`, `model use`) left every file it had sorted in the folder it
    chose, and nothing said so; these are what `undo --model` puts back. Files it left in quarantine are not
    among them: the daemon looks at unsure ones again when the model changes. A file moved on since
    (a person's correction) is a person's decision, not the model's."""
    return [
        move
        for move in journal.done_moves()
        if model.matches(move.judged_by)
        and move.action == "sorted"
        and move.in_full
        and _sorted_into(move.destination, library)
        and move.destination.is_file()
    ]


def select(
    journal: Journal,
    last: int | None,
    since: float | None,
    files: list[Path],
    library: Path,
    inbox: Path,
    model: ModelId | None = None,
) -> Selection:
    """The moves to undo: the last N that can be undone (with the newer ones that cannot, which
    :func:`undo` names with the reason), those since a time, those that put the named files
    where they are, or those of a model (:func:`placed_by`). Counting the N newest whatever they
    were, `undo 1` met the same move it could not undo at every try and never got past it."""
    if model is not None:
        return Selection(placed_by(journal, model, library))
    if files:
        found = []
        for f in files:
            move = journal.done_at(f.resolve()) or journal.done_at(f.absolute())
            gone = move is None and not os.path.lexists(f)
            if gone and (moved := journal.done_from(f.resolve()) or journal.done_from(f.absolute())):
                # named where it was, as a person remembers it: "no such file" read as a typo
                raise LookupError(
                    f"{f}: facesortd moved it to {moved.destination}; undo FILE takes the file where it is "
                    f"now: `{advised('undo', str(moved.destination))}`"
                )
            if gone:  # a typo, or a count that is not a whole number
                raise LookupError(
                    f"{f}: no such file (undo FILE takes a file where it is now; undo N takes how many "
                    "of the last moves, a whole number)"
                )
            if move is None and _put_back_here(journal, f):  # "no move put it there", read as never sorted
                raise LookupError(
                    f"{f}: its sort was undone already, and this is where it went back "
                    f"(`{advised('sort', str(f))}` sorts it again)"
                )
            if move is None:
                raise LookupError(f"{f}: the journal has no move of facesortd that put this file there")
            if move not in found:  # named twice (`undo a.png ./a.png`): "undone meanwhile" of itself
                found.append(move)
        return Selection(found)
    if since is not None:
        taken, unplaced = journal.done_since(since)
        return Selection(taken, unplaced=unplaced)
    chosen, undoable = [], 0
    for move in journal.done_moves():
        chosen.append(move)
        # Looked at again under the move lock.
        undoable += not (_refusal(move, library, inbox) or _held_back(move, library))
        if undoable == (last or 1):
            break
    return Selection(chosen, undoable)


def _put_back_here(journal: Journal, path: Path) -> bool:
    """Is ``path`` a file an undo put back where it is (and that was not sorted since)?"""
    try:
        digest = content_id(path)
    except OSError:  # not a file, or unreadable: no file undo put back
        return False
    return any(journal.undone_from(named, digest) for named in (path.resolve(), path.absolute()))


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _sorted_into(here: Path, library: Path) -> bool:
    """Is ``here``, where a move put a file, in one of ``library``'s own folders: ``<emotion>/`` or
    ``_quarantine/<reason>/`` (``Library.folder_for``), where every move into it puts its file? Not
    merely below it: `undo --library ~` of a `sort --library ~` took every move journaled anywhere
    below ~, the library's of the config among them; so it was refused, and such a sort could not be
    undone at all. A library's undo trusts the journal's moves into that library, and those alone."""
    folder, root = here.parent.resolve(), library.resolve()
    return folder.parent in (root, root / QUARANTINE_DIR)


DriveAsked = Callable[[Path], DriveNotMounted | None]
"""How a folder's drive is asked (:func:`drive_not_mounted`, or one move's answers kept, see :func:`undo`)."""


def _refusal(move: Move, library: Path, inbox: Path, asked: DriveAsked = drive_not_mounted) -> str:
    """Why this entry must not be acted on ("" if it may); ``asked``: see :func:`_drive_away`."""
    here, back = move.destination, move.source
    if not move.in_full:
        # Older versions stored paths as typed (`sort shots/a.png`): relative to a folder they did not
        # record, which undo would read as the current folder's own.
        return (
            f"journaled by an older facesortd as '{back}' -> '{here}', relative to a folder it did not "
            "record; left alone (move it back by hand)"
        )
    if not _sorted_into(here, library):
        where = (
            f"in {here.parent}, below the library {library} but none of its own folders"
            if _inside(here.parent, library)
            else f"not inside the library {library}"
        )
        return (
            f"{where}: the journal entry is not trusted; left alone (sorted with `sort --library FOLDER`?"
            f" undo it with `{advised('undo', '--library', 'FOLDER')}`)"
        )
    if here.is_symlink() or not here.is_file():
        return "no longer there (moved or deleted since); skipped"
    try:
        if content_id(here) != move.hash:
            return "its content changed since facesortd sorted it; left alone"
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc}); left alone"
    # Into the quarantine it may go once that is put right, if it links out now (:func:`_held_back`).
    if not (_inside(back.parent, inbox) or _inside(back.parent, library) or back.parent.is_dir()) and not (
        _into_quarantine(back.parent, library) or _drive_away(move, asked)
    ):
        gone = "is no folder now" if os.path.lexists(back.parent) else "no longer exists"  # a file there
        return f"it came from {back.parent}, which {gone}; left alone (move it by hand)"
    return ""


def _killed_undo_left(journal: Journal) -> str:
    """An undo killed while putting a file back (its mark, ``UNDOING``, left standing) finished
    first, by recovery ("" once it is; else why not): the caller holds the move lock, so no live
    undo is at it. Marked over by the next undo before any `sort` or start of the daemon had
    recovered it, it was never finished: the file stayed in the inbox and in the library for good,
    the library's name unknown to the journal (taken for a person's label)."""
    from facesortd.placement import end_killed_moves  # which imports recovery, which imports this

    end_killed_moves(journal)
    if journal.get_meta(UNDOING):
        return (
            "an earlier undo (killed, or its journal write refused) could not be finished yet (said "
            "above): its file may be in two places; nothing more is undone until it is"
        )
    return ""


def _taken_meanwhile(journal: Journal, move: Move) -> str:
    """Why ``move``, chosen before the move lock was taken, is no longer one to undo ("" if it is):
    another undo (or the review page's) took it meanwhile, while this one listed its plan or waited
    at its question. Asked only of the file, the move was undone twice: said "no longer there
    (moved or deleted since)", or, the file sorted again by hand since to the same name, that new
    sort's file put back while its move stood in the journal as done, and the daemon sorted it again."""
    now = journal.move(move.id)
    if now is not None and now.state == "done" and now.destination == move.destination:
        return ""
    return "undone meanwhile (by another undo); skipped"


def _held_back(move: Move, library: Path) -> Refused | None:
    """Why ``move`` may not be undone now, though it may be once the person puts things right: it
    goes back into the library's quarantine, made a link out of it (or its folder: the check of every
    move into it, ``library.quarantine_refusal``). Followed, the link took the file out of the
    library, where no undo or review finds it; the review page refused it, the command line not."""
    back = move.source.parent
    return quarantine_refusal(library, back) if _into_quarantine(back, library) else None


def _drive_away(move: Move, asked: DriveAsked = drive_not_mounted) -> DriveNotMounted | None:
    """The drive ``move`` waits for (None if it does not): it goes back into a folder missing where
    a drive is not mounted (the inbox's drive unplugged, or `sort /mnt/usb/screens` and that drive
    pulled out since), or into one on a drive /etc/fstab lists that is not mounted (the mount
    point's own empty folder as the inbox). Made anew (or used as it is), the folder would sit on
    the disk below the mount point, the file in it hidden once the drive was back (and exfat-fuse
    refuses to mount over a folder not empty); said as a folder a person deleted, "move it by
    hand", it was a wait for the drive. Undone once the drive is back. A missing inbox elsewhere
    (deleted by hand) is made again by the move, as the daemon makes it again. ``asked``: how the
    drive is asked (each asking reads fstab and the mount table)."""
    return asked(move.source.parent)


def left_waiting(drive: DriveNotMounted, files: int = 1) -> str:
    """Why ``files`` going back to ``drive.folder`` stay sorted, and what to do: said once for them
    all, as one folder's drive is all they wait for."""
    return f"{drive}; left where {'it is' if files == 1 else 'they are'}, to undo again then"


def _into_quarantine(folder: Path, library: Path) -> bool:
    """Is ``folder`` (where a file goes back to) the library's quarantine or a folder of it? By its
    name as journaled: one made a link out of the library resolves outside it."""
    roots = (library.absolute(), library.resolve())
    return any(folder.is_relative_to(root / QUARANTINE_DIR) for root in roots)


def undo(
    journal: Journal,
    moves: list[Move],
    library: Path,
    inbox: Path,
    *,
    dry_run: bool = False,
    guard: Library | None = None,
) -> list[Outcome]:
    """Move each file back to its original folder (never overwriting), after the checks above.

    A `sort --copy` left the original in place: undoing it removes the copy, but only when the
    original is still there with the very same content. Each move holds the state folder's move
    lock, so undo is safe beside a running daemon. ``dry_run``: the same checks, nothing moved
    (``back_to`` is then the name it would go back under, :func:`_would_take`): a plan that skipped
    them promised moves the real undo refused.

    A journal another process keeps locked for writing (``JournalLocked``, which names it) ends
    the run at the first move, after one wait: each move waited it again and failed alike.

    ``guard``: the Library of a long-lived caller (the review page), whose :meth:`Library.refusal`
    is asked under the move lock before each move, as before every move into the library: a library
    re-pointed since the page started (or its quarantine made a link out of it) moved the file
    where the link leads now, and marked the page's move there undone, label withdrawn, while its
    file stayed in the emotion folder. Refused, the move stays undoable once it is put right.
    """
    out: list[Outcome] = []
    leaving: set[Path] = set()  # a plan's files that would leave the library: folders they empty
    given: set[Path] = set()  # the names a plan's files would take, taken for the ones after them
    for move in moves:
        with move_lock(journal.state_dir):
            if guard is not None and (refused := guard.refusal()):
                out.append(Outcome(move.destination, None, str(refused), retry=True))
                continue
            if why := _taken_meanwhile(journal, move):
                out.append(Outcome(move.destination, None, why))
                continue
            asked = functools.cache(drive_not_mounted)  # once per move: the refusal asks it too
            if why := _refusal(move, library, inbox, asked):
                out.append(Outcome(move.destination, None, why))
                continue
            if (drive := _drive_away(move, asked)) is not None:
                out.append(Outcome(move.destination, None, left_waiting(drive), retry=True, waits_for=drive))
                continue
            if refused := _held_back(move, library):  # undoable again once put right
                out.append(Outcome(move.destination, None, str(refused), retry=True))
                continue
            if dry_run:
                leaving.add(move.destination)
                unmade = _would_unmake(move, leaving)
                said = unmade_line(move, unmade, planned=True) if unmade else ""
                out.append(Outcome(move.destination, _would_take(move, given), unmade=said))
                continue
            if why := _killed_undo_left(journal):
                out.append(Outcome(move.destination, None, why, retry=True, stopped=True))
                break
            # Journaled first: the daemon must see "undone" by the time the file is back in the
            # inbox, or it would sort it again at once.
            try:
                journal.set_meta(UNDOING, str(move.id))  # a kill from here on: recovery finishes it
                journal.finish(move.id, "undone")
            except JournalLocked as exc:  # waited for once: every later move would wait as long, and fail
                out.append(Outcome(move.destination, None, str(exc), retry=True, stopped=True))
                break
            except sqlite3.Error as exc:  # nothing moved (a mark left standing: recovery finds no undo begun)
                out.append(Outcome(move.destination, None, _journal_refused(journal, exc), retry=True))
                continue
            settled = True  # the row says where the file is: the undo needs no recovery
            try:
                back_to = _put_back(journal, move, _kept_inside(move, library, guard))
                try:
                    journal.put_back_as(move, back_to)
                except sqlite3.Error:  # the file is back, not "left where it is": recovery journals it
                    settled = False
            except StillHeld as exc:  # recovery puts its original back, then finishes the undo
                settled = False
                out.append(Outcome(move.destination, None, str(exc), retry=True))
                continue
            except OSError as exc:  # a folder that refuses: this file stays, the others still go back
                journal.finish(move.id, "done", move.destination)
                if isinstance(exc, Outside):  # the refusal's own words, if it sees it now
                    back = move.source.parent
                    exc = (guard.refusal() if guard else quarantine_refusal(library, back)) or exc
                why = WRITTEN_TO if _written_to(exc, move) else f"{exc}; left where it is"
                out.append(Outcome(move.destination, None, why, retry=True))
                continue
            except sqlite3.Error as exc:  # the name a put-back claims on a FAT inbox is journaled first
                try:
                    journal.finish(move.id, "done", move.destination)
                except sqlite3.Error:
                    settled = False  # still "undone", the file sorted: recovery marks it done again
                why = f"{_journal_refused(journal, exc)}; left where it is"
                out.append(Outcome(move.destination, None, why, retry=True))
                continue
            except BaseException:  # Ctrl-C: the copy may be gone, its original held: recovery judges
                if os.path.lexists(held_name(move)) or not os.path.lexists(move.destination):
                    settled = False
                else:
                    journal.finish(move.id, "done", move.destination)
                raise
            finally:
                if settled:
                    journal.set_meta(UNDOING, "")
            unmade = undo_label(journal, move, back_to)
            out.append(Outcome(move.destination, back_to, unmade=unmade_line(move, unmade) if unmade else ""))
    return out


def undo_label(journal: Journal, move: Move, back_to: Path) -> Path | None:
    """What an undone ``move`` (its file now at ``back_to``) takes with it if it was a person's label
    given on the review page: the label, withdrawn, and the folder the label made, removed if it is
    empty now (returned then). A folder is a class with a key on the review page, so the class a
    label made by mistake stayed one after its undo, and moved the keys after it, until removed by
    hand. A file put there since keeps it; a folder that was there before the label (the daemon's
    emotion folders, one made by hand) stays. Called by `undo` and by recovery finishing an undo a
    crash cut short, which left the label counted and the folder a class."""
    if move.action != "labelled":
        return None
    journal.withdraw_label(move.hash, back_to)
    if not move.made_folder:
        return None
    try:
        move.destination.parent.rmdir()
    except OSError:  # not empty, or gone: it stays as it is
        return None
    return move.destination.parent


def _would_take(move: Move, given: set[Path]) -> Path:
    """The name ``move``'s file would go back under (:func:`_put_back`), the names ``given`` to
    files before it in the plan counted as taken (and ``given`` this one's): its own, or the first
    numbered one free (on a drive that refuses that name, the real undo may take a portable one).
    The plan named only the folder, "would go back to inbox", and the undo then said "-> inbox/a
    (1).png" of a file whose name was taken meanwhile."""
    if _original_kept(move):
        return move.source
    name = next(
        (n for n in numbered_names(move.source) if n not in given and not os.path.lexists(n)), move.source
    )
    given.add(name)
    return name


def _would_unmake(move: Move, leaving: set[Path]) -> Path | None:
    """The folder :func:`undo_label` would remove after ``move``'s undo, in a plan whose files
    ``leaving`` (this one's among them) would have left the library by then."""
    if move.action != "labelled" or not move.made_folder:
        return None
    folder = move.destination.parent
    try:
        held = {folder / name for name in os.listdir(folder)}
    except OSError:
        return None
    return folder if held <= leaving else None


def unmade_line(move: Move, folder: Path, *, planned: bool = False) -> str:
    """What is said of the folder :func:`undo_label` removed (``planned``: would remove)."""
    did = "would remove" if planned else "removed"
    name, labelled = one_line(folder.name), one_line(move.source.name)
    return f"{did} the empty folder {name}/ that labelling {labelled} had made"


def _journal_refused(journal: Journal, exc: sqlite3.Error) -> str:
    """What a journal that refused a write (a full state disk, a read-only one) says, with the fix."""
    return f"the journal refused it ({exc}): free some space in {journal.state_dir}, or make it writable"


WRITTEN_TO = (
    "written to or replaced while it was copied back, so no longer what facesortd sorted: left where"
    " it is (move it by hand if you want it back)"
)
"""Said of a file whose copy back across filesystems read other bytes than it was sorted with (an
image viewer saving a rotation as it was copied): "moved away or replaced by another process
meanwhile" was said of a file still there. Undone again it is refused as changed since."""


def _written_to(exc: OSError, move: Move) -> bool:
    return moved_away(exc) and move.destination.exists()


def _kept_inside(move: Move, library: Path, guard: Library | None) -> Path | None:
    """The folder a put-back must land in, checked at the move itself (``move_no_replace(inside=)``):
    the page's library (its `u` puts back into the quarantine it labelled from), and the library for
    any file going back into its quarantine: a link swapped in after :func:`_held_back` looked would
    take it out of the library."""
    if guard is not None:
        return guard.leads_to
    return library.resolve() if _into_quarantine(move.source.parent, library) else None


def _original_kept(move: Move) -> bool:
    """Is ``move`` a `sort --copy` whose original is still where it was, unchanged (its undo then
    removes the copy)? A row journaled before copies were recorded (``copied`` None) is asked the
    same: had it been a move, a file at its source holding the very bytes it moved is that file's
    twin, and removing the library's leaves them there (:func:`remove_copy` looks at it held)."""
    return move.copied is not False and holds(move.source, move.hash)


def _put_back(journal: Journal, move: Move, inside: Path | None = None) -> Path:
    """A copy is removed if its original is still there (:func:`remove_copy`); a moved file goes
    back, beside a file of the same content if one was dropped there since (removing it instead lost
    one of the two). ``inside``: the folder it must go back into (the page's library, whose
    quarantine its labels came from), checked on the opened folder at the move: a link swapped in
    after the guard's look is refused, not followed. A name claimed empty on the way is journaled
    (``Journal.claiming``)."""
    if move.copied is not False and (kept := remove_copy(journal, move)) is not None:
        return kept
    claiming = functools.partial(journal.claiming, move.id)
    return move_no_replace(move.destination, move.source, inside=inside, content=move.hash, claiming=claiming)


HELD_PREFIX = ".facesortd-undo-"
"""The hidden name an undo holds an original under while it removes its copy (``watch.ignore``
leaves it alone, and it is no temp file: ``durable.remove_temp_files`` never takes it)."""

CANNOT_HOLD = (errno.EACCES, errno.EPERM, errno.EROFS)
"""A folder that refuses this user renaming the original: read-only, or another's."""


class StillHeld(OSError):
    """The original :func:`remove_copy` held could not be put back (its folder refused it meanwhile,
    the journal refused the name it claims): left held, the undo's mark standing, for recovery."""

    def __str__(self) -> str:
        return self.strerror or ""  # one line for the person: "[Errno 5]" tells them nothing


def held_name(move: Move) -> Path:
    """The name :func:`remove_copy` holds ``move``'s original under: in the original's own folder
    (a rename, never a copy), known from the move alone, so recovery finds it from the undo's mark."""
    return move.source.with_name(f"{HELD_PREFIX}{move.id}")


def remove_copy(journal: Journal, move: Move) -> Path | None:
    """Remove the library's copy of ``move`` (a `sort --copy`, or a row from before copies were
    recorded) if its original is still where it was, unchanged; returns where the original is then
    (its name, or ``name (1)`` if another file took the name meanwhile), or None if it is not there
    as sorted (the library's file then goes back as a moved one).

    Looked at under its name and the copy then removed, the original deleted or replaced in between
    (a person tidying the folder copied from, trusting the library's copy; a tool saving the next
    file under the name) took the only copy with it; and a link to the copy put in the original's
    place passed the look. So the original is held first: renamed to :func:`held_name`, which no one
    else uses, looked at there (a regular file with the bytes sorted), the copy removed, and put back
    under its name without replacing one that arrived meanwhile (:func:`release_held`). Killed at
    any instant (the undo's mark standing), recovery puts a held original back and then finishes
    the undo: the file once, never gone. A folder that refuses the rename (a read-only drive,
    another's folder) lets this user remove the original no more than rename it: it is looked at
    under its name, as before.
    """
    held = held_name(move)
    try:
        if not rename_no_replace(move.source, held):  # no such rename on the drive: the name is ours
            if os.path.lexists(held):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(held))
            os.rename(move.source, held)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno not in CANNOT_HOLD:
            raise
        if not _original_kept(move):
            return None
        _remove(move.destination)
        return move.source
    kept = False  # the hold is not synced: whichever of its two names a power cut leaves, it has one
    try:
        if kept := holds(held, move.hash):
            _remove(move.destination)
    finally:
        try:
            back = release_held(journal, move)
        except (OSError, sqlite3.Error) as exc:
            raise StillHeld(
                errno.EIO,
                f"its original, held as {held} while the copy was removed, could not be put back ({exc}):"
                " the next `sort`, `undo` or start of the daemon puts it back",
            ) from exc
    return back if kept else None


def release_held(journal: Journal, move: Move) -> Path | None:
    """Put the original :func:`remove_copy` held back under its name (``name (1)`` if that was taken
    meanwhile: never replacing); returns where it is, None if nothing is held. Linked back before a
    kill, it is there already under a name of its own: the held name alone goes (linked once more,
    it stayed twice). Called by `undo`, and by recovery before it finishes an undo killed with it held."""
    held = held_name(move)
    try:
        st = held.lstat()
    except FileNotFoundError:
        return None
    placed = _linked_back(held, st, move.source) or link_no_replace(
        held, move.source, claiming=functools.partial(journal.claiming, move.id)
    )
    held.unlink(missing_ok=True)  # renamed into place where no link can be made: gone already
    fsync_dir(held.parent)
    return placed


def _linked_back(held: Path, st: os.stat_result, name: Path) -> Path | None:
    """The name of those :func:`release_held` may give the original (``name``, ``name (1)`` ...)
    that is the very file held (looked for only if it has more names than the held one: another,
    a person's twin, is no name it went back under)."""
    if st.st_nlink < 2:
        return None
    for back in numbered_names_among(name, set(os.listdir(held.parent))):
        with contextlib.suppress(OSError):
            if os.path.samestat(back.lstat(), st):
                return back
    return None


def _remove(path: Path) -> None:
    path.unlink()
    fsync_dir(path.parent)
