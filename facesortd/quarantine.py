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


def outside_library(library: Path) -> OSError | None:
    """Why ``<library>/_quarantine`` may not be used (None: it may): made a symbolic link to a folder
    outside the library. Followed, the review page listed, showed and, labelled, moved that folder's
    files into the library, and the daemon put quarantined files there and looked again at files
    there as its own. The page and the daemon both ask here, so they cannot disagree."""
    quarantine = library / QUARANTINE_DIR
    if quarantine.resolve().is_relative_to(library.resolve()):
        return None
    return OSError(errno.EXDEV, f"a link to {quarantine.resolve()}, outside the library")
