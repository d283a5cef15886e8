"""The journal tells model versions apart: a model is recorded by its file's name and content, so
two models of one name (every facesortd version's shipped model, two pinned files) are not taken
for one another by `undo --model` and the count `model rollback` says; rows an older facesortd
wrote (the name alone) still count by the name."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from synthetic import screenshot_png

from facesortd import cli, model_store
from facesortd.cli.undo import left_by
from facesortd.config import Settings
from facesortd.content import content_id
from facesortd.decide import Decision, Pipeline
from facesortd.journal import MOVE_COLUMNS, SCHEMA, Journal, ModelId
from facesortd.library import Library
from facesortd.sorter import Sorter
from facesortd.state import JOURNAL_FILE

HAPPY = Decision("sorted", emotion="happy", confidence=0.9)


class _Happy:
    """A pipeline that finds every picture happy: which model decided is all these tests ask."""

    def decide(self, path: Path) -> Decision:
        return HAPPY


def _sorted_by(settings: Settings, judge: ModelId, *names: str) -> None:
    """``names`` dropped into the inbox and sorted into happy/ by the model ``judge``."""
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        sorter = Sorter(Library(settings.library), journal, model=judge)
        for name in names:
            (settings.inbox / name).write_bytes(screenshot_png(sum(map(ord, name))))
            assert sorter.sort(_Happy(), settings.inbox / name).kind == "placed"  # type: ignore[arg-type]
    finally:
        journal.close()


def _sorted_by_an_older_facesortd(settings: Settings, model: str, name: str) -> None:
    """``name`` sorted into happy/ as a facesortd from before model versions journaled it: its
    journal has no ``model_version`` column, the row names the model by its file's name alone."""
    older = SCHEMA.replace(",\n    model_version TEXT", "")
    assert older != SCHEMA
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    happy = settings.library / "happy" / name
    happy.parent.mkdir(parents=True, exist_ok=True)
    happy.write_bytes(screenshot_png(sum(map(ord, name))))
    db = sqlite3.connect(settings.state_dir / JOURNAL_FILE)
    db.executescript(older)
    columns = MOVE_COLUMNS.removesuffix(", model_version").split(", ")[1:]
    row = {
        "hash": content_id(happy),
        "source": bytes(settings.inbox / name),
        "destination": bytes(happy),
        "action": "sorted",
        "emotion": "happy",
        "reason": None,
        "confidence": 0.9,
        "model": model,
        "state": "done",
        "started": time.time(),
        "finished": time.time(),
        "copied": 0,
        "claimed": b"",
        "made_folder": 0,
    }
    assert list(row) == columns
    db.execute(
        f"INSERT INTO moves ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        list(row.values()),
    )
    db.commit()
    db.close()


def _in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_undo_model_default_takes_what_this_versions_shipped_model_sorted_not_an_earlier_ones(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every facesortd version ships its model as default_emotion.fsm.npz, and the journal knew a
    model by its file name: `undo --model default` also put back what an earlier version's shipped
    model had sorted, and `model rollback` counted those files as the shipped model's. A move
    journaled by a facesortd from before versions were recorded is still the shipped model's."""
    settings = cli_settings
    shipped = model_store.shipped_model()
    assert shipped is not None
    earlier = tmp_path / "facesortd-1.0" / shipped.name  # an earlier version's: the same name, other bytes
    earlier.parent.mkdir()
    earlier.write_bytes(shipped.read_bytes()[:-1])
    _sorted_by_an_older_facesortd(settings, shipped.name, "older.png")
    _sorted_by(settings, model_store.model_id(earlier), "earlier.png")
    _sorted_by(settings, model_store.model_id(shipped), "now.png", "now2.png")
    happy = settings.library / "happy"
    assert _in(happy) == ["earlier.png", "now.png", "now2.png", "older.png"]

    assert left_by(settings, shipped).startswith("3 file(s) that default sorted still sit")
    assert cli.main(["undo", "--model", "default", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("would go back to") == 3 and "earlier.png" not in out
    assert cli.main(["undo", "--model", "default"]) == 0
    assert _in(happy) == ["earlier.png"]
    assert _in(settings.inbox) == ["now.png", "now2.png", "older.png"]
    assert left_by(settings, shipped) == ""


def test_two_pinned_model_files_of_one_name_are_two_models(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`recognition.model` pinned to one file, then to another file of the same name: `undo --model
    FILE` took the files both had sorted, and each one's count held the other's. A model file gone
    since is known by its name alone: every version of that name, as before."""
    settings = cli_settings
    first, second = tmp_path / "a" / "mine.fsm.npz", tmp_path / "b" / "mine.fsm.npz"
    for n, model in enumerate((first, second)):
        model.parent.mkdir()
        model.write_bytes(b"model %d" % n)
    _sorted_by(settings, model_store.model_id(first), "first.png")
    _sorted_by(settings, model_store.model_id(second), "second.png", "second2.png")

    assert left_by(settings, first).startswith(f"1 file(s) that {first} sorted")
    assert left_by(settings, second).startswith(f"2 file(s) that {second} sorted")
    assert cli.main(["undo", "--model", str(first), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("would go back to") == 1 and "first.png" in out
    second.unlink()
    assert cli.main(["undo", "--model", str(second), "--dry-run"]) == 0
    assert capsys.readouterr().out.count("would go back to") == 3


def test_a_move_is_journaled_with_the_content_of_the_model_that_decided_it(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`facesortd sort` records the model in force by name and content, read once for the batch."""
    settings = cli_settings
    shipped = model_store.shipped_model()
    assert shipped is not None
    expected = model_store.model_id(shipped)
    read: list[Path] = []
    loaded = model_store.load_model  # hashed as it is loaded: the bytes that decide are those journaled
    monkeypatch.setattr(
        model_store, "load_model", lambda path, **how: read.append(path) or loaded(path, **how)
    )
    monkeypatch.setattr(Pipeline, "decide", lambda self, path: HAPPY)
    for n in range(3):
        (settings.inbox / f"{n}.png").write_bytes(screenshot_png(n))
    assert cli.main(["sort", str(settings.inbox)]) == 0
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        moves = journal.done_moves()
    finally:
        journal.close()
    assert len(moves) == 3
    assert {move.judged_by for move in moves} == {expected}
    assert read == [shipped]  # once, not per file
