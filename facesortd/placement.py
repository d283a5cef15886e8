"""The one way facesortd moves a user's file into the library: journal the plan, move, journal it.

Kept apart from the journal (which only stores records) because it joins three things: the
journal, the library's layout and the state folder's move lock.
"""

from __future__ import annotations

from pathlib import Path

from facesortd.decide import Decision
from facesortd.journal import Journal
from facesortd.library import Library
from facesortd.state import move_lock


def journaled_apply(
    journal: Journal,
    library: Library,
    src: Path,
    digest: str,
    decision: Decision,
    model: str,
    copy: bool = False,
) -> Path:
    """The one way facesortd moves a user's file: journal the plan, move (never overwriting), journal it.

    Used by the service and by one-shot `sort` alike, so every file facesortd placed is known as its
    own placement (and never mistaken for a person's label), can be undone and is crash-safe.
    Runs under the state folder's move lock: another process (a second worker, `sort` beside the
    daemon) that decided on the same file finds it gone (FileNotFoundError) instead of placing it
    twice, and recovery never mistakes this move for a crashed one.
    """
    with move_lock(journal.state_dir):
        if not copy and not src.exists():
            raise FileNotFoundError(2, "moved away by another process meanwhile", str(src))
        move_id = journal.plan(digest, src, library.destination(src, decision), decision, model, copied=copy)
        try:
            final = library.apply(src, decision, copy=copy)
        except BaseException:
            journal.finish(move_id, "rolled_back")
            raise
        journal.finish(move_id, "done", final)
    return final
