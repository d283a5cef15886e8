"""A wrong system clock and a person's files and labels: a clock set far ahead and put right since,
a clock set back, and what `undo --since`, the label scan and the journal's order make of them."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from loguru import logger
from synthetic import BrightBlobDetector, draw_screenshot, screenshot_png
from waiting import wait_until

from facesortd import cli, journal
from facesortd.cli import undo as undo_command
from facesortd.config import Settings, load_settings
from facesortd.content import content_id
from facesortd.decide import Decision
from facesortd.journal import Journal
from facesortd.learn import review
from facesortd.learn.datasets import LabelledItem
from facesortd.learn.kept_faces import faces_dir
from facesortd.learn.label_import import import_labels
from facesortd.state import JOURNAL_FILE

HOUR = 3600
YEAR = 365 * 86400
_real_time = time.time


def _clock(monkeypatch: pytest.MonkeyPatch, off_s: float) -> None:
    """This computer's clock ``off_s`` from the true time, as the journal, `undo` and the label scan
    read it."""
    wrong = SimpleNamespace(time=lambda: _real_time() + off_s)
    monkeypatch.setattr(journal, "time", wrong)
    monkeypatch.setattr(undo_command, "time", wrong)
    monkeypatch.setattr(review, "time", wrong)


def _sorted_at(settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str, off_s: float) -> None:
    """facesortd moved ``name`` from the inbox into the quarantine, the clock ``off_s`` from true."""
    _clock(monkeypatch, off_s)
    placed = settings.library / "_quarantine" / "no-face" / name
    placed.parent.mkdir(parents=True, exist_ok=True)
    placed.write_bytes(screenshot_png(sum(map(ord, name)), face=False))
    kept = Journal.for_state_dir(settings.state_dir)
    try:
        quarantined = Decision.quarantine("no-face")
        move = kept.plan(content_id(placed), settings.inbox / name, placed, quarantined, "m")
        kept.finish(move, "done", placed)
    finally:
        kept.close()


def _undo_since(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], off_s: float) -> str:
    """`undo --since 2h --dry-run` with the clock ``off_s`` from true: what it says."""
    _clock(monkeypatch, off_s)
    capsys.readouterr()
    assert cli.main(["undo", "--since", "2h", "--dry-run"]) == 0
    return capsys.readouterr().out


def _planned(out: str) -> list[str]:
    """The names of the files a plan would put back."""
    planned = [line for line in out.splitlines() if "would go back to" in line]
    return sorted(Path(line.split(" ")[0]).name for line in planned)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    monkeypatch.setenv("FACESORTD_INBOX", str(tmp_path / "inbox"))
    (tmp_path / "inbox").mkdir()
    return load_settings()


def test_undo_since_after_a_clock_set_far_ahead_and_put_right_takes_the_hours_asked(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clock a year ahead for one move (a wrong clock at boot, 2030 set by mistake), put right
    since: every later move was journaled just after that far time, and `undo --since 2h` took every
    move since the clock was wrong, 3 hours ago here (their files back in the inbox unasked)."""
    _sorted_at(settings, monkeypatch, "before.png", -5 * HOUR)
    _sorted_at(settings, monkeypatch, "ahead.png", YEAR - 4 * HOUR)
    _sorted_at(settings, monkeypatch, "put_right.png", -3 * HOUR)
    _sorted_at(settings, monkeypatch, "hour_ago.png", -HOUR)
    _sorted_at(settings, monkeypatch, "now.png", 0)
    out = _undo_since(monkeypatch, capsys, 0)
    assert _planned(out) == ["hour_ago.png", "now.png"]
    assert "ahead of this computer's clock" not in out  # the far move came before one made before 2h ago


def test_undo_since_leaves_out_and_names_a_move_journaled_ahead_of_the_clock_it_cannot_place(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A move made while the clock was a year ahead, with none between it and those of the last
    two hours: made before them, but whether within the two hours is not known. Left out and said,
    with the command that shows it; one made after a move of the last two hours is taken."""
    _sorted_at(settings, monkeypatch, "before.png", -5 * HOUR)
    _sorted_at(settings, monkeypatch, "ahead.png", YEAR)
    _sorted_at(settings, monkeypatch, "hour_ago.png", -HOUR)
    out = _undo_since(monkeypatch, capsys, 0)
    assert _planned(out) == ["hour_ago.png"]
    year = time.localtime(_real_time() + YEAR).tm_year
    assert f"left out 1 move(s) journaled at times ahead of this computer's clock (up to {year}-" in out
    assert re.search(r"`[^`]*facesortd undo [^`]* 2 --dry-run` shows them with these", out)
    _sorted_at(settings, monkeypatch, "ahead_again.png", YEAR)
    _sorted_at(settings, monkeypatch, "now.png", 0)
    out = _undo_since(monkeypatch, capsys, 0)
    assert _planned(out) == ["ahead_again.png", "hour_ago.png", "now.png"]
    assert "1 of these moves were journaled at times ahead of this computer's clock" in out
    assert "left out 1 move(s)" in out


def test_undo_since_with_the_clock_set_back_leaves_out_what_came_before_by_a_later_clock(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The clock set back a day (a dead clock battery, a dual boot's local time): the moves made
    before it read later than the clock now. `undo --since 2h` by the clock set back took them all
    (a day and more of moves); it takes those made since by that clock and names the others."""
    _sorted_at(settings, monkeypatch, "yesterday.png", -3 * HOUR)
    _sorted_at(settings, monkeypatch, "just_before.png", -HOUR / 2)
    _sorted_at(settings, monkeypatch, "set_back.png", -86400)
    out = _undo_since(monkeypatch, capsys, -86400)
    assert _planned(out) == ["set_back.png"]
    assert "left out 2 move(s) journaled at times ahead of this computer's clock" in out


def test_counts_since_a_time_go_by_the_clock_not_the_journal_order(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`status`'s "today": with the clock a year ahead once and put right, every move since was
    journaled just after that far time, so each counted as made today until the clock reached it.
    And the move made with the clock ahead counted as today for a year: it came before the moves
    made today, whether today or not is not known. One made after a move of today is today's."""
    day_ago = _real_time() - 86400
    _sorted_at(settings, monkeypatch, "two_days_ago.png", -2 * 86400)
    _sorted_at(settings, monkeypatch, "ahead.png", YEAR)
    _sorted_at(settings, monkeypatch, "now.png", 0)
    kept = Journal.for_state_dir(settings.state_dir)
    assert kept.counts(settings.library, day_ago) == {"_quarantine/no-face": 1}
    assert kept.counts(settings.library) == {"_quarantine/no-face": 3}
    kept.close()
    _sorted_at(settings, monkeypatch, "ahead_again.png", YEAR)
    _clock(monkeypatch, 0)
    kept = Journal.for_state_dir(settings.state_dir)
    assert kept.counts(settings.library, day_ago) == {"_quarantine/no-face": 2}
    kept.close()


def test_labels_counted_since_a_time_leave_out_one_given_ahead_of_the_clock_before_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`status`'s "labelled by you today": a label given with the clock a year ahead (set back since)
    counted as given today until the clock reached it, a year on; one given after a label of today
    counts."""
    kept = Journal.for_state_dir(settings.state_dir)
    happy = settings.library / "happy"
    for name, off_s in (("ahead", YEAR), ("now", 0), ("ahead_again", YEAR)):
        _clock(monkeypatch, off_s)
        kept.add_label(name, "happy", "human", None, "g", happy / f"{name}.png")
        _clock(monkeypatch, 0)
        if name == "now":
            assert kept.labelled_counts(_real_time() - 86400) == {"happy": 1}
    assert kept.labelled_counts(_real_time() - 86400) == {"happy": 2}
    assert kept.labelled_counts() == {"happy": 3}
    kept.close()


def test_a_journal_from_before_the_clock_was_kept_reads_its_times_as_the_clock(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal an older facesortd wrote has no clock readings: its stamps are read as the clock's
    (they were, while it ran forward), and its moves and labels since a time are found by them."""
    older = journal.SCHEMA.replace(",\n    clock REAL", "")
    assert older.count("clock") == 0
    settings.state_dir.mkdir(parents=True)
    db = sqlite3.connect(settings.state_dir / JOURNAL_FILE)
    db.executescript(older)
    db.close()
    _sorted_at(settings, monkeypatch, "old.png", -3 * HOUR)
    _sorted_at(settings, monkeypatch, "recent.png", -HOUR)
    _clock(monkeypatch, 0)
    kept = Journal.for_state_dir(settings.state_dir)
    kept.add_label("h", "happy", "human", None, "g", settings.library / "happy" / "x.png")
    kept.close()
    db = sqlite3.connect(settings.state_dir / JOURNAL_FILE)
    db.execute("UPDATE moves SET clock = NULL")
    db.execute("UPDATE labels SET clock = NULL")  # as an older facesortd left them
    db.commit()
    db.close()
    assert _planned(_undo_since(monkeypatch, capsys, 0)) == ["recent.png"]
    kept = Journal.for_state_dir(settings.state_dir)
    assert kept.labelled_counts(_real_time() - 60) == {"happy": 1}
    assert kept.label_clock("h") == pytest.approx(_real_time(), abs=60)
    kept.close()


def _shot(path: Path, seed: int = 1) -> Path:
    """A screenshot with one face the test detector finds, at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), draw_screenshot("happy", np.random.default_rng(seed))[0])
    return path


def _labels(kept: Journal) -> list[str]:
    return [label for _h, label, *_ in kept.labels()]


def test_a_file_facesortd_moved_with_the_clock_far_ahead_is_a_label_when_moved_back_after(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal's order outlives a clock set far ahead and put right: facesortd put x.png into
    happy/ with the clock a year ahead; the person, the clock right again, moved it to sad/ and back
    to happy/. Were stamps kept to the clock, their label (happy) would be older than facesortd's
    move, the file back in happy/ taken for facesortd's placement, and the label left at sad."""
    happy = _shot(settings.library / "happy" / "x.png")
    _clock(monkeypatch, YEAR)
    kept = Journal.for_state_dir(settings.state_dir)
    move = kept.plan(content_id(happy), settings.inbox / "x.png", happy, Decision("sorted", "happy"), "m")
    kept.finish(move, "done", happy)
    _clock(monkeypatch, 0)
    reviewer = review.Reviewer(settings, kept)
    sad = settings.library / "sad" / "x.png"
    sad.parent.mkdir()
    happy.rename(sad)
    assert reviewer.scan() == 1
    sad.rename(happy)
    assert reviewer.scan() == 1 and _labels(kept) == ["happy"]
    kept.close()


def test_a_copy_filed_after_the_labelled_one_with_the_clock_set_back_between_is_the_label(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person filed a picture in happy/ (its label recorded), the clock was set back an hour, and
    they filed a copy of it in sad/: the copy's ctime came before the label's time and before the
    first copy's, so it was taken for one there before, and the later decision, sad, never recorded.
    (A test cannot set the clock: the journal's reads an hour ahead, and the first copy's ctime is
    made later than the second's, as the set-back clock makes them.)"""
    _clock(monkeypatch, HOUR)
    kept = Journal.for_state_dir(settings.state_dir)
    reviewer = review.Reviewer(settings, kept)
    first = _shot(settings.library / "happy" / "a.png")
    assert reviewer.scan() == 1
    second = settings.library / "sad" / "b.png"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    os.chmod(first, 0o600)  # its ctime now, after the copy's
    assert first.stat().st_ctime >= second.stat().st_ctime
    assert reviewer.scan() == 1 and _labels(kept) == ["sad"]
    # A restart has only ctimes to go by: the first copy's, changed after the second's, would be a
    # filing anew (a ctime tick apart or not: the test flaked on that). With the labelled copy
    # changed last, a restart finds nothing new in either.
    os.chmod(second, 0o600)
    assert review.Reviewer(settings, kept).scan() == 0
    kept.close()


def test_a_copy_filed_after_a_label_given_while_the_journal_ran_ahead_of_the_clock_is_the_label(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal's times a year ahead (the clock was, once): a label given since is stamped after
    them, and a copy of its picture filed in another folder afterwards, found by a daemon just
    started, was compared with that stamp: older, and with the first copy's ctime changed since
    (a tag, a chmod) taken for one there before. The clock's reading of the label is what a file's
    ctime is compared with."""
    _sorted_at(settings, monkeypatch, "ahead.png", YEAR)
    _clock(monkeypatch, 0)
    kept = Journal.for_state_dir(settings.state_dir)
    first = _shot(settings.library / "happy" / "a.png")
    assert review.Reviewer(settings, kept).scan() == 1
    second = settings.library / "sad" / "b.png"
    second.parent.mkdir()
    _ctimes_past(time.time(), second.parent)  # filed after the label, as a person files
    shutil.copyfile(first, second)
    os.chmod(first, 0o600)
    assert review.Reviewer(settings, kept).scan() == 1 and _labels(kept) == ["sad"]
    kept.close()


def _warnings() -> list[str]:
    """What is logged as a warning from now on."""
    said: list[str] = []
    logger.add(said.append, level="WARNING", format="{message}")
    return said


def test_copies_filed_while_no_scan_looked_with_the_clock_set_back_between_say_so_and_wait_for_the_person(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A picture filed in happy/, the clock set back an hour, a copy filed in sad/, all while the
    daemon was stopped: the ctimes, all a scan has to go by, put sad/'s copy first, and the label
    went to happy, the decision the person had changed their mind about, without a word; removing
    the happy copy then changed nothing until the daemon's next start. (A test cannot set the
    clock: this one runs an hour behind the file times, and happy/'s copy is changed after sad/'s.)"""
    said = _warnings()
    _clock(monkeypatch, -HOUR)
    kept = Journal.for_state_dir(settings.state_dir)
    first = _shot(settings.library / "happy" / "a.png")
    second = settings.library / "sad" / "b.png"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    os.chmod(first, 0o600)
    reviewer = review.Reviewer(settings, kept)
    assert reviewer.scan() == 1  # the copy looked at first: which one is not known
    assert reviewer.scan() == 0
    [warning] = said
    assert "are copies of one picture, and which you filed last cannot be told" in warning
    assert "remove the copy you do not mean" in warning
    first.unlink()  # the person does
    reviewer.scan()
    assert _labels(kept) == ["sad"] and len(said) == 1
    kept.close()


def test_a_copy_filed_with_the_clock_set_back_since_the_label_while_no_scan_looked_waits_for_the_person(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """happy/a.png labelled, the daemon stopped, the clock set back an hour, a copy filed in sad/:
    at the daemon's start its ctime came before the label's time and before a.png's, so it was
    taken for one there before, silently, and the person's later decision, sad, never recorded."""
    said = _warnings()
    _clock(monkeypatch, HOUR)  # the label's time an hour ahead of the files' (of the clock later)
    kept = Journal.for_state_dir(settings.state_dir)
    first = _shot(settings.library / "happy" / "a.png")
    assert review.Reviewer(settings, kept).scan() == 1
    _clock(monkeypatch, 0)
    second = settings.library / "sad" / "b.png"
    second.parent.mkdir()
    shutil.copyfile(first, second)
    os.chmod(first, 0o600)
    restarted = review.Reviewer(settings, kept)
    assert restarted.scan() == 0 and _labels(kept) == ["happy"]
    assert [f"{second} and {first} are copies" in w for w in said] == [True]
    first.unlink()
    assert restarted.scan() == 1 and _labels(kept) == ["sad"]
    kept.close()


def _ctimes_past(when: float, folder: Path) -> None:
    """Wait until a file changed in ``folder`` now gets a ctime past ``when``: the kernel stamps
    ctimes from a coarse clock, up to a tick behind ``time.time()``, so a copy made within that
    tick of a label looked older than it."""
    probe = folder / ".probe"

    def past() -> bool:
        probe.touch()
        return probe.stat().st_ctime > when

    wait_until(past)
    probe.unlink()


def _refusing(monkeypatch: pytest.MonkeyPatch, kept: Journal) -> list[bool]:
    """``kept`` refuses every label while the list returned holds True (a full state disk)."""
    refusing = [True]
    real = kept.add_label

    def add_label(*args: object, **kwargs: object) -> None:
        if refusing[0]:
            raise sqlite3.OperationalError("database or disk is full")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kept, "add_label", add_label)
    return refusing


def test_a_label_the_journal_refuses_leaves_no_face_crop_and_is_tried_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The face crop was kept in faces/ before the journal refused the label (its disk full): the
    crop of a label never recorded stayed there for good once the file moved on. One kept for an
    earlier label of the same content is that label's, and stays. And the file was kept as looked
    at: its label was not tried again once the journal took writes, until the daemon restarted."""
    kept = Journal.for_state_dir(settings.state_dir)
    refusing = _refusing(monkeypatch, kept)
    shot = _shot(settings.library / "happy" / "a.png")
    reviewer = review.Reviewer(settings, kept)
    with pytest.raises(sqlite3.OperationalError):
        reviewer.scan()
    assert list(faces_dir(settings).glob("*")) == []
    refusing[0] = False
    assert reviewer.scan() == 1
    [(_h, _label, _source, face, *_)] = kept.labels()
    refusing[0] = True
    (settings.library / "sad").mkdir()
    shot.rename(settings.library / "sad" / "a.png")
    with pytest.raises(sqlite3.OperationalError):
        reviewer.scan()
    assert list(faces_dir(settings).glob("*")) == [Path(face)] and _labels(kept) == ["happy"]
    kept.close()


def test_an_imported_label_the_journal_refuses_leaves_no_face_crop(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import-labels` kept each face's crop before the journal recorded its label: refused (the
    state disk full), the crop stayed in faces/ with no label of it."""
    kept = Journal.for_state_dir(settings.state_dir)
    _refusing(monkeypatch, kept)
    shot = _shot(settings.library.parent / "dataset" / "a.png")
    with pytest.raises(sqlite3.OperationalError):
        import_labels(settings, kept, [LabelledItem(shot, "happy")], BrightBlobDetector())  # type: ignore[arg-type]
    assert list(faces_dir(settings).glob("*")) == [] and kept.labels() == []
    kept.close()
