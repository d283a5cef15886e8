"""Readers for labelled data on disk: faces.json box files and one-folder-per-label trees.

Training, evaluation and the benchmarks all read the same formats, so the parsing (and the
rule that keeps one character's screenshots on one side of a split) lives here once.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from facesortd.boxes import Box
from facesortd.faces import box_in_crop
from facesortd.image_names import IMAGE_SUFFIXES, is_image_name
from facesortd.quarantine import names_an_emotion, not_an_emotion_name
from facesortd.shown_names import shown

EMOTIONS = ("happy", "sad", "angry", "surprised", "scared", "worried", "neutral", "embarrassed")
"""The emotions facesortd sorts into: the seed's seven plus ``embarrassed``, which vn_faces' artists
draw in most repositories. ``disgusted`` is left out: vn_faces has too few to learn it from
(README, "Training an emotion model")."""


def images_below(folder: Path) -> list[Path]:
    """The image files anywhere below ``folder``, sorted (so sampling with a seed is reproducible);
    hidden files are left out, as the daemon leaves them (``watch.ignore``)."""
    found = (p for p in folder.rglob("*") if p.is_file() and is_image_name(p))
    return sorted(p for p in found if not p.name.startswith("."))


@dataclass(frozen=True)
class AnnotatedFace:
    """One hand-checked face in a screenshot: its box (x, y, w, h) and emotion if known."""

    box: Box
    emotion: str | None


class DatasetError(ValueError):
    """A dataset file or folder a user pointed us at is not in the expected shape."""


def load_faces_json(path: Path) -> dict[str, list[AnnotatedFace]]:
    """Read a faces.json file: ``{file: [{"box": [x, y, w, h], "emotion": str|null}, ...]}``."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"cannot read face boxes from {path}: not a faces.json box file (it is not UTF-8 text)"
        ) from exc
    except json.JSONDecodeError as exc:  # "Expecting value: line 1 column 1 (char 0)" alone named no fault
        raise DatasetError(f"cannot read face boxes from {path}: not JSON ({exc})") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read face boxes from {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected an object mapping file names to face lists")
    out: dict[str, list[AnnotatedFace]] = {}
    for name, faces in raw.items():
        if "\0" in name:  # no file can be so named: opening it was a ValueError traceback
            raise DatasetError(f"{path}: the file name {name} holds a NUL character")
        try:
            out[name] = [
                AnnotatedFace(tuple(int(v) for v in f["box"]), f.get("emotion"))  # type: ignore[arg-type]
                for f in faces
            ]
        except (KeyError, TypeError, ValueError, OverflowError) as exc:  # 1e400: a traceback
            raise DatasetError(f"{path}: bad entry for {name!r}: {exc}") from exc
        if any(len(f.box) != 4 or min(f.box[2:]) <= 0 for f in out[name]):
            # one of no size was trained on as a face (whatever the image's edge held)
            raise DatasetError(f"{path}: a box of {name!r} is not 4 numbers x, y, width, height > 0")
        if any(not isinstance(f.emotion, str | None) for f in out[name]):
            raise DatasetError(f"{path}: an emotion of {name!r} is not a name in quotes (or null)")
    return out


_GROUP_SUFFIX = re.compile(r"(\s*-\s*copy)?[\s_\-()\d]*$", re.IGNORECASE)


def source_group(filename: str) -> str:
    """The character/source a screenshot belongs to, from its name (``aletta12.png`` -> ``aletta``).

    Screenshots of one character look alike; splitting by this group keeps near-duplicates from
    sitting on both sides of a train/test split, which would flatter every measurement. A name
    that is not UTF-8 has its stray bytes as ``\\xNN``: a group is text (the journal stores it).
    """
    stem = Path(shown(filename)).stem
    group = _GROUP_SUFFIX.sub("", stem).strip().lower()
    return group or stem.lower()


def labelled_images(root: Path) -> dict[str, list[Path]]:
    """``root/<label>/*.<image>`` as {label: sorted paths}; hidden folders and files are skipped."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(
            f"{root}: no such file or folder (a DATASET is a folder of emotion folders, or a faces.json)"
        )
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder (expected one subfolder per emotion)")
    subs = sorted(p for p in root.iterdir() if p.is_dir() and names_an_emotion(p.name))
    _refuse_overlap(root, subs)
    out: dict[str, list[Path]] = {}
    for sub in subs:
        if not os.access(sub, os.R_OK | os.X_OK):  # else its label would be left out without a word
            raise DatasetError(
                f"cannot read {sub} (permission denied): make it readable (chmod u+rx '{sub}') or move "
                f"it out of {root}"
            )
        if files := images_below(sub):
            out[sub.name] = files
        else:  # left out of the counts without a word: an emotion a person had meant to train
            names = ", ".join(IMAGE_SUFFIXES)
            logger.warning("{}: no images in it (names ending in {}, not hidden); left out", sub, names)
    if not out:
        raise DatasetError(f"{root} has no subfolders with images (expected {root}/<emotion>/*.png)")
    return out


def _refuse_overlap(root: Path, subs: list[Path]) -> None:
    """No two emotion folders may hold the same images, nor one the whole dataset: a symbolic link
    ``loop -> .`` made an emotion ``loop`` of every face, each trained on under two emotions."""
    top, real = root.resolve(), {sub: sub.resolve() for sub in subs}
    for sub, where in real.items():
        if top.is_relative_to(where):
            raise DatasetError(
                f"{sub} leads back to {root} (a symbolic link): every image would be read twice, once "
                f"as {sub.name}; remove the link"
            )
        if other := next((o for o, w in real.items() if o != sub and w.is_relative_to(where)), None):
            raise DatasetError(
                f"{sub} and {other} hold the same images (a symbolic link between them): each would be "
                "read under two emotions; remove the link"
            )


@dataclass(frozen=True)
class LabelledItem:
    """One labelled training example: an image, its label and, when known, where the face is and
    the independent unit it comes from (``group``: an artist's repository, a seed character).

    Without a ``group`` nothing is known about which files are related, and each file stands alone.
    """

    path: Path
    label: str
    box: Box | None = None
    group: str | None = None


VN_INDEX = "index.json"
VN_FACES = "faces"
"""A vn_faces folder's crops: ``faces/<group>/<stem>.webp``, beside its index."""
VN_BACKGROUNDS = "backgrounds"
"""A vn_faces folder's face-free pictures of its games, beside its index."""
VN_CROP_SIDE = 192
"""Side of every vn_faces crop (vn_faces/README.md)."""
VN_BOX: Box = box_in_crop((VN_CROP_SIDE, VN_CROP_SIDE))
"""vn_faces crops are cut as facesortd cuts face crops: the face box is their middle half."""


def is_vn_faces(root: Path) -> bool:
    """A vn_faces-style folder: ``index.json`` beside ``faces/<group>/*.webp`` RGBA crops."""
    return (Path(root) / VN_INDEX).is_file() and (Path(root) / VN_FACES).is_dir()


def load_vn_faces(root: Path) -> list[LabelledItem]:
    """The crops of a vn_faces folder labelled with one of :data:`EMOTIONS`, grouped by repository.

    The repository (one artist or studio) is the unit of independence: a group of one character
    shares it with that character's other poses, so validation never splits a repository.
    """
    root = Path(root)
    try:
        groups = json.loads((root / VN_INDEX).read_text(encoding="utf-8"))["groups"]
        return [
            LabelledItem(root / VN_FACES / name / f"{stem}.webp", entry["emotion"], VN_BOX, group["repo"])
            for name, group in sorted(groups.items())
            for stem, entry in sorted(group["files"].items())
            if entry["emotion"] in EMOTIONS
        ]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DatasetError(f"{root / VN_INDEX}: not a vn_faces index ({exc})") from exc


def vn_backgrounds(root: Path) -> list[Path]:
    """The face-free background pictures of a vn_faces folder (none when it has no such folder)."""
    folder = Path(root) / VN_BACKGROUNDS
    return sorted(p for p in folder.glob("*") if is_image_name(p)) if folder.is_dir() else []


def load_items(source: Path) -> list[LabelledItem]:
    """Labelled examples from a folder tree (``<label>/*``) or from a faces.json file.

    A faces.json file's images are looked up in a ``screenshots/`` folder beside it, else in its
    own folder (the layout of ../shared/data/seed); only faces with an emotion are returned, grouped
    by character (the screenshot's name without its number). A vn_faces folder (``index.json``)
    gives its crops grouped by repository.
    """
    source = Path(source)
    if source.is_dir() and is_vn_faces(source):
        return load_vn_faces(source)
    if source.is_file() and source.suffix.lower() == ".json":
        images = source.parent / "screenshots"
        images = images if images.is_dir() else source.parent
        return [
            LabelledItem(images / name, face.emotion, face.box, source_group(name))
            for name, faces in load_faces_json(source).items()
            for face in faces
            if face.emotion
        ]
    # Each file stands alone, named by its place in the folder: a name that carries where the folder
    # lies would make the seeded held-out split differ between machines and checkouts.
    return [
        LabelledItem(p, label, group=p.relative_to(source).as_posix())
        for label, paths in labelled_images(source).items()
        for p in paths
    ]


def refuse_bad_labels(items: list[LabelledItem], source: Path) -> None:
    """Each emotion of ``source`` one a model may sort into (:func:`quarantine.not_an_emotion_name`):
    a faces.json emotion (or ``--map``) ``../x`` had the daemon move screenshots out of the library."""
    for label in sorted({item.label for item in items}):
        if why := not_an_emotion_name(label):
            raise DatasetError(
                f"{source}: an emotion may not be named {label} ({why}): rename that folder (or faces.json "
                "emotion, or --map it to another name)"
            )


def relabel(items: list[LabelledItem], mapping: dict[str, str]) -> list[LabelledItem]:
    """Rename labels (``fear`` -> ``scared``); a label mapped to "" is dropped."""
    out = []
    for item in items:
        label = mapping.get(item.label, item.label)
        if label:
            out.append(LabelledItem(item.path, label, item.box, item.group))
    return out
