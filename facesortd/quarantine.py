"""The quarantine: where it lives in the library and every reason a file can land there.

One place for the list, so the decider, the library, the review page and the config cannot drift:
``<library>/_quarantine/<reason>/`` holds what a person should look at.
"""

from __future__ import annotations

from typing import Literal, get_args

QUARANTINE_DIR = "_quarantine"

Reason = Literal["no-face", "unsure", "unreadable", "mixed", "duplicate"]
QUARANTINE_REASONS: tuple[Reason, ...] = get_args(Reason)
