"""The review page over HTTP: token and method rules, ids instead of paths, decisions that are
file-manager moves (journaled, labelled, undoable), the queue order, caching and paging."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from foreign_fs import coarse_now, renumber, written_over
from review_setup import install_model, journal_labels, quarantine, review_settings, scratch_dir, serving
from synthetic import stored_png
from waiting import HUNG_S, wait_until

from facesortd import cli, placement
from facesortd.config import Settings
from facesortd.content import holds
from facesortd.journal import UNDOING, Journal, claim_mark
from facesortd.learn.review import Reviewer, user_labels
from facesortd.quarantine import QUARANTINE_DIR
from facesortd.recovery import recover
from facesortd.review_page import queue
from facesortd.review_page.cache import CLAIM_LEFT
from facesortd.review_page.classes import classes
from facesortd.review_page.queue import scan
from facesortd.review_page.server import TOKEN_HEADER, ReviewServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    with scratch_dir(tmp_path) as root:
        yield review_settings(root, monkeypatch)


class Client:
    def __init__(self, server: ReviewServer) -> None:
        self.base = f"http://127.0.0.1:{server.server_address[1]}"
        self.token = server.app.token

    def request(
        self, path: str, body: dict | None = None, token: str | None = "header", method: str | None = None
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"}
        url = self.base + path
        if token == "header":
            headers[TOKEN_HEADER] = self.token
        elif token == "query":
            url += ("&" if "?" in url else "?") + "token=" + self.token
        elif token is not None:
            headers[TOKEN_HEADER] = token
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req) as res:
                return res.status, res.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get(self, path: str) -> dict:
        status, body = self.request(path)
        assert status == 200, body
        return json.loads(body)

    def post(self, path: str, body: dict | None = None) -> tuple[int, dict]:
        status, raw = self.request(path, body or {}, method="POST")
        return status, json.loads(raw)


def test_every_request_needs_the_token_and_changes_need_post(settings: Settings) -> None:
    quarantine(settings, "unsure", [("a.png", "happy")])
    with serving(settings) as server:
        assert server.server_address[0] == "127.0.0.1"
        client = Client(server)
        item = client.get("/api/items")["items"][0]["id"]
        for path in ("/", "/static/page.js", "/api/items", f"/thumb?id={item}", "/api/state"):
            assert client.request(path, token=None)[0] == 401, path
            status, reply = client.request(path, token="wrong")
            assert status == 403 and b"an earlier run of" in reply, path  # a page left open over a restart
            assert client.request(path, token="query")[0] == 200, path
        # A change needs POST, with the token in the header (a form on another site cannot set it).
        assert client.request("/api/label", token="query", method="GET")[0] == 405
        status, _ = client.request(
            f"/api/label?token={client.token}", {"id": item, "label": "happy"}, token=None
        )
        assert status == 401
        assert client.request("/api/items", {}, method="POST")[0] == 405
        assert client.request("/static/../review_page/server.py", token="query")[0] == 404
        page = client.request("/", token="query")[1].decode()
        assert client.token in page  # the page's own scripts and styles carry it


def test_only_listed_quarantine_files_can_be_read_or_moved(settings: Settings, tmp_path: Path) -> None:
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    outside = tmp_path / "secret.png"
    outside.write_bytes(files["a.png"].read_bytes())
    (settings.library / "_quarantine" / "unsure" / "link.png").symlink_to(outside)
    with serving(settings) as server:
        client = Client(server)
        listed = client.get("/api/items")["items"]
        assert sorted(i["name"] for i in listed) == ["a.png", "b.png"]  # the symlink is never listed
        for bad in ("../../secret.png", str(outside), "0" * 24):
            assert client.post("/api/label", {"id": bad, "label": "happy"})[0] == 404
            assert client.request(f"/thumb?id={bad}", token="query")[0] == 404
        # A file replaced since it was listed is another file: refused until the page reloads.
        b = next(i["id"] for i in listed if i["name"] == "b.png")
        files["b.png"].write_bytes(files["a.png"].read_bytes())
        assert client.post("/api/label", {"id": b, "label": "sad"})[0] == 404
        a = next(i["id"] for i in listed if i["name"] == "a.png")
        status, reply = client.post("/api/label", {"id": a, "label": "../../etc"})
        assert status == 409 and "cannot be a class" in reply["error"]
    assert outside.is_file() and files["a.png"].is_file() and files["b.png"].is_file()
    assert not (settings.library / "etc").exists()


def test_a_label_is_a_journaled_move_and_a_human_label_undone_by_facesortd_undo(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    (settings.library / "happy" / "a.png").write_bytes(b"another file of that name")
    with serving(settings) as server:
        client = Client(server)
        ids = {i["name"]: i["id"] for i in client.get("/api/items")["items"]}
        status, done = client.post("/api/label", {"id": ids["a.png"], "label": "happy"})
        assert status == 200 and done["path"] == str(settings.library / "happy" / "a (1).png")  # no overwrite
    assert not files["a.png"].exists()
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        move = journal.done_moves(limit=1)[0]
        assert (move.source, move.destination, move.emotion) == (files["a.png"], Path(done["path"]), "happy")
        assert (move.action, move.model) == ("labelled", "review page")  # a person's label, not a sort
        assert [(label, source) for _h, label, source, _f, _g, _t in journal.labels()] == [("happy", "human")]
    finally:
        journal.close()
    # `status` counts the file as labelled by the person, never as a file facesortd sorted.
    assert cli.main(["status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "happy" not in data["total"] and "happy" not in data["today"]
    assert data["labelled"] == {"total": {"happy": 1}, "today": {"happy": 1}}
    assert cli.main(["status"]) == 0
    assert "labelled by you today: 1 file(s): happy 1" in capsys.readouterr().out
    assert cli.main(["undo"]) == 0
    assert (
        files["a.png"].is_file()
        and (settings.library / "happy" / "a.png").read_bytes() == b"another file of that name"
    )
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        assert journal.labels() == []  # undoing the move took the label back with it
        assert journal.labelled_counts() == {}
    finally:
        journal.close()


def test_facesortd_undo_takes_away_the_empty_class_folder_a_page_label_made(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd undo` of a page label that made a new class left its empty folder, which stayed a
    class with a key until removed by hand (the page's own `u` took it away). It goes now, as with
    `u`, if that label made it and it is empty; one there before, or holding a file since, stays.
    Its going is said (a class key gone from the page unexplained), and --dry-run says it would go."""
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad"), ("c.png", "sad")])
    lib = settings.library
    (lib / "sad").mkdir(exist_ok=True)
    with serving(settings) as server:
        client = Client(server)
        ids = {i["name"]: i["id"] for i in client.get("/api/items")["items"]}
        for name, label in (("a.png", "smug"), ("b.png", "bored"), ("c.png", "sad")):
            assert client.post("/api/label", {"id": ids[name], "label": label, "new": True})[0] == 200
    (lib / "bored" / "mine.png").write_bytes(b"dropped there since")
    capsys.readouterr()
    assert cli.main(["undo", "3", "--dry-run"]) == 0
    planned = capsys.readouterr().out.splitlines()
    assert planned.count("would remove the empty folder smug/ that labelling a.png had made") == 1
    assert not any("bored" in line and "remove" in line for line in planned)
    assert (lib / "smug" / "a.png").is_file()
    assert cli.main(["undo", "3"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[said.index(f"{lib / 'smug' / 'a.png'} -> {files['a.png']}") + 1] == (
        "removed the empty folder smug/ that labelling a.png had made"
    )
    assert sum("removed the empty folder" in line for line in said) == 1
    assert all(f.is_file() for f in files.values())
    assert not (lib / "smug").exists()
    assert [p.name for p in (lib / "bored").iterdir()] == ["mine.png"] and (lib / "sad").is_dir()
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        assert "smug" not in [c["name"] for c in classes(settings, journal)]
    finally:
        journal.close()


def _labelled_a_new_class(settings: Settings) -> dict[str, Path]:
    """a.png in the quarantine labelled on the page with a class made for it (smug): the undo tests'
    start; the quarantined files by name."""
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    with serving(settings) as server:
        client = Client(server)
        (item,) = client.get("/api/items")["items"]
        assert client.post("/api/label", {"id": item["id"], "label": "smug", "new": True})[0] == 200
    return files


@pytest.mark.parametrize("killed", ["linked back", "put back"])
def test_recovery_finishing_an_undo_of_a_page_label_takes_away_its_label_and_empty_folder(
    settings: Settings, killed: str
) -> None:
    """`undo` of a page label that made a new class, killed between the link back into the
    quarantine and the unlink in the library (``linked back``) or after the put-back (``put back``):
    recovery finished it, but left the label counted and the empty folder, a class with a key on
    the review page. It takes both with it now, as `undo` does, and says the folder's going."""
    files = _labelled_a_new_class(settings)
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        [move] = journal.done_moves()
        journal.set_meta(UNDOING, str(move.id))  # what undo records, up to the instant it died
        journal.finish(move.id, "undone")
        os.link(move.destination, files["a.png"])
        if killed == "put back":
            move.destination.unlink()
        lines = list(recover(journal))
        assert lines[-1].endswith("; removed the empty folder smug/ that labelling a.png had made")
        assert journal.labels() == [] and journal.labelled_counts() == {}
        assert "smug" not in [c["name"] for c in classes(settings, journal)]
    finally:
        journal.close()
    assert files["a.png"].is_file() and not (settings.library / "smug").exists()


def test_a_claim_a_crash_left_in_the_quarantine_says_what_it_is(settings: Settings) -> None:
    """A move's claim a crash left, which the daemon quarantines as unreadable, was shown as any file
    that is no picture ("unreadable: ..."), leaving the person to wonder what deleting it would
    lose. It says what it is now, on its tile and when opened; another undecodable file as before.
    The reply marks it a claim, which the page says alone: it said "unreadable: <this>. A class key
    still moves it …", as if it were a picture it could not decode."""
    folder = settings.library / QUARANTINE_DIR / "unreadable"
    folder.mkdir(parents=True)
    (folder / "claim.png").write_bytes(claim_mark(3, hashlib.sha256(b"a screenshot").hexdigest()))
    (folder / "broken.png").write_bytes(b"not a picture")
    with serving(settings) as server:
        client = Client(server)
        ids = {i["name"]: i["id"] for i in client.get("/api/items")["items"]}
        guesses = {name: client.get(f"/api/guesses?id={ids[name]}") for name in ids}
        thumbs = {name: client.request(f"/thumb?id={ids[name]}") for name in ids}
    errors = {name: g["error"] for name, g in guesses.items()}
    assert errors["claim.png"] == CLAIM_LEFT and CLAIM_LEFT not in errors["broken.png"]
    assert guesses["claim.png"]["claim"] is True and "claim" not in guesses["broken.png"]
    assert thumbs["claim.png"][0] == thumbs["broken.png"][0] == 200
    assert thumbs["claim.png"][1] != thumbs["broken.png"][1]  # its tile names it too


def test_a_journal_from_before_made_folders_were_recorded_is_undone_leaving_the_folder(
    settings: Settings,
) -> None:
    """Opened, an older journal gets the column; a label of its own is undone as before, its folder
    kept (not known to be the label's)."""
    files = _labelled_a_new_class(settings)
    db = sqlite3.connect(settings.state_dir / "journal.sqlite")
    db.execute("ALTER TABLE moves DROP COLUMN made_folder")  # the journal as older versions wrote it
    db.commit()
    db.close()
    assert cli.main(["undo"]) == 0
    assert files["a.png"].is_file() and (settings.library / "smug").is_dir()


def test_closing_the_page_waits_for_a_label_in_flight(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while a label is being recorded: the file's move and its label both land before the
    journal closes (a closed journal under the request lost the label and, racing, crashed sqlite)."""
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    recording, release = threading.Event(), threading.Event()
    record = Reviewer.record

    def slow_record(self: Reviewer, path: Path, digest: str, label: str) -> None:
        recording.set()
        release.wait(10)
        record(self, path, digest, label)

    monkeypatch.setattr(Reviewer, "record", slow_record)
    replies: list[tuple[int, dict]] = []
    with serving(settings) as server:
        client = Client(server)
        (item,) = client.get("/api/items")["items"]
        poster = threading.Thread(
            target=lambda: replies.append(client.post("/api/label", {"id": item["id"], "label": "happy"}))
        )
        poster.start()
        assert recording.wait(10)
        closer = threading.Thread(target=lambda: (server.shutdown(), server.close()))
        closer.start()
        closer.join(0.3)
        assert closer.is_alive()  # still waiting for the request
        release.set()
        closer.join(timeout=HUNG_S)
        poster.join(timeout=HUNG_S)
    assert replies and replies[0][0] == 200, replies
    assert not files["a.png"].exists() and (settings.library / "happy" / "a.png").is_file()
    assert journal_labels(settings) == ["happy"]


def test_page_undo_takes_back_labels_and_no_face_marks_newest_first(settings: Settings) -> None:
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad"), ("c.png", "sad")])
    with serving(settings) as server:
        client = Client(server)
        ids = {i["name"]: i["id"] for i in client.get("/api/items")["items"]}
        assert client.post("/api/label", {"id": ids["c.png"], "label": "sad"})[0] == 200
        assert client.post("/api/label", {"id": ids["a.png"], "label": "Smug Face", "new": True})[0] == 200
        assert (settings.library / "smug-face" / "a.png").is_file()  # a new class makes its folder
        assert client.post("/api/no-face", {"id": ids["b.png"]})[0] == 200
        listed = client.get("/api/items")["items"]
        assert [(i["name"], i["dismissed"]) for i in listed] == [("b.png", True)]  # stays, marked
        assert files["b.png"].is_file()
        reply = client.post("/api/undo")[1]
        assert reply["name"] == "b.png" and reply["unmade"] == ""  # a mark made no folder
        assert client.get("/api/items")["items"][0]["dismissed"] is False
        reply = client.post("/api/undo")[1]
        assert reply["path"] == str(files["a.png"])
        assert files["a.png"].is_file()
        assert not (settings.library / "smug-face").exists()  # the folder the label made went with it
        # and the page says so: a class key had gone unexplained
        assert reply["unmade"] == "removed the empty folder smug-face/ that labelling a.png had made"
        # Put back beside another file saved under its name since: the page finds it by the id it has
        # as it is back (it looked for the other file, and said that one had left the quarantine).
        files["c.png"].write_bytes(b"another")
        reply = client.post("/api/undo")[1]
        listed = {i["name"]: i["id"] for i in client.get("/api/items")["items"]}
        assert reply["path"] == str(files["c.png"].with_name("c (1).png")) and reply["name"] == "c.png"
        assert reply["id"] == listed["c (1).png"] != ids["c.png"]
        status, reply = client.post("/api/undo")
        assert status == 409 and "nothing to undo" in reply["error"]
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        assert journal.labels() == []  # the label was withdrawn with the move
    finally:
        journal.close()


def test_each_tab_undoes_its_own_decisions(settings: Settings) -> None:
    """`u` took back the newest decision of any tab: with the page open twice, one tab's `u` put the
    file the other had just labelled back into quarantine. Now each tab takes back its own."""
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad"), ("c.png", "sad")])
    with serving(settings) as server:
        one, two = Client(server), Client(server)
        ids = {i["name"]: i["id"] for i in one.get("/api/items")["items"]}
        assert one.post("/api/label", {"id": ids["a.png"], "label": "happy", "tab": "one"})[0] == 200
        assert two.post("/api/label", {"id": ids["b.png"], "label": "sad", "tab": "two"})[0] == 200
        assert two.post("/api/no-face", {"id": ids["c.png"], "tab": "two"})[0] == 200
        status, reply = one.post("/api/undo", {"tab": "one"})
        assert status == 200 and reply["name"] == "a.png"
        assert files["a.png"].is_file() and (settings.library / "sad" / "b.png").is_file()
        status, reply = one.post("/api/undo", {"tab": "one"})
        assert status == 409 and "nothing to undo in this tab" in reply["error"], reply
        assert "or this run of `facesortd review` started" in reply["error"]  # its decisions of a run before
        assert (settings.library / "sad" / "b.png").is_file()
        assert [two.post("/api/undo", {"tab": "two"})[1]["name"] for _ in range(2)] == ["c.png", "b.png"]
        assert all(f.is_file() for f in files.values())
        assert not any(i["dismissed"] for i in one.get("/api/items")["items"])


def test_a_misspelt_class_is_refused_naming_the_nearest_and_a_new_one_must_be_asked_for(
    settings: Settings,
) -> None:
    """A label that is none of the classes (a script's or a stale page's typo, ``hapy``) was moved
    into a folder made for it: the model learnt a class nobody meant, and the folder, left after
    undo, took a key and moved the keys of the classes after it. Now it is refused, naming the
    nearest class, and nothing moves; a new class is made when asked for as one, and an empty
    folder it made goes with its undo, its key with it."""
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    lib = settings.library
    folders = sorted(lib.iterdir())
    with serving(settings) as server:
        client = Client(server)
        keys = client.get("/api/state")["classes"]
        ids = {i["name"]: i["id"] for i in client.get("/api/items")["items"]}
        status, reply = client.post("/api/label", {"id": ids["a.png"], "label": "hapy"})
        assert status == 409 and "hapy is not a class (did you mean happy?)" in reply["error"], reply
        assert reply["unknown_class"] == "hapy" and "a.png stays where it is" in reply["why"]
        status, reply = client.post("/api/label", {"id": ids["a.png"], "label": "xyzzy"})
        assert status == 409 and reply["error"].startswith("xyzzy is not a class: "), reply
        assert sorted(lib.iterdir()) == folders and files["a.png"].is_file()
        assert client.post("/api/label", {"id": ids["b.png"], "label": "Sad"})[0] == 200  # a known one
        assert client.post("/api/label", {"id": ids["a.png"], "label": "smug", "new": True})[0] == 200
        assert (lib / "smug" / "a.png").is_file()
        assert "smug" in [c["name"] for c in client.get("/api/state")["classes"]]
        assert client.post("/api/undo")[0] == 200
        assert sorted(lib.iterdir()) == folders and files["a.png"].is_file()
        assert client.get("/api/state")["classes"] == keys
    assert journal_labels(settings) == ["sad"]


def test_a_class_keeps_its_key_when_another_is_made(settings: Settings) -> None:
    """The keys went by the sorted class names: a class made (smug) took the key of surprised, which
    moved on to the next, and a person pressing the key they had learnt gave the wrong label. A
    new class takes the next free key; one that is no class any more frees its key, and the keys
    stay across runs of the page."""
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    first = [("angry", "1"), ("happy", "2"), ("sad", "3"), ("surprised", "4")]
    keys = lambda client: [(c["name"], c["key"]) for c in client.get("/api/state")["classes"]]  # noqa: E731
    with serving(settings) as server:
        client = Client(server)
        assert keys(client) == first
        ids = {i["name"]: i["id"] for i in client.get("/api/items")["items"]}
        assert client.post("/api/label", {"id": ids["a.png"], "label": "smug", "new": True})[0] == 200
        assert keys(client) == [*first, ("smug", "5")]
        assert client.post("/api/undo")[0] == 200  # smug is no class any more: 5 is free again
        assert keys(client) == first
        assert client.post("/api/label", {"id": ids["b.png"], "label": "bored", "new": True})[0] == 200
        assert keys(client) == [*first, ("bored", "5")]
    (settings.library / "again").mkdir()  # a class made outside the page: the next free key
    with serving(settings) as server:
        assert keys(Client(server)) == [*first, ("bored", "5"), ("again", "6")]
    assert files["a.png"].is_file() and not files["b.png"].exists()


def test_a_name_that_is_not_utf8_is_shown_as_every_json_output_shows_it(settings: Settings) -> None:
    """The page's replies wrote such a name with JSON's lone-surrogate escape (``\\udcff``), which
    the page showed as U+FFFD; now ``\\xff`` with the exact bytes beside, as `--json` writes it."""
    install_model(settings)
    drawn = quarantine(settings, "unsure", [("a.png", "happy")])["a.png"]
    odd = drawn.with_name(os.fsdecode(b"\xff shot.png"))
    drawn.rename(odd)  # OpenCV cannot write under such a name
    with serving(settings) as server:
        client = Client(server)
        status, raw = client.request("/api/items")
        assert status == 200 and b"udc" not in raw
        [item] = json.loads(raw)["items"]
        assert (
            item["name"] == "\\xff shot.png" and base64.b64decode(item["name_bytes_b64"]) == b"\xff shot.png"
        )
        status, done = client.post("/api/label", {"id": item["id"], "label": "happy"})
        assert status == 200 and done["name"] == "\\xff shot.png"
        assert done["path"] == f"{settings.library}/happy/\\xff shot.png" and "path_bytes_b64" in done
    assert (settings.library / "happy" / odd.name).is_file()


def test_queue_order_guesses_boxes_and_thumbnails_made_once(settings: Settings) -> None:
    install_model(settings)
    quarantine(settings, "no-face", [("n1.png", "sad")], seed=1)
    quarantine(settings, "mixed", [("m1.png", "sad")], seed=2)
    quarantine(settings, "unsure", [("new.png", "happy"), ("old.png", "angry")], seed=3)
    with serving(settings) as server:
        client = Client(server)
        listing = client.get("/api/items")
        assert [i["name"] for i in listing["items"]] == ["new.png", "old.png", "n1.png", "m1.png"]
        assert list(listing["counts"]) == ["unsure", "no-face", "mixed"]
        only = client.get("/api/items?reason=mixed")
        assert [i["name"] for i in only["items"]] == ["m1.png"] and only["total"] == 1
        # The page of a file to show (one `u` put back, or the next one after a file gone): the
        # page of the listing holding it now, where it is; the one asked for if it is not listed.
        m1 = listing["items"][3]["id"]
        holding = client.get(f"/api/items?offset=0&limit=2&id={m1}")
        assert holding["offset"] == 2 and [i["name"] for i in holding["items"]] == ["n1.png", "m1.png"]
        assert client.get(f"/api/items?offset=0&limit=2&reason=unsure&id={m1}")["offset"] == 0
        new = listing["items"][0]["id"]
        guess = client.get(f"/api/guesses?id={new}")
        assert len(guess["boxes"]) == 1 and len(guess["guesses"]) == 3
        assert guess["guesses"][0][0] == "happy" and guess["guesses"][0][1] >= guess["guesses"][1][1]
        status, first = client.request(f"/thumb?id={new}")
        thumbs = list((settings.state_dir / "review" / "thumbs").rglob("*.jpg"))
        assert status == 200 and first[:2] == b"\xff\xd8" and len(thumbs) == 1
        made = thumbs[0].stat().st_mtime_ns
        assert client.request(f"/thumb?id={new}")[1] == first and thumbs[0].stat().st_mtime_ns == made


def test_guesses_are_made_again_by_a_model_written_under_the_name_of_the_one_before(
    settings: Settings,
) -> None:
    """The guesses were kept by the model's file name: a model written anew under it (a facesortd
    upgrade's shipped model, a pinned file replaced) had the one before's guesses shown, in this run
    of the page and the next ones, and Enter gave their top guess as the label."""
    from facesortd import model_store

    install_model(settings)
    quarantine(settings, "unsure", [("new.png", "happy")], seed=3)
    in_force = model_store.model_in_force(settings)
    assert in_force is not None
    with serving(settings) as server:
        client = Client(server)
        new = client.get("/api/items")["items"][0]["id"]
        assert client.get(f"/api/guesses?id={new}")["guesses"][0][0] == "happy"
        renamed = model_store.load_model(in_force)
        renamed.labels = [f"{label}-2" for label in renamed.labels]
        renamed.save(in_force)  # the same name, another model
        assert client.get(f"/api/guesses?id={new}")["guesses"][0][0] == "happy-2"
    with serving(settings) as server:
        client = Client(server)
        new = client.get("/api/items")["items"][0]["id"]
        assert client.get(f"/api/guesses?id={new}")["guesses"][0][0] == "happy-2"


def test_the_file_shown_large_is_a_picture_big_enough_to_read_a_face(settings: Settings) -> None:
    """The current file was the 360-px thumbnail stretched: a face a tenth of a 1080p screenshot
    kept 20 px of it. The large picture is its own, up to VIEW_SIDE, made once."""
    from facesortd.review_page.cache import THUMB_SIDE, VIEW_SIDE

    big = settings.library / "_quarantine" / "unsure" / "big.png"
    big.parent.mkdir(parents=True)
    cv2.imwrite(str(big), np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8))
    with serving(settings) as server:
        client = Client(server)
        item = client.get("/api/items")["items"][0]["id"]
        sides = {}
        for route in ("thumb", "view"):
            status, data = client.request(f"/{route}?id={item}")
            assert status == 200
            sides[route] = max(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2])
        assert sides == {"thumb": THUMB_SIDE, "view": VIEW_SIDE}
        assert client.request(f"/view?id={item}")[1] == data  # made once
    assert len(list((settings.state_dir / "review" / "views").rglob("*.jpg"))) == 1


def test_the_cache_keeps_only_files_still_in_quarantine_across_runs(settings: Settings) -> None:
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    cache = settings.state_dir / "review"
    with serving(settings) as server:
        client = Client(server)
        ids = {i["name"]: i["id"] for i in client.get("/api/items")["items"]}
        for item in ids.values():
            client.request(f"/thumb?id={item}")
            client.request(f"/view?id={item}")
            client.get(f"/api/guesses?id={item}")
        assert client.post("/api/no-face", {"id": ids["a.png"]})[0] == 200
        assert client.post("/api/no-face", {"id": ids["b.png"]})[0] == 200
    files["a.png"].unlink()  # the person deleted it
    with serving(settings) as server:
        kept = sorted(p.name.partition("-")[0] for p in cache.glob("*/*/*"))
        assert set(server.app.decisions.marks.marks) == {ids["b.png"]}
    assert kept == [ids["b.png"]] * 3  # its thumbnail, its large picture and its guesses


def test_learning_and_model_panels_and_retrain_now(settings: Settings) -> None:
    install_model(settings)
    names = [
        (f"{'abcdefgh'[i // 4]}{i}.png", ("angry", "happy", "sad", "surprised")[i % 4]) for i in range(16)
    ]
    quarantine(settings, "unsure", names)
    with serving(settings) as server:
        client = Client(server)
        state = client.get("/api/state")
        assert [(c["name"], c["key"]) for c in state["classes"]] == [
            ("angry", "1"),
            ("happy", "2"),
            ("sad", "3"),
            ("surprised", "4"),
        ]
        assert state["learning"]["next_retrain_in"] == 20
        assert state["model"]["plots"] == ["confusion.png", "reliability.png"]
        status, png = client.request("/plot?name=reliability.png")
        assert status == 200 and png[:4] == b"\x89PNG"
        ids = {i["name"]: i["id"] for i in client.get("/api/items?limit=100")["items"]}
        for name, emotion in names:
            assert client.post("/api/label", {"id": ids[name], "label": emotion})[0] == 200
        learning = client.get("/api/state")["learning"]
        assert learning["labels"] == {"angry": 4, "happy": 4, "sad": 4, "surprised": 4}
        assert learning["next_retrain_in"] == 4
        assert client.post("/api/retrain")[0] == 202
        wait_until(lambda: not client.get("/api/state")["learning"]["retraining"])
        learning = client.get("/api/state")["learning"]
        said = learning["message"]
        assert "your labels the model in force has not learnt, each scored by a new model" in said, said
        assert learning["next_retrain_in"] == 20 and learning["last_retrain"] is not None


def test_the_class_list_offers_only_folders_the_page_can_post_as_they_are(settings: Settings) -> None:
    # Not UTF-8 (never a label), facesortd's own quarantine, hidden, and names the page would turn
    # into another folder ("Happy" -> happy/) are left out; happy/ is offered.
    for name in (b"\xff", b"happy", QUARANTINE_DIR.encode(), b".thumbnails", b"Happy", b"smug face"):
        os.makedirs(os.path.join(os.fsencode(settings.library), name))
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        assert classes(settings, journal) == [{"name": "happy", "key": "1"}]
    finally:
        journal.close()


def _cpu_time(run: Callable[[], object], times: int = 3) -> float:
    """The least CPU time of this thread over a few runs of ``run``: unlike the time on the clock,
    barely changed by whatever else the machine is doing."""
    best = float("inf")
    for _ in range(times):
        started = time.thread_time()
        run()
        best = min(best, time.thread_time() - started)
    return best


def _reads() -> int:
    """The read calls this process has made so far (the kernel's count, so reads from C too)."""
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(io["syscr"])


def test_a_big_quarantine_pages_without_reading_its_files_in_time_linear_in_them(settings: Settings) -> None:
    """Listing is a folder walk, not per-file work (hashing, decoding) nor work per pair of files, so
    a quarantine of 10,000 files is listed anew for every page. Counted, not timed on the clock
    (which a loaded machine made flaky until 2026-12-03): serving a page of 4,000 files reads none
    of them (the process's read calls), and the listing's CPU time grows with the files (four
    times the files: about four times the time, where work per pair of files would take sixteen)."""
    folder = settings.library / "_quarantine" / "unsure"
    folder.mkdir(parents=True)

    def fill(n: int) -> None:
        for k in range(n):
            (folder / f"shot{k:05d}.png").write_bytes(b"x")

    with serving(settings) as server:
        fill(1_000)
        few = _cpu_time(lambda: server.app.listing("", 940, 60))
        fill(4_000)
        many = _cpu_time(lambda: server.app.listing("", 3940, 60))
        assert many < 8 * few, (many, few)
        client = Client(server)
        before = _reads()
        page = client.get("/api/items?offset=3950&limit=60")
        assert _reads() - before < 400
        assert page["total"] == 4_000 and len(page["items"]) == 50


def test_review_command_prints_the_url_first_and_refuses_a_taken_port(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FACESORTD_STATE_DIR": str(tmp_path / "state2")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facesortd", "review", "--no-browser", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        with urllib.request.urlopen(url) as res:
            assert res.status == 200 and b"facesortd review" in res.read()
        port = int(url.split(":")[2].split("/")[0])
        assert cli.main(["review", "--no-browser", "--port", str(port)]) == 2
        assert "--port 0 for any free one" in capsys.readouterr().err
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_review_says_how_to_open_the_page_where_no_browser_opens(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a server or over ssh no browser opens, and the page listens on 127.0.0.1 only: the walk
    got the URL and nothing else."""
    import webbrowser

    from facesortd.review_page.server import ReviewServer

    def stop_at_once(self: ReviewServer) -> None:
        raise KeyboardInterrupt

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: bool(opened.append(url)))  # none found
    monkeypatch.setattr(ReviewServer, "serve_forever", stop_at_once)
    monkeypatch.setenv("DISPLAY", ":0")
    assert cli.main(["review", "--port", "0"]) == 0
    captured = capsys.readouterr()
    port = captured.out.split(":")[2].split("/")[0]
    assert "no browser to open here" in captured.err and f"ssh -L {port}:127.0.0.1:{port}" in captured.err
    assert len(opened) == 1
    # Without a display `webbrowser` would run lynx or w3m in this terminal and wait for it, before
    # serving a page they cannot run: not tried at all.
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["review", "--port", "0"]) == 0
    assert len(opened) == 1 and "no browser to open here" in capsys.readouterr().err


def test_a_browser_gone_before_its_reply_prints_no_traceback(
    settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    """A reload or a closed tab while thumbnails load broke the pipe of each pending reply, and each
    printed a traceback in the terminal running `facesortd review`."""
    with serving(settings) as server:
        try:
            raise BrokenPipeError(32, "Broken pipe")
        except BrokenPipeError:
            server.handle_error(None, ("127.0.0.1", 5))
    assert "Traceback" not in capfd.readouterr().err


def test_the_learning_panel_says_whether_a_daemon_will_retrain(settings: Settings) -> None:
    """The panel said "next retrain after 20 more label(s)" with no daemon running, so the retrain a
    user labelled towards never came."""
    from facesortd.config import fingerprint
    from facesortd.state import STATUS_FILE

    with serving(settings) as server:
        client = Client(server)
        assert client.get("/api/state")["learning"]["daemon_running"] is False
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        status = {"pid": os.getpid(), "updated": time.time(), "settings": fingerprint(settings)}
        (settings.state_dir / STATUS_FILE).write_text(json.dumps(status))
        assert client.get("/api/state")["learning"]["daemon_running"] is True


def test_a_file_that_leaves_between_listing_and_stat_is_left_out_not_an_error(tmp_path: Path) -> None:
    """The daemon re-examining the unsure folder moves files while the page lists it (every 3 s on
    an empty page): a file gone between the listing and its stat made that listing an "internal
    error" with a traceback in the log."""
    from facesortd.review_page.queue import lister

    unsure = tmp_path / "lib" / QUARANTINE_DIR / "unsure"
    unsure.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (unsure / name).write_bytes(b"shot")
    listed = lister()
    entries = listed.entries

    def listing_then_gone(folder: Path) -> list[os.DirEntry[str]]:
        found = entries(folder)
        if folder == unsure:
            (unsure / "a.png").unlink()  # sorted by the daemon just after the listing
        return found

    listed.entries = listing_then_gone  # type: ignore[method-assign]
    assert [item.path.name for item in scan(tmp_path / "lib", {}, listed)] == ["b.png"]


def test_retrain_now_waits_for_a_retrain_running_already(settings: Settings) -> None:
    """ "retrain now" took no retrain lock: beside the daemon's retrain or `facesortd retrain` both
    trained at once, each judged against the model in force before either, each putting its own in."""
    from facesortd.state import retrain_lock

    with serving(settings) as server:
        client = Client(server)
        with retrain_lock(settings.state_dir) as mine:
            assert mine  # the daemon (or `facesortd retrain`) is retraining
            assert client.post("/api/retrain")[0] == 202
            wait_until(lambda: "waiting for it" in client.get("/api/state")["learning"]["message"])
            assert client.get("/api/state")["learning"]["retraining"]
        wait_until(lambda: not client.get("/api/state")["learning"]["retraining"])
        assert client.get("/api/state")["learning"]["message"].startswith("no retrain: not enough labels")


def test_the_page_stopped_during_its_retrain_lets_the_retrain_end_before_closing_the_journal(
    settings: Settings,
) -> None:
    """Ctrl-C on `review` while its "retrain now" ran closed the journal under the retrain: it
    failed ("retrain failed: Cannot operate on a closed database") and its thread died reading the
    closed journal (a traceback on stderr). The page now waits for it, saying so."""
    from loguru import logger

    from facesortd.state import retrain_lock

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="INFO", format="{message}")
    try:
        with retrain_lock(settings.state_dir):  # the retrain held up, as behind the daemon's
            server = ReviewServer(settings, 0)
            client = Client(server)
            serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
            serving.start()
            assert client.post("/api/retrain")[0] == 202
            wait_until(lambda: "waiting for it" in server.app.learning.message)
            server.shutdown()
            serving.join()
            closing = threading.Thread(target=server.close)
            closing.start()
            wait_until(lambda: any("waiting for the retrain started on the page" in line for line in lines))
            assert closing.is_alive()
        closing.join(timeout=HUNG_S)
    finally:
        logger.remove(sink)
    assert not closing.is_alive() and server.app.learning.message.startswith("no retrain: not enough labels")
    assert not any("failed" in line for line in lines), lines


def test_retrain_now_s_message_goes_once_another_retrain_has_decided(settings: Settings) -> None:
    """The page kept saying "no retrain: not enough labels" from its button beside the daemon's
    retrain adopted since, which `last retrain` showed just above it."""
    install_model(settings)
    names = [(f"{'abcd'[i // 4]}{i}.png", ("angry", "happy", "sad", "surprised")[i % 4]) for i in range(16)]
    quarantine(settings, "unsure", names)
    with serving(settings) as server:
        client = Client(server)
        assert client.post("/api/retrain")[0] == 202
        wait_until(lambda: not client.get("/api/state")["learning"]["retraining"])
        assert client.get("/api/state")["learning"]["message"].startswith("no retrain: not enough labels")
        ids = {i["name"]: i["id"] for i in client.get("/api/items?limit=100")["items"]}
        for name, emotion in names:
            assert client.post("/api/label", {"id": ids[name], "label": emotion})[0] == 200
        assert client.get("/api/state")["learning"]["message"].startswith("no retrain")  # still true
        assert cli.main(["retrain"]) == 0  # the daemon's retrain alike
        learning = client.get("/api/state")["learning"]
        assert learning["last_retrain"] is not None and learning["message"] == ""


def test_the_learning_panel_says_why_a_retrain_due_cannot_train(settings: Settings) -> None:
    """Held back (labels of one emotion alone, say), the panel still said "next retrain after 0
    more label(s)", and the reason stood only in `facesortd status`."""
    from facesortd.journal import Journal
    from facesortd.learn import retrain

    install_model(settings)
    quarantine(settings, "unsure", [("a0.png", "happy"), ("b1.png", "happy")])
    with serving(settings) as server:
        client = Client(server)
        for item in client.get("/api/items")["items"]:
            assert client.post("/api/label", {"id": item["id"], "label": "happy"})[0] == 200
        assert client.get("/api/state")["learning"]["held_back"] is None
        journal = Journal.for_state_dir(settings.state_dir)
        try:  # as the daemon does when a retrain falls due
            held = retrain.retrain_if_due(settings, journal, user_labels(journal), force=True)
        finally:
            journal.close()
        assert held is not None and held.path is None
        assert client.get("/api/state")["learning"]["held_back"] == held.reason


def _made(settings: Settings) -> dict[Path, int]:
    """What the page's cache holds: each file kept, with when it was written."""
    return {p: p.stat().st_mtime_ns for p in (settings.state_dir / "review").glob("*/*/*")}


def test_a_file_fuse_numbered_anew_keeps_its_mark_and_its_pictures(settings: Settings) -> None:
    """exfat-fuse and fusefat number a file anew whenever the kernel drops it from its cache. The
    page knew a file by its inode number too: a renumbered file came back unmarked ("no usable face"
    forgotten: listed among the others again), its pictures and guesses were made again, and at the
    next start of the page thrown away. Its mark and pictures stay, across runs, and it is labelled."""
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    with serving(settings) as server:
        client = Client(server)
        a = next(i["id"] for i in client.get("/api/items")["items"] if i["name"] == "a.png")
        for route in ("/thumb", "/view", "/api/guesses"):
            assert client.request(f"{route}?id={a}")[0] == 200
        assert client.post("/api/no-face", {"id": a})[0] == 200
        made = _made(settings)
        renumber(files["a.png"])
        listed = client.get("/api/items")["items"]
        assert [(i["name"], i["dismissed"]) for i in listed] == [("b.png", False), ("a.png", True)]
        for route in ("/thumb", "/view", "/api/guesses"):
            assert client.request(f"{route}?id={listed[1]['id']}")[0] == 200
        assert _made(settings) == made
    renumber(files["a.png"])
    with serving(settings) as server:
        client = Client(server)
        listed = client.get("/api/items")["items"]
        assert [(i["name"], i["dismissed"]) for i in listed] == [("b.png", False), ("a.png", True)]
        assert _made(settings) == made
        renumber(files["a.png"])  # not shown in this run: the listing cannot tell it from another
        status, reply = client.post("/api/label", {"id": listed[1]["id"], "label": "happy"})
        assert status == 409 and reply["error"].endswith("reload to see it as it is now")
        assert client.request(f"/view?id={listed[1]['id']}")[0] == 200  # shown, as the page does
        renumber(files["a.png"])
        assert client.post("/api/label", {"id": listed[1]["id"], "label": "happy"})[0] == 200
    assert (settings.library / "happy" / "a.png").is_file()


@pytest.mark.parametrize("coarse", [True, False], ids=["saved over in its tick", "cp -p over it"])
def test_a_mark_and_pictures_stay_with_the_picture_not_its_name(settings: Settings, coarse: bool) -> None:
    """What the page keeps of a file by its name, size and time goes when another picture is saved
    over it keeping them (within FAT's 2-s tick, or `cp -p` of a picture with that size and time:
    until 2026-12-03 it kept the mark): it is shown as it is now, and not listed last."""
    shot = settings.library / QUARANTINE_DIR / "unsure" / "a.png"
    shot.parent.mkdir(parents=True)
    shot.write_bytes(stored_png(1))
    if coarse:
        coarse_now(shot)
    with serving(settings) as server:
        client = Client(server)
        a = client.get("/api/items")["items"][0]["id"]
        shown = client.request(f"/view?id={a}")[1]
        assert client.post("/api/no-face", {"id": a})[0] == 200
        assert client.get("/api/items")["items"][0]["dismissed"]
        written_over(shot, stored_png(2, "sad"), in_place=True)
        [listed] = client.get("/api/items")["items"]
        assert listed["id"] == a and not listed["dismissed"]
        status, now_shown = client.request(f"/view?id={a}")
        assert status == 200 and now_shown != shown
        assert len(list((settings.state_dir / "review" / "views").glob("*/*"))) == 1


def test_a_mark_outlives_a_chmod_and_its_file_is_read_once_for_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change of the inode that is no write (a chmod) keeps the mark, proven by the content once:
    not read again at every listing, nor in the next run of the page."""
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    read: list[str] = []
    real = queue.content_id
    monkeypatch.setattr(queue, "content_id", lambda path: read.append(path.name) or real(path))
    monkeypatch.setattr(placement, "holds", lambda path, d: read.append(path.name) or holds(path, d))
    listed = lambda client: [(i["name"], i["dismissed"]) for i in client.get("/api/items")["items"]]  # noqa: E731
    with serving(settings) as server:
        client = Client(server)
        a = client.get("/api/items")["items"][0]["id"]
        assert client.post("/api/no-face", {"id": a})[0] == 200
        files["a.png"].chmod(0o600)
        read.clear()
        for _ in range(3):
            assert listed(client) == [("b.png", False), ("a.png", True)]
        assert read == ["a.png"]
    with serving(settings) as server:
        assert listed(Client(server)) == [("b.png", False), ("a.png", True)]
    assert read == ["a.png"]


def test_no_usable_face_marks_of_an_older_page_are_kept(settings: Settings) -> None:
    """The marks an older page wrote named files by ids that held the inode number: read by this
    one, they would all be forgotten, and those files listed among the others again."""
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    st = files["b.png"].lstat()
    older = hashlib.sha256(f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()
    marks = settings.state_dir / "review" / "no-usable-face.json"
    marks.parent.mkdir(parents=True)
    marks.write_text(json.dumps([older[:24]]))
    with serving(settings) as server:
        listed = Client(server).get("/api/items")["items"]
        assert [(i["name"], i["dismissed"]) for i in listed] == [("a.png", False), ("b.png", True)]


def test_retrain_now_on_a_full_disk_says_what_to_do_without_a_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No room for a new model: the page said "retrain failed: no room …" and logged a traceback,
    as for a bug of facesortd's; it is the person's to fix, said as `facesortd retrain` says it."""
    from loguru import logger

    from facesortd.learn import retrain

    install_model(settings)
    monkeypatch.setattr(retrain.shutil, "disk_usage", lambda _folder: shutil._ntuple_diskusage(1, 1, 0))  # type: ignore[attr-defined]
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    try:
        with serving(settings) as server:
            client = Client(server)
            assert client.post("/api/retrain")[0] == 202
            wait_until(lambda: not client.get("/api/state")["learning"]["retraining"])
            message = client.get("/api/state")["learning"]["message"]
    finally:
        logger.remove(sink)
    assert message.startswith("no retrain: no room for a new model in") and "free some space" in message
    assert not any("Traceback" in line or "failed" in line for line in lines), lines


def test_retrain_now_with_the_library_drive_away_says_so_and_trains_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's drive pulled out with the page open: "retrain now" trained on the labels with
    none of the files placed lately to judge the auto-sorted share by, and could put a model that
    sorts fewer in force. It says the drive message, without a traceback, and trains nothing."""
    from facesortd import mounts

    settings.library.mkdir(parents=True)
    with serving(settings) as server:
        client = Client(server)
        monkeypatch.setattr(mounts, "DRIVE_PLACES", (settings.library.parent,))
        shutil.rmtree(settings.library)  # pulled out: its parent is where it was mounted
        assert client.post("/api/retrain")[0] == 202
        wait_until(lambda: not client.get("/api/state")["learning"]["retraining"])
        away = " ".join(str(mounts.drive_not_mounted(settings.library)).split())
        assert " ".join(client.get("/api/state")["learning"]["message"].split()) == f"no retrain: {away}"
    assert not settings.library.exists()
