"""Learning from review: kept faces, and retrains that add classes and never make things worse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import draw_face

from facesortd import learn, model_store
from facesortd.config import Settings, load_settings
from facesortd.emotion import EmotionModel
from facesortd.faces import FaceSpec, normalise_face

SPEC = FaceSpec(size=48)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(state_dir=tmp_path / "state")


def _bootstrap(settings: Settings, classes: list[str], n: int, seed: int) -> EmotionModel:
    rng = np.random.default_rng(seed)
    faces = [normalise_face(draw_face(e, 90, rng), (0, 0, 90, 90), SPEC) for e in classes for _ in range(n)]
    model = EmotionModel.fit(np.stack(faces), [e for e in classes for _ in range(n)], SPEC, "hog")
    path = model.save(model_store.models_dir(settings) / "20260101-000000.fsm.npz")
    model_store.adopt(settings, path)
    return model


def _labels(
    settings: Settings, emotions: list[str], n: int, seed: int, wrong: bool = False
) -> list[learn.UserLabel]:
    rng = np.random.default_rng(seed)
    out = []
    for e in emotions:
        for k in range(n):
            img = np.full((300, 300), 50, np.uint8)
            img[80:200, 90:210] = draw_face(e, 120, rng)
            path = learn.keep_face(settings, f"{e}{seed}{k}", img, (90, 80, 120, 120))
            out.append(learn.UserLabel(path, e, group=f"shot{k % 4}"))
    return out


def test_kept_face_normalises_like_the_original(settings: Settings) -> None:
    img = np.full((300, 300), 50, np.uint8)
    img[80:200, 90:210] = draw_face("sad", 120, np.random.default_rng(0))
    path = learn.keep_face(settings, "abc", img, (90, 80, 120, 120))
    assert path == settings.state_dir / "faces" / "abc.png"
    direct = normalise_face(img, (90, 80, 120, 120), SPEC)
    assert np.abs(learn.kept_face(path, SPEC) - direct).mean() < 0.05


def test_retrain_adds_a_new_emotion_and_is_adopted(settings: Settings) -> None:
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=1)
    labels = _labels(settings, ["angry", "happy", "sad", "surprised"], 6, seed=2)
    result = learn.retrain(settings, labels, current)
    assert result.adopted and result.path is not None and result.waiting == {}
    assert result.candidate_score > result.current_score
    new = model_store.load_model_in_force(settings)
    assert "surprised" in new.labels and new.info["user_labels"] == 24 and new.info["adopted"] is True


def test_a_class_below_the_minimum_waits(settings: Settings) -> None:
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=3)
    labels = _labels(settings, ["angry", "happy"], 4, seed=4) + _labels(settings, ["surprised"], 3, seed=5)
    result = learn.retrain(settings, labels, current)
    assert result.waiting == {"surprised": 2} and "surprised" not in result.used


def test_a_worse_model_is_not_adopted(tmp_path: Path) -> None:
    """A poor bootstrap plus lightly weighted labels loses to the good model in force: keep the latter."""
    settings = load_settings(state_dir=tmp_path / "state", learning={"user_weight": 0.001})
    emotions = ["angry", "happy", "sad", "surprised"]
    rng = np.random.default_rng(6)
    faces = np.stack(
        [normalise_face(draw_face(e, 90, rng), (0, 0, 90, 90), SPEC) for e in emotions for _ in range(15)]
    )
    truth = [e for e in emotions for _ in range(15)]
    shuffled = list(np.random.default_rng(0).permutation(truth))
    EmotionModel.fit(faces, shuffled, SPEC, "hog").save(
        model_store.models_dir(settings) / "20260101-000000.fsm.npz"
    )
    good = EmotionModel.fit(faces, truth, SPEC, "hog")
    good.info["user_labels"] = 60
    model_store.adopt(settings, good.save(model_store.models_dir(settings) / "20260101-000001.fsm.npz"))
    in_force = model_store.model_in_force(settings)
    result = learn.retrain(settings, _labels(settings, emotions, 6, seed=7), good)
    assert not result.adopted and result.candidate_score < result.current_score
    assert result.path is not None and result.path.parent.name == "rejected"
    assert model_store.model_in_force(settings) == in_force


def test_too_few_labels_to_validate_does_nothing(settings: Settings) -> None:
    current = _bootstrap(settings, ["angry", "happy"], 5, seed=8)
    labels = [lbl for lbl in _labels(settings, ["happy"], 4, seed=9) if lbl.group == "shot0"]
    result = learn.retrain(settings, labels, current)
    assert result.path is None and not result.adopted and "not enough" in result.reason
