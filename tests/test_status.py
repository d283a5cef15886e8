"""`facesortd status`: counts that add up, what waits for review, what is stuck in the inbox and why."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from facesortd import cli
from facesortd.advice import advised
from facesortd.config import Settings, load_settings
from facesortd.content import file_hash
from facesortd.decide import Decision
from facesortd.journal import Journal, ModelId
from facesortd.model_store import model_id, model_in_force
from facesortd.package_data import SHIPPED_MODEL
from facesortd.shown_names import one_line


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, sub in (("INBOX", "inbox"), ("LIBRARY", "lib"), ("STATE_DIR", "state")):
        monkeypatch.setenv(f"FACESORTD_{key}", str(tmp_path / sub))
    return load_settings()


def _place(journal: Journal, src: Path, dest: Path, decision: Decision) -> None:
    """Journal a move as facesortd makes it (the file's bytes are its name, so each is unique)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists():
        dest.write_bytes(dest.name.encode())
    journal.finish(journal.plan(file_hash(dest), src, dest, decision, "m"), "done", dest)


def test_counts_add_up_to_the_files_placed(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    journal = Journal.for_state_dir(settings.state_dir)
    unsure = settings.library / "_quarantine" / "unsure"
    for name, guess in (("a.png", "happy"), ("b.png", "sad"), ("c.png", "angry")):  # different best guesses
        _place(journal, settings.inbox / name, unsure / name, Decision.quarantine("unsure", emotion=guess))
    _place(
        journal,
        settings.inbox / "d.png",
        settings.library / "_quarantine/no-face/d.png",
        Decision.quarantine("no-face"),
    )
    (unsure / "c.png").rename(settings.library / "c.png")  # a retrain re-examines c and sorts it
    (settings.library / "happy").mkdir()
    (settings.library / "c.png").rename(settings.library / "happy" / "c.png")
    _place(
        journal,
        unsure / "c.png",
        settings.library / "happy" / "c.png",
        Decision("sorted", "happy", confidence=0.9),
    )
    journal.close()
    assert cli.main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    expected = {"_quarantine/no-face": 1, "_quarantine/unsure": 2, "happy": 1}
    assert data["total"] == data["today"] == expected
    assert data["waiting_for_review"] == {"_quarantine/no-face": 1, "_quarantine/unsure": 2}
    assert data["model"]["threshold"] == settings.recognition.threshold and data["daemon"]["running"] is False
    assert cli.main(["status"]) == 0
    text = capsys.readouterr().out
    assert "in total: 4 file(s): _quarantine/no-face 1, _quarantine/unsure 2, happy 1" in text
    # A new user's walk: where to drop files, where to look, and how to review what waits.
    assert f"inbox: {settings.inbox}\nlibrary: {settings.library}\n" in text
    assert "waiting for your review: 3 file(s)" in text and f"`{advised('review')}`" in text
    assert "waiting for your review: 3 file(s)" in text and "threshold in force: 0.72" in text


def test_status_says_why_files_sit_in_the_inbox(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = settings.inbox
    (inbox / "album").mkdir(parents=True)
    (inbox / "notes.txt").write_text("x")
    (inbox / "new.png").write_bytes(b"new")
    (inbox / "undone.png").write_bytes(b"undone")
    (inbox / "failed.png").write_bytes(b"failed")
    journal = Journal.for_state_dir(settings.state_dir)
    move = journal.plan(
        file_hash(inbox / "undone.png"),
        inbox / "undone.png",
        settings.library / "x",
        Decision("sorted", "happy", confidence=1.0),
        "m",
    )
    journal.finish(move, "undone")
    journal.error(inbox / "failed.png", "move failed: disk full")
    journal.close()
    assert cli.main(["status", "--json"]) == 0
    inbox_state = json.loads(capsys.readouterr().out)["inbox"]
    why = {Path(e["path"]).name: e["why"] for e in inbox_state["stuck"]}
    assert inbox_state["count"] == 5
    assert why["album"].startswith("a folder") and "watch.recursive" in why["album"]
    assert "watch.extensions" in why["notes.txt"]
    assert why["new.png"] == "waiting to be sorted (the daemon is not running)"
    assert why["undone.png"].startswith("you undid its sort")
    assert why["failed.png"] == "failed: move failed: disk full"
    assert cli.main(["status"]) == 0
    assert "  album: a folder" in capsys.readouterr().out


def test_status_says_when_the_next_retrain_comes(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from facesortd.learn.retrain import retrain_if_due
    from facesortd.learn.review import user_labels

    journal = Journal.for_state_dir(settings.state_dir)
    for i in range(3):
        face = settings.state_dir / "faces" / f"{i}.png"
        face.parent.mkdir(parents=True, exist_ok=True)
        face.write_bytes(b"a kept face")
        journal.add_label(f"h{i}", "happy", "human", (face, (0, 0, 9, 9)), f"g{i}", face)
    assert retrain_if_due(settings, journal, user_labels(journal)) is None  # 3 < 20: the clock starts
    journal.close()
    assert cli.main(["status", "--json"]) == 0
    retrain = json.loads(capsys.readouterr().out)["retrain"]
    assert retrain["new_labels"] == 3 and retrain["after_labels"] == 20
    assert retrain["due_by_time_at"] == pytest.approx(__import__("time").time() + 24 * 3600, abs=60)
    assert cli.main(["status"]) == 0
    assert "next retrain: 3 new label(s); after 17 more or at " in capsys.readouterr().out


def test_old_journals_review_page_moves_are_read_as_labels(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before the ``labelled`` kind, a review-page move was journaled as ``sorted`` (model "review
    page"): opening such a journal reads it as the person's label it was."""
    import sqlite3

    journal = Journal.for_state_dir(settings.state_dir)
    unsure = settings.library / "_quarantine" / "unsure"
    _place(journal, settings.inbox / "a.png", unsure / "a.png", Decision.quarantine("unsure"))
    (settings.library / "sad").mkdir(parents=True)
    (unsure / "a.png").rename(settings.library / "sad" / "a.png")
    move = journal.plan(
        file_hash(settings.library / "sad" / "a.png"),
        unsure / "a.png",
        settings.library / "sad" / "a.png",
        Decision("sorted", "sad"),
        "review page",
    )
    journal.finish(move, "done", settings.library / "sad" / "a.png")
    # ... and recorded the label, as the page always has (review.Reviewer.record).
    journal.add_label(
        file_hash(settings.library / "sad" / "a.png"),
        "sad",
        "human",
        None,
        "a",
        settings.library / "sad" / "a.png",
    )
    _place(
        journal,
        settings.inbox / "b.png",
        settings.library / "happy" / "b.png",
        Decision("sorted", "happy", confidence=0.9),
    )
    journal.close()
    db = sqlite3.connect(settings.state_dir / "journal.sqlite")
    db.execute("DELETE FROM meta")  # as written before the labelled kind existed
    db.commit()
    db.close()
    assert cli.main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == {"happy": 1} and data["labelled"]["total"] == {"sad": 1}
    journal = Journal.for_state_dir(settings.state_dir)
    assert [m.action for m in journal.done_moves()] == ["sorted", "labelled", "quarantined"]
    journal.close()


def test_a_label_counts_as_a_label_whichever_way_a_person_gave_it(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A person labels on the review page or by moving files with a file manager (out of quarantine,
    or from one emotion folder to another): `status` counts each as their label, under the label they
    gave last, and no longer under the folder facesortd had put the file in."""
    from facesortd.learn.review import Reviewer
    from facesortd.review_page import queue
    from facesortd.review_page.decisions import Decisions

    journal = Journal.for_state_dir(settings.state_dir)
    unsure, lib = settings.library / "_quarantine" / "unsure", settings.library
    for name in ("page.png", "moved.png", "kept.png", "back.png"):
        _place(journal, settings.inbox / name, unsure / name, Decision.quarantine("unsure"))
    for name in ("fixed.png", "right.png"):
        _place(
            journal, settings.inbox / name, lib / "happy" / name, Decision("sorted", "happy", confidence=0.9)
        )
    items = {i.path.name: i for i in queue.scan(lib, {})}
    Decisions(settings, journal, queue.Contents()).label(items["page.png"], "sad")  # the review page
    for folder in ("sad", "angry"):
        (lib / folder).mkdir(exist_ok=True)
    (unsure / "moved.png").rename(lib / "sad" / "moved.png")  # a file manager, out of quarantine
    (unsure / "back.png").rename(lib / "sad" / "back.png")
    (lib / "happy" / "fixed.png").rename(lib / "angry" / "fixed.png")  # ... and a correction
    reviewer = Reviewer(settings, journal)
    assert reviewer.scan() == 3

    def counts() -> dict[str, dict[str, int]]:
        assert cli.main(["status", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["today"] == data["total"] and data["labelled"]["today"] == data["labelled"]["total"]
        return {"placed": data["total"], "labelled": data["labelled"]["total"]}

    assert counts() == {
        "placed": {"_quarantine/unsure": 1, "happy": 1},
        "labelled": {"angry": 1, "sad": 3},
    }
    assert cli.main(["status"]) == 0
    assert "labelled by you today: 4 file(s): angry 1, sad 3" in capsys.readouterr().out
    # Labels change as the person moves files on: a label taken back to quarantine no longer counts
    # (facesortd's placement there counts again), a page label moved on counts under its new label.
    (lib / "sad" / "back.png").rename(unsure / "back.png")
    (lib / "sad" / "page.png").rename(lib / "angry" / "page.png")
    assert reviewer.scan() == 2
    journal.close()
    assert counts() == {
        "placed": {"_quarantine/unsure": 2, "happy": 1},
        "labelled": {"angry": 2, "sad": 1},
    }


def test_counts_stay_quick_on_a_long_journal(settings: Settings) -> None:
    """Years of sorting: 10,000 placements, a quarter of them labelled since. Finding the later move
    of each placement went through every later move (5 s here, growing with the square)."""
    import sqlite3
    import time

    Journal.for_state_dir(settings.state_dir).close()
    db = sqlite3.connect(settings.state_dir / "journal.sqlite")
    now = time.time()
    with db:
        db.executemany(
            "INSERT INTO moves (hash, source, destination, action, reason, state, started, finished)"
            " VALUES (?, ?, ?, 'quarantined', 'unsure', 'done', ?, ?)",
            [
                (f"h{i}", f"/in/{i}.png".encode(), os.fsencode(settings.library / f"q/{i}.png"), now, now)
                for i in range(10_000)
            ],
        )
        db.executemany(
            "INSERT INTO labels (hash, label, source, grp, path, created)"
            " VALUES (?, 'sad', 'human', '', ?, ?)",
            [(f"h{i}", b"/x", now + 1) for i in range(0, 10_000, 4)],
        )
    db.close()
    journal = Journal.for_state_dir(settings.state_dir)
    # This thread's CPU time, not the wall clock's: a loaded machine stretches the one, not the other.
    started = time.thread_time()
    counts = journal.counts(settings.library)
    assert counts == {"_quarantine/unsure": 7500} and journal.labelled_counts() == {"sad": 2500}
    assert time.thread_time() - started < 2.0
    journal.close()


def test_labels_without_a_usable_face_are_counted_apart(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels whose file showed no usable face count for nothing: said so, without an empty list."""
    journal = Journal.for_state_dir(settings.state_dir)
    journal.add_label("h0", "happy", "human", None, "g0", settings.library / "happy" / "a.png")
    journal.close()
    assert cli.main(["status"]) == 0
    text = capsys.readouterr().out
    assert "labels for training: 0; 1 without a usable face, not used" in text


def test_status_says_when_the_daemon_runs_with_another_model_or_settings(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon reads the config once; after an edit `status` showed the new threshold as the one
    "in force" while the daemon sorted on with the old one."""
    from facesortd.service import Service

    service = Service(settings)  # this process stands in for the daemon: its pid is alive
    service.sorter.model = ModelId("20260101-000000.fsm.npz")  # used until a retrain swapped the model
    service._publish_status()
    service.journal.close()
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "other settings" not in out
    # Two model names a line apart read as a fault: the daemon takes up the new one at its next file.
    assert (
        "model 20260101-000000.fsm.npz (takes up default_emotion.fsm.npz, the model in force, at its" in out
    )
    # The same name, other content (a facesortd upgrade's shipped model): taken up all the same.
    for held, takes_up in (
        (ModelId(SHIPPED_MODEL, "0" * 16), True),
        (model_id(model_in_force(settings)), False),
    ):
        service.sorter.model = held
        service._publish_status()
        assert cli.main(["status"]) == 0
        assert ("the model in force, at its next file" in capsys.readouterr().out) is takes_up
    monkeypatch.setenv("FACESORTD_RECOGNITION__THRESHOLD", "0.6")  # as if the config were edited
    assert cli.main(["status", "--json"]) == 0
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert (
        "runs with other settings than these" in problem and "systemctl --user restart facesortd" in problem
    )


def test_the_status_file_shows_a_name_that_is_not_utf8_as_every_json_output(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """status.json wrote such a name with JSON's lone-surrogate escape (``\\udcff``), which strict
    readers refuse; now ``\\xff`` with the exact bytes beside, as `--json` writes it, and the daemon
    and `status` read the exact name back (the daemon compares it with the model in force)."""
    from facesortd.service import Service, _last_run_model
    from facesortd.state import STATUS_FILE
    from facesortd.status import gather

    name = os.fsdecode(b"m\xff.fsm.npz")
    service = Service(settings)  # this process stands in for the daemon: its pid is alive
    service.sorter.model = ModelId(name, "0123456789abcdef")
    service._publish_status()
    service.journal.close()
    written = (settings.state_dir / STATUS_FILE).read_bytes()
    assert b"udc" not in written and json.loads(written)["model"] == "m\\xff.fsm.npz"
    assert _last_run_model(settings) == service.sorter.model and gather(settings)["daemon"]["model"] == name
    assert cli.main(["status", "--json"]) == 0
    daemon = json.loads(capsys.readouterr().out)["daemon"]
    assert daemon["model"] == "m\\xff.fsm.npz"
    assert base64.b64decode(daemon["model_bytes_b64"]) == b"m\xff.fsm.npz"


def test_status_says_why_a_due_retrain_did_not_train(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A retrain due but unable to train stays due: status said "due now" at every look, with no
    word of why nothing happened."""
    from facesortd.learn.retrain import retrain_if_due
    from facesortd.learn.review import user_labels

    journal = Journal.for_state_dir(settings.state_dir)
    face = settings.state_dir / "faces" / "0.png"
    face.parent.mkdir(parents=True, exist_ok=True)
    face.write_bytes(b"a kept face")
    journal.add_label("h0", "happy", "human", (face, (0, 0, 9, 9)), "g0", face)
    result = retrain_if_due(settings, journal, user_labels(journal), force=True)  # as the 24 h clock would
    journal.close()
    assert result is not None and result.path is None
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "  the last one due could not train: not enough labels to hold some out yet" in out


def test_the_advice_for_figures_at_another_threshold_is_a_command_that_runs(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With another threshold in force, status said "`facesortd eval` measures it at the threshold
    in force": typed as said, eval stops with "the following arguments are required: DATASET"."""
    monkeypatch.setenv("FACESORTD_RECOGNITION__THRESHOLD", "0.5")
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"`{advised('eval', 'DATASET')}` measures it" in out and "facesortd eval` " not in out


def test_counts_are_of_the_library_status_names(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After `sort ~/screens --library ~/reactions`, status named the config's library and counted
    the files placed in ~/reactions among its own ("in total: 2 file(s)" for a library holding one)."""
    journal = Journal.for_state_dir(settings.state_dir)
    unsure = Decision.quarantine("unsure", emotion="happy")
    _place(journal, settings.inbox / "a.png", settings.library / "_quarantine/unsure/a.png", unsure)
    _place(journal, tmp_path / "b.png", tmp_path / "reactions/_quarantine/unsure/b.png", unsure)
    _place(journal, tmp_path / "c.png", Path(f"{settings.library}-old/_quarantine/unsure/c.png"), unsure)
    journal.close()
    assert cli.main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == data["today"] == {"_quarantine/unsure": 1}


def test_a_hidden_folder_in_the_inbox_is_not_sent_to_watch_recursive(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Syncthing's `.stfolder` in the inbox: status said "a folder: ... (move its files out, or set
    watch.recursive = true)", and with that set it still stayed (watch.ignore leaves it whole)."""
    (settings.inbox / ".stfolder").mkdir(parents=True)
    assert cli.main(["status", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)["inbox"]["stuck"]
    assert "watch.ignore" in entry["why"] and "watch.recursive" not in entry["why"]


def test_settings_from_this_shell_that_a_service_never_sees_are_named(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FACESORTD_* variable exported in the shell's profile: status said the daemon "runs with other
    settings ... restart it", and the restarted service, started by systemd, never saw it either."""
    from facesortd.service import Service

    service = Service(settings)
    service._publish_status()
    service.journal.close()
    monkeypatch.setenv("FACESORTD_WATCH__WORKERS", "3")
    assert cli.main(["status", "--json"]) == 0
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert "this shell sets " in problem and "FACESORTD_WATCH__WORKERS" in problem
    assert "a daemon systemd starts does not see: put those settings in the config file" in problem


def test_a_daemon_started_with_another_config_file_is_told_apart_from_an_edited_one(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The unit runs `facesortd --config FILE run`; `facesortd status` without it read the default
    config and said "runs with other settings ... restart it", which cannot help: the restarted
    daemon reads FILE again. The fix to name is the same --config."""
    from facesortd.service import Service

    service = Service(
        settings.model_copy(
            update={"recognition": settings.recognition.model_copy(update={"threshold": 0.6})}
        )
    )
    service._publish_status()
    service.journal.close()
    assert cli.main(["status", "--json"]) == 0
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert "give this command the same --config" in problem


def test_a_folder_named_like_an_emotion_but_for_case_is_said_with_the_merge(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`Happy/` made by hand beside `happy/`: its files became labels of an emotion "Happy", a class
    apart that splits the happy faces in two, and nothing said so. `status` and `doctor` say it now,
    with the merge; the class semantics stay as they are (a label is the folder's name)."""
    (settings.library / "happy").mkdir(parents=True)
    (settings.library / "Happy").mkdir()
    (settings.library / "Sad").mkdir()  # no `sad/` yet, but the model knows sad: the same slip
    assert cli.main(["status", "--json"]) == 0
    problems = json.loads(capsys.readouterr().out)["problems"]
    said = [p for p in problems if "only by case" in p]
    assert len(said) == 2, problems
    assert any("move the files of Happy/ into happy/ and remove Happy/" in p for p in said), said
    assert any("move the files of Sad/ into sad/ and remove Sad/" in p for p in said), said
    assert cli.main(["status"]) == 0
    assert "PROBLEM: " in capsys.readouterr().out
    assert cli.main(["doctor"]) == 1
    fix = [line for line in capsys.readouterr().out.splitlines() if "only by case" in line]
    assert len(fix) == 2 and all(line.startswith("FIX") for line in fix), fix


@pytest.mark.parametrize("invisible", ["\u200b", "\u200c", "\u200d", "\ufeff"])
def test_a_folder_named_like_an_emotion_but_for_a_character_of_no_width_is_said_with_the_merge(
    settings: Settings, capsys: pytest.CaptureFixture[str], invisible: str
) -> None:
    """`happy/`, its name pasted with a zero-width space: an emotion of its own that every listing
    shows as `happy`, and nothing said (case, encoding and space twins were)."""
    (settings.library / "happy").mkdir(parents=True)
    (settings.library / f"happy{invisible}").mkdir()
    (settings.library / f"{invisible}sad").mkdir()  # no `sad/` yet, but the model knows sad
    code = ascii(invisible)[1:-1]  # as said: by its code (shown as every problem line is, one_line)
    assert cli.main(["doctor"]) == 1
    fix = [line for line in capsys.readouterr().out.splitlines() if "only by characters of no width" in line]
    assert len(fix) == 2 and all(line.startswith("FIX") for line in fix), fix
    merges = [f"'happy{code}'/ into 'happy'/ and remove 'happy{code}'/", f"'{code}sad'/ into 'sad'/"]
    assert all(one_line(f"move the files of {merge}") in fix[0] + fix[1] for merge in merges), fix
    assert cli.main(["status"]) == 0
    said = one_line(f"PROBLEM: 'happy{code}'/ and 'happy'/ in {settings.library} differ only by characters")
    assert said in capsys.readouterr().out


def test_a_problem_naming_a_folder_with_a_line_break_is_one_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`PROBLEM: …` lines (and doctor's `FIX` lines) showed a name's line break as it is: the rest
    read as a line of its own."""
    (settings.library / "Sad\nday").mkdir(parents=True)
    (settings.library / "sad\nday").mkdir()
    assert cli.main(["status"]) == 0
    [problem] = [line for line in capsys.readouterr().out.splitlines() if "only by case" in line]
    assert problem.startswith("PROBLEM: Sad\\x0aday/ and sad\\x0aday/ in "), problem
    assert cli.main(["doctor"]) == 1
    [fix] = [line for line in capsys.readouterr().out.splitlines() if "only by case" in line]
    assert fix.startswith("FIX   Sad\\x0aday/ and sad\\x0aday/ in "), fix


def test_status_help_says_where_the_report_goes_and_what_its_exit_status_means(capsys) -> None:
    """A script around `status` read its exit status to find problems and always saw 0: the help
    now says the report is on stdout, the exit is 0 with problems too, and what to look for."""
    with pytest.raises(SystemExit):
        cli.main(["status", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "goes to stdout" in text
    assert "exits 0 whenever it could make one, problems included" in text
    assert '"PROBLEM:"' in text


FIX_FIRST = "daemon: not running (it cannot start until the PROBLEM below is fixed; then `"


@pytest.mark.parametrize("folder", ["inbox", "library", "state_dir"])
def test_a_folder_setting_a_file_holds_is_fixed_before_the_daemon_is_started(
    settings: Settings, capsys: pytest.CaptureFixture[str], folder: str
) -> None:
    """A file where the library should be: `status` advised "start it with `facesortd run`", which
    refuses to start until that is fixed."""
    path = getattr(settings, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a folder")
    assert cli.main(["status"]) == 2
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith(FIX_FIRST) and said[0].endswith(" run` starts it)")
    assert said[1].startswith(f"PROBLEM: {folder} {path} is not a folder")


def test_an_inbox_and_library_that_overlap_are_a_problem(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A library inside the inbox: `run` refuses to start, `doctor` says FIX, and `status` said only
    "not running (start it with `facesortd run`)", the command that refuses."""
    monkeypatch.setenv("FACESORTD_LIBRARY", str(settings.inbox / "library"))
    assert cli.main(["status"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith(FIX_FIRST) and said[0].endswith(" run` starts it)")
    assert said[1] == (
        f"PROBLEM: inbox {settings.inbox} and library {settings.inbox / 'library'} overlap: keep them as "
        "separate folders (set inbox or library in the config, or give `sort` another --library)"
    )
