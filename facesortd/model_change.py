"""A change of the model in force by hand (`model use`, `model rollback`, `train --activate`): made
while no retrain runs, and for a model put in force, the models folder kept bounded after it.

Here rather than in the command line, so that whatever else changes the model by hand holds the
same lock without importing the CLI; the caller says how a wait is told (``waiting``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from facesortd.config import Settings
from facesortd.interrupts import whole
from facesortd.model_store import model_in_force, rollback, use
from facesortd.models_folder import prune_logged
from facesortd.state import MODEL_CHANGE, retrain_lock


@dataclass(frozen=True)
class Change:
    """A change of the model in force: the model taken out of force (None: none was) and the one now.

    ``before`` is read under the lock, once no retrain runs: read before waiting, a retrain ending
    during the wait had put its own model in force, and what the one before it sorted was said as
    what this change took out of force."""

    before: Path | None
    now: Path


def put_in_force(settings: Settings, choice: str, waiting: Callable[[str], None] | None = None) -> Change:
    """``choice`` put in force while no retrain runs, then the models folder kept bounded
    (``models_folder.prune``) under the same lock, so that no retrain is halfway through with a model
    it needs. Each adds a history line, and a file from elsewhere is copied in: pruned only after
    retrains until 2026-12-02, the folder of a person who changed models by hand only grew for good."""
    with no_retrain_running(settings, waiting), whole():  # once waited for, never cut (``interrupts``)
        before = model_in_force(settings)
        now = use(settings, choice)
        prune_logged(settings)
    return Change(before, now)


def roll_back(settings: Settings, waiting: Callable[[str], None] | None = None) -> Change:
    """The model in force before this one put back (``model_store.rollback``) while no retrain runs."""
    with no_retrain_running(settings, waiting):
        before = model_in_force(settings)
        return Change(before, rollback(settings))


def no_retrain_running(
    settings: Settings, waiting: Callable[[str], None] | None = None
) -> contextlib.AbstractContextManager[bool]:
    """Held while the model in force is changed by hand: a retrain running meanwhile was judged
    against the model in force when it began and, adopted, put its own in at its end, over the one
    the person had just chosen (a rollback silently undone). Waits for a retrain running now, with
    or without ``waiting`` to tell of it (given the words to say); one waiting meanwhile is told a
    change of the model holds it."""
    return retrain_lock(settings.state_dir, waiting or _untold, MODEL_CHANGE)


def _untold(words: str) -> None:
    """A wait nobody is told of: ``retrain_lock`` given no callback would not wait at all."""
