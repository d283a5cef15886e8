"""The nearest of the words a place takes to one it was given: the "did you mean" of a typo'd
config key, FACESORTD_* variable or command, worked out one way for all of them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def nearest(word: str, known: Iterable[str]) -> str | None:
    """The known word closest to ``word`` (difflib's ratio of at least 0.6: `sotr` for sort,
    `reveiw` for review, `libary` for library), or None when none is near enough to be the one meant."""
    found = difflib.get_close_matches(word, list(known), n=1)
    return found[0] if found else None
