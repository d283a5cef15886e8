"""Another process holding the journal's write lock, as a stuck daemon does: for the tests of what
a command says and leaves while it cannot get that lock."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def journal_held(state_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding the daemon lock and the journal's write lock of ``state_dir`` for the
    block, let go after it; yields that process (its pid is what the messages must name)."""
    with _holding(
        "import sys; from pathlib import Path; from facesortd.journal import Journal;"
        " from facesortd.state import DaemonLock; state = Path(sys.argv[1]); DaemonLock(state).acquire();"
        " j = Journal.for_state_dir(state); j._db.execute('BEGIN IMMEDIATE')",
        state_dir,
    ) as holder:
        yield holder


@contextlib.contextmanager
def journal_held_exclusively(journal: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding ``journal`` in SQLite's exclusive locking mode (no other connection can even
    read it) for the block."""
    with _holding(
        "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute('PRAGMA locking_mode=EXCLUSIVE');"
        " db.execute('SELECT count(*) FROM sqlite_master').fetchall()",
        journal,
    ) as holder:
        yield holder


@contextlib.contextmanager
def _holding(code: str, path: Path) -> Iterator[subprocess.Popen[str]]:
    """``code`` run in another Python on ``path`` (its ``sys.argv[1]``), held until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", f"{code}; print('held', flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.communicate("", timeout=30)
