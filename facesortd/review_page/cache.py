"""Thumbnails and the model's view of each quarantined file, made once and kept in the state folder.

``<state_dir>/review/thumbs/<id>-<content>.jpg`` is the grid's picture and ``views/…`` the one the
page shows large, big enough to read a small face's expression (each made once, on request: they
never depend on the model),
``<state_dir>/review/guesses/<id>-<content>.json`` the face boxes and the top guesses of the model
that produced them; a new model in force makes the guesses anew, not the thumbnails. The boxes are
drawn by the page over the thumbnail, so one thumbnail serves every model. ``<content>`` names the
content they were made of (``queue.Contents``): another file under the same name, size and time
is shown as it is, and what the page shows is what a decision is given to.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np

from facesortd.config import Settings
from facesortd.detect import FaceDetector
from facesortd.durable import atomic_writer
from facesortd.ensemble import Model, load_model
from facesortd.faces import normalise_face
from facesortd.images import UnreadableImage, read_image, to_gray
from facesortd.journal import holds_claim_mark
from facesortd.model_store import ModelKey, model_in_force, model_key
from facesortd.review_page.queue import Changed, Contents, Item, content_tag
from facesortd.state import REVIEW_DIR

THUMB_SIDE = 360
VIEW_SIDE = 1280
"""Longest side of the picture shown large: a face of a tenth of a 1080p screenshot keeps ~70 px of
it, where the 360-px thumbnail left 20."""
SIDES = {"thumbs": THUMB_SIDE, "views": VIEW_SIDE}
"""Each kind of picture the cache makes, by its folder."""
TOP_GUESSES = 3
CLAIM_LEFT = "a name facesortd claimed before a crash; deleting it loses nothing"
"""Said of a file in the quarantine that is a move's claim a crash left (``journal.holds_claim_mark``;
the daemon quarantines one found in the inbox as unreadable): "unreadable: not an image" left a
person to wonder what was lost, and whether deleting it lost more. Its guesses say ``claim`` too,
for the page to say this alone, not as a picture it could not decode that a class key would move."""


def review_dir(settings: Settings) -> Path:
    """The review page's own corner of the state folder."""
    return settings.state_dir / REVIEW_DIR


def _placeholder(text: str) -> np.ndarray:
    """What the page shows for a file that cannot be decoded (it is still listed, to be dealt with)."""
    tile = np.full((THUMB_SIDE * 3 // 4, THUMB_SIDE, 3), 70, np.uint8)
    cv2.putText(tile, text, (16, THUMB_SIDE * 3 // 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (230, 230, 230), 2)
    return tile


def _jpeg(image: np.ndarray, side: int, path: Path) -> bytes:
    """``image`` as a JPEG no larger than ``side`` (``path``: the file it shows, for an error)."""
    scale = side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise OSError(f"could not encode a thumbnail of {path}")
    return data.tobytes()


_NOTHING_FOUND: dict[str, object] = {"width": 0, "height": 0, "boxes": [], "guesses": []}
"""The guesses of a file that could not be looked at (with its ``error``)."""


class ReviewCache:
    """Makes and keeps thumbnails and guesses; safe to call from the server's threads."""

    def __init__(self, settings: Settings, contents: Contents) -> None:
        self.settings = settings
        self.contents = contents
        self.folder = review_dir(settings)
        self._detector: FaceDetector | None = None
        self._model: tuple[ModelKey | None, Model | None] | None = None
        self._analysing = threading.Lock()

    def prune(self, keep: set[str]) -> int:
        """Drop what was made for files no longer in the quarantine (labelled, deleted); returns how
        many files went. Run when the page starts, so the cache stays the size of the quarantine."""
        removed = 0
        for kind in (*SIDES, "guesses"):
            for path in (self.folder / kind).glob("*/*"):
                if path.name.partition("-")[0] not in keep:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def _readable(self, item: Item) -> bool:
        """Can the content ``item``'s file holds be read (:meth:`Contents.show`)? Not where its drive
        fails to (EIO, a drive pulled out): the page showed a 500 "internal error" and logged a
        traceback for its picture and guesses, where a file it may not open shows "unreadable".
        Nothing is kept for it: it is asked again at the next request."""
        try:
            self.contents.show(item)
        except OSError:
            return False
        return True

    def _path(self, kind: str, item: Item, suffix: str) -> tuple[Path, str]:
        """Where what is made of ``item``'s content now is kept (pictures of its older contents go),
        and that content's tag (``queue.content_tag``)."""
        content = content_tag(self.contents.show(item))
        path = self.folder / kind / item.id[:2] / f"{item.id}-{content}{suffix}"
        if not path.is_file():
            for older in path.parent.glob(f"{item.id}-*{suffix}"):
                older.unlink(missing_ok=True)
        return path, content

    def _keep(self, path: Path, item: Item, data: bytes) -> None:
        """Keep what was made of ``item`` if its file held the content named in ``path`` throughout
        (the page says "reload" otherwise, queue.Changed): one written over as it was read is not
        shown as it was named."""
        self.contents.shown(item)
        with atomic_writer(path) as fh:
            fh.write(data)

    def thumbnail(self, item: Item, kind: str = "thumbs", content: str | None = None) -> bytes:
        """JPEG bytes of the ``kind`` of picture (a key of SIDES), made on first request. ``content``:
        the tag of the content a tab of the page asks to show (its guesses named it), else Changed:
        a picture saved under the name since was shown where the tab's label was for the older one."""
        if not self._readable(item):
            return _jpeg(_placeholder("unreadable"), SIDES[kind], item.path)
        path, shown = self._path(kind, item, ".jpg")
        if content is not None and content != shown:
            raise Changed(item.path)
        if path.is_file():
            return path.read_bytes()
        try:
            image = read_image(item.path, self.settings.images)
        except UnreadableImage:
            image = _placeholder("crash leftover" if holds_claim_mark(item.path) else "unreadable")
        data = _jpeg(image, SIDES[kind], item.path)
        self._keep(path, item, data)
        return data

    def guesses(self, item: Item) -> dict[str, object]:
        """{width, height, boxes (largest first), guesses [[emotion, p], ...], model, error?, content}:
        ``content``, the tag of the content they were made of, by which the page asks for the picture
        and gives it a label (each tab its own: the page's "what it showed" is the last any tab saw)."""
        model_path = model_in_force(self.settings)
        # By the file's version: by its name, a model written anew under an earlier one's (a facesortd
        # upgrade's shipped model, a pinned file replaced) had the earlier one's guesses shown, also
        # in later runs of the page, whose top guess Enter then gave as the label.
        made_by = model_key(model_path)
        tag = None if made_by is None else list(made_by)  # as JSON gives it back
        if not self._readable(item):  # no content to name: a label for it is refused (decisions.py)
            why = "its drive could not read it (a bad sector, or the drive pulled out): check the drive"
            return {**_NOTHING_FOUND, "error": f"{why}; no picture to label, n lists it last", "content": ""}
        path, content = self._path("guesses", item, ".json")
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("model") == tag:
                return {**cached, "content": content}
        except (OSError, ValueError):
            pass
        with self._analysing:  # one detector and model, shared by the server's threads
            found = self._analyse(item, model_path, made_by)
        found["model"] = tag
        self._keep(path, item, json.dumps(found).encode())
        return {**found, "content": content}

    def _analyse(self, item: Item, model_path: Path | None, made_by: ModelKey | None) -> dict[str, object]:
        try:
            gray = to_gray(read_image(item.path, self.settings.images))
        except UnreadableImage as exc:
            if holds_claim_mark(item.path):
                return {**_NOTHING_FOUND, "error": CLAIM_LEFT, "claim": True}
            return {**_NOTHING_FOUND, "error": str(exc)}
        if self._detector is None:
            self._detector = FaceDetector(self.settings.detection)
        if self._model is None or self._model[0] != made_by:
            self._model = (made_by, load_model(model_path) if model_path else None)
        model = self._model[1]
        faces = sorted(self._detector.detect(gray), key=lambda f: -f.area)
        guesses: list[list[object]] = []
        if faces and model is not None:
            # The largest face, as the default `multi_face = "largest"` decides by it.
            proba = model.predict_proba(normalise_face(gray, faces[0].box, model.spec)[None])[0]
            guesses = [[model.labels[i], round(float(proba[i]), 4)] for i in np.argsort(-proba)[:TOP_GUESSES]]
        return {
            "width": int(gray.shape[1]),
            "height": int(gray.shape[0]),
            "boxes": [list(map(int, f.box)) for f in faces],
            "guesses": guesses,
        }
