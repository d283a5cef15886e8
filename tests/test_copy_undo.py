"""Undoing a `sort --copy` removes the library's copy, never the only one: the original is held
while the copy goes, whatever a person (or a kill) does to it meanwhile."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from synthetic import screenshot_png

from facesortd import cli, content, undo
from facesortd.advice import advised
from facesortd.config import Settings
from facesortd.journal import UNDOING, Journal, Move
from facesortd.state import JOURNAL_FILE
from facesortd.undo import held_name


@pytest.fixture
def env(cli_settings: Settings) -> Settings:
    """The CLI sees the test's folders and detects the drawn faces (conftest's cli_settings)."""
    return cli_settings


def _copied(env: Settings) -> tuple[Path, Path]:
    """`sort --copy ~/shots/a.png`: the original and its copy in the library."""
    shots = env.inbox.parent / "shots"
    shots.mkdir()
    original = shots / "a.png"
    original.write_bytes(screenshot_png(1))
    assert cli.main(["sort", "--copy", str(original)]) == 0
    [copy] = [p for p in env.library.rglob("*") if p.is_file()]
    return original, copy


def _holding(env: Settings, *folders: Path) -> list[bytes]:
    """What every file of ``folders`` and the library holds (each file once)."""
    found = [p for f in (*folders, env.library) for p in f.rglob("*") if p.is_file() and not p.is_symlink()]
    return sorted(p.read_bytes() for p in found)


def _sort_another(env: Settings) -> None:
    """A `sort` of another screenshot: a command that recovers first."""
    (env.inbox / "b.png").write_bytes(screenshot_png(3))
    assert cli.main(["sort"]) == 0


def _on_first_look(monkeypatch: pytest.MonkeyPatch, folder: Path, act: Callable[[], None]) -> None:
    """``act`` (a person's), once, just after facesortd first reads a file in ``folder``: the undo's
    look at the original, before it removes the copy."""
    real, done = content.file_hash, []

    def looked(path: Path) -> str:
        digest = real(path)
        if Path(path).parent == folder and not done:
            done.append(path)
            act()
        return digest

    monkeypatch.setattr(content, "file_hash", looked)


def test_an_original_deleted_as_its_copy_is_undone_is_not_lost(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original deleted between the undo's look at it and the copy's removal (a person tidying
    the folder copied from, trusting the library's copy): the copy went too, the only one left."""
    original, _copy = _copied(env)

    def tidy() -> None:
        with contextlib.suppress(FileNotFoundError):  # held by the undo: not there to delete
            original.unlink()

    _on_first_look(monkeypatch, original.parent, tidy)
    assert cli.main(["undo", "1"]) == 0
    assert _holding(env, original.parent) == [screenshot_png(1)]


def test_an_original_replaced_as_its_copy_is_undone_keeps_both(
    env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tool saving the next screenshot under the original's name between the undo's look and the
    copy's removal: the bytes sorted were in the copy alone, and it went."""
    original, _copy = _copied(env)
    _on_first_look(monkeypatch, original.parent, lambda: original.write_bytes(screenshot_png(2)))
    capsys.readouterr()
    assert cli.main(["undo", "1"]) == 0
    back = original.with_name("a (1).png")
    assert f"-> {back}" in capsys.readouterr().out
    assert original.read_bytes() == screenshot_png(2) and back.read_bytes() == screenshot_png(1)
    assert _holding(env, original.parent) == sorted([screenshot_png(1), screenshot_png(2)])
    journal = Journal.for_state_dir(env.state_dir)
    assert journal.undone_from(back, content.file_hash(back))  # known as undone: not sorted again
    journal.close()


def test_an_original_made_a_link_to_its_copy_is_not_taken_for_it(env: Settings) -> None:
    """The original replaced by a symbolic link to its copy (`ln -sf`, to keep one file): read
    through the link, it held the bytes sorted, and the copy it leads to was removed."""
    original, copy = _copied(env)
    original.unlink()
    original.symlink_to(copy)
    assert cli.main(["undo", "1"]) == 0
    assert original.is_symlink() and _holding(env, original.parent) == [screenshot_png(1)]
    assert original.with_name("a (1).png").read_bytes() == screenshot_png(1)


def test_an_unchanged_original_stays_as_it_is(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    """Held while the copy goes, the original is back under its name, the very file it was (a hard
    link of it beside, a person's twin, is not taken for its name)."""
    original, copy = _copied(env)
    os.link(original, original.with_name("twin.png"))
    before = original.stat()
    capsys.readouterr()
    assert cli.main(["undo", "1"]) == 0
    assert capsys.readouterr().out == f"{copy} -> {original}\n"
    assert os.path.samestat(original.stat(), before) and original.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(os.listdir(original.parent)) == ["a.png", "twin.png"] and _holding(env) == []


def _undo_of_a_copy_killed(env: Settings) -> tuple[Path, Path, Move]:
    """A `sort --copy` of one file, and the journal as an undo of it killed after its look left it:
    the original, the copy and the move."""
    original, copy = _copied(env)
    journal = Journal.for_state_dir(env.state_dir)
    [move] = journal.done_moves()
    journal.set_meta(UNDOING, str(move.id))  # what the killed undo had done, up to the kill
    journal.finish(move.id, "undone")
    journal.close()
    return original, copy, move


@pytest.mark.parametrize("killed", ["held", "held, copy removed", "linked back"])
def test_an_undo_of_a_copy_killed_at_any_step_leaves_the_file_once(
    env: Settings, killed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kill -9` of the undo while it held the original (the copy still there, or removed), or once
    it linked the original back under its name: the next command's recovery puts it back, removes
    the copy if it is still there, and the file is in the folder it was copied from, once."""
    original, copy, move = _undo_of_a_copy_killed(env)
    held = held_name(move)
    if killed == "linked back":
        os.link(original, held)
    else:
        original.rename(held)
    if killed != "held":
        copy.unlink()
    capsys.readouterr()
    _sort_another(env)  # any command that recovers
    err = capsys.readouterr().err
    assert os.listdir(original.parent) == ["a.png"] and original.read_bytes() == screenshot_png(1)
    assert _holding(env) == [screenshot_png(3)]
    assert f"put back {original}, which the interrupted undo of {copy} had held" in err
    journal = Journal.for_state_dir(env.state_dir)
    assert journal.move(move.id).state == "undone" and not journal.get_meta(UNDOING)
    journal.close()


def test_status_names_an_original_a_killed_undo_left_hidden_and_sort_puts_it_back(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """An undo of a `sort --copy` killed while it held the original: `status` said only that an undo
    was cut short, the original gone from its folder, hidden as .facesortd-undo-ID there; and the
    `sort` it advised, with an empty inbox, did nothing, the file hidden until the daemon's start."""
    original, copy, move = _undo_of_a_copy_killed(env)
    held = held_name(move)
    original.rename(held)
    capsys.readouterr()
    assert cli.main(["status", "--json"]) == 0
    [said] = [p for p in json.loads(capsys.readouterr().out)["problems"] if "cut short" in p]
    assert f"its original is hidden meanwhile as {held}, to go back as {original}" in said
    assert f"`{advised('sort')}` puts it right now" in said
    assert cli.main(["sort"]) == 0  # the inbox empty
    assert os.listdir(original.parent) == ["a.png"] and original.read_bytes() == screenshot_png(1)
    assert not copy.exists()
    assert cli.main(["status", "--json"]) == 0
    assert not any("cut short" in p for p in json.loads(capsys.readouterr().out)["problems"])


def test_an_original_that_cannot_be_put_back_is_left_held_for_recovery(
    env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The original held, its folder refusing it back (made read-only meanwhile, say): the undo says
    so and leaves its mark; the next command puts it back once the folder takes it."""
    original, _copy = _copied(env)
    real, refusing = undo.link_no_replace, [True]

    def refused(src: Path, dest: Path, **kwargs: Any) -> Path:
        if refusing:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dest))
        return real(src, dest, **kwargs)

    monkeypatch.setattr(undo, "link_no_replace", refused)
    capsys.readouterr()
    assert cli.main(["undo", "1"]) == 1  # to try again
    out = capsys.readouterr().out
    assert "could not be put back" in out and "the next `sort`, `undo` or start of the daemon puts it" in out
    assert not original.exists() and _holding(env, original.parent) == [screenshot_png(1)]  # held, not lost
    refusing.clear()
    _sort_another(env)
    assert os.listdir(original.parent) == ["a.png"] and _holding(env) == [screenshot_png(3)]


@pytest.mark.parametrize("at_source", ["nothing", "the same bytes", "other bytes"])
def test_a_row_from_before_copies_were_recorded_loses_nothing(
    env: Settings, tmp_path: Path, at_source: str
) -> None:
    """A journal row from before `copied` was kept (NULL: a copy or a move, not known) is undone as a
    copy only where its original's very bytes are at its source, held while the library's file
    goes: had it been a move, that file is its twin, and the bytes stay once. Else it goes back as
    a moved file, beside whatever took its name."""
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "a.png").write_bytes(screenshot_png(1))
    assert cli.main(["sort", str(shots / "a.png")]) == 0  # a move
    with contextlib.closing(sqlite3.connect(env.state_dir / JOURNAL_FILE)) as db, db:
        db.execute("UPDATE moves SET copied = NULL")
    if at_source != "nothing":
        (shots / "a.png").write_bytes(screenshot_png(1 if at_source == "the same bytes" else 2))
    assert cli.main(["undo", "1"]) == 0
    assert _holding(env) == []
    expected = {"nothing": [1], "the same bytes": [1], "other bytes": [1, 2]}[at_source]
    assert _holding(env, shots) == sorted(screenshot_png(n) for n in expected)


def test_an_undo_of_a_copy_interrupted_with_its_original_held_is_finished_by_recovery(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C once the copy was removed, the original still held: the move was marked done again
    and the undo's mark cleared, so nothing would have put the original back from its hidden name.
    The mark stands now; the next command's recovery puts it back and finishes the undo."""
    original, _copy = _copied(env)
    real, interrupting = undo.release_held, [True]

    def interrupted(journal: Journal, move: Move) -> Path | None:
        if interrupting:
            raise KeyboardInterrupt
        return real(journal, move)

    monkeypatch.setattr(undo, "release_held", interrupted)
    journal = Journal.for_state_dir(env.state_dir)
    with pytest.raises(KeyboardInterrupt):
        undo.undo(journal, journal.done_moves(), env.library, env.inbox)
    journal.close()
    assert not original.exists() and _holding(env, original.parent) == [screenshot_png(1)]  # held
    interrupting.clear()
    _sort_another(env)
    assert os.listdir(original.parent) == ["a.png"] and _holding(env) == [screenshot_png(3)]
