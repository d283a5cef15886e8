"""Every knob facesortd has, its default and its validation, in one schema.

Settings come from (highest priority first): command-line overrides, ``FACESORTD_*`` environment
variables (nested keys joined by ``__``, e.g. ``FACESORTD_DETECTION__SCALE_FACTOR=1.2``), the TOML
file (``--config``, else ``$XDG_CONFIG_HOME/facesortd/config.toml``), then the defaults below.
``config.example.toml`` mirrors this file (`facesortd config --example` prints it); a test keeps the
two in step.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tomllib
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from facesortd import DEFAULT_MAX_PIXELS
from facesortd.durable import open_regular
from facesortd.image_names import IMAGE_SUFFIXES
from facesortd.quarantine import QUARANTINE_DIR, names_an_emotion
from facesortd.shown_names import one_line
from facesortd.spelling import nearest

LogLevel = Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
AdoptMetric = Literal["balanced_accuracy", "sorted_right"]
"""The figures a retrained model can be judged by (computed by ``Evaluation.score``)."""
LARGEST_SIDE = 1 << 20
"""No image OpenCV reads is wider or taller (its CV_IO_MAX_IMAGE_WIDTH): a face side beyond it reached
detectMultiScale as a number it refused, and every file was quarantined as "unreadable"."""
LONGEST_WAIT_S = 366 * 24 * 3600.0
"""The longest wait a setting may ask for, a year: threads' timers and the clock refuse values near
infinity (a polling observer given 1e308 died, and the daemon saw no new file), and a longer wait is
no different from never."""


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def config_home() -> Path:
    """``$XDG_CONFIG_HOME/facesortd``: where the user's config file lives."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "facesortd"


def state_home() -> Path:
    """``$XDG_STATE_HOME/facesortd``: journal, user-trained models, face crops kept for retraining."""
    return _xdg("XDG_STATE_HOME", ".local/state") / "facesortd"


def pictures_home() -> Path:
    """The user's pictures folder, where the default inbox and library go.

    ``$XDG_PICTURES_DIR`` if set; else ``~/Pictures`` if facesortd's folders are already there (a
    user of a version that ignored user-dirs.dirs must not find their folders abandoned); else the
    folder the desktop names in ``$XDG_CONFIG_HOME/user-dirs.dirs`` (``~/Bilder`` on a German one);
    else ``~/Pictures``.
    """
    named = os.environ.get("XDG_PICTURES_DIR")
    if named and os.path.isabs(named):
        return Path(named)
    english = Path.home() / "Pictures"
    if (english / "facesortd").exists():
        return english
    return _user_dirs_pictures() or english


DEFAULT_FOLDERS = (
    "by default the inbox is ~/Pictures/facesortd/inbox and the library ~/Pictures/facesortd/library "
    "(in the desktop's own pictures folder, such as ~/Bilder, unless ~/Pictures/facesortd exists), and "
    "the state folder (journal, models, kept face crops) ~/.local/state/facesortd ($XDG_STATE_HOME/"
    "facesortd if that is set)"
)
"""Where :func:`pictures_home` and :func:`state_home` put the folders when nothing is configured, in
words for `--help` (`facesortd`'s and `run`'s)."""


_USER_DIRS_LINE = re.compile(r'^\s*XDG_PICTURES_DIR\s*=\s*"(\$HOME/[^"]*|/[^"]*)"\s*$', re.MULTILINE)


def _user_dirs_pictures() -> Path | None:
    """The pictures folder named in ``user-dirs.dirs`` (written by xdg-user-dirs-update), or None
    when the file is missing, unreadable or names none in the form the XDG spec allows
    (``"$HOME/…"`` or ``"/…"``); ``"$HOME/"`` alone means the desktop has no pictures folder. Read
    only if a regular file: a FIFO in its place (a dotfile tool's, a prank) hung every command,
    which all work out the default folders, `doctor` and `status` included."""
    try:
        with open_regular(_xdg("XDG_CONFIG_HOME", ".config") / "user-dirs.dirs") as fh:
            text = fh.read().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = _USER_DIRS_LINE.findall(text)
    if not found:
        return None
    value = found[-1]  # the file is shell: a later assignment wins
    if value.startswith("$HOME/"):
        value = value.removeprefix("$HOME/").strip("/")
        return Path.home() / value if value else None
    return Path(value)


GATE_SHIPPED = "shipped"
"""detection.gate's name for the gate shipped with facesortd (cascade_classifier/, beside the cascade)."""
GATE_NAMES = (GATE_SHIPPED, "off")
"""The words detection.gate takes besides a file's path."""
GATE_TRADE = (
    "about half of `sort`'s CPU on busy pictures and a fifth of a 1080p screenshot's detection time "
    "saved, at about one face in a hundred of unseen artists' art missed "
    '(README.md, "Faster sorting, at a cost")'
)
"""What the shipped gate saves and costs, for the key's description and `doctor` (figures:
README.md, "Performance", measured as cascade_classifier/README.md says)."""


MODEL_FIX = (
    "set recognition.model to a facesortd model file (*.fsm.npz), or leave it unset for the model put "
    "in force (`facesortd model` lists them)"
)
"""What to do about a model file that cannot be read (one pinned by recognition.model: the model put
in force falls back to the shipped one instead). `doctor` advised "fix or remove it" of a file that
did not exist, and removing a damaged one left the setting naming nothing."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def home_expanded(path: Path) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded, as every file and folder setting is read
    (a cascade, verifier or gate file written "~/…" was looked for in a folder named "~"). A user
    without a home, or a NUL in the name, which no file name holds, is a ValueError saying which:
    both ended every command in a traceback."""
    if "\0" in str(path):
        raise ValueError("a NUL character, which no file or folder name can hold")
    try:
        return path.expanduser()
    except RuntimeError:
        user = path.parts[0][1:]
        raise ValueError(f"there is no user {user!r}, whose home ~{user} would be") from None


def _home_expanded(value: Any) -> Any:
    """:func:`home_expanded` for a setting: each path of a list, none for a word or None."""
    if isinstance(value, list):
        return [_home_expanded(v) for v in value]
    if not isinstance(value, Path):
        return value
    try:
        return home_expanded(value)
    except ValueError as exc:
        raise PydanticCustomError("path", str(exc)) from None


class DetectionSettings(_Section):
    """How faces are found. scale_factor, min_neighbors and min_size decide the yield."""

    cascades: list[Path] = Field(
        default_factory=list,
        description="Cascade XML files to run; their boxes are merged. Empty: the shipped cascade.",
    )
    scale_factor: float = Field(1.1, gt=1.0, le=2.0, description="Step between detection scales.")
    min_neighbors: int = Field(
        1,
        ge=0,
        le=50,
        description="Overlapping hits a box needs to count. 1 suits the shipped cascade with the verifier, "
        "which rejects what the loose grouping lets through (figures: cascade_classifier/README.md).",
    )
    min_size: int = Field(
        30, ge=8, le=LARGEST_SIDE, description="Smallest face side in pixels of the original image."
    )
    min_size_share: float = Field(
        0.08,
        ge=0.0,
        le=0.5,
        description="Smallest face side as a share of the image's shorter side (the larger of this and "
        "min_size applies). A reaction face is the subject of its picture: every seed face is at least 9 % "
        "of the shorter side. Skipping smaller ones makes a 1080p screenshot ~25 % faster.",
    )
    max_side: int = Field(
        640,
        ge=128,
        le=LARGEST_SIDE,
        description="Images are shrunk to this longest side for detection (boxes mapped back).",
    )
    equalize: bool = Field(True, description="Equalise the histogram before detection.")
    close_ups: bool = Field(
        True,
        description="Also search a shrunk copy with a border for faces that fill the frame or are cut by "
        "it (held-out recall 0.96 vs 0.87; about 10 ms per image).",
    )
    cut_faces: bool = Field(
        True,
        description="Also search a half-size copy with a thin border for faces of 15-45 % of the shorter "
        "side cut by the frame (held-out-source scenes: recall 0.93 with it, 0.905 without; about 7 ms per "
        "1080p screenshot, 20-25 ms on busy pictures).",
    )
    nms_iou: float = Field(0.3, ge=0.0, le=1.0, description="Boxes overlapping more than this are merged.")
    min_score: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Faces scoring below this (0..1) are dropped as non-faces. With the verifier the score "
        "is its calibrated face probability; without it, a squashed cascade stage sum.",
    )
    lone_window_score: float = Field(
        0.95,
        ge=0.0,
        le=1.0,
        description="A cascade window that grouping drops for having no neighbours (often a face cut by the "
        "frame) still counts as a face if the verifier gives it at least this probability; 1 turns this off "
        "(figures: cascade_classifier/README.md).",
    )
    verify: bool = Field(True, description="Re-check every cascade box with the face/non-face verifier.")
    verifier: Path | None = Field(
        None, description="Verifier file. Unset: the verifier shipped with facesortd."
    )
    gate: Literal["shipped"] | Path | None = Field(
        None,
        description="A small net that marks where the cascade's full-size pass looks, to save its time: "
        '"shipped" (the gate shipped with facesortd), a gate file (.npz from `python -m '
        "facesortd.cascade_train gate`), or off/unset: the cascade scans everywhere (the default). "
        f"The shipped gate: {GATE_TRADE}",
    )

    @field_validator("gate", mode="before")
    @classmethod
    def _gate_named(cls, value: object) -> object:
        """``off`` (or empty) in a config file or environment variable means no gate. A bare word
        (no folder, no suffix) is a gate's name, not a file in whatever folder facesortd was started
        in: a misspelt ``shipped`` said "file not found" only when detection started, or ran
        without the gate the user asked for had such a file been there."""
        if not isinstance(value, str | Path):
            return value
        word = str(value).strip()
        if word.lower() in ("", "off", "none"):
            return None
        if word.lower() == GATE_SHIPPED:
            return GATE_SHIPPED
        if "/" in word or Path(word).suffix or word.startswith("~"):
            return value
        meant = nearest(word.lower(), GATE_NAMES)
        raise PydanticCustomError(
            "gate_name",
            "no gate is named so ({guess}the names: {names}); a gate file is named by its path, "
            "with a / or its .npz",
            {"guess": f"did you mean {meant}? " if meant else "", "names": ", ".join(GATE_NAMES)},
        )

    _files_expanded = field_validator("cascades", "verifier", "gate", mode="after")(_home_expanded)


class RecognitionSettings(_Section):
    """How emotions are predicted and when a prediction is trusted."""

    model: Path | None = Field(
        None,
        description="Emotion model file; set, it pins the model (retrains and rollback do not change it). "
        "Unset: the model "
        "put in force (`train --activate`, `model use`, an adopted retrain), else the shipped one.",
    )
    threshold: float = Field(
        0.72,
        ge=0.0,
        le=1.0,
        description="Confidence (0..1) a face needs to be sorted; below it: unsure. Confidences are "
        "calibrated on art the model never saw; the shipped model is rarely that sure of unseen art and "
        "leaves such files to review (facesortd/data/README.md).",
    )
    multi_face: Literal["largest", "agree"] = Field(
        "largest",
        description="Several faces: 'largest' lets the biggest face decide; 'agree' sorts only when every "
        "confident face has the same emotion (else quarantine 'mixed').",
    )

    _model_expanded = field_validator("model", mode="after")(_home_expanded)


MAX_WORKERS = 16
"""Workers at the most (watch.workers, `sort --workers`): each holds a pipeline of its own (its
detectors, some MB), all made before the first file."""


class WatchSettings(_Section):
    """How the daemon notices new files in the inbox."""

    recursive: bool = Field(False, description="Also watch sub-folders of the inbox.")
    polling: bool = Field(
        False,
        description="Poll instead of inotify: needed for NFS/SMB inboxes, whose changes inotify misses.",
    )
    poll_interval_s: float = Field(
        1.0, gt=0.0, le=LONGEST_WAIT_S, description="How often the polling observer looks (seconds)."
    )
    settle_s: float = Field(
        0.25,
        ge=0.0,
        le=LONGEST_WAIT_S,
        description="A file must keep its size and mtime this long (seconds) before it is read.",
    )
    unreadable_settle_s: float = Field(
        10.0,
        ge=0.0,
        le=LONGEST_WAIT_S,
        description="An unreadable file (truncated, not an image) changed less than this long ago"
        " (seconds) is looked at again later, not quarantined: its writer may add to it in chunks.",
    )
    rescan_interval_s: float = Field(
        300.0,
        ge=0.0,
        le=LONGEST_WAIT_S,
        description="Rescan the inbox this often (seconds) for anything events missed; 0: never.",
    )
    extensions: list[str] = Field(
        default_factory=lambda: list(IMAGE_SUFFIXES),
        description="File name endings that are sorted, each with its dot (.png); anything else in the "
        "inbox is left alone.",
    )
    ignore: list[str] = Field(
        default_factory=lambda: [".*", "*.part", "*.crdownload", "*.tmp", "*.download", "~*"],
        description="Name patterns never touched: hidden files, downloads and temp files in progress.",
    )
    workers: int = Field(2, ge=1, le=MAX_WORKERS, description="Files classified in parallel.")
    duplicates: Literal["keep", "quarantine"] = Field(
        "keep",
        description="Content already sorted before: keep (sort it again) or quarantine (as duplicate).",
    )

    @field_validator("extensions", mode="after")
    @classmethod
    def _endings(cls, value: list[str]) -> list[str]:
        """Each is compared with a name's last ending, dot included: "png" (or an empty list) matched no
        file, so nothing was ever sorted while `doctor` said all was well."""
        if not value or any(not e.startswith(".") or len(e) < 2 or "." in e[1:] for e in value):
            raise PydanticCustomError(
                "endings", 'give at least one name ending, each with its one dot, such as ".png"'
            )
        return value


class LearningSettings(_Section):
    """How reviewed files become training data and when the model is retrained."""

    retrain_after_labels: int = Field(20, ge=1, description="Retrain once this many new labels arrived.")
    retrain_interval_h: float = Field(
        24.0,
        ge=0.0,
        le=LONGEST_WAIT_S / 3600,
        description="Fewer new labels than retrain_after_labels are learnt from once the first of them has "
        "waited this long (hours); 0: only by count.",
    )
    min_per_class: int = Field(5, ge=1, description="Labels a new emotion needs before it becomes a class.")
    user_weight: float = Field(
        10.0, gt=0.0, description="How much one of your labels counts vs a bootstrap face."
    )
    correction_weight: float = Field(
        2.0, ge=1.0, description="Extra factor for corrections (a sorted file you moved to another emotion)."
    )
    adopt_metric: AdoptMetric = Field(
        "balanced_accuracy",
        description="What a new model is judged by: balanced_accuracy (mean recall over emotions) or "
        "sorted_right (share of held-out faces auto-sorted into the right folder at the threshold).",
    )
    max_drop: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="On the labels the model in force has not learnt (each scored by a new model trained "
        "without it) a new model may score at most this much below the current one.",
    )
    max_coverage_drop: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="On each held-out set a new model may auto-sort at most this share of faces fewer than "
        "the current one at the threshold (0.05: five points), whatever its balanced accuracy.",
    )
    min_sorted_right: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="On each held-out set with labels, the faces a new model auto-sorts at the threshold "
        "must be right at least this often, unless too few to tell; unset: as often as "
        "recognition.threshold promises; 0: not checked.",
    )
    bootstrap_max_drop: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="The same limit on the validation set held out by `facesortd train` (if there is one); "
        "looser, since your labels are meant to pull the model towards your screenshots.",
    )
    reexamine_unsure: bool = Field(
        True,
        description="When the model in force changes (a retrain, `model use`, `model rollback`), the "
        "daemon sorts the unsure files the new model is sure of.",
    )
    review_scan_s: float = Field(
        30.0, gt=0.0, description="How often (seconds) the daemon looks for files you moved in the library."
    )


class ImageLimits(_Section):
    """Guards against files that would exhaust memory (decompression bombs, huge files)."""

    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="Images with more pixels are 'unreadable'.")
    max_bytes: int = Field(200_000_000, ge=1, description="Files larger than this are 'unreadable'.")


ENV_PREFIX = "FACESORTD_"
"""What the environment variables that set facesortd's settings begin with (whatever their case)."""


def is_setting_variable(name: str) -> bool:
    """Whether the environment variable ``name`` is one of facesortd's (read whatever its case)."""
    return name.upper().startswith(ENV_PREFIX)


class Settings(BaseSettings):
    """The whole configuration of facesortd."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    inbox: Path = Field(
        default_factory=lambda: pictures_home() / "facesortd" / "inbox",
        description="Folder that new screenshots are dropped into.",
    )
    library: Path = Field(
        default_factory=lambda: pictures_home() / "facesortd" / "library",
        description="Sorted files go to <library>/<emotion>/, the rest to <library>/_quarantine/<reason>/.",
    )
    state_dir: Path = Field(default_factory=state_home, description="Journal, models and kept face crops.")
    log_level: LogLevel = "INFO"
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    recognition: RecognitionSettings = Field(default_factory=RecognitionSettings)
    images: ImageLimits = Field(default_factory=ImageLimits)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        """`--log-level debug` is taken in any case; ``log_level = "debug"`` in the config file (or
        FACESORTD_LOG_LEVEL=debug) was refused, and with it every command and the daemon's start."""
        return value.upper() if isinstance(value, str) else value

    @field_validator("inbox", "library", "state_dir", mode="before")
    @classmethod
    def _named(cls, value: object) -> object:
        """An empty name was Path(""), the folder the command ran in: with `inbox = ""` (or an
        exported empty FACESORTD_INBOX) a daemon started from ~ sorted the pictures of the home folder."""
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError(
                "empty_folder", "empty: name a folder, or leave it unset for the default"
            )
        return value

    @field_validator("inbox", "library", "state_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Absolute, so the journal's paths mean the same whatever the working directory.
        return _home_expanded(value).absolute()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _TOML_FILE.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings]
        if _ENVIRONMENT.get():
            sources.append(env_settings)
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


_TOML_FILE: ContextVar[Path | None] = ContextVar("facesortd_toml_file", default=None)
_ENVIRONMENT: ContextVar[bool] = ContextVar("facesortd_environment", default=True)
"""False while :func:`environment_folders` asks what the settings are without the FACESORTD_* variables."""


class ConfigError(Exception):
    """A configuration problem a user can fix; the message says what and how."""


FOLDERS = ("inbox", "library", "state_dir")
"""The settings that name a folder facesortd makes if missing and works in."""


def folders_in_the_way(settings: Settings) -> dict[str, str]:
    """Each folder setting whose path something else sits at (:func:`not_a_folder`), with why: every
    command refuses to run with one (`status` shows what it can beside it)."""
    return {name: problem for name in FOLDERS if (problem := not_a_folder(name, getattr(settings, name)))}


def not_a_folder(name: str, folder: Path) -> str | None:
    """Why the folder setting ``name`` cannot be used because something else sits at its path, or None.

    Every command would trip over it (`run` and `sort` at their first mkdir, each file of a sort
    in turn), so the commands refuse it up front, with the fix, like a bad value in the config. So
    does a part of its path that is not a folder (`--library /dev/null/x`: each file of a `sort`
    failed, with advice to move /dev/null away); moving it is advised only for a file of this user.
    """
    from facesortd.refusals import in_the_way, yours_to_move  # refusals is below config

    blocker = in_the_way(folder)
    if blocker is None:
        return None
    if blocker.is_symlink() and not blocker.exists():
        # Nothing can be made there: each file of a `sort` failed, said to be under "a file, not a
        # folder"; a link that loops was a traceback. One onto a drive not mounted now: that
        # refusal says it.
        if not (leads := _link_leads_nowhere(blocker)):
            return None
        link = f"{folder} is" if blocker == folder else f"{folder}: {blocker}, a part of its path, is"
        return f"{name} {link} a symbolic link to {os.readlink(blocker)}, {leads} point {name} at a folder"
    move = f", or move {'that file' if blocker == folder else blocker} away" if yours_to_move(blocker) else ""
    part = "" if blocker == folder else f" ({blocker}, a part of its path, is not a folder)"
    return f"{name} {folder} is not a folder{part}: point {name} at a folder{move}"


def _link_leads_nowhere(link: Path) -> str:
    """Why the link ``link`` leads to no folder facesortd could use or make ("" if it may): it loops,
    or what it names does not exist (unless on a drive not mounted now, which that refusal says)."""
    from facesortd.mounts import drive_not_mounted  # mounts is below config

    try:
        link.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "which loops:"
        if drive_not_mounted(link) is None:
            return "which does not exist: make that folder, or"
    return ""


def cannot_create(name: str, folder: Path, parent: Path, why: str | None = None) -> str:
    """Why the folder setting ``name`` cannot be made (in ``parent``, the nearest folder that exists),
    with the fix: `doctor` says it beforehand, `run` and a bare `sort` when their mkdir is refused."""
    why = f" ({why})" if why else ""
    return f"{name} {folder} cannot be created in {parent}{why}: set {name} in the config"


def nested(one: Path, other: Path) -> bool:
    """Is one of two resolved folders the other, or inside it (reading or writing one touches the other)?"""
    return one.is_relative_to(other) or other.is_relative_to(one)


def folders_overlap(
    settings: Settings, named: Iterable[Path] = (), configured: Path | None = None
) -> str | None:
    """Why the inbox and library cannot be used together, or None.

    One inside the other (or the same folder) cannot work: the library's folders are read as a
    person's labels, so files waiting in an inbox inside it would be taken as labelled with the
    inbox's name, and a library inside the inbox is a folder the daemon was told to empty.
    ``named``: the folders `sort` was given in the inbox's place. The library itself is refused (its
    own files would be moved about it); a folder inside it is not: sorting a quarantine folder again
    is how a person re-sorts its files. A state folder holds the face crops kept for retraining:
    in the inbox the daemon (with watch.recursive) took them for screenshots and sorted them away,
    and as the library its ``faces/`` was read as a person's folder of "faces" labels. One below a
    name the daemon leaves alone (the default ~/.local/state under an inbox of ~) is apart.
    ``configured``: the config's library, where `sort --library` named another. One inside its
    emotion folders or quarantine is refused: `train` reads an emotion folder's files at any depth,
    so the files sorted into ``<library>/happy/sad/`` were learnt as "happy".
    """
    from facesortd.watch import ignored  # watch reads its settings from here

    inbox, library = Path(os.path.realpath(settings.inbox)), Path(os.path.realpath(settings.library))
    if nested(inbox, library):
        return (
            f"inbox {inbox} and library {library} overlap: keep them as separate folders (set inbox "
            "or library in the config, or give `sort` another --library)"
        )
    if configured is not None and (labelled := _labelled_folder(library, Path(os.path.realpath(configured)))):
        return (
            f"library {library} is in {labelled.name}/ of the library {configured}, whose files there are "
            "read as labels (or reviewed): give `sort` a --library outside it"
        )
    state_dir = Path(os.path.realpath(settings.state_dir))
    for name, folder in (("inbox", inbox), ("library", library)):
        below = state_dir.relative_to(folder).parts if state_dir.is_relative_to(folder) else None
        if below is not None and not any(ignored(part, settings.watch) for part in below):
            return (
                f"state_dir {state_dir} is inside the {name} {folder}: keep it apart (its face crops would "
                "be taken for screenshots or labels): move it elsewhere and set state_dir in the config"
            )
    for name, folder in (("inbox", inbox), ("library", library)):
        if own := next((o for o in _state_folders(state_dir) if folder.is_relative_to(o)), None):
            # `sort --library <state_dir>/review/thumbs`: the review page's start deleted the sorted
            # screenshots there as thumbnails of files gone from the quarantine
            return (
                f"the {name} {folder} is inside {own}, a folder of facesortd's state folder whose files "
                f"facesortd removes and replaces as its own: keep the {name} apart (set {name} in the "
                "config, or give `sort` another --library)"
            )
    for folder in named:
        # realpath: a link that loops (`sort loop.png`, loop.png -> loop.png) is for `sort` to say it
        # skipped, where Path.resolve raised "Symlink loop" as a traceback
        if Path(os.path.realpath(folder)) == library:  # no stat: one it may not enter is said by `sort`
            return (
                f"{folder} is the library {library}: name the folder of screenshots to sort, or a "
                "folder inside the library (such as _quarantine/unsure) to sort its files again"
            )
    return None


def _labelled_folder(folder: Path, library: Path) -> Path | None:
    """The emotion folder or quarantine of ``library`` (both resolved) that ``folder`` lies in, or None."""
    if folder == library or not folder.is_relative_to(library):
        return None
    top = folder.relative_to(library).parts[0]
    return library / top if top == QUARANTINE_DIR or names_an_emotion(top) else None


def _state_folders(state_dir: Path) -> list[Path]:
    """The state folder's own folders, whose files facesortd writes, prunes and removes (models, face
    crops, the review page's pictures); a person's folders beside them are theirs."""
    from facesortd.state import FACES_DIR, MODELS_DIR, REVIEW_DIR  # state reads no settings

    return [state_dir / name for name in (MODELS_DIR, FACES_DIR, REVIEW_DIR)]


def fingerprint(settings: Settings) -> str:
    """A digest of every setting. The daemon reads its settings once, when it starts, and publishes
    this beside its status; `status` compares it with its own, so that a person who changed the
    config is told it is not in force yet, rather than shown a threshold the daemon does not use."""
    return hashlib.sha256(settings.model_dump_json().encode()).hexdigest()[:16]


def default_config_file() -> Path:
    return config_home() / "config.toml"


def config_option(config: Path | None) -> list[str]:
    """``--config FILE`` for a command facesortd advises or installs, as this one was given it
    (absolute: the service and the person run it from other folders), or nothing: without it that
    command read the default config, and watched another inbox."""
    return ["--config", str(config.expanduser().absolute())] if config else []


EXAMPLE = "every key is optional; `facesortd config --example` prints each with its default"
"""Where the keys are written down. The messages said "see config.example.toml", which `pip install`
and pipx did not install: a user of the installed command looked for it in vain. It is package data
now, printed by a command that works wherever facesortd does."""


def load_settings(config_file: Path | None = None, *, environment: bool = True, **overrides: Any) -> Settings:
    """Build Settings from overrides, environment (unless ``environment`` is False), TOML file and defaults.

    An explicitly named file must exist; the default one is optional. Every problem becomes a
    ConfigError naming the key, the value and what was expected, so the CLI never shows a traceback.
    """
    explicit = config_file is not None
    try:
        path = home_expanded(Path(config_file)) if explicit else default_config_file()
    except ValueError as exc:
        raise ConfigError(f"config file {one_line(config_file)}: {exc}") from None
    if path.exists() and not path.is_file():  # the default path too: else passed over in silence
        raise ConfigError(f"config file {path} is not a file: name a TOML file ({EXAMPLE})")
    if explicit and not path.is_file():
        raise ConfigError(
            f"config file {path} does not exist: write it, or leave out --config for the built-in "
            f"defaults ({EXAMPLE})"
        )
    if path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
            _refuse_relative_folders(tomllib.loads(text), path)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the config file {path} ({exc.strerror}): chmod u+r '{path}'"
            ) from exc
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            # TOML allows no byte order mark, and the error points at a first line that looks right.
            bom = isinstance(exc, tomllib.TOMLDecodeError) and text.startswith("\ufeff")
            fix = " (it starts with a byte order mark: save it as UTF-8 without BOM)" if bom else ""
            raise ConfigError(f"config file {path} is not valid TOML: {exc}{fix}") from exc
    if environment and (unknown := _unknown_variables()):
        raise ConfigError("\n".join(["invalid configuration (from FACESORTD_* variables):", *unknown]))
    token, with_environment = _TOML_FILE.set(path if path.is_file() else None), _ENVIRONMENT.set(environment)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path if path.is_file() else None)) from exc
    except SettingsError as exc:
        raise ConfigError(_not_json(exc)) from exc
    finally:
        _TOML_FILE.reset(token)
        _ENVIRONMENT.reset(with_environment)


def environment_variable(name: str) -> str:
    """The FACESORTD_* variable that sets the setting ``name`` (``FACESORTD_STATE_DIR``)."""
    return f"{ENV_PREFIX}{name.upper()}"


def environment_folders(config_file: Path | None) -> dict[str, Path]:
    """The folders (of :data:`FOLDERS`) that FACESORTD_* variables make other than the config file, or
    the default, names: a daemon's unit may set them (``Environment=FACESORTD_LIBRARY=...``), the
    terminal of the person it advises a command does not, and a command typed there acts on another
    library. Nothing when the settings cannot be read, with or without them: the command says why."""
    try:
        given, without = load_settings(config_file), load_settings(config_file, environment=False)
    except ConfigError:
        return {}
    return {name: getattr(given, name) for name in FOLDERS if getattr(given, name) != getattr(without, name)}


def _refuse_relative_folders(data: dict[str, object], path: Path) -> None:
    """The config file is read by the daemon (which systemd starts in ~) and by every command, started
    in any folder: a relative folder there was another folder for each (`$HOME/…`, as user-dirs.dirs
    writes it, a folder named "$HOME"). An option or variable is the user's own, relative to where
    they are, as in a shell."""
    for name in FOLDERS:
        value = data.get(name)
        if isinstance(value, str) and value.strip() and not value.startswith(("/", "~")):
            raise ConfigError(
                f"invalid configuration (from {path}):\n  {name} = {value!r}: not a full path, so it would "
                "be another folder for each folder facesortd is started in: write it from / or from your "
                'home folder, as "~/Pictures/…"'
            )


def _not_json(exc: SettingsError) -> str:
    """A list (or a whole section) read from a FACESORTD_* variable is JSON: a value that is not
    (FACESORTD_WATCH__EXTENSIONS=.png) ended every command in pydantic-settings' traceback, which
    names the section only."""
    field = re.search(r'field "(\w+)"', str(exc))
    prefix = f"{ENV_PREFIX}{field.group(1) if field else ''}".upper()
    named = [f"  {k} = {v!r}" for k, v in sorted(os.environ.items()) if k.upper().startswith(prefix)]
    return "\n".join(
        [
            "invalid configuration: a FACESORTD_* variable that is not JSON, as a list in one must be:",
            *named,
            """write it as JSON, e.g. FACESORTD_WATCH__EXTENSIONS='[".png", ".jpg"]'""",
        ]
    )


def _unknown_variables() -> list[str]:
    """The FACESORTD_* variables that name no setting, a line each. pydantic-settings passes over them
    in silence (a nested one, FACESORTD_WATCH__RECURSVE, it refuses), so `FACESORTD_LIBARY=~/x
    facesortd run` sorted into the config's library as if the variable were not there."""
    return [
        f"  {name} = {value!r}: unknown key{f' {key}' if key else ''}{_known_keys((key,))}"
        for name, value in sorted(os.environ.items())
        if is_setting_variable(name)
        and (key := name[len(ENV_PREFIX) :].split("__")[0].lower()) not in Settings.model_fields
    ]


def _known_keys(loc: tuple[int | str, ...]) -> str:
    """The keys that are allowed where an unknown one was written, the nearest first: the message
    pointed at config.example.toml, which `pip install` and pipx do not install, so a user of the
    installed command had nothing to check a typo against."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        section = field.annotation if field else None
        if not (isinstance(section, type) and issubclass(section, BaseModel)):
            return ""
        model = section
    known = list(model.model_fields)
    meant = nearest(str(loc[-1]), known)
    where = f"[{'.'.join(str(p) for p in loc[:-1])}]" if len(loc) > 1 else "the top level"
    guess = f"did you mean {'.'.join([*map(str, loc[:-1]), meant])}? " if meant else ""
    return f" ({guess}the keys of {where}: {', '.join(known)})"


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f" (from {f'{path}, ' if path else ''}FACESORTD_* variables or options)"
    lines = [f"invalid configuration{where}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key{_known_keys(err['loc'])}")
            continue
        lines.append(f"  {key} = {err.get('input')!r}: {err['msg']}")
    return "\n".join(lines)
