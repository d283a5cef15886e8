"""Where emotion models live, which one is in force, and the history to roll back through.

Order: ``recognition.model`` from the config, else the model named by ``<state_dir>/models/current``
(written atomically when a model is adopted or rolled back to), else the newest model file there,
else the model shipped with facesortd. One function answers that so the CLI, the daemon and
``doctor`` never disagree about the model in use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facesortd.config import Settings
from facesortd.durable import atomic_writer
from facesortd.emotion import MODEL_SUFFIX, ModelError
from facesortd.ensemble import Model, load_model, model_info
from facesortd.package_data import SHIPPED_MODEL, data_file

CURRENT = "current"
VALIDATION_SUFFIX = ".validation.npz"


def models_dir(settings: Settings) -> Path:
    return settings.state_dir / "models"


def validation_path(model: Path) -> Path:
    """Where `facesortd train` keeps the faces it held out from ``model`` (its bootstrap validation set)."""
    return model.with_name(model.name.removesuffix(MODEL_SUFFIX) + VALIDATION_SUFFIX)


def shipped_model() -> Path | None:
    """The model bundled in the package (facesortd/data/), if this build has one."""
    path = data_file(SHIPPED_MODEL)
    return path if path.is_file() else None


def user_models(settings: Settings) -> list[Path]:
    """The user's trained models, oldest first (names start with a sortable timestamp)."""
    folder = models_dir(settings)
    return sorted(folder.glob("*" + MODEL_SUFFIX)) if folder.is_dir() else []


def model_in_force(settings: Settings) -> Path | None:
    if settings.recognition.model is not None:
        return settings.recognition.model.expanduser()
    pointer = models_dir(settings) / CURRENT
    if pointer.is_file():
        named = models_dir(settings) / pointer.read_text(encoding="utf-8").strip()
        if named.is_file():
            return named
    mine = user_models(settings)
    return mine[-1] if mine else shipped_model()


def load_model_in_force(settings: Settings) -> Model | None:
    """The model to use, or None when there is none yet (every face then counts as unsure)."""
    path = model_in_force(settings)
    return None if path is None else load_model(path)


def adopt(settings: Settings, path: Path) -> None:
    """Make ``path`` (a file in the models folder) the model in force; atomic, survives crashes."""
    if path.parent.resolve() != models_dir(settings).resolve():
        raise ModelError(f"{path} is not in {models_dir(settings)}; only models there can be adopted")
    with atomic_writer(models_dir(settings) / CURRENT) as fh:
        fh.write(path.name.encode())


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
    """(when, what was decided) for the newest retrain, adopted or rejected; None if none yet."""
    folder = models_dir(settings)
    made = sorted(
        [*folder.glob("*" + MODEL_SUFFIX), *folder.glob("rejected/*" + MODEL_SUFFIX)], key=lambda p: p.name
    )
    for path in reversed(made):
        try:
            info = model_info(path)
        except ModelError:
            continue
        if info.get("decision"):
            return str(info.get("created", "?")), str(info["decision"])
    return None


def rollback(settings: Settings) -> Path:
    """Return to the model before the one in force; raises ModelError when there is none."""
    if settings.recognition.model is not None:
        raise ModelError(
            "recognition.model is set in the config, which pins the model; edit the config instead"
        )
    mine = user_models(settings)
    current = model_in_force(settings)
    if current not in mine or mine.index(current) == 0:
        raise ModelError("there is no earlier model of yours to roll back to")
    previous = mine[mine.index(current) - 1]
    adopt(settings, previous)
    return previous
