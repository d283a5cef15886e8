"""A file's content id: the SHA-256 of its bytes, the identity a file keeps across renames and moves.

The journal records it with each move and label; recovery, `undo`, the duplicates rule, the review
and the label scan find a file (or tell it from another) by it. Apart from the journal, which only
stores records: most who hash a file keep no journal row of it (`status`, `import-labels`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from facesortd.durable import open_regular

EMPTY_HASH = hashlib.sha256(b"").hexdigest()
"""The content id of an empty file: no picture (a claim a crash cut off before its mark, say)."""


def file_hash(path: Path) -> str:
    """SHA-256 of the content: the identity of a file across renames and moves.

    Refused unless it is a regular file (``open_regular``): reading a FIFO dropped into the inbox
    would wait for a writer for ever, and hang `status` or a daemon worker with it.
    """
    digest = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_id(path: Path) -> str:
    """The file's SHA-256, or for a file we may not read, an id from its inode (it can still be moved)."""
    try:
        return file_hash(path)
    except PermissionError:
        st = path.stat()
        return f"unreadable:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def holds(path: Path, digest: str) -> bool:
    """Is ``path`` a regular file (not a link to one) with this content?"""
    try:
        return path.is_file() and not path.is_symlink() and content_id(path) == digest
    except OSError:
        return False
