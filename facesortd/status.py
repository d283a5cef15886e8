"""``facesortd status``: is the daemon running, what has it done, what waits for the user, and why.

:func:`gather` collects everything as plain JSON-ready data (``status --json`` prints it as it is);
:func:`report` words the same data for a person, so the two can never disagree.

Counts are of placements, not of moves (see ``Journal.counts``), so they add up to the files placed;
files a person labelled, on the review page or with a file manager, are counted apart, as their
labels, never as placed by facesortd (``Journal.labelled_counts``: one rule for both ways).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from loguru import logger

from facesortd import progress
from facesortd.advice import advised
from facesortd.config import (
    FOLDERS,
    MODEL_FIX,
    ConfigError,
    Settings,
    fingerprint,
    folders_in_the_way,
    folders_overlap,
    is_setting_variable,
)
from facesortd.content import content_id
from facesortd.durable import NOT_REGULAR, open_regular
from facesortd.emotion import ModelError
from facesortd.journal import LOCK_WAIT_S, UNDOING, Journal, JournalError, ModelId, Move, open_in
from facesortd.learn.metrics import headline
from facesortd.learn.retrain import RETRAIN_HELD_BACK, schedule
from facesortd.learn.review import label_summary, user_labels
from facesortd.library import UNTIL_THEN, case_twins, quarantine_refusal
from facesortd.model_store import last_retrain, load_model_in_force, lost_in_force, model_id, model_in_force
from facesortd.mounts import drive_not_mounted, drive_problem
from facesortd.progress import said_if_waiting
from facesortd.quarantine import QUARANTINE_DIR, QUARANTINE_REASONS, outside_library
from facesortd.recovery import FORGET_RELATIVE, relative_rows
from facesortd.refusals import Refused, list_folder
from facesortd.service_unit import masked, no_systemctl, unit_file
from facesortd.shown_names import exact, one_line
from facesortd.sorter import COPIED, copy_in_library, undone
from facesortd.state import DAEMON_LOCK, JOURNAL_FILE, STATUS_FILE, holder_pid, how_to_stop, move_lock_if_free
from facesortd.undo import held_name
from facesortd.watch import held_for_writing, ignored, walk_inbox, wanted

MAX_STUCK = 10
"""Inbox files explained one by one; the rest are counted."""


FRESH_S = 30
"""A daemon rewrites its status file every second; one older than this is not being kept up."""


def daemon_state(settings: Settings, problems: list[str]) -> dict[str, Any] | None:
    """The running daemon's last published status, or None if no daemon runs for this state folder.

    A status file that is not being kept up while its daemon lives is a problem the person must
    hear about, not "not running": that sent them to start a second daemon, which is refused. Nor
    is a daemon that holds the folder's lock and has not published yet (loading its models, looking
    through a big inbox): ``{"pid": N, "starting": True}``.
    """
    state_dir = settings.state_dir
    status = _published(state_dir / STATUS_FILE)
    pid = status["pid"] if status else None
    age = time.time() - status["updated"] if status else 0.0
    # Written at a time ahead of the clock (the clock set back since, a wrong one at boot) it says
    # nothing of when it was written: a daemon killed then, its pid reused, was "running" for good.
    if pid is None or not _alive(pid) or (abs(age) >= FRESH_S and not _holds_daemon_lock(pid, state_dir)):
        holder = holder_pid(state_dir)
        if holder is not None and os.path.isdir("/proc/self/fd") and _holds_daemon_lock(holder, state_dir):
            return {"pid": holder, "starting": True}
        return None  # a daemon that died (long ago: its pid may name another process now), or none
    if status.get("settings") not in (None, fingerprint(settings)):  # type: ignore[union-attr]
        problems.append(
            f"the daemon (pid {pid}) runs with other settings than these (the config file or FACESORTD_* "
            "variables changed since it started?): it reads them only when it starts, so restart it "
            f"(systemctl --user restart facesortd, or Ctrl-C and `{advised('run')}`); if it was started "
            "with --config FILE (the unit's ExecStart says), give this command the same --config"
            + _shell_only()
        )
    if abs(age) < FRESH_S:
        return status
    problems.append(
        f"the daemon (pid {pid}) runs, but "
        + (f"last wrote its status {age:.0f} s ago: " if age > 0 else "its status is dated later than now: ")
        + (
            f"it is stopped (Ctrl-Z in its terminal, or SIGSTOP): nothing is sorted until it goes on: "
            f"`fg` in that terminal, or kill -CONT {pid}"
            if _stopped(pid)
            else f"it cannot write into {state_dir}: make it writable (chmod u+rwx '{state_dir}')"
            if not os.access(state_dir, os.W_OK | os.X_OK)
            else f"it looks stuck: restart it ({_how_to_restart(pid)})"
        )
    )
    return status


def _published(path: Path) -> dict[str, Any] | None:
    """The daemon's status file, if it is one: a JSON object with a pid and a time. One that is not
    (cut short by a disk, edited, written by another version, a FIFO in its place) ended `status` in
    a traceback (or, a FIFO, hung it); so did a queue, model or start of another kind, now None (the
    start: its time)."""
    try:
        with open_regular(path) as fh:
            status = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict):
        return None
    pid, updated = status.get("pid"), status.get("updated")
    if type(pid) is not int or not 0 < pid <= PID_MAX or not _finite(updated):
        return None
    if not _finite(status.get("started")):
        status["started"] = updated
    if type(status.get("queue")) is not int:
        status["queue"] = None
    try:
        status["model"] = exact(status, "model") if isinstance(status.get("model"), str) else None
    except (ValueError, TypeError):  # its exact bytes garbled
        status["model"] = None
    status.pop("model_bytes_b64", None)
    return status


def _finite(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


PID_MAX = 1 << 22
"""No Linux process id is larger (the kernel's PID_MAX_LIMIT); os.kill refused a larger one."""


def _alive(pid: int) -> bool:
    """Is there a process ``pid`` of this user (another user's is not this user's daemon)?"""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _stopped(pid: int) -> bool:
    """Is ``pid`` stopped (Ctrl-Z on a `facesortd run` in a terminal, SIGSTOP): it neither sorts nor
    writes its status until it goes on, which needs no restart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] in (["T"], ["t"])  # its name, in (), may hold anything


def _how_to_restart(pid: int) -> str:
    """systemd's restart for a daemon systemd runs; for one in a terminal, that fails ("Unit
    facesortd.service not loaded"): stop it there, and start it again."""
    stop = how_to_stop(pid)
    if stop.startswith("systemctl"):
        return "systemctl --user restart facesortd"
    return f"{stop}, then `{advised('run')}` again"


def _shell_only() -> str:
    """The FACESORTD_* variables of this shell, which a restart cannot bring to the service: systemd
    starts it without them (`status` sees them, the daemon never does)."""
    names = sorted(k for k in os.environ if is_setting_variable(k))
    if not names:
        return ""
    return (
        f"; this shell sets {', '.join(names)}, which a daemon systemd starts does not see: put those "
        "settings in the config file"
    )


def _holds_daemon_lock(pid: int, state_dir: Path) -> bool:
    """Is ``pid`` this state folder's daemon: has it the folder's daemon lock open? The pid of an old
    status file may name another process since (the daemon killed -9 and its pid reused, a state
    folder copied from another machine), even another facesortd: a "facesortd" in its command line
    made it this folder's daemon, "stuck", to be restarted."""
    if not os.path.isdir("/proc/self/fd"):
        return True  # no /proc to ask: trust the pid, as for a fresh status file
    try:
        lock = os.stat(state_dir / DAEMON_LOCK)
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:  # no lock file, or another user's process: not a daemon of this folder
        return False
    for fd in fds:
        with contextlib.suppress(OSError):  # closed since it was listed
            if os.path.samestat(os.stat(f"/proc/{pid}/fd/{fd}"), lock):
                return True
    return False


def listing(folder: Path, problems: list[str]) -> list[Path]:
    """What ``folder`` holds (nothing if it is missing); a folder we may not list is a problem named
    with its fix, not a traceback that hides everything else `status` would say."""
    try:
        return [Path(entry.path) for entry in list_folder(folder)]
    except Refused as exc:
        problems.append(str(exc))
        return []


def quarantine_links(settings: Settings, problems: list[str], said_by_daemon: list[str]) -> None:
    """The quarantine, or a ``_quarantine/<reason>`` folder, made a link out of the library: every move
    there is refused (``Library.refusal``), and the files for it wait where they are; `status` named
    only the quarantine itself, and only while the daemon ran and had met it. Said in the move's own
    words (``library.quarantine_refusal``), once: a daemon's line that already holds them is enough."""
    quarantine = settings.library / QUARANTINE_DIR
    for folder in [quarantine, *(quarantine / reason for reason in QUARANTINE_REASONS)]:
        refused = quarantine_refusal(settings.library, folder)
        if refused is None or any(str(refused) in problem for problem in problems):
            continue
        if not any(one_line(refused) in problem for problem in said_by_daemon):
            problems.append(f"{refused}; {UNTIL_THEN}")


def waiting_for_review(settings: Settings, problems: list[str]) -> dict[str, int]:
    """Files in each ``_quarantine/<reason>/`` folder now, whoever put them there; as the review page
    lists them (``review_page.queue.scan``), a folder that is a link is none of them."""
    root = settings.library / QUARANTINE_DIR
    if outside_library(settings.library):
        return {}
    folders = sorted(p for p in listing(root, problems) if p.is_dir() and not p.is_symlink())
    counts = {
        f"{QUARANTINE_DIR}/{f.name}": sum(1 for p in listing(f, problems) if p.is_file()) for f in folders
    }
    return {k: n for k, n in counts.items() if n}


def _why_stuck(path: Path, settings: Settings, journal: Journal | None, errors: dict[str, str]) -> str:
    """Why a file or folder in the inbox has not been sorted, in words that say what to do."""
    if path.is_symlink():
        return "a symbolic link: facesortd moves only real files"
    if path.is_dir() and ignored(path.name, settings.watch):  # recursive or not, it stays whole
        return (
            "a folder whose name watch.ignore leaves alone, with all it holds (to sort its files, move "
            "them out)"
        )
    if path.is_dir():
        return (
            "a folder: only files dropped into the inbox itself are sorted "
            "(move its files out, or set watch.recursive = true)"
        )
    if not wanted(path, settings.watch):
        return "not a name facesortd sorts (see watch.extensions and watch.ignore)"
    if not path.is_file():
        return f"{NOT_REGULAR}: facesortd sorts only regular files"
    if str(path) in errors:
        return f"failed: {errors[str(path)]}"
    if journal is not None:
        try:
            digest = content_id(path)
        except OSError as exc:
            return f"cannot be read: {exc}"
        if journal.undone_from(path, digest):  # the sorter's own rules, so status says what it does
            return undone()
        if copied := copy_in_library(journal, path, digest, settings.library):
            return f"{COPIED} {copied}"
    if held_for_writing(path):  # the daemon's own test: it leaves such a file alone, for good if need be
        return "being written: a process holds it open for writing; sorted once it closes it"
    return "waiting to be sorted"


def interrupted_moves(settings: Settings, journal: Journal, problems: list[str]) -> None:
    """A move a killed `sort` or daemon left half done (kill -9, a power cut) leaves its file in two
    places, or a copy's temp file, until the next `sort` or start of `run` recovers it; `status`
    said nothing of it, and counted such a file twice. Looked at only while no move is live (the move
    lock free), so a move in progress is never taken for one. An older version's row with a relative
    path is said apart: recovery never acts on it, so `sort` would not clear it; `undo
    --forget-relative` does, once the person has put its file right."""
    if old := relative_rows(journal):
        problems.append(
            f"{len(old)} interrupted move(s) journaled by an older facesortd by relative paths, the first "
            f"'{old[0].source}' -> '{old[0].destination}', are left alone (relative to a folder it did "
            "not record): the file is in one of the two places, or both; "
            f"`{advised(*FORGET_RELATIVE, '--dry-run')}` shows each and whether its files are there, "
            f"and once you have put each right by hand `{advised(*FORGET_RELATIVE)}` clears them "
            "(it touches no file)"
        )
    try:
        with move_lock_if_free(settings.state_dir) as free:
            moves = [m for m in journal.planned() if m.in_full] if free else []
            undoing = journal.move(int(mark)) if free and (mark := journal.get_meta(UNDOING)) else None
    except OSError:  # a state folder this user may not write: said by the journal's own checks
        return
    if undoing is not None:  # its file in the inbox was "you undid its sort", as if once
        problems.append(_undo_cut_short(undoing))
    if moves:
        problems.append(
            f"{len(moves)} move(s) interrupted (a `sort` or the daemon was killed in the middle), the "
            f"first of {moves[0].source}: such a file may be in two places until the next "
            f"`{advised('sort')}` or start of `{advised('run')}` puts it in one"
        )


def _undo_cut_short(undoing: Move) -> str:
    """What an `undo` killed while putting a file back left, and what finishes it. Of a `sort --copy`
    it may have left the original hidden in its folder (``undo.held_name``): said only "an undo was
    cut short", a person looking for the file in the folder it was copied from found it gone. The
    next `undo` finishes it too, but only on its way to undoing another move: not advised."""
    held = held_name(undoing)
    if os.path.lexists(held):
        where = (
            f"its original is hidden meanwhile as {held}, to go back as {undoing.source} (the "
            "library's copy removed if it is still there)"
        )
    else:
        where = f"it may be in the library and in {undoing.source.parent} both"
    return (
        f"an `undo` was cut short (killed, or its journal refused a write) while putting "
        f"{undoing.destination} back: {where}; `{advised('sort')}` puts it right now (before it "
        f"sorts the inbox), as the daemon does as it starts (`{advised('run')}`)"
    )


def inbox_entries(
    settings: Settings, journal: Journal | None, running: bool, problems: list[str]
) -> dict[str, Any]:
    """How many entries sit in the inbox and, for the first few, why."""
    entries = sorted(
        Path(entry.path)
        for entry in walk_inbox(settings.inbox, settings.watch, lambda exc: problems.append(str(exc)))
    )
    errors = {path: message for _at, path, message in reversed(journal.last_errors(200))} if journal else {}
    stuck = []
    for path in entries[:MAX_STUCK]:
        why = _why_stuck(path, settings, journal, errors)
        if why == "waiting to be sorted" and not running:
            why += " (the daemon is not running)"
        stuck.append({"path": str(path), "why": why})
    return {"count": len(entries), "stuck": stuck}


def gather(settings: Settings, refused: list[Exception] | None = None) -> dict[str, Any]:
    """Everything `status` shows, as JSON-ready data. A journal or model that cannot be used (damaged,
    of a newer facesortd, on a read-only disk) is a problem line among the rest, and the error itself
    is added to ``refused`` (if given), for `status` to end as every command does for it: it said
    that line alone, not whether a daemon ran or what waited in the inbox, and `--json` nothing. So
    is a folder setting whose path a file holds (which every command refuses, and `status` refused
    too, saying nothing of the daemon running meanwhile): what is in that folder is not looked at."""
    refused = [] if refused is None else refused
    in_the_way = folders_in_the_way(settings)
    refused.extend(map(ConfigError, in_the_way.values()))
    problems: list[str] = list(in_the_way.values())
    said_by_daemon: list[str] = []  # one line each already (the daemon wrote them so)
    state = daemon_state(settings, problems)
    now = time.time()
    daemon: dict[str, Any] = {"running": state is not None}
    if state and state.get("starting"):
        daemon.update(pid=state["pid"], starting=True)
    elif state:
        problems_said = state.get("problems")
        said_by_daemon = list(map(str, problems_said)) if isinstance(problems_said, list) else []
        daemon.update(
            pid=state["pid"],
            uptime_s=round(now - state["started"]),
            queue=state["queue"],
            model=state["model"],
        )
    if lost := lost_in_force(settings):
        problems.append(lost)
    away = {name: drive_not_mounted(getattr(settings, name)) for name in FOLDERS}  # each asked once
    problems += filter(None, (drive_problem(name, drive) for name, drive in away.items()))
    if overlap := folders_overlap(settings):  # `run` refuses to start: advising it alone contradicted that
        problems.append(overlap)
    path = model_in_force(settings)
    if state and isinstance(daemon.get("model"), str):
        # By content too: a model written anew under the same name (a facesortd upgrade's shipped
        # model, a pinned file replaced) is taken up at the next file as much as a new name is.
        version = state.get("model_version")
        held = ModelId(daemon["model"], version if isinstance(version, str) else None)
        daemon["holds_model_in_force"] = held.matches(model_id(path))
    try:
        model = load_model_in_force(settings)
    except ModelError as exc:
        problems.append(f"{exc}: {MODEL_FIX}")
        refused.append(exc)
        model = None
    threshold = settings.recognition.threshold
    model_part: dict[str, Any] = {"path": str(path) if path else None, "threshold": threshold}
    if model:
        model_part.update(created=model.info.get("created"), labels=model.labels)
        model_part["held_out"] = model.info.get("held_out")
        if retrained := last_retrain(settings):
            model_part["last_retrain"] = {"at": retrained[0], "decision": retrained[1]}
    out: dict[str, Any] = {"daemon": daemon, "model": model_part}
    # One on the disk below a mount point whose drive is away is not the one facesortd keeps (said above).
    journal, unusable = None, "state_dir" in in_the_way
    if (settings.state_dir / JOURNAL_FILE).exists() and away["state_dir"] is None:
        try:
            journal = _opened_journal(settings.state_dir)
        except JournalError as exc:
            problems.append(str(exc))
            refused.append(exc)
            unusable = True
    try:
        midnight = time.mktime((*time.localtime()[:3], 0, 0, 0, 0, 0, -1))
        # Not known, rather than none, of a journal that cannot be read: "nothing sorted yet" misled.
        none: dict[str, int] | None = None if journal is None and unusable else {}
        out["total"] = journal.counts(settings.library) if journal else none
        out["today"] = journal.counts(settings.library, midnight) if journal else none
        out["labelled"] = {
            "total": journal.labelled_counts() if journal else none,
            "today": journal.labelled_counts(midnight) if journal else none,
        }
        out["waiting_for_review"] = {}
        if "library" not in in_the_way:
            quarantine_links(settings, problems, said_by_daemon)
            out["waiting_for_review"] = waiting_for_review(settings, problems)
            folders = [p.name for p in listing(settings.library, problems) if p.is_dir()]
            problems.extend(case_twins(settings.library, folders, model.labels if model else []))
        out["inbox"] = (
            {"count": 0, "stuck": []}
            if "inbox" in in_the_way
            else inbox_entries(settings, journal, state is not None, problems)
        )
        if journal:
            interrupted_moves(settings, journal, problems)
            counts, unusable, imported = label_summary(journal)
            known = set(model.labels) if model else set()
            minimum = settings.learning.min_per_class
            out["labels"] = {
                "usable": counts,
                "imported": imported,
                "without_face": unusable,
                "waiting_for_more": {
                    k: minimum - n for k, n in counts.items() if k not in known and n < minimum
                },
            }
            state = schedule(journal, user_labels(journal))
            out["retrain"] = {
                "new_labels": max(0, state.fresh),
                "after_labels": settings.learning.retrain_after_labels,
                "due_by_time_at": state.due_at(settings.learning),
                "held_back": journal.get_meta(RETRAIN_HELD_BACK) or None,
            }
            out["last_errors"] = [
                {"at": at, "path": p, "message": message} for at, p, message in journal.last_errors()
            ]
    finally:
        if journal:
            journal.close()
    out["problems"] = [*said_by_daemon, *map(one_line, problems)]
    return out


def _opened_journal(state_dir: Path) -> Journal:
    """The journal, opened as it is for any command, but a wait for it said once it lasts: held by
    another process (a sqlite3 shell in exclusive locking mode, a stuck one), `status` waited all of
    ``LOCK_WAIT_S`` without a word, the person left to wonder whether it hung."""
    path = state_dir / JOURNAL_FILE

    def say_waiting() -> None:
        logger.warning(
            "the journal {} has not opened in {:g} s: most likely another process holds its lock (it is "
            "open in: {}); status waits up to {:g} s for it, then says what to do (Ctrl-C stops it)",
            path,
            progress.SAY_WAITING_S,
            open_in(path),
            LOCK_WAIT_S,
        )

    with said_if_waiting(say_waiting):
        return Journal.for_state_dir(state_dir, drive_asked=True)


def _known(value: object) -> str:
    """A member of the daemon's status file as said, "not known" where the file's was of another kind
    (a status file edited, or of another version): "queue None" read as a fault of facesortd's."""
    return "not known" if value is None else str(value)


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if days else f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _counts_line(title: str, counts: dict[str, int]) -> str:
    body = ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing"
    return f"{title}: {sum(counts.values())} file(s): {body}"


def _how_to_start(settings: Settings) -> str:
    """systemctl is advised only where it can start the unit: once `install-service` has installed it
    (before, `systemctl --user start facesortd` failed with "Unit facesortd.service not found",
    advised all the same until 2026-12-03), not masked, on a system with systemd. Nor is either
    advised while `run` would refuse to start (a folder setting whose path a file holds, an inbox and
    library that overlap: each a PROBLEM line below): the person was sent into that refusal."""
    if folders_in_the_way(settings) or folders_overlap(settings):
        return f"it cannot start until the PROBLEM below is fixed; then `{advised('run')}` starts it"
    unit = unit_file()
    if masked(unit):
        return f"start it with `{advised('run')}`; its unit is masked (`systemctl --user unmask facesortd`)"
    if unit.exists() and not no_systemctl():
        return f"start it with `{advised('run')}` or `systemctl --user start facesortd`"
    if unit.exists():
        return f"start it with `{advised('run')}` (this system has no systemctl to start its unit)"
    return f"start it with `{advised('run')}`, or as a service: `{advised('install-service')}`"


def report(settings: Settings, refused: list[Exception] | None = None) -> str:
    """The status text: daemon, model, what was sorted, what waits for you, last errors (``refused``:
    as for :func:`gather`)."""
    data = gather(settings, refused)
    lines = []
    daemon = data["daemon"]
    if daemon.get("starting"):
        lines.append(
            f"daemon: starting (pid {daemon['pid']}): it has not said yet what it is doing (it does once "
            "its models are loaded and the inbox looked through)"
        )
    elif daemon["running"]:
        in_force = Path(data["model"]["path"]).name if data["model"]["path"] else "none"
        lines.append(
            f"daemon: running (pid {daemon['pid']}, up {_duration(daemon['uptime_s'])}), "
            f"queue {_known(daemon['queue'])}, model {_known(daemon['model'])}"
            # Its workers load a new model at their next file: two names, one line apart, read as a fault.
            + (
                f" (takes up {in_force}, the model in force, at its next file)"
                if not daemon.get("holds_model_in_force", True)
                else ""
            )
        )
    else:
        lines.append(f"daemon: not running ({_how_to_start(settings)})")
    lines.extend(f"PROBLEM: {problem}" for problem in data["problems"])
    model = data["model"]
    lines.append(f"model in force: {model['path'] or 'none (every face is unsure)'}")
    lines.append(f"  threshold in force: {model['threshold']:.2f} (faces less sure than that are unsure)")
    if model["path"] and "labels" in model:  # read (one that cannot be is a PROBLEM line above)
        held = model.get("held_out")
        figures = headline(held) or "no figures"
        if isinstance(held, dict) and held.get("threshold") != model["threshold"]:
            figures += (
                f" (measured when it was made; `{advised('eval', 'DATASET')}` measures it on a folder of "
                "labelled screenshots at the threshold in force)"
            )
        lines.append(f"  {model.get('created', '?')}; held out: {figures}")
        if retrained := model.get("last_retrain"):
            lines.append(f"  last retrain {retrained['at']}: {retrained['decision']}")
    if model["path"]:
        lines.append(
            f"  (`{advised('model')}` lists every version; `{advised('model', 'rollback')}` goes back one, "
            f"`{advised('model', 'use', 'default')}` to the shipped model)"
        )
    # Where to drop files and where to look: a daemon started by systemd says it nowhere else.
    lines.append(f"inbox: {settings.inbox}\nlibrary: {settings.library}")
    if data["total"] is None:
        lines.append("what was sorted: not known, as the journal cannot be read (PROBLEM above)")
    elif not data["total"]:
        lines.append("nothing sorted yet")
    else:
        lines.append(_counts_line("today", data["today"]))
        lines.append(_counts_line("in total", data["total"]))
    if data["labelled"]["total"]:
        lines.append(_counts_line("labelled by you today", data["labelled"]["today"]))
        lines.append(_counts_line("  in total", data["labelled"]["total"]))
    waiting = data["waiting_for_review"]
    if waiting:
        lines.append(_counts_line("waiting for your review", waiting))
        lines.append(
            f"  (label them on the review page, `{advised('review')}`, or move each into "
            "<library>/<emotion>/ with a file manager)"
        )
    inbox = data["inbox"]
    if inbox["count"]:
        lines.append(f"in the inbox: {inbox['count']}")
        lines.extend(f"  {one_line(Path(e['path']).name)}: {one_line(e['why'])}" for e in inbox["stuck"])
        if inbox["count"] > len(inbox["stuck"]):
            lines.append(f"  and {inbox['count'] - len(inbox['stuck'])} more")
    if labels := data.get("labels"):
        counts = labels["usable"]
        if counts or labels["without_face"]:
            body = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            lines.append(
                f"labels for training: {sum(counts.values())}"
                + (f" ({body})" if body else "")
                + (f"; {labels['imported']} of them imported (import-labels)" if labels["imported"] else "")
                + (
                    f"; {labels['without_face']} without a usable face, not used"
                    if labels["without_face"]
                    else ""
                )
            )
        for label, n in sorted(labels["waiting_for_more"].items()):
            lines.append(f"  {label}: waiting for {n} more example(s)")
    if (retrain := data.get("retrain")) and retrain["new_labels"]:
        missing = retrain["after_labels"] - retrain["new_labels"]
        when = retrain["due_by_time_at"]
        lines.append(
            f"next retrain: {retrain['new_labels']} new label(s); "
            + (
                f"due now (the daemon retrains at its next look; `{advised('retrain')}` at once)"
                if missing <= 0
                else f"after {missing} more"
                + (f" or at {time.strftime('%Y-%m-%d %H:%M', time.localtime(when))}" if when else "")
            )
        )
        if retrain.get("held_back"):
            lines.append(f"  the last one due could not train: {retrain['held_back']}")
    if errors := data.get("last_errors"):
        lines.append("last errors:")
        for e in errors:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
            lines.append(f"  {when} {one_line(Path(str(e['path'])).name)}: {one_line(e['message'])}")
    return "\n".join(lines)
