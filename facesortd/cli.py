"""The ``facesortd`` command: thin sub-commands over the modules; no sorting logic lives here."""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
from loguru import logger

from facesortd import __version__
from facesortd.arg_types import int_at_least, number_between
from facesortd.backdrops import Backdrops
from facesortd.config import LOG_LEVELS, ConfigError, Settings, WatchSettings, config_home, load_settings
from facesortd.datasets import (
    DatasetError,
    LabelledItem,
    is_vn_faces,
    load_items,
    relabel,
    vn_backgrounds,
)
from facesortd.decide import Decision, Pipeline
from facesortd.descriptors import DEFAULT_ENSEMBLE, DESCRIPTORS, LEARNT, describe
from facesortd.detect import DetectorError, FaceDetector
from facesortd.emotion import ModelError
from facesortd.ensemble import Model, load_model
from facesortd.faces import CROP_MARGIN, FaceSpec
from facesortd.feature_net import FeatureNetError
from facesortd.feature_net_training import NetSettings, torch_installed
from facesortd.figures import write_report
from facesortd.images import UnreadableImage, read_image
from facesortd.journal import Journal, JournalError
from facesortd.library import Library
from facesortd.loop_settings import LoopSettings
from facesortd.metrics import Evaluation, headline, near_chance
from facesortd.model_store import (
    history,
    load_model_in_force,
    model_in_force,
    new_model_path,
    rollback,
    use,
    validation_path,
)
from facesortd.package_data import SERVICE_TEMPLATE, data_file
from facesortd.progress import Progress
from facesortd.sorter import Outcome, Sorter
from facesortd.state import JOURNAL_FILE, StateBusy, retrain_lock
from facesortd.training import (
    SOURCE_BALANCE,
    FaceSet,
    Predictions,
    Undetected,
    collect_faces,
    cross_validate,
    emotion_fitter,
    holdout_split,
    predict_set,
)
from facesortd.watch import wanted

REVIEW_PORT = 8765


class UsageError(Exception):
    """Options that each parse but do not go together."""


USER_ERRORS = (
    UsageError,
    ConfigError,
    DetectorError,
    ModelError,
    DatasetError,
    FeatureNetError,
    StateBusy,
    JournalError,
)


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    return load_settings(args.config, **overrides)


def _setup_logging(level: str) -> None:
    logger.remove()
    logger.add(
        sys.stderr, level=level, format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}"
    )


def _expand_inputs(paths: Iterable[Path], watch: WatchSettings) -> list[Path]:
    """Files named directly, plus the files directly inside named folders that the daemon would sort
    (``watch.extensions``, not ``watch.ignore``): `sort DIR` and the daemon pick the same files.

    A name that does not exist is a typo, refused before anything moves (not "skipped", exit 0).
    """
    out: list[Path] = []
    for p in paths:
        if not p.exists() and not p.is_symlink():
            raise UsageError(f"{p}: no such file or folder")
        if p.is_dir():
            children = sorted(c for c in p.iterdir() if not c.name.startswith("."))
            out.extend(c for c in children if c.is_file() and wanted(c, watch))
            for folder in (c for c in children if c.is_dir()):
                logger.warning(
                    "{}: a folder inside {}; not sorted (name it to sort it: facesortd sort FOLDER)",
                    folder,
                    p,
                )
        else:
            out.append(p)
    return out


def _model(settings: Settings) -> Model | None:
    model = load_model_in_force(settings)
    if model is None:
        logger.warning("no emotion model yet: every face will be 'unsure' (train one with `facesortd train`)")
    return model


def _pipeline(settings: Settings, model: Model | None) -> Pipeline:
    return Pipeline(FaceDetector(settings.detection), model, settings.recognition, settings.images)


def cmd_sort(args: argparse.Namespace) -> int:
    settings = _settings(args, library=args.library)
    if not args.paths:
        settings.inbox.mkdir(parents=True, exist_ok=True)
    files = _expand_inputs(args.paths or [settings.inbox], settings.watch)
    if not files:
        logger.info("nothing to sort{}", "" if args.paths else f": drop screenshots into {settings.inbox}")
        return 0
    # Paths a person named are their request: it overrides their earlier undo or quarantine.
    named = bool(args.paths)
    workers = min(args.workers or settings.watch.workers, len(files))
    pipelines = _Pipelines(settings, workers)
    library = Library(settings.library)
    journal_file = settings.state_dir / JOURNAL_FILE
    # A dry run reads the history (undone files, duplicates) but never creates the state folder.
    journal = Journal(journal_file) if not args.dry_run or journal_file.exists() else None
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
    )
    progress = Progress(len(files), "sorting") if len(files) > 1 and not args.json else None
    tally: Counter[str] = Counter()

    def sort_one(src: Path) -> Outcome | Exception:
        with pipelines.borrow() as pipeline:
            try:
                return sorter.sort(pipeline, src, named=named)
            except Exception as exc:  # one file must not end the batch: the rest still get sorted
                return exc

    pool = ThreadPoolExecutor(workers, thread_name_prefix="sort")
    try:
        for src, outcome in zip(files, pool.map(sort_one, files), strict=True):  # input order
            tally[_report(args, src, outcome)] += 1
            if progress:
                progress.step()
    finally:
        # Ctrl-C: the files in progress finish their (journaled) moves, the queued ones are dropped.
        pool.shutdown(cancel_futures=True)
        if journal is not None:
            journal.close()
    logger.info("{}{}", "dry run, nothing moved: " if args.dry_run else "", summary(tally))
    return 1 if tally["failed"] else 0


class _Pipelines:
    """One pipeline per worker thread, lent out per file: OpenCV's detectors are not shareable,
    the emotion model (read-only) is."""

    def __init__(self, settings: Settings, n: int) -> None:
        self.model = _model(settings)
        self._free: queue.SimpleQueue[Pipeline] = queue.SimpleQueue()
        for _ in range(n):
            self._free.put(_pipeline(settings, self.model))

    @contextmanager
    def borrow(self) -> Iterator[Pipeline]:
        pipeline = self._free.get()
        try:
            yield pipeline
        finally:
            self._free.put(pipeline)


def _report(args: argparse.Namespace, src: Path, outcome: Outcome | Exception) -> str:
    """Show one file's outcome (stdout for --json and dry-run plans, the log otherwise); its tally key."""
    if isinstance(outcome, Exception):
        logger.error("{}: could not {} it: {}", src, "copy" if args.copy else "move", outcome)
        return "failed"
    if outcome.kind in ("skipped", "gone", "kept"):
        logger.warning("{}: skipped, {}", src, outcome.why)
        return "skipped"
    decision, dest = outcome.decision, outcome.destination or src
    assert decision is not None, "every outcome but skipped/gone/kept carries its decision"
    if args.json:
        print(json.dumps(_decision_json(src, dest, decision)), flush=True)
    elif args.dry_run:  # the plan is what a dry run is for: stdout, where it can be piped
        print(f"{src} {'stays' if dest == src else 'would go to ' + str(dest)}  [{decision.describe()}]")
    else:
        _log_decision(src, dest, decision, outcome.ms)
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


def _log_decision(src: Path, dest: Path, d: Decision, ms: float) -> None:
    if dest == src:
        logger.info("{} stays where it is  [{}, {:.0f} ms]", src, d.describe(), ms)
        return
    logger.info("{} -> {}  [{}, {:.0f} ms]", src, dest, d.describe(), ms)


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
    settings = _settings(args)
    pipeline = _pipeline(settings, _model(settings))
    if args.draw:
        args.draw.mkdir(parents=True, exist_ok=True)
    status = 0
    for path in args.images:
        try:
            image = read_image(path, settings.images)
        except UnreadableImage as exc:
            status = 1
            if args.json:
                print(json.dumps({"path": str(path), "error": str(exc), "faces": []}), flush=True)
            else:
                print(f"{path}: unreadable: {exc}")
            continue
        faces = pipeline.analyse(image)
        if args.json:
            print(json.dumps({"path": str(path), "faces": [f.to_json() for f in faces]}), flush=True)
        else:
            print(f"{path}: {len(faces)} face(s)")
            for f in faces:
                emo = f"  {f.emotion} {f.confidence:.2f}" if f.emotion else ""
                print(f"  box x={f.box[0]} y={f.box[1]} w={f.box[2]} h={f.box[3]}  score {f.score:.2f}{emo}")
        if args.draw:
            for f in faces:
                x, y, w, h = f.box
                cv2.rectangle(image, (x, y), (x + w, y + h), (0, 0, 255), max(2, w // 60))
                text = f"{f.emotion or 'face'} {f.confidence or f.score:.2f}"
                cv2.putText(
                    image,
                    text,
                    (x, max(12, y - 6)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    max(0.5, w / 300),
                    (0, 0, 255),
                    2,
                )
            out = args.draw / (path.stem + ".png")
            cv2.imwrite(str(out), image)
    return status


def _label_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old:
            raise DatasetError(f"--map takes OLD=NEW (or OLD= to drop a label), got {pair!r}")
        mapping[old] = new
    return mapping


def _dataset_items(args: argparse.Namespace) -> dict[Path, list[LabelledItem]]:
    """The labelled examples of each DATASET argument, with --map applied."""
    mapping = _label_map(args.map)
    return {src: relabel(load_items(src), mapping) for src in args.datasets}


def _framing(args: argparse.Namespace, settings: Settings) -> tuple[FaceDetector | None, Undetected]:
    """The detector that frames dataset faces and what to do where it finds none (--no-detect: whole)."""
    if args.no_detect:
        return None, "whole"
    return FaceDetector(settings.detection), args.undetected


def _backdrops(args: argparse.Namespace) -> Backdrops:
    """Every background picture of the vn_faces-style datasets among DATASET, to vary scenes with."""
    return Backdrops([p for src in args.datasets if is_vn_faces(src) for p in vn_backgrounds(src)])


def _collect(args: argparse.Namespace, settings: Settings, spec: FaceSpec) -> FaceSet:
    detector, undetected = _framing(args, settings)
    parts = [
        collect_faces(
            found,
            detector,
            spec,
            src.name,
            args.kind,
            undetected,
            settings.images,
            Backdrops(vn_backgrounds(src)) if is_vn_faces(src) else None,
        )
        for src, found in _dataset_items(args).items()
    ]
    data = FaceSet.concat(parts)
    for (label, reason), n in sorted(data.skipped.items()):
        logger.warning("{}: {} file(s) skipped ({})", label, n, reason)
    if not data.labels:
        raise DatasetError(
            "no usable faces in " + ", ".join(map(str, args.datasets)) + " (see the skipped counts)"
        )
    return data


def _print_figures(predictions: Predictions, data: FaceSet, threshold: float, as_json: bool) -> None:
    """Overall figures, then per data source when there are several."""
    evaluation = predictions.evaluation(threshold)
    sources = sorted(set(data.sources))
    masks = {} if len(sources) < 2 else {s: np.array([x == s for x in data.sources]) for s in sources}
    per_source = {s: predictions.evaluation(threshold, mask) for s, mask in masks.items()}
    if as_json:
        print(
            json.dumps(
                {**evaluation.summary(), "per_source": {k: v.summary() for k, v in per_source.items()}}
            )
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


def _print_counts(data: FaceSet) -> None:
    print("faces per emotion:")
    for label, n in data.counts().items():
        print(f"  {label:<12} {n}")


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
    settings = _settings(args)
    spec = FaceSpec(size=args.face_size, margin=args.margin)
    collected = _collect(args, settings, spec)
    _print_counts(collected)
    if len(collected.counts()) < 2:
        raise DatasetError("training needs faces of at least 2 emotions")
    data, validation = holdout_split(collected, args.validation_share)
    net_settings = (
        NetSettings(loop=LoopSettings(epochs=args.epochs), backdrops=_backdrops(args))
        if args.train_features
        else None
    )
    fit = emotion_fitter(spec, descriptors, args.pca, net_settings, args.source_balance)
    started = time.perf_counter()
    # Every fold sees the same features of a descriptor, so they are computed once (not a net
    # that is being trained: each fold has its own).
    data.features = {
        d: describe(data.faces, d) for d in descriptors if not (args.train_features and d == LEARNT)
    }
    predictions, calibration = cross_validate(data, fit, args.folds)
    threshold = settings.recognition.threshold
    evaluation = predictions.evaluation(threshold)
    model = fit(data)
    calibration.apply(model)
    seconds = time.perf_counter() - started
    model.info.update(
        {
            "trained_from": [str(d) for d in args.datasets],
            "label_map": _label_map(args.map),
            "held_out": evaluation.summary(),
            "validation": f"grouped {args.folds}-fold cross-validation"
            + (", a feature net trained per fold" if args.train_features else ""),
            "train_seconds": round(seconds, 1),
        }
    )
    if predictions.members:
        model.info["members_held_out"] = {
            d: p.evaluation(threshold).summary() for d, p in predictions.members.items()
        }
    held_out = predict_set(model, validation).evaluation(threshold) if validation is not None else None
    if held_out is not None:
        model.info["bootstrap_validation"] = held_out.summary()
    out = args.out or new_model_path(settings)
    model.save(out)
    if validation is not None:
        # Kept beside the model: retraining checks every candidate against it (see learn.py).
        validation.save(validation_path(out))
    _print_figures(predictions, data, threshold, as_json=False)
    if args.report:
        written = write_report(predictions, data.sources, threshold, args.report)
        print(f"figures written to {args.report}/ ({', '.join(p.name for p in written)})")
    if held_out is not None:
        print(f"\n--- validation set held out from training ({held_out.confusion.sum()} faces) ---")
        print(held_out.report())
    print(f"trained on {len(data.labels)} faces in {seconds:.1f} s; model written to {out}")
    _write_plots(args.plots, evaluation.summary())
    _compare_with_model_in_force(settings, spec, held_out, validation)
    if args.activate:
        print(f"now in force: {use(settings, str(out))}")
    else:
        print(f"not in force yet: `facesortd model use {out}` puts it in force (or train with --activate)")
    return 0


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
    max_drop = settings.learning.max_coverage_drop
    if new.balanced_accuracy < old.balanced_accuracy or new.coverage < old.coverage - max_drop:
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
    settings = _settings(args)
    model = load_model(args.model) if args.model else load_model_in_force(settings)
    if model is None:
        raise ModelError("no model to evaluate: pass --model FILE or train one with `facesortd train`")
    data = _collect(args, settings, model.spec)
    if not args.json:  # --json prints one JSON document and nothing else
        _print_counts(data)
    predictions = predict_set(model, data)
    _print_figures(predictions, data, settings.recognition.threshold, args.json)
    _write_plots(args.plots, predictions.evaluation(settings.recognition.threshold).summary())
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if (args.action == "use") != (args.target is not None):
        raise UsageError("`model use` takes `default` or a model FILE; `model list` and `rollback` take none")
    if args.action == "rollback":
        print(f"model in force is now {rollback(settings)}")
        return 0
    if args.action == "use":
        print(f"model in force is now {use(settings, args.target)}")
        return 0
    entries = history(settings)
    if not entries:
        print("no models yet: train one with `facesortd train DATASET`")
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


def cmd_run(args: argparse.Namespace) -> int:
    """Watch the inbox and sort files as they arrive, until SIGTERM/SIGINT (as systemd runs it)."""
    from facesortd.service import Service

    code = Service(_settings(args)).run()
    # Every file is placed and synced, the journal closed and the workers joined: what is left of
    # an exit is the interpreter's teardown, where native libraries' destructors can race threads
    # they started themselves (a daemon once died of SIGSEGV there). Skip it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_status(args: argparse.Namespace) -> int:
    from facesortd.status import gather, report

    settings = _settings(args)
    print(json.dumps(gather(settings), indent=2) if args.json else report(settings))
    return 0


def _shown(path: Path) -> str:
    """A path fit for any terminal: bytes of a name that is not UTF-8 shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _parse_since(text: str) -> float:
    """``2h``, ``30m``, ``1d`` ago, or an ISO date/time (``2026-11-24 10:00``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[:-1].isdigit() and text[-1] in units:
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise DatasetError(f"--since takes e.g. 2h, 30m, 1d or 2026-11-24T10:00, got {text!r}") from None


CONFIRM_UNDO_OVER = 20
"""Undoing more files than this from a terminal asks first (after showing the plan)."""


def cmd_undo(args: argparse.Namespace) -> int:
    from facesortd.journal import Journal
    from facesortd.undo import select, undo

    settings = _settings(args)
    count = int(args.targets[0]) if len(args.targets) == 1 and args.targets[0].isdigit() else None
    if count == 0:
        raise UsageError("undo N takes how many of the last moves to undo: 1 or more")
    files = [] if count is not None else [Path(t) for t in args.targets]
    since = _parse_since(args.since) if args.since else None
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        moves = select(journal, count, since, files)
        if not moves:
            print("nothing to undo")
        if args.dry_run or (len(moves) > CONFIRM_UNDO_OVER and sys.stdin.isatty() and not args.yes):
            for move in moves:
                print(f"{_shown(move.destination)} would go back to {_shown(move.source.parent)}")
            if args.dry_run or not _confirm(f"undo these {len(moves)} moves?"):
                print("nothing undone" + (" (dry run)" if args.dry_run else ""))
                return 0
        for done in undo(journal, moves, settings.library, settings.inbox):
            here = _shown(done.moved_from)
            print(f"{here} -> {_shown(done.back_to)}" if done.back_to else f"{here}: {done.why_not}")
    except LookupError as exc:
        raise DatasetError(str(exc)) from exc
    finally:
        journal.close()
    return 0


def _confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def cmd_import_labels(args: argparse.Namespace) -> int:
    """Add a labelled dataset's faces to your labels (they weigh like bootstrap faces), for retraining."""
    from facesortd.label_import import import_labels

    settings = _settings(args)
    items = [item for found in _dataset_items(args).values() for item in found]
    detector, undetected = _framing(args, settings)
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        outcome = import_labels(settings, journal, items, detector, args.kind, undetected)
    except ValueError as exc:
        raise DatasetError(str(exc)) from exc
    finally:
        journal.close()
    print(", ".join(f"{what}: {n}" for what, n in sorted(outcome.items())) or "nothing to import")
    print("they take part in the next retrain (`facesortd retrain`, or the daemon's own schedule)")
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    """Record the labels you gave by moving files, then retrain now (adopted only if not worse)."""
    from facesortd.learn import retrain_if_due
    from facesortd.review import Reviewer, user_labels

    settings = _settings(args)
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        new = Reviewer(settings, journal).scan()
        labels = user_labels(journal)
        print(f"{new} new label(s); {len(labels)} usable label(s) in all")
        with retrain_lock(settings.state_dir, lambda: print("the daemon is retraining now: waiting for it")):
            result = retrain_if_due(settings, journal, labels, force=True)
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


def cmd_review(args: argparse.Namespace) -> int:
    """Label the quarantine on a local web page: one key per file, the model's guesses on screen."""
    import webbrowser

    from facesortd.review_page.server import ReviewServer

    try:
        server = ReviewServer(_settings(args), args.port)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror}): pass another --port, "
            "or --port 0 for any free one"
        ) from exc
    print(server.url, flush=True)
    logger.info("review page on 127.0.0.1:{}; Ctrl-C stops it", server.server_address[1])
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("review page stopped")
    finally:
        server.close()
    return 0


def cmd_install_service(args: argparse.Namespace) -> int:
    unit_dir = config_home().parent / "systemd" / "user"
    exe = shutil.which("facesortd") or f"{sys.executable} -m facesortd"
    text = data_file(SERVICE_TEMPLATE).read_text(encoding="utf-8").replace("{exec_start}", exe)
    if args.print:
        print(text, end="")
        return 0
    unit = unit_dir / "facesortd.service"
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit.write_text(text, encoding="utf-8")
    print(
        f"wrote {unit}\nnow run:\n  systemctl --user daemon-reload\n  systemctl --user enable --now facesortd"
    )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check each thing facesortd needs and say how to fix what is wrong; exit 1 if anything is."""
    from facesortd.doctor import run_checks

    problems = 0
    for ok, message in run_checks(args.config):
        print(("ok    " if ok else "FIX   ") + message)
        problems += not ok
    print("all good" if not problems else f"{problems} problem(s) found")
    return 1 if problems else 0


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "datasets",
        nargs="+",
        type=Path,
        metavar="DATASET",
        help="a folder with one subfolder per emotion (screenshots or face crops), or a faces.json "
        "box file (images in a screenshots/ folder beside it); several may be given",
    )
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="rename a label (fear=scared); OLD= drops that label; may be repeated",
    )
    p.add_argument(
        "--kind",
        choices=["auto", "screenshots", "crops"],
        default="auto",
        help="what the images are; auto: small square images are crops, the rest screenshots (default)",
    )
    p.add_argument(
        "--undetected",
        choices=["drop", "whole", "typical"],
        default="drop",
        help="crops in which no face is detected: drop them (default), use the whole crop as the face, "
        "or frame them like the median of the crops where a face was found (typical)",
    )
    p.add_argument(
        "--no-detect",
        action="store_true",
        help="use every crop whole without running the detector (only for crops already framed "
        "like facesortd's boxes)",
    )


def _add_plots_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plots",
        type=Path,
        metavar="DIR",
        help="also write the confusion matrix and reliability curve of the figures as PNG files into DIR",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facesortd",
        description="Sort anime screenshots into <library>/<emotion>/ by the faces in them; "
        "files it is unsure about go to <library>/_quarantine/<reason>/ for review.",
    )
    parser.add_argument("--version", action="version", version=f"facesortd {__version__}")
    parser.add_argument(
        "--config",
        type=Path,
        help="TOML config file (default: $XDG_CONFIG_HOME/facesortd/config.toml if present)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        metavar="LEVEL",
        help="how much goes to stderr: " + ", ".join(LOG_LEVELS) + " (default: log_level from the config)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "sort",
        help="sort image files once and exit",
        description="Sort image files once and exit, as the daemon would. Without paths it sorts the "
        "inbox and, like the daemon, leaves a file whose sort you undid or that you put in quarantine "
        "yourself; a file or folder you name is sorted anyway.",
    )
    p.add_argument(
        "paths", nargs="*", type=Path, help="image files or folders (default: the configured inbox)"
    )
    p.add_argument("--library", type=Path, help="library folder (default: from the config)")
    p.add_argument("--dry-run", action="store_true", help="print what would happen; touch nothing")
    p.add_argument("--copy", action="store_true", help="copy files into the library instead of moving them")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object per file with its decision, in input order"
    )
    p.add_argument(
        "--workers",
        type=int_at_least(1),
        metavar="N",
        help="files classified in parallel (default: watch.workers from the config, as the daemon)",
    )
    p.set_defaults(func=cmd_sort)

    p = sub.add_parser(
        "detect",
        help="print the faces found in images",
        description="Print face boxes, scores and emotions; the tool for a file that landed in no-face.",
    )
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument(
        "--draw", type=Path, metavar="OUT_DIR", help="also write each image with its boxes drawn here"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser(
        "train",
        help="train an emotion model from a labelled folder",
        description="Train an emotion model from DATASET/<emotion>/*, faces.json box files or vn_faces "
        "folders; prints per-emotion counts and out-of-source figures (cross-validation that never "
        "splits a repository or character, and holds out a dataset without groups as a whole), then "
        "writes a versioned model file.",
    )
    _add_dataset_options(p)
    p.add_argument(
        "--out", type=Path, help="model file to write (default: <state_dir>/models/<time>.fsm.npz)"
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
        type=int_at_least(1),
        default=LoopSettings().epochs,
        help="with --train-features: training length per net, in rounds of "
        f"{LoopSettings().steps_per_epoch} batches (default %(default)s)",
    )
    p.add_argument(
        "--face-size", type=int_at_least(16), default=FaceSpec().size, help="normalised face side in pixels"
    )
    p.add_argument(
        "--margin",
        type=number_between(0.0, CROP_MARGIN),
        default=FaceSpec().margin,
        help="widening of each face box per side, as a share of its size (default %(default)s; the "
        "model keeps it, so run time frames faces the same way)",
    )
    p.add_argument(
        "--pca", type=int_at_least(1), default=150, help="most PCA components kept before LDA (default 150)"
    )
    p.add_argument(
        "--folds", type=int_at_least(2), default=5, help="cross-validation folds for the held-out figures"
    )
    p.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write the out-of-source figures to DIR: confusion matrices and the coverage curve "
        "(share auto-sorted against share right) as PNGs, and the predictions",
    )
    p.add_argument(
        "--source-balance",
        type=number_between(0.0, 1.0),
        default=SOURCE_BALANCE,
        help="how much each DATASET's faces are reweighted towards equal total weight per dataset: 0 "
        "pools them, 1 weighs every dataset the same (default %(default)s)",
    )
    p.add_argument(
        "--validation-share",
        type=number_between(0.0, 0.5),
        default=0.1,
        help="share of the faces (whole screenshots/characters) kept out of training as the validation "
        "set that retraining must not get worse on (saved beside the model; default 0.1, 0: none)",
    )
    _add_plots_option(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "eval",
        help="measure a model on a labelled folder",
        description="Measure a model on DATASET/<emotion>/*.",
    )
    _add_dataset_options(p)
    p.add_argument("--model", type=Path, help="model file (default: the model in force)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    _add_plots_option(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "run",
        help="watch the inbox and sort files as they arrive (the daemon)",
        description="Run in the foreground, as systemd does: sort what is already in the inbox, then "
        "every file saved there. SIGTERM or Ctrl-C stops it cleanly.",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "status",
        help="is the daemon running, what it sorted, what waits for you, last errors",
        description="Daemon (uptime, queue), the model and threshold in force, files placed today and "
        "in total per folder, files waiting in each quarantine folder, what sits in the inbox and why, "
        "labels for training and the last errors.",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print it as one JSON object: {"total": {"<emotion>" | "_quarantine/<reason>": n, ...}, '
        '"today": {...}, "waiting_for_review": {...}, "inbox": {...}, "daemon": {...}, "model": {...}}',
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "undo",
        help="move sorted files back to where they came from",
        description="Move files back to the folder they came from, using the journal: the last file "
        "(default), the last N, those sorted --since a time, or the FILEs named (where they are now). "
        "The daemon leaves an undone file alone; sort it by hand with `facesortd sort FILE`.",
    )
    p.add_argument(
        "targets", nargs="*", metavar="N|FILE", help="how many of the last moves, or files to undo"
    )
    p.add_argument("--since", metavar="TIME", help="undo every move since TIME (2h, 30m, 1d or an ISO time)")
    p.add_argument("--dry-run", action="store_true", help="print what would be moved back; touch nothing")
    p.add_argument(
        "--yes",
        action="store_true",
        help=f"do not ask before undoing more than {CONFIRM_UNDO_OVER} files (asked only on a terminal)",
    )
    p.set_defaults(func=cmd_undo)

    p = sub.add_parser("retrain", help="learn from the files you moved, now", description=cmd_retrain.__doc__)
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser(
        "import-labels",
        help="add a labelled dataset to your labels for retraining",
        description=cmd_import_labels.__doc__
        + " Each face is found and kept like a label you give by moving a file; labels you gave "
        "yourself are never replaced, and importing the same dataset twice adds nothing.",
    )
    _add_dataset_options(p)
    p.set_defaults(func=cmd_import_labels)

    p = sub.add_parser(
        "review",
        help="label the quarantine on a local web page",
        description=cmd_review.__doc__
        + " Prints the page's URL (with its access token) as the first line, opens it in the browser "
        "and serves it on 127.0.0.1 until Ctrl-C. A label moves the file like a file manager would "
        "(journaled, undoable with `facesortd undo`) and counts as your label for retraining.",
    )
    p.add_argument(
        "--port",
        type=int_at_least(0),
        default=REVIEW_PORT,
        help="port on 127.0.0.1 (default %(default)s; 0: any free port)",
    )
    p.add_argument("--no-browser", action="store_true", help="only print the URL; open no browser")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser(
        "install-service",
        help="install the systemd user unit",
        description="Write facesortd.service into ~/.config/systemd/user/ and print the systemctl "
        "commands that enable it (it runs none itself).",
    )
    p.add_argument(
        "--print", action="store_true", help="print the unit to stdout instead (to install it by hand)"
    )
    p.set_defaults(func=cmd_install_service)

    p = sub.add_parser(
        "model",
        help="list the emotion models (history) or roll back",
        description="List your emotion models, oldest first, with their training counts and held-out "
        "figures; * marks the one in force. `model rollback` puts back the model in force before "
        "this one (step by step down to the shipped model); `model use default|FILE` puts the "
        "shipped model or a model file in force.",
    )
    p.add_argument("action", nargs="?", choices=["list", "rollback", "use"], default="list")
    p.add_argument("target", nargs="?", metavar="default|FILE", help="for `use`: which model")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser(
        "doctor", help="check config, folders, cascade and model", description=cmd_doctor.__doc__
    )
    p.set_defaults(func=cmd_doctor)

    _add_train_detector(sub)
    return parser


def _add_train_detector(sub: argparse._SubParsersAction) -> None:
    try:
        from facesortd.cascade_train import command
    except ImportError:
        return
    p = sub.add_parser("train-detector", help="train an LBP face cascade", description=command.__doc__)
    command.add_arguments(p)
    p.set_defaults(func=command.run)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level or "INFO")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        if args.log_level is None and args.command != "doctor":
            _setup_logging(_settings(args).log_level)
        code = func(args)
        sys.stdout.flush()  # a reader that left (`status | head`) shows here, where it is handled
        return code
    except USER_ERRORS as exc:
        print(f"facesortd: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facesortd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `facesortd status | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
