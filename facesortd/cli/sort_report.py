"""What `sort` says: a line per file (or a dry run's plan, or a ``--json`` record, on stdout), each
file's tally key, and the summary it ends with."""

from __future__ import annotations

import argparse
import signal
from collections import Counter
from pathlib import Path

from loguru import logger

from facesortd.advice import advised
from facesortd.cli.stopping import StopRequest
from facesortd.decide import Decision
from facesortd.progress import print_line
from facesortd.shown_names import json_text, one_line
from facesortd.sort_batch import SortBatch
from facesortd.sorter import Outcome

COPIED_BEFORE = "copied-before"
"""The tally key of a file an earlier `sort --copy` put into the library: skipped, said in one line at
the end (resuming a big copy said a warning per file already copied), each at debug level."""


def say_end(batch: SortBatch, stop: StopRequest, tally: Counter[str], dry_run: bool) -> int:
    """The summary line, with why the run stopped before the end if it did; the exit status: 1 if a
    disk was full (or the library's drive gone), stdout's file could not take a line, or a file
    failed, 128 + the signal if stopped by one, 141 if stdout's reader left."""
    if copied := tally[COPIED_BEFORE]:
        logger.warning("{} file(s) already copied into the library before: skipped", copied)
    if batch.read_only_source and not batch.options.copy:  # a line each said only "must be able to write"
        logger.warning(
            "a file on a read-only filesystem cannot be moved out of its folder: `{}` copies such files "
            "into the library and leaves them where they are",
            advised("sort", "--copy", "PATH"),
        )
    done = ("dry run, nothing moved: " if dry_run else "") + summary(tally)
    left = len(batch.files) - tally.total()
    if batch.blocked:  # said even with none left: the files under way said "for the reason said below"
        rest = (
            f"; {left} file(s) left where they were (the same command sorts them once {batch.blocked_until})"
        )
        logger.error("stopped: {}; {}{}", batch.blocked, done, rest if left else "")
        return 1
    if stop.output_lost:  # said even with none left: the last file's record was lost
        rest = f"; {left} file(s) left where they were (the same command sorts them)"
        logger.error("stopped: {}; {}{}", stop.output_lost, done, rest if left else "")
        return 1
    if left:  # stopped: by a signal, or Ctrl-C in a worker's tool, or stdout's reader gone
        how = "stopped, stdout's reader gone" if stop.signum == signal.SIGPIPE else "interrupted"
        logger.warning(
            "{}: {}; {} file(s) left where they were (the same command sorts them)", how, done, left
        )
        return stop.exit_status()
    logger.info("{}", done)
    return 1 if tally["failed"] else 0


def tally_key(outcome: Outcome | Exception) -> str:
    """Under which key of the summary one file's outcome counts."""
    if isinstance(outcome, Exception):
        return "failed"
    if outcome.decision is None or outcome.kind in ("wait", "skipped", "gone", "kept"):
        return COPIED_BEFORE if outcome.copied_before else "skipped"
    return _tally_key(outcome.decision)


def report_outcome(
    args: argparse.Namespace, src: Path, outcome: Outcome | Exception, stopped_by: str = ""
) -> None:
    """Show one file's outcome (stdout for --json and dry-run plans, the log otherwise).
    ``stopped_by``: why the run stops (``SortBatch.blocked``), said once at its end, not again for
    each file under way that failed for it (a journal locked: the files after it were not tried)."""
    if isinstance(outcome, Exception):
        verb = "copy" if args.copy else "move"
        if stopped_by and str(outcome) == stopped_by:
            logger.error("{}: could not {} it, for the reason said below", src, verb)
        else:
            logger.error("{}: could not {} it: {}", src, verb, outcome)
        if args.json:
            print(json_text(_left_json(src, "failed", str(outcome))), flush=True)
        return
    if outcome.kind == "wait":
        why = (
            f"{outcome.why}, and changed within watch.unreadable_settle_s: it may still be being written "
            f"(sort again in {outcome.wait_s:.0f} s, or name it to sort it now: {advised('sort', 'FILE')})"
        )
        outcome = Outcome(src, "skipped", why=why)
    if outcome.kind in ("skipped", "gone", "kept"):
        _report_left(args, src, outcome)
    else:
        _report_decided(args, src, outcome)


def _report_left(args: argparse.Namespace, src: Path, outcome: Outcome) -> None:
    """A file left where it was: a line each, but those copied before only at debug level (counted)."""
    logger.log("DEBUG" if outcome.copied_before else "WARNING", "{}: skipped, {}", src, outcome.why)
    if args.json:
        print(json_text(_left_json(src, "skipped", outcome.why)), flush=True)


def _report_decided(args: argparse.Namespace, src: Path, outcome: Outcome) -> None:
    """A file placed, planned (dry run) or found where it belongs, with its decision."""
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
        print_line(f"{one_line(src)} {plan}  [{decision.describe()}]")
    elif stays:
        logger.info("{} stays where it is  [{}, {:.0f} ms]", src, decision.describe(), outcome.ms)
    else:
        logger.info("{} -> {}  [{}, {:.0f} ms]", src, dest, decision.describe(), outcome.ms)


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
    left = {"skipped": tally["skipped"] + tally[COPIED_BEFORE], "failed": tally["failed"]}
    parts.extend(f"{key} {n}" for key, n in left.items() if n)
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
