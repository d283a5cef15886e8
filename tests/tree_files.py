"""The files under a folder, as tests compare them: a file lost, doubled or left behind shows."""

from __future__ import annotations

from pathlib import Path


def files_in(root: Path) -> list[Path]:
    """Every file under ``root``, at any depth, sorted; none for a folder that is not there."""
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
