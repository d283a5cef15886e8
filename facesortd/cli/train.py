"""`train`: an emotion model made from labelled datasets, its out-of-source figures, and how it
compares with the model in force; the model file written (and put in force on request)."""

from __future__ import annotations

import argparse
from pathlib import Path

from facesortd.advice import INSTALL_TRAIN_EXTRA, advised
from facesortd.cli.arg_types import (
    cannot_write,
    file_to_replace,
    folder_to_write,
    int_at_least,
    number_between,
    read_by,
)
from facesortd.cli.common import UsageError, model_changed, say_waiting, settings_for
from facesortd.cli.dataset_args import add_dataset_options, backdrops, collect, label_map
from facesortd.cli.model_figures import add_plots_option, print_counts, print_figures, write_plots_into
from facesortd.cli.stopping import InterruptedAfter, finishing, say
from facesortd.cli.undo import left_by
from facesortd.config import Settings
from facesortd.descriptors import DEFAULT_ENSEMBLE, DESCRIPTORS, LEARNT
from facesortd.emotion import PCA_COMPONENTS, ModelError
from facesortd.ensemble import load_model, model_info
from facesortd.faces import CROP_MARGIN, FaceSpec
from facesortd.interrupts import like_ctrl_c, stopped_by, whole
from facesortd.learn.datasets import DatasetError
from facesortd.learn.feature_net_training import NetSettings, torch_installed
from facesortd.learn.figures import write_report
from facesortd.learn.loop_settings import LoopSettings
from facesortd.learn.metrics import Evaluation, headline, near_chance
from facesortd.learn.retrain import Comparison, sorted_right_floor
from facesortd.learn.train_run import TrainRun, train_model
from facesortd.learn.training import SOURCE_BALANCE, FaceSet, predict_set
from facesortd.model_change import put_in_force
from facesortd.model_store import (
    VALIDATION_SUFFIX,
    model_id,
    model_in_force,
    models_dir,
    save_new_model,
    shipped_model,
    validation_path,
)
from facesortd.models_folder import prune_logged
from facesortd.mounts import refuse_unmounted
from facesortd.refusals import write_refused
from facesortd.shown_names import one_line


def cmd_train(args: argparse.Namespace) -> int:
    """SIGTERM and SIGHUP (the terminal closed) end it as Ctrl-C does: they ended it without a word,
    perhaps between the model and its validation set, or with the model written and not in force."""
    with like_ctrl_c():
        return _train_command(args)


def _train_command(args: argparse.Namespace) -> int:
    descriptors = _descriptors(args)
    settings = settings_for(args)
    if args.out is not None:
        _refuse_kept_model(settings, args.out)
    else:  # before the training, not after it: the models folder would be made on the disk below
        refuse_unmounted(settings.state_dir)
        if why := cannot_write(models_dir(settings)):
            raise UsageError(f"cannot write a model into {models_dir(settings)}: {why} (or pass --out FILE)")
    spec = FaceSpec(size=args.face_size, margin=args.margin)
    collected = collect(args, settings, spec)
    print_counts(collected)
    if len(collected.counts()) < 2:
        raise DatasetError("training needs faces of at least 2 emotions")
    run = _train(args, collected, spec, descriptors, settings.recognition.threshold)
    out: Path | None = None
    try:
        with whole():  # the model and its validation set: a signal meanwhile is acted on after them
            out = _write_model(args, settings, run)
        with finishing() as done:  # the model written: what was asked of it is done, whatever stdout does
            _show_figures(args, run, settings.recognition.threshold)
            faces = len(run.data.labels)
            say(f"trained on {faces} faces in {run.seconds:.1f} s; model written to {one_line(out)}")
            write_plots_into(args.plots, run.predictions.evaluation(settings.recognition.threshold).summary())
            _compare_with_model_in_force(settings, spec, run.held_out, run.validation)
            done.outcome = _put_in_force_or_say_how(args, settings, out)
    except KeyboardInterrupt as exc:  # the figures, the comparison: minutes after the model is written
        if out is None:
            raise
        # a change of the model in force is whole or not made (``whole``): which one, the models folder says
        in_force = model_id(model_in_force(settings)).version == model_id(out).version
        raise InterruptedAfter(_standing(out, in_force), stopped_by(exc)) from exc
    return 0


def _standing(out: Path, in_force: bool) -> str:
    """Where the model written to ``out`` stands, in a few words for an error line."""
    if in_force:
        return f"the model written to {one_line(out)} is in force"
    command = advised("model", "use", str(out))
    return f"the model written to {one_line(out)} is not in force: `{command}` puts it in force"


def _descriptors(args: argparse.Namespace) -> list[str]:
    """The descriptors asked for, refused before any work if they do not go with the options."""
    descriptors = args.descriptor or list(DEFAULT_ENSEMBLE)
    if len(set(descriptors)) < len(descriptors):
        raise UsageError(f"each --descriptor may be given once, got {', '.join(descriptors)}")
    if args.train_features and LEARNT not in descriptors:
        raise UsageError(
            f"--train-features trains the net of the {LEARNT} descriptor: add --descriptor {LEARNT}"
        )
    if args.train_features and not torch_installed():
        raise UsageError(f"--train-features trains the net with PyTorch: {INSTALL_TRAIN_EXTRA}")
    return descriptors


def _train(
    args: argparse.Namespace, collected: FaceSet, spec: FaceSpec, descriptors: list[str], threshold: float
) -> TrainRun:
    net_settings = (
        NetSettings(loop=LoopSettings(epochs=args.epochs), backdrops=backdrops(args))
        if args.train_features
        else None
    )
    return train_model(
        collected,
        spec=spec,
        descriptors=descriptors,
        pca=args.pca,
        net_settings=net_settings,
        source_balance=args.source_balance,
        folds=args.folds,
        validation_share=args.validation_share,
        threshold=threshold,
        # in full, so that `eval` of one of them, from any folder, says the model learnt from it
        info={"trained_from": [str(d.absolute()) for d in args.datasets], "label_map": label_map(args.map)},
        mirror=args.mirror,
    )


def _write_model(args: argparse.Namespace, settings: Settings, run: TrainRun) -> Path:
    """The model and its validation set written to --out, or as a new file in the models folder. A
    disk full by then was an OSError traceback naming no folder."""
    folder = args.out.parent if args.out else models_dir(settings)
    try:
        if args.out:
            run.save(args.out)
            return args.out
        out = save_new_model(settings, run.model.save)
        run.save_validation(out)
    except OSError as exc:
        raise write_refused(exc, folder) from exc
    return out


def _show_figures(args: argparse.Namespace, run: TrainRun, threshold: float) -> None:
    """The out-of-source figures (and --report's files), then the held-out validation set's."""
    print_figures(run.predictions, run.data, threshold, as_json=False, faces="held-out faces")
    if args.report:
        written = write_report(run.predictions, run.data.sources, threshold, args.report)
        names = ", ".join(p.name for p in written)
        say(f"figures written to {one_line(args.report)}/ ({names})")
    if run.held_out is not None:
        say(f"\n--- validation set held out from training ({run.held_out.confusion.sum()} faces) ---")
        say(run.held_out.report("held-out faces"))


def _put_in_force_or_say_how(args: argparse.Namespace, settings: Settings, out: Path) -> str:
    """Put the new model in force (``--activate``), or say how; the models folder kept bounded
    either way once it holds one more (``models_folder.prune``: a model never put in force stayed
    for good until 2026-12-02, however many). Returns the outcome in a few words, for an error line."""
    if args.activate:
        change = model_changed(settings, lambda: put_in_force(settings, str(out), say_waiting))
        say(f"now in force: {one_line(change.now)}")
        if left := left_by(settings, change.before):
            say(one_line(left))
        return _standing(out, in_force=True)
    if args.out is None:  # written into the models folder; its newest models never put in force stay
        prune_logged(settings)
    command = advised("model", "use", str(out))  # pasted as it is into a shell
    say(f"not in force yet: `{command}` puts it in force (or train with --activate)")
    return _standing(out, in_force=False)


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


def _compare_with_model_in_force(
    settings: Settings, spec: FaceSpec, new: Evaluation | None, validation: FaceSet | None
) -> None:
    """Both models' figures on the faces just held out, side by side, and plainly which is better."""
    current_path = model_in_force(settings)
    if current_path is None:
        return
    if new is None or validation is None:
        say("no validation set held out (--validation-share 0): not compared with the model in force")
        return
    current = load_model(current_path)
    if current.spec != spec:
        say("the model in force frames faces otherwise: not compared on the validation set")
        return
    old = predict_set(current, validation).evaluation(settings.recognition.threshold)
    say(f"\n--- on the validation set: the new model and the one in force ({current_path.name}) ---")
    say(f"new model:      {headline(new.summary())}")
    say(f"model in force: {headline(old.summary())}")
    if near_chance(new.summary()):
        chance = 1 / len(new.labels)
        say(f"the new model is barely better than chance ({chance:.3f}): it learnt next to nothing")
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
    say(verdict.describe())
    if not verdict.passed:
        say(
            "the new model is WORSE than the model in force on these faces (which the model in force "
            "may have been trained on; see README)"
        )
    else:
        say("the new model is not worse than the model in force on these faces")


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an emotion model from a labelled folder",
        description="Train an emotion model from DATASET/<emotion>/*, faces.json box files or vn_faces "
        "folders; prints per-emotion counts and out-of-source figures (cross-validation that never "
        "splits a repository or character, and holds out a dataset without groups as a whole) on "
        "stdout, then writes the model file and compares it with the model in "
        "force; it reads the datasets and moves nothing. The exit status is 1 if the model could not be "
        "written or put in force (a full disk), or the output cannot be (the model is written, and "
        "with --activate put in force, all the same: the error line says so).",
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
        help="for the cnn descriptor (part of the default): also train its net with PyTorch "
        f"({INSTALL_TRAIN_EXTRA}), one per cross-validation fold and one for the model (about 5 min per net "
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
        default=PCA_COMPONENTS,
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
    add_plots_option(p)
    p.set_defaults(func=cmd_train)
