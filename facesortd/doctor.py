"""``facesortd doctor``: check each thing facesortd needs, and say in plain words how to fix it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from facesortd.advice import advised
from facesortd.config import (
    FOLDERS,
    GATE_SHIPPED,
    GATE_TRADE,
    MODEL_FIX,
    ConfigError,
    Settings,
    cannot_create,
    config_option,
    default_config_file,
    folders_overlap,
    load_settings,
    not_a_folder,
)
from facesortd.detect import DetectorError, FaceDetector, gate_file
from facesortd.emotion import ModelError
from facesortd.ensemble import model_info
from facesortd.journal import Journal, JournalError
from facesortd.learn.metrics import headline, near_chance
from facesortd.library import case_twins
from facesortd.model_store import (
    DEFAULT,
    adopted,
    load_model_in_force,
    lost_in_force,
    model_in_force,
    name_of,
    resolve,
)
from facesortd.mounts import (
    FOREIGN_FILESYSTEMS,
    DriveNotMounted,
    drive_not_mounted,
    drive_problem,
    filesystem_type,
    nearest_existing,
)
from facesortd.quarantine import QUARANTINE_DIR
from facesortd.refusals import Refused, list_folder
from facesortd.service_unit import facesortd_environment, masked, own_command, unit_file, unit_text
from facesortd.shown_names import one_line
from facesortd.state import JOURNAL_FILE

Check = tuple[bool, str]


def run_checks(config_file: Path | None) -> Iterator[Check]:
    """Yield (ok, message) per check; stops after a config error since nothing else can be judged."""
    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        yield False, f"configuration: {exc}"
        return
    source = config_file or (default_config_file() if default_config_file().is_file() else None)
    # Where one would go, and what to start it from: a first-time user looks here for both.
    none = (
        f"built-in defaults (no config file at {default_config_file()}; "
        "`facesortd config --example` prints one to start from)"
    )
    yield True, f"configuration: {source or none}"
    # Each folder's drive asked once (each asking reads fstab and the mount table): the state
    # folder's answer serves the journal's check too, which asked it again as it opened the journal.
    away = {name: drive_not_mounted(getattr(settings, name)) for name in FOLDERS}
    yield from _folder_checks(settings, away)
    yield _journal_check(settings, away["state_dir"])
    yield (cascade := _cascade_check(settings))
    if cascade[0]:  # else it said why detection cannot start, a gate file among the reasons
        yield _gate_check(settings)
    yield _model_check(settings)


def _folder_checks(settings: Settings, away: dict[str, DriveNotMounted | None]) -> Iterator[Check]:
    """Each folder setting (``away``: its drive's answer, :func:`drive_not_mounted`)."""
    for name in FOLDERS:
        folder = getattr(settings, name)
        yield (check := _folder_check(name, folder, away[name]))
        if name == "library" and check[0]:  # a library already said to be unusable: once is enough
            yield from _library_folder_checks(folder)
            yield from _case_twin_checks(settings)
        if check[0]:
            yield from _drive_checks(name, folder)
    inbox, library = (Path(os.path.realpath(getattr(settings, name))) for name in ("inbox", "library"))
    if overlap := folders_overlap(settings):
        yield False, overlap
    elif inbox.exists() and library.exists() and inbox.stat().st_dev != library.stat().st_dev:
        yield (
            True,
            "inbox and library are on different filesystems: files will be copied, then removed (slower)",
        )


def _drive_checks(name: str, folder: Path) -> Iterator[Check]:
    """What a folder on a drive made for Windows, or through FUSE, means (README: "A library on a
    USB drive"). A state folder there cannot be made private: the journal names every file sorted,
    and was as readable as the drive's mount options made it, without a word."""
    kind = filesystem_type(folder)
    if kind is None or not (kind.startswith("fuse") or kind in FOREIGN_FILESYSTEMS):
        return
    if kind == "fuseblk":
        kind = "fuseblk (exFAT or NTFS through FUSE)"
    if name != "state_dir":
        yield (
            True,
            f"{name} is on {kind}: names it refuses get _ for each such character, A.png and a.png "
            "may be one name, and nothing is moved while it is not mounted where it was",
        )
        return
    if os.stat(nearest_existing(folder)).st_mode & 0o077:
        yield (
            False,
            f"state_dir {folder} is on {kind}, which keeps no permissions: the journal, which names "
            "every file you sorted, is readable by other users; keep state_dir on a Linux filesystem "
            "(the default ~/.local/state/facesortd)",
        )


def _folder_check(name: str, folder: Path, away: DriveNotMounted | None) -> Check:
    if problem := drive_problem(name, away):  # `run` and `sort` refuse to start: said so
        return False, one_line(problem)
    if problem := not_a_folder(name, folder):  # a link to nowhere "does not exist yet" either
        return False, problem
    if not folder.exists():
        parent = nearest_existing(folder)
        if os.access(parent, os.W_OK | os.X_OK):
            return True, f"{name}: {folder} (does not exist yet; created on first use)"
        return False, cannot_create(name, folder, parent)
    if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        if _read_only(folder):
            return False, f"{name} {folder} is {READ_ONLY}, or set {name} to a folder on a writable one"
        return False, f"{name} {folder} is not writable by this user: fix its permissions (chmod u+rwx)"
    return True, f"{name}: {folder}"


READ_ONLY = "on a read-only filesystem: mount it writable"
"""Why a folder takes no file where chmod cannot help, which `doctor` advised for a read-only mount."""


def _read_only(folder: Path) -> bool:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def _library_folder_checks(library: Path) -> Iterator[Check]:
    """Every emotion and quarantine folder must take files: one made read-only (a file manager's
    "protect", a chmod) holds each file bound for it in the inbox, retried for ever."""
    quarantine = library / QUARANTINE_DIR
    if os.path.lexists(quarantine) and not quarantine.is_dir():  # every quarantined file would fail
        yield False, f"{quarantine} is a file, not a folder: move that file away"
    folders: list[Path] = []
    for parent in (library, quarantine):
        try:
            folders += _folders(parent)
        except Refused as exc:
            yield (
                False,
                f"{exc}; status, the review page and the label scan leave out what is in it until then",
            )
    for folder in sorted(f for f in folders if f != quarantine):
        if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
            chmod = f"fix its permissions (chmod u+rwx '{folder}')"
            fix = f"it is {READ_ONLY}" if _read_only(folder) else chmod
            yield (
                False,
                f"library folder {folder} is not writable by this user: files bound for it wait in the "
                f"inbox; {fix}",
            )


def _case_twin_checks(settings: Settings) -> Iterator[Check]:
    """``Happy/`` beside ``happy/`` (``library.case_twins``); a model that cannot be read is the model
    check's to say, and the folders are compared among themselves then."""
    try:
        model = load_model_in_force(settings)
    except ModelError:
        model = None
    try:
        folders = [f.name for f in _folders(settings.library)]
    except Refused:
        return  # said by the folder checks
    for problem in case_twins(settings.library, folders, model.labels if model else []):
        yield False, problem


def _folders(folder: Path) -> list[Path]:
    """The folders in ``folder`` (none if it is missing); Refused if it may not be listed."""
    return [
        Path(e.path)
        for e in list_folder(folder)
        if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
    ]


def _journal_check(settings: Settings, away: DriveNotMounted | None) -> Check:
    """The journal opened, unless the state folder's drive is away (``away``, as asked for its
    folder check): one there is on the disk below, not the one facesortd keeps (state_dir says why)."""
    path = settings.state_dir / JOURNAL_FILE
    if not_a_folder("state_dir", settings.state_dir):  # "created on first use" under a file, it was
        return True, "journal: not looked for, as state_dir is not a folder (said above)"
    if not path.exists():
        return True, f"journal: {path} (does not exist yet; created on first use)"
    if away is not None:
        return False, f"journal: {path} not opened, as its drive is not mounted (see state_dir)"
    try:
        Journal(path, drive_asked=True).close()
    except JournalError as exc:
        return False, f"journal: {exc}"
    return True, f"journal: {path}"


def _cascade_check(settings: Settings) -> Check:
    try:
        detector = FaceDetector(settings.detection)
        detector.detect(np.zeros((64, 64), np.uint8))
    except DetectorError as exc:
        return False, f"cascade: {exc}"
    return True, "cascade: " + ", ".join(str(p) for p in detector.paths)


def _gate_check(settings: Settings) -> Check:
    """Whether the gate narrows the cascade's scan: the one setting that trades faces for speed, so
    a user after a faster sort learns here that it exists and what it costs (detection has
    started, so the gate file is there and readable)."""
    gate = settings.detection.gate
    if gate is None:
        return (
            True,
            f'gate: off, the cascade scans everywhere (detection.gate = "{GATE_SHIPPED}": {GATE_TRADE})',
        )
    return True, f"gate: {gate_file(gate)}" + (f" ({GATE_TRADE})" if gate == GATE_SHIPPED else "")


def _model_check(settings: Settings) -> Check:
    if lost := lost_in_force(settings):
        return False, lost
    path = model_in_force(settings)
    try:
        model = load_model_in_force(settings)
    except ModelError as exc:
        return False, f"emotion model: {exc}: {MODEL_FIX}"
    if model is None:
        return (
            False,
            f"emotion model: none yet; train one with `{advised('train', 'DATASET')}` "
            "(until then: all unsure)",
        )
    held_out = model.info.get("held_out")
    figures = headline(held_out)
    sorts_nothing = _sorts_nothing(held_out)
    learnt_little = near_chance(held_out) or sorts_nothing
    if learnt_little and path is not None and name_of(settings, path) == DEFAULT:
        # Its figures are out of source: honest about unseen art, and nothing better to go back to.
        return (
            True,
            f"emotion model: the shipped one, {path} (out of source: {figures}; on art it has never "
            "seen it is rarely sure, so files wait in _quarantine/unsure/ until your reviews train it)",
        )
    if sorts_nothing and not near_chance(held_out) and not _one_to_go_back_to_sorts(settings, path):
        # Going back would throw the person's labels away for a model that sorts nothing either.
        return (
            True,
            f"emotion model: {path} ({figures}; neither it nor the models before it are sure of "
            "any held-out face, so files wait in _quarantine/unsure/ until your reviews train it)",
        )
    if learnt_little:
        return (
            False,
            f"emotion model {path} has learnt next to nothing ({figures}): go back with "
            f"`{advised('model', 'rollback')}` or `{advised('model', 'use', 'default')}`",
        )
    return (
        True,
        f"emotion model: {path} ({', '.join(model.labels)}{'; held out: ' + figures if figures else ''})",
    )


def _sorts_nothing(held_out: object) -> bool:
    return isinstance(held_out, dict) and held_out.get("coverage") == 0


def _one_to_go_back_to_sorts(settings: Settings, path: Path | None) -> bool:
    """Whether `model rollback` or `model use default` could reach a model that auto-sorts some of
    its held-out faces and is not near chance: only then is going back advice that helps."""
    current = name_of(settings, path) if path is not None else None
    for name in {*adopted(settings), DEFAULT} - {current}:
        earlier = resolve(settings, name)
        try:
            held_out = model_info(earlier).get("held_out") if earlier is not None else None
        except ModelError:
            continue
        if held_out is not None and not near_chance(held_out) and not _sorts_nothing(held_out):
            return True
    return False


def unit_check(config: Path | None) -> Check:
    """What the installed service runs: a unit whose program or --config file is gone fails at its
    start (a config exit 2, not restarted), said only in systemd's journal, while every check of
    `run_checks` passed for the command and config doctor itself was run with."""
    unit = unit_file()
    if not os.path.lexists(unit):
        return True, f"service unit: not installed (`{advised('install-service')}` writes {unit})"
    if masked(unit):  # no lines to read
        return (
            True,
            f"service unit: masked ({unit} leads to {os.devnull}): systemd will not start it "
            "(`systemctl --user unmask facesortd` undoes that)",
        )
    try:
        text = unit.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:  # a folder in its place, a link to nowhere, a file this user may not read
        return False, f"service unit: cannot read {unit} ({exc.strerror or exc}): make it a file you may read"
    # A drop-in (`systemctl --user edit facesortd`) may set ExecStart= anew: not read here, named.
    dropins = sorted(p.name for p in unit.with_name(unit.name + ".d").glob("*.conf"))
    also = f" (with the drop-ins {', '.join(dropins)} of {unit}.d, checked by hand)" if dropins else ""
    if text == unit_text(config, facesortd_environment(text)):
        return True, f"service unit: {unit}, for this facesortd and this config{also}"
    found = re.search(r"^ExecStart=[-@:+!]*(.*)$", text, re.MULTILINE)
    try:  # systemd's quoting, as unit_word writes it: a doubled % or $ is one
        words = [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(found[1])] if found else []
    except ValueError:
        words = []
    reinstall = shlex.join([*own_command(), *config_option(config), "install-service"])
    fix = (
        f"`{reinstall}` writes it for this one, then "
        "systemctl --user daemon-reload && systemctl --user restart facesortd"
    )
    if found is None and dropins:
        return True, f"service unit: {unit} has no ExecStart= line{also}"
    if found is None:  # systemd refuses to start a service without one
        return False, f"service unit: {unit} has no ExecStart= line, so systemd cannot start it: {fix}"
    if not words:
        return True, f"service unit: {unit} (not one facesortd can read: check it by hand)"
    if words == [*own_command(), *config_option(config), "run"]:
        # Its other lines differ: an edit of the person's, or the unit of an older facesortd. It was
        # "not the command or config checked here", of the very command and config.
        return (
            True,
            f"service unit: {unit} runs this facesortd with this config; its other lines are not those "
            f"facesortd writes now (edited by hand, or by an older facesortd): `{reinstall}` writes them "
            "anew, keeping yours as facesortd.service.bak",
        )
    config_named = words[words.index("--config") + 1] if "--config" in words[:-1] else None
    if not _runnable(words[0]):
        return False, f"service unit: {unit} runs {words[0]}, which is not there: {fix}"
    if config_named and not Path(config_named).is_file():
        return False, f"service unit: {unit} reads the config file {config_named}, which is not there: {fix}"
    return True, f"service unit: {unit} runs `{shlex.join(words)}` (not the command or config checked here)"


SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""Where systemd looks for an ExecStart= command not named by its full path (systemd.service(5))."""


def _runnable(command: str) -> bool:
    """Whether systemd finds ``command`` to run: a bare name (``python3``) in its own search path,
    not in the folder doctor was run from, where it was "not there"."""
    if "/" not in command:
        return shutil.which(command, path=SYSTEMD_PATH) is not None
    return os.access(command, os.X_OK)
