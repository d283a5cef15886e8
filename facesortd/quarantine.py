"""The quarantine: where it lives in the library and every reason a file can land there.

One place for the list, so the decider, the library, the review page and the config cannot drift:
``<library>/_quarantine/<reason>/`` holds what a person should look at.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Literal, get_args

QUARANTINE_DIR = "_quarantine"

Reason = Literal["no-face", "unsure", "unreadable", "mixed", "duplicate"]
QUARANTINE_REASONS: tuple[Reason, ...] = get_args(Reason)


def names_an_emotion(folder: str) -> bool:
    """Does a folder of a labelled tree (a dataset, the library) name an emotion? Not when hidden
    (``.``) or facesortd's own (``_quarantine``): one rule for what `train` reads, what the review
    records as labels and which library folders `status` compares by case."""
    return not folder.startswith((".", "_"))


def outside_library(library: Path, folder: Path | None = None) -> OSError | None:
    """Why ``<library>/_quarantine`` may not be used (None: it may): made a symbolic link to a folder
    outside the library. Followed, the review page listed, showed and, labelled, moved that folder's
    files into the library, and the daemon put quarantined files there and looked again at files
    there as its own. The page and the daemon both ask here, so they cannot disagree.

    ``folder``: a folder of the quarantine to put a file into (``_quarantine/<reason>``), asked of
    too: one made a link out of the library was refused only at the move itself (the folder opened
    and found outside), which `status` never showed and `undo` did not ask. The error's ``filename``
    is the folder that leads out, for the fix to name."""
    for where in (library / QUARANTINE_DIR, folder):
        if where is None:
            continue
        leads_to = where.resolve()  # once: a link removed meanwhile would name itself as its target
        if not leads_to.is_relative_to(library.resolve()):
            return OSError(errno.EXDEV, f"a link to {leads_to}, outside the library", str(where))
    return None
