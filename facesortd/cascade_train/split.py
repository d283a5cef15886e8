"""The fixed train / held-out split of screenshots, by character, shared by training and the benchmark.

A character's screenshots look alike, so they all go to one side (``source_group``); the side is
picked by a hash of the group name, so the split never changes between runs or machines and a new
screenshot of a known character lands where its siblings are.
"""

from __future__ import annotations

import hashlib

from facesortd.learn.datasets import source_group

HELD_OUT_FRACTION = 0.3


def is_held_out(filename: str) -> bool:
    """True if this screenshot belongs to the held-out (never trained on) side of the split."""
    digest = hashlib.sha256(source_group(filename).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < HELD_OUT_FRACTION
