"""The paired comparison that decides between two emotion configurations must count and test right."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import compare_predictions


def test_sign_test_matches_the_binomial() -> None:
    assert compare_predictions.sign_test(0, 0) == 1.0
    assert compare_predictions.sign_test(0, 6) == pytest.approx(2 / 64)
    assert compare_predictions.sign_test(3, 3) == 1.0
    assert compare_predictions.sign_test(1, 9) == pytest.approx(2 * 11 / 1024)
    assert 0.0 < compare_predictions.sign_test(600, 700) < 0.01  # thousands of faces: no float overflow


def _run(path: Path, right: list[bool], sources: list[str]) -> Path:
    truth = np.zeros(len(right), np.int64)
    proba = np.array([[0.9, 0.1] if r else [0.1, 0.9] for r in right])
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
