"""The held-out figures as pictures: what `train`/`eval --plots` write and the review page shows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facesortd import cli
from facesortd.learn.metrics import Evaluation, expected_calibration_error, reliability
from facesortd.plots import BLUE, CONFUSION_PNG, RELIABILITY_PNG, confusion_image, write_plots

LABELS = ["angry", "happy", "sad"]


def _evaluation() -> Evaluation:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 300)
    conf = rng.uniform(0.3, 1.0, 300)
    pred = np.where(rng.uniform(size=300) < conf, truth, (truth + 1) % 3)
    return Evaluation.of(LABELS, truth, pred, conf, 0.7)


def test_reliability_bins_are_kept_in_the_summary_and_give_the_ece() -> None:
    correct = np.array([1, 0, 1, 1, 0, 1], dtype=float)
    conf = np.array([0.95, 0.91, 0.55, 0.52, 0.15, 0.12])
    bins = reliability(correct, conf)
    assert [n for _c, _a, n in bins] == [2, 2, 2]
    assert bins[-1][:2] == pytest.approx((0.93, 0.5))
    ece = sum(n * abs(c - a) for c, a, n in bins) / 6
    assert expected_calibration_error(correct, conf) == ece
    summary = _evaluation().summary()
    assert sum(n for _c, _a, n in summary["reliability"]) == 300


def test_write_plots_draws_the_confusion_matrix_and_reliability_curve(tmp_path: Path) -> None:
    written = write_plots(_evaluation().summary(), tmp_path / "plots")
    assert sorted(p.name for p in written) == sorted([CONFUSION_PNG, RELIABILITY_PNG])
    for path in written:
        image = cv2.imread(str(path))
        assert image is not None and image.shape[0] > 200
        assert (image < 250).mean() > 0.02  # something is drawn on the white canvas


def test_a_confusion_cell_is_shaded_by_its_share_of_the_row() -> None:
    """A rare emotion's mistakes show as clearly as a common one's: shade by row share, not count."""
    image = confusion_image(["a", "b"], np.array([[90, 0], [1, 1]]), cell=56)
    left, top = 110, 70  # where confusion_image puts the first cell

    def corner(i: int, j: int) -> tuple[int, ...]:
        return tuple(int(v) for v in image[top + i * 56 + 3, left + j * 56 + 3])

    assert corner(0, 0) == BLUE and corner(0, 1) == (255, 255, 255)
    half = tuple(round(255 - 0.5 * (255 - c)) for c in BLUE)
    assert corner(1, 0) == corner(1, 1)  # each is half of its row
    assert all(abs(a - b) <= 1 for a, b in zip(corner(1, 0), half, strict=True))


def test_a_model_without_reliability_bins_still_gets_its_confusion_matrix(tmp_path: Path) -> None:
    summary = _evaluation().summary()
    del summary["reliability"]  # models trained before the bins were recorded
    assert [p.name for p in write_plots(summary, tmp_path)] == [CONFUSION_PNG]


def test_train_and_eval_write_plots_with_plots_dir(
    crop_dataset: Path, fake_detector: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [str(crop_dataset), "--kind", "crops"]
    assert (
        cli.main(["train", *args, "--descriptor", "hog", "--folds", "3", "--plots", str(tmp_path / "train")])
        == 0
    )
    assert cli.main(["eval", *args, "--json", "--plots", str(tmp_path / "eval")]) == 0
    assert capsys.readouterr().out.strip().endswith("}")  # --json output stays JSON
    for folder in ("train", "eval"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == [CONFUSION_PNG, RELIABILITY_PNG]
