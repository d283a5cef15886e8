"""The review page's web server: the standard library's ThreadingHTTPServer on 127.0.0.1 only.

Every request needs the token printed with the URL (``?token=`` or the ``X-Facesortd-Token``
header; 401 without one, 403 with a wrong one); anything that changes something is a POST and
takes the token from the header only, which another site's page cannot set. Files are named by
the ids of the last listing, never by a path, and are checked to be in the quarantine before they
are read or moved.
"""

from __future__ import annotations

import contextlib
import functools
import hmac
import json
import secrets
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loguru import logger

from facesortd.advice import advised
from facesortd.config import Settings
from facesortd.journal import Journal
from facesortd.review_page.cache import ReviewCache
from facesortd.review_page.classes import classes
from facesortd.review_page.decisions import DecidedElsewhere, DecisionError, Decisions, Done, UnknownClass
from facesortd.review_page.panels import Learning, model_panel, model_plot
from facesortd.review_page.queue import (
    Changed,
    Contents,
    Item,
    current,
    item_id,
    lister,
    reason_order,
    scan,
)
from facesortd.shown_names import json_text

HOST = "127.0.0.1"
TOKEN_HEADER = "X-Facesortd-Token"
PAGE_SIZE = 60
MAX_PAGE = 500
MAX_BODY = 16 * 1024
CHANGED = "no such file in the quarantine (any more); reload"
REQUEST_TIMEOUT_S = 5.0
STATIC = {"page.js": "text/javascript", "page.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


Reply = tuple[HTTPStatus, str, bytes]


def _json(data: object, status: HTTPStatus = HTTPStatus.OK) -> Reply:
    return status, "application/json", json_text(data).encode()


def _static(name: str) -> bytes:
    return (files("facesortd.review_page") / "static" / name).read_bytes()


class ReviewApp:
    """Everything the page can ask for, independent of HTTP."""

    def __init__(self, settings: Settings, journal: Journal, token: str) -> None:
        self.settings = settings
        self.token = token
        contents = Contents()
        self.cache = ReviewCache(settings, contents)
        self.decisions = Decisions(settings, journal, contents)
        self.learning = Learning(settings, journal)
        self.journal = journal
        self._index: dict[str, Item] = {}
        self._index_lock = threading.Lock()
        self._lister = lister()
        # What was kept for files that have left the quarantine since the last run goes.
        listed = scan(settings.library, {}, self._lister)
        present = {i.id for i in listed}
        self.cache.prune(present)
        self.decisions.marks.carry_over(listed)
        self.decisions.marks.keep_only(present)

    def listing(self, reason: str, offset: int, limit: int, holding: str = "") -> dict[str, object]:
        """One page of the queue (filtered by reason, "" for all), with the counts per reason.
        ``holding``: the id of a file the page is to show, wherever the listing has it now: the page
        of ``limit`` files that holds it, instead of the one at ``offset`` (if it is listed)."""
        items = scan(self.settings.library, self.decisions.marks.marks, self._lister)
        self.decisions.marks.proven(items)
        with self._index_lock:
            self._index = {i.id: i for i in items}
        counts: dict[str, int] = {}
        for i in items:
            counts[i.reason] = counts.get(i.reason, 0) + 1
        chosen = [i for i in items if i.reason == reason] if reason else items
        at = next((k for k, i in enumerate(chosen) if i.id == holding), None) if holding else None
        if at is not None:
            offset = at - at % limit
        page = chosen[offset : offset + limit]
        return {
            "counts": {r: counts[r] for r in reason_order(counts)},
            "total": len(chosen),
            "offset": offset,
            "items": [i.to_json() for i in page],
        }

    def item(self, item_id: str) -> Item:
        """The listed file with this id, if it is still the same file in the quarantine."""
        with self._index_lock:
            found = self._index.get(item_id)
        if found is None or current(found, self.settings.library) is None:
            raise HttpError(HTTPStatus.NOT_FOUND, CHANGED)
        return found

    def state(self) -> dict[str, object]:
        return {
            "review": advised("review"),  # said by the page if the server stops answering it
            "classes": classes(self.settings, self.journal),
            "learning": self.learning.panel(),
            "model": model_panel(self.settings),
        }


def _done_json(done: Done, where: str) -> dict[str, object]:
    return {"kind": done.kind, "id": done.item_id, "name": done.name, "label": done.label, "path": where}


class Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "facesortd-review"
    # A browser that opens a connection and sends nothing must not hold a thread (and so the
    # server's close, which waits for every request) for ever.
    timeout = REQUEST_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        """Requests go to the debug log, without their query (it holds the token)."""
        logger.debug("review page: {} {}", self.command, urlsplit(self.path).path)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            self._check_token(method, query)
            reply = self._route(method, url.path, query)
        except HttpError as exc:
            reply = _json({"error": str(exc)}, exc.status)
        except UnknownClass as exc:  # the page offers to make it a new class, in its own words
            reply = _json({"error": str(exc), "unknown_class": exc.name, "why": exc.why}, HTTPStatus.CONFLICT)
        except DecidedElsewhere as exc:  # the page moves on to the next file, saying so
            decided = _done_json(exc.done, str(exc.done.path))
            reply = _json({"error": str(exc), "decided": decided}, HTTPStatus.CONFLICT)
        except DecisionError as exc:
            reply = _json({"error": str(exc)}, HTTPStatus.CONFLICT)
        except Changed:  # a picture asked for as the file under its name changed
            reply = _json({"error": CHANGED}, HTTPStatus.NOT_FOUND)
        except Exception as exc:  # ours to fix, so loud in the log, but one request never stops the page
            logger.exception("review page: {} {} failed", method, url.path)
            reply = _json({"error": f"internal error: {exc}"}, HTTPStatus.INTERNAL_SERVER_ERROR)
        status, content_type, body = reply
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _check_token(self, method: str, query: dict[str, str]) -> None:
        given = self.headers.get(TOKEN_HEADER) or (query.get("token") if method == "GET" else None)
        if not given:
            raise HttpError(
                HTTPStatus.UNAUTHORIZED, "the token is missing: open the URL `facesortd review` printed"
            )
        if not hmac.compare_digest(given.encode(), self.server.app.token.encode()):
            raise HttpError(  # most often a page left open while `facesortd review` was started again
                HTTPStatus.FORBIDDEN,
                f"wrong token (a page from an earlier run of `{advised('review')}`?): open the URL it"
                " printed this time; nothing was done",
            )

    def _route(self, method: str, path: str, query: dict[str, str]) -> Reply:
        gets = {
            "/": self._page,
            "/api/items": self._items,
            "/api/guesses": self._guesses,
            "/api/state": self._state,
            "/thumb": self._thumb,
            "/view": self._view,
            "/plot": self._plot,
            **{f"/static/{name}": functools.partial(self._asset, name) for name in STATIC},
        }
        posts = {
            "/api/label": self._label,
            "/api/no-face": self._no_face,
            "/api/undo": self._undo,
            "/api/retrain": self._retrain,
        }
        routes = gets if method == "GET" else posts
        if path not in routes:
            other = posts if method == "GET" else gets
            if path in other:
                raise HttpError(
                    HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes {'POST' if method == 'GET' else 'GET'}"
                )
            raise HttpError(HTTPStatus.NOT_FOUND, f"no page {path}")
        if method == "POST":
            return routes[path](self._body())
        return routes[path](query)

    def _body(self) -> dict[str, str]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:  # read to the end, it would hold a thread until the sender hangs up
            raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length must be a number of bytes")
        if length > MAX_BODY:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body must be JSON") from None
        if not isinstance(body, dict):
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        return {k: str(v) for k, v in body.items()}

    @property
    def app(self) -> ReviewApp:
        return self.server.app

    def _page(self, _query: dict[str, str]) -> Reply:
        html = _static("index.html").replace(b"__TOKEN__", self.app.token.encode())
        return HTTPStatus.OK, "text/html; charset=utf-8", html

    def _asset(self, name: str, _query: dict[str, str]) -> Reply:
        return HTTPStatus.OK, STATIC[name] + "; charset=utf-8", _static(name)

    def _items(self, query: dict[str, str]) -> Reply:
        try:
            offset = max(0, int(query.get("offset", 0)))
            limit = min(MAX_PAGE, max(1, int(query.get("limit", PAGE_SIZE))))
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "offset and limit are numbers") from None
        return _json(self.app.listing(query.get("reason", ""), offset, limit, query.get("id", "")))

    def _guesses(self, query: dict[str, str]) -> Reply:
        return _json(self.app.cache.guesses(self.app.item(query.get("id", ""))))

    def _thumb(self, query: dict[str, str]) -> Reply:
        return HTTPStatus.OK, "image/jpeg", self.app.cache.thumbnail(self.app.item(query.get("id", "")))

    def _view(self, query: dict[str, str]) -> Reply:
        item = self.app.item(query.get("id", ""))
        return HTTPStatus.OK, "image/jpeg", self.app.cache.thumbnail(item, "views", query.get("content"))

    def _plot(self, query: dict[str, str]) -> Reply:
        png = model_plot(self.app.settings, query.get("name", ""))
        if png is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "the model in force has no such figures")
        return HTTPStatus.OK, "image/png", png

    def _state(self, _query: dict[str, str]) -> Reply:
        return _json(self.app.state())

    def _label(self, body: dict[str, str]) -> Reply:
        item = self._to_decide(body)
        new = body.get("new", "").lower() == "true"  # JSON's true, as _body gives it
        label, tab = body.get("label", ""), body.get("tab", "")
        done = self.app.decisions.label(item, label, body.get("content"), new, tab)
        return _json(_done_json(done, str(done.path)))

    def _no_face(self, body: dict[str, str]) -> Reply:
        item = self._to_decide(body)
        done = self.app.decisions.no_face(item, body.get("content"), body.get("tab", ""))
        return _json(_done_json(done, str(done.path)))

    def _to_decide(self, body: dict[str, str]) -> Item:
        """The file a decision names, or why not: another tab's label of it (DecidedElsewhere),
        else gone (404)."""
        wanted = body.get("id", "")
        try:
            return self.app.item(wanted)
        except HttpError:
            if (elsewhere := self.app.decisions.labelled_elsewhere(wanted, body.get("tab", ""))) is not None:
                raise elsewhere from None
            raise

    def _undo(self, body: dict[str, str]) -> Reply:
        done, back, unmade = self.app.decisions.undo(body.get("tab", ""))
        reply = _done_json(done, str(back))
        # The id of the file as it is back: one put back beside another file saved under its name
        # meanwhile ("a (1).png") has another id, and the page, looking for it by the one it had,
        # found that other file and said it had left the quarantine, just after "undone".
        with contextlib.suppress(OSError):  # gone again already: the page's next look says so
            reply["id"] = item_id(back.lstat(), back)
        return _json({**reply, "unmade": unmade})

    def _retrain(self, _body: dict[str, str]) -> Reply:
        started = self.app.learning.start()
        return _json({"started": started}, HTTPStatus.ACCEPTED if started else HTTPStatus.CONFLICT)


class CannotListen(OSError):
    """The page's port could not be taken (in use, or privileged): only this is about ``--port``."""


class ReviewServer(ThreadingHTTPServer):
    """The page's server; ``url`` (with the token) is what the user opens.

    Request threads are not daemons, so ``close`` (the standard ``server_close``) waits for them:
    a decision in flight finishes its move and journal rows before the journal closes under it.
    """

    daemon_threads = False

    def __init__(self, settings: Settings, port: int) -> None:
        try:
            super().__init__((HOST, port), Handler)
        except OSError as exc:
            raise CannotListen(exc.errno, exc.strerror) from exc
        self.journal = Journal.for_state_dir(settings.state_dir)
        self.app = ReviewApp(settings, self.journal, secrets.token_urlsafe(24))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/?token={self.app.token}"

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """A browser that went away before its reply was written (a reload, a closed tab, a thumbnail
        scrolled past) is no error; anything else goes to the log, not as a bare traceback on stderr."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("review page: the browser went away before its reply was sent")
        else:
            logger.exception("review page: a request from {} failed", client_address[0])

    def close(self) -> None:
        """Stop listening, let requests in flight and a retrain started on the page finish, then
        close the journal (after ``shutdown`` if it was serving). Interrupted while it waits, the
        journal is left open to the retrain, which ends with the process."""
        self.server_close()
        self.app.learning.finish()
        self.journal.close()
