"""Where emotion models live and which one is in force.

Order: ``recognition.model`` from the config, else the newest model the user trained (in
``<state_dir>/models/``), else the model shipped with facesortd. One function answers that so the
CLI, the daemon and ``doctor`` never disagree about the model in use.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from facesortd.config import Settings
from facesortd.emotion import MODEL_SUFFIX, EmotionModel

SHIPPED_MODEL = "default_emotion" + MODEL_SUFFIX


def models_dir(settings: Settings) -> Path:
    return settings.state_dir / "models"


def shipped_model() -> Path | None:
    """The model bundled in the package (facesortd/data/), if this build has one."""
    path = Path(str(resources.files("facesortd").joinpath("data", SHIPPED_MODEL)))
    return path if path.is_file() else None


def user_models(settings: Settings) -> list[Path]:
    """The user's trained models, oldest first (names start with a sortable timestamp)."""
    folder = models_dir(settings)
    return sorted(folder.glob("*" + MODEL_SUFFIX)) if folder.is_dir() else []


def model_in_force(settings: Settings) -> Path | None:
    if settings.recognition.model is not None:
        return settings.recognition.model.expanduser()
    mine = user_models(settings)
    return mine[-1] if mine else shipped_model()


def load_model_in_force(settings: Settings) -> EmotionModel | None:
    """The model to use, or None when there is none yet (every face then counts as unsure)."""
    path = model_in_force(settings)
    return None if path is None else EmotionModel.load(path)
