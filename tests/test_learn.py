"""Learning from review: kept faces, and retrains that add classes and never make things worse."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import BrightBlobDetector, draw_face, draw_screenshot, normalised_face

from facesortd import model_store, status
from facesortd.config import Settings, load_settings
from facesortd.emotion import EmotionModel
from facesortd.faces import FaceSpec
from facesortd.learn import kept_faces, retrain
from facesortd.learn.metrics import Evaluation
from facesortd.learn.training import FaceSet
from facesortd.models_folder import REJECTED_KEPT

SPEC = FaceSpec(size=48)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(state_dir=tmp_path / "state")


def _bootstrap(settings: Settings, classes: list[str], n: int, seed: int) -> EmotionModel:
    rng = np.random.default_rng(seed)
    faces = [normalised_face(e, SPEC, rng) for e in classes for _ in range(n)]
    model = EmotionModel.fit(np.stack(faces), [e for e in classes for _ in range(n)], SPEC, "hog")
    path = model.save(model_store.models_dir(settings) / "20260101-000000.fsm.npz")
    model_store.adopt(settings, path)
    return model


def _labels(settings: Settings, emotions: list[str], n: int, seed: int) -> list[retrain.UserLabel]:
    rng = np.random.default_rng(seed)
    out = []
    for e in emotions:
        for k in range(n):
            img = np.full((300, 300), 50, np.uint8)
            img[80:200, 90:210] = draw_face(e, 120, rng)
            path = kept_faces.keep_face(settings, f"{e}{seed}{k}", img, (90, 80, 120, 120))
            out.append(retrain.UserLabel(path, e, group=f"shot{k % 4}"))
    return out


def test_retrain_adds_a_new_emotion_and_is_adopted(settings: Settings) -> None:
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=1)
    labels = _labels(settings, ["angry", "happy", "sad", "surprised"], 6, seed=2)
    result = retrain.retrain(settings, labels, current)
    assert result.adopted and result.path is not None and result.waiting == {}
    [mine] = result.comparisons  # no bootstrap validation set: only the user's labels judge
    assert mine.candidate > mine.current
    new = model_store.load_model_in_force(settings)
    assert "surprised" in new.labels and new.info["user_labels"] == 24 and new.info["adopted"] is True


def test_retrain_shows_progress_while_it_reads_files_placed_lately(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retrain re-reads up to 100 recently placed files (about 0.1 s each) in silence; now it shows
    how far it is, as other long work does (a log line here, where stderr is no terminal)."""
    from loguru import logger

    monkeypatch.setattr(retrain, "FaceDetector", BrightBlobDetector)
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=1)
    placed = []
    for k, emotion in enumerate(["angry", "happy", "sad"]):
        placed.append(tmp_path / f"placed{k}.png")
        cv2.imwrite(str(placed[-1]), draw_screenshot(emotion, np.random.default_rng(k))[0])
    placed.append(tmp_path / "gone.png")  # moved away since: counted, not read
    shown: list[str] = []
    sink = logger.add(shown.append, level="INFO", format="{message}")
    try:
        result = retrain.retrain(
            settings, _labels(settings, ["angry", "happy", "sad"], 4, seed=2), current, placed
        )
    finally:
        logger.remove(sink)
    assert any(line.startswith("reading the files placed lately 4/4 (100%)") for line in shown), shown
    assert "files placed lately that nobody labelled (3 faces)" in result.describe()


def test_a_class_below_the_minimum_waits(settings: Settings) -> None:
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=3)
    labels = _labels(settings, ["angry", "happy"], 4, seed=4) + _labels(settings, ["surprised"], 3, seed=5)
    result = retrain.retrain(settings, labels, current)
    assert result.waiting == {"surprised": 2} and "surprised" not in result.used


def test_a_worse_model_is_not_adopted(tmp_path: Path) -> None:
    """A poor bootstrap plus lightly weighted labels loses to the good model in force: keep the latter."""
    settings = load_settings(state_dir=tmp_path / "state", learning={"user_weight": 0.001})
    emotions = ["angry", "happy", "sad", "surprised"]
    rng = np.random.default_rng(6)
    faces = np.stack([normalised_face(e, SPEC, rng) for e in emotions for _ in range(15)])
    truth = [e for e in emotions for _ in range(15)]
    shuffled = list(np.random.default_rng(0).permutation(truth))
    EmotionModel.fit(faces, shuffled, SPEC, "hog").save(
        model_store.models_dir(settings) / "20260101-000000.fsm.npz"
    )
    good = EmotionModel.fit(faces, truth, SPEC, "hog")
    good.info["user_labels"] = 60
    model_store.adopt(settings, good.save(model_store.models_dir(settings) / "20260101-000001.fsm.npz"))
    in_force = model_store.model_in_force(settings)
    rejected = model_store.rejected_dir(settings)
    rejected.mkdir()
    older = [rejected / f"2025010{n}-000000.fsm.npz" for n in range(REJECTED_KEPT)]
    for path in older:
        path.write_bytes(b"an older rejected retrain")
    result = retrain.retrain(settings, _labels(settings, emotions, 6, seed=7), good)
    assert not result.adopted and result.comparisons[0].candidate < result.comparisons[0].current
    assert result.path is not None and result.path.parent.name == "rejected"
    assert model_store.model_in_force(settings) == in_force
    # Kept for inspection, but not without end: the oldest rejected model made room for this one.
    assert sorted(rejected.iterdir()) == [*older[1:], result.path]


def test_a_model_in_force_that_frames_faces_otherwise_is_judged_on_its_own_framing(
    settings: Settings,
) -> None:
    """After an upgrade changes the framing, the old model in force must still be scored fairly."""
    emotions = ["angry", "happy", "sad"]
    _bootstrap(settings, emotions, 10, seed=21)
    other = FaceSpec(size=40, margin=0.3)
    seen = _labels(settings, emotions, 10, seed=22)
    faces = np.stack([kept_faces.kept_face(lbl.face, other) for lbl in seen])
    current = EmotionModel.fit(faces, [lbl.label for lbl in seen], other, "pixels")
    result = retrain.retrain(settings, _labels(settings, emotions, 6, seed=23), current)
    assert result.comparisons[0].current is not None and result.comparisons[0].current > 0.9


def test_too_few_labels_to_validate_does_nothing(settings: Settings) -> None:
    current = _bootstrap(settings, ["angry", "happy"], 5, seed=8)
    labels = [lbl for lbl in _labels(settings, ["happy"], 4, seed=9) if lbl.group == "shot0"]
    result = retrain.retrain(settings, labels, current)
    assert result.path is None and not result.adopted and "not enough" in result.reason
    assert "at least two screenshots; label more (`facesortd review`" in result.reason  # what to do


def test_labels_of_files_a_screenshot_tool_named_are_retrained_on(settings: Settings) -> None:
    """mpv names every shot mpv-shotNNNN.png, so all of a person's labels fell into one group and
    no retrain could hold any out: 22 labels in the walk, "not enough labels", for ever."""
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=1)
    labels = [
        retrain.UserLabel(lbl.face, lbl.label, group="mpv-shot")
        for lbl in _labels(settings, ["angry", "happy", "sad"], 6, seed=2)
    ]
    result = retrain.retrain(settings, labels, current)
    assert result.path is not None, result.reason
    # Names that do name a source are still never split across folds.
    named = _labels(settings, ["angry", "happy"], 4, seed=3)
    assert retrain.validation_groups(named) == [lbl.group for lbl in named]
    assert len(set(retrain.validation_groups(labels))) == len(labels)


def _validation_set(settings: Settings, emotions: list[str], n: int, seed: int) -> None:
    """Faces held out from the bootstrap model, saved where `facesortd train` puts them."""
    rng = np.random.default_rng(seed)
    faces = np.stack([normalised_face(e, SPEC, rng) for e in emotions for _ in range(n)])
    labels = [e for e in emotions for _ in range(n)]
    held = FaceSet(
        faces, labels, [f"v{i}" for i in range(len(labels))], [Path("-")] * len(labels), ["v"] * len(labels)
    )
    held.save(model_store.validation_path(model_store.models_dir(settings) / "20260101-000000.fsm.npz"))


def test_labels_that_contradict_the_bootstrap_are_caught_by_its_validation_set(tmp_path: Path) -> None:
    """A person who calls every sad face happy makes a model that agrees with them on their own
    held-out labels; the bootstrap validation set shows what it forgot, so it is not adopted."""
    settings = load_settings(state_dir=tmp_path / "state", learning={"user_weight": 50.0})
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=11)
    _validation_set(settings, ["angry", "happy", "sad"], 8, seed=12)
    swapped = {"happy": "sad", "sad": "happy", "angry": "angry"}
    labels = [
        retrain.UserLabel(lbl.face, swapped[lbl.label], lbl.group)
        for lbl in _labels(settings, ["angry", "happy", "sad"], 8, seed=13)
    ]
    result = retrain.retrain(settings, labels, current)
    mine, boot = result.comparisons
    assert mine.passed and mine.candidate > mine.current
    assert not boot.passed and boot.candidate < boot.current - settings.learning.bootstrap_max_drop
    assert not result.adopted and "bootstrap validation set" in result.describe()
    assert model_store.model_in_force(settings).name == "20260101-000000.fsm.npz"


def test_helpful_labels_pass_both_held_out_sets(settings: Settings) -> None:
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=14)
    _validation_set(settings, ["angry", "happy", "sad"], 8, seed=15)
    result = retrain.retrain(
        settings, _labels(settings, ["angry", "happy", "sad", "surprised"], 6, seed=16), current
    )
    assert [c.held_out for c in result.comparisons] == [
        "your labels the model in force has not learnt, each scored by a new model trained without it",
        "the bootstrap validation set",
    ]
    assert result.adopted and all(c.passed for c in result.comparisons)
    info = model_store.load_model_in_force(settings).info
    assert info["bootstrap_validation"]["n"] == 24 and "adopted" in info["decision"]
    text = status.report(settings)  # what the person sees: the model, its figures, the last decision
    assert "held out: balanced accuracy" in text and "last retrain" in text
    assert "on the bootstrap validation set (24 faces): new" in text


def test_sorted_right_scores_what_lands_in_the_right_folder() -> None:
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    ev = Evaluation.of(["a", "b"], truth, pred, np.array([0.9, 0.9, 0.3, 0.9]), threshold=0.5)
    assert ev.score("sorted_right") == pytest.approx(2 / 4)  # 3 sorted, 2 of them right
    assert ev.score("balanced_accuracy") == pytest.approx(0.75)
    none = Evaluation.of(["a", "b"], truth, pred, np.full(4, 0.1), threshold=0.5)
    assert none.score("sorted_right") == 0.0


def test_the_share_right_check_needs_evidence_to_refuse() -> None:
    """A model whose auto-sorted faces are right less often than asked is refused only when enough
    of them show it: 5 sorted with 3 right could be luck, 40 with 20 right is not."""
    truth = np.zeros(40, np.int64)

    def comparison(sorted_n: int, right: int, min_right: float) -> retrain.Comparison:
        """40 faces, ``sorted_n`` of them sure (``right`` of those right), the rest unsure."""
        pred = np.array([0] * right + [1] * (sorted_n - right) + [0] * (40 - sorted_n))
        conf = np.array([0.9] * sorted_n + [0.5] * (40 - sorted_n))
        ev = Evaluation.of(["a", "b"], truth, pred, conf, threshold=0.72)
        return retrain.Comparison("labels", ev, None, "balanced_accuracy", 0.0, 0.05, min_right)

    few = comparison(5, 3, 0.72)
    assert few.new.auto_sorted == (5, 3) and few.right_enough and few.passed
    many = comparison(40, 20, 0.72)
    assert many.new.auto_sorted == (40, 20) and not many.right_enough and not many.passed
    assert "right among them: new 20 of 40, current n/a, at least 72% asked (shown lower)" in many.describe()
    assert comparison(40, 20, 0.0).passed  # 0: not checked
    assert comparison(40, 20, 0.55).passed  # 20 of 40 does not rule out 55 %
    assert comparison(0, 0, 0.72).passed  # sorts nothing: nothing wrong (the share check judges that)


def test_the_share_right_check_counts_a_majority_emotion_as_the_adoption_evidence_does() -> None:
    """On labels mostly happy, a model calling every face happy was right on 20 of 25 and looked right
    enough to the refusing side, which counted plainly while the evidence to sort more capped the
    majority. One rule now: refused when either count shows it lower, so the capped one catches the
    model calling every face happy and the plain one still counts the majority's mistakes."""

    def comparison(happy_wrong: int, sad_right: bool, sad: int = 5) -> retrain.Comparison:
        """20 happy and ``sad`` sad labels, all sure: ``happy_wrong`` happy faces called sad."""
        truth = np.array([0] * 20 + [1] * sad)
        pred = np.array([1] * happy_wrong + [0] * (20 - happy_wrong) + [1 if sad_right else 0] * sad)
        ev = Evaluation.of(["happy", "sad"], truth, pred, np.full(20 + sad, 0.99), threshold=0.72)
        return retrain.Comparison("labels", ev, None, "balanced_accuracy", 0.0, 0.05, 0.72)

    all_happy = comparison(0, sad_right=False)
    assert all_happy.new.auto_sorted == (25, 20) and not all_happy.right_enough and not all_happy.passed
    shown = "new 20 of 25 (5 of 10 with happy counted only as many as the others), current n/a"
    assert f"{shown}, at least 72% asked (shown lower)" in all_happy.describe()
    few = comparison(0, sad_right=False, sad=1)  # 1 of 2 counted: too few to show it, and said so
    assert few.right_enough and "new 20 of 21 (1 of 2 with happy counted only as many" in few.describe()
    assert comparison(0, sad_right=True).right_enough
    assert not comparison(12, sad_right=True).right_enough  # 13 of 25 plainly, 7 of 10 capped


def test_on_the_bootstrap_validation_set_the_share_right_asked_is_what_the_model_in_force_achieves() -> None:
    """A bootstrap set that no model sorts well at the threshold must not forbid every retrain."""
    truth = np.zeros(10, np.int64)
    half_right = Evaluation.of(["a", "b"], truth, np.arange(10) % 2, np.full(10, 0.9), threshold=0.72)
    sure_of_none = Evaluation.of(["a", "b"], truth, truth, np.full(10, 0.5), threshold=0.72)
    assert retrain._bootstrap_floor(0.72, half_right, 0.05) == pytest.approx(0.45)
    assert (
        retrain._bootstrap_floor(0.72, None, 0.05)
        == retrain._bootstrap_floor(0.72, sure_of_none, 0.05)
        == 0.72
    )
    assert retrain._bootstrap_floor(0.0, half_right, 0.05) == 0.0  # not checked stays not checked


def test_a_retrain_whose_sure_answers_are_often_wrong_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Balanced accuracy and the auto-sorted share miss a model that is sure of everything and often
    wrong (temperature fitted on a few biased labels); the share right at the threshold catches it."""
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=40)
    drawn = _labels(settings, ["angry", "happy", "sad"], 8, seed=41)
    names = ["angry", "happy", "sad"]
    noisy = [  # half the labels name another emotion than the face shows
        retrain.UserLabel(lbl.face, names[(names.index(lbl.label) + k % 2) % 3], lbl.group)
        for k, lbl in enumerate(drawn)
    ]
    monkeypatch.setattr(retrain, "fit_temperature", lambda *_: 1e-6)  # sure of every answer
    result = retrain.retrain(settings, noisy, current)
    [mine] = result.comparisons
    n, right = mine.new.auto_sorted
    assert n == len(noisy) and right / n < 0.72 and not mine.right_enough
    assert not result.adopted and "(shown lower)" in result.describe()
    lenient = load_settings(state_dir=settings.state_dir, learning={"min_sorted_right": 0.0})
    [unchecked] = retrain.retrain(lenient, noisy, current).comparisons
    assert unchecked.right_enough and "right among them" not in unchecked.describe()


def _retrain_and_die_while_saving(
    settings: Settings, labels: list[retrain.UserLabel], current: EmotionModel
) -> None:
    """In a child process: retrain, and get SIGKILLed half-way through writing the new model."""
    import os
    import signal

    real_savez = np.savez_compressed

    def savez_then_die(fh: object, **arrays: np.ndarray) -> None:
        real_savez(fh, **arrays)
        fh.flush()  # type: ignore[attr-defined]
        os.kill(os.getpid(), signal.SIGKILL)  # power cut before fsync and rename

    np.savez_compressed = savez_then_die  # type: ignore[assignment]
    retrain.retrain(settings, labels, current)


def test_a_crash_while_retraining_leaves_the_old_model_in_force(settings: Settings) -> None:
    import multiprocessing

    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=17)
    before = model_store.model_in_force(settings)
    labels = _labels(settings, ["angry", "happy", "sad"], 6, seed=18)
    child = multiprocessing.get_context("fork").Process(
        target=_retrain_and_die_while_saving, args=(settings, labels, current)
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -9
    assert model_store.model_in_force(settings) == before
    assert model_store.user_models(settings) == [before]  # the half-written file is not taken for a model
    assert model_store.load_model_in_force(settings).labels == current.labels
    assert retrain.retrain(settings, labels, current).adopted  # and the next retrain works


@pytest.mark.parametrize("full_at", ["the model", "the pointer"])
def test_a_disk_that_fills_while_the_model_is_written_is_said_with_the_fix(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, full_at: str
) -> None:
    """Room is asked for before training, but the disk may fill meanwhile (the daemon sorting beside
    it): the write's ENOSPC ended `facesortd retrain` in a traceback and the review page's retrain in
    "retrain failed" with one in the log; full at the pointer, the model stayed beside the one in
    force, its decision "adopted" shown as the last retrain's. Now it is a refusal that says what to
    do, and nothing is left."""
    import errno
    import os

    from facesortd.refusals import Refused

    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=17)
    before = model_store.model_in_force(settings)
    real_save = retrain.save_new_model

    def full_disk(settings: Settings, write, folder=None, **kw):  # type: ignore[no-untyped-def]
        def half_written(dest: Path) -> None:
            write(dest)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest))

        return real_save(settings, half_written, folder, **kw)

    def no_room(_path: Path):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if full_at == "the model":
        monkeypatch.setattr(retrain, "save_new_model", full_disk)
    else:
        monkeypatch.setattr(model_store, "atomic_writer", no_room)
    with pytest.raises(Refused, match=r"cannot write the new model into .*: its disk is full: free some"):
        retrain.retrain(settings, _labels(settings, ["angry", "happy", "sad"], 6, seed=18), current)
    assert model_store.model_in_force(settings) == before
    assert sorted(p.name for p in model_store.models_dir(settings).iterdir()) == sorted(
        [before.name, model_store.CURRENT, model_store.ADOPTED]
    )


def test_a_damaged_model_the_model_in_force_was_retrained_from_is_not_the_end_of_retraining(
    settings: Settings,
) -> None:
    """The model `train` wrote and the person put in force, damaged since (truncated by hand): every
    retrain from the model retrained on it failed, `facesortd retrain` with exit 2 ("corrupt") and
    the daemon's at each look. It starts from the next model that can be read, and says so."""
    import os

    from loguru import logger

    from facesortd.ensemble import model_info

    _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=17)
    [base] = model_store.user_models(settings)
    labels = _labels(settings, ["angry", "happy", "sad"], 6, seed=18)
    assert retrain.retrain(settings, labels, model_store.load_model_in_force(settings)).adopted
    os.truncate(base, 1000)
    more = labels + _labels(settings, ["angry", "happy", "sad"], 2, seed=19)
    said: list[str] = []
    sink = logger.add(lambda m: said.append(str(m)), level="WARNING")
    try:
        result = retrain.retrain(settings, more, model_store.load_model_in_force(settings))
    finally:
        logger.remove(sink)
    assert result.path is not None and model_info(result.path)["base_file"] == model_store.DEFAULT
    assert any(f"{base} is corrupt" in line and "retrained from it" in line for line in said), said


def test_the_last_retrain_adopted_but_not_in_force_now_says_so(settings: Settings) -> None:
    """Rolled back since (or its retrain killed before the model was put in force): `status` and the
    review page showed "last retrain …: adopted" under the shipped model in force, unexplained."""
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=17)
    labels = _labels(settings, ["angry", "happy", "sad"], 6, seed=18)
    assert retrain.retrain(settings, labels, current).adopted
    [(_when, decision)] = [model_store.last_retrain(settings)]
    assert decision.endswith("; adopted")
    model_store.rollback(settings)
    [(_when, decision)] = [model_store.last_retrain(settings)]
    assert decision.endswith("; adopted (not in force now)")


def test_the_configured_metric_judges_the_retrain(tmp_path: Path) -> None:
    settings = load_settings(state_dir=tmp_path / "state", learning={"adopt_metric": "sorted_right"})
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=19)
    labels = _labels(settings, ["angry", "happy", "sad"], 6, seed=20)
    result = retrain.retrain(settings, labels, current)
    [mine] = result.comparisons
    assert result.adopted
    held = model_store.load_model_in_force(settings).info["held_out"]  # share sorted into the right folder:
    assert mine.candidate == pytest.approx(held["coverage"] * held["accuracy_at_threshold"], abs=1e-3)
    assert f"sorted_right on {retrain.judged_on(labels)} (" in result.describe()
    assert "sorted_right on your labels the model in force has not learnt" in result.describe()


def test_the_labels_a_retrain_is_judged_on_are_said_as_what_they_are(tmp_path: Path) -> None:
    """They were "your labels neither model was trained on": of imported crops too, which are no
    one's own labels and may be the very faces the model both come from was trained on (the shipped
    model's data, imported); and the new model is trained on all of them (its figures are its folds')."""

    def label(source: retrain.LabelSource) -> retrain.UserLabel:
        return retrain.UserLabel(tmp_path / "a.png", "happy", "a", source)

    assert retrain.judged_on([label("human"), label("correction")]) == (
        "your labels the model in force has not learnt, each scored by a new model trained without it"
    )
    imported = (
        "the model in force was not retrained on, each scored by a new model trained without it (the "
        "imported ones may be faces the model both come from was trained on)"
    )
    assert retrain.judged_on([label("dataset")]) == f"imported labels {imported}"
    both = retrain.judged_on([label("human"), label("dataset")])
    assert both == f"your labels and imported ones {imported}"


def test_the_first_labels_wait_for_the_count_and_the_clock_starts_with_them(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh install must not take its first label for "a day has passed" (it once retrained on 14)."""
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    calls: list[int] = []

    def fake_retrain(_s: Settings, labels: list[retrain.UserLabel], *_: object) -> retrain.RetrainResult:
        calls.append(len(labels))
        return retrain.RetrainResult(Path("made.fsm.npz"), False)

    monkeypatch.setattr(retrain, "retrain", fake_retrain)
    start = 1_000_000_000.0
    clock = lambda hours: monkeypatch.setattr(retrain.time, "time", lambda: start + hours * 3600)  # noqa: E731
    given = lambda labels, hours: [dataclasses.replace(lbl, given=start + hours * 3600) for lbl in labels]  # noqa: E731
    labels = given(_labels(settings, ["angry", "happy", "sad"], 4, seed=30), 0)  # 12: fewer than 20
    clock(0)
    assert retrain.retrain_if_due(settings, journal, labels) is None
    clock(23)
    assert retrain.retrain_if_due(settings, journal, labels[:1] + labels) is None
    clock(24.5)  # the first of them has waited a day: learn from what there is
    assert retrain.retrain_if_due(settings, journal, labels) is not None and calls == [12]
    clock(30)  # the clock starts again with the next label, not at the last retrain
    more = labels + given(_labels(settings, ["happy"], 1, seed=31), 30)
    assert retrain.retrain_if_due(settings, journal, more) is None
    clock(53)
    assert retrain.retrain_if_due(settings, journal, more) is None
    twenty = more + given(_labels(settings, ["angry", "happy", "sad", "surprised"], 5, seed=32), 54)
    assert retrain.retrain_if_due(settings, journal, twenty) is not None and calls == [12, 33]
    journal.close()


def test_the_model_in_force_is_judged_only_on_labels_it_was_not_trained_on(settings: Settings) -> None:
    emotions = ["angry", "happy", "sad"]
    _bootstrap(settings, emotions, 10, seed=33)
    old = _labels(settings, emotions, 4, seed=34)
    new = _labels(settings, emotions, 4, seed=35)
    current = EmotionModel.fit(
        np.stack([kept_faces.kept_face(lbl.face, SPEC) for lbl in old]),
        [lbl.label for lbl in old],
        SPEC,
        "hog",
    )
    current.info.update({"user_labels": len(old), "user_label_faces": [lbl.face.stem for lbl in old]})
    result = retrain.retrain(settings, old + new, current)
    [mine] = result.comparisons
    assert mine.new.confusion.sum() == mine.old.confusion.sum() == len(new)
    assert f"({len(new)} faces)" in result.describe()
    made = model_store.load_model(result.path)
    assert made.info["user_labels_learnt"] == {lbl.face.stem: lbl.label for lbl in old + new}
    assert made.info["base_file"] == "20260101-000000.fsm.npz"
    again = retrain.retrain(settings, old + new, made)  # nothing it has not seen: nothing to judge on
    assert again.path is None and again.reason.startswith("nothing new to learn")


def test_a_label_changed_since_the_model_in_force_learnt_it_is_new_to_it(settings: Settings) -> None:
    """A person who moved a labelled file on to another emotion folder (their own label was wrong)
    got "nothing new to learn": the model in force had seen the face, with the old label."""
    emotions = ["angry", "happy", "sad"]
    _bootstrap(settings, emotions, 10, seed=36)
    labels = _labels(settings, emotions, 4, seed=37)
    made = model_store.load_model(retrain.retrain(settings, labels, None).path)
    fixed = list(labels)
    fixed[0] = dataclasses.replace(labels[0], label="happy")  # it was angry
    fixed[4] = dataclasses.replace(labels[4], label="sad")  # it was happy
    again = retrain.retrain(settings, fixed, made)
    assert again.path is not None, again.reason
    [mine, *_] = again.comparisons
    assert mine.new.confusion.sum() == 2  # judged on the changed labels alone
    old_style = made.info.pop("user_labels_learnt")  # a model from before it recorded the labels
    made.info["user_label_faces"] = list(old_style)
    assert retrain.retrain(settings, fixed, made).reason.startswith("nothing new to learn")


def _sure_of_nothing(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Retrains from here on make a model as unsure as can be, with the same argmax as an honest one."""
    start = retrain.bootstrap(settings)
    start.model.temperature = 1e12
    monkeypatch.setattr(retrain, "bootstrap", lambda _settings: start)
    monkeypatch.setattr(retrain, "fit_temperature", lambda *_: 1e12)


def test_a_model_that_sorts_far_less_is_refused_whatever_its_balanced_accuracy(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=36)
    _sure_of_nothing(settings, monkeypatch)
    result = retrain.retrain(settings, _labels(settings, ["angry", "happy", "sad"], 6, seed=37), current)
    [mine] = result.comparisons
    assert mine.candidate >= mine.current and mine.new.coverage == 0.0 < mine.old.coverage
    assert not result.adopted and "auto-sorted at 0.72: new 0%" in result.describe()
    assert model_store.model_in_force(settings).name == "20260101-000000.fsm.npz"


def test_a_model_written_but_not_put_in_force_is_not_the_base_of_retrains(settings: Settings) -> None:
    in_force = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=38)
    rng = np.random.default_rng(39)
    faces = np.stack([normalised_face("happy", SPEC, rng) for _ in range(20)])
    EmotionModel.fit(faces, ["angry", "happy"] * 10, SPEC, "hog").save(
        model_store.models_dir(settings) / "20260102-000000.fsm.npz"
    )
    assert model_store.model_in_force(settings).name == "20260101-000000.fsm.npz"
    start = retrain.bootstrap(settings)
    assert start.name == "20260101-000000.fsm.npz" and start.model.labels == in_force.labels


def test_a_model_pinned_in_the_config_is_the_base_of_retrains(tmp_path: Path) -> None:
    rng = np.random.default_rng(41)
    emotions = ["angry", "happy", "sad"]
    faces = np.stack([normalised_face(e, SPEC, rng) for e in emotions * 8])
    pinned = EmotionModel.fit(faces, emotions * 8, SPEC, "hog").save(tmp_path / "mine.fsm.npz")
    settings = load_settings(state_dir=tmp_path / "state", recognition={"model": pinned})
    result = retrain.retrain(
        settings, _labels(settings, emotions, 5, seed=42), model_store.load_model(pinned)
    )
    assert result.path is not None and model_store.load_model(result.path).info["base_file"] == str(pinned)
    assert retrain.bootstrap(settings).name == str(pinned)
    # Adopted, but the pin keeps it out of use: said so, not "adopted" alone (nothing changed).
    assert result.adopted and result.describe().endswith(
        f"; adopted (not used while recognition.model in the config pins {pinned}: unset it to use it)"
    )


def _placed_lately(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int) -> list[Path]:
    """``n`` drawn screenshots (angry, happy, sad in turn) as files placed lately that nobody labelled,
    which a retrain judges its auto-sorted share on, with the test-double detector that finds their faces."""
    import cv2
    from synthetic import BrightBlobDetector, draw_screenshot

    rng = np.random.default_rng(44)
    files = []
    for i in range(n):
        files.append(tmp_path / f"placed{i}.png")
        cv2.imwrite(str(files[-1]), draw_screenshot(["angry", "happy", "sad"][i % 3], rng)[0])
    monkeypatch.setattr(retrain, "FaceDetector", BrightBlobDetector)
    return files


def test_the_auto_sorted_share_is_also_judged_on_files_nobody_labelled(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Labels are mostly files the model in force was unsure of: the share must be judged elsewhere too."""
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=43)
    files = _placed_lately(tmp_path, monkeypatch, 6)
    labels = _labels(settings, ["angry", "happy", "sad"], 6, seed=45)
    fair = retrain.retrain(settings, labels, current, files)
    assert fair.adopted and isinstance(share := fair.comparisons[-1], retrain.ShareCheck)
    assert (
        share.n == 6
        and share.passed
        and "files placed lately that nobody labelled (6 faces)" in fair.describe()
    )
    _sure_of_nothing(settings, monkeypatch)
    more = labels + _labels(settings, ["angry", "happy", "sad"], 6, seed=46)
    unsure = retrain.retrain(settings, more, model_store.load_model_in_force(settings), files)
    assert not unsure.adopted and not unsure.comparisons[-1].passed and unsure.comparisons[-1].new == 0.0


def test_a_model_that_would_sort_far_more_needs_labels_that_show_its_sure_answers_right(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two labels (a happy face, a sad one): the temperature fitted on two answers made the new model
    sure of nearly everything, and with both right nothing could refuse it: it was adopted and sorted
    79 % of the seed screenshots where the model in force sorted none (right there only because the
    shipped model was trained on them). Sorting far more now needs labels that show its sure
    answers right as often as the threshold promises; a handful of right answers does."""

    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=43)
    current.temperature = 1e12  # the model in force sorts nothing: every file waits for review
    current.save(model_store.model_in_force(settings))
    files = _placed_lately(tmp_path, monkeypatch, 12)
    monkeypatch.setattr(retrain, "fit_temperature", lambda *_: 0.01)  # what two right answers fit
    two = [
        dataclasses.replace(lbl, group=lbl.label) for lbl in _labels(settings, ["happy", "sad"], 1, seed=45)
    ]
    result = retrain.retrain(settings, two, current, files)
    share = result.comparisons[-1]
    assert isinstance(share, retrain.ShareCheck) and share.old == 0.0 and share.new == 1.0
    assert not result.adopted and not share.passed
    assert "2 of 2 of your labels it would sort were right: too few to show" in result.describe()
    lenient = load_settings(state_dir=settings.state_dir, learning={"min_sorted_right": 0.0})
    assert retrain.retrain(lenient, two, current, files).comparisons[-1].passed  # not checked
    labels = _labels(settings, ["angry", "happy", "sad"], 6, seed=46)
    # A model in force that learnt 18 labels and still sorts nothing; two labels given since. The
    # new model's sure answers on all 20 show it right (the two alone could not).
    current.info.update(
        user_labels=len(labels),
        user_labels_learnt={lbl.face.stem: lbl.label for lbl in labels},
        base_file=model_store.model_in_force(settings).name,
    )
    model_store.adopt(settings, model_store.save_new_model(settings, current.save))
    result = retrain.retrain(settings, labels + two, current, files)
    assert result.comparisons[0].new.confusion.sum() == 2 and result.adopted


def test_labels_of_one_emotion_never_show_that_a_model_sorting_more_is_right(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Five labels, all of one emotion, beside a small bootstrap validation set (`train` of 40 seed
    crops put in force, then five happy files filed): a model calling every face happy is right on
    all five, and it was adopted, sorting all 69 other seed screenshots, 64 into joy/ (3 right, 41
    wrong). Labels of one emotion cannot show how often its sure answers are right."""

    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=43)
    current.temperature = 1e12  # the model in force sorts nothing
    current.save(model_store.model_in_force(settings))
    _validation_set(settings, ["angry", "happy", "sad"], 2, seed=12)
    files = _placed_lately(tmp_path, monkeypatch, 6)
    monkeypatch.setattr(retrain, "fit_temperature", lambda *_: 0.01)
    happy = _labels(settings, ["happy"], 8, seed=45)
    result = retrain.retrain(settings, happy, current, files)
    share = result.comparisons[-1]
    assert isinstance(share, retrain.ShareCheck) and share.more and not share.passed
    assert not result.adopted and "your labels are all happy" in result.describe()


def test_labels_mostly_of_one_emotion_never_show_that_a_model_calling_every_face_so_is_right(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """20 happy labels and 1 sad: a new model calling every face happy, sure of each, was right on 20
    of the 21 labels it would sort, which showed it right more than 72 % of the time, and it was
    adopted to sort every file placed lately (the sad ones into happy/). With happy counted only as
    many as the other labels, it is right on half. A good model on labels of each emotion alike is
    still adopted."""

    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=43)
    current.temperature = 1e12  # the model in force sorts nothing
    current.save(model_store.model_in_force(settings))
    files = _placed_lately(tmp_path, monkeypatch, 6)
    monkeypatch.setattr(retrain, "fit_temperature", lambda *_: 0.01)  # sure of every answer
    real_out_of_fold = retrain.out_of_fold_logits

    def happy_on_every_face(
        _fit: object, faces: np.ndarray, _names: object, _groups: object, classes: list[str]
    ) -> np.ndarray:
        """The out-of-fold answers of a model calling every face happy."""
        logits = np.zeros((len(faces), len(classes)))
        logits[:, classes.index("happy")] = 5.0
        return logits

    monkeypatch.setattr(retrain, "out_of_fold_logits", happy_on_every_face)
    mostly_happy = _labels(settings, ["happy"], 20, seed=45) + _labels(settings, ["sad"], 1, seed=46)
    result = retrain.retrain(settings, mostly_happy, current, files)
    share = result.comparisons[-1]
    assert isinstance(share, retrain.ShareCheck) and share.more and not share.passed
    assert share.evidence.auto_sorted == (21, 20)
    assert not result.adopted and model_store.model_in_force(settings).name == "20260101-000000.fsm.npz"
    assert (
        "20 of 21 of your labels it would sort were right, but 20 of your 21 labels are happy (a model "
        "calling every face so is right on those too): with happy counted only as many as the others (1), "
        "1 of 2 were right"
    ) in result.describe()
    monkeypatch.setattr(retrain, "out_of_fold_logits", real_out_of_fold)
    alike = _labels(settings, ["angry", "happy", "sad"], 7, seed=47)
    good = retrain.retrain(settings, alike, current, files)
    assert good.adopted and good.comparisons[-1].more and good.comparisons[-1].passed


def test_labels_mostly_of_one_emotion_still_show_a_model_right_on_the_others_too() -> None:
    """The majority counted only as many as the others: a model calling every face happy is right on
    half of what counts, whatever the numbers; one right on the sad faces too is shown right."""

    def check(happy: int, sad: int, sad_right: bool) -> retrain.ShareCheck:
        truth = np.array([0] * happy + [1] * sad)
        pred = np.array([0] * happy + [1 if sad_right else 0] * sad)
        evidence = Evaluation.of(["happy", "sad"], truth, pred, np.full(happy + sad, 0.99), threshold=0.72)
        return retrain.ShareCheck("files placed lately", 10, 1.0, 0.0, 0.05, evidence, 0.72)

    assert check(20, 5, sad_right=True).passed  # 5 + 5 of 10 right
    assert check(10, 10, sad_right=True).evidence.sorted_right_capped() == (20.0, 20.0)  # none over half
    for happy, sad in ((20, 1), (20, 5), (200, 50), (12, 8)):
        assert not check(happy, sad, sad_right=False).passed, (happy, sad)
    assert check(20, 5, sad_right=False).evidence.sorted_right_capped() == (10.0, 5.0)
    # Wrong on the majority, right on the others: the plain count (30 of 50) falls short, not the
    # capped one (15 of 20), and the words say the plain one, with no "label the other emotions".
    truth = np.array([0] * 40 + [1] * 10)
    pred = np.array([1] * 20 + [0] * 20 + [1] * 10)
    evidence = Evaluation.of(["happy", "sad"], truth, pred, np.full(50, 0.99), threshold=0.72)
    short = retrain.ShareCheck("files placed lately", 10, 1.0, 0.0, 0.05, evidence, 0.72)
    assert evidence.sorted_right_capped() == (20.0, 15.0) and not short.passed
    assert (
        "(30 of 50 of your labels it would sort were right: too few to show it right 72%" in short.describe()
    )
    assert "other emotions" not in short.describe()


def test_labels_given_since_the_last_retrain_are_new_however_many_were_taken_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New labels were the difference of totals: after a retrain, two labels taken back beside two
    given were "0 new" (`status` said no retrain was coming), and a label moved on to another
    emotion folder was none."""
    from facesortd.journal import Journal
    from facesortd.learn.review import user_labels

    journal = Journal.for_state_dir(settings.state_dir)
    kept = _labels(settings, ["angry", "happy", "sad"], 4, seed=38)
    for lbl in kept[:10]:
        journal.add_label(lbl.face.stem, lbl.label, "human", (lbl.face, (0, 0, 9, 9)), lbl.group, lbl.face)
    monkeypatch.setattr(retrain, "retrain", lambda *_a, **_k: retrain.RetrainResult(Path("m.fsm.npz"), True))
    assert retrain.retrain_if_due(settings, journal, user_labels(journal), force=True) is not None
    assert retrain.schedule(journal, user_labels(journal)).fresh == 0
    for lbl in kept[:2]:
        journal.withdraw_label(lbl.face.stem, lbl.face)
    for lbl in kept[10:]:
        journal.add_label(lbl.face.stem, lbl.label, "human", (lbl.face, (0, 0, 9, 9)), lbl.group, lbl.face)
    moved_on = kept[2]
    journal.add_label(moved_on.face.stem, "sad", "human", (moved_on.face, (0, 0, 9, 9)), "", moved_on.face)
    assert retrain.schedule(journal, user_labels(journal)).fresh == 3
    journal.set_meta(retrain.LABELS_TRAINED_UNTIL, "")  # a journal last retrained by an older version
    journal.set_meta(retrain.LABELS_AT_RETRAIN, "8")
    assert retrain.schedule(journal, user_labels(journal)).fresh == 2  # 10 labels now: counted as before
    journal.close()


def test_labels_a_killed_retrain_put_in_force_but_did_not_record_count_as_learnt_at_the_next(
    settings: Settings,
) -> None:
    """A retrain killed after putting its model in force, before writing down which labels it learnt:
    `retrain` then said "7 new label(s) since the last retrain" and "nothing new to learn: the model
    in force was trained on every label there is", and `status` counted them as new (sooner due)
    until the next label came."""
    from facesortd.journal import Journal
    from facesortd.learn.review import user_labels

    _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=17)
    journal = Journal.for_state_dir(settings.state_dir)
    for lbl in _labels(settings, ["angry", "happy", "sad"], 6, seed=18):
        journal.add_label(lbl.face.stem, lbl.label, "human", (lbl.face, (0, 0, 9, 9)), lbl.group, lbl.face)
    labels = user_labels(journal)
    current = model_store.load_model_in_force(settings)
    assert retrain.retrain(settings, labels, current).adopted  # and killed before retrain_if_due's meta
    assert retrain.schedule(journal, labels).fresh == len(labels)
    result = retrain.retrain_if_due(settings, journal, labels, force=True)
    assert result is not None and result.path is None and result.reason.startswith("nothing new to learn")
    assert retrain.schedule(journal, labels).fresh == 0
    journal.close()


def test_a_kept_face_damaged_on_disk_is_left_out_not_the_end_of_every_retrain(settings: Settings) -> None:
    """One unreadable crop in <state_dir>/faces failed every retrain with a traceback (the daemon's
    again at each look), and no retrain could ever run until someone found that file."""
    emotions = ["angry", "happy", "sad"]
    _bootstrap(settings, emotions, 10, seed=39)
    labels = _labels(settings, emotions, 4, seed=40)
    labels[0].face.write_bytes(b"not a png any more")
    result = retrain.retrain(settings, labels, None)
    assert result.path is not None and result.used == {"angry": 3, "happy": 4, "sad": 4}


def test_new_labels_of_one_emotion_alone_judge_no_retrain_without_a_validation_set(
    settings: Settings,
) -> None:
    """Two labels, both happy, made an adopted model sure of "happy" on most faces: judged on one
    emotion, balanced accuracy is that emotion's recall, which calling every face so maximises."""
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=41)
    happy = _labels(settings, ["happy"], 6, seed=42)
    held = retrain.retrain(settings, happy, current)
    assert held.path is None and "all happy" in held.reason and "another emotion too" in held.reason
    assert retrain.retrain(settings, happy + _labels(settings, ["sad"], 2, seed=43), current).path is not None
    _validation_set(settings, ["angry", "happy", "sad"], 8, seed=44)  # it judges the other emotions
    assert retrain.retrain(settings, happy, current).path is not None


def test_a_retrained_model_shows_no_bootstrap_validation_figures_it_was_not_measured_by(
    settings: Settings,
) -> None:
    """Retrained from the shipped model (which keeps its own validation figures, but not the set),
    `facesortd model` listed the shipped model's "on the bootstrap validation set: balanced accuracy
    0.36" under each retrained model, as if it had been measured there."""
    base = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=45)
    base.info["bootstrap_validation"] = {"balanced_accuracy": 0.36, "n": 100}
    base.save(model_store.model_in_force(settings))
    result = retrain.retrain(settings, _labels(settings, ["angry", "happy", "sad"], 4, seed=46), base)
    assert result.path is not None
    assert "bootstrap_validation" not in model_store.load_model(result.path).info


def test_the_next_retrain_removes_the_model_a_killed_retrain_was_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retrain killed while writing its new model left the temp file (a model's size) in the
    models folder: only the daemon's start removed it, once an hour old, and `retrain` from the
    command line never. The next retrain, whoever runs it, removes it at once: it holds the retrain
    lock, so no other retrain is writing one. A temp file of a `train` at work beside it stays."""
    import multiprocessing
    import os
    import signal

    from facesortd import cli
    from facesortd.durable import TMP_PREFIX

    for key in ("inbox", "library", "state_dir"):
        monkeypatch.setenv(f"FACESORTD_{key.upper()}", str(tmp_path / key))
    settings = load_settings()
    current = _bootstrap(settings, ["angry", "happy", "sad"], 10, seed=41)
    labels = _labels(settings, ["angry", "happy", "sad"], 4, seed=42)

    def killed_while_writing() -> None:
        def save(_model: EmotionModel, path: Path) -> Path:
            path.write_bytes(b"the first part of a model")
            os.kill(os.getpid(), signal.SIGKILL)
            return path

        monkeypatch.setattr(EmotionModel, "save", save)
        retrain.retrain(settings, labels, current)

    child = multiprocessing.get_context("fork").Process(target=killed_while_writing)
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL
    folders = [model_store.models_dir(settings), model_store.rejected_dir(settings)]
    [left] = [p for folder in folders if folder.is_dir() for p in folder.glob(f"{TMP_PREFIX}*")]
    trains = model_store.models_dir(settings) / f"{TMP_PREFIX}being-trained"
    trains.write_bytes(b"a model `train` is writing")
    assert cli.main(["retrain"]) == 1  # no labels in the journal: no model made, the leftover gone
    assert not left.exists() and trains.exists()
