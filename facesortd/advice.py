"""The `facesortd ...` commands a message advises, written with the ``--config FILE`` this process
was started with.

A person who ran ``facesortd --config my.toml sort`` and is told to run ``facesortd review`` runs
the review of the default config: another inbox, library and state folder, where the files the
message was about are not. The messages are made deep in the sorter, the daemon, the retrain and
the review page, which do not know the command line; ``main`` tells this module once (the whole
process runs with one config, the daemon's threads too), and each message asks :func:`advised`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from facesortd.config import config_option

_config: Path | None = None
"""The ``--config`` this process was given (None: the default config, which needs no option)."""


def advise_with(config: Path | None) -> None:
    """Set once by ``main``, before any command runs; None for the default config."""
    global _config
    _config = config


def advised(*words: str) -> str:
    """``facesortd [--config FILE] WORDS...`` as a person types it (quoted for the shell), e.g.
    ``advised("review")``; placeholders such as ``FILE`` or ``DATASET`` are words like any other."""
    return shlex.join(["facesortd", *config_option(_config), *words])
