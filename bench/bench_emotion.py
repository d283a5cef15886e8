"""Emotion accuracy out of source: every face is predicted by a model that never saw its source.

Faces come from ../shared: vn_faces (29 artists' repositories, sprites over their games'
backgrounds), anime_expressions (one illustration set; fear->scared, surprise->surprised,
disgust dropped) and the emotions of the seed screenshots (faces.json), all framed by facesortd's
detector as at run time. Validation never splits an independent unit: a vn_faces repository, a seed
character, and anime_expressions as a whole (it has no inner structure to split by). Figures per
source: balanced accuracy, accuracy at 60 % coverage, coverage at 90 % right, the threshold that
reaches it, and the share right per confidence band; confusion matrices and coverage curves as PNGs.

The ``cnn`` descriptor trains a feature net (PyTorch, the ``train`` extra) on each fold's training
part: the shipped net has seen every face, so scoring it here would flatter it.

    python bench/bench_emotion.py [--descriptor hog+lbp --descriptor cnn [--ensemble]]
                                  [--source-balance P] [--cache DIR] [--out DIR]
                                  [--colour] [--net-input N] [--net-weight SOURCE=F] [--net-head]
                                  [--mirror]

``--net-head`` also scores each fold's net by its own softmax layer (PyTorch), beside the
Fisherface head on its features: what the head keeps of what the net knows.
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import sys
import time
from pathlib import Path

from emotion_report import print_header, report
from shared_data import (
    SHARED,
    add_cascade_option,
    add_mirror_option,
    bootstrap_faces,
    require_shared,
    seed_faces,
    vn_faces,
)

from facesortd.config import Settings
from facesortd.descriptors import DESCRIPTORS, LEARNT, describe
from facesortd.detect import FaceDetector
from facesortd.ensemble import EnsembleModel
from facesortd.faces import FaceSpec
from facesortd.feature_net import INPUT_SIZE
from facesortd.learn.backdrops import Backdrops
from facesortd.learn.datasets import vn_backgrounds
from facesortd.learn.feature_net_training import NetSettings
from facesortd.learn.figures import draw_curves, save_predictions
from facesortd.learn.loop_settings import LoopSettings
from facesortd.learn.metrics import Evaluation
from facesortd.learn.training import (
    SOURCE_BALANCE,
    FaceSet,
    FitFn,
    Undetected,
    cross_validate,
    described_mirrors,
    emotion_fitter,
    source_weights,
)


def load_faces(detector: FaceDetector, spec: FaceSpec, undetected: Undetected, cache: Path | None) -> FaceSet:
    """The three sources, read once per framing and kept in ``cache`` (reading takes minutes)."""
    readers = {
        "vn_faces": lambda: vn_faces(detector, spec),
        "anime_expressions": lambda: bootstrap_faces(detector, spec, undetected),
        "seed": lambda: seed_faces(detector, spec),
    }
    parts = []
    for name, read in readers.items():
        colour = "-colour" if spec.colour else ""
        path = cache / f"{name}-{spec.size}-{spec.margin}{colour}-{undetected}.npz" if cache else None
        if path is not None and path.exists():
            parts.append(FaceSet.load(path))
            continue
        part = read()
        for (label, reason), n in sorted(part.skipped.items()):
            print(f"  {name}: skipped {n} {label} ({reason})")
        if path is not None:
            part.save(path)
        parts.append(part)
    return FaceSet.concat(parts)


def with_net_head(spec: FaceSpec, pca: int, net_settings: NetSettings, balance: float) -> FitFn:
    """Per fold one net, scored two ways: the Fisherface head on its features (what ships) and its
    own softmax layer (a reference), as the two members of an ensemble so each gets its figures."""
    from net_head import SoftmaxHead  # PyTorch: only for this reference

    from facesortd.emotion import EmotionModel
    from facesortd.learn.feature_net_training import train_emotion_net
    from facesortd.learn.torch_training import export_feature_net

    def fit(part: FaceSet) -> EnsembleModel:
        net, info = train_emotion_net(part, net_settings)
        weights = source_weights(part.sources, balance)
        fisher = EmotionModel.fit(
            part.faces, part.labels, spec, LEARNT, pca, weights=weights, net=export_feature_net(net, info)
        )
        return EnsembleModel([fisher, SoftmaxHead(net, info["classes"], spec)], [1.0, 1.0])

    return fit


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cascade_option(parser)
    parser.add_argument(
        "--descriptor", action="append", choices=list(DESCRIPTORS), help="default: hog+lbp and cnn"
    )
    parser.add_argument(
        "--ensemble", action="store_true", help="fit the descriptors given as one averaged ensemble"
    )
    parser.add_argument("--source-balance", type=float, default=SOURCE_BALANCE, help="see train --help")
    parser.add_argument("--cache", type=Path, help="folder to keep the read faces in between runs")
    parser.add_argument("--face-size", type=int, default=FaceSpec().size)
    parser.add_argument(
        "--margin", type=float, default=FaceSpec().margin, help="box widening per side (default %(default)s)"
    )
    parser.add_argument("--pca", type=int, default=150)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--target", type=float, default=0.9, help="accuracy the auto-sorted files should reach (default 0.9)"
    )
    parser.add_argument(
        "--undetected", choices=["drop", "whole", "typical"], default="typical", help="see train --help"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=LoopSettings().epochs,
        help="feature-net epochs (default %(default)s)",
    )
    parser.add_argument("--colour", action="store_true", help="colour faces (grey + chroma) for the net")
    parser.add_argument("--net-input", type=int, default=INPUT_SIZE, help="side the net sees (default 48)")
    parser.add_argument(
        "--net-weight",
        action="append",
        default=[],
        metavar="SOURCE=F",
        help="draw SOURCE's faces F times as often while training the net (e.g. anime_expressions=0.3)",
    )
    add_mirror_option(parser)
    parser.add_argument(
        "--net-head",
        action="store_true",
        help="also score the net's own softmax layer (with --descriptor cnn)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/out"),
        help="folder for the PNGs and each descriptor's out-of-fold predictions "
        "(predictions_<descriptor>.npz, for bench/compare_predictions.py)",
    )
    args = parser.parse_args()
    if not require_shared():
        return 1
    settings = Settings()
    detector = FaceDetector(settings.detection, args.cascade)
    spec = FaceSpec(size=args.face_size, margin=args.margin, colour=args.colour)
    print(f"cascade(s): {', '.join(map(str, detector.paths))}; face size {spec.size}, margin {spec.margin}")
    t0 = time.perf_counter()
    data = load_faces(detector, spec, args.undetected, args.cache)
    print(f"faces: {len(data.labels)} in {time.perf_counter() - t0:.0f} s; per label {data.counts()}")
    args.out.mkdir(parents=True, exist_ok=True)
    curves: dict[str, Evaluation] = {}
    print_header(args.target)
    descriptors = args.descriptor or ["hog+lbp", LEARNT]
    configs = [descriptors] if args.ensemble else [[d] for d in descriptors]
    net_settings = NetSettings(
        input_size=args.net_input,
        source_weights=tuple((k, float(v)) for k, v in (w.split("=") for w in args.net_weight)),
        loop=LoopSettings(epochs=args.epochs),
        backdrops=Backdrops(vn_backgrounds(SHARED / "vn_faces")),
    )
    data.features = {d: describe(data.faces, d) for d in descriptors if d != LEARNT}
    if args.mirror:
        data.features |= described_mirrors(data.faces, descriptors)
    for config in configs:
        name = "+".join(config).replace("hog+lbp", "hoglbp")
        t1 = time.perf_counter()
        fit = (
            with_net_head(spec, args.pca, net_settings, args.source_balance)
            if args.net_head and config == [LEARNT]
            else emotion_fitter(spec, config, args.pca, net_settings, args.source_balance, args.mirror)
        )
        predictions, calibration = cross_validate(data, fit, args.folds)
        seconds = time.perf_counter() - t1
        save_predictions(args.out / f"predictions_{name}.npz", predictions, data.sources)
        threshold = settings.recognition.threshold
        curves.update(report(name, predictions, data.sources, threshold, args.target, args.out))
        for member, alone in predictions.members.items():
            report(f"{member} alone", alone, data.sources, threshold, args.target, args.out)
        print(
            f"{name:<10} ({args.folds}-fold out-of-source cross-validation took {seconds:.0f} s; "
            f"out-of-fold temperature {calibration.temperature:.2f})"
        )
    draw_curves(curves, args.out / "coverage_curves.png")
    print(f"\nPNGs written to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
