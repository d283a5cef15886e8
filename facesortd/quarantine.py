"""The quarantine: where it lives in the library and every reason a file can land there.

One place for the list, so the decider, the library, the review page and the config cannot drift:
``<library>/_quarantine/<reason>/`` holds what a person should look at.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Literal, get_args

from facesortd.shown_names import one_line

QUARANTINE_DIR = "_quarantine"

Reason = Literal["no-face", "unsure", "unreadable", "mixed", "duplicate"]
QUARANTINE_REASONS: tuple[Reason, ...] = get_args(Reason)


def names_an_emotion(folder: str) -> bool:
    """Does a folder of a labelled tree (a dataset, the library) name an emotion? Not when hidden
    (``.``) or facesortd's own (``_quarantine``): one rule for what `train` reads, what the review
    records as labels and which library folders `status` compares by case."""
    return not folder.startswith((".", "_"))


def not_a_folder_of_its_own(label: str) -> str | None:
    """Why files sorted as ``label`` would not land in a folder of that emotion (None: they would):
    ``../x`` or ``/tmp/x`` had them moved out of the library, ``_quarantine`` into facesortd's own
    folder. Every model file loaded is held to it."""
    if "/" in label or not names_an_emotion(label):
        return "it names a library folder: no '/', no leading '.' or '_' (facesortd's own)"
    return None


def not_an_emotion_name(label: str) -> str | None:
    """Why a dataset's ``label`` may not become an emotion (None: it may): as
    :func:`not_a_folder_of_its_own`, and it shows in every listing: a line break split them into
    lines of other emotions, a byte not UTF-8 made a label the journal cannot store."""
    if one_line(label) != label:
        return "a line break, control or zero-width character or byte that is not UTF-8 in it"
    return not_a_folder_of_its_own(label)


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
