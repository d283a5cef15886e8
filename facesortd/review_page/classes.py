"""The classes a file can be given on the review page, and the key of each: one list, which the
page's keys show and a label posted is checked against.

A class is a name of the model's emotions, of the library's emotion folders or of a label given so
far; any other name is a new class, made only when asked for as one (a misspelt ``hapy`` made a
folder ``hapy/`` that took a key and moved the keys of the classes after it).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from pathlib import Path

from facesortd.config import Settings
from facesortd.durable import atomic_writer
from facesortd.emotion import ModelError
from facesortd.ensemble import model_info
from facesortd.journal import Journal
from facesortd.learn.review import label_summary
from facesortd.model_store import model_in_force
from facesortd.review_page.cache import review_dir

CLASS_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
"""A class is a folder name: lower case letters, digits, - and _; never hidden, never ``_quarantine``."""
CLASS_KEYS = "1234567890"
"""One key per class, shown on the page; letters stay free for the commands (n, u, t)."""
KEYS_FILE = "class-keys.json"
"""In the page's corner of the state folder: each class's key, {name: key}."""
_keeping = threading.Lock()
"""The server's threads read and write the keys one at a time."""


def model_in_force_info(settings: Settings) -> tuple[Path | None, dict[str, object]]:
    """The model in force and what it says of itself ({"error": …} if it cannot be read)."""
    path = model_in_force(settings)
    if path is None:
        return None, {}
    try:
        return path, model_info(path)
    except ModelError as exc:
        return path, {"error": str(exc)}


def known_classes(settings: Settings, journal: Journal) -> list[str]:
    """The classes a file can be given, sorted: the model's emotions, the emotion folders of the
    library and every class labelled so far (a new class, once given, is one of them).

    Only names the page can post as they are (`CLASS_NAME`): not facesortd's own ``_quarantine``,
    hidden folders, a name that is not UTF-8 (never a label) nor one such as ``Happy`` that the page
    would turn into another folder (``happy``)."""
    _path, info = model_in_force_info(settings)
    names = set(info.get("counts", {}) or {})  # type: ignore[arg-type]
    root = settings.library
    if root.is_dir():
        names |= {p.name for p in root.iterdir() if p.is_dir()}
    names |= set(label_summary(journal)[0])
    return sorted(n for n in names if CLASS_NAME.fullmatch(n))


def classes(settings: Settings, journal: Journal) -> list[dict[str, str]]:
    """:func:`known_classes`, each with its key, in the order of the keys (a class past the tenth
    has none). A class keeps its key for as long as it is one, kept in the state folder across
    runs of the page: the keys went by the sorted names, so a class made (``smug``) moved the key
    of every class after it (``surprised`` from 4 to 5), and a person pressing the key they had
    learnt gave the wrong label. A class that is none any more (its folder gone, its labels
    withdrawn) frees its key for the next one made."""
    names = known_classes(settings, journal)
    path = review_dir(settings) / KEYS_FILE
    with _keeping:
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = {}
        keys: dict[str, str] = {}
        for name, key in (kept if isinstance(kept, dict) else {}).items():
            if name in names and key in list(CLASS_KEYS) and key not in keys.values():
                keys[name] = key
        free = [k for k in CLASS_KEYS if k not in keys.values()]
        for name in names:
            if name not in keys and free:
                keys[name] = free.pop(0)
        if keys != kept:
            with contextlib.suppress(OSError), atomic_writer(path) as fh:  # unkept, they are as now
                fh.write(json.dumps(keys, sort_keys=True).encode())
    order = sorted(names, key=lambda n: (CLASS_KEYS.index(keys[n]) if n in keys else len(CLASS_KEYS), n))
    return [{"name": n, "key": keys.get(n, "")} for n in order]
