"""The `facesortd ...` commands a message advises, written with the ``--config FILE`` this process
was started with, the folder options (``--library DIR``) its command was given, and the folders
FACESORTD_* variables set.

A person who ran ``facesortd --config my.toml sort`` and is told to run ``facesortd review`` runs
the review of the default config: another inbox, library and state folder, where the files the
message was about are not. Likewise one who ran ``facesortd sort --library ~/reactions`` and is told
``facesortd sort FILE`` sorts that file into the config's library, not into ~/reactions; and a
daemon whose unit sets ``FACESORTD_LIBRARY`` advises commands to a terminal that does not. The
messages are made deep in the sorter, the daemon, the retrain and the review page, which do not know
the command line; ``main`` tells this module once (the whole process runs with one config and one
set of folders, the daemon's threads too), and each message asks :func:`advised`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from facesortd.config import FOLDERS, config_option, environment_variable


@dataclass(frozen=True)
class FolderOption:
    """A folder setting (of ``config.FOLDERS``) some commands take as an option (``--library``), and
    those commands: an advised command among them is given the folder by it; one that takes no such
    option (`review` has no ``--library``) cannot."""

    setting: str
    option: str
    commands: frozenset[str]


SHOWING = frozenset({"review", "status"})
"""The commands that show the person the files in the folders (the review page, `status`'s counts),
and take no folder option: one advised after `sort --library DIR` is about DIR's files, and is given
DIR by the variable (`review` showed the config library's quarantine, where they are not). Not
`run` or `install-service`, which would make a folder meant for one command the daemon's for good,
nor a command that never looks into the folders (`model use`, `train`)."""

INSTALL_TRAIN_EXTRA = "pip install 'facesortd[train]'"
"""What installs PyTorch for the training of a net (the ``train`` extra): the fix every message about
a missing PyTorch advises, one spelling for all of them."""

_config: Path | None = None
"""The ``--config`` this process was given (None: the default config, which needs no option)."""
_options: dict[str, FolderOption] = {}
"""Every folder option of a command, by its setting."""
_given: dict[str, Path] = {}
"""The folders this process's command was given as options, by setting (none: the config's folders)."""
_environment: dict[str, Path] = {}
"""The folders FACESORTD_* variables set other than the config (``config.environment_folders``)."""


def advise_with(
    config: Path | None,
    options: Iterable[FolderOption] = (),
    given: Mapping[str, Path] | None = None,
    environment: Mapping[str, Path] | None = None,
) -> None:
    """Set once by ``main``, before any command runs; None and nothing else for the default config."""
    global _config, _options, _given, _environment
    _config, _options = config, {o.setting: o for o in options}
    _given, _environment = dict(given or {}), dict(environment or {})


def _absolute(folder: Path) -> str:
    """Absolute, as ``config_option`` writes the config, since the person may run the advice from
    another folder."""
    return str(folder.expanduser().absolute())


def advised(*words: str) -> str:
    """``[FACESORTD_X=DIR] facesortd [--config FILE] COMMAND [--library DIR] WORDS...`` as a person
    types it (quoted for the shell), e.g. ``advised("review")``; placeholders such as ``FILE`` or
    ``DATASET`` are words like any other.

    A folder given as an option, or set by a FACESORTD_* variable, goes right after a command that
    takes its option, unless ``words`` already give that option (``advised("undo", "--library",
    "FOLDER")`` names another library); a folder set by a variable is set by it before `facesortd`
    for a command that does not take its option. A folder option given is set so for the commands
    that show its files (:data:`SHOWING`), and left out of the others: it was for that command alone."""
    command, rest = words[:1], words[1:]
    variables, folders = [], []
    for setting in FOLDERS:
        option = _options.get(setting)
        folder = _given.get(setting, _environment.get(setting))
        if option is not None and command and command[0] in option.commands:
            if folder is not None and option.option not in words:
                folders += [option.option, _absolute(folder)]
            continue
        if not (command and command[0] in SHOWING):
            folder = _environment.get(setting)
        if folder is not None:
            variables.append(f"{environment_variable(setting)}={shlex.quote(_absolute(folder))}")
    return " ".join(
        [*variables, shlex.join(["facesortd", *config_option(_config), *command, *folders, *rest])]
    )
