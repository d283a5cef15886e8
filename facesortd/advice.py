"""The `facesortd ...` commands a message advises, written with the ``--config FILE`` this process
was started with, and the folder options (``--library DIR``) its command was given.

A person who ran ``facesortd --config my.toml sort`` and is told to run ``facesortd review`` runs
the review of the default config: another inbox, library and state folder, where the files the
message was about are not. Likewise one who ran ``facesortd sort --library ~/reactions`` and is told
``facesortd sort FILE`` sorts that file into the config's library, not into ~/reactions. The
messages are made deep in the sorter, the daemon, the retrain and the review page, which do not know
the command line; ``main`` tells this module once (the whole process runs with one config and one
set of folders, the daemon's threads too), and each message asks :func:`advised`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from facesortd.config import config_option


@dataclass(frozen=True)
class FolderOption:
    """A folder option the person gave (``--library DIR``), and the commands that take it: an advised
    command among them carries it; one that takes no such option (`review` has no ``--library``)
    cannot, and is said with the config alone."""

    option: str
    folder: Path
    commands: frozenset[str]

    def words(self) -> list[str]:
        """``--library /abs/DIR``: absolute, as ``config_option`` writes the config, since the
        person may run the advice from another folder."""
        return [self.option, str(self.folder.expanduser().absolute())]


_config: Path | None = None
"""The ``--config`` this process was given (None: the default config, which needs no option)."""
_folders: tuple[FolderOption, ...] = ()
"""The folder options this process's command was given (none: the config's folders)."""


def advise_with(config: Path | None, folders: Iterable[FolderOption] = ()) -> None:
    """Set once by ``main``, before any command runs; None and no folders for the default config."""
    global _config, _folders
    _config, _folders = config, tuple(folders)


def advised(*words: str) -> str:
    """``facesortd [--config FILE] COMMAND [--library DIR] WORDS...`` as a person types it (quoted
    for the shell), e.g. ``advised("review")``; placeholders such as ``FILE`` or ``DATASET`` are words
    like any other. A folder option goes right after the command that takes it, unless ``words``
    already give that option (``advised("undo", "--library", "FOLDER")`` names another library)."""
    command, rest = words[:1], words[1:]
    folders = [
        word
        for given in _folders
        if command and command[0] in given.commands and given.option not in words
        for word in given.words()
    ]
    return shlex.join(["facesortd", *config_option(_config), *command, *folders, *rest])
