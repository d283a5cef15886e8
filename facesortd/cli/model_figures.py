"""A model's figures as `train` and `eval` show them: faces per emotion, the figures over all, per
data source and per ensemble member (or as JSON), and the --plots option that draws them."""

from __future__ import annotations

import argparse
from pathlib import Path

from loguru import logger

from facesortd.cli.arg_types import folder_to_write
from facesortd.cli.stopping import say
from facesortd.learn.metrics import headline
from facesortd.learn.training import FaceSet, Predictions, source_masks
from facesortd.plots import CONFUSION_PNG, RELIABILITY_PNG
from facesortd.shown_names import json_text


def add_plots_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plots",
        type=folder_to_write,
        metavar="DIR",
        help="also write the confusion matrix and reliability curve of the figures into DIR as "
        f"{CONFUSION_PNG} and {RELIABILITY_PNG} (made if missing; files of those names are replaced)",
    )


def print_counts(data: FaceSet) -> None:
    say("faces per emotion:")
    for label, n in data.counts().items():
        say(f"  {label:<12} {n}")


def print_figures(
    predictions: Predictions, data: FaceSet, threshold: float, as_json: bool, faces: str
) -> None:
    """Overall figures, then per data source when there are several; ``faces``: what the predictions
    were of (``Evaluation.report``)."""
    evaluation = predictions.evaluation(threshold)
    masks = source_masks(data.sources) if len(set(data.sources)) > 1 else {}
    per_source = {s: predictions.evaluation(threshold, mask) for s, mask in masks.items()}
    if as_json:
        say(
            json_text({**evaluation.summary(), "per_source": {k: v.summary() for k, v in per_source.items()}})
        )
        return
    say(evaluation.report(faces))
    for name, ev in per_source.items():
        say(f"\n--- faces from {name} ---")
        say(ev.report(faces))
    if predictions.members:
        say("\n--- each member of the ensemble alone ---")
        for descriptor, alone in predictions.members.items():
            say(f"{descriptor}: {headline(alone.evaluation(threshold).summary())}")
            for source, mask in masks.items():
                say(f"    faces from {source}: {headline(alone.evaluation(threshold, mask).summary())}")


def write_plots_into(folder: Path | None, summary: dict[str, object]) -> None:
    """--plots DIR: the confusion matrix and reliability curve of these figures as PNG files."""
    if folder is not None:
        from facesortd.plots import write_plots

        logger.info("plots written: {}", ", ".join(map(str, write_plots(summary, folder))))
