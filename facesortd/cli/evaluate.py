"""`eval`: a model (the one in force, or a file) measured on labelled datasets; moves nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

from facesortd.advice import advised
from facesortd.cli.common import settings_for
from facesortd.cli.dataset_args import add_dataset_options, collect
from facesortd.cli.model_figures import add_plots_option, print_counts, print_figures, write_plots_into
from facesortd.emotion import ModelError
from facesortd.ensemble import load_model
from facesortd.learn.training import predict_set
from facesortd.model_store import load_model_in_force
from facesortd.mounts import refuse_unmounted


def cmd_eval(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    # The model in force is the state folder's: with its drive away, the shipped model (or a stand-in's
    # below the mount point) was measured as if it were.
    if not args.model:
        refuse_unmounted(settings.state_dir)
    model = load_model(args.model) if args.model else load_model_in_force(settings)
    if model is None:
        raise ModelError(f"no model to evaluate: pass --model FILE or train one with `{advised('train')}`")
    data = collect(args, settings, model.spec)
    if not args.json:  # --json prints one JSON document and nothing else
        print_counts(data)
    predictions = predict_set(model, data)
    print_figures(predictions, data, settings.recognition.threshold, args.json)
    write_plots_into(args.plots, predictions.evaluation(settings.recognition.threshold).summary())
    return 0


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="measure a model on a labelled folder",
        description="Measure a model on labelled faces (DATASET/<emotion>/*, faces.json box files or "
        "vn_faces folders): per-emotion counts and figures on stdout; moves nothing.",
    )
    add_dataset_options(p)
    p.add_argument("--model", type=Path, metavar="FILE", help="model file (default: the model in force)")
    p.add_argument(
        "--json", action="store_true", help="print the figures as one JSON object, and nothing else"
    )
    add_plots_option(p)
    p.set_defaults(func=cmd_eval)
