"""`train`, `eval`, `model` and `retrain`: making, measuring and choosing emotion models; their figures."""

from __future__ import annotations

import argparse
import contextlib
import shlex
from pathlib import Path

from loguru import logger

from facesortd.advice import advised
from facesortd.cli.arg_types import (
    file_to_replace,
    folder_to_write,
    int_at_least,
    number_between,
    read_by,
)
from facesortd.cli.common import UsageError, settings_for
from facesortd.cli.dataset_args import add_dataset_options, backdrops, collect, label_map
from facesortd.config import Settings
from facesortd.descriptors import DEFAULT_ENSEMBLE, DESCRIPTORS, LEARNT
from facesortd.emotion import ModelError
from facesortd.ensemble import load_model, model_info
from facesortd.faces import CROP_MARGIN, FaceSpec
from facesortd.journal import Journal
from facesortd.learn.datasets import DatasetError
from facesortd.learn.feature_net_training import NetSettings, torch_installed
from facesortd.learn.figures import write_report
from facesortd.learn.loop_settings import LoopSettings
from facesortd.learn.metrics import Evaluation, headline, near_chance
from facesortd.learn.retrain import Comparison, sorted_right_floor
from facesortd.learn.train_run import train_model
from facesortd.learn.training import (
    SOURCE_BALANCE,
    FaceSet,
    Predictions,
    predict_set,
    source_masks,
)
from facesortd.model_store import (
    VALIDATION_SUFFIX,
    history,
    load_model_in_force,
    model_in_force,
    models_dir,
    rollback,
    save_new_model,
    shipped_model,
    use,
    validation_path,
)
from facesortd.plots import CONFUSION_PNG, RELIABILITY_PNG
from facesortd.shown_names import json_text
from facesortd.state import retrain_lock


def _add_plots_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plots",
        type=folder_to_write,
        metavar="DIR",
        help="also write the confusion matrix and reliability curve of the figures into DIR as "
        f"{CONFUSION_PNG} and {RELIABILITY_PNG} (made if missing; files of those names are replaced)",
    )


def cmd_train(args: argparse.Namespace) -> int:
    descriptors = args.descriptor or list(DEFAULT_ENSEMBLE)
    if len(set(descriptors)) < len(descriptors):
        raise UsageError(f"each --descriptor may be given once, got {', '.join(descriptors)}")
    if args.train_features and LEARNT not in descriptors:
        raise UsageError(
            f"--train-features trains the net of the {LEARNT} descriptor: add --descriptor {LEARNT}"
        )
    if args.train_features and not torch_installed():
        raise UsageError("--train-features trains the net with PyTorch: pip install 'facesortd[train]'")
    settings = settings_for(args)
    if args.out is not None:
        _refuse_kept_model(settings, args.out)
    spec = FaceSpec(size=args.face_size, margin=args.margin)
    collected = collect(args, settings, spec)
    _print_counts(collected)
    if len(collected.counts()) < 2:
        raise DatasetError("training needs faces of at least 2 emotions")
    net_settings = (
        NetSettings(loop=LoopSettings(epochs=args.epochs), backdrops=backdrops(args))
        if args.train_features
        else None
    )
    threshold = settings.recognition.threshold
    run = train_model(
        collected,
        spec=spec,
        descriptors=descriptors,
        pca=args.pca,
        net_settings=net_settings,
        source_balance=args.source_balance,
        folds=args.folds,
        validation_share=args.validation_share,
        threshold=threshold,
        info={"trained_from": [str(d) for d in args.datasets], "label_map": label_map(args.map)},
        mirror=args.mirror,
    )
    if args.out:
        out = args.out
        run.save(out)
    else:
        out = save_new_model(settings, run.model.save)
        run.save_validation(out)
    _print_figures(run.predictions, run.data, threshold, as_json=False)
    if args.report:
        written = write_report(run.predictions, run.data.sources, threshold, args.report)
        print(f"figures written to {args.report}/ ({', '.join(p.name for p in written)})")
    if run.held_out is not None:
        print(f"\n--- validation set held out from training ({run.held_out.confusion.sum()} faces) ---")
        print(run.held_out.report())
    print(f"trained on {len(run.data.labels)} faces in {run.seconds:.1f} s; model written to {out}")
    _write_plots(args.plots, run.predictions.evaluation(threshold).summary())
    _compare_with_model_in_force(settings, spec, run.held_out, run.validation)
    if args.activate:
        with _no_retrain_running(settings):
            print(f"now in force: {use(settings, str(out))}")
    else:
        command = shlex.join(["facesortd", "model", "use", str(out)])  # pasted as it is into a shell
        print(f"not in force yet: `{command}` puts it in force (or train with --activate)")
    return 0


_model_file = file_to_replace("facesortd model file", read_by(model_info, ModelError))
_validation_file = file_to_replace(
    "validation set written by facesortd train", read_by(FaceSet.load, DatasetError)
)


def _model_out(text: str) -> Path:
    """--out, and beside it the validation set `train` replaces or removes (:meth:`TrainRun.save`):
    each refused before training unless it is of its own kind."""
    path = _model_file(text)
    _validation_file(str(validation_path(path)))
    return path


def _refuse_kept_model(settings: Settings, out: Path) -> None:
    """--out may not replace the model in force, the shipped one, nor a file in the models folder,
    whose models `model rollback` goes back to: refused before training, not found gone later."""
    target, in_force, shipped = out.resolve(), model_in_force(settings), shipped_model()
    if target.is_relative_to(models_dir(settings).resolve()):
        what = f"in the models folder {models_dir(settings)}, whose models `facesortd model` keeps"
    elif in_force is not None and target == in_force.resolve():
        what = "the model in force"
    elif shipped is not None and target == shipped.resolve():
        what = "the shipped model"
    else:
        return
    raise UsageError(
        f"--out {out} is {what}: name another file, or leave --out out (a new model file is made in "
        "the models folder) and add --activate to put it in force"
    )


def _print_counts(data: FaceSet) -> None:
    print("faces per emotion:")
    for label, n in data.counts().items():
        print(f"  {label:<12} {n}")


def _print_figures(predictions: Predictions, data: FaceSet, threshold: float, as_json: bool) -> None:
    """Overall figures, then per data source when there are several."""
    evaluation = predictions.evaluation(threshold)
    masks = source_masks(data.sources) if len(set(data.sources)) > 1 else {}
    per_source = {s: predictions.evaluation(threshold, mask) for s, mask in masks.items()}
    if as_json:
        print(
            json_text({**evaluation.summary(), "per_source": {k: v.summary() for k, v in per_source.items()}})
        )
        return
    print(evaluation.report())
    for name, ev in per_source.items():
        print(f"\n--- faces from {name} ---")
        print(ev.report())
    if predictions.members:
        print("\n--- each member of the ensemble alone ---")
        for descriptor, alone in predictions.members.items():
            print(f"{descriptor}: {headline(alone.evaluation(threshold).summary())}")
            for source, mask in masks.items():
                print(f"    faces from {source}: {headline(alone.evaluation(threshold, mask).summary())}")


def _compare_with_model_in_force(
    settings: Settings, spec: FaceSpec, new: Evaluation | None, validation: FaceSet | None
) -> None:
    """Both models' figures on the faces just held out, side by side, and plainly which is better."""
    current_path = model_in_force(settings)
    if current_path is None:
        return
    if new is None or validation is None:
        print("no validation set held out (--validation-share 0): not compared with the model in force")
        return
    current = load_model(current_path)
    if current.spec != spec:
        print("the model in force frames faces otherwise: not compared on the validation set")
        return
    old = predict_set(current, validation).evaluation(settings.recognition.threshold)
    print(f"\n--- on the validation set: the new model and the one in force ({current_path.name}) ---")
    print(f"new model:      {headline(new.summary())}")
    print(f"model in force: {headline(old.summary())}")
    if near_chance(new.summary()):
        chance = 1 / len(new.labels)
        print(f"the new model is barely better than chance ({chance:.3f}): it learnt next to nothing")
    # The daemon's adoption rule, held to no drop in balanced accuracy: `train` is the strict verdict.
    verdict = Comparison(
        "the validation set",
        new,
        old,
        "balanced_accuracy",
        0.0,
        settings.learning.max_coverage_drop,
        sorted_right_floor(settings),
    )
    print(verdict.describe())
    if not verdict.passed:
        print(
            "the new model is WORSE than the model in force on these faces (which the model in force "
            "may have been trained on; see README)"
        )
    else:
        print("the new model is not worse than the model in force on these faces")


def _write_plots(folder: Path | None, summary: dict[str, object]) -> None:
    """--plots DIR: the confusion matrix and reliability curve of these figures as PNG files."""
    if folder is not None:
        from facesortd.plots import write_plots

        logger.info("plots written: {}", ", ".join(map(str, write_plots(summary, folder))))


def cmd_eval(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    model = load_model(args.model) if args.model else load_model_in_force(settings)
    if model is None:
        raise ModelError(f"no model to evaluate: pass --model FILE or train one with `{advised('train')}`")
    data = collect(args, settings, model.spec)
    if not args.json:  # --json prints one JSON document and nothing else
        _print_counts(data)
    predictions = predict_set(model, data)
    _print_figures(predictions, data, settings.recognition.threshold, args.json)
    _write_plots(args.plots, predictions.evaluation(settings.recognition.threshold).summary())
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if args.action == "use" and args.target is None:
        raise UsageError("`model use` takes `default` or a model FILE")
    if args.action != "use" and args.target is not None:  # said of the command given, not of `use`
        put = advised("model", "use", args.target)
        raise UsageError(
            f"`model {args.action}` takes nothing after it, got {args.target!r} (to put a model file in "
            f"force: `{put}`)"
        )
    if args.action in ("rollback", "use"):
        with _no_retrain_running(settings):
            now = rollback(settings) if args.action == "rollback" else use(settings, args.target)
        print(f"model in force is now {now}")
        return 0
    entries = history(settings)
    if not entries:
        print(f"no models yet: train one with `{advised('train', 'DATASET')}`")
    for entry in entries:
        figures = headline(entry.info.get("held_out")) or str(entry.info.get("error", "no held-out figures"))
        counts = entry.info.get("counts", {})
        mark = "*" if entry.in_force else " "
        print(f"{mark} {entry.path.name}  {entry.info.get('created', '?')}  {figures}")
        if isinstance(counts, dict) and counts:
            print("    trained on: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if descriptors := entry.info.get("descriptors"):
            print("    an ensemble of: " + ", ".join(map(str, descriptors)))
        if validation := headline(entry.info.get("bootstrap_validation")):
            print(f"    on the bootstrap validation set: {validation}")
        if entry.info.get("decision"):
            print(f"    {entry.info['decision']}")
    return 0


def _no_retrain_running(settings: Settings) -> contextlib.AbstractContextManager[bool]:
    """Held while the model in force is changed by hand: a retrain running meanwhile was judged
    against the model in force when it began and, adopted, put its own in at its end, over the one
    the person had just chosen (a rollback silently undone)."""
    return retrain_lock(
        settings.state_dir, lambda: print("a retrain is running now: waiting for it to end", flush=True)
    )


def cmd_retrain(args: argparse.Namespace) -> int:
    """Record the labels you gave by moving files, then retrain now rather than when due: the new
    model is put in force only if it is not worse, by the daemon's rule (README, "Reviewing"). Prints
    the outcome; the exit status is 1 if no model was made (too few labels, say)."""
    from facesortd.learn.retrain import retrain_if_due, schedule
    from facesortd.learn.review import Reviewer, user_labels

    settings = settings_for(args)
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        recorded = Reviewer(settings, journal, label_log_level="DEBUG").scan()  # counted below
        labels = user_labels(journal)
        # Counted as `status` counts them ("next retrain: N new label(s)"): the files just found
        # moved are only some of them, and printed alone they read as the whole.
        fresh = max(0, schedule(journal, labels).fresh)
        print(
            f"{fresh} new label(s) since the last retrain ({recorded} of them just recorded from files "
            f"you moved); {len(labels)} usable label(s) in all"
        )
        with retrain_lock(settings.state_dir, lambda: print("the daemon is retraining now: waiting for it")):
            # Printed below for scripts; logged too, it would show twice on a terminal.
            result = retrain_if_due(settings, journal, labels, force=True, log_level="DEBUG")
    finally:
        journal.close()
    assert result is not None
    for label, missing in result.waiting.items():
        print(f"{label}: waiting for {missing} more example(s) before it becomes an emotion")
    if result.path is None:
        print(f"no retrain: {result.reason}")
        return 1
    print(f"{result.describe()}\nnew model: {result.path}")
    return 0


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an emotion model from a labelled folder",
        description="Train an emotion model from DATASET/<emotion>/*, faces.json box files or vn_faces "
        "folders; prints per-emotion counts and out-of-source figures (cross-validation that never "
        "splits a repository or character, and holds out a dataset without groups as a whole) on "
        "stdout, then writes the model file and compares it with the model in "
        "force; it reads the datasets and moves nothing.",
    )
    add_dataset_options(p)
    p.add_argument(
        "--out",
        type=_model_out,
        metavar="FILE",
        help="model file to write; a facesortd model file there is replaced whole, any other file is "
        "refused, as are the model in force, the shipped model and the models/ folder's files, which "
        "`model rollback` goes back to (default: a new <time>.fsm.npz in the models/ folder of the "
        "config's state_dir, where `facesortd model` lists it). The validation set beside it "
        f"(<name>{VALIDATION_SUFFIX}) is replaced, or removed with --validation-share 0; any other "
        "file of that name is refused",
    )
    p.add_argument(
        "--activate",
        action="store_true",
        help="put the new model in force at once (without it: `facesortd model use FILE` later, after "
        "comparing its figures with the model in force, which train prints)",
    )
    p.add_argument(
        "--descriptor",
        action="append",
        choices=list(DESCRIPTORS),
        help="face features: hog+lbp, hog, lbp, pixels (the classic Fisherface), or cnn (a small "
        "convolutional net; see --train-features). Given twice or more, trains one model per "
        "descriptor and averages them (an ensemble). Default: "
        + " and ".join(DEFAULT_ENSEMBLE)
        + " averaged, measured best (README); one descriptor alone trains faster",
    )
    p.add_argument(
        "--train-features",
        action="store_true",
        help="for the cnn descriptor (part of the default): also train its net with PyTorch (pip install "
        "'facesortd[train]'), one per cross-validation fold and one for the model (about 5 min per net "
        "on one core); without it the net of the shipped model is used as it is, which is fast and "
        "right for your own faces (the held-out figures would flatter faces of ../shared, which that "
        "net was trained on)",
    )
    p.add_argument(
        "--epochs",
        metavar="N",
        type=int_at_least(1),
        default=LoopSettings().epochs,
        help="with --train-features: training length per net, in rounds of "
        f"{LoopSettings().steps_per_epoch} batches (default %(default)s)",
    )
    p.add_argument(
        "--face-size",
        metavar="PIXELS",
        type=int_at_least(16),
        default=FaceSpec().size,
        help="normalised face side in pixels (default %(default)s)",
    )
    p.add_argument(
        "--margin",
        metavar="SHARE",
        type=number_between(0.0, CROP_MARGIN),
        default=FaceSpec().margin,
        help="widening of each face box per side, as a share of its size (default %(default)s; the "
        "model keeps it, so run time frames faces the same way)",
    )
    p.add_argument(
        "--pca",
        metavar="N",
        type=int_at_least(1),
        default=150,
        help="most PCA components kept before LDA (default %(default)s)",
    )
    p.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="fit the hand-made descriptors (all but cnn, whose net sees faces both ways already) on "
        "every face and its mirror image too, and later your labels alike (off by default: better "
        "balanced accuracy on other artists' faces, but more files in wrong folders after a review "
        "in the walk-through; README)",
    )
    p.add_argument(
        "--folds",
        metavar="N",
        type=int_at_least(2),
        default=5,
        help="cross-validation folds for the held-out figures (default %(default)s)",
    )
    p.add_argument(
        "--report",
        type=folder_to_write,
        metavar="DIR",
        help="also write the out-of-source figures to DIR: confusion_<source>.png per dataset and over "
        "all, coverage_curves.png (share auto-sorted against share right) and predictions.npz (made "
        "if missing; files of those names are replaced)",
    )
    p.add_argument(
        "--source-balance",
        metavar="WEIGHT",
        type=number_between(0.0, 1.0),
        default=SOURCE_BALANCE,
        help="how much each DATASET's faces are reweighted towards equal total weight per dataset: 0 "
        "pools them, 1 weighs every dataset the same (default %(default)s)",
    )
    p.add_argument(
        "--validation-share",
        metavar="SHARE",
        type=number_between(0.0, 0.5),
        default=0.1,
        help="share of the faces (whole screenshots/characters) kept out of training as the validation "
        "set that retraining must not get worse on (saved beside the model; default %(default)s, 0: none)",
    )
    _add_plots_option(p)
    p.set_defaults(func=cmd_train)


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
    _add_plots_option(p)
    p.set_defaults(func=cmd_eval)


def add_retrain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrain", help="learn from the files you moved, now", description=cmd_retrain.__doc__)
    p.set_defaults(func=cmd_retrain)


def add_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "model",
        help="list the emotion models (history), roll back, or put one in force",
        description="List your emotion models, oldest first, with their training counts and held-out "
        "figures; * marks the one in force. `model rollback` puts back the model in force before "
        "this one (step by step down to the shipped model); `model use default|FILE` puts the "
        "shipped model or a model file in force.",
    )
    p.add_argument(
        "action", nargs="?", choices=["list", "rollback", "use"], default="list", help="(default %(default)s)"
    )
    p.add_argument(
        "target",
        nargs="?",
        metavar="default|FILE",
        help="for `use`: the shipped model, or a model file (copied into the models folder first)",
    )
    p.set_defaults(func=cmd_model)
