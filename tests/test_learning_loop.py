"""End to end: no labels at first, a person reviews the quarantine, the daemon learns from it."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from loguru import logger
from synthetic import EMOTIONS, BrightBlobDetector, draw_screenshot, stub_pipeline
from waiting import HUNG_S, running_daemon, wait_until

from facesortd import model_store, status
from facesortd.config import Settings, load_settings
from facesortd.content import file_hash
from facesortd.decide import Decision, Pipeline
from facesortd.emotion import EmotionModel
from facesortd.journal import ModelId
from facesortd.learn import retrain, review
from facesortd.service import Service


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(model_store, "shipped_model", lambda: None)  # start with no model at all
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    monkeypatch.setattr(retrain, "FaceDetector", BrightBlobDetector)
    return load_settings(
        inbox=tmp_path / "inbox",
        library=tmp_path / "lib",
        state_dir=tmp_path / "state",
        watch={"settle_s": 0.1, "rescan_interval_s": 0},
        learning={"review_scan_s": 0.3, "retrain_after_labels": 32, "min_per_class": 3},
    )


def test_review_moves_become_labels_and_a_retrain_sorts_the_unsure(settings: Settings) -> None:
    service = Service(settings, lambda s: Pipeline(BrightBlobDetector(), None, s.recognition, s.images))  # type: ignore[arg-type]
    settings.inbox.mkdir(parents=True)
    thread = threading.Thread(target=service.run)
    thread.start()
    try:
        rng = np.random.default_rng(11)
        truth = {}
        for i in range(40):  # ten characters (a..j), each with one screenshot of each emotion
            emotion = EMOTIONS[i % 4]
            name = f"{'abcdefghij'[i // 4]}{i}.png"
            assert cv2.imwrite(str(settings.inbox / name), draw_screenshot(emotion, rng)[0])
            truth[name] = emotion
        unsure = settings.library / "_quarantine" / "unsure"
        wait_until(lambda: unsure.is_dir() and len(list(unsure.iterdir())) == 40)
        assert model_store.model_in_force(settings) is None

        reviewed = list(truth)[:32]  # the person files 32 of them, like with a file manager
        for name in reviewed:
            (settings.library / truth[name]).mkdir(parents=True, exist_ok=True)
            (unsure / name).rename(settings.library / truth[name] / name)

        wait_until(lambda: model_store.model_in_force(settings) is not None)
        model = EmotionModel.load(model_store.model_in_force(settings))
        assert model.info["user_labels"] == 32 and model.info["adopted"] is True
        # 32 labels of 8 characters, each held out in turn: drawings seeded 0-99 give 0.875-1.00
        # (16 labels gave 0.56-0.94: three faces per emotion are too few to learn from; see README).
        assert model.info["held_out"]["balanced_accuracy"] >= 0.8

        rest = [n for n in truth if n not in reviewed]
        wait_until(lambda: sum((settings.library / truth[n] / n).exists() for n in rest) >= 6)
    finally:
        service.stop()
        thread.join(timeout=HUNG_S)
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    assert len(review.user_labels(journal)) == 32
    assert {s for _h, _l, s, _f, _g, _t in journal.labels()} == {"human"}
    journal.close()


def test_a_model_put_in_force_beside_the_daemon_sorts_the_unsure(settings: Settings) -> None:
    """`facesortd retrain`, the review page's "retrain now" and `model use` adopt a model in another
    process; the daemon must look again at the unsure files as after its own retrain (the new
    user's walk: a retrain adopted that was sure of 16 of 25 unsure files, which all stayed)."""
    from review_setup import install_model

    with running_daemon(settings, _in_force):
        _eight_unsure(settings)
        install_model(settings)  # as `facesortd retrain` does it beside the daemon
        wait_until(lambda: _sorted(settings) >= 4)


@pytest.mark.parametrize("daemon_ran_before", [True, False])
def test_a_model_put_in_force_while_no_daemon_ran_sorts_the_unsure_at_its_start(
    settings: Settings, daemon_ran_before: bool
) -> None:
    """`facesortd retrain` with the daemon stopped; or `facesortd sort` and `retrain` before the
    daemon ever ran here (no status file says which model it last used)."""
    from review_setup import install_model

    with running_daemon(settings, _in_force):
        _eight_unsure(settings)
    if not daemon_ran_before:
        (settings.state_dir / "status.json").unlink()
    install_model(settings)
    with running_daemon(settings, _in_force):
        wait_until(lambda: _sorted(settings) >= 4)


def test_a_new_shipped_model_under_the_same_name_looks_again_at_the_unsure_at_the_daemons_start(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade of facesortd brings a new shipped model under the old one's file name: the daemon's
    start took it for the model it last ran with (its status file names it), and the unsure files
    the earlier model had left were never looked at by the new one."""
    from review_setup import install_model

    shipped = tmp_path / "site-packages" / "default_emotion.fsm.npz"
    shipped.parent.mkdir()
    monkeypatch.setattr(model_store, "shipped_model", lambda: shipped)
    shipped.write_bytes(b"the earlier version's model")
    earlier = model_store.model_id(shipped)
    unsure = settings.library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    service = Service(settings)  # the daemon that ran with it: its status file and journal rows
    service.sorter.model = earlier
    service._publish_status()
    rng = np.random.default_rng(5)
    for i in range(8):
        path = unsure / f"{i}.png"
        assert cv2.imwrite(str(path), draw_screenshot(EMOTIONS[i % 4], rng)[0])
        move = service.journal.plan(
            file_hash(path),
            settings.inbox / path.name,
            path,
            Decision.quarantine("unsure"),
            earlier.name,
            version=earlier.version,
        )
        service.journal.finish(move, "done", path)
    service.journal.close()
    shipped.write_bytes(install_model(settings).save(tmp_path / "new.fsm.npz").read_bytes())  # upgraded
    (model_store.models_dir(settings) / model_store.CURRENT).unlink()  # the shipped model in force
    assert model_store.model_id(model_store.model_in_force(settings)).version != earlier.version
    with running_daemon(settings, _in_force):
        wait_until(lambda: _sorted(settings) >= 4)


def test_a_model_put_in_force_as_the_daemon_starts_is_the_one_it_sorts_with(settings: Settings) -> None:
    """`facesortd retrain` adopting its model just as the daemon had loaded the one in force into its
    workers: they took the new model for the one they held, sorted every file with the old one (no
    model: all unsure) and journaled them as judged by the new, so none was ever looked at again."""
    from review_setup import install_model

    def loaded_then_retrained(s: Settings) -> Pipeline:
        pipeline = Pipeline(BrightBlobDetector(), None, s.recognition, s.images)  # no model in force yet
        if model_store.model_in_force(s) is None:
            install_model(s)  # as `facesortd retrain` does it beside the daemon
        return pipeline

    with running_daemon(settings, loaded_then_retrained):
        rng = np.random.default_rng(5)
        for i in range(8):
            assert cv2.imwrite(str(settings.inbox / f"{i}.png"), draw_screenshot(EMOTIONS[i % 4], rng)[0])
        wait_until(lambda: _sorted(settings) >= 4)


def _in_force(s: Settings) -> Pipeline:
    return Pipeline(BrightBlobDetector(), model_store.load_model_in_force(s), s.recognition, s.images)  # type: ignore[arg-type]


def _eight_unsure(settings: Settings) -> None:
    """Eight drawn screenshots dropped into the inbox of a daemon with no model: all unsure."""
    rng = np.random.default_rng(5)
    for i in range(8):
        assert cv2.imwrite(str(settings.inbox / f"{i}.png"), draw_screenshot(EMOTIONS[i % 4], rng)[0])
    unsure = settings.library / "_quarantine" / "unsure"
    wait_until(lambda: unsure.is_dir() and len(list(unsure.iterdir())) == 8)


def _sorted(settings: Settings) -> int:
    return sum(1 for e in EMOTIONS for _ in (settings.library / e).glob("*.png"))


def test_moving_a_sorted_file_to_another_emotion_is_a_correction(settings: Settings) -> None:
    from facesortd.decide import Decision
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    happy, sad = settings.library / "happy", settings.library / "sad"
    happy.mkdir(parents=True)
    sad.mkdir(parents=True)
    img, _ = draw_screenshot("sad", np.random.default_rng(1))
    cv2.imwrite(str(happy / "x.png"), img)
    _placed(journal, happy / "x.png", Decision("sorted", "happy", confidence=0.7))
    reviewer = review.Reviewer(settings, journal)
    assert reviewer.scan() == 0  # facesortd's own placement is not a label
    (happy / "x.png").rename(sad / "x.png")
    assert reviewer.scan() == 1
    (_h, label, source, face, _g, _t) = journal.labels()[0]
    assert (label, source) == ("sad", "correction") and Path(face).is_file()
    (settings.library / "smug").mkdir()
    (settings.library / "smug" / "blank.png").write_bytes(
        cv2.imencode(".png", np.zeros((50, 50, 3), np.uint8))[1].tobytes()
    )
    assert reviewer.scan() == 1
    counts, unusable, imported = review.label_summary(journal)
    assert counts == {"sad": 1} and unusable == 1 and imported == 0
    journal.close()


def _clock_set_back(monkeypatch: pytest.MonkeyPatch, by_s: float) -> None:
    """The journal's clock set back ``by_s`` (by hand, or a dead clock battery until NTP corrects it)."""
    import time
    from types import SimpleNamespace

    from facesortd import journal

    monkeypatch.setattr(journal, "time", SimpleNamespace(time=lambda: time.time() - by_s))


def test_a_file_moved_back_where_facesortd_put_it_after_the_clock_was_set_back_is_a_label(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """facesortd put x.png into happy/; the clock was set back an hour; the person moved it to sad/
    (a label) and back to happy/: their label, happy, was older by the clock than facesortd's move,
    so the file back in happy/ was taken for facesortd's placement and the label stayed sad."""
    from facesortd.decide import Decision
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    happy, sad = settings.library / "happy", settings.library / "sad"
    happy.mkdir(parents=True)
    sad.mkdir()
    cv2.imwrite(str(happy / "x.png"), draw_screenshot("happy", np.random.default_rng(1))[0])
    _placed(journal, happy / "x.png", Decision("sorted", "happy", confidence=0.7))
    _clock_set_back(monkeypatch, 3600)
    reviewer = review.Reviewer(settings, journal)
    (happy / "x.png").rename(sad / "x.png")
    assert reviewer.scan() == 1
    (sad / "x.png").rename(happy / "x.png")
    assert reviewer.scan() == 1
    assert [label for _h, label, *_ in journal.labels()] == ["happy"]
    journal.close()


def test_labels_given_after_a_retrain_and_the_clock_set_back_are_new(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New labels are those given after the newest the last retrain learnt: with the clock set back,
    each was older, so none counted towards the next retrain (`status`: 0 new) until the clock
    caught up again. The file's own time says nothing of it (a copy keeping a time of 2001)."""
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    sad = settings.library / "sad"
    sad.mkdir(parents=True)
    for n in range(2):
        cv2.imwrite(str(sad / f"{n}.png"), draw_screenshot("sad", np.random.default_rng(n))[0])
    assert review.Reviewer(settings, journal).scan() == 2
    labels = review.user_labels(journal)
    journal.set_meta(retrain.LABELS_TRAINED_UNTIL, str(max(label.given for label in labels)))
    _clock_set_back(monkeypatch, 86400)
    (settings.library / "happy").mkdir()
    late = settings.library / "happy" / "2.png"
    cv2.imwrite(str(late), draw_screenshot("happy", np.random.default_rng(2))[0])
    os.utime(late, (978_307_200, 978_307_200))  # copied keeping a time of 2001 (cp -p, rsync -t)
    assert review.Reviewer(settings, journal).scan() == 1
    assert retrain.schedule(journal, review.user_labels(journal)).fresh == 1
    journal.close()


def test_a_label_moved_away_and_back_during_a_scan_is_recorded_at_the_next(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file a person moved out of its emotion folder and back (a mistaken drag undone with Ctrl+Z)
    while the scan was reading the files listed before it: gone as the scan read it, it was taken
    as looked at, and back under its name, size and time never looked at again: its label never
    recorded, the model never trained on it."""
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    (settings.library / "sad").mkdir(parents=True)
    shot = settings.library / "sad" / "x.png"
    cv2.imwrite(str(shot), draw_screenshot("sad", np.random.default_rng(1))[0])
    os.utime(shot, (1_700_000_000, 1_700_000_000))  # an older time, which proves a file unwritten
    real = review.content_id

    def away_meanwhile(path: Path) -> str:
        if path == shot:
            shot.rename(shot.with_name("moved.tmp"))
            try:
                return real(path)
            finally:
                shot.with_name("moved.tmp").rename(shot)
        return real(path)

    monkeypatch.setattr(review, "content_id", away_meanwhile)
    reviewer = review.Reviewer(settings, journal)
    assert reviewer.scan() == 0
    monkeypatch.setattr(review, "content_id", real)
    assert reviewer.scan() == 1
    assert [label for _h, label, *_ in journal.labels()] == ["sad"]
    journal.close()


class _SureItIsHappy:
    """A pipeline that would sort anything into happy: shows which files re-examination may touch."""

    def decide(self, path: Path) -> object:
        from facesortd.decide import Decision

        return Decision("sorted", "happy", confidence=0.99)


def _placed(
    journal: object, path: Path, decision: object, source: Path | None = None, done: bool = True
) -> int:
    """Journal a move of ``path``'s content to ``path`` as if facesortd had made it (or is making it)."""
    from facesortd.content import file_hash

    move = journal.plan(file_hash(path), source or Path("/in") / path.name, path, decision, "m")  # type: ignore[attr-defined]
    if done:
        journal.finish(move, "done", path)  # type: ignore[attr-defined]
    return move


def test_a_file_a_killed_process_was_moving_is_a_label_once_a_person_moves_it_on(settings: Settings) -> None:
    """A `sort` killed just after moving a file into happy/, before the journal said so, left its
    move ``planned``: its content counted as "being moved right now" to every look, so the file,
    moved on to sad/ by a person before anything else moved, was taken for facesortd's, remembered
    as looked at, and its label never recorded (until a restart of the daemon). The killed move is
    brought to an end first now (recovery, under the move lock a dead process no longer holds)."""
    from facesortd.decide import Decision
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    happy, sad = settings.library / "happy", settings.library / "sad"
    happy.mkdir(parents=True)
    sad.mkdir()
    cv2.imwrite(str(happy / "x.png"), draw_screenshot("sad", np.random.default_rng(1))[0])
    _placed(journal, happy / "x.png", Decision("sorted", "happy", confidence=0.7), done=False)
    (happy / "x.png").rename(sad / "x.png")
    reviewer = review.Reviewer(settings, journal)
    reviewer.scan()
    reviewer.scan()
    assert [label for _h, label, *_ in journal.labels()] == ["sad"] and journal.planned() == []
    journal.close()


def test_a_second_copy_left_in_quarantine_does_not_withdraw_the_label(settings: Settings) -> None:
    """Labels are kept by content: a copy of a labelled file that stayed in quarantine (the same
    screenshot saved twice) withdrew the label at the next full scan (a new Reviewer: every retrain),
    while the labelled file was still in its emotion folder."""
    from facesortd.decide import Decision
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    unsure, happy = settings.library / "_quarantine" / "unsure", settings.library / "happy"
    unsure.mkdir(parents=True)
    happy.mkdir()
    image = draw_screenshot("happy", np.random.default_rng(4))[0]
    for name in ("shot.png", "shot again.png"):
        cv2.imwrite(str(unsure / name), image)
        _placed(journal, unsure / name, Decision.quarantine("unsure"))
    assert review.Reviewer(settings, journal).scan() == 0
    (unsure / "shot.png").rename(happy / "shot.png")
    assert review.Reviewer(settings, journal).scan() == 1
    assert review.Reviewer(settings, journal).scan() == 0  # the copy in quarantine says nothing
    assert review.label_summary(journal)[0] == {"happy": 1}
    (happy / "shot.png").rename(unsure / "shot.png")  # the labelled file itself taken back: withdrawn
    assert review.Reviewer(settings, journal).scan() == 1 and review.label_summary(journal)[0] == {}
    journal.close()


def test_copies_in_two_emotion_folders_do_not_take_the_label_in_turn_at_each_start(
    settings: Settings,
) -> None:
    """The same picture filed in sad/ and later copied into happy/: at each start of the daemon (a
    new Reviewer, which has seen nothing) the copy that sat there before the last label was
    recorded again, so the content's label changed at every restart and each time counted anew."""
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    sad, happy = settings.library / "sad", settings.library / "happy"
    sad.mkdir(parents=True)
    happy.mkdir()
    cv2.imwrite(str(sad / "shot.png"), draw_screenshot("sad", np.random.default_rng(5))[0])
    assert review.Reviewer(settings, journal).scan() == 1
    [(_hash, _label, _source, _face, _group, filed)] = journal.labels()
    copy = happy / "copy.png"

    def copied_after_the_label() -> bool:  # file times run on a clock a few ms coarser than labels'
        shutil.copyfile(sad / "shot.png", copy)  # the person's later decision: a copy in happy/ too
        return copy.lstat().st_ctime > filed

    wait_until(copied_after_the_label)
    assert review.Reviewer(settings, journal).scan() == 1
    for _restart in range(2):
        assert review.Reviewer(settings, journal).scan() == 0
    assert review.label_summary(journal)[0] == {"happy": 1}
    journal.close()


@pytest.mark.parametrize("last", ["happy", "sad"])
def test_copies_filed_in_two_emotion_folders_before_one_look_take_the_label_of_the_one_filed_last(
    settings: Settings, last: str
) -> None:
    """A picture copied into sad/, then into happy/ (the person changed their mind), and both found
    by one look (`facesortd retrain` at once, or within one `review_scan_s`): the copy whose folder
    was listed first took the label, and the other, filed later, was taken for one already there."""
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    first = "sad" if last == "happy" else "happy"
    image = draw_screenshot("sad", np.random.default_rng(5))[0]
    for folder in (first, last):
        (settings.library / folder).mkdir(parents=True)
    cv2.imwrite(str(settings.library / first / "shot.png"), image)
    filed = (settings.library / first / "shot.png").lstat().st_ctime

    def copied_later() -> bool:  # file times run on a coarse clock
        shutil.copyfile(settings.library / first / "shot.png", settings.library / last / "shot.png")
        return (settings.library / last / "shot.png").lstat().st_ctime > filed

    wait_until(copied_later)
    review.Reviewer(settings, journal).scan()
    for _restart in range(2):
        assert review.Reviewer(settings, journal).scan() == 0
    assert review.label_summary(journal)[0] == {last: 1}
    journal.close()


def test_taking_a_file_back_to_quarantine_withdraws_its_label_and_it_stays_there(settings: Settings) -> None:
    from facesortd.decide import Decision
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    unsure, happy = settings.library / "_quarantine" / "unsure", settings.library / "happy"
    unsure.mkdir(parents=True)
    happy.mkdir()
    rng = np.random.default_rng(2)
    for name in ("mine.png", "ours.png", "sorted.png"):
        cv2.imwrite(str(unsure / name), draw_screenshot("happy", rng)[0])
        _placed(journal, unsure / name, Decision.quarantine("unsure"))
    reviewer = review.Reviewer(settings, journal)
    assert reviewer.scan() == 0
    (unsure / "mine.png").rename(happy / "mine.png")
    assert reviewer.scan() == 1 and review.label_summary(journal)[0] == {"happy": 1}
    (happy / "mine.png").rename(unsure / "mine.png")  # on second thought: not sure after all
    assert (
        reviewer.scan() == 1 and review.label_summary(journal)[0] == {} and review.user_labels(journal) == []
    )

    # A file facesortd re-examined and sorted, moved back to quarantine by the person: theirs too.
    (unsure / "sorted.png").rename(happy / "sorted.png")
    _placed(journal, happy / "sorted.png", Decision("sorted", "happy", confidence=0.9), unsure / "sorted.png")
    (happy / "sorted.png").rename(unsure / "sorted.png")

    # Re-examination after a retrain leaves what a person put in quarantine alone, sorts the rest.
    service = Service(settings)
    assert service.process(_SureItIsHappy(), unsure / "mine.png") is None  # type: ignore[arg-type]
    assert service.process(_SureItIsHappy(), unsure / "sorted.png") is None  # type: ignore[arg-type]
    assert service.process(_SureItIsHappy(), unsure / "ours.png") == happy / "ours.png"  # type: ignore[arg-type]
    assert sorted(p.name for p in unsure.iterdir()) == ["mine.png", "sorted.png"]
    service.journal.close()
    journal.close()


def test_a_file_facesortd_is_moving_right_now_is_not_taken_for_a_label(settings: Settings) -> None:
    from facesortd.decide import Decision
    from facesortd.journal import Journal

    journal = Journal.for_state_dir(settings.state_dir)
    happy = settings.library / "happy"
    happy.mkdir(parents=True)
    cv2.imwrite(str(happy / "x.png"), draw_screenshot("happy", np.random.default_rng(3))[0])
    move = _placed(journal, happy / "x.png", Decision("sorted", "happy", confidence=0.9), done=False)
    reviewer = review.Reviewer(settings, journal)
    assert reviewer.scan() == 0  # moved, but not yet marked done
    journal.finish(move, "done", happy / "x.png")
    assert journal.labels() == []
    journal.close()


def test_a_page_label_whose_recording_a_crash_cut_short_is_found_again(settings: Settings) -> None:
    """The review page moves the file, then records the label: a crash in between (after the move
    was journaled as done, or before, so that recovery completes it) leaves a file in an emotion
    folder that a person put there, and the next scan must take it for their label."""
    from facesortd.content import file_hash
    from facesortd.decide import Decision
    from facesortd.journal import REVIEWER, Journal
    from facesortd.library import Library
    from facesortd.placement import journaled_apply
    from facesortd.recovery import recover

    journal = Journal.for_state_dir(settings.state_dir)
    unsure = settings.library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    rng = np.random.default_rng(4)
    digests = {}
    for name in ("done.png", "planned.png"):
        cv2.imwrite(str(unsure / name), draw_screenshot("sad", rng)[0])
        _placed(journal, unsure / name, Decision.quarantine("unsure"))
        digests[name] = file_hash(unsure / name)
    label = Decision.label("sad")
    final = journaled_apply(
        journal, Library(settings.library), unsure / "done.png", digests["done.png"], label, ModelId(REVIEWER)
    )
    assert final == settings.library / "sad" / "done.png"
    cut = settings.library / "sad" / "planned.png"  # moved, but killed before the move was marked done
    journal.plan(digests["planned.png"], unsure / "planned.png", cut, label, REVIEWER)
    (unsure / "planned.png").rename(cut)
    assert list(recover(journal)) == [f"completed the interrupted move of {unsure / 'planned.png'} -> {cut}"]
    assert review.Reviewer(settings, journal).scan() == 2
    assert {journal.label_for_hash(d)[0] for d in digests.values()} == {"sad"}  # type: ignore[index]
    assert [s for _h, _l, s, _f, _g, _t in journal.labels()] == ["human", "human"]  # labels, not corrections
    journal.close()


def _sorted_right(settings: Settings, shots: dict[Path, str]) -> tuple[int, int]:
    """(files auto-sorted, of them into the right folder) by the model in force, on a fixed labelled set."""
    model = model_store.load_model_in_force(settings)
    pipeline = Pipeline(BrightBlobDetector(), model, settings.recognition, settings.images)  # type: ignore[arg-type]
    decisions = [(pipeline.decide(path), truth) for path, truth in shots.items()]
    sure = [(d.emotion, truth) for d, truth in decisions if d.action == "sorted"]
    return len(sure), sum(guess == truth for guess, truth in sure)


NOISE = 3
"""Every NOISE-th face of the bootstrap crops carries the next emotion's label."""


def _shot(path: Path, emotion: str, rng: np.random.Generator) -> None:
    assert cv2.imwrite(str(path), draw_screenshot(emotion, rng)[0])


@pytest.mark.slow
def test_reviewing_15_files_never_makes_the_model_in_force_sort_fewer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new user's path from the issue: a modest model, 30 screenshots, 15 of them reviewed."""
    from conftest import write_crop_dataset

    from facesortd import cli
    from facesortd.journal import Journal
    from facesortd.learn.retrain import retrain_if_due

    monkeypatch.setattr(model_store, "shipped_model", lambda: None)
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    monkeypatch.setattr(retrain, "FaceDetector", BrightBlobDetector)
    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    for key, value in (("INBOX", "inbox"), ("LIBRARY", "lib"), ("STATE_DIR", "state")):
        monkeypatch.setenv(f"FACESORTD_{key}", str(tmp_path / value))
    monkeypatch.setenv("FACESORTD_WATCH__SETTLE_S", "0.1")
    monkeypatch.setenv("FACESORTD_LEARNING__REVIEW_SCAN_S", "0.2")  # retrain_after_labels: default 20
    crops = write_crop_dataset(tmp_path / "small", per_class=8, seed=4)
    for k, emotion in enumerate(EMOTIONS):  # a sloppily labelled start: a modest model
        for path in sorted((crops / emotion).iterdir())[::NOISE]:
            path.rename(crops / EMOTIONS[(k + 1) % 4] / f"x{path.name}")
    assert cli.main(["train", str(crops), "--kind", "crops", "--descriptor", "hog", "--folds", "2"]) == 0
    settings = load_settings()
    assert model_store.model_in_force(settings) is None  # written, not in force
    assert cli.main(["model", "use", str(model_store.user_models(settings)[0])]) == 0
    in_force = model_store.model_in_force(settings)
    rng = np.random.default_rng(40)
    (tmp_path / "fixed").mkdir()
    shots = {tmp_path / "fixed" / f"{i}.png": EMOTIONS[i % 4] for i in range(24)}
    for path, emotion in shots.items():
        _shot(path, emotion, rng)
    before = _sorted_right(settings, shots)

    def make(s: Settings) -> Pipeline:
        return Pipeline(BrightBlobDetector(), model_store.load_model_in_force(s), s.recognition, s.images)  # type: ignore[arg-type]

    service = Service(settings, make)
    settings.inbox.mkdir(parents=True)
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING", format="{message}")
    thread = threading.Thread(target=service.run)
    thread.start()
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        wait_until(lambda: (settings.state_dir / "status.json").exists())
        assert all((settings.library / e).is_dir() for e in EMOTIONS)  # made with the library
        (settings.inbox / "album").mkdir()
        wait_until(lambda: any("album: a folder" in w for w in warnings))
        truth = {f"{'abcdef'[i % 6]}{i}.png": EMOTIONS[i % 4] for i in range(30)}
        for name, emotion in truth.items():
            _shot(settings.inbox / name, emotion, rng)
        wait_until(lambda: sum(1 for _ in settings.library.rglob("*.png")) == 30)
        placed = {p.name: p for p in settings.library.rglob("*.png")}
        wrong = [n for n in placed if placed[n].parent.name != truth[n]]  # quarantined or mis-sorted
        assert len(wrong) >= 15, f"the test needs a model that leaves 15 files to review: {len(wrong)}"
        for name in wrong[:15]:  # the person files them where they belong, with a file manager
            placed[name].rename(settings.library / truth[name] / name)
        wait_until(lambda: len(review.user_labels(journal)) == 15)
        assert model_store.model_in_force(settings) == in_force  # 15 < 20 labels: no retrain yet
    finally:
        service.stop()
        thread.join(timeout=HUNG_S)
        logger.remove(sink)
    placed_now = status.gather(settings)
    # The 15 files the person filed count as their labels, the other 15 as facesortd placed them.
    assert sum(placed_now["total"].values()) == 15 and sum(placed_now["labelled"]["total"].values()) == 15
    assert placed_now["retrain"]["new_labels"] == 15
    result = retrain_if_due(settings, journal, review.user_labels(journal), force=True)
    journal.close()
    assert result is not None and "files placed lately that nobody labelled (15 faces)" in result.describe()
    after = _sorted_right(settings, shots)
    assert after[0] >= before[0] and after[1] >= before[1], (before, after, result.describe())


def test_retrain_counts_new_labels_as_status_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` said "next retrain: 5 new label(s)" and `facesortd retrain` then "5 new label(s)"
    for another five (those just found moved), though ten were new: both count alike now. And
    "since the last retrain" was said where no retrain had ever been."""
    from review_setup import install_model, quarantine, review_settings

    from facesortd import cli
    from facesortd.journal import Journal

    settings = review_settings(tmp_path, monkeypatch)
    install_model(settings)
    files = quarantine(settings, "unsure", [("a.png", "happy"), ("b.png", "sad")])
    for name, emotion in (("a.png", "happy"), ("b.png", "sad")):
        (settings.library / emotion).mkdir(exist_ok=True)
        files[name].rename(settings.library / emotion / name)
        if name == "a.png":  # the daemon's look records the first before the person runs retrain
            journal = Journal.for_state_dir(settings.state_dir)
            assert review.Reviewer(settings, journal).scan() == 1
            journal.close()
    cli.main(["retrain"])
    out = capsys.readouterr().out
    assert "2 new label(s), no retrain yet (1 of them just recorded from files you moved)" in out


def test_retrain_tells_a_terminal_its_decision_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd retrain` printed its decision on stdout and logged it again on stderr: scripts
    get it on stdout, the daemon's journal still gets the log line, a terminal shows it once."""
    from review_setup import install_model, quarantine, review_settings

    from facesortd import cli
    from facesortd.journal import Journal

    settings = review_settings(tmp_path, monkeypatch)
    install_model(settings)
    shots = [("a.png", "happy"), ("b.png", "sad"), ("c.png", "sad"), ("d.png", "happy")]
    files = quarantine(settings, "unsure", shots)
    for name, emotion in (("a.png", "happy"), ("b.png", "sad")):
        (settings.library / emotion).mkdir(exist_ok=True)
        files[name].rename(settings.library / emotion / name)
    journal = Journal.for_state_dir(settings.state_dir)
    review.Reviewer(settings, journal).scan()
    logged: list[str] = []
    sink = logger.add(logged.append, level="INFO", format="{message}")
    try:  # as the daemon retrains: the decision goes to its journal
        assert retrain.retrain_if_due(settings, journal, review.user_labels(journal), force=True)
    finally:
        logger.remove(sink)
        journal.close()
    assert any(line.startswith("retrained on 2 labels") for line in logged), logged
    for name, emotion in shots[2:]:  # new labels of two emotions: something to judge a retrain on
        files[name].rename(settings.library / emotion / name)
    capsys.readouterr()
    assert cli.main(["retrain"]) == 0
    out, err = capsys.readouterr()
    assert "new model:" in out and "retrained on" not in err, err
    assert "2 new label(s) since the last retrain" in out  # after the daemon's
    decision = out.splitlines()[-2]
    assert decision and decision not in err


def test_retrain_logs_no_line_per_label_beside_its_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd retrain` logged "…: recorded as sad (human)" at INFO for every file it found moved,
    beside its own count of them: now one summary says how many, the lines are DEBUG."""
    from review_setup import install_model, quarantine, review_settings

    from facesortd import cli

    settings = review_settings(tmp_path, monkeypatch)
    install_model(settings)
    moved = [("a.png", "happy"), ("b.png", "sad"), ("c.png", "sad")]
    files = quarantine(settings, "unsure", moved)
    for name, emotion in moved:
        (settings.library / emotion).mkdir(exist_ok=True)
        files[name].rename(settings.library / emotion / name)
    cli.main(["--log-level", "DEBUG", "retrain"])  # the levels are what is looked at
    out, err = capsys.readouterr()
    assert "3 new label(s), no retrain yet (3 of them just recorded" in out
    recorded = [line.split()[1] for line in err.splitlines() if ": recorded as " in line]
    assert recorded == ["DEBUG"] * 3, err


def test_an_unsure_folder_it_cannot_list_is_said_once_and_looked_at_again_later(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from review_setup import install_model

    unsure = settings.library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    (unsure / "a.png").write_bytes(b"png")
    service = Service(settings)
    install_model(settings)
    real_scandir = os.scandir

    def refused(folder):  # type: ignore[no-untyped-def]
        if Path(folder) == unsure:
            raise PermissionError(13, "Permission denied")
        return real_scandir(folder)

    errors: list[str] = []
    sink = logger.add(errors.append, level="ERROR", format="{message}")
    monkeypatch.setattr(os, "scandir", refused)
    try:
        service._reexamine_unsure()
        service._reexamine_unsure()  # the next look: not said again
        assert len(errors) == 1 and "cannot look again at the files in" in errors[0]
        monkeypatch.setattr(os, "scandir", real_scandir)
        service._reexamine_unsure()  # fixed: the change of model is still acted on
        assert service.queue_length() == 1
    finally:
        logger.remove(sink)
        service.journal.close()


def test_an_unsure_folder_linked_out_of_the_library_is_not_looked_at_again(
    settings: Settings, tmp_path: Path
) -> None:
    """`_quarantine/unsure` made a link to a folder outside the library: once the model changed, the
    daemon queued that folder's files as its own unsure files, to be moved into the library. Its
    moves there were refused; its look at them is now too, and taken once it is put right."""
    from review_setup import install_model

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.png").write_bytes(b"png")
    unsure = settings.library / "_quarantine" / "unsure"
    unsure.parent.mkdir(parents=True)
    unsure.symlink_to(outside)
    service = Service(settings)
    install_model(settings)
    try:
        service._reexamine_unsure()
        assert service.queue_length() == 0
        unsure.unlink()
        unsure.mkdir()
        (unsure / "b.png").write_bytes(b"png")
        service._reexamine_unsure()  # put right: the change of model is still acted on
        assert service.queue_length() == 1
    finally:
        service.journal.close()


def test_unsure_files_the_model_in_force_put_there_are_not_judged_again(settings: Settings) -> None:
    """A daemon's first start (no model on record) looks again at the unsure files once its first
    learning pass has run: the files of its first backlog that it had just put there with the same
    model were judged a second time. Only files another model (or nobody facesortd knows) put there
    are looked at again: by name and content (another version of its file: another model), or by
    name alone where an older facesortd journaled only that."""
    from review_setup import install_model

    unsure = settings.library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    install_model(settings)
    service = Service(settings)
    service._unsure_judged_by = None  # as at a first start
    in_force = model_store.model_id(model_store.model_in_force(settings))
    for name, model in (
        ("mine.png", in_force),
        ("bare.png", ModelId(in_force.name)),  # as an older facesortd journaled it
        ("another_version.png", ModelId(in_force.name, "0" * model_store.VERSION_CHARS)),
        ("older.png", ModelId("20250101-000000.fsm.npz")),
        ("kept.png", None),
    ):
        (unsure / name).write_bytes(name.encode())
        if model is not None:
            unsure_ = Decision.quarantine("unsure")
            move = service.journal.plan(
                name, settings.inbox / name, unsure / name, unsure_, model.name, version=model.version
            )
            service.journal.finish(move, "done", unsure / name)
    said: list[str] = []
    sink = logger.add(said.append, level="INFO", format="{message}")
    try:
        service._reexamine_unsure()
        queued = sorted(service._queue.get_nowait().name for _ in range(service.queue_length()))
        assert queued == ["another_version.png", "kept.png", "older.png"]
        assert said == ["looking again at 3 unsure file(s) another model judged\n"]
    finally:
        logger.remove(sink)
        service.journal.close()


def _model_and_a_copy(settings: Settings) -> tuple[Path, Path]:
    """The drawn model in force (A) and a copy of it under another name (B), not in force: two
    models the daemon tells apart by their key, for the tests of a model changing mid-sort."""
    from review_setup import install_model

    install_model(settings)
    first = model_store.model_in_force(settings)
    assert first is not None
    second = first.with_name("20260102-000000.fsm.npz")
    shutil.copy(first, second)
    return first, second


def _drop_and_queue(service: Service, settings: Settings) -> None:
    """A drawn a.png put into the inbox and queued for ``service``'s worker."""
    settings.inbox.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(settings.inbox / "a.png"), draw_screenshot("happy", np.random.default_rng(1))[0])
    service.enqueue(settings.inbox / "a.png")


def test_unsure_files_of_a_model_rolled_back_between_two_looks_are_looked_at_again(
    settings: Settings,
) -> None:
    """A -> B -> A between two learning looks: the model in force was A at both, so the second change
    was not seen, and the files B's worker left unsure were never looked at by A. A model a worker
    took up meanwhile (only such a one judged any file) now counts as a change, once."""
    unsure = settings.library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    first, second = _model_and_a_copy(settings)
    service = Service(settings)
    try:
        service._reexamine_unsure()  # the look the test starts from: A judged what is there
        model_store.adopt(settings, second)
        _drop_and_queue(service, settings)
        service._queue.put(None)  # then the worker stops
        service._work(stub_pipeline(settings), service._unsure_judged_by)  # takes B up, sorts a.png
        assert not (settings.inbox / "a.png").exists()
        (unsure / "b.png").write_bytes(b"png")  # and B left this one unsure
        move = service.journal.plan(
            "b.png", settings.inbox / "b.png", unsure / "b.png", Decision.quarantine("unsure"), second.name
        )
        service.journal.finish(move, "done", unsure / "b.png")
        model_store.adopt(settings, first)  # rolled back before the next look
        service._reexamine_unsure()
        assert service._queue.get_nowait() == unsure / "b.png"
        service._claimed.clear()
        service._reexamine_unsure()  # looked at once: not again at every look
        assert service.queue_length() == 0
    finally:
        service.journal.close()


def test_a_file_judged_unsure_by_the_old_model_while_a_look_runs_is_judged_again(
    settings: Settings,
) -> None:
    """A model put in force, and the look again at the unsure files run, while a worker judged a file
    with the old model: the look did not find it in unsure/ yet, the file landed there after it, and no
    later look took it up (the model unchanged). It now goes back to be judged by the new model, once."""
    unsure = settings.library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    _first, second = _model_and_a_copy(settings)
    service = Service(settings)
    try:
        service._reexamine_unsure()  # the look the test starts from: A judged what is there
        held = service._unsure_judged_by
        pipeline = stub_pipeline(settings)  # the worker's old model: every face unsure
        judge = pipeline.decide

        def judged_as_the_look_runs(path: Path) -> Decision:
            decision = judge(path)
            if path.parent == settings.inbox:  # B put in force and looked with, a.png still in flight
                model_store.adopt(settings, second)
                service._reexamine_unsure()
            return decision

        pipeline.decide = judged_as_the_look_runs  # type: ignore[method-assign]
        _drop_and_queue(service, settings)
        service._queue.put(None)  # then the worker stops
        service._work(pipeline, held)
        assert (unsure / "a.png").exists()
        assert service._queue.get_nowait() == unsure / "a.png"
        service._queue.put(unsure / "a.png")
        service._queue.put(None)
        service._work(pipeline, held)  # takes B up and judges it again, through the sorter
        assert not (unsure / "a.png").exists()
        assert service.queue_length() == 0  # once, not again
        service._reexamine_unsure()  # nor by the next look
        assert service.queue_length() == 0
    finally:
        service.journal.close()


def test_a_file_is_journaled_under_the_model_its_worker_judged_it_with(settings: Settings) -> None:
    """Another worker took a new model up while this one judged a file with the old: the move was
    journaled under the new model's name (the sorter's, which the first worker to take a model up
    changes), so the journal and the looks again at unsure files took it for the new model's."""
    first, second = _model_and_a_copy(settings)
    service = Service(settings)
    try:
        service._reexamine_unsure()
        held = service._unsure_judged_by
        service.sorter.model = model_store.model_id(first)  # as the daemon's start sets it
        pipeline = stub_pipeline(settings)  # this worker's old model: every face unsure
        judge = pipeline.decide

        def judged_as_another_worker_takes_up_the_new(path: Path) -> Decision:
            decision = judge(path)
            model_store.adopt(settings, second)
            taken = service._take_up_model(stub_pipeline(settings))  # the other worker
            assert taken == model_store.model_id(second)
            return decision

        pipeline.decide = judged_as_another_worker_takes_up_the_new  # type: ignore[method-assign]
        _drop_and_queue(service, settings)
        service._queue.put(None)
        service._work(pipeline, held, model_store.model_id(first))
        unsure = settings.library / "_quarantine" / "unsure"
        assert service.journal.judged_by(unsure) == {unsure / "a.png": model_store.model_id(first)}
        assert service.sorter.model.name == second.name  # what the daemon says it runs with
    finally:
        service.journal.close()


def test_a_first_start_with_no_unsure_file_to_look_again_at_says_nothing(settings: Settings) -> None:
    """Every first start of a daemon logged "model in force changed: looking again at 0 unsure
    file(s)" though nobody had changed the model: nothing to look at is nothing to say."""
    from review_setup import install_model

    install_model(settings)
    service = Service(settings)
    service._unsure_judged_by = None  # as at a first start
    (settings.library / "_quarantine" / "unsure").mkdir(parents=True)
    said: list[str] = []
    sink = logger.add(said.append, level="INFO", format="{message}")
    try:
        service._reexamine_unsure()
        assert service.queue_length() == 0
        assert said == []
        assert service._unsure_judged_by is not None  # the look was taken, not put off
    finally:
        logger.remove(sink)
        service.journal.close()


def test_a_new_model_in_force_is_said_once_however_many_workers_take_it_up(settings: Settings) -> None:
    """Each worker loads the new model into its own pipeline; each also logged "model changed: now
    using …", one line per worker for one change."""
    from review_setup import install_model

    service = Service(settings)
    install_model(settings)
    pipelines = [stub_pipeline(settings) for _ in range(2)]
    said: list[str] = []
    sink = logger.add(said.append, level="INFO", format="{message}")
    try:
        for pipeline in pipelines:
            service._take_up_model(pipeline)
    finally:
        logger.remove(sink)
        service.journal.close()
    assert all(p.model is not None for p in pipelines)
    assert [line for line in said if line.startswith("model changed")] == [
        "model changed: now using 20260101-000000.fsm.npz\n"
    ]
