"""`sort`, `detect` and `undo`: which files, and what became of each, shown on the terminal or as JSON."""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from loguru import logger

from facesortd.advice import advised
from facesortd.annotate import draw_faces
from facesortd.cli.arg_types import folder_to_write, int_at_least
from facesortd.cli.common import UsageError, face_detector, refuse_overlap, settings_for
from facesortd.cli.stopping import stop_requests
from facesortd.config import Settings, WatchSettings
from facesortd.cores import share_cores
from facesortd.decide import Decision, FaceResult, Pipeline
from facesortd.detect import Candidates, FaceDetector
from facesortd.durable import DISK_FULL, disk_full_fix, write_new
from facesortd.ensemble import Model
from facesortd.images import UnreadableImage, read_image
from facesortd.journal import Journal, JournalLocked, JournalReplaced, recover_logged
from facesortd.library import Library
from facesortd.model_store import load_model_in_force, model_in_force
from facesortd.progress import Progress
from facesortd.shown_names import json_text, one_line
from facesortd.sorter import Outcome, Sorter
from facesortd.state import JOURNAL_FILE
from facesortd.watch import scan, wanted
from facesortd.workers import Lender, in_order_until


def _model(settings: Settings) -> Model | None:
    model = load_model_in_force(settings)
    if model is None:
        logger.warning(
            "no emotion model yet: every face will be 'unsure' (train one with `{}`)", advised("train")
        )
    return model


def _pipeline(settings: Settings, model: Model | None) -> Pipeline:
    return Pipeline(face_detector(settings), model, settings.recognition, settings.images)


def _expand_inputs(
    paths: Iterable[Path],
    watch: WatchSettings,
    *,
    inbox: Path | None = None,
    sorted_from: Callable[[Path], int] | None = None,
) -> list[Path]:
    """Files named directly, plus the files directly inside named folders that the daemon would sort
    (``watch.extensions``, not ``watch.ignore``): `sort DIR` and the daemon pick the same files; the
    ``inbox`` (bare `sort`, or named) has its sub-folders taken too where the daemon does
    (``watch.recursive``).

    A name that does not exist is a typo, refused before anything moves (not "skipped", exit 0);
    so is one this user may not get at (a folder they may not list, or a file in a folder they may
    not enter), with the fix instead of a traceback; and so is a folder holding no image when that
    leaves nothing to do (the wrong folder named, most likely: `detect` printed nothing at all).
    Not the ``inbox``, bare or named: nothing waiting there is its normal state (the daemon took it).
    Nor a folder ``sorted_from`` says files were sorted out of: `sort FOLDER` run again once all
    was sorted (to finish what a Ctrl-C left, say) was refused as the wrong folder named, exit 2.
    A file named directly is taken whatever its name: the sorter says why it leaves one of no image
    name where it is (dropped here, it would be skipped without a word). A file named twice is once.
    """
    out: list[Path] = []
    imageless: list[Path] = []
    for p in paths:
        is_inbox = inbox is not None and p.resolve() == inbox.resolve()
        try:
            if not p.exists() and not p.is_symlink():
                raise UsageError(f"{p}: no such file or folder")
            if not p.is_dir():
                out.append(p)
                continue
            children = sorted(c for c in p.iterdir() if not c.name.startswith("."))
            images = [c for c in children if c.is_file() and wanted(c, watch)]
            folders = [c for c in children if c.is_dir()]
        except PermissionError as exc:
            raise UsageError(
                f"{p}: cannot get at it ({exc.strerror}): give yourself access to it and the "
                "folders it is in (chmod u+rx)"
            ) from exc
        out.extend(images)
        if not images and not is_inbox:
            imageless.append(p)
        if is_inbox and watch.recursive:  # the daemon's rule: what waits in the sub-folders is sorted too
            out.extend(sorted(f for f in scan(p, watch) if f.parent != p))
            continue
        for folder in folders:
            logger.warning(
                "{}: a folder inside {}; not sorted (name it to sort it: {})",
                folder,
                p,
                advised("sort", "FOLDER"),
            )
    for folder in imageless:
        if sorted_from and (before := sorted_from(folder)):
            logger.info("nothing left to sort in {}: {} file(s) were sorted out of it before", folder, before)
            continue
        problem = (
            f"no images in {folder}: only the files directly inside a folder whose names end in "
            f"{', '.join(watch.extensions)} (watch.extensions) are taken"
        )
        if not out:
            raise UsageError(problem)
        logger.warning(problem)
    return _each_once(out)


def _each_once(paths: list[Path]) -> list[Path]:
    """Each file at its first mention only: `sort ~/screens/* ~/screens` (or ``a.png ./a.png``) names
    every file twice, and the second look found it gone, said "moved by a person, the daemon or
    another `facesortd sort`", and a dry run planned it twice. Folders are compared as they
    really are (``..``, a symbolic link to a folder); a file's own name is not followed."""
    real: dict[Path, str] = {}
    seen: set[tuple[str, str]] = set()
    once = []
    for path in paths:
        folder = real.setdefault(path.parent, os.path.realpath(path.parent))
        if (folder, path.name) not in seen:
            seen.add((folder, path.name))
            once.append(path)
    return once


def _sorted_from(settings: Settings) -> Callable[[Path], int] | None:
    """How many files were sorted out of a folder before, by the journal (None: nothing ever was)."""
    journal_file = settings.state_dir / JOURNAL_FILE
    if not journal_file.exists():
        return None

    def count(folder: Path) -> int:
        journal = Journal(journal_file)
        try:
            return journal.sorted_from(folder)
        finally:
            journal.close()

    return count


_COPY_FROM_INBOX = (
    "--copy leaves the originals where they are, and files left in the inbox ({inbox}) would be sorted "
    "again by the daemon or the next `sort`, a second time into the library: copy from a folder outside "
    "the inbox, or sort the inbox without --copy"
)
_COPY_FROM_LIBRARY = (
    "already in the library ({library}), where --copy would leave it and put a second copy of it "
    "beside: sort it without --copy to move it ({sort_file})"
)


def _under(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except OSError:
        return False


def cmd_sort(args: argparse.Namespace) -> int:
    settings = settings_for(args, library=args.library)
    refuse_overlap(settings, args.paths)  # before the inbox is made: nothing is touched
    if args.copy and not args.paths:
        raise UsageError(_COPY_FROM_INBOX.format(inbox=settings.inbox))
    if not args.paths and not args.dry_run:  # a dry run touches nothing: no inbox is nothing to sort
        settings.inbox.mkdir(parents=True, exist_ok=True)
    if args.paths or settings.inbox.exists():
        files = _expand_inputs(
            args.paths or [settings.inbox],
            settings.watch,
            inbox=settings.inbox,
            sorted_from=_sorted_from(settings),
        )
    else:
        files = []
    if not files:
        if not args.paths or any(_under(p, settings.inbox) for p in args.paths):  # else said, or refused
            logger.info("nothing to sort: drop screenshots into {}", settings.inbox)
        return 0
    if args.copy and (inside := next((f for f in files if _under(f, settings.inbox)), None)):
        raise UsageError(f"{inside}: {_COPY_FROM_INBOX.format(inbox=settings.inbox)}")
    if args.copy and (inside := next((f for f in files if _under(f, settings.library)), None)):
        why = _COPY_FROM_LIBRARY.format(library=settings.library, sort_file=advised("sort", "FILE"))
        raise UsageError(f"{inside}: {why}")
    # Paths a person named are their request: it overrides their earlier undo or quarantine.
    named = bool(args.paths)
    workers = min(args.workers or settings.watch.workers, len(files))
    pipelines = _Pipelines(settings, workers)
    share_cores(workers)
    library = Library(settings.library)
    journal_file = settings.state_dir / JOURNAL_FILE
    # A dry run reads the history (undone files, duplicates) but never creates the state folder.
    journal = Journal(journal_file) if not args.dry_run or journal_file.exists() else None
    if journal is not None and not args.dry_run:
        # A `sort` killed mid-move, or whose journal refused a move's last mark, left its row
        # planned: without a daemon started since, the file half-moved was sorted a second time.
        recover_logged(journal)
    if not args.dry_run and pipelines.model is not None:
        library.make_emotion_folders(pipelines.model.labels)
    model = model_in_force(settings)
    sorter = Sorter(
        library,
        journal,
        model_name=model.name if model else "none",
        duplicates=settings.watch.duplicates,
        dry_run=args.dry_run,
        copy=args.copy,
        # The inbox is where writers are at work, as for the daemon; a file named is sorted now.
        unreadable_settle_s=0.0 if named else settings.watch.unreadable_settle_s,
        extensions=tuple(settings.watch.extensions),
    )
    progress = Progress(len(files), "sorting") if len(files) > 1 and not args.json else None
    tally: Counter[str] = Counter()

    full: list[str] = []  # which disk had no room, with the fix

    def sort_one(src: Path) -> Outcome | Exception:
        with pipelines.borrow() as pipeline:
            try:
                return sorter.sort(pipeline, src, named=named)
            except (JournalLocked, JournalReplaced):  # every file after it fails alike: said once, batch ends
                raise
            except Exception as exc:  # one file must not end the batch: the rest still get sorted
                if why := _disk_full(exc, settings.state_dir):  # every other would fail alike
                    full.append(why)
                return exc

    try:
        with stop_requests() as stop:
            for src, outcome in in_order_until(sort_one, files, workers, lambda: stop() or bool(full)):
                tally[_report(args, src, outcome)] += 1
                if progress:
                    progress.step()
    finally:
        if progress:
            progress.close()
        if journal is not None:
            journal.close()
    done = ("dry run, nothing moved: " if args.dry_run else "") + summary(tally)
    left = len(files) - tally.total()
    if left and full:
        logger.error(
            "stopped: {}; {}; {} file(s) left where they were (the same command sorts them once there "
            "is room)",
            full[0],
            done,
            left,
        )
        return 1
    if left:  # stopped: by a signal, or Ctrl-C in a worker's tool
        logger.warning(
            "interrupted: {}; {} file(s) left where they were (the same command sorts them)", done, left
        )
        return stop.exit_status()
    logger.info("{}", done)
    return 1 if tally["failed"] else 0


def _disk_full(exc: Exception, state_dir: Path) -> str:
    """Which disk had no room for a move, with the fix ("" if that is not what ``exc`` is): the
    library's (a Refused names its folder) or the journal's. Sorting on classified each of thousands
    of files left, to fail it alike, a line each."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return str(exc)
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return f"the journal has no room ({exc}): {disk_full_fix(state_dir)}"
    return ""


class _Pipelines(Lender[Pipeline]):
    """One pipeline per worker thread, lent out per file: OpenCV's detectors are not shareable,
    the emotion model (read-only) is."""

    def __init__(self, settings: Settings, n: int) -> None:
        self.model = _model(settings)
        super().__init__(_pipeline(settings, self.model) for _ in range(n))


def _report(args: argparse.Namespace, src: Path, outcome: Outcome | Exception) -> str:
    """Show one file's outcome (stdout for --json and dry-run plans, the log otherwise); its tally key."""
    if isinstance(outcome, Exception):
        logger.error("{}: could not {} it: {}", src, "copy" if args.copy else "move", outcome)
        if args.json:
            print(json_text(_left_json(src, "failed", str(outcome))), flush=True)
        return "failed"
    if outcome.kind == "wait":
        why = (
            f"{outcome.why}, and changed within watch.unreadable_settle_s: it may still be being written "
            f"(sort again in {outcome.wait_s:.0f} s, or name it to sort it now: {advised('sort', 'FILE')})"
        )
        outcome = Outcome(src, "skipped", why=why)
    if outcome.kind in ("skipped", "gone", "kept"):
        logger.warning("{}: skipped, {}", src, outcome.why)
        if args.json:
            print(json_text(_left_json(src, "skipped", outcome.why)), flush=True)
        return "skipped"
    decision, dest = outcome.decision, outcome.destination or src
    assert decision is not None, "every outcome but skipped/gone/kept carries its decision"
    if outcome.kind == "placed" and outcome.why:  # but the journal could not record the move
        logger.error(
            "{} -> {}, but the journal could not record the move ({}): free some space in the state "
            "folder, or make it writable; the next `{}` or start of `{}` records it",
            src,
            dest,
            outcome.why,
            advised("sort"),
            advised("run"),
        )
    # Told by the outcome, not by comparing names: a file named relative to the working folder is
    # placed by its full name, which never equals the one typed ("would go to" itself).
    stays = outcome.kind == "stays"
    if args.json:
        print(json_text(_decision_json(src, dest, decision)), flush=True)
    elif args.dry_run:  # the plan is what a dry run is for: stdout, where it can be piped
        plan = "stays" if stays else f"would go to {one_line(dest)}"
        print(f"{one_line(src)} {plan}  [{decision.describe()}]")
    elif stays:
        logger.info("{} stays where it is  [{}, {:.0f} ms]", src, decision.describe(), outcome.ms)
    else:
        logger.info("{} -> {}  [{}, {:.0f} ms]", src, dest, decision.describe(), outcome.ms)
    return _tally_key(decision)


def _tally_key(decision: Decision) -> str:
    return f"sorted:{decision.emotion}" if decision.action == "sorted" else f"quarantined:{decision.reason}"


def summary(tally: Counter[str]) -> str:
    """``sorted 3 (happy 2, sad 1); quarantined 1 (no-face 1)``: the one-line end-of-run report."""
    parts = []
    for action in ("sorted", "quarantined"):
        items = sorted((k.split(":", 1)[1], v) for k, v in tally.items() if k.startswith(action + ":"))
        total = sum(v for _, v in items)
        detail = ", ".join(f"{name} {v}" for name, v in items)
        parts.append(f"{action} {total}" + (f" ({detail})" if detail else ""))
    parts.extend(f"{key} {tally[key]}" for key in ("skipped", "failed") if tally[key])
    return "; ".join(parts)


def _left_json(src: Path, action: str, why: str) -> dict[str, object]:
    """A file `sort` left where it was, in the shape of a decision: ``--json`` is one object per file
    given, so that a script can pair them (these printed nothing, and were not known to have stayed)."""
    return {
        "path": str(src),
        "action": action,
        "emotion": None,
        "reason": None,
        "confidence": None,
        "destination": str(src),
        "detail": why,
        "faces": [],
    }


def _decision_json(src: Path, dest: Path, d: Decision) -> dict[str, object]:
    return {
        "path": str(src),
        "action": d.action,
        "emotion": d.emotion,
        "reason": d.reason,
        "confidence": None if d.confidence is None else round(d.confidence, 4),
        "destination": str(dest),
        "detail": d.detail or None,
        "faces": [f.to_json() for f in d.faces],
    }


def cmd_detect(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    paths = _expand_inputs(args.images, settings.watch)  # a typo is refused before any work
    pipeline = _pipeline(settings, _model(settings))
    if args.draw:
        args.draw.mkdir(parents=True, exist_ok=True)
    status = 0
    for path in paths:
        try:
            image = read_image(path, settings.images)
        except UnreadableImage as exc:
            status = 1
            if args.json:
                print(json_text({"path": str(path), "error": str(exc), "faces": []}), flush=True)
            else:
                print(f"{one_line(path)}: unreadable: {exc}")
            continue
        faces, found = pipeline.analyse(image)
        drawn = _draw(image, faces, args.draw / (path.stem + ".png")) if args.draw else None
        facts, why = ({}, "") if faces else _why_no_face(pipeline.detector, found)
        if args.json:
            found = {"path": str(path), "faces": [f.to_json() for f in faces]}
            found |= {"candidates": facts} if facts else {}
            print(json_text(found | ({"drawn": str(drawn)} if drawn else {})), flush=True)
        else:
            print(f"{one_line(path)}: {len(faces)} face(s){why}")
            for f in faces:
                emo = f"  {f.emotion} {f.confidence:.2f}" if f.emotion else ""
                print(f"  box x={f.box[0]} y={f.box[1]} w={f.box[2]} h={f.box[3]}  score {f.score:.2f}{emo}")
            if drawn:
                print(f"  drawn: {one_line(drawn)}")
    return status


def _why_no_face(detector: FaceDetector, found: Candidates) -> tuple[dict[str, object], str]:
    """What the cascade proposed (``found``) where no face was kept, as facts for ``--json`` and a
    clause for the terminal. "0 face(s)" alone left a person with an obvious face on screen
    guessing: a face the cascade never proposed and one the verifier turned down call for
    different settings."""
    scores = [f.score for f in found.full + found.close]
    best = max(scores, default=None)
    facts = {"proposed": len(scores), "best_score": None if best is None else round(best, 3)}
    if best is None:
        return facts, ": the cascade proposed no candidate"
    judge = "the verifier rejected them" if detector.verifier_path else "all scored too low"
    floor = detector.settings.min_score
    return facts, (
        f": the cascade proposed {len(scores)} candidate(s), {judge} "
        f"(best score {best:.2f}, detection.min_score {floor:.2f})"
    )


def _draw(image: np.ndarray, faces: list[FaceResult], out: Path) -> Path:
    """The image with its boxes, as a new file: OUT_DIR may be the screenshots' own folder (or
    hold a.jpg's drawing beside a.png's), and a drawing must never replace a person's file."""
    draw_faces(image, faces)
    return write_new(out, lambda fh: fh.write(cv2.imencode(".png", image)[1].tobytes()))


def _parse_since(text: str) -> float:
    """``2h``, ``30m``, ``1d`` ago (with or without the word, as the help writes it), or an ISO
    date/time (``2026-11-24 10:00``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    span = text.removesuffix("ago").strip()
    if span[:-1].isdigit() and span[-1:] in units:
        return time.time() - int(span[:-1]) * units[span[-1]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise UsageError(f"--since takes e.g. 2h, 30m, 1d or 2026-11-24T10:00, got {text!r}") from None


CONFIRM_UNDO_OVER = 20
"""Undoing more files than this from a terminal asks first (after showing the plan)."""


def cmd_undo(args: argparse.Namespace) -> int:
    from facesortd.journal import Journal
    from facesortd.undo import select, undo

    settings = settings_for(args, library=args.library)
    count = int(args.targets[0]) if len(args.targets) == 1 and args.targets[0].isdigit() else None
    if count == 0:
        raise UsageError("undo N takes how many of the last moves to undo: 1 or more")
    files = [] if count is not None else [Path(t) for t in args.targets]
    since = _parse_since(args.since) if args.since else None
    if since is not None and since > time.time():  # "nothing to undo", exit 0, read as nothing sorted
        raise UsageError(
            f"--since {args.since} is in the future: give a time in the past, such as 2h or "
            f"{datetime.now().date().isoformat()}T10:00"
        )
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        moves = select(journal, count, since, files, settings.library, settings.inbox)
        if not moves:
            print("nothing to undo")
        if args.dry_run or (len(moves) > CONFIRM_UNDO_OVER and sys.stdin.isatty() and not args.yes):
            for plan in undo(journal, moves, settings.library, settings.inbox, dry_run=True):
                here = one_line(plan.moved_from)
                print(
                    f"{here} would go back to {one_line(plan.back_to)}"
                    if plan.back_to
                    else f"{here}: {one_line(plan.why_not)}"
                )
            if args.dry_run or not _confirm(f"undo these {len(moves)} moves?"):
                print("nothing undone" + (" (dry run)" if args.dry_run else ""))
                return 0
        failed = 0
        for done in undo(journal, moves, settings.library, settings.inbox):
            here = one_line(done.moved_from)
            print(
                f"{here} -> {one_line(done.back_to)}" if done.back_to else f"{here}: {one_line(done.why_not)}"
            )
            failed += done.retry
    except LookupError as exc:
        raise UsageError(str(exc)) from exc
    finally:
        journal.close()
    return 1 if failed else 0  # as `sort`: a move that failed is worth a script's attention


def _confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def add_sort(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sort",
        help="sort image files once and exit",
        description="Sort image files once and exit, as the daemon would: each file is moved into "
        "<library>/<emotion>/ or <library>/_quarantine/<reason>/, never over another file (a name "
        "taken there becomes 'name (1).png'), and journaled, so `facesortd undo` puts it back. "
        "Without paths it sorts the inbox and, like the daemon, leaves a file whose sort you undid "
        "or that you put in quarantine yourself; a file or folder you name is sorted anyway. A line "
        "per file and a summary go to stderr; the exit status is 1 if a file could not be moved.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="image files, or folders (the images directly inside, not their subfolders; default: the "
        "config's inbox, with its subfolders if watch.recursive, as the daemon)",
    )
    p.add_argument(
        "--library", type=Path, metavar="FOLDER", help="library folder (default: the config's library)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print where each file would go, on stdout; move nothing and create no folder",
    )
    p.add_argument(
        "--copy",
        action="store_true",
        help="copy files into the library instead of moving them; the originals stay where they are, and "
        "a file whose copy is still in that library is not copied (or moved) into it again. Refused for "
        "files in the inbox, which the daemon would sort a second time, and for files already in the library",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per file with its decision and destination on stdout, one per line, "
        'in input order ("action": "skipped" or "failed" for a file left where it was, why in "detail")',
    )
    p.add_argument(
        "--workers",
        type=int_at_least(1),
        metavar="N",
        help="files classified in parallel (default: the config's watch.workers, as the daemon: "
        f"{WatchSettings.model_fields['workers'].default} unless set)",
    )
    p.set_defaults(func=cmd_sort)


def add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="print the faces found in images",
        description="Print face boxes (x, y, width, height in image pixels), scores and emotions on "
        "stdout, or why no face was kept; the tool for a file that landed in no-face. Moves nothing; "
        "the exit status is 1 if an image could not be read.",
    )
    p.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="image files, or folders (the images directly inside, as sort takes them)",
    )
    p.add_argument(
        "--draw",
        type=folder_to_write,
        metavar="OUT_DIR",
        help="also write each image with its boxes drawn into OUT_DIR as <name>.png (a new file: a "
        "name taken there becomes 'name (1).png', none is ever replaced)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per image, one per line")
    p.set_defaults(func=cmd_detect)


def add_undo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "undo",
        help="move sorted files back to where they came from",
        description="Move files back to the folder they came from, using the journal: the last file "
        "moved (default), the last N that can be undone (naming the newer ones skipped, and why), "
        "those moved --since a time, or the FILEs named (where they are now); the moves of the "
        "daemon, `sort` and the review page alike. A file goes back beside "
        "what is there (a name taken becomes 'name (1).png'); undoing a `sort --copy` deletes the "
        "copy if the original is still there, unchanged. A file changed since is left alone. The "
        "daemon leaves an undone file alone; sort it by hand with `facesortd sort FILE`. Prints a line "
        "per file on stdout; a file whose folder refuses it stays where it is, with the reason, and "
        "the exit status is then 1.",
    )
    # One selector at a time: given both, one was silently ignored (N under --since, --since under FILEs).
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "targets",
        nargs="*",
        default=[],
        metavar="N|FILE",
        help="how many of the last moves to undo (those it can), or the files to put back (where they "
        "are now); "
        "not with --since",
    )
    which.add_argument(
        "--since",
        metavar="TIME",
        help="undo every move since TIME (2h, 30m, 1d ago, or a local time such as 2026-11-24T10:00)",
    )
    p.add_argument(
        "--library",
        type=Path,
        metavar="FOLDER",
        help="the library the files were sorted into (default: the config's library; for a `sort "
        "--library FOLDER`, that FOLDER): files elsewhere are left alone",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be moved back; touch nothing")
    p.add_argument(
        "--yes",
        action="store_true",
        help=f"do not ask before undoing more than {CONFIRM_UNDO_OVER} files (asked only on a terminal)",
    )
    p.set_defaults(func=cmd_undo)
