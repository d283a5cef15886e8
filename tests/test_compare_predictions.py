"""The bench tools that measure (box matching) and decide between emotion configurations (paired
comparison, ensemble) must count, test and combine right."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import compare_predictions
import ensemble_predictions
import prediction_runs
from detect_scoring import misses_and_false
from shared_data import match_boxes


def test_sign_test_matches_the_binomial() -> None:
    assert compare_predictions.sign_test(0, 0) == 1.0
    assert compare_predictions.sign_test(0, 6) == pytest.approx(2 / 64)
    assert compare_predictions.sign_test(3, 3) == 1.0
    assert compare_predictions.sign_test(1, 9) == pytest.approx(2 * 11 / 1024)
    assert 0.0 < compare_predictions.sign_test(600, 700) < 0.01  # thousands of faces: no float overflow


def _run(path: Path, right: list[bool], sources: list[str], sure: float = 0.9) -> Path:
    truth = np.zeros(len(right), np.int64)
    proba = np.array([[sure, 1 - sure] if r else [1 - sure, sure] for r in right])
    np.savez(path, names=np.array(["happy", "sad"]), truth=truth, proba=proba, sources=np.array(sources))
    return path


def test_counts_per_source_and_refuses_different_faces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = ["seed"] * 4 + ["anime"] * 2
    a = _run(tmp_path / "a.npz", [True, True, False, False, True, True], sources)
    b = _run(tmp_path / "b.npz", [True, False, True, True, True, False], sources)
    monkeypatch.setattr(sys, "argv", ["compare", str(a), str(b)])
    assert compare_predictions.main() == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["seed"][:5] == ["4", "2", "3", "1", "2"]
    assert rows["anime"][:5] == ["2", "2", "1", "1", "0"]
    assert rows["all"][:5] == ["6", "4", "4", "2", "2"]
    other = _run(tmp_path / "c.npz", [True] * 5, sources[:5])
    monkeypatch.setattr(sys, "argv", ["compare", str(a), str(other)])
    assert compare_predictions.main() == 2


def test_ensemble_lets_the_surer_member_decide_and_saves_a_pairable_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sources = ["seed"] * 4 + ["anime_expressions"] * 4
    # Each member is wrong on faces the other gets right, and less sure when wrong.
    a = _run(tmp_path / "a.npz", [True] * 4 + [False] * 4, sources, sure=0.95)
    b = _run(tmp_path / "b.npz", [False] * 4 + [True] * 4, sources, sure=0.6)
    monkeypatch.setattr(sys, "argv", ["ensemble", str(a), str(b), "--out", str(tmp_path / "out")])
    assert ensemble_predictions.main() == 0
    run = prediction_runs.Run.load(tmp_path / "out" / "predictions_ensemble.npz")
    assert run.same_faces(prediction_runs.Run.load(a))
    assert run.right().tolist() == [True] * 4 + [False] * 4  # the surer member (a) wins every face
    assert "temperature" in capsys.readouterr().out
    monkeypatch.setattr(sys, "argv", ["ensemble", str(a), str(b), "--weight", "0.1", "--out", str(tmp_path)])
    assert ensemble_predictions.main() == 0
    run = prediction_runs.Run.load(tmp_path / "predictions_ensemble.npz")
    assert run.right().tolist() == [False] * 4 + [True] * 4  # weight 0.1 on a: b decides


def test_ensemble_of_a_run_with_itself_keeps_its_answers_despite_zero_probabilities(tmp_path: Path) -> None:
    path = _run(tmp_path / "a.npz", [True, False, True], ["seed"] * 3, sure=1.0)  # probabilities 0 and 1
    run = prediction_runs.Run.load(path)
    predictions, temperature = ensemble_predictions.combine_runs([run, run], [0.5, 0.5])
    assert np.isfinite(predictions.proba).all() and temperature > 0
    assert (predictions.proba.argmax(axis=1) == run.proba.argmax(axis=1)).all()


def test_ensemble_refuses_runs_over_different_faces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _run(tmp_path / "a.npz", [True] * 3, ["seed"] * 3)
    b = _run(tmp_path / "b.npz", [True] * 2, ["seed"] * 2)
    monkeypatch.setattr(sys, "argv", ["ensemble", str(a), str(b), "--out", str(tmp_path)])
    assert ensemble_predictions.main() == 2


def test_box_matching_is_one_to_one() -> None:
    truth = [(0, 0, 100, 100), (200, 0, 100, 100)]
    assert match_boxes([(5, 5, 100, 100), (0, 0, 95, 95)], truth, 0.4) == 1
    assert match_boxes([(5, 5, 100, 100), (205, 0, 100, 100), (600, 0, 10, 10)], truth, 0.4) == 2


def test_misses_and_false_faces_are_the_boxes_matched_by_none_on_the_other_side() -> None:
    truth = [(0, 0, 100, 100), (200, 0, 100, 100)]
    found = [(5, 5, 100, 100), (260, 0, 100, 100), (600, 0, 10, 10)]  # a hit, a near miss, a stray box
    assert misses_and_false(found, truth) == ([(200, 0, 100, 100)], [(260, 0, 100, 100), (600, 0, 10, 10)])
