"""The review page attacked through its HTTP API: two tabs deciding on one file at once, a file
moved away while it is labelled, malformed requests and folders that refuse a move. Whatever is
sent, every file stays whole and in exactly one place, and the page keeps answering."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from foreign_fs import coarse_now, written_over
from review_setup import emotion_folders, quarantine, review_settings, scratch_dir, serving
from review_setup import journal_labels as labels
from synthetic import stored_png
from test_review_page import Client
from waiting import HUNG_S, wait_until

from facesortd.config import Settings
from facesortd.content import content_id
from facesortd.decide import Decision
from facesortd.journal import Journal, ModelId
from facesortd.learn.review import Reviewer
from facesortd.library import Library
from facesortd.placement import journaled_apply
from facesortd.recovery import recover
from facesortd.review_page import queue
from facesortd.review_page.server import TOKEN_HEADER, ReviewServer


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    with scratch_dir(tmp_path) as root:
        yield review_settings(root, monkeypatch)


def contents(settings: Settings) -> dict[str, list[Path]]:
    """Every file under the library by the hash of its bytes."""
    found: dict[str, list[Path]] = {}
    for path in settings.library.rglob("*"):
        if path.is_file() and not path.is_symlink():
            found.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), []).append(path)
    return found


def each_once(settings: Settings, before: dict[str, bytes]) -> dict[str, Path]:
    """Assert every file dropped is on disk exactly once, byte-identical; {name: where}."""
    now = contents(settings)
    where = {}
    for name, data in before.items():
        paths = now.get(hashlib.sha256(data).hexdigest(), [])
        assert len(paths) == 1, (name, paths)
        assert paths[0].name == name
        where[name] = paths[0]
    return where


def answers(client: Client) -> None:
    assert client.request("/api/items")[0] == 200


def in_parallel(*calls) -> list:
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HUNG_S)
    return results


@pytest.mark.parametrize("second", ["sad", "happy", "no-face"])
def test_two_tabs_deciding_on_one_file_at_once(settings: Settings, second: str) -> None:
    """The tab whose decision came second was told "… reload" (or 404) and its page stayed on the
    file; now it is told which label the other tab gave (``decided``), and its page moves on."""
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    before = {n: p.read_bytes() for n, p in files.items()}
    with serving(settings) as server:
        client = Client(server)
        item = client.get("/api/items")["items"][0]["id"]
        tab2 = (
            (lambda: client.post("/api/no-face", {"id": item, "tab": "two"}))
            if second == "no-face"
            else (lambda: client.post("/api/label", {"id": item, "label": second, "tab": "two"}))
        )
        one, two = in_parallel(
            lambda: client.post("/api/label", {"id": item, "label": "happy", "tab": "one"}), tab2
        )
        statuses = sorted([one[0], two[0]])
        assert statuses[0] == 200
        if second != "no-face":
            assert statuses[1] == 409, (one, two)  # only one of the labels moves it
            assert len(labels(settings)) == 1
        for (status, reply), other in ((one, second), (two, "happy")):
            if status != 200:  # a "no usable face" given first leaves the label to move it
                assert reply["decided"]["label"] == other and "in another tab meanwhile" in reply["error"], (
                    reply
                )
        answers(client)
        where = each_once(settings, before)
        assert where["a.png"].parent.name in ("happy", second)
        # The tab that decided takes it back: the file returns whole.
        for tab, (status, _reply) in (("two", two), ("one", one)):
            if status == 200:
                assert client.post("/api/undo", {"tab": tab})[0] == 200
        where = each_once(settings, before)
        assert where["a.png"] == files["a.png"]
        answers(client)


def test_a_label_that_waited_for_another_tabs_label_of_its_file_names_that_label(settings: Settings) -> None:
    """Both tabs' requests past the listing's check, the second waiting for the first's move: it
    was told "… has changed or left the quarantine since; reload". Its own tab's earlier label is
    not another tab's."""
    from facesortd.review_page.decisions import DecidedElsewhere, DecisionError

    quarantine(settings, "unsure", [("a.png", "happy")])
    with serving(settings) as server:
        client = Client(server)
        listed = client.get("/api/items")["items"][0]["id"]
        item = server.app.item(listed)  # the second tab's request, past the listing's check
        assert client.post("/api/label", {"id": listed, "label": "happy", "tab": "one"})[0] == 200
        for decide in (
            lambda: server.app.decisions.label(item, "sad", tab="two"),
            lambda: server.app.decisions.no_face(item, tab="two"),
        ):
            with pytest.raises(DecidedElsewhere, match=r"a\.png was labelled happy in another tab meanwhile"):
                decide()
        with pytest.raises(DecisionError, match="left the quarantine since; reload") as own:
            server.app.decisions.label(item, "sad", tab="one")
        assert not isinstance(own.value, DecidedElsewhere)


def raw(server: ReviewServer, head: str, body: bytes = b"") -> int | None:
    """Send bytes as they are; the status answered, or None if the server closed first."""
    with socket.create_connection(server.server_address, timeout=5) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a refusal before it all arrived
            sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        try:
            reply = sock.recv(200)
        except (ConnectionResetError, TimeoutError):
            return None
    return int(reply.split()[1]) if reply else None


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Content-Type": "application/json"}, b"not json", 400),
        ({"Content-Type": "application/json"}, b"[1, 2]", 400),
        ({"Content-Type": "application/json"}, b'"a string"', 400),
        ({"Content-Type": "application/json"}, b"\xff\xfe\xfa", 400),
        ({"Content-Type": "text/plain"}, b'{"id": "x", "label": "happy"}', 404),
        ({"Content-Type": "application/json"}, b'{"label": "happy"}', 404),
        ({"Content-Type": "application/json"}, b'{"id": ["a"], "label": {"b": 1}, "x": 1}', 404),
        ({"Content-Type": "application/json", "Content-Length": "-1"}, b'{"id": "x"}', 400),
        ({"Content-Type": "application/json", "Content-Length": "many"}, b'{"id": "x"}', 400),
    ],
)
def test_malformed_requests_are_refused(
    settings: Settings, headers: dict, body: bytes, expected: int
) -> None:
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    before = {n: p.read_bytes() for n, p in files.items()}
    with serving(settings) as server:
        client = Client(server)
        client.get("/api/items")
        head = ["POST /api/label HTTP/1.1", "Host: x", f"{TOKEN_HEADER}: {client.token}"]
        headers = {"Content-Length": str(len(body)), **headers}
        head += [f"{k}: {v}" for k, v in headers.items()]
        assert raw(server, "\r\n".join(head), body) == expected
        answers(client)
    assert each_once(settings, before)["a.png"] == files["a.png"]
    assert labels(settings) == []


def test_a_huge_body_is_refused_unread(settings: Settings) -> None:
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    before = {n: p.read_bytes() for n, p in files.items()}
    with serving(settings) as server:
        client = Client(server)
        item = client.get("/api/items")["items"][0]["id"]
        body = b'{"id": "' + item.encode() + b'", "label": "happy", "x": "' + b"a" * 8_000_000 + b'"}'
        head = f"POST /api/label HTTP/1.1\r\nHost: x\r\n{TOKEN_HEADER}: {client.token}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}"
        assert raw(server, head, body) in (413, None)
        answers(client)
    assert each_once(settings, before)["a.png"] == files["a.png"]


BAD_IDS = ["../../secret.png", "/etc/passwd", "..", "", "zz" * 12, "0" * 24, "a" * 5000, "a\x00b"]
BAD_LABELS = [
    "a/b",
    "..",
    "../x",
    "a\x00b",
    "x" * 300,
    "é" * 200,
    "\udcff",
    "",
    " ",
    "_quarantine",
    ".hidden",
]


def test_hostile_ids_and_class_names(settings: Settings, tmp_path: Path) -> None:
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"secret")
    (settings.library / "_quarantine" / "unsure" / "link.png").symlink_to(outside / "secret.png")
    (settings.library / "_quarantine" / "linkdir").symlink_to(outside)
    before = {n: p.read_bytes() for n, p in files.items()}
    folders = sorted(settings.library.iterdir())
    with serving(settings) as server:
        client = Client(server)
        listed = client.get("/api/items")["items"]
        assert [i["name"] for i in listed] == ["a.png"]
        for bad in BAD_IDS:
            for path in ("/api/label", "/api/no-face"):
                assert client.post(path, {"id": bad, "label": "happy"})[0] == 404, bad
            assert client.request(f"/thumb?id={bad.replace(chr(0), '%00')}", token="query")[0] == 404
        for bad in BAD_LABELS:
            for new in (False, True):  # asked for as a new class, no less
                status, reply = client.post("/api/label", {"id": listed[0]["id"], "label": bad, "new": new})
                assert status == 409 and "cannot be a class" in reply["error"], bad
        answers(client)
    assert each_once(settings, before)["a.png"] == files["a.png"]
    assert (outside / "secret.png").read_bytes() == b"secret" and sorted(outside.iterdir()) == [
        outside / "secret.png"
    ]
    assert labels(settings) == []
    assert sorted(settings.library.iterdir()) == folders


@pytest.mark.parametrize("moved", ["before hashing", "after hashing"])
def test_a_file_moved_away_while_the_page_labels_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, moved: str
) -> None:
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    before = {n: p.read_bytes() for n, p in files.items()}
    real = queue.content_id

    def sorted_meanwhile(path: Path) -> str:  # `facesortd sort` of the quarantine, or re-examination
        digest = real(path) if moved == "after hashing" else ""
        mover = threading.Thread(
            target=lambda: Library(settings.library).apply(path, Decision.label("happy"))
        )
        mover.start()
        mover.join()
        return digest or real(path)

    with serving(settings) as server:
        client = Client(server)
        item = client.get("/api/items")["items"][0]["id"]
        monkeypatch.setattr(queue, "content_id", sorted_meanwhile)
        status, reply = client.post("/api/label", {"id": item, "label": "sad"})
        assert status == 409 and "has left the quarantine meanwhile" in reply["error"], reply
        assert labels(settings) == []
        assert each_once(settings, before)["a.png"].parent.name == "happy"
        answers(client)


def test_a_label_racing_a_sort_of_the_quarantine(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page and `sort` (its journaled move, under the move lock) take the same files at once:
    each file ends up in exactly one folder, labelled only where the page's move won. Every other
    file, `sort` starts only once the page has checked the file and is about to move it."""
    reached = threading.Event()
    real = queue.content_id

    def hashing(path: Path) -> str:
        reached.set()
        return real(path)

    monkeypatch.setattr(queue, "content_id", hashing)
    names = [(f"f{i}.png", "happy") for i in range(6)]
    files = quarantine(settings, "unsure", names)
    before = {n: p.read_bytes() for n, p in files.items()}
    with serving(settings) as server:
        client = Client(server)
        listed = {i["name"]: i["id"] for i in client.get("/api/items")["items"]}
        sorter = Journal.for_state_dir(settings.state_dir)
        try:
            for i, (name, path) in enumerate(files.items()):
                reached.clear()

                def sort(path: Path = path, late: bool = i % 2 == 1) -> str:
                    if late:
                        reached.wait(timeout=10)
                    try:
                        digest = content_id(path)
                        journaled_apply(
                            sorter,
                            Library(settings.library),
                            path,
                            digest,
                            Decision.label("angry"),
                            ModelId("m"),
                        )
                    except FileNotFoundError:
                        return "lost"
                    return "won"

                page, _ = in_parallel(
                    lambda name=name: client.post("/api/label", {"id": listed[name], "label": "sad"}), sort
                )
                assert page[0] in (200, 404, 409), page
        finally:
            sorter.close()
        answers(client)
    where = each_once(settings, before)
    in_sad = sorted(n for n, p in where.items() if p.parent.name == "sad")
    assert sorted(n for n, p in where.items() if p.parent.name == "angry") == sorted(
        set(before) - set(in_sad)
    )
    assert labels(settings) == ["sad"] * len(in_sad)


@contextlib.contextmanager
def one_file(settings: Settings) -> Iterator[tuple[ReviewServer, Client, str, dict[str, bytes]]]:
    """The page serving a quarantine of a.png: (server, client, a.png's id, {name: bytes})."""
    files = quarantine(settings, "unsure", [("a.png", "happy")])
    before = {n: p.read_bytes() for n, p in files.items()}
    with serving(settings) as server:
        client = Client(server)
        yield server, client, client.get("/api/items")["items"][0]["id"], before


def a_png(settings: Settings) -> Path:
    return settings.library / "_quarantine" / "unsure" / "a.png"


def refuse(exc: Exception):
    def refused(*args: object, **kwargs: object) -> None:
        raise exc

    return refused


@pytest.mark.parametrize(
    ("target", "exc", "fix"),
    [
        (
            "facesortd.durable.link_no_replace",
            OSError(errno.ENOSPC, "No space left on device"),
            "free some space",
        ),
        ("facesortd.durable.link_no_replace", OSError(errno.EROFS, "Read-only file system"), "read-only"),
        ("facesortd.durable.link_no_replace", OSError(errno.EACCES, "Permission denied"), "chmod u+rwx"),
        ("facesortd.placement.move_lock", OSError(errno.EROFS, "Read-only file system"), "read-only"),
        (
            "facesortd.journal.Journal.plan",
            sqlite3.OperationalError("database or disk is full"),
            "free some space",
        ),
        (
            "facesortd.journal.Journal.plan",
            sqlite3.OperationalError("attempt to write a readonly database"),
            "writable",
        ),
    ],
)
def test_a_folder_or_disk_that_refuses_the_move(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, target: str, exc: Exception, fix: str
) -> None:
    with one_file(settings) as (server, client, item, before):
        monkeypatch.setattr(target, refuse(exc))
        status, reply = client.post("/api/label", {"id": item, "label": "happy"})
        assert status == 409 and "stays where it is" in reply["error"] and fix in reply["error"], reply
        answers(client)
        monkeypatch.undo()
        assert client.get("/api/items")["items"][0]["id"] == item
        assert each_once(settings, before)["a.png"] == a_png(settings)
        assert labels(settings) == []
        assert server.journal.done_at(settings.library / "happy" / "a.png") is None
        # Once fixed, the same key press works.
        assert client.post("/api/label", {"id": item, "label": "happy"})[0] == 200
    assert each_once(settings, before)["a.png"].parent.name == "happy"
    assert labels(settings) == ["happy"]


def test_a_label_the_state_folder_refuses_after_the_move(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file reached its folder but its label could not be written: the page says so, and u
    takes the (journaled) move back."""
    with one_file(settings) as (_server, client, item, before):
        monkeypatch.setattr(
            "facesortd.journal.Journal.add_label",
            refuse(sqlite3.OperationalError("database or disk is full")),
        )
        status, reply = client.post("/api/label", {"id": item, "label": "happy"})
        assert status == 409 and "not recorded" in reply["error"] and "press u" in reply["error"], reply
        monkeypatch.undo()
        assert each_once(settings, before)["a.png"].parent.name == "happy"
        assert labels(settings) == []
        assert client.post("/api/undo")[0] == 200
        assert each_once(settings, before)["a.png"] == a_png(settings)
        answers(client)


def test_a_no_face_mark_the_state_folder_refuses(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with one_file(settings) as (_server, client, item, before):
        monkeypatch.setattr(
            "facesortd.review_page.decisions.atomic_writer",
            refuse(OSError(errno.ENOSPC, "No space left on device")),
        )
        status, reply = client.post("/api/no-face", {"id": item})
        assert status == 409 and "free some space" in reply["error"], reply
        assert client.get("/api/items")["items"][0]["dismissed"] is False  # not marked in memory either
        monkeypatch.undo()
        assert client.post("/api/undo")[0] == 409  # nothing was done, so nothing to undo
    assert each_once(settings, before)["a.png"] == a_png(settings)


@pytest.mark.parametrize("label_too", [False, True], ids=["label-recorded", "label-refused-too"])
def test_a_move_the_journal_cannot_mark_done_is_said_where_it_went(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, label_too: bool
) -> None:
    """The file reached happy/ but the journal refused the move's last mark: the page said it "has
    left the quarantine meanwhile", as if someone else had moved it. The next recovery records it."""
    real = Journal.finish

    def finish(self: Journal, move_id: int, state: str, destination: Path | None = None) -> None:
        if state == "done":
            raise sqlite3.OperationalError("database or disk is full")
        real(self, move_id, state, destination)

    with one_file(settings) as (server, client, item, before):
        monkeypatch.setattr(Journal, "finish", finish)
        if label_too:
            monkeypatch.setattr(Journal, "add_label", refuse(sqlite3.OperationalError("disk is full")))
        status, reply = client.post("/api/label", {"id": item, "label": "happy"})
        assert status == 409 and "went to happy/, but the journal could not record the move" in reply["error"]
        assert ("nor your label" in reply["error"]) == label_too, reply
        assert "left the quarantine" not in reply["error"]
        monkeypatch.undo()
        assert labels(settings) == ([] if label_too else ["happy"])
        assert each_once(settings, before)["a.png"].parent.name == "happy"
        assert list(recover(server.journal))
        assert server.journal.done_at(settings.library / "happy" / "a.png") is not None
        answers(client)


def test_an_undo_the_journal_refuses_says_so_and_can_be_pressed_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state disk full when u is pressed: 500 "internal error", and the page had forgotten the
    decision ("nothing to undo" once there was room again)."""
    with one_file(settings) as (_server, client, item, before):
        assert client.post("/api/label", {"id": item, "label": "happy"})[0] == 200
        monkeypatch.setattr(
            "facesortd.journal.Journal.set_meta", refuse(sqlite3.OperationalError("database or disk is full"))
        )
        status, reply = client.post("/api/undo")
        assert status == 409 and "free some space" in reply["error"] and "u again" in reply["error"], reply
        assert each_once(settings, before)["a.png"].parent.name == "happy"
        monkeypatch.undo()
        assert client.post("/api/undo")[0] == 200
        assert each_once(settings, before)["a.png"] == a_png(settings)


def held_off_by_a_lock(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once a thread other than the test's own waits for a flock the test's thread holds: a
    condition to wait on where the thread's join would only say, after a timeout, that it waited."""
    held_off = threading.Event()
    real_flock = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_EX and threading.current_thread() is not threading.main_thread():
            try:
                return real_flock(fd, operation | fcntl.LOCK_NB)
            except BlockingIOError:
                held_off.set()
        return real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    return held_off


def test_a_label_scan_racing_the_pages_undo_does_not_bring_the_label_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen with real processes (the page labelling, `facesortd retrain` beside it): a label scan
    looked at happy/a.png, the page's u then moved it back to quarantine and withdrew its label, and
    the scan, finding the label withdrawn, recorded 'happy' again for a file back in quarantine.
    Status counted it as labelled until the file changed."""
    with one_file(settings) as (_server, client, item, before):
        assert client.post("/api/label", {"id": item, "label": "happy"})[0] == 200
        scanning = Reviewer(settings, Journal.for_state_dir(settings.state_dir))
        real = Journal.label_for_hash
        undoing: list[threading.Thread] = []
        held_off = held_off_by_a_lock(monkeypatch)

        def label_for_hash(self: Journal, digest: str) -> tuple[str, float] | None:
            if self is scanning.journal and not undoing:  # the scan is looking at happy/a.png
                undoing.append(threading.Thread(target=lambda: client.post("/api/undo")))
                undoing[0].start()
                # Done at once, unless the scan's look holds it off: either ends the wait (a fixed
                # second's join cost every run that second, the fix being in).
                wait_until(lambda: not undoing[0].is_alive() or held_off.is_set())
            return real(self, digest)

        monkeypatch.setattr(Journal, "label_for_hash", label_for_hash)
        scanning.scan()
        undoing[0].join(timeout=HUNG_S)
        monkeypatch.undo()
        scanning.journal.close()
        assert each_once(settings, before)["a.png"] == a_png(settings)
        assert labels(settings) == []


@pytest.mark.parametrize(
    ("in_place", "coarse"),
    [(False, False), (True, True), (True, False)],
    ids=["another file put there", "saved over in its tick", "written over keeping its time (cp -p)"],
)
def test_a_label_goes_only_to_the_picture_the_page_showed(
    settings: Settings, in_place: bool, coarse: bool
) -> None:
    """Another picture put under the listed name with the same size and time after the page showed
    the file: a re-download keeping the server's time, a tool saving over it within FAT's 2-s tick,
    or `cp -p` of a picture with that size and time over it. The page checked the name, size and
    time (and, until 2026-12-03, the same inode number for the last), so the person's label went to
    a picture they never saw, and trained the model. Now it stays, and reloaded it is shown and
    labelled."""
    shot = a_png(settings)
    shot.parent.mkdir(parents=True)
    emotion_folders(settings)
    shot.write_bytes(stored_png(1, "happy"))
    if coarse:
        coarse_now(shot)
    other = stored_png(2, "sad")
    with serving(settings) as server:
        client = Client(server)
        item = client.get("/api/items")["items"][0]["id"]
        status, shown = client.request(f"/view?id={item}")
        assert status == 200
        written_over(shot, other, in_place)
        status, reply = client.post("/api/label", {"id": item, "label": "happy"})
        assert status == 409 and "has changed since the page listed it" in reply["error"], reply
        assert labels(settings) == [] and shot.read_bytes() == other
        assert not any((settings.library / "happy").iterdir())
        [again] = client.get("/api/items")["items"]
        status, now_shown = client.request(f"/view?id={again['id']}")
        assert status == 200 and now_shown != shown
        assert client.post("/api/label", {"id": again["id"], "label": "sad"})[0] == 200
    assert labels(settings) == ["sad"] and (settings.library / "sad" / "a.png").read_bytes() == other


def test_a_picture_saved_over_between_the_pages_check_and_the_move_stays(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The move checks the file once more under the move lock, after the page's check: a picture
    saved over in between stays, said as changed (not as a folder to make writable)."""
    shot = a_png(settings)
    shot.parent.mkdir(parents=True)
    emotion_folders(settings)
    shot.write_bytes(stored_png(1, "happy"))
    coarse_now(shot)
    real = queue.Contents.shown

    def shown_then_saved_over(contents: queue.Contents, item: queue.Item):  # type: ignore[no-untyped-def]
        held = real(contents, item)
        written_over(shot, stored_png(2, "sad"), in_place=True)
        return held

    with serving(settings) as server:
        client = Client(server)
        item = client.get("/api/items")["items"][0]["id"]
        assert client.request(f"/view?id={item}")[0] == 200
        monkeypatch.setattr(queue.Contents, "shown", shown_then_saved_over)
        status, reply = client.post("/api/label", {"id": item, "label": "happy"})
        assert status == 409 and "has changed since the page listed it" in reply["error"], reply
    assert labels(settings) == [] and shot.read_bytes() == stored_png(2, "sad")


def test_a_label_from_a_tab_still_showing_the_picture_another_replaced(settings: Settings) -> None:
    """Two tabs of the page (one left open, the page opened again): the first shows a picture, a
    re-download keeping the server's time puts another under its name and size, the second tab shows
    that one. The page knew "what it showed" once for all tabs, so the key pressed in the first gave
    its label to the picture only the second had shown, and trained the model on it. Each tab now
    names the content it shows (its guesses say it; its large picture is asked for by it) and its
    label is given to that content only."""
    shot = a_png(settings)
    shot.parent.mkdir(parents=True)
    emotion_folders(settings)
    shot.write_bytes(stored_png(1, "happy"))
    with serving(settings) as server:
        first, second = Client(server), Client(server)
        item = first.get("/api/items")["items"][0]["id"]
        seen = first.get(f"/api/guesses?id={item}")["content"]
        assert first.request(f"/view?id={item}&content={seen}")[0] == 200
        written_over(shot, stored_png(2, "sad"), in_place=False)
        assert [i["id"] for i in second.get("/api/items")["items"]] == [item]
        now = second.get(f"/api/guesses?id={item}")["content"]
        assert now != seen
        assert second.request(f"/view?id={item}&content={now}")[0] == 200
        assert first.request(f"/view?id={item}&content={seen}")[0] == 404  # asked for what it showed
        for route, body in (("/api/label", {"label": "happy"}), ("/api/no-face", {})):
            status, reply = first.post(route, {"id": item, "content": seen, **body})
            assert status == 409 and "has changed since the page listed it" in reply["error"], reply
        assert labels(settings) == [] and shot.read_bytes() == stored_png(2, "sad")
        assert second.post("/api/label", {"id": item, "label": "sad", "content": now})[0] == 200
    assert labels(settings) == ["sad"]


def _failing_drive(monkeypatch: pytest.MonkeyPatch, shot: Path) -> list[bool]:
    """The page's reads of ``shot`` fail as on a failing drive (EIO) while the flag returned is set."""
    real, failing_now = queue.content_id, [True]

    def failing(path: Path) -> str:
        if Path(path) == shot and failing_now[0]:
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real(path)

    monkeypatch.setattr(queue, "content_id", failing)
    return failing_now


def test_a_picture_its_drive_cannot_read_is_not_said_a_folder_to_chmod(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A quarantined file on a failing drive (EIO as the page reads it, to know the content it shows):
    a class key said "Input/output error: make the folder writable (chmod u+rwx)", and the person
    changed permissions that were never the matter. The page showed no picture of it: a label
    would name a picture nobody saw, so it is refused, and says what n does."""
    shot = quarantine(settings, "unsure", [("a.png", "happy")])["a.png"]
    _failing_drive(monkeypatch, shot)
    with serving(settings) as server:
        client = Client(server)
        item = client.get("/api/items")["items"][0]["id"]
        status, reply = client.post("/api/label", {"id": item, "label": "happy", "content": ""})
        assert status == 409 and "its drive could not read or write it" in reply["error"], reply
        assert "chmod" not in reply["error"] and "n lists it last" in reply["error"]
    assert shot.is_file() and labels(settings) == []


def test_a_picture_its_drive_cannot_read_can_be_marked_and_waits_last(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """n on a file its drive cannot read said "was not marked: Input/output error", so it stayed
    first in the queue for ever, shown as "unreadable" before every other file. It is marked now
    without being read (nothing moves: nothing of it can be lost) and listed last; `u` takes the
    mark back, and the mark holds across runs of the page while its size and time are unchanged."""
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    before = {n: p.read_bytes() for n, p in files.items()}
    _failing_drive(monkeypatch, files["a.png"])
    names = lambda client: [(i["name"], i["dismissed"]) for i in client.get("/api/items")["items"]]  # noqa: E731
    with serving(settings) as server:
        client = Client(server)
        assert names(client) == [("a.png", False), ("b.png", False)]
        item = client.get("/api/items")["items"][0]["id"]
        assert client.get(f"/api/guesses?id={item}")["content"] == ""
        assert client.post("/api/no-face", {"id": item, "content": ""})[0] == 200
        assert names(client) == [("b.png", False), ("a.png", True)]
        assert client.post("/api/undo")[0] == 200
        assert names(client) == [("a.png", False), ("b.png", False)]
        assert client.post("/api/no-face", {"id": item, "content": ""})[0] == 200
    with serving(settings) as server:
        assert names(Client(server)) == [("b.png", False), ("a.png", True)]
    assert each_once(settings, before) == files and labels(settings) == []


def test_a_picture_its_drive_cannot_read_shows_as_unreadable_not_an_internal_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its thumbnail, large picture and guesses (the page hashes the file to name what it shows)
    answered 500 "internal error" and logged a traceback each, where a file it may not open shows
    an "unreadable" tile; the drive reading again, the picture is shown."""
    shot = quarantine(settings, "unsure", [("a.png", "happy")])["a.png"]
    failing_now = _failing_drive(monkeypatch, shot)
    with serving(settings) as server:
        client = Client(server)
        item = client.get("/api/items")["items"][0]["id"]
        for route in (f"/thumb?id={item}", f"/view?id={item}"):
            status, body = client.request(route)
            assert status == 200 and body.startswith(b"\xff\xd8"), (route, body[:80])
        guesses = client.get(f"/api/guesses?id={item}")
        assert guesses["content"] == "" and "its drive could not read it" in guesses["error"]
        assert "n lists it last" in guesses["error"]
        failing_now[0] = False
        guesses = client.get(f"/api/guesses?id={item}")
        assert guesses["content"] and "error" not in guesses
