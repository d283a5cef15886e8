"""Crash recovery: each move the journal holds as ``planned`` (its process died half-way) finished or
rolled back by what is on disk, so every file ends up exactly once: in the inbox or at its recorded
destination; an `undo` that died putting a file back finished alike.

Apart from the journal's records (journal.py) because it acts on files: it looks for a moved file
under the names a move may give it, and removes an unfinished copy, a name's claim or a half-written
temp file by the move protocol's rules (durable.py); the journal only stores and reads rows.
"""

from __future__ import annotations

import contextlib
import os
import stat
import weakref
from collections.abc import Iterator
from pathlib import Path

from loguru import logger

from facesortd.advice import advised
from facesortd.content import EMPTY_HASH, content_id, holds
from facesortd.durable import claims_first, fsync_dir, remove_temp_files, small_file
from facesortd.file_names import numbered_names_among
from facesortd.journal import RELATIVE_TOLD, UNDOING, Journal, Move, claim_mark
from facesortd.refusals import Refused
from facesortd.state import move_lock
from facesortd.undo import held_name, release_held, remove_copy, undo_label, unmade_line


def recover(journal: Journal) -> Iterator[str]:
    """Finish or roll back moves a crash interrupted; yields one line per repaired entry.

    The move protocol (durable.move_no_replace) only removes the source after the destination
    is whole and synced, so: source still there -> any copy of it at the destination is an
    unfinished extra and is removed (rolled back; the file is sorted again). Source gone -> the
    file is whole at the destination: find it by hash and mark the move done. "Still there" means
    its content under its name: a file dropped under that name since the crash is another one
    (taking it for the source deleted the moved file, its only copy). A copy (`sort
    --copy`) is linked into place only once whole, so one found at its destination is done: the
    person asked for it. Runs under the move lock, so every planned row it sees was left by a
    process that died, or whose journal refused the move's last mark (placement.UnjournaledMove).
    """
    with move_lock(journal.state_dir):
        yield from _recover(journal)


_failing: weakref.WeakKeyDictionary[Journal, str] = weakref.WeakKeyDictionary()
"""The failure :func:`recover_logged` last said of each open journal, until it changes or recovery
succeeds."""


def recover_logged(journal: Journal) -> bool:
    """:func:`recover` with each repaired entry logged; False, said in the log, while the journal
    cannot be brought up to date (a full or read-only state disk): the caller goes on, its own moves
    are journaled apart, and tries again later (the daemon at its next tick). A state file the
    person must give back to this user (a move lock left by `sudo facesortd`) is Refused, raised: every
    move would need it, and `run` ends with the fix (exit 2) rather than run on moving nothing.

    A failure is said once until it changes or recovery succeeds: it is tried before every move
    (``placement.end_killed_moves``), so a file it cannot move back off a read-only drive filled the
    log with the same line once per file sorted."""
    try:
        for line in recover(journal):
            logger.warning(line)
    except Refused:
        raise
    except Exception as exc:  # whatever else it is, it must not stop the sorting
        said = f"cannot bring the journal up to date yet ({exc}); trying again later"
        if _failing.get(journal) != said:
            logger.error(said)
            _failing[journal] = said
        return False
    if _failing.pop(journal, None) is not None:
        logger.info("the journal is up to date again")
    return True


def _recover(journal: Journal) -> Iterator[str]:
    for move in journal.planned():
        if not move.in_full:
            yield from _leave_relative(journal, move)
            continue
        named = _named(move.destination)  # listed once: what each rule below looks at
        if linked := _linked(journal, move.source, named):
            for name in linked:
                name.unlink()
                fsync_dir(name.parent)
            journal.finish(move.id, "rolled_back")
            yield f"rolled back the interrupted move of {move.source} (it stays in {move.source.parent})"
            continue
        copies = _arrived(journal, move, named)
        yield from _remove_claims(
            journal, move, move.destination, named, move.started, f"the interrupted move of {move.source}"
        )
        if move.copied and copies:
            journal.finish(move.id, "done", copies[0])
            yield f"completed the interrupted copy of {move.source} -> {copies[0]}"
        elif holds(move.source, move.hash):
            for extra in copies:
                extra.unlink()
                fsync_dir(extra.parent)
            journal.finish(move.id, "rolled_back")
            # Where it was, which is the inbox only for the daemon's moves (`sort ~/screens` too).
            yield f"rolled back the interrupted move of {move.source} (it stays in {move.source.parent})"
        elif copies:
            journal.finish(move.id, "done", copies[0])
            yield f"completed the interrupted move of {move.source} -> {copies[0]}"
        else:
            journal.finish(move.id, "rolled_back")
            journal.error(move.source, "interrupted move: file was neither at its source nor its destination")
            yield f"{move.source}: interrupted move found no file (moved away by someone else?)"
    if undoing := journal.get_meta(UNDOING):
        if (move := journal.move(int(undoing))) is not None:
            # Marked undone (its "finished" time) just before the put-back began: a claim is newer.
            since = move.finished or move.started
            whose = f"the interrupted undo of {move.destination}"
            named = _named(move.source)  # a claim removed below is no file for _finish_undo to find
            yield from _remove_claims(journal, move, move.source, named, since, whose)
            if (held := release_held(journal, move)) is not None:  # a copy's original, held as it went
                yield f"put back {held}, which {whose} had held as {held_name(move).name}"
                named = _named(move.source)
            yield _finish_undo(journal, move, named)
        journal.set_meta(UNDOING, "")
    _remove_stale_temp_files(journal)


def _leave_relative(journal: Journal, move: Move) -> Iterator[str]:
    """An older facesortd's interrupted move, journaled as typed (`sort shots/a.png`): relative to a
    folder it did not record. Resolved against the current folder, a file of the same content there
    was taken for the source still in place and the moved file, maybe its only copy, was deleted.
    So it is never acted on: the row stays ``planned`` (its content counts as being moved, never as
    a person's label) and the person is told once, in the log and in `status`'s last errors."""
    told = set(filter(None, journal.get_meta(RELATIVE_TOLD).split(",")))
    if str(move.id) in told:
        return
    line = (
        f"an interrupted move journaled by an older facesortd as '{move.source}' -> '{move.destination}'"
        " (relative to a folder it did not record) is left alone: the file is whole in one of the two"
        " places, or both; look in the folder that `sort` ran in and in the library, and if it is in"
        " both with the same content (sha256sum), delete the one outside the library; then"
        f" `{advised(*FORGET_RELATIVE)}` clears the journal's row, touching no file (with --dry-run it"
        " only shows it)"
    )
    journal.error(move.destination if move.destination.is_absolute() else None, line)
    journal.set_meta(RELATIVE_TOLD, ",".join(sorted(told | {str(move.id)})))
    yield line


FORGET_RELATIVE = ("undo", "--forget-relative")
"""The command that clears what :func:`_leave_relative` leaves (`status` and the log name it)."""


def relative_rows(journal: Journal) -> list[Move]:
    """The interrupted moves an older facesortd journaled by relative paths: never acted on by
    recovery, they stay ``planned`` until the person has `undo --forget-relative` clear them."""
    return [move for move in journal.planned() if not move.in_full]


def arrived_at(journal: Journal, move: Move) -> Path | None:
    """Where an interrupted move's file is at its destination now (the name it planned, or a ' (n)'
    one), if it is there; None if not, or if the destination is relative (never read here)."""
    found = _arrived(journal, move, _named(move.destination)) if move.destination.is_absolute() else []
    return found[0] if found else None


def forget_relative(journal: Journal, move: Move) -> Path | None:
    """Clear one of :func:`relative_rows` as the person asks, once they have put its file right by
    hand; no file is touched. Done where its content is found at its destination (the file is in
    the library as facesortd placed it: closed as rolled back, it was taken for a person's label),
    else rolled back. Under the move lock, as every change of a move's state. Returns where found."""
    with move_lock(journal.state_dir):
        found = arrived_at(journal, move)
        journal.finish(move.id, "done" if found else "rolled_back", found)
    return found


def _arrived(journal: Journal, move: Move, named: list[Path]) -> list[Path]:
    """The files of ``named`` (what is at ``move``'s destination: :func:`_named`) holding its content,
    but for those a finished move accounts for: they are another's (the same content sorted before)."""
    return [c for c in _copies(named, move.hash) if journal.done_at(c) is None]


def _linked(journal: Journal, file: Path, named: list[Path]) -> list[Path]:
    """The names of ``named`` (what is where a move, or `undo` putting it back, was taking ``file``:
    :func:`_named`) that are ``file`` itself: the new name linked, the old not yet removed. Written
    to in between (a screenshot tool still saving, a viewer saving a rotation in place), the file
    held neither the journaled content nor any found there: a move was recorded as finding no file,
    an undo as finished, and the name left, unknown to the journal, had the file sorted again."""
    try:
        source = file.lstat()
    except OSError:
        return []
    if not stat.S_ISREG(source.st_mode):
        return []
    found = []
    for name in named:
        with contextlib.suppress(OSError):
            if os.path.samestat(name.lstat(), source) and journal.done_at(name) is None:
                found.append(name)
    return found


def _finish_undo(journal: Journal, move: Move, named: list[Path]) -> str:
    """`undo` died while putting ``move`` back (marked undone, the put-back begun); ``named``: what
    is where it goes back to (:func:`_named`).

    Back where it came from -> remove the library's name, which the put-back had yet to do (a
    copy's with its original held, as `undo` removes it: ``undo.remove_copy``). Not back -> the move
    counts as done again. A file of the same content there that is not the very
    file (another filesystem, or dropped there since) cannot be told from an unfinished copy: both
    are kept (a file twice, never once too few). An undo finished here of a person's label takes
    the label and the empty folder it made with it, as `undo` does (``undo.undo_label``).
    """
    here = move.destination
    finished = f"the interrupted undo of {here} had finished"
    if here.is_symlink() or not here.is_file():
        return _undone(journal, move, _copies(named, move.hash), finished)
    ours = _linked(journal, here, named)  # whatever it holds now: one file, two names
    if not ours and content_id(here) != move.hash:
        return _undone(journal, move, _copies(named, move.hash), finished)
    back = _copies(named, move.hash)
    said = f"completed the interrupted undo of {here} (it is back in {move.source.parent})"
    if ours:
        here.unlink()
        fsync_dir(here.parent)
        return _undone(journal, move, ours, said)
    if move.copied is not False and move.source in back:
        if (kept := remove_copy(journal, move)) is not None:  # held as the copy goes, as by `undo`
            return _undone(journal, move, [kept], said)
        back = _copies(_named(move.source), move.hash)  # changed since it was looked at
    if back:
        return f"the interrupted undo of {here} left it in both places ({back[0]} too): remove one by hand"
    journal.finish(move.id, "done", here)
    return f"the interrupted undo of {here} had not begun; it stays sorted"


def _undone(journal: Journal, move: Move, back: list[Path], said: str) -> str:
    """``said`` of an undo recovery found finished, or finished, with what ``undo_label`` did after
    it; ``back``: the names the file is back under, the first journaled as where it went back
    (``Journal.put_back_as``) and taken for its label's path."""
    if back:
        journal.put_back_as(move, back[0])
    if unmade := undo_label(journal, move, back[0] if back else move.source):
        return f"{said}; {unmade_line(move, unmade)}"
    return said


def _copies(named: list[Path], digest: str) -> list[Path]:
    """The files of ``named`` (:func:`_named`) holding the content ``digest``."""
    return [c for c in named if c.is_file() and content_id(c) == digest]  # unreadable: as journaled


def _named(path: Path) -> list[Path]:
    """What is there under ``path`` or one of the names a move may give it (``numbered_names``).

    Found in one listing of the folder, not by trying names up to the first free one: a file a
    person deleted since the crash leaves a gap below the name the move took, and the file was
    then not found (its move recorded as finding nothing, the file unknown to the journal).
    """
    try:
        with os.scandir(path.parent) as entries:
            names = {entry.name for entry in entries}
    except OSError:  # gone, or not ours to list: nothing of the move's there that recovery could use
        return []
    return numbered_names_among(path, names)


MTIME_SLACK_S = 2.0
"""FAT keeps a file's modification time to 2 seconds."""


def _remove_claims(
    journal: Journal, move: Move, path: Path, named: list[Path], since: float, whose: str
) -> Iterator[str]:
    """Remove the claim an interrupted ``move`` (``whose``: the move, or `undo` putting it back to
    ``path``; ``named``: what is there, :func:`_named`) made of its name, if it was killed before
    the file took it: where a filesystem has neither hard links nor a no-replace rename (FAT and
    exFAT through FUSE answer EINVAL to it, so every move into such a library, or `undo` into such
    an inbox, claims first), the claim stayed for good: in the library, the file sorted again became
    ``name (1)``; in the inbox, the daemon put the empty file into ``_quarantine/unreadable/``.

    Only the name the move journaled before claiming it, and only while it holds the move's own
    mark (``journal.claim_mark``). Anything else there is left and said: an empty file may be a
    screenshot its tool created under the name after a kill that came before the claim was made,
    which was removed, its bytes then written into a file no longer there; until 2026-12-03 so was
    any fresh empty file under a name the move might have taken. A kill between the claim's making
    and its mark leaves it empty too: kept, said, the file sorted again beside it. The moved file
    itself, found there, is the move's (not said). A move journaled by an older facesortd, which
    claimed names empty and did not record them, is judged by that older rule (:func:`_older_claims`)."""
    if not move.claims_recorded:
        yield from _older_claims(journal, move, named, since, whose)
        return
    claim = move.claimed
    if claim is None or claim.parent != path.parent:  # no other is a name it may take
        return
    mark = claim_mark(move.id, move.hash)
    if not os.path.lexists(claim) or holds(claim, move.hash):
        return  # never made, or the moved file itself
    held = small_file(claim, len(mark))  # a mark is never larger
    if held == mark:
        claim.unlink()
        fsync_dir(claim.parent)
        yield f"removed {claim}, the name {whose} had claimed"
    elif held == b"":
        yield (
            f"left {claim}, the name {whose} had claimed, as it is: an empty file, which facesortd made"
            " before the crash or another program since (a screenshot being written); delete it if it"
            " stays empty"
        )
    else:
        yield f"left {claim}, the name {whose} had claimed, as it is: another file is there now"


def _older_claims(journal: Journal, move: Move, named: list[Path], since: float, whose: str) -> Iterator[str]:
    """The empty claim of a ``move`` journaled before claims were recorded (2026-12-03): any empty
    file made since ``since`` under a name it might have taken, that no finished move accounts for,
    in a folder where names are claimed at all (``claims_first``: on ext4 an empty file is a
    person's, or a screenshot its tool is writing); never for a move of an empty file (its copy is
    empty too)."""
    if move.hash == EMPTY_HASH:
        return
    for claim in named:
        try:
            st = claim.lstat()
        except OSError:
            continue
        if st.st_mtime < since - MTIME_SLACK_S or not stat.S_ISREG(st.st_mode) or st.st_size != 0:
            continue
        if journal.done_at(claim) is None and claims_first(claim.parent):
            claim.unlink()
            fsync_dir(claim.parent)
            yield f"removed {claim}, the empty name {whose} had claimed"


def _remove_stale_temp_files(journal: Journal) -> None:
    """Half-written cross-filesystem copies (hidden temp names) are garbage: in destination folders,
    and in the folders `undo` copies files back into (an inbox on another filesystem)."""
    # Every age: recovery holds the move lock, so no copy is under way. An older version's relative
    # path names no folder we know (it would be read in the current one).
    folders = {path.parent for path in journal.moved_paths() if path.is_absolute()}
    for tmp in remove_temp_files(folders):
        logger.warning("removed a half-written copy left by a crash: {}", tmp)
