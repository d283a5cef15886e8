"""`sort`: which files (refused before anything moves if they cannot be sorted as asked), sorted by
`sort_batch.SortBatch` with a progress bar, each outcome and the end said by `sort_report`."""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

from loguru import logger

from facesortd.advice import advised
from facesortd.cli.arg_types import int_between, named_folder, named_path
from facesortd.cli.common import (
    UsageError,
    emotion_model,
    make_folder,
    pipeline_for,
    refuse_overlap,
    settings_for,
)
from facesortd.cli.inputs import expand_inputs
from facesortd.cli.sort_report import report_outcome, say_end, tally_key
from facesortd.cli.stopping import StdoutFailed, stop_requests, writing_stdout
from facesortd.config import MAX_WORKERS, Settings, WatchSettings, load_settings
from facesortd.mounts import refuse_unmounted
from facesortd.progress import Progress
from facesortd.sort_batch import SortBatch, SortOptions, recover_only, sorted_out_of


def cmd_sort(args: argparse.Namespace) -> int:
    settings = settings_for(args, library=args.library)
    files = _files_to_sort(args, settings)
    if not files:
        if not args.dry_run:
            recover_only(settings)
        return 0
    _refuse_copy_within(args, settings, files)
    options = SortOptions(
        dry_run=args.dry_run,
        copy=args.copy,
        named=bool(args.paths),
        workers=args.workers or settings.watch.workers,
    )
    tally: Counter[str] = Counter()
    model, judge = emotion_model(settings)  # loaded once, shared by every worker's pipeline
    # Ctrl-C noted only once the batch is set up: while the model and detectors load it ends at once.
    with (
        SortBatch(settings, files, options, lambda: pipeline_for(settings, model), judge) as batch,
        stop_requests() as stop,
    ):
        progress = Progress(len(files), "sorting") if len(files) > 1 and not args.json else None
        try:
            for src, outcome in batch.outcomes(stop):
                tally[tally_key(outcome)] += 1
                try:
                    with writing_stdout():
                        report_outcome(args, src, outcome, batch.blocked)
                except StdoutFailed as failed:  # `sort --json | head -1`: those under way finish, counted
                    stop.output_failed(failed)
                if progress:
                    progress.step()
        finally:
            if progress:
                progress.close()
    return say_end(batch, stop, tally, args.dry_run)


def _files_to_sort(args: argparse.Namespace, settings: Settings) -> list[Path]:
    """The files named, or the inbox's (made if missing, as the daemon would); none said as nothing to
    sort where that is news (a folder named of no image was said, or refused, by ``expand_inputs``)."""
    # before the inbox is made: nothing is touched; a --library against the config's own
    refuse_overlap(settings, args.paths, load_settings(args.config).library if args.library else None)
    if kept := next((p for p in args.paths if _under(p, settings.state_dir)), None):
        # `sort <state>/faces` moved the face crops retraining reads into the library
        raise UsageError(
            f"{kept} is in facesortd's state folder {settings.state_dir}, whose face crops are the faces "
            "of your labels, kept for retraining: nothing there is to be sorted"
        )
    if not args.dry_run:  # nor made below a mount point whose drive is away (the state folder: Journal)
        refuse_unmounted(*([] if args.paths else [settings.inbox]), settings.library)
    if args.copy and not args.paths:
        raise UsageError(_COPY_FROM_INBOX.format(inbox=settings.inbox))
    if not args.paths and not args.dry_run:  # a dry run touches nothing: no inbox is nothing to sort
        make_folder("inbox", settings.inbox)
    if args.paths or settings.inbox.exists():
        files = expand_inputs(
            args.paths or [settings.inbox],
            settings.watch,
            inbox=settings.inbox,
            sorted_from=sorted_out_of(settings),
        )
    else:
        files = []
    if not files and (not args.paths or any(_under(p, settings.inbox) for p in args.paths)):
        logger.info("nothing to sort: drop screenshots into {}", settings.inbox)
    return files


_COPY_FROM_INBOX = (
    "--copy leaves the originals where they are, and files left in the inbox ({inbox}) would be sorted "
    "again by the daemon or the next `sort`, a second time into the library: copy from a folder outside "
    "the inbox, or sort the inbox without --copy"
)
_COPY_FROM_LIBRARY = (
    "already in the library ({library}), where --copy would leave it and put a second copy of it "
    "beside: sort it without --copy to move it ({sort_file})"
)


def _refuse_copy_within(args: argparse.Namespace, settings: Settings, files: list[Path]) -> None:
    """--copy of a file in the inbox or the library is refused before anything is copied."""
    if not args.copy:
        return
    if inside := next((f for f in files if _under(f, settings.inbox)), None):
        raise UsageError(f"{inside}: {_COPY_FROM_INBOX.format(inbox=settings.inbox)}")
    if inside := next((f for f in files if _under(f, settings.library)), None):
        why = _COPY_FROM_LIBRARY.format(library=settings.library, sort_file=advised("sort", "FILE"))
        raise UsageError(f"{inside}: {why}")


def _under(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def add_sort(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sort",
        help="sort image files once and exit",
        description="Sort image files once and exit, as the daemon would: each file is moved into "
        "<library>/<emotion>/ or <library>/_quarantine/<reason>/, never over another file (a name "
        "taken there becomes 'name (1).png'), and journaled, so `facesortd undo` puts it back. "
        "Without paths it sorts the inbox and, like the daemon, leaves a file whose sort you undid "
        "or that you put in quarantine yourself; a file or folder you name is sorted anyway. A file "
        "whose name watch.ignore leaves alone (~x.png, .x.png: an editor's lock or temp "
        "file, most likely) is skipped even when named, with a line saying so: rename it to sort it. A "
        "line per file and a summary go to stderr. Ctrl-C, SIGTERM or the terminal closed (SIGHUP) stops "
        "it between files: those in "
        "progress are finished and said, the rest left where they are. The exit status is 1 if a file "
        "could not be moved or a disk was full or read-only (the files not reached are left where they "
        "are), 130 if "
        "stopped by Ctrl-C, 143 by SIGTERM, 129 by SIGHUP, 141 when what reads its output left (`| head`).",
    )
    p.add_argument(
        "paths",
        nargs="*",
        type=named_path,
        metavar="PATH",
        help="image files, or folders (the images directly inside, not their subfolders; default: the "
        "config's inbox, with its subfolders if watch.recursive, as the daemon)",
    )
    p.add_argument(
        "--library",
        type=named_folder,
        metavar="FOLDER",
        help="library folder to sort into, made if missing (default: the config's library); `facesortd "
        "undo --library FOLDER` undoes such a sort",
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
        # `--workers 100000` on a big folder made a pipeline per file before the first was sorted:
        # gigabytes, until the kernel killed it
        type=int_between(1, MAX_WORKERS),
        metavar="N",
        help="files classified in parallel (default: the config's watch.workers, as the daemon: "
        f"{WatchSettings.model_fields['workers'].default} unless set; at most {MAX_WORKERS})",
    )
    p.set_defaults(func=cmd_sort)
