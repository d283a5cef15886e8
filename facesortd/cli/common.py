"""What every command group uses: the settings a command runs with, the detector, the usage error."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from facesortd.config import FOLDERS, ConfigError, Settings, folders_overlap, load_settings, not_a_folder
from facesortd.detect import FaceDetector


class UsageError(Exception):
    """Arguments a command cannot act on: options that do not go together, a time or file naming nothing."""


def settings_for(args: argparse.Namespace, **overrides: object) -> Settings:
    """The config file named by --config (or the default one), with a command's own overrides."""
    settings = load_settings(args.config, **overrides)
    for name in FOLDERS:
        if problem := not_a_folder(name, getattr(settings, name)):
            raise ConfigError(problem)
    return settings


def refuse_overlap(settings: Settings, named: Iterable[Path] = ()) -> None:
    """`run` and `sort` refuse an inbox and library that overlap (the rule: config.folders_overlap)."""
    if overlap := folders_overlap(settings, named):
        raise ConfigError(overlap)


def face_detector(settings: Settings) -> FaceDetector:
    """The detector every command that looks at images uses (one name for the tests to replace)."""
    return FaceDetector(settings.detection)
