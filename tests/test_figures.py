"""`train --report`: the out-of-source figures as files a person can look at."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facesortd import cli
from facesortd.learn.metrics import Evaluation


def test_train_report_writes_confusion_and_coverage_pngs_and_the_predictions(
    crop_dataset: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report"
    args = [
        "train",
        str(crop_dataset),
        "--no-detect",
        "--descriptor",
        "hog",
        "--folds",
        "3",
        "--validation-share",
        "0",
    ]
    assert cli.main([*args, "--out", str(tmp_path / "m.fsm.npz"), "--report", str(report)]) == 0
    for png in ("confusion_crops.png", "confusion_all.png", "coverage_curves.png"):
        image = cv2.imread(str(report / png))
        assert image is not None and image.std() > 0  # drawn, not blank
    with np.load(report / "predictions.npz") as saved:
        assert saved["proba"].shape == (120, 4) and set(saved["sources"]) == {"crops"}


def test_coverage_at_an_accuracy_is_the_largest_share_that_stays_that_right() -> None:
    truth = np.array([0, 0, 0, 0, 1])
    pred = np.array([0, 0, 0, 1, 0])
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    ev = Evaluation.of(["a", "b"], truth, pred, conf, 0.65)
    assert ev.coverage_at(0.9) == (0.6, 0.7) and ev.coverage_at(1.01) == (0.0, 1.0)
    assert [(n, acc) for _, acc, n in ev.reliability] == [(2, 0.0), (1, 1.0), (1, 1.0), (1, 1.0)]
    assert ev.reliability_text().startswith("~0.55: 0% of 2")
