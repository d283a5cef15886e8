"""The models folder kept bounded: each retrain adds a model (about 3 MB), adopted or rejected, and
so does each `train` and each `model use` of a file from elsewhere (copied in); nothing removed any,
so `<state_dir>/models/` grew for as long as facesortd ran.

What stays, always: the model ``models/current`` names (in force, or in force again once the config
stops pinning one), a model ``recognition.model`` pins, the models the newest ``ADOPTED_KEPT``
distinct history entries name (how far `model rollback` goes back), the newest ``TRAINED_KEPT``
models outside the history (a `train` without ``--activate``: a person's own work, which `model use`
may still name; and models rolled back from, whose lines the rollback dropped; kept for good until
2026-12-02, however many), and the model each of those was retrained from (``base_file``, with its
validation set: what the next retrain starts from and is judged on; for retrains from before that
was recorded, the newest label-free model of the history). The shipped model lives in the package,
not here. What goes: older models of the history (with their validation sets) and their lines in
it, history first, so rollback never passes over a removed model without a word; older models
outside the history; in ``rejected/``, all but the newest ``REJECTED_KEPT``. Pruned after every
change that adds a model or a history line: a retrain, `model use`, `train --activate`, a `train`
into the models folder (until 2026-12-02 only after a retrain, so a person who changed models by
hand only kept every one).
"""

from __future__ import annotations

from pathlib import Path

from loguru import logger

from facesortd.config import Settings
from facesortd.emotion import MODEL_SUFFIX, ModelError
from facesortd.ensemble import model_info
from facesortd.model_store import (
    DEFAULT,
    adopted,
    made_order,
    models_dir,
    pointer,
    rejected_dir,
    resolve,
    user_models,
    validation_path,
    write_history,
)
from facesortd.state import models_lock

ADOPTED_KEPT = 10
"""Distinct models of the history kept, newest first: `model rollback` steps back this far."""
REJECTED_KEPT = 5
"""Rejected retrains kept for inspection, newest first."""
TRAINED_KEPT = 5
"""Models outside the history (a `train` without ``--activate``, a model rolled back from) kept, newest
first: what `model use` may still name, bounded."""


def prune(settings: Settings) -> list[Path]:
    """Remove the models the rule above lets go; returns what was removed (each said in the log)."""
    with models_lock(settings.state_dir):
        removed = _old_models(settings) + _old_rejected(settings)
    for path in removed:
        logger.info("removed an old model to keep the models folder bounded: {}", path)
    return removed


def prune_logged(settings: Settings) -> None:
    """:func:`prune` after a change of the models that has happened: a model it may not remove stays,
    said in the log, and the change stands."""
    try:
        prune(settings)
    except OSError as exc:
        logger.warning("cannot remove old models from {} ({}); they stay", models_dir(settings), exc)


def _old_models(settings: Settings) -> list[Path]:
    log = adopted(settings)
    newest: list[str] = []
    for name in reversed(log):
        if len(newest) == ADOPTED_KEPT:
            break
        if name != DEFAULT and name not in newest and resolve(settings, name) is not None:
            newest.append(name)
    named = [pointer(settings), *newest]
    keep = {path.resolve() for name in named if name and (path := resolve(settings, name))}
    if (pinned := settings.recognition.model) is not None:
        keep.add(pinned.expanduser().resolve())
    in_history = set(log)
    outside_history = [path for path in user_models(settings) if path.name not in in_history]
    keep |= {path.resolve() for path in outside_history[-TRAINED_KEPT:]}
    keep |= _bases(settings, keep)
    if (fallback := _newest_label_free(settings, log)) is not None:
        keep.add(fallback)
    doomed = {name for name in log if (path := resolve(settings, name)) and path.resolve() not in keep}
    doomed.discard(DEFAULT)
    if doomed:
        write_history(settings, [name for name in log if name not in doomed])
    removed = []
    for name in sorted(doomed):
        path = resolve(settings, name)
        if path is not None:
            _remove(path)
            removed.append(path)
    for path in outside_history:
        if path.resolve() not in keep:
            _remove(path)
            removed.append(path)
    return removed


def _bases(settings: Settings, models: set[Path]) -> set[Path]:
    """The models each of ``models`` was retrained from, back to a model trained without labels."""
    found: set[Path] = set()
    todo = list(models)
    while todo:
        try:
            base = model_info(todo.pop()).get("base_file")
        except ModelError:  # unreadable: nothing to follow, and it is kept (or not) on its own account
            continue
        path = resolve(settings, base) if isinstance(base, str) else None
        if path is not None and (path := path.resolve()) not in found | models:
            found.add(path)
            todo.append(path)
    return found


def _newest_label_free(settings: Settings, log: list[str]) -> Path | None:
    """The newest model of the history trained without labels: what a retrain starts from when the
    model in force is a retrain from before ``base_file`` was recorded (learn/retrain.bootstrap)."""
    for name in reversed(log):
        if name == DEFAULT or (path := resolve(settings, name)) is None:
            continue
        try:
            if not model_info(path).get("user_labels"):
                return path.resolve()
        except ModelError:
            continue
    return None


def _old_rejected(settings: Settings) -> list[Path]:
    folder = rejected_dir(settings)
    made = sorted(folder.glob("*" + MODEL_SUFFIX), key=made_order) if folder.is_dir() else []
    old = made[: max(0, len(made) - REJECTED_KEPT)]
    for path in old:
        _remove(path)
    return old


def _remove(model: Path) -> None:
    validation_path(model).unlink(missing_ok=True)
    model.unlink(missing_ok=True)
