"""``facesortd undo``: put sorted files back where they came from, using the journal."""

from __future__ import annotations

from pathlib import Path

from facesortd.durable import fsync_dir, move_no_replace
from facesortd.journal import Journal, Move, file_hash


def select(journal: Journal, last: int | None, since: float | None, files: list[Path]) -> list[Move]:
    """The moves to undo: the last N, those since a time, or those that put the named files where they are."""
    if files:
        found = []
        for f in files:
            move = journal.done_at(f.resolve()) or journal.done_at(f.absolute())
            if move is None:
                raise LookupError(f"{f}: the journal has no move of facesortd that put this file there")
            found.append(move)
        return found
    if since is not None:
        return journal.done_moves(since=since)
    return journal.done_moves(limit=last or 1)


def undo(journal: Journal, moves: list[Move]) -> list[tuple[Path, Path | None]]:
    """Move each file back to its original folder (never overwriting); (from, back-to or None if gone).

    A `sort --copy` left the original in place: undoing it removes the copy, but only when the
    original is still there with the very same content.
    """
    out: list[tuple[Path, Path | None]] = []
    for move in moves:
        if not move.destination.is_file():
            out.append((move.destination, None))
            continue
        if move.source.is_file() and file_hash(move.source) == move.hash == file_hash(move.destination):
            move.destination.unlink()
            fsync_dir(move.destination.parent)
            journal.finish(move.id, "undone")
            out.append((move.destination, move.source))
            continue
        back = move_no_replace(move.destination, move.source)
        journal.finish(move.id, "undone")
        out.append((move.destination, back))
    return out
