"""What every command group uses: the settings a command runs with, the detector and pipeline, the
usage error, the words said while another holds the retrain lock."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from pathlib import Path

from loguru import logger

from facesortd.advice import advised
from facesortd.cli.stopping import say
from facesortd.config import (
    ConfigError,
    Settings,
    cannot_create,
    folders_in_the_way,
    folders_overlap,
    load_settings,
)
from facesortd.decide import Pipeline
from facesortd.detect import FaceDetector
from facesortd.ensemble import Model
from facesortd.model_change import Change
from facesortd.model_store import InForce, load_in_force, models_dir
from facesortd.mounts import nearest_existing
from facesortd.refusals import write_refused


class UsageError(Exception):
    """Arguments a command cannot act on: options that do not go together, a time or file naming nothing."""


class SaidAbove(Exception):
    """``error``, which the command's own output has shown where its error line would go (`status`'s
    PROBLEM line, stdout and stderr one terminal): the command ends with its exit status, the line
    not said a second time."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def settings_for(args: argparse.Namespace, **overrides: object) -> Settings:
    """The config file named by --config (or the default one), with a command's own overrides."""
    settings = load_settings(args.config, **overrides)
    if in_the_way := folders_in_the_way(settings):
        raise ConfigError(next(iter(in_the_way.values())))
    return settings


def make_folder(name: str, folder: Path) -> None:
    """Make the inbox or library if missing (`run`, a bare `sort`). One that cannot be made (under a
    folder of another user, or of a file) ended both in a traceback, and `run` under systemd was
    started again into it every few seconds; it is said as `doctor` says it, as a setting to fix."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(cannot_create(name, folder, nearest_existing(folder), exc.strerror)) from exc


def refuse_overlap(settings: Settings, named: Iterable[Path] = (), configured: Path | None = None) -> None:
    """`run` and `sort` refuse an inbox and library that overlap (the rule: config.folders_overlap)."""
    if overlap := folders_overlap(settings, named, configured):
        raise ConfigError(overlap)


def refuse_pictures_into_facesortds(settings: Settings, option: str, folder: Path) -> None:
    """Pictures a command writes (`detect --draw`, `train --report`, `eval --plots`) in the inbox were
    sorted by the daemon as screenshots, in an emotion folder of the library taken for labels."""
    where = folder.resolve()
    for name in ("inbox", "library"):
        mine = getattr(settings, name)
        if where.is_relative_to(mine.resolve()):
            raise UsageError(
                f"{option} {folder} is in facesortd's {name} {mine}, where the pictures written would be "
                "taken for screenshots of yours (sorted, or labels): name a folder outside it"
            )


def face_detector(settings: Settings) -> FaceDetector:
    """The detector every command that looks at images uses (one name for the tests to replace)."""
    return FaceDetector(settings.detection)


def emotion_model(settings: Settings) -> InForce:
    """The model in force, or None with a warning that every face will be 'unsure' (`sort`, `detect`),
    with how the journal knows it."""
    model = load_in_force(settings)
    if model.model is None:
        logger.warning(
            "no emotion model yet: every face will be 'unsure' (train one with `{}`)", advised("train")
        )
    return model


def pipeline_for(settings: Settings, model: Model | None) -> Pipeline:
    """One image's way from pixels to a decision, with the detector above (one per worker thread)."""
    return Pipeline.for_settings(settings, model, face_detector(settings))


def model_changed(settings: Settings, change: Callable[[], Change]) -> Change:
    """``change`` of the model in force made, or the folder that refused its files said with the fix
    (exit 1): a full or read-only state disk ended `model use`, `model rollback` and `train
    --activate` in a traceback. Nothing is half made: each file is written whole aside first, and the
    model in force stays as it was."""
    try:
        return change()
    except OSError as exc:
        raise write_refused(exc, models_dir(settings)) from exc


def say_waiting(words: str) -> None:
    """`model`, `train --activate` and `retrain` wait for a retrain (or a change of the model in force)
    running now: said at once (flushed), or a person sees a command hang without a word."""
    say(words, flush=True)
