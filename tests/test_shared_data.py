"""The pipeline on real screenshots from ../shared (skipped cleanly where it is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facesortd import cli
from facesortd.config import ImageLimits
from facesortd.images import read_image
from facesortd.learn.datasets import load_faces_json, load_items

pytestmark = pytest.mark.shared


def test_seed_ground_truth_is_readable(shared_dir: Path) -> None:
    truth = load_faces_json(shared_dir / "data/seed/faces.json")
    assert len(truth) == 75 and sum(len(v) for v in truth.values()) == 87
    for name, faces in truth.items():
        image = read_image(shared_dir / "data/seed/screenshots" / name, ImageLimits())
        for face in faces:
            x, y, w, h = face.box
            assert x >= 0 and y >= 0 and x + w <= image.shape[1] + 2 and y + h <= image.shape[0] + 2, name
    labelled = load_items(shared_dir / "data/seed/faces.json")
    assert len(labelled) == 51 and all(item.path.is_file() for item in labelled)


def test_train_and_eval_on_the_seed_crops(
    shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crops = shared_dir / "data/seed/face_crops"
    model = tmp_path / "seed.fsm.npz"
    assert cli.main(["train", str(crops), "--no-detect", "--folds", "3", "--out", str(model)]) == 0
    out = capsys.readouterr().out
    assert "happy        28" in out and "balanced accuracy" in out and model.is_file()
    assert cli.main(["eval", str(crops), "--no-detect", "--model", str(model), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert figures["n"] == 70 and len(figures["labels"]) == 7
