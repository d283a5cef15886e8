"""The library's folder layout and the one way files enter it.

``<library>/<emotion>/`` holds sorted files, ``<library>/_quarantine/<reason>/`` the rest. The
folders are the user interface: a person reviews quarantine by moving files into emotion folders.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from facesortd.decide import Decision
from facesortd.durable import move_no_replace
from facesortd.quarantine import QUARANTINE_DIR


@dataclass(frozen=True)
class Library:
    """A library root; knows where a decision sends a file."""

    root: Path

    def folder_for(self, decision: Decision) -> Path:
        if decision.to_emotion_folder:
            assert decision.emotion, "a sorted or labelled decision always names its emotion"
            return self.root / decision.emotion
        return self.root / QUARANTINE_DIR / (decision.reason or "unsure")

    def holds(self, src: Path, decision: Decision) -> bool:
        """Is ``src`` already in the folder ``decision`` sends it to? Moving it would only rename it
        to "name (1)" (a quarantined file looked at again and still unsure, say)."""
        folder = self.folder_for(decision)
        return folder.is_dir() and folder.samefile(src.parent)

    def make_emotion_folders(self, emotions: Iterable[str]) -> None:
        """Create ``<emotion>/`` for each emotion, so a person reviewing with a file manager finds a
        folder to drop every file into from the start (not only once something was sorted there).

        A convenience, so a library this user may not write to is said once and not fatal: the
        daemon must live on, and sort again as soon as the person fixes the permissions (each move
        then names the folder that refuses it).
        """
        for emotion in emotions:
            try:
                (self.root / emotion).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                logger.warning(
                    "cannot create the emotion folders in {} ({}): a file for a missing one waits in "
                    "the inbox until you make it writable (chmod u+rwx '{}')",
                    self.root,
                    exc.strerror or exc,
                    self.root,
                )
                return

    def destination(self, src: Path, decision: Decision) -> Path:
        """Where ``src`` would go (before clash numbering; the real name may get ' (n)')."""
        return self.folder_for(decision) / src.name

    def apply(self, src: Path, decision: Decision, *, copy: bool = False) -> Path:
        """Move (or copy) ``src`` to its folder, never overwriting; returns where it ended up."""
        return move_no_replace(src, self.destination(src, decision), copy=copy)
