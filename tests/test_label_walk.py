"""The label scan walked by a hostile person: copies of one picture in two emotion folders, a folder
the scan could not list or enter once, an emotion folder moved away and back, a file renamed where
facesortd put it, moved twice between two looks or while it was looked at, folders named with a
line break, a trailing space or letters encoded apart. Whatever they do, the label recorded is the
last decision they made about the picture, with its face; a folder name that cannot be one is said."""

from __future__ import annotations

import errno
import os
import shutil
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from loguru import logger
from synthetic import BrightBlobDetector, draw_screenshot

from facesortd import library
from facesortd.config import Settings, load_settings
from facesortd.content import content_id
from facesortd.decide import Decision
from facesortd.journal import Journal
from facesortd.learn import review


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    return load_settings(inbox=tmp_path / "inbox", library=tmp_path / "lib", state_dir=tmp_path / "state")


@pytest.fixture
def kept(settings: Settings) -> Iterator[Journal]:
    journal = Journal.for_state_dir(settings.state_dir)
    yield journal
    journal.close()


@pytest.fixture
def unlistable(monkeypatch: pytest.MonkeyPatch) -> set[Path]:
    """Folders that refuse a listing (chmod 300, an I/O error of a USB drive); root lists any."""
    locked: set[Path] = set()
    real_scandir = os.scandir

    def scandir(folder):  # type: ignore[no-untyped-def]
        if Path(folder) in locked:
            raise OSError(errno.EIO, "Input/output error", str(folder))
        return real_scandir(folder)

    monkeypatch.setattr(os, "scandir", scandir)
    return locked


def _shot(path: Path, seed: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), draw_screenshot("sad", np.random.default_rng(seed))[0])
    return path


def _labels(kept: Journal) -> list[str]:
    return [label for _h, label, *_ in kept.labels()]


def _changed_mind(settings: Settings, reviewer: review.Reviewer) -> tuple[Path, Path]:
    """A picture filed in sad/ (its label recorded), then a copy of it in happy/: the person's
    later decision, happy, is the label. Returns (the sad copy, the happy copy)."""
    sad = _shot(settings.library / "sad" / "shot.png")
    assert reviewer.scan() == 1
    happy = settings.library / "happy" / "copy.png"
    happy.parent.mkdir()
    shutil.copyfile(sad, happy)
    assert reviewer.scan() == 1
    assert _labels(reviewer.journal) == ["happy"]
    return sad, happy


def test_a_folder_the_last_scan_could_not_list_holds_no_new_filing_when_it_can_again(
    settings: Settings, kept: Journal, unlistable: set[Path]
) -> None:
    """sad/ could not be listed for one scan (an I/O error, a chmod): its old copy of a picture the
    person had since filed in happy/ counted as put there since the scan before, the later decision,
    and the label went back to sad, the decision the person had changed their mind about."""
    reviewer = review.Reviewer(settings, kept)
    _changed_mind(settings, reviewer)
    unlistable.add(settings.library / "sad")
    assert reviewer.scan() == 0
    unlistable.clear()
    assert reviewer.scan() == 0 and _labels(kept) == ["happy"]


def test_an_emotion_folder_moved_away_and_back_holds_no_new_filing(
    settings: Settings, kept: Journal, tmp_path: Path
) -> None:
    """sad/ moved out of the library for a while (a backup, a look in another program) and back:
    its old copy of a picture filed in happy/ since came back as a filing after the label, and the
    label went back to sad. Its files themselves were not moved: their ctimes say so."""
    reviewer = review.Reviewer(settings, kept)
    _changed_mind(settings, reviewer)
    away = tmp_path / "away"
    (settings.library / "sad").rename(away)
    assert reviewer.scan() == 0
    away.rename(settings.library / "sad")
    assert reviewer.scan() == 0 and _labels(kept) == ["happy"]


def test_a_copy_moved_by_the_person_into_its_folder_again_is_still_a_label(
    settings: Settings, kept: Journal
) -> None:
    """The other side of the two above: the old copy in sad/ moved out and back in by the person
    themselves (its ctime moves) is their decision again: sad."""
    reviewer = review.Reviewer(settings, kept)
    sad, _happy = _changed_mind(settings, reviewer)
    sad.rename(settings.library / "shot.png")
    assert reviewer.scan() == 0
    (settings.library / "shot.png").rename(sad)
    assert reviewer.scan() == 1 and _labels(kept) == ["sad"]


def _placed(settings: Settings, kept: Journal, emotion: str, name: str = "x.png") -> Path:
    """A file facesortd sorted into ``emotion``/ itself."""
    placed = _shot(settings.library / emotion / name)
    move = kept.plan(content_id(placed), settings.inbox / name, placed, Decision("sorted", emotion), "m")
    kept.finish(move, "done", placed)
    return placed


def test_a_file_renamed_in_the_folder_facesortd_put_it_in_is_no_label(
    settings: Settings, kept: Journal
) -> None:
    """facesortd sorted x.png into happy/; the person renamed it there (y.png, a bulk rename): the
    model's own guess was recorded as the person's label, and retraining learnt it as theirs."""
    placed = _placed(settings, kept, "happy")
    reviewer = review.Reviewer(settings, kept)
    assert reviewer.scan() == 0
    placed.rename(placed.with_name("y.png"))
    assert reviewer.scan() == 0 and _labels(kept) == []
    assert review.Reviewer(settings, kept).scan() == 0  # nor at the daemon's next start
    (settings.library / "sad").mkdir()
    placed.with_name("y.png").rename(settings.library / "sad" / "y.png")  # moved on: a correction
    assert reviewer.scan() == 1 and _labels(kept) == ["sad"]


@pytest.mark.parametrize(
    ("between", "shown"), [("\n", "\\x0a"), ("\u200b", "\\u200b"), ("\ufeff", "\\ufeff")]
)
def test_a_folder_named_with_a_line_break_gives_no_label_until_renamed(
    settings: Settings, kept: Journal, between: str, shown: str
) -> None:
    """A folder `sa<line break>d` (made by a script, a paste): its files were recorded as labels of
    an emotion with a line break in its name, which split `status` and the retrain's report into
    lines of other emotions; `train` refuses such a folder of a dataset. One with a character of
    no width in it (pasted) was an emotion of its own that every listing printed as `sad`."""
    said: list[str] = []
    logger.add(said.append, level="WARNING", format="{message}")
    odd = settings.library / f"sa{between}d"
    _shot(odd / "x.png")
    reviewer = review.Reviewer(settings, kept)
    assert reviewer.scan() == 0 and reviewer.scan() == 0 and _labels(kept) == []
    assert [w.rstrip() for w in said] == [
        f"{settings.library}/sa{shown}d: a folder name with a line break, control or zero-width"
        " character or byte that is not UTF-8 cannot be a label: rename it"
        " (labels given there are not seen until then)"
    ]
    odd.rename(settings.library / "sad")
    assert reviewer.scan() == 1 and _labels(kept) == ["sad"]


@pytest.mark.parametrize("other", ["café", "Café"])
def test_emotion_folders_that_look_alike_but_are_encoded_apart_are_said(tmp_path: Path, other: str) -> None:
    """`café/` typed here (é one character) and `café/` copied from a Mac (e and an accent): two
    folders that look the same, two emotions, and nothing said; `Café/` so encoded beside it too."""
    typed, from_a_mac = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", other)
    [problem] = library.case_twins(tmp_path, [typed, from_a_mac], [])
    if other == "café":
        assert problem.startswith(
            f"'cafe\\u0301'/ and 'caf\\xe9'/ in {tmp_path} differ only in how their letters"
        )
    else:
        assert problem.startswith(f"{from_a_mac}/ and {typed}/ in {tmp_path} differ only by case")
    assert library.case_twins(tmp_path, [typed, "cafe"], []) == []


def test_an_emotion_folder_named_with_a_space_at_its_end_is_said(tmp_path: Path) -> None:
    """`happy /` made by a slip beside `happy/`: an emotion of its own, which no listing shows apart.
    Said "by case or a space at either end" whichever it was (four wordings, each its own branch):
    each way two names differ is now named."""
    [problem] = library.case_twins(tmp_path, ["happy", "happy "], [])
    assert problem.startswith(
        f"'happy '/ and 'happy'/ in {tmp_path} differ only by a space at either end, so"
    )
    assert problem.endswith("move the files of 'happy '/ into 'happy'/ and remove 'happy '/")
    [problem] = library.case_twins(tmp_path, ["happy", "Happy "], [])  # each way they differ named
    assert problem.startswith(f"'Happy '/ and 'happy'/ in {tmp_path} differ only by case and a space at")


def test_an_emotion_folder_named_with_a_character_of_no_width_and_more_is_said_by_its_codes(
    tmp_path: Path,
) -> None:
    """`Happy /` pasted with a zero-width joiner in it: each difference said, the name by its codes."""
    [problem] = library.case_twins(tmp_path, ["happy", "Hap\u200dpy "], [])
    assert problem.startswith(
        f"'Hap\\u200dpy '/ and 'happy'/ in {tmp_path} differ only by case and a space at either end and "
        "characters of no width, so"
    )
    assert library.case_twins(tmp_path, ["happy\u200b", "sad"], []) == []  # no twin: nothing to merge


def _faces(kept: Journal) -> list[bool]:
    """For each label: was a face kept for it (can it teach)?"""
    return [face is not None for _h, _label, _source, face, *_ in kept.labels()]


@pytest.mark.parametrize("meanwhile", ["renamed", "read error"])
def test_a_picture_the_scan_could_not_read_for_its_face_is_no_faceless_label(
    settings: Settings, kept: Journal, monkeypatch: pytest.MonkeyPatch, meanwhile: str
) -> None:
    """A file renamed in its emotion folder between the scan's read of its content and its look for
    the face (or a USB drive's read error then): recorded as a label with no face, which can never
    teach, and told so ("no face found"); the file under its new name, or once readable, held the
    same label, so it was never looked at for its face again."""
    shot = _shot(settings.library / "happy" / "a.png")
    real_read = review.read_image
    failing = [True]

    def read_image(path: Path, limits: object) -> np.ndarray:
        if failing[0]:
            failing[0] = False
            if meanwhile == "renamed":
                shot.rename(shot.with_name("b.png"))
            else:
                raise review.UnreadableImage("cannot read file: Input/output error") from OSError(
                    errno.EIO, "Input/output error"
                )
        return real_read(path, limits)  # type: ignore[arg-type]

    monkeypatch.setattr(review, "read_image", read_image)
    reviewer = review.Reviewer(settings, kept)
    assert reviewer.scan() == 0 and kept.labels() == []
    assert reviewer.scan() == 1 and _labels(kept) == ["happy"] and _faces(kept) == [True]


def test_a_folder_listed_but_not_entered_once_holds_no_new_filing_when_it_can_again(
    settings: Settings, kept: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sad/ made chmod 644 for a while (listed, its files not looked at: no x): its old copy of a
    picture filed in happy/ since was not found, and found again it would have been a filing anew."""
    reviewer = review.Reviewer(settings, kept)
    _changed_mind(settings, reviewer)
    sad = settings.library / "sad"
    real_lstat = Path.lstat

    def lstat(path: Path):  # type: ignore[no-untyped-def]
        if path.parent == sad:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_lstat(path)

    monkeypatch.setattr(Path, "lstat", lstat)
    assert reviewer.scan() == 0
    monkeypatch.setattr(Path, "lstat", real_lstat)
    assert reviewer.scan() == 0 and _labels(kept) == ["happy"]


def test_a_file_moved_twice_between_two_looks_is_labelled_where_it_ended(
    settings: Settings, kept: Journal
) -> None:
    """happy/ → sad/ → angry/ between two looks: one label, angry, a correction; happy/ → sad/ →
    happy/ again: none (it is where facesortd put it); and back to happy/ after a look saw it in
    angry/: happy, the person's decision after their label."""
    placed = _placed(settings, kept, "happy")
    reviewer = review.Reviewer(settings, kept)
    assert reviewer.scan() == 0
    for folder in ("sad", "angry"):
        (settings.library / folder).mkdir()
    placed.rename(settings.library / "sad" / "x.png")
    (settings.library / "sad" / "x.png").rename(placed)
    assert reviewer.scan() == 0 and _labels(kept) == []
    placed.rename(settings.library / "sad" / "x.png")
    (settings.library / "sad" / "x.png").rename(settings.library / "angry" / "x.png")
    assert reviewer.scan() == 1 and _labels(kept) == ["angry"]
    assert [source for _h, _l, source, *_ in kept.labels()] == ["correction"]
    (settings.library / "angry" / "x.png").rename(placed)
    assert reviewer.scan() == 1 and _labels(kept) == ["happy"]
    assert review.Reviewer(settings, kept).scan() == 0


def test_files_that_left_their_folder_by_themselves_are_not_remembered_for_ever(
    settings: Settings, kept: Journal, tmp_path: Path
) -> None:
    """The scan remembered every file that ever left a folder it looked in (to tell a folder moved
    away and back, its files as they were, from a filing anew): one entry more per file labelled
    elsewhere or deleted, for the daemon's lifetime. Forgotten once their folder is listed without
    them; a folder moved away keeps its files remembered until it is back (the test above)."""
    reviewer = review.Reviewer(settings, kept)
    shots = [_shot(settings.library / "sad" / f"shot{i}.png", seed=i) for i in range(4)]
    assert reviewer.scan() == 4
    (settings.library / "happy").mkdir()
    for shot in shots[:3]:  # labelled happy by moving them, one deleted
        shot.rename(settings.library / "happy" / shot.name)
    (settings.library / "happy" / shots[0].name).unlink()
    assert reviewer.scan() == 2 and reviewer.gone == {}
    (settings.library / "sad").rename(tmp_path / "away")
    assert reviewer.scan() == 0 and list(reviewer.gone) == [shots[3]]
