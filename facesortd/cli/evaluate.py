"""`eval`: a model (the one in force, or a file) measured on labelled datasets; moves nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

from loguru import logger

from facesortd.advice import advised
from facesortd.cli.common import settings_for
from facesortd.cli.dataset_args import add_dataset_options, collect
from facesortd.cli.model_figures import add_plots_option, print_counts, print_figures, write_plots_into
from facesortd.emotion import ModelError
from facesortd.ensemble import Model, load_model
from facesortd.learn.training import predict_set
from facesortd.model_store import load_model_in_force
from facesortd.mounts import refuse_unmounted


def cmd_eval(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    # The model in force is the state folder's (its pointer): with its drive away, the shipped model
    # (or a stand-in's below the mount point) was measured as if it were. One the config pins comes
    # from its own folder, which is asked instead: refused for the state folder's drive, it was not
    # measured though that folder played no part.
    if not args.model:
        pinned = settings.recognition.model
        refuse_unmounted(settings.state_dir if pinned is None else pinned.expanduser().parent)
    model = load_model(args.model) if args.model else load_model_in_force(settings)
    if model is None:
        raise ModelError(f"no model to evaluate: pass --model FILE or train one with `{advised('train')}`")
    for dataset in learnt_from(model, args.datasets):
        logger.warning(
            "the model was trained from {} (its `train` recorded it): these figures are of faces it "
            "learnt, bar those `train` held out, and flatter it; its held-out figures are the ones "
            "`train` printed (`{}` lists them)",
            dataset,
            advised("model"),
        )
    data = collect(args, settings, model.spec)
    if unknown := sorted(set(data.labels) - set(model.labels)):
        # counted wrong in the figures without a word: an emotion named otherwise (joyful, happy)
        logger.warning(
            "the model knows no emotion {}: each such face counts as wrong (rename with --map OLD=NEW; "
            "it knows {})",
            ", ".join(unknown),
            ", ".join(model.labels),
        )
    if not args.json:  # --json prints one JSON document and nothing else
        print_counts(data)
    predictions = predict_set(model, data)
    # "faces", not "held-out faces": nothing says the model never saw them
    print_figures(predictions, data, settings.recognition.threshold, args.json, faces="faces")
    write_plots_into(args.plots, predictions.evaluation(settings.recognition.threshold).summary())
    return 0


def learnt_from(model: Model, datasets: list[Path]) -> list[Path]:
    """The DATASETs given that ``model``'s `train` recorded it learnt from (``trained_from``): in full
    since 2026-12-03; before, as typed, relative to a folder not recorded (the shipped model's
    ``../shared/data/...``), matched by its named end."""
    recorded = [Path(p) for p in model.info.get("trained_from", []) if isinstance(p, str)]
    found = []
    for dataset in datasets:
        here = dataset.resolve()
        for source in recorded:
            named = [part for part in source.parts if part not in ("..", ".")]
            if (
                source.resolve() == here
                if source.is_absolute()
                else bool(named) and list(here.parts[-len(named) :]) == named
            ):
                found.append(dataset)
                break
    return found


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a model on a labelled folder",
        description="Measure a model on labelled faces (DATASET/<emotion>/*, faces.json box files or "
        "vn_faces folders): per-emotion counts and figures on stdout; moves nothing. They say how it "
        "does on faces it never learnt only if it never learnt them: of a DATASET the model's `train` "
        "recorded it learnt from, a warning on stderr says so.",
    )
    add_dataset_options(p)
    p.add_argument("--model", type=Path, metavar="FILE", help="model file (default: the model in force)")
    p.add_argument(
        "--json", action="store_true", help="print the figures as one JSON object, and nothing else"
    )
    add_plots_option(p)
    p.set_defaults(func=cmd_eval)
