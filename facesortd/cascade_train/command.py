"""``facesortd train-detector``: arguments and the run that ties samples, mining and boosting together."""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from loguru import logger

from facesortd.advice import INSTALL_TRAIN_EXTRA
from facesortd.boxes import Box
from facesortd.cascade_train.cnn_verifier import NetShape, collect, group_folds, repo_scenes
from facesortd.cascade_train.cnn_verifier import train as train_cnn_verifier
from facesortd.cascade_train.samples import (
    Augmentation,
    BoxedImage,
    boxed_screenshots,
    image_files,
    positives,
    read_gray,
)
from facesortd.cascade_train.scenes import FOLDS, VN_FACE_FRAME, Composites, SceneMaker, Sources
from facesortd.cascade_train.split import is_held_out
from facesortd.cascade_train.trainer import TrainingError, TrainParams, train_cascade
from facesortd.cli.arg_types import file_to_replace, int_at_least, number_between
from facesortd.config import DetectionSettings
from facesortd.detect import DetectorError, FaceDetector, load_cascade
from facesortd.learn.datasets import DatasetError, source_group
from facesortd.verify import CNN_KIND, HOG_KIND

DEFAULT_CROP_FRAME = (0.0, 0.0, 1.0, 1.0)


def _is_cascade_file(path: Path) -> bool:
    """Whether ``path`` is an OpenCV cascade: the only file --out replaces (stage after stage)."""
    try:
        load_cascade(path)
    except DetectorError:
        return False
    return True


def _is_verifier_file(path: Path) -> bool:
    """Whether ``path`` is a facesortd verifier, of this version or the HOG one before: the only
    file --verifier-out replaces."""
    if not zipfile.is_zipfile(path):  # np.load would read a bare .npy or unpickle-refuse anything else
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return str(data["kind"]) in (CNN_KIND, HOG_KIND)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The train-detector options (also used by ``python -m facesortd.cascade_train``)."""
    d = TrainParams()
    mining_sizes = [DetectionSettings.model_fields["max_side"].default, 480, 960]
    variants = (40, 2)
    data = parser.add_argument_group("data")
    data.add_argument(
        "--faces-json",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="faces.json-style box file ({image: [{'box': [x, y, w, h]}, ...]}); its images are read from "
        "screenshots/ beside it, else its own folder. Its boxes are positives, and the rest of each image "
        "(away from the boxes) is mined for negatives. Repeatable.",
    )
    data.add_argument(
        "--pos-crops",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="folder of face crop images used as positives (see --crop-frame). Repeatable.",
    )
    data.add_argument(
        "--crop-frame",
        type=number_between(0.0, 1.0),
        nargs=4,
        default=DEFAULT_CROP_FRAME,
        metavar=("X", "Y", "W", "H"),
        help="where the face box convention (bangs line to chin, cheek to cheek) sits in each --pos-crops "
        "image, as fractions of its width/height; default: the whole crop",
    )
    data.add_argument(
        "--negatives",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="folder of images or patches holding no face, mined for negative windows. Repeatable.",
    )
    data.add_argument(
        "--include-held-out",
        action="store_true",
        help="also train on the screenshots of the held-out characters (facesortd.cascade_train.split); "
        "by default they are left out so that the benchmark can measure on them",
    )
    data.add_argument(
        "--no-screenshot-negatives",
        action="store_true",
        help="do not mine negatives from the face-free parts of the --faces-json images",
    )
    data.add_argument(
        "--mining-sizes",
        type=int_at_least(24),
        nargs="+",
        default=mining_sizes,
        metavar="SIDE",
        help="--faces-json images are mined at each of these longest sides, as is and mirrored; the "
        "first is also the size the verifier's proposals are made at. The detector shrinks images "
        f"(detection.max_side) before it runs, so that size belongs here (default {_words(mining_sizes)})",
    )
    data.add_argument(
        "--crops-as-negatives",
        action="store_true",
        help="also mine --pos-crops images for negatives, away from their face (hair, ears, the edge of "
        "the head: what a detector confuses with a face)",
    )
    vn = parser.add_argument_group("many-artist data (vn_faces)")
    vn.add_argument(
        "--vn-faces",
        type=Path,
        metavar="DIR",
        help="a vn_faces folder (index.json, faces/, backgrounds/): its crops, composited over its "
        "backgrounds, are positives (--variants' PER_CROP windows per composite), and scenes composed "
        "from it (scenes.py) and its backgrounds are mined for negatives",
    )
    vn.add_argument(
        "--leave-out-fold",
        type=int_at_least(0),
        metavar="K",
        help="train without fold K of the vn_faces repositories (scenes.Sources.folds, the split "
        "bench/bench_detect_scenes.py judges by), so that fold K measures art the cascade never saw",
    )
    vn.add_argument(
        "--folds",
        type=int_at_least(2),
        default=FOLDS,
        metavar="N",
        help="folds of vn_faces repositories for --leave-out-fold (default %(default)s)",
    )
    vn.add_argument(
        "--vn-composites",
        metavar="N",
        type=int_at_least(1),
        default=2,
        help="composites of each vn_faces crop, each over another background (default %(default)s)",
    )
    vn.add_argument(
        "--vn-scenes",
        metavar="N",
        type=int_at_least(0),
        default=10,
        help="scenes per vn_faces repository mined for negatives, away from their faces "
        "(default %(default)s)",
    )
    cas = parser.add_argument_group("cascade")
    cas.add_argument(
        "--out",
        type=file_to_replace("cascade file (OpenCV XML)", _is_cascade_file),
        required=True,
        metavar="FILE",
        help="cascade XML file to write (after every stage); a cascade there is replaced, any other "
        "file is refused",
    )
    cas.add_argument(
        "--window",
        type=int_at_least(8),
        nargs=2,
        default=d.window,
        metavar=("W", "H"),
        help="window the cascade is trained for, in pixels; smaller faces are never found "
        f"(default {_words(d.window)})",
    )
    cas.add_argument(
        "--stages",
        type=int_at_least(1),
        default=d.stages,
        metavar="N",
        help="maximum number of stages (default %(default)s)",
    )
    cas.add_argument(
        "--min-hit-rate",
        type=number_between(0.0, 1.0),
        default=d.min_hit_rate,
        metavar="SHARE",
        help="share of the stage's positives every stage must keep (default %(default)s)",
    )
    cas.add_argument(
        "--max-false-alarm",
        type=number_between(0.0, 1.0),
        default=d.max_false_alarm,
        metavar="SHARE",
        help="largest share of its negatives a stage may pass; trees are added until it does "
        "(default %(default)s)",
    )
    cas.add_argument(
        "--max-trees",
        type=int_at_least(1),
        default=d.max_trees,
        metavar="N",
        help="most trees per stage (default %(default)s)",
    )
    cas.add_argument(
        "--num-pos",
        type=int_at_least(1),
        default=d.num_pos,
        metavar="N",
        help="positives per stage (default %(default)s)",
    )
    cas.add_argument(
        "--num-neg",
        type=int_at_least(1),
        default=d.num_neg,
        metavar="N",
        help="negatives per stage (default %(default)s)",
    )
    cas.add_argument(
        "--mining-scale-factor",
        type=number_between(1.01, 2.0),
        default=d.mining_scale_factor,
        metavar="FACTOR",
        help="pyramid step when the partial cascade scans negative images (default %(default)s)",
    )
    cas.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        metavar="N",
        help="random seed: same data + seed = same cascade (default %(default)s)",
    )
    ver = parser.add_argument_group("verifier (second look at every box the cascade proposes; needs PyTorch)")
    ver.add_argument(
        "--verifier-out",
        type=file_to_replace("facesortd verifier file", _is_verifier_file),
        metavar="FILE",
        help="also train the CNN face/non-face verifier behind the cascade and write it here (.npz; a "
        "verifier there is replaced, any other file is refused); "
        f"it learns from the cascade's proposals on the training images. Needs {INSTALL_TRAIN_EXTRA}",
    )
    ver.add_argument(
        "--verifier-only",
        action="store_true",
        help="keep the cascade already in --out and only train the verifier (needs --verifier-out)",
    )
    ver.add_argument(
        "--verifier-min-neighbors",
        type=int_at_least(0),
        default=1,
        metavar="N",
        help="minNeighbors of the permissive cascade run whose proposals the verifier learns to sort "
        "(use the detection.min_neighbors the verifier will run behind; default %(default)s)",
    )
    ver.add_argument(
        "--verifier-scenes",
        metavar="N",
        type=int_at_least(0),
        default=50,
        help="scenes per vn_faces repository (each of that repository alone) whose proposals the "
        "verifier learns from (default %(default)s)",
    )
    ver.add_argument(
        "--verifier-folds-out",
        type=Path,
        metavar="DIR",
        help="also write the calibration folds' nets here as fold<k>.npz (each trained without fold k: "
        "bench/bench_detect_scenes.py --fold-verifiers)",
    )
    ver.add_argument(
        "--verifier-epochs",
        type=int_at_least(1),
        default=NetShape.epochs,
        metavar="N",
        help="training length, in passes' worth of batches over the samples (default %(default)s)",
    )
    ver.add_argument(
        "--verifier-widths",
        type=int_at_least(1),
        nargs="+",
        default=NetShape.widths,
        metavar="N",
        help=f"channels of the convolution blocks (default {_words(NetShape.widths)})",
    )
    ver.add_argument(
        "--verifier-augment",
        action="store_true",
        help="also train on tilted, re-toned and partly covered crops (measured, not adopted: "
        "cascade_classifier/README.md)",
    )
    aug = parser.add_argument_group("augmentation of positives")
    aug.add_argument(
        "--variants",
        type=int_at_least(1),
        nargs=2,
        default=variants,
        metavar=("PER_BOX", "PER_CROP"),
        help="windows per faces.json box and per crop: the original plus randomly varied copies "
        f"(default {_words(variants)})",
    )
    aug.add_argument("--no-flip", action="store_true", help="never mirror positives left-right")
    a = Augmentation()
    aug.add_argument(
        "--max-rotation",
        type=float,
        default=a.max_rotation,
        metavar="DEGREES",
        help="rotation range, degrees either way (default %(default)s)",
    )
    aug.add_argument(
        "--brightness",
        type=float,
        default=a.brightness,
        metavar="LEVELS",
        help="brightness shift range, grey levels (default %(default)s)",
    )
    aug.add_argument(
        "--contrast",
        type=float,
        default=a.contrast,
        metavar="SHARE",
        help="contrast gain range, relative: gains of 1 +/- this (default %(default)s)",
    )
    aug.add_argument(
        "--jitter",
        type=float,
        default=a.jitter,
        metavar="SHARE",
        help="box shift/scale range, relative to its side (default %(default)s)",
    )


def _words(values: tuple[int, ...] | list[int]) -> str:
    """Several values as they are typed after their option (``24 24``), not as Python writes them."""
    return " ".join(map(str, values))


def _resized(shot: BoxedImage, max_side: int, mirror: bool = False) -> BoxedImage:
    """The image scaled to ``max_side`` (boxes too), optionally mirrored: more negative windows."""
    scale = max_side / max(shot.gray.shape)
    gray = cv2.resize(shot.gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    boxes = [tuple(round(v * scale) for v in b) for b in shot.boxes]
    if mirror:
        gray = cv2.flip(gray, 1)
        boxes = [(gray.shape[1] - x - w, y, w, h) for x, y, w, h in boxes]
    return BoxedImage(shot.name, gray, tuple(boxes))  # type: ignore[arg-type]


def vn_repos(args: argparse.Namespace) -> tuple[Sources, list[str]]:
    """The vn_faces sources and the repositories trained on (all but --leave-out-fold's)."""
    sources = Sources.load(args.vn_faces)
    repos = sources.repos
    if args.leave_out_fold is not None:
        folds = sources.folds(args.folds)
        if args.leave_out_fold >= len(folds):
            raise TrainingError(f"--leave-out-fold {args.leave_out_fold}: there are only {len(folds)} folds")
        repos = [r for r in repos if r not in folds[args.leave_out_fold]]
    return sources, repos


def vn_faces_data(args: argparse.Namespace) -> tuple[list[np.ndarray], list[BoxedImage]]:
    """Composited vn_faces crops (face at VN_FACE_FRAME) and the scenes and backgrounds to mine
    negatives from, all of the repositories trained on."""
    sources, repos = vn_repos(args)
    composites = Composites(sources, repos, args.seed).grey_crops(args.vn_composites)
    maker = SceneMaker(sources, repos, args.seed + 1)
    side = args.mining_sizes[0]
    images = [
        _resized(BoxedImage(s.name, cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY), tuple(s.boxes)), side)
        for s in maker.scenes(args.vn_scenes * len(repos), "vn")
    ]
    for repo in repos:
        images += [
            _resized(BoxedImage(p.name, read_gray(p)), side) for p in sources.backgrounds.get(repo, [])
        ]
    logger.info(
        "vn_faces: {} repositories, {} composites, {} negative images",
        len(repos),
        len(composites),
        len(images),
    )
    return composites, images


def _frame_box(crop: np.ndarray, frame: Sequence[float]) -> Box:
    """The face box of a crop whose face sits at ``frame`` (fractions of its width/height)."""
    h, w = crop.shape[:2]
    fx, fy, fw, fh = frame
    return (round(fx * w), round(fy * h), round(fw * w), round(fh * h))


def negative_images(
    args: argparse.Namespace, shots: list[BoxedImage], crops: list[np.ndarray]
) -> list[BoxedImage]:
    """Every image negatives are mined from, with the faces in it to keep away from."""
    out = [BoxedImage(p.name, read_gray(p)) for d in args.negatives for p in image_files(d)]
    if args.crops_as_negatives:
        out += [
            BoxedImage(f"crop{k}", crop, (_frame_box(crop, args.crop_frame),)) for k, crop in enumerate(crops)
        ]
    if not args.no_screenshot_negatives:
        out += [
            _resized(s, side, mirror) for s in shots for side in args.mining_sizes for mirror in (False, True)
        ]
    return out


def require_torch() -> None:
    """Fail before hours of cascade training if the verifier cannot be trained afterwards."""
    try:
        import facesortd.cascade_train.verifier_net  # noqa: F401
    except ImportError as exc:
        raise TrainingError(
            f"training the verifier (--verifier-out) needs PyTorch: {INSTALL_TRAIN_EXTRA}"
        ) from exc


def train_and_save_verifier(
    args: argparse.Namespace, shots: list[BoxedImage], crops: list[np.ndarray]
) -> None:
    """The CNN verifier behind the cascade in --out, from its proposals on the training images;
    calibrated by folds of vn_faces repositories (or of the screenshots' characters without
    --vn-faces)."""
    t0 = time.monotonic()
    settings = DetectionSettings(min_neighbors=args.verifier_min_neighbors)
    detector = FaceDetector(
        settings.model_copy(update={"verify": False, "min_score": 0.0, "nms_iou": 0.99}), [args.out]
    )
    shot_group = (lambda _name: "screenshots") if args.vn_faces else source_group
    boxed: Iterable[tuple[str, BoxedImage]] = [(shot_group(s.name), s) for s in shots]
    images = len(shots)
    if args.vn_faces is not None:
        sources, repos = vn_repos(args)
        folds = [[r for r in fold if r in repos] for fold in sources.folds(args.folds)]
        folds = [f for f in folds if f]
        boxed = itertools.chain(boxed, repo_scenes(sources, repos, args.verifier_scenes, args.seed))
        images += args.verifier_scenes * len(repos)
    else:
        folds = group_folds([shot_group(s.name) for s in shots], args.folds)
    faces = [(c, _frame_box(c, args.crop_frame)) for c in crops]
    non_faces = (read_gray(p) for d in args.negatives for p in image_files(d))
    samples = collect(detector, boxed, images, faces, non_faces, args.seed)
    shape = NetShape(tuple(args.verifier_widths), args.verifier_epochs, args.verifier_augment)
    if args.verifier_folds_out is not None:
        args.verifier_folds_out.mkdir(parents=True, exist_ok=True)
    train_cnn_verifier(samples, folds, shape, args.seed, args.verifier_folds_out).save(args.verifier_out)
    logger.info("verifier: {:.0f} s -> {}", time.monotonic() - t0, args.verifier_out)


def run(args: argparse.Namespace) -> int:
    """Train the cascade; 0 on success, 2 when the data given cannot train one."""
    t0 = time.monotonic()
    try:
        if args.verifier_out is not None:
            require_torch()
        keep = (lambda _name: True) if args.include_held_out else (lambda name: not is_held_out(name))
        shots = [s for f in args.faces_json for s in boxed_screenshots(f, keep)]
        crops = [read_gray(p) for d in args.pos_crops for p in image_files(d)]
        aug = Augmentation(not args.no_flip, args.max_rotation, args.brightness, args.contrast, args.jitter)
        rng = np.random.default_rng(args.seed)
        window = tuple(args.window)
        pos = positives(shots, crops, tuple(args.crop_frame), window, tuple(args.variants), aug, rng)
        negatives = negative_images(args, shots, crops)
        if args.vn_faces is not None:
            composites, vn_negatives = vn_faces_data(args)
            vn_pos = positives([], composites, VN_FACE_FRAME, window, tuple(args.variants), aug, rng)
            pos = np.concatenate([pos, vn_pos])
            negatives += vn_negatives
            if args.crops_as_negatives:
                negatives += [
                    BoxedImage(f"vn{k}", c, (_frame_box(c, VN_FACE_FRAME),)) for k, c in enumerate(composites)
                ]
        logger.info(
            "{} positive windows ({} boxes in {} images, {} crops); {} negative images",
            len(pos),
            sum(len(s.boxes) for s in shots),
            len(shots),
            len(crops),
            len(negatives),
        )
        params = TrainParams(
            window=window,  # type: ignore[arg-type]
            stages=args.stages,
            min_hit_rate=args.min_hit_rate,
            max_false_alarm=args.max_false_alarm,
            max_trees=args.max_trees,
            num_pos=args.num_pos,
            num_neg=args.num_neg,
            mining_scale_factor=args.mining_scale_factor,
            seed=args.seed,
        )
        comment = "Trained by facesortd train-detector:\n  " + shlex.join(
            ["facesortd train-detector", *sys.argv[1:]]
        )
        if args.verifier_only:
            if args.verifier_out is None or not args.out.is_file():
                raise TrainingError("--verifier-only needs --verifier-out and an existing cascade in --out")
        else:
            cascade = train_cascade(pos, negatives, params, args.out, comment)
            logger.info("wrote {} ({} stages)", args.out, len(cascade.stages))
        if args.verifier_out is not None:
            train_and_save_verifier(args, shots, crops)
    except (DatasetError, TrainingError) as exc:
        logger.error("{}", exc)
        return 2
    logger.info("done in {:.0f} s", time.monotonic() - t0)
    return 0
