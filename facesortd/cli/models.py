"""`model`: the emotion models made so far listed (history), a rollback, or a model put in force."""

from __future__ import annotations

import argparse
from pathlib import Path

from facesortd.advice import advised
from facesortd.cli.common import UsageError, model_changed, say_waiting, settings_for
from facesortd.cli.stopping import finishing, say
from facesortd.cli.undo import left_by
from facesortd.config import Settings
from facesortd.learn.metrics import headline
from facesortd.model_change import put_in_force, roll_back
from facesortd.model_store import DEFAULT, InForceAlready, history, shipped_model
from facesortd.mounts import refuse_unmounted
from facesortd.shown_names import one_line
from facesortd.spelling import nearest


def cmd_model(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    # A state folder whose drive is away: `use` and `rollback` made it anew on the disk below (its
    # models folder, its locks), and the list was that of a stand-in, "no models yet".
    refuse_unmounted(settings.state_dir)
    if args.action == "use" and not (args.target or "").strip():  # "" was the folder ".", "is a folder"
        raise UsageError("`model use` takes `default` or a model FILE")
    if args.action != "use" and args.target is not None:  # said of the command given, not of `use`
        put = advised("model", "use", args.target)
        raise UsageError(
            f"`model {args.action}` takes nothing after it, got {args.target!r} (to put a model file in "
            f"force: `{put}`)"
        )
    if args.action in ("rollback", "use"):
        with finishing() as done:  # the change asked for made whole, whatever stdout does meanwhile
            done.outcome = _changed(settings, args)
        return 0
    entries = history(settings)
    if not entries:
        say(f"no models yet: train one with `{advised('train', 'DATASET')}`")
    for entry in entries:
        figures = headline(entry.info.get("held_out")) or str(entry.info.get("error", "no held-out figures"))
        counts = entry.info.get("counts", {})
        mark = "*" if entry.in_force else " "
        say(f"{mark} {one_line(entry.path.name)}  {entry.info.get('created', '?')}  {figures}")
        if isinstance(counts, dict) and counts:
            say("    trained on: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if descriptors := entry.info.get("descriptors"):
            say("    an ensemble of: " + ", ".join(map(str, descriptors)))
        if validation := headline(entry.info.get("bootstrap_validation")):
            say(f"    on the bootstrap validation set: {validation}")
        if entry.info.get("decision"):
            say(f"    {entry.info['decision']}")
    return 0


def _changed(settings: Settings, args: argparse.Namespace) -> str:
    """`model use` or `model rollback` made, and said; returns the model in force in a few words."""
    if args.action == "use":
        chosen = _chosen(settings, args.target)
        try:
            change = model_changed(settings, lambda: put_in_force(settings, chosen, say_waiting))
        except InForceAlready as exc:
            named = shipped_model() if chosen == DEFAULT else Path(chosen).expanduser()
            same = ""
            if named is not None and named.resolve() != exc.path.resolve():  # judged by content
                same = f" ({one_line(named)} holds the same bytes)"
            say(f"model in force already: {one_line(exc.path)}{same} (nothing changed)")
            return f"model in force already: {one_line(exc.path)} (nothing changed)"
    else:
        change = model_changed(settings, lambda: roll_back(settings, say_waiting))
    say(f"model in force is now {one_line(change.now)}")
    if left := left_by(settings, change.before):
        say(one_line(left))
    return f"model in force is now {one_line(change.now)}"


def _chosen(settings: Settings, target: str) -> str:
    """`model use TARGET`: ``default``, a model file, or a model by the name `facesortd model` lists
    it (its file in the models folder, or the shipped model's), which was "model file ... does not
    exist" from any other folder. A name that is none of these is refused with the nearest one
    (`model use defualt`)."""
    if target == DEFAULT or Path(target).expanduser().exists():
        return target
    listed = {entry.path.name: entry.path for entry in history(settings)}
    if (path := listed.get(target)) is not None:
        return DEFAULT if path == shipped_model() else str(path)
    meant = nearest(target, [DEFAULT, *listed])
    guess = f"did you mean `{advised('model', 'use', meant)}`? " if meant else ""
    raise UsageError(
        f"model file {target} does not exist ({guess}`model use` takes `default`, a model FILE or a "
        f"name `{advised('model')}` lists)"
    )


def add_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "model",
        help="list the emotion models (history), roll back, or put one in force",
        description="List your emotion models (in the models folder of the state folder), oldest first, "
        "with their training counts and held-out figures; * marks the one in force. `model rollback` "
        "puts back the model in force before this one (step by step down to the shipped model); `model "
        "use default|FILE` puts the shipped model or a model file in force (one holding the same bytes "
        "as the model in force changes nothing). A change waits for a retrain running meanwhile to "
        "end; the daemon takes up the new model at its next file. The files the model taken out of "
        "force sorted stay in the emotion folders it chose: how many is said, and `facesortd undo "
        "--model NAME` puts them back.",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=["list", "rollback", "use"],
        default="list",
        help="list the models (the default), roll back one, or use the model named next",
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="default|FILE",
        help="for `use`: the shipped model, or a model file (copied into the models folder first), or "
        "a model by the name `model` lists it",
    )
    p.set_defaults(func=cmd_model)
