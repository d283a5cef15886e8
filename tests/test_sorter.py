"""One sorter for `sort` and the daemon: the same rules reach both, `sort` runs a worker pool and
keeps its output in input order, a dry run is the sorter with the move left out."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import pytest
from synthetic import screenshot_png, stub_pipeline
from tree_files import files_in as _files

from facesortd import cli
from facesortd.config import Settings
from facesortd.content import content_id
from facesortd.cores import usable_cores
from facesortd.decide import Decision, Pipeline
from facesortd.image_names import is_image_name
from facesortd.journal import Journal
from facesortd.library import Library
from facesortd.sorter import Sorter, UnreadableSince
from facesortd.watch import scan


@pytest.fixture
def env(cli_settings: Settings) -> Settings:
    """The CLI sees the test's folders and detects the drawn faces. (conftest's cli_settings)."""
    return cli_settings


def test_sort_of_the_inbox_leaves_a_file_whose_sort_was_undone_and_sort_file_sorts_it(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the daemon does: an undone file stays in the inbox; naming it sorts it by hand."""
    shot = env.inbox / "a.png"
    shot.write_bytes(screenshot_png(1))
    assert cli.main(["sort"]) == 0 and not shot.exists()
    assert cli.main(["undo", "1"]) == 0 and shot.exists()
    capsys.readouterr()
    assert cli.main(["sort"]) == 0
    assert shot.exists() and "you undid its sort" in capsys.readouterr().err
    assert cli.main(["sort", "--dry-run"]) == 0 and "you undid its sort" in capsys.readouterr().err
    assert cli.main(["sort", str(shot)]) == 0 and not shot.exists()
    assert len(_files(env.library)) == 1


def test_sort_obeys_the_duplicates_policy(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESORTD_WATCH__DUPLICATES", "quarantine")
    (env.inbox / "a.png").write_bytes(screenshot_png(2))
    assert cli.main(["sort"]) == 0
    (env.inbox / "again.png").write_bytes(screenshot_png(2))
    assert cli.main(["sort"]) == 0
    assert (env.library / "_quarantine" / "duplicate" / "again.png").is_file()


def test_sort_with_workers_prints_json_in_input_order(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers really run at once (each waits for the other), yet the output keeps input order."""
    names = [f"{i:02d}.png" for i in range(8)]
    for i, name in enumerate(names):
        (env.inbox / name).write_bytes(screenshot_png(20 + i, face=i % 2 == 0))
    both_busy = threading.Barrier(2, timeout=30)
    threads: set[str] = set()
    real_decide = Pipeline.decide

    def decide_in_pairs(self: Pipeline, path: Path) -> Decision:
        threads.add(threading.current_thread().name)
        if path.name in ("00.png", "01.png"):
            both_busy.wait()  # only passes if two files are in progress together
        return real_decide(self, path)

    monkeypatch.setattr(Pipeline, "decide", decide_in_pairs)
    assert cli.main(["sort", "--workers", "2", "--json", "--dry-run"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(d["path"]).name for d in lines] == names
    assert [d["reason"] == "no-face" for d in lines] == [i % 2 == 1 for i in range(8)]
    assert len(threads) == 2 and len(_files(env.inbox)) == 8  # a dry run moved nothing


def test_sort_leaves_opencv_the_cores_its_workers_do_not_use(env: Settings) -> None:
    for i in range(2):
        (env.inbox / f"{i}.png").write_bytes(screenshot_png(40 + i))
    before = cv2.getNumThreads()
    try:
        assert cli.main(["sort", "--workers", "2", "--dry-run"]) == 0
        assert cv2.getNumThreads() == max(1, usable_cores() // 2)
    finally:
        cv2.setNumThreads(before)


def test_a_re_examined_file_is_not_a_duplicate_of_itself(daemon_settings: Settings) -> None:
    """With duplicates = quarantine, a quarantined file looked at again is judged, not called a
    duplicate of its own earlier placement."""
    daemon_settings.inbox.mkdir(parents=True)
    shot = daemon_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(3))
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    sorter = Sorter(Library(daemon_settings.library), journal, duplicates="quarantine")
    pipeline = stub_pipeline(daemon_settings)
    first = sorter.sort(pipeline, shot)
    assert first.kind == "placed" and first.destination is not None
    again = sorter.sort(pipeline, first.destination)
    journal.close()
    assert again.kind == "stays" and again.decision is not None and again.decision.reason == "unsure"


def test_the_daemon_and_status_leave_an_inbox_file_whose_copy_is_in_the_library(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file copied from the inbox (by a version that allowed it) stays there, said by the sorter
    the daemon uses and by `status`, rather than going into the library a second time."""
    shot = env.inbox / "a.png"
    shot.write_bytes(screenshot_png(4))
    journal = Journal.for_state_dir(env.state_dir)
    pipeline = stub_pipeline(env)
    copied = Sorter(Library(env.library), journal, copy=True).sort(pipeline, shot, named=True)
    assert copied.kind == "placed" and shot.exists()
    again = Sorter(Library(env.library), journal).sort(pipeline, shot)
    journal.close()
    assert again.kind == "kept" and again.destination == copied.destination and shot.exists()
    assert _files(env.library) == [copied.destination]
    capsys.readouterr()
    assert cli.main(["status"]) == 0
    assert "copied into the library before" in capsys.readouterr().out


def test_sort_dir_picks_the_files_the_daemon_would_gifs_included(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """One list of image names: `sort DIR`, the daemon's watcher and the review (labels) agree."""
    for name in ("a.gif", "b.png", "c.png.part", "notes.txt", ".hidden.png"):
        (env.inbox / name).write_bytes(screenshot_png(4))
    assert cli.main(["sort", "--dry-run", "--json", str(env.inbox)]) == 0
    listed = [Path(json.loads(line)["path"]).name for line in capsys.readouterr().out.splitlines()]
    assert listed == ["a.gif", "b.png"]
    assert sorted(p.name for p in scan(env.inbox, env.watch)) == listed
    assert is_image_name(Path("moved by a person.GIF"))


def test_ctrl_c_lets_the_file_in_progress_finish_and_leaves_the_rest(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"{i:02d}.png" for i in range(6)]
    for i, name in enumerate(names):
        (env.inbox / name).write_bytes(screenshot_png(30 + i))
    stopping = threading.Event()
    real_decide, real_shutdown = Pipeline.decide, ThreadPoolExecutor.shutdown

    def interrupted_on_the_first(self: Pipeline, path: Path) -> Decision:
        if path.name == "00.png":
            raise KeyboardInterrupt
        stopping.wait(timeout=30)  # a file in progress when the sort is stopped finishes after it
        return real_decide(self, path)

    def shutdown(self: ThreadPoolExecutor, wait: bool = True, *, cancel_futures: bool = False) -> None:
        stopping.set()
        real_shutdown(self, wait, cancel_futures=cancel_futures)

    monkeypatch.setattr(Pipeline, "decide", interrupted_on_the_first)
    monkeypatch.setattr(ThreadPoolExecutor, "shutdown", shutdown)
    assert cli.main(["sort", "--workers", "1"]) == 130
    placed = [p.name for p in _files(env.library)]
    assert placed in ([], ["01.png"])  # 01.png if the worker had taken it up: it finished its move
    assert sorted([*placed, *(p.name for p in env.inbox.iterdir())]) == names  # the rest stayed


def test_a_file_named_by_a_relative_path_is_undone_into_its_own_folder_from_anywhere(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal kept `sort shots/a.png`'s source as typed: `undo` run from another folder put
    the file into (or refused) that folder's own `shots/`, and the copy rule did not know the file
    again by its full name, so `sort --copy` copied it into the library a second time."""
    (tmp_path / "shots").mkdir()
    shot = tmp_path / "shots" / "a.png"
    shot.write_bytes(screenshot_png(3))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sort", "--copy", "shots/a.png"]) == 0
    assert cli.main(["sort", "--copy", str(shot)]) == 0
    assert len(_files(env.library)) == 1
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "shots").mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert cli.main(["undo", "1"]) == 0
    assert not _files(env.library) and shot.exists()
    assert cli.main(["sort", "shots/../../shots/a.png"]) == 0 and not shot.exists()
    assert cli.main(["undo", "1"]) == 0
    assert shot.exists() and not _files(elsewhere)


def test_a_bare_sort_takes_the_inbox_sub_folders_the_daemon_takes(
    env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `watch.recursive = true` the daemon sorts what waits in the inbox's sub-folders; a bare
    `sort` ("the inbox, by the daemon's rules") left them, saying "name it to sort it"."""
    monkeypatch.setenv("FACESORTD_WATCH__RECURSIVE", "true")
    (env.inbox / "album" / "deeper").mkdir(parents=True)
    for name in ("a.png", "album/b.png", "album/deeper/c.png"):
        (env.inbox / name).write_bytes(screenshot_png(len(name)))
    assert cli.main(["sort", "--dry-run", "--json"]) == 0
    planned = sorted(Path(json.loads(line)["path"]).name for line in capsys.readouterr().out.splitlines())
    recursive = env.watch.model_copy(update={"recursive": True})
    assert planned == sorted(p.name for p in scan(env.inbox, recursive)) == ["a.png", "b.png", "c.png"]
    assert cli.main(["sort"]) == 0
    assert "not sorted" not in capsys.readouterr().err
    assert len(_files(env.library)) == 3 and not _files(env.inbox)


def test_sort_json_has_a_line_for_every_file_skipped_or_failed_too(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json` is "one JSON object per file": a file skipped (a symbolic link, one copied before) or
    one that could not be moved printed nothing, so a script pairing its input with the lines was
    off by one and never learnt that those files stayed where they were."""
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in ("a.png", "c.png"):
        (shots / name).write_bytes(screenshot_png(len(name) + ord(name[0])))
    (shots / "b.png").symlink_to(shots / "a.png")
    assert cli.main(["sort", "--copy", "--json", str(shots / "a.png")]) == 0
    capsys.readouterr()

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("facesortd.sorter.journaled_apply", refused)
    assert cli.main(["sort", "--copy", "--json", str(shots)]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(Path(d["path"]).name, d["action"]) for d in lines] == [
        ("a.png", "skipped"),
        ("b.png", "skipped"),
        ("c.png", "failed"),
    ]
    assert "copied into the library before" in lines[0]["detail"] and "symbolic link" in lines[1]["detail"]
    assert "Permission denied" in lines[2]["detail"]


def test_a_sorted_file_named_by_a_relative_path_is_not_a_duplicate_of_itself(
    env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `duplicates = "quarantine"`, `cd library && facesortd sort happy/a.png` took the file for
    a copy of the one the journal has at /…/library/happy/a.png, itself, and moved it out of the
    folder it was in (a person's label, too) into `_quarantine/duplicate/`."""
    monkeypatch.setenv("FACESORTD_WATCH__DUPLICATES", "quarantine")
    (env.inbox / "a.png").write_bytes(screenshot_png(5))
    assert cli.main(["sort"]) == 0
    [placed] = _files(env.library)
    monkeypatch.chdir(env.library)
    capsys.readouterr()
    assert cli.main(["sort", "--json", str(placed.relative_to(env.library))]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] != "duplicate"
    assert _files(env.library) == [placed]


def test_sort_copy_refuses_files_already_in_the_library(
    env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort --copy <library>/happy` (or a quarantine folder) left each original in the library and
    put a copy beside it in another folder: the same picture twice in the library."""
    (env.inbox / "a.png").write_bytes(screenshot_png(6))
    assert cli.main(["sort"]) == 0
    [placed] = _files(env.library)
    labelled = env.library / "happy" / "a.png"  # a person's label, moved with a file manager
    labelled.parent.mkdir(exist_ok=True)
    placed.rename(labelled)
    capsys.readouterr()
    assert cli.main(["sort", "--copy", str(labelled.parent)]) == 2
    assert "already in the library" in capsys.readouterr().err
    assert cli.main(["sort", "--copy", "--dry-run", str(labelled)]) == 2
    assert _files(env.library) == [labelled]


def test_a_file_that_stays_is_said_to_stay_whichever_way_it_was_named(
    env: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort --dry-run _quarantine/unsure` from the library printed "would go to" with the file's
    own full name, as if it would be moved, where the same folder named in full printed "stays"."""
    (env.inbox / "a.png").write_bytes(screenshot_png(7))
    assert cli.main(["sort"]) == 0
    [placed] = _files(env.library)
    monkeypatch.chdir(env.library)
    capsys.readouterr()
    assert cli.main(["sort", "--dry-run", str(placed.relative_to(env.library))]) == 0
    assert capsys.readouterr().out.startswith(f"{placed.relative_to(env.library)} stays  [")
    assert cli.main(["sort", str(placed.relative_to(env.library))]) == 0
    assert "stays where it is" in capsys.readouterr().err and _files(env.library) == [placed]


def test_a_bare_sort_leaves_an_unreadable_file_that_may_still_be_written_as_the_daemon_does(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A screenshot half written into the inbox: the daemon waits `watch.unreadable_settle_s` for
    its writer; a bare `sort` quarantined it as unreadable at once, and the writer then finished it
    in `_quarantine/unreadable/`. `sort` now waits too, and one still written after that wait (here
    a byte more each time) is left for a later `sort`. Named, it is the person's request and sorted now."""
    from facesortd.sort_batch import SortBatch

    monkeypatch.setenv("FACESORTD_WATCH__UNREADABLE_SETTLE_S", "0.2")
    half = env.inbox / "half.png"
    half.write_bytes(screenshot_png(8)[:300])
    real_wait = SortBatch._waited

    def still_writing(self: SortBatch, seconds: float) -> bool:
        with half.open("ab") as out:
            out.write(b"x")
        return real_wait(self, seconds)

    monkeypatch.setattr(SortBatch, "_waited", still_writing)
    assert cli.main(["sort", "--json"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["action"] == "skipped" and "may still be being written" in line["detail"]
    assert half.exists() and not _files(env.library)
    assert cli.main(["sort", str(half)]) == 0 and not half.exists()


def test_a_sort_into_another_library_is_undone_with_that_library(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: `sort ~/screens --library ~/reactions`, and "a sort can be undone like the daemon's
    work". `undo --dry-run` said "would go back", then `undo` left the file: "not inside the library
    <the config's>: the journal entry is not trusted", with nothing to do about it."""
    shots, other = tmp_path / "screens", tmp_path / "reactions"
    shots.mkdir()
    shot = shots / "a.png"
    shot.write_bytes(screenshot_png(9))
    assert cli.main(["sort", str(shot), "--library", str(other)]) == 0
    [placed] = _files(other)
    capsys.readouterr()
    assert cli.main(["undo", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would go back" not in out and "undo --library FOLDER" in out
    assert cli.main(["undo"]) == 0 and placed.exists()
    assert cli.main(["undo", "--library", str(other), "--dry-run"]) == 0
    assert f"{placed} would go back to {shots}" in capsys.readouterr().out and placed.exists()
    assert cli.main(["undo", "--library", str(other)]) == 0
    assert shot.exists() and not _files(other)


def test_undo_into_a_library_that_does_not_exist_is_refused(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`undo --library ~/reactoins` (a typo) walked the whole journal, each move "not inside the
    library ~/reactoins: the journal entry is not trusted", and exited 0, nothing undone."""
    (env.inbox / "a.png").write_bytes(screenshot_png(9))
    assert cli.main(["sort"]) == 0
    capsys.readouterr()
    typo = tmp_path / "reactoins"
    assert cli.main(["undo", "--library", str(typo)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"--library {typo}: no such folder (name the folder `sort --library`" in err
    assert _files(env.library)


def test_a_picture_in_another_library_is_no_duplicate_in_this_one(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`watch.duplicates = "quarantine"` is about "the library": `sort ~/screens --library ~/reactions`
    put a picture into ~/reactions/_quarantine/duplicate/ because the config's library held it."""
    monkeypatch.setenv("FACESORTD_WATCH__DUPLICATES", "quarantine")
    (env.inbox / "a.png").write_bytes(screenshot_png(10))
    assert cli.main(["sort"]) == 0
    (tmp_path / "screens").mkdir()
    (tmp_path / "screens" / "b.png").write_bytes(screenshot_png(10))
    capsys.readouterr()
    assert cli.main(["sort", "--json", str(tmp_path / "screens"), "--library", str(tmp_path / "other")]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] != "duplicate"
    (env.inbox / "c.png").write_bytes(screenshot_png(10))  # and back in this library: still one
    assert cli.main(["sort", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "duplicate"


def test_a_re_examined_file_is_not_a_duplicate_of_its_own_duplicate(daemon_settings: Settings) -> None:
    """a.png went to unsure/, the same picture dropped again as b.png to duplicate/; when the model
    changed, a.png looked at again was "same content as duplicate/b.png" and went to duplicate/
    too: both copies in `_quarantine/duplicate/`, the original nowhere."""
    daemon_settings.inbox.mkdir(parents=True)
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    sorter = Sorter(Library(daemon_settings.library), journal, duplicates="quarantine")
    pipeline = stub_pipeline(daemon_settings)
    placed = []
    for name in ("a.png", "b.png"):
        (daemon_settings.inbox / name).write_bytes(screenshot_png(13))
        placed.append(sorter.sort(pipeline, daemon_settings.inbox / name))
    assert [o.decision.reason for o in placed if o.decision] == ["unsure", "duplicate"]
    assert placed[0].destination is not None
    again = sorter.sort(pipeline, placed[0].destination)
    journal.close()
    assert again.kind == "stays" and again.decision is not None and again.decision.reason == "unsure"


def test_a_twin_of_a_labelled_picture_is_not_said_to_be_put_in_quarantine_by_the_person(
    daemon_settings: Settings,
) -> None:
    """The same picture dropped twice, both unsure; the person filed one into happy/. When the model
    changed, the daemon left the other with "you put it in quarantine, so it stays there", which
    the person never did, and never looked at it again."""
    daemon_settings.inbox.mkdir(parents=True)
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    sorter = Sorter(Library(daemon_settings.library), journal)
    pipeline = stub_pipeline(daemon_settings)
    placed = []
    for name in ("a.png", "b.png"):
        (daemon_settings.inbox / name).write_bytes(screenshot_png(14))
        outcome = sorter.sort(pipeline, daemon_settings.inbox / name)
        assert outcome.destination is not None
        placed.append(outcome.destination)
    labelled = daemon_settings.library / "happy" / "a.png"
    labelled.parent.mkdir(exist_ok=True)
    placed[0].rename(labelled)  # a file-manager move, recorded as the label by the scan
    journal.add_label(content_id(labelled), "happy", "human", None, "", labelled)
    again = sorter.sort(pipeline, placed[1])
    assert again.kind == "stays", again.why
    labelled.rename(placed[0])  # the labelled one moved back: the person's decision, kept
    assert sorter.sort(pipeline, placed[0]).why == "you put it in quarantine, so it stays there"
    journal.close()


@pytest.mark.parametrize("side_by_side", ["workers", "processes"])
def test_the_same_picture_dropped_twice_at_once_is_placed_once_and_quarantined_once(
    daemon_settings: Settings, side_by_side: str
) -> None:
    """With `duplicates = "quarantine"` and two workers, two copies dropped together were decided
    side by side, each before the other was journaled: both went to unsure/, neither to duplicate/
    (seen with 4 copies dropped into the daemon: 2 in unsure, 2 duplicates). The same for `sort`
    beside the daemon: two processes, each with its own journal connection and sorter."""
    daemon_settings.inbox.mkdir(parents=True)
    journals = [Journal.for_state_dir(daemon_settings.state_dir) for _ in range(2)]
    sorters = [Sorter(Library(daemon_settings.library), j, duplicates="quarantine") for j in journals]
    if side_by_side == "workers":  # the daemon's: one sorter, one journal
        journals[1].close()
        journals[1], sorters[1] = journals[0], sorters[0]
    side_by_side = functools.partial(SideBySide, daemon_settings, threading.Barrier(2))

    shots = [daemon_settings.inbox / name for name in ("a.png", "b.png")]
    for shot in shots:
        shot.write_bytes(screenshot_png(15))
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda s, p: s.sort(side_by_side(), p), sorters, shots))  # type: ignore[arg-type]
    for journal in set(journals):
        journal.close()
    assert sorted(o.decision.reason for o in outcomes if o.decision) == ["duplicate", "unsure"]


def test_an_unreadable_file_dated_in_the_future_does_not_wait_for_that_date(
    daemon_settings: Settings,
) -> None:
    """A truncated file whose mtime lies ahead (copied from a machine whose clock is fast, unpacked
    with the archive's dates) waited `unreadable_settle_s` plus the time to that date: a day ahead,
    a day in the inbox. Its date counts for nothing now: it waits `unreadable_settle_s`, as any."""
    daemon_settings.inbox.mkdir(parents=True)
    half = daemon_settings.inbox / "half.png"
    half.write_bytes(screenshot_png(16)[:300])
    ahead = time.time() + 86400
    os.utime(half, (ahead, ahead))
    sorter = Sorter(Library(daemon_settings.library), None, unreadable_settle_s=10.0)
    outcome = sorter.sort(stub_pipeline(daemon_settings), half)
    assert outcome.kind == "wait" and outcome.wait_s <= 10.0


def test_resuming_a_copy_says_the_files_copied_before_in_one_line(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Resuming a big interrupted `sort --copy` said a warning per file already copied (thousands of
    lines around the few new ones); now one line says how many, each still in its --json record and
    at debug level."""
    shots = tmp_path / "shots"
    shots.mkdir()
    for i in range(5):
        (shots / f"s{i}.png").write_bytes(screenshot_png(40 + i))
    assert cli.main(["sort", "--copy", *(str(shots / f"s{i}.png") for i in range(3))]) == 0
    capsys.readouterr()
    assert cli.main(["sort", "--copy", str(shots)]) == 0
    err = capsys.readouterr().err
    assert "3 file(s) already copied into the library before: skipped" in err
    assert err.count("copied into the library before") == 1 and "; skipped 3" in err
    assert len(_files(env.library)) == 5
    assert cli.main(["--log-level", "DEBUG", "sort", "--copy", "--json", str(shots)]) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["action"] for r in records] == ["skipped"] * 5
    assert all(str(env.library) in r["detail"] for r in records)
    assert sum(f"s{i}.png: skipped, copied into the library before" in err for i in range(5)) == 5
    assert "5 file(s) already copied into the library before: skipped" in err


def test_a_file_copied_into_one_library_is_copied_into_another_but_not_twice_into_one(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort --copy --library A` then `sort --copy --library B` of the same file: B was refused,
    "copied into the library before", naming the copy in A, which is not in B."""
    (tmp_path / "screens").mkdir()
    shot = tmp_path / "screens" / "a.png"
    shot.write_bytes(screenshot_png(11))
    one, other = tmp_path / "A", tmp_path / "B"
    for library in (one, other):
        assert cli.main(["sort", "--copy", "--json", str(shot), "--library", str(library)]) == 0
        assert json.loads(capsys.readouterr().out)["action"] != "skipped"
        assert len(_files(library)) == 1
    assert cli.main(["sort", "--copy", "--json", str(shot), "--library", str(one)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["action"] == "skipped" and str(_files(one)[0]) in again["detail"]
    assert len(_files(one)) == 1 and len(_files(other)) == 1 and shot.exists()


def test_a_file_named_to_sort_that_is_no_image_name_stays_where_it_is(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort ~/screens/*` takes in the notes, downloads in progress and JSON beside the screenshots:
    they went to _quarantine/unreadable/ as broken pictures. Only a file of an image name that does
    not decode belongs there; the others stay, each said once (and as a --json record)."""
    shots = tmp_path / "screens"
    shots.mkdir()
    others = {"notes.txt": b"todo", "faces.json": b"{}", "shot.png.part": screenshot_png(5)[:50]}
    for name, data in others.items():
        (shots / name).write_bytes(data)
    (shots / "broken.png").write_bytes(b"not a picture")
    (shots / "ok.PNG").write_bytes(screenshot_png(6))
    named = [str(p) for p in sorted(shots.iterdir())]
    assert cli.main(["sort", "--json", *named]) == 0
    lines = {Path(d["path"]).name: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert list(lines) == [Path(p).name for p in named]  # one record each, in input order
    for name, data in others.items():
        assert (shots / name).read_bytes() == data
        assert lines[name]["action"] == "skipped" and "not an image name" in lines[name]["detail"]
    assert lines["broken.png"]["reason"] == "unreadable" and lines["ok.PNG"]["action"] != "skipped"
    assert sorted(p.name for p in _files(env.library)) == ["broken.png", "ok.PNG"]
    (shots / "more.txt").write_bytes(b"x")
    assert cli.main(["sort", str(shots / "more.txt")]) == 0
    err = capsys.readouterr().err
    assert err.count("more.txt: skipped, not an image name") == 1 and (shots / "more.txt").exists()
    # The daemon's sorter, handed such a name (the watcher never does), leaves it alike.
    journal = Journal.for_state_dir(env.state_dir)
    outcome = Sorter(Library(env.library), journal).sort(stub_pipeline(env), shots / "notes.txt")
    journal.close()
    assert outcome.kind == "skipped" and (shots / "notes.txt").exists()


@pytest.mark.parametrize("side_by_side", ["workers", "processes"])
def test_one_file_copied_by_two_sorts_at_once_is_copied_once(
    daemon_settings: Settings, tmp_path: Path, side_by_side: str
) -> None:
    """`sort --copy ~/screens/* ~/screens` names each file twice; its two workers copied both at
    once, each before the other was journaled, and the library got `a.png` and `a (1).png` (so did
    two `sort --copy` of one folder side by side): the copy rule was looked at outside the move lock."""
    shot = tmp_path / "screens" / "a.png"
    shot.parent.mkdir()
    shot.write_bytes(screenshot_png(16))
    journals = [Journal.for_state_dir(daemon_settings.state_dir) for _ in range(2)]
    if side_by_side == "workers":
        journals[1].close()
        journals[1] = journals[0]
    sorters = [Sorter(Library(daemon_settings.library), j, copy=True) for j in journals]
    side_by_side = functools.partial(SideBySide, daemon_settings, threading.Barrier(2))

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda s: s.sort(side_by_side(), shot, named=True), sorters))  # type: ignore[arg-type]
    for journal in set(journals):
        journal.close()
    assert sorted(o.kind for o in outcomes) == ["kept", "placed"]
    assert len(_files(daemon_settings.library)) == 1 and shot.exists()


def test_a_file_named_twice_is_sorted_once(
    env: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort ~/screens/* ~/screens` names each file twice: its second turn found it moved and said
    "gone meanwhile (moved by a person, the daemon or another `facesortd sort`)", a dry run planned
    it twice, and a JSON record each said one file had been both sorted and skipped."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for name in ("a.png", "b.png"):
        (shots / name).write_bytes(screenshot_png(len(name) + ord(name[0])))
    monkeypatch.chdir(tmp_path)
    named = ["screens/a.png", "screens/b.png", "screens", "screens/../screens/a.png", str(shots / "b.png")]
    assert cli.main(["sort", "--dry-run", "--json", *named]) == 0
    assert [Path(json.loads(line)["path"]).name for line in capsys.readouterr().out.splitlines()] == [
        "a.png",
        "b.png",
    ]
    assert cli.main(["sort", *named]) == 0
    err = capsys.readouterr().err
    assert "gone meanwhile" not in err and "skipped" not in err and len(_files(env.library)) == 2


def test_sort_dir_reports_every_symbolic_link_skipped_broken_and_looping_too(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort DIR` said a working symbolic link was skipped, but passed over a broken or looping one
    without a word (and a folder of only such links was "no images", exit 2): each is now a line
    and a `--json` record saying why, and none is followed or moved."""
    shots = tmp_path / "shots"
    shots.mkdir()
    (shots / "a.png").write_bytes(screenshot_png(1))
    (shots / "broken.png").symlink_to(shots / "nowhere.png")
    (shots / "loop.png").symlink_to(shots / "loop.png")
    (shots / "working.png").symlink_to(shots / "a.png")
    links = ["broken.png", "loop.png", "working.png"]
    assert cli.main(["sort", "--dry-run", str(shots)]) == 0
    err = capsys.readouterr().err
    for name in links:
        assert f"{shots / name}: skipped, a symbolic link (facesortd only moves real files)" in err
    assert cli.main(["sort", "--json", str(shots)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    skipped = {Path(r["path"]).name: r["detail"] for r in records if r["action"] == "skipped"}
    assert sorted(skipped) == links and all("symbolic link" in why for why in skipped.values())
    assert all((shots / name).is_symlink() for name in links) and not (shots / "a.png").exists()


def test_a_file_named_whose_name_watch_ignore_leaves_alone_is_skipped_with_how_to_sort_it(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort ~x.png` (or `sort ~/screens/*` taking in an editor's lock file) sorted a name the
    daemon ignores in the inbox: it is skipped with the pattern and the fix, a line and a `--json`
    record, and sorted once renamed."""
    shots = tmp_path / "shots"
    shots.mkdir()
    lock, hidden = shots / "~x.png", shots / ".x.png"
    lock.write_bytes(screenshot_png(1))
    hidden.write_bytes(screenshot_png(2))
    assert cli.main(["sort", str(lock)]) == 0
    assert (
        f"{lock}: skipped, its name matches watch.ignore's '~*' (a hidden, temp or lock file, which the "
        "daemon leaves alone); rename it to sort it"
    ) in capsys.readouterr().err
    assert cli.main(["sort", "--json", str(hidden)]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["action"] == "skipped" and "watch.ignore's '.*'" in record["detail"]
    assert lock.is_file() and hidden.is_file() and not _files(env.library)
    lock.rename(shots / "x.png")
    assert cli.main(["sort", str(shots / "x.png")]) == 0 and len(_files(env.library)) == 1
    with pytest.raises(SystemExit):
        cli.main(["sort", "--help"])
    assert "rename it to sort it" in " ".join(capsys.readouterr().out.split())  # said before it happens


class SideBySide:
    """A worker's pipeline that decides only once the other worker has decided too: two sorts of
    one picture at the same instant."""

    def __init__(self, settings: Settings, both_decided: threading.Barrier) -> None:
        self.pipeline = stub_pipeline(settings)
        self.both_decided = both_decided

    def decide(self, path: Path) -> Decision:
        decision = self.pipeline.decide(path)
        self.both_decided.wait(timeout=10)
        return decision


def test_an_unreadable_file_renumbered_by_a_fuse_drive_keeps_waiting_where_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A half-written file waits until it has stayed unchanged for a while before it counts as
    finished (and unreadable). On an inbox on a FUSE drive (exfat-fuse) it gets a new inode number
    whenever the kernel drops it from its cache, and its wait began anew each time: it could wait
    for ever. Renumbered, unwritten, it waits only what is left; written to, it waits anew."""
    clock = iter([100.0, 130.0, 140.0])
    monkeypatch.setattr("facesortd.sorter.time.monotonic", lambda: next(clock))
    path = tmp_path / "a.png"
    path.write_bytes(b"\x89PNG half")
    since = UnreadableSince()
    since.start([path])
    seen = path.stat()
    renumbered = tmp_path / "copy"
    renumbered.write_bytes(path.read_bytes())
    os.utime(renumbered, ns=(seen.st_atime_ns, seen.st_mtime_ns))
    os.replace(renumbered, path)
    assert since.left(path, 60.0) == 30.0
    with open(path, "ab") as fh:
        fh.write(b" more")
    assert since.left(path, 60.0) == 60.0


def test_a_file_placed_looks_for_what_a_killed_process_left_once(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before each move the journal is asked whether a killed process left a move or an `undo`
    half-way (``placement.end_killed_moves``): the sorter asked it under the move lock, and the move
    it then made asked again, the lock held all along (two more looks at the journal per file)."""
    daemon_settings.inbox.mkdir(parents=True)
    shot = daemon_settings.inbox / "a.png"
    shot.write_bytes(screenshot_png(15))
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    looks = []
    real_planned = Journal.planned
    monkeypatch.setattr(Journal, "planned", lambda self: looks.append(1) or real_planned(self))
    outcome = Sorter(Library(daemon_settings.library), journal).sort(stub_pipeline(daemon_settings), shot)
    assert outcome.kind == "placed" and len(looks) == 1
    journal.close()
