"""Where emotion models live, which one is in force, and the history to roll back through.

Order: ``recognition.model`` from the config, else the model named by ``<state_dir>/models/current``
(written atomically whenever a model is put in force; ``default`` names the shipped one), else the
model shipped with facesortd. A model that `facesortd train` wrote is *not* in force until the user
says so: a new file in the folder never takes over by itself. One function answers that so the
CLI, the daemon and ``doctor`` never disagree about the model in use.

``<state_dir>/models/adopted`` lists what was put in force, oldest first, so ``rollback`` can step
back through it down to the shipped model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from facesortd.advice import advised
from facesortd.config import Settings
from facesortd.content import file_hash
from facesortd.durable import TMP_PREFIX, atomic_writer, fsync_dir, link_no_replace, remove_temp_files
from facesortd.emotion import MODEL_SUFFIX, ModelError
from facesortd.ensemble import Model, load_model, model_info
from facesortd.journal import NO_MODEL, ModelId
from facesortd.package_data import SHIPPED_MODEL, data_file
from facesortd.state import MODELS_DIR, REJECTED_DIR, models_lock

CURRENT = "current"
ADOPTED = "adopted"
DEFAULT = "default"
"""How the pointer and the history name the shipped model."""
VALIDATION_SUFFIX = ".validation.npz"


def models_dir(settings: Settings) -> Path:
    return settings.state_dir / MODELS_DIR


def rejected_dir(settings: Settings) -> Path:
    return models_dir(settings) / REJECTED_DIR


LOCKED_TMP_PREFIX = f"{TMP_PREFIX}locked-"
"""The temp file of a model written while holding the retrain lock (``state.retrain_lock``: a
retrain's new model, `model use FILE`'s copy): whoever holds the lock next knows any such file is a
killed writer's, none is being written (:func:`remove_killed_writes`)."""


def save_new_model(
    settings: Settings, write: Callable[[Path], object], folder: Path | None = None, *, locked: bool = False
) -> Path:
    """A new model file in ``folder`` (default: the models folder) under a name no other file has,
    starting with a sortable timestamp (``_1``, ``_2`` ... within one second); returns it.

    ``write`` fills a temp file beside it, which then takes the first free name in one step
    (``durable.link_no_replace``: a hard link, which never replaces a file). Checking that a name was
    free and renaming the model onto it later let `train` and a retrain ending in the same second
    both take it, one model replacing the other (perhaps the one just put in force). ``locked``: the
    caller holds the retrain lock (its temp file is then named ``LOCKED_TMP_PREFIX``).
    """
    folder = folder or models_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = LOCKED_TMP_PREFIX if locked else TMP_PREFIX
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=prefix)  # no model suffix: never listed
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        path = link_no_replace(tmp, folder / (time.strftime("%Y%m%d-%H%M%S") + MODEL_SUFFIX), _numbered)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(folder)
    return path


def remove_killed_writes(settings: Settings) -> list[Path]:
    """Remove the temp model files (``LOCKED_TMP_PREFIX``) a retrain or `model use FILE` killed
    while writing left in the models folders; returns them. Only for a caller holding the retrain
    lock: no other writer of theirs is at work then, so any age is stale. Each is a model's size,
    and until 2026-12-03 only a start of the daemon removed one, once it was an hour old
    (``state.STALE_TEMP_S``): `retrain` from the command line never did."""
    return remove_temp_files((models_dir(settings), rejected_dir(settings)), prefix=LOCKED_TMP_PREFIX)


def _numbered(model: Path, n: int) -> Path:
    """``<stamp>.fsm.npz`` -> ``<stamp>_n.fsm.npz``: the name of one second's later models."""
    return model.with_name(f"{model.name.removesuffix(MODEL_SUFFIX)}_{n}{MODEL_SUFFIX}") if n else model


def validation_path(model: Path) -> Path:
    """Where `facesortd train` keeps the faces it held out from ``model`` (its bootstrap validation set)."""
    return model.with_name(model.name.removesuffix(MODEL_SUFFIX) + VALIDATION_SUFFIX)


def shipped_model() -> Path | None:
    """The model bundled in the package (facesortd/data/), if this build has one."""
    path = data_file(SHIPPED_MODEL)
    return path if path.is_file() else None


ModelKey = tuple[str, int, int]
"""A model file version told without reading it: its path, modification time and size (a retrain
or a facesortd upgrade may write a model anew under the same name)."""


def model_key(path: Path | None) -> ModelKey | None:
    """``path``'s :data:`ModelKey`; None: no model, or its file cannot be looked at now. Cheap enough
    to ask per file sorted or picture shown, unlike :func:`model_id`."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return str(path), st.st_mtime_ns, st.st_size


VERSION_CHARS = 16
"""How much of a model file's SHA-256 the journal keeps as its version (:class:`ModelId`): enough
that two models never share one, short beside a row's paths."""


def model_id(path: Path | None) -> ModelId:
    """How the journal records the model in ``path`` (None: no model, every face unsure) as the one
    that decided a move: its name and content. Read whole, so asked once per model taken up, never
    per move; one that cannot be read now is known by its name alone."""
    if path is None:
        return NO_MODEL
    try:
        return ModelId(path.name, _version(file_hash(path)))
    except OSError:
        return ModelId(path.name)


def _version(sha256: str) -> str:
    """A model's :class:`ModelId` version from its content's SHA-256."""
    return sha256[:VERSION_CHARS]


def made_order(model: Path) -> tuple[str, int]:
    """Sort key, oldest first, of the names :func:`save_new_model` gives: by timestamp, then by the
    ``_n`` of one second's later models (by name alone, ``_10`` came before ``_2``)."""
    stem = model.name.removesuffix(MODEL_SUFFIX)
    stamp, _, n = stem.rpartition("_")
    return (stamp, int(n)) if stamp and n.isdigit() else (stem, 0)


def user_models(settings: Settings) -> list[Path]:
    """The user's trained models, oldest first (names start with a sortable timestamp)."""
    folder = models_dir(settings)
    return sorted(folder.glob("*" + MODEL_SUFFIX), key=made_order) if folder.is_dir() else []


def resolve(settings: Settings, name: str) -> Path | None:
    """The file a pointer or history line names (``default``: the shipped model); None if gone."""
    if name == DEFAULT:
        return shipped_model()
    path = models_dir(settings) / name
    return path if path.is_file() else None


def pointer(settings: Settings) -> str | None:
    """The name ``models/current`` holds, pinned over by the config or not."""
    path = models_dir(settings) / CURRENT
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def _pointed(settings: Settings) -> str | None:
    """The name ``models/current`` puts in force, if the config does not pin one."""
    return None if settings.recognition.model is not None else pointer(settings)


_UNREADABLE: dict[tuple[str, int, int], str] = {}
"""Why each model file version (path, time, size) cannot be loaded ("": it can), so that each is
read once: :func:`model_in_force` is asked before every file the daemon sorts."""


def unreadable(path: Path) -> str:
    """Why the model file ``path`` cannot be loaded, "" if it can. A file in the models folder
    damaged by hand (truncated, half copied back) stopped the daemon at its start (exit 2), `sort`,
    `status` and `retrain` with "corrupt", and `model rollback` went back to it."""
    try:
        st = path.stat()
    except OSError as exc:
        return str(exc)
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _UNREADABLE:
        if len(_UNREADABLE) > 64:  # one entry per model version looked at: a long-lived daemon's retrains
            _UNREADABLE.clear()
        _UNREADABLE[key] = _damage(path)
    return _UNREADABLE[key]


def _damage(path: Path) -> str:
    """What :func:`unreadable` finds: a model's own description (its format and version) and every
    byte of it as written (the zip's checksums), without the cost of building the model."""
    try:
        model_info(path)
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except ModelError as exc:
        return str(exc)
    except (OSError, zipfile.BadZipFile) as exc:
        return f"model file {path} is corrupt ({exc})"
    return f"model file {path} is corrupt ({damaged} is damaged)" if damaged else ""


def usable(settings: Settings, name: str) -> Path | None:
    """The file ``name`` (a pointer or history line) names if it is there and can be loaded, else
    None: one that cannot counts as gone (:func:`unreadable`)."""
    path = resolve(settings, name)
    return path if path is not None and not unreadable(path) else None


def model_in_force(settings: Settings) -> Path | None:
    if settings.recognition.model is not None:
        return settings.recognition.model.expanduser()
    name = _pointed(settings)
    return (usable(settings, name) if name else None) or shipped_model()


def lost_in_force(settings: Settings) -> str:
    """Why the model put in force is not the one used ("" if it is). Its file gone (deleted, or a
    state folder copied without it) or unreadable (damaged), :func:`model_in_force` falls back to the
    shipped model: sorting goes on, but a person whose own model vanished must hear it (doctor said
    "all good"), with what to do. So does ``models/current`` itself deleted by hand, which said
    nothing at all: the history shows a model was put in force."""
    if settings.recognition.model is not None:
        return ""
    name = pointer(settings)
    if not name:
        last = (adopted(settings) or [DEFAULT])[-1]
        again = usable(settings, last)
        if again is None or last == DEFAULT:
            return ""
        return (
            f"{models_dir(settings) / CURRENT}, which names the model in force, is missing (deleted?), so "
            f"the shipped model is used, though {last} was put in force last: "
            f"`{advised('model', 'use', str(again))}` puts it back "
            f"(`{advised('model', 'use', 'default')}` keeps the shipped one)"
        )
    if (path := resolve(settings, name)) is not None and not (why := unreadable(path)):
        return ""
    if path is None:
        return (
            f"the emotion model put in force, {name}, is not in {models_dir(settings)} (deleted, or the "
            "state folder was copied without it), so the shipped model is used: put the file back, or put "
            f"one that is there in force (`{advised('model')}` lists them; "
            f"`{advised('model', 'use', 'FILE')}`, or `{advised('model', 'use', 'default')}`)"
        )
    return (
        f"the emotion model put in force cannot be read ({why}), so the shipped model is used: "
        f"`{advised('model', 'rollback')}` puts back the one in force before it, "
        f"`{advised('model', 'use', 'FILE')}` another (`{advised('model')}` lists them), or put a good "
        "copy of the file back"
    )


class InForce(NamedTuple):
    """The model in force as loaded (None: none yet, every face counts as unsure) and how the journal
    knows it (:func:`model_id`), both of the same bytes."""

    model: Model | None
    id: ModelId


def load_in_force(settings: Settings) -> InForce:
    """Load the model in force, told by the bytes loaded: its file named once, read once. The daemon
    read its name and content before loading it, each time asking which model was in force, so a
    `model use` or `rollback` (or a file copied over it) between the two had it journal the files
    that model sorted as decided by the other: `undo --model` put back the wrong ones."""
    path = model_in_force(settings)
    if path is None:
        return InForce(None, NO_MODEL)
    digest = hashlib.sha256()
    model = load_model(path, seen=digest.update)
    return InForce(model, ModelId(path.name, _version(digest.hexdigest())))


def load_model_in_force(settings: Settings) -> Model | None:
    """The model to use, or None when there is none yet (every face then counts as unsure)."""
    return load_in_force(settings).model


def name_of(settings: Settings, path: Path) -> str:
    """How the pointer, the history and a retrained model's ``base_file`` name a model: ``default``
    for the shipped one, the file name for one in the models folder, else its absolute path (a
    model pinned by ``recognition.model``); :func:`resolve` turns each back into the file."""
    shipped = shipped_model()
    if shipped is not None and path.resolve() == shipped.resolve():
        return DEFAULT
    if path.parent.resolve() == models_dir(settings).resolve():
        return path.name
    return str(path.absolute())


def adopted(settings: Settings) -> list[str]:
    """The names put in force so far, oldest first (``default`` for the shipped model)."""
    log = models_dir(settings) / ADOPTED
    return log.read_text(encoding="utf-8").splitlines() if log.is_file() else []


def write_history(settings: Settings, log: list[str]) -> None:
    """Replace the history (atomic); the caller holds the models lock, under which it read it."""
    models_dir(settings).mkdir(parents=True, exist_ok=True)
    with atomic_writer(models_dir(settings) / ADOPTED) as fh:
        fh.write("".join(f"{n}\n" for n in log).encode())


def _point_to(settings: Settings, name: str) -> None:
    """Put ``name`` in force (the pointer alone); the caller holds the models lock and writes the
    history in the order that keeps it true through a crash (:func:`adopt`, :func:`_roll_back`)."""
    with atomic_writer(models_dir(settings) / CURRENT) as fh:
        fh.write(name.encode())


def _pinned(settings: Settings) -> None:
    if settings.recognition.model is not None:
        raise ModelError(
            "recognition.model is set in the config, which pins the model; edit the config instead"
        )


def adopt(settings: Settings, path: Path) -> None:
    """Make ``path`` (a file in the models folder, or the shipped model) the model in force; atomic."""
    name = name_of(settings, path)
    if Path(name).is_absolute():
        raise ModelError(f"{path} is not in {models_dir(settings)}; only models there can be adopted")
    with models_lock(settings.state_dir):
        if resolve(settings, name) is None:  # removed meanwhile (models_folder.prune): said, not in force
            raise ModelError(f"{path} is gone (removed as an old model meanwhile?); nothing was changed")
        log = [*adopted(settings), name]  # read under the lock: two writers each adding lost a line
        # The pointer first: a crash between the two writes leaves the new model in force without
        # its history line, and rollback goes back to the one before it. Written first, the line
        # named a model never put in force, and the next rollback put it in force (went forward).
        _point_to(settings, name)
        write_history(settings, log)


class InForceAlready(Exception):
    """`model use` of the model in force (``path``): nothing is changed, and it is said so."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} is in force already")
        self.path = path


def _not_in_force(settings: Settings, path: Path) -> None:
    """:class:`InForceAlready` if ``path`` holds the model in force as it was put there (not the
    shipped one standing in for a model lost, :func:`lost_in_force`: putting it in force mends that).
    `model use default` of the shipped model in force said "model in force is now ...", as if it had
    changed, and added another line for it to the history. Judged by content: a copy of the model in
    force kept elsewhere (a backup, a download of the same file) was put in force as a new model,
    another file in the models folder and another history line, for the same model."""
    now = model_in_force(settings)
    if now is not None and _same_file(now, path) and not lost_in_force(settings):
        raise InForceAlready(now)


def _same_file(one: Path, other: Path) -> bool:
    """Do both paths hold the same bytes (the same file, or a copy)? Sizes first: a model is megabytes."""
    if one.resolve() == other.resolve():
        return True
    try:
        return one.stat().st_size == other.stat().st_size and file_hash(one) == file_hash(other)
    except OSError:  # not there or not a file: `use` says so as it loads it
        return False


def use(settings: Settings, choice: str) -> Path:
    """Put ``default`` (the shipped model) or a model FILE in force; returns the file now in force.

    A file from elsewhere is checked, then copied into the models folder first, so the model in
    force never depends on a file the user may move or delete. Called holding the retrain lock
    (``model_change.put_in_force``). The model in force already: :class:`InForceAlready`.
    """
    _pinned(settings)
    if choice == DEFAULT:
        shipped = shipped_model()
        if shipped is None:
            raise ModelError("this build of facesortd ships no model; name a model FILE instead")
        _not_in_force(settings, shipped)
        adopt(settings, shipped)
        return shipped
    path = Path(choice).expanduser()
    _not_in_force(settings, path)
    load_model(path)  # a broken or foreign file is refused before it can be put in force
    if path.parent.resolve() != models_dir(settings).resolve():
        path = _kept_already(settings, path) or _copied_in(settings, path)
    adopt(settings, path)
    return path


def _kept_already(settings: Settings, path: Path) -> Path | None:
    """The model in the models folder holding ``path``'s bytes, if one does: `model use` of a copy
    kept elsewhere (a backup, a download of a model made here) copied it in once more, a second
    file and a second line in `facesortd model` for one model."""
    return next((model for model in user_models(settings) if _same_file(model, path)), None)


def _copied_in(settings: Settings, path: Path) -> Path:
    """``path`` copied into the models folder, with its validation set, which travels with its
    model (retrains are judged on it too)."""
    copy = save_new_model(settings, lambda dest: _copy(path, dest), locked=True)
    if validation_path(path).is_file():
        try:
            _copy(validation_path(path), validation_path(copy))
        except BaseException:  # no copy without it, which a try again would put in force as it is
            copy.unlink()
            raise
    return copy


def _copy(src: Path, dest: Path) -> None:
    with atomic_writer(dest) as fh, src.open("rb") as data:
        shutil.copyfileobj(data, fh)


@dataclass(frozen=True)
class ModelEntry:
    """One model of the history, as `facesortd model` lists it."""

    path: Path
    in_force: bool
    info: dict[str, object]


def history(settings: Settings) -> list[ModelEntry]:
    """Every model the user has (oldest first), plus the shipped one, marking the one in force."""
    current = model_in_force(settings)
    paths = user_models(settings)
    shipped = shipped_model()
    if shipped:
        paths = [shipped, *paths]
    entries = []
    for path in paths:
        try:
            info = model_info(path)
        except ModelError as exc:
            info = {"error": str(exc)}
        entries.append(ModelEntry(path, current is not None and path == current, info))
    return entries


def last_retrain(settings: Settings) -> tuple[str, str] | None:
    """(when, what was decided) for the newest retrain, adopted or rejected; None if none yet. One
    adopted but not in force now says so: rolled back since, or its retrain killed before it was put
    in force, "adopted" stood under another "model in force" (the shipped one) unexplained."""
    folder = models_dir(settings)
    made = sorted(
        [*folder.glob("*" + MODEL_SUFFIX), *folder.glob(f"{REJECTED_DIR}/*{MODEL_SUFFIX}")],
        key=made_order,
    )
    for path in reversed(made):
        try:
            info = model_info(path)
        except ModelError:
            continue
        if info.get("decision"):
            aside = " (not in force now)" if info.get("adopted") and path != model_in_force(settings) else ""
            return str(info.get("created", "?")), str(info["decision"]) + aside
    return None


def rollback(settings: Settings) -> Path:
    """Put back the model that was in force before this one, down to the shipped model.

    Steps back through ``adopted`` (skipping entries whose file is gone or unreadable); raises ModelError when
    the shipped model is already in force.
    """
    _pinned(settings)
    with models_lock(settings.state_dir):
        return _roll_back(settings)


def _roll_back(settings: Settings) -> Path:
    current = model_in_force(settings)
    # The pointer's name even where its file is gone or damaged (the shipped model used meanwhile):
    # that is the model rolled back from, and the shipped one may be what to go back to.
    current_name = pointer(settings) or (name_of(settings, current) if current is not None else None)
    log = adopted(settings)
    while log and (log[-1] == current_name or usable(settings, log[-1]) is None):
        log.pop()
    if not log:
        if current_name == DEFAULT:
            raise ModelError("the shipped model is in force already; there is no earlier model to go back to")
        if shipped_model() is None:
            raise ModelError("there is no earlier model to roll back to")
        log = [DEFAULT]
    target = resolve(settings, log[-1])
    assert target is not None, "entries whose file is gone were dropped above"
    # The history first: a crash between the two writes leaves the model rolled back from in force
    # with its line dropped, and the next rollback goes to the same target.
    write_history(settings, log)
    _point_to(settings, log[-1])
    return target
