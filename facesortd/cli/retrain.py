"""`retrain`: the labels a person gave by moving files recorded, and a retrain run now, not when due."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from facesortd.cli.common import say_waiting, settings_for
from facesortd.cli.stopping import InterruptedAfter, finishing, say
from facesortd.config import Settings
from facesortd.interrupts import like_ctrl_c, stopped_by
from facesortd.journal import Journal
from facesortd.model_store import model_in_force
from facesortd.mounts import refuse_unmounted
from facesortd.shown_names import one_line
from facesortd.state import retrain_lock

if TYPE_CHECKING:
    from facesortd.learn.retrain import RetrainResult


def cmd_retrain(args: argparse.Namespace) -> int:
    """Record the labels you gave by moving files, then retrain now rather than when due: the new
    model is put in force only if it is not worse, by the daemon's rule (README, "Reviewing"); it is
    kept in the models folder of the state folder either way (models/rejected/ if not put in force).
    Waits for a retrain the daemon is running. Refused (exit 1) while the library's drive is away.
    Prints the outcome on stdout; the exit status is 1 if no model was made (too few labels, say)."""
    settings = settings_for(args)
    refuse_unmounted(settings.library)  # as retrain_if_due does, before the counts are printed
    before = model_in_force(settings)
    # SIGTERM and SIGHUP (the terminal closed) ended it without a word, perhaps with a new model
    # written and not yet in force (``interrupts.whole`` now keeps those two together)
    with like_ctrl_c():
        try:
            return _retrain(settings)
        except KeyboardInterrupt as exc:
            now = model_in_force(settings)
            standing = "unchanged" if now == before else f"now {one_line(now)}"
            raise InterruptedAfter(f"the model in force is {standing}", stopped_by(exc)) from exc


def _retrain(settings: Settings) -> int:
    """The labels recorded, then the retrain; returns the exit status."""
    from facesortd.learn.retrain import retrain_if_due, retrained_before, schedule
    from facesortd.learn.review import Reviewer, user_labels

    journal = Journal.for_state_dir(settings.state_dir)
    try:
        recorded = Reviewer(settings, journal, label_log_level="DEBUG").scan()  # counted below
        labels = user_labels(journal)
        # Counted as `status` counts them ("next retrain: N new label(s)"): the files just found
        # moved are only some of them, and printed alone they read as the whole.
        fresh = max(0, schedule(journal, labels).fresh)
        # "since the last retrain" was said before any retrain
        since = " since the last retrain" if retrained_before(journal) else ", no retrain yet"
        say(
            f"{fresh} new label(s){since} ({recorded} of them just recorded from files "
            f"you moved); {len(labels)} usable label(s) in all"
        )
        with finishing() as done:  # the retrain asked for made, whatever stdout does meanwhile
            with retrain_lock(settings.state_dir, say_waiting):
                # Printed below for scripts; logged too, it would show twice on a terminal.
                result = retrain_if_due(settings, journal, labels, force=True, log_level="DEBUG")
            assert result is not None
            done.outcome = _said(result)
    finally:
        journal.close()
    return 1 if result.path is None else 0


def _said(result: RetrainResult) -> str:
    """The retrain's outcome said; returns it in a few words, for an error line."""
    for label, missing in result.waiting.items():
        say(f"{label}: waiting for {missing} more example(s) before it becomes an emotion")
    if result.path is None:
        say(f"no retrain: {result.reason}")
        return f"no retrain: {result.reason}"
    say(f"{result.describe()}\nnew model: {one_line(result.path)}")
    verdict = "put in force" if result.adopted else "not put in force"
    return f"new model {one_line(result.path)}, {verdict}"


def add_retrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="learn from the files you moved, now", description=cmd_retrain.__doc__)
    p.set_defaults(func=cmd_retrain)
