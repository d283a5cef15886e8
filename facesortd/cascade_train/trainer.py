"""The cascade training loop: stage after stage, positives that still pass, fresh hard negatives.

After every stage the cascade is written (so an interrupted run leaves a usable cascade) and the
next stage's negatives are mined by OpenCV running exactly that file.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loguru import logger

from facesortd.cascade_train.boost import train_stage
from facesortd.cascade_train.cascade import Cascade
from facesortd.cascade_train.lbp import all_rects, integral_images, lbp_codes
from facesortd.cascade_train.mining import mine_hard_negatives, random_windows
from facesortd.cascade_train.samples import BoxedImage
from facesortd.cascade_train.xml_writer import write_cascade


@dataclass(frozen=True)
class TrainParams:
    """Cascade shape and stopping rules (the knobs of opencv_traincascade that matter here).

    The defaults trained the shipped cascade (cascade_classifier/README.md).
    """

    window: tuple[int, int] = (24, 24)
    stages: int = 25
    min_hit_rate: float = 0.997
    max_false_alarm: float = 0.5
    max_trees: int = 100
    num_pos: int = 8000
    num_neg: int = 4000
    mining_scale_factor: float = 1.1
    seed: int = 0


class TrainingError(ValueError):
    """Training cannot start or go on with the data given; the message says what is missing."""


def train_cascade(
    positives: np.ndarray,
    negative_images: Sequence[BoxedImage],
    params: TrainParams,
    out: Path,
    comment: str = "",
) -> Cascade:
    """Train and write the cascade to ``out`` (rewritten after each stage); returns it.

    Stops early, keeping the stages so far, when the negative images no longer yield enough windows
    that the cascade accepts: the cascade is then as selective as the data can show.
    """
    if len(positives) < 10:
        raise TrainingError(f"only {len(positives)} positive samples; at least 10 are needed")
    if not negative_images:
        raise TrainingError("no negative images to mine non-face windows from")
    rng = np.random.default_rng(params.seed)
    cascade = Cascade(params.window, all_rects(params.window))
    xml_params = {
        "minHitRate": params.min_hit_rate,
        "maxFalseAlarm": params.max_false_alarm,
        "maxWeakCount": params.max_trees,
    }
    ii_pos = integral_images(positives)
    t_start = time.monotonic()
    for stage_no in range(params.stages):
        t0 = time.monotonic()
        alive = np.flatnonzero(cascade.accepts_integral(ii_pos))
        pos_idx = np.sort(rng.permutation(alive)[: params.num_pos])
        if stage_no == 0:
            neg = random_windows(negative_images, params.num_neg, params.window, rng)
            far = 1.0
        else:
            mined = mine_hard_negatives(
                cascade, out, negative_images, params.num_neg, rng, params.mining_scale_factor
            )
            neg, far = mined.windows, mined.accepted / max(1, mined.scanned)
            logger.info("the trainer confirms {} of {} windows OpenCV accepted", len(neg), mined.offered)
        if len(neg) < max(10, params.num_neg // 20):
            logger.info(
                "stage {}: only {} negative windows pass the cascade; stopping with {} stages",
                stage_no,
                len(neg),
                stage_no,
            )
            break
        pos_codes = lbp_codes(ii_pos[pos_idx], cascade.rects)
        neg_codes = lbp_codes(integral_images(neg), cascade.rects)
        stage, report = train_stage(
            pos_codes, neg_codes, params.min_hit_rate, params.max_false_alarm, params.max_trees
        )
        cascade.stages.append(stage)
        write_cascade(cascade, out, xml_params, comment)
        logger.info(
            "stage {:2d}: {:3d} trees | stage hit {:.4f} FA {:.3f} | cascade keeps {:.4f} of positives, "
            "FA on negative images {:.2e} | {} positives, {} negatives mined | {:.0f} s (total {:.0f} s)",
            stage_no,
            report.trees,
            report.hit_rate,
            report.false_alarm,
            len(alive) / len(positives),
            far,
            len(pos_idx),
            len(neg),
            time.monotonic() - t0,
            time.monotonic() - t_start,
        )
    if not cascade.stages:
        raise TrainingError("no stage could be trained (the negative images gave no windows)")
    return cascade
