"""The DATASET arguments `train`, `eval` and `import-labels` share: options, label renames, framing."""

from __future__ import annotations

import argparse
from pathlib import Path

from loguru import logger

from facesortd.advice import advised
from facesortd.cli.common import UsageError, face_detector, refuse_pictures_into_facesortds
from facesortd.config import Settings, nested
from facesortd.detect import FaceDetector
from facesortd.faces import FaceSpec
from facesortd.learn.backdrops import Backdrops
from facesortd.learn.datasets import (
    DatasetError,
    LabelledItem,
    is_vn_faces,
    load_items,
    refuse_bad_labels,
    relabel,
    vn_backgrounds,
)
from facesortd.learn.training import FaceSet, Undetected, collect_faces
from facesortd.mounts import refuse_unmounted
from facesortd.quarantine import names_an_emotion


def add_dataset_options(p: argparse.ArgumentParser, vn_faces: bool = True) -> None:
    """``vn_faces``: whether the command reads vn_faces folders (import-labels refuses them)."""
    p.add_argument(
        "datasets",
        nargs="+",
        type=Path,
        metavar="DATASET",
        help="a folder with one subfolder per emotion (screenshots or face crops)"
        + (
            ", a faces.json box file (images in a screenshots/ folder beside it) or a vn_faces folder "
            "(index.json)"
            if vn_faces
            else " or a faces.json box file (images in a screenshots/ folder beside it); not a vn_faces "
            "folder (use `facesortd train`)"
        )
        + "; several may be given; only read, never changed",
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="rename a label (fear=scared); OLD= drops that label; may be repeated",
    )
    p.add_argument(
        "--kind",
        choices=["auto", "screenshots", "crops"],
        default="auto",
        help="what the images are (default %(default)s: small, nearly square images are crops, the rest "
        "screenshots)",
    )
    p.add_argument(
        "--undetected",
        choices=["drop", "whole", "typical"],
        default="drop",
        help="crops in which no face is detected: drop them, use the whole crop as the face, or frame "
        "them like the median of the crops where a face was found (typical); default %(default)s",
    )
    p.add_argument(
        "--no-detect",
        action="store_true",
        help="use every crop whole without running the detector (only for crops already framed "
        "like facesortd's boxes)",
    )


def label_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old:
            raise DatasetError(f"--map takes OLD=NEW (or OLD= to drop a label), got {pair!r}")
        mapping[old] = new
    return mapping


def dataset_items(args: argparse.Namespace, settings: Settings) -> dict[Path, list[LabelledItem]]:
    """The labelled examples of each DATASET argument, with --map applied. One on a drive away is
    refused: its mount point's empty folder read as a dataset of nothing. So is facesortd's library
    (or a folder holding it, or in it): its emotion folders hold facesortd's own guesses beside the
    files a person filed, which are labels already; `train` and `eval` took its guesses for truth
    (until 2026-12-03 only `import-labels` refused it). So is the state folder, whose face crops
    are the labels' faces."""
    refuse_unmounted(*args.datasets)
    _refuse_figures_inside(args, settings)
    for src in args.datasets:
        if mine := _facesortds(src.resolve(), settings):
            raise UsageError(
                f"{src} is (or holds, or is in) {mine}; name a collection sorted by hand elsewhere"
            )
        for sub in _emotion_links(src):
            # `happy -> ~/Pictures/facesortd/library/happy` read facesortd's guesses as labels, as
            # the library named itself did (and a link into the inbox its unsorted drops)
            if mine := _facesortds(sub.resolve(), settings, inbox=True):
                raise UsageError(
                    f"{sub} is a symbolic link to {sub.resolve()}, which is (or holds, or is in) {mine}; "
                    "remove the link"
                )
    mapping = label_map(args.map)
    # One given twice in two spellings (`crops ~/labelled/crops`) was read twice, every face counted
    # twice; read once, as first named.
    once: dict[Path, Path] = {}
    for src in args.datasets:
        once.setdefault(src.resolve(), src)
    found = {src: relabel(load_items(src), mapping) for src in once.values()}
    for src, items in found.items():
        refuse_bad_labels(items, src)
    return found


def _facesortds(here: Path, settings: Settings, *, inbox: bool = False) -> str | None:
    """Which of facesortd's own folders the real folder ``here`` read as a dataset (or an emotion
    folder of one) is, holds or is in, and why it may not be read (None: none). ``inbox``: the inbox
    too, whose files no one has labelled yet (a DATASET may hold folders the person keeps there)."""
    library = settings.library.resolve()
    if nested(here, library):
        return (
            f"facesortd's library {settings.library}: the files you filed there are your labels already "
            f"(`{advised('retrain')}` learns from them), the others facesortd's own guesses, which must "
            "not train nor measure it"
        )
    if _reads_state(here, settings.state_dir.resolve()):
        # `import-labels <state_dir>` made an emotion "faces" of every kept face crop
        return (
            f"facesortd's state folder {settings.state_dir}: its face crops are the faces of your labels "
            "already"
        )
    drops = settings.inbox.resolve()
    if inbox and nested(here, drops):
        return f"facesortd's inbox {settings.inbox}: its files are not sorted yet, nor labelled"
    return None


def _emotion_links(src: Path) -> list[Path]:
    """The emotion folders of the DATASET folder ``src`` that are symbolic links (none: a faces.json,
    a vn_faces folder or not a folder, whose reading says what is wrong with it)."""
    if not src.is_dir() or is_vn_faces(src):
        return []
    try:
        return sorted(p for p in src.iterdir() if p.is_symlink() and p.is_dir() and names_an_emotion(p.name))
    except OSError:  # a folder that cannot be listed: its reading says so
        return []


def _reads_state(dataset: Path, state: Path) -> bool:
    """Would the DATASET folder ``dataset`` be read into the state folder ``state``? Not one that
    holds it below a folder a dataset's reading leaves out (the default ``~/.local`` of ``train ~``)."""
    if dataset.is_relative_to(state):
        return True
    return dataset in state.parents and names_an_emotion(state.relative_to(dataset).parts[0])


def _refuse_figures_inside(args: argparse.Namespace, settings: Settings) -> None:
    """`train --report DIR` and `--plots DIR` into a folder of a DATASET (its own files, beside its
    emotion folders, are not read): their PNG files were read back as faces of that emotion by the
    next `train` (and replaced files of theirs named alike)."""
    for option in ("report", "plots"):
        if (folder := getattr(args, option, None)) is None:
            continue
        refuse_pictures_into_facesortds(settings, f"--{option}", folder)
        where = folder.resolve()
        for src in args.datasets:
            if src.is_dir() and where != src.resolve() and where.is_relative_to(src.resolve()):
                raise UsageError(
                    f"--{option} {folder} is inside the dataset {src}: the pictures written there would "
                    "be read as faces the next time; name a folder outside it"
                )


def framing(args: argparse.Namespace, settings: Settings) -> tuple[FaceDetector | None, Undetected]:
    """The detector that frames dataset faces and what to do where it finds none (--no-detect: whole)."""
    if args.no_detect:
        return None, "whole"
    return face_detector(settings), args.undetected


def backdrops(args: argparse.Namespace) -> Backdrops:
    """Every background picture of the vn_faces-style datasets among DATASET, to vary scenes with."""
    return Backdrops([p for src in args.datasets if is_vn_faces(src) for p in vn_backgrounds(src)])


def collect(args: argparse.Namespace, settings: Settings, spec: FaceSpec) -> FaceSet:
    detector, undetected = framing(args, settings)
    parts = [
        collect_faces(
            found,
            detector,
            spec,
            src.name,
            args.kind,
            undetected,
            settings.images,
            Backdrops(vn_backgrounds(src)) if is_vn_faces(src) else None,
        )
        for src, found in dataset_items(args, settings).items()
    ]
    data = FaceSet.concat(parts)
    for (label, reason), n in sorted(data.skipped.items()):
        logger.warning("{}: {} file(s) skipped ({})", label, n, reason)
    if not data.labels:  # the counts above say why, if any file was skipped; else none was named
        why = (
            " (see the skipped counts above)" if data.skipped else ": none of its images has a labelled face"
        )
        raise DatasetError("no usable faces in " + ", ".join(map(str, args.datasets)) + why)
    return data
