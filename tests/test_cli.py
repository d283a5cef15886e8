"""The command line as a user drives it: train, sort (dry-run, copy, json), detect, eval, doctor."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import isolate, use_fake_detector, write_crop_dataset
from synthetic import EMOTIONS, BrightBlobDetector, draw_face, draw_screenshot

from facesortd import cli, durable, model_store
from facesortd.cli import undo as undo_command
from facesortd.config import load_settings
from facesortd.descriptors import DEFAULT_ENSEMBLE
from facesortd.learn.training import FaceSet
from facesortd.model_store import models_dir, validation_path


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A model of the drawn faces, HOG + LBP alone, trained and put in force once for the module
    (the models folder it left, and train's output): the shipped net inside the default ensemble
    never saw drawn faces, and the ensemble's vote on one of them rested on the members' temperatures."""
    root = tmp_path_factory.mktemp("trained")
    crops = write_crop_dataset(root / "crops", per_class=30)
    train = ["train", str(crops), "--kind", "crops", "--folds", "3", "--descriptor", "hog+lbp", "--activate"]
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()) as out:
        isolate(mp, root / "home")
        use_fake_detector(mp)
        assert cli.main(train) == 0
        models = models_dir(load_settings())
    return models, out.getvalue()


@pytest.fixture
def trained(trained_once: tuple[Path, str], fake_detector: None) -> str:
    """That model in force in this test's own state folder; train's output."""
    models, out = trained_once
    shutil.copytree(models, models_dir(load_settings()))
    return out


def _inbox(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    rng = np.random.default_rng(7)
    truth = {}
    for i, emotion in enumerate(EMOTIONS * 2):
        img, _ = draw_screenshot(emotion, rng)
        name = f"shot {i} ü.png"
        cv2.imwrite(str(inbox / name), img)
        truth[name] = emotion
    cv2.imwrite(str(inbox / "landscape.png"), np.full((200, 300, 3), 60, np.uint8))
    (inbox / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    return inbox, truth


def test_train_reports_counts_held_out_figures_and_writes_model(trained: str, tmp_path: Path) -> None:
    assert "faces per emotion:" in trained and "balanced accuracy:" in trained
    assert "confusion matrix" in trained
    line = next(ln for ln in trained.splitlines() if ln.startswith("balanced accuracy"))
    assert float(line.split()[2]) >= 0.9
    models = list(Path(__import__("os").environ["XDG_STATE_HOME"]).glob("facesortd/models/*.fsm.npz"))
    assert len(models) == 1
    assert "validation set held out from training" in trained
    held = FaceSet.load(validation_path(models[0]))  # what later retrains are checked against
    assert 0 < len(held.labels) < 0.3 * sum(int(n) for n in _counts(trained).values())


def _counts(output: str) -> dict[str, str]:
    """The "faces per emotion" block of `train`'s output."""
    lines = output.split("faces per emotion:\n", 1)[1].splitlines()
    return dict(
        ln.split() for ln in lines[: next(i for i, ln in enumerate(lines) if not ln.startswith("  "))]
    )


def test_sort_dry_run_touches_nothing(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, _ = _inbox(tmp_path)
    before = sorted(p.name for p in inbox.iterdir())
    lib = tmp_path / "lib"
    assert cli.main(["sort", str(inbox), "--library", str(lib), "--dry-run", "--json"]) == 0
    assert sorted(p.name for p in inbox.iterdir()) == before and not lib.exists()
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(before)
    assert cli.main(["sort", str(inbox), "--library", str(lib), "--dry-run"]) == 0
    plan = capsys.readouterr().out.splitlines()  # the plan is the output: on stdout, not in the log
    assert len(plan) == len(before) and all(" would go to " in line for line in plan)
    assert any(line.endswith("[quarantined: no-face]") for line in plan)


def test_sort_dry_run_of_an_inbox_not_made_yet_creates_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--help promises a dry run touches nothing; it made the configured inbox all the same."""
    inbox = tmp_path / "not yet" / "inbox"
    monkeypatch.setenv("FACESORTD_INBOX", str(inbox))
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    assert cli.main(["sort", "--dry-run"]) == 0
    assert not (tmp_path / "not yet").exists() and not (tmp_path / "lib").exists()
    assert "nothing to sort" in capsys.readouterr().err
    assert cli.main(["sort"]) == 0 and inbox.is_dir()  # a real sort makes it, for the next drop


def test_sort_moves_files_by_emotion_and_quarantines_the_rest(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, truth = _inbox(tmp_path)
    lib = tmp_path / "lib"
    assert cli.main(["sort", str(inbox), "--library", str(lib), "--json"]) == 0
    out = {Path(d["path"]).name: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert list(inbox.iterdir()) == []
    for name, emotion in truth.items():
        assert out[name]["action"] == "sorted" and out[name]["emotion"] == emotion
        assert Path(out[name]["destination"]) == lib / emotion / name and (lib / emotion / name).is_file()
    assert out["landscape.png"]["reason"] == "no-face"
    assert (lib / "_quarantine" / "no-face" / "landscape.png").is_file()
    assert out["broken.png"]["reason"] == "unreadable"
    assert (lib / "_quarantine" / "unreadable" / "broken.png").is_file()


def test_sort_looks_again_at_the_no_face_quarantine(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """After an upgrade that finds more faces, `sort <library>/_quarantine/no-face` places what it
    now can and leaves the rest where it was, nothing lost or duplicated."""
    lib = tmp_path / "lib"
    no_face = lib / "_quarantine" / "no-face"
    no_face.mkdir(parents=True)
    img, _ = draw_screenshot("happy", np.random.default_rng(3))
    cv2.imwrite(str(no_face / "close-up.png"), img)
    cv2.imwrite(str(no_face / "landscape.png"), np.full((200, 300, 3), 60, np.uint8))
    assert cli.main(["sort", str(no_face), "--library", str(lib), "--json"]) == 0
    out = {Path(d["path"]).name: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert out["close-up.png"]["action"] == "sorted" and (lib / "happy" / "close-up.png").is_file()
    assert sorted(p.name for p in no_face.iterdir()) == ["landscape.png"]
    assert sorted(p.name for p in lib.rglob("*.png")) == ["close-up.png", "landscape.png"]


def test_sort_copy_keeps_originals_and_summarises(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox, _ = _inbox(tmp_path)
    n = len(list(inbox.iterdir()))
    lib = tmp_path / "lib"
    assert cli.main(["sort", str(inbox), "--library", str(lib), "--copy"]) == 0
    assert len(list(inbox.iterdir())) == n
    assert len([p for p in lib.rglob("*") if p.is_file()]) == n
    err = capsys.readouterr().err
    assert "sorted 8 (angry 2, happy 2, sad 2, surprised 2); quarantined 2 (no-face 1, unreadable 1)" in err


def test_sort_copy_twice_or_then_moved_puts_each_file_in_the_library_once(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `sort --copy` of the same folder, or a move of a file whose copy is still there,
    made "name (1)" twins in the library; now the file stays and the output says where its copy is."""
    shots, truth = _inbox(tmp_path)
    lib = tmp_path / "lib"
    assert cli.main(["sort", str(shots), "--library", str(lib), "--copy"]) == 0
    placed = sorted(p.relative_to(lib) for p in lib.rglob("*") if p.is_file())
    capsys.readouterr()
    assert cli.main(["sort", str(shots), "--library", str(lib), "--copy"]) == 0
    assert "copied into the library before" in capsys.readouterr().err
    one = shots / next(iter(truth))
    assert cli.main(["sort", str(one), "--library", str(lib)]) == 0  # a move, named: still no twin
    assert sorted(p.relative_to(lib) for p in lib.rglob("*") if p.is_file()) == placed
    assert len(list(shots.iterdir())) == len(truth) + 2  # every original where it was
    copy = lib / truth[one.name] / one.name
    copy.unlink()  # the person removed the copy: copying it again is what they ask for now
    assert cli.main(["sort", str(one), "--library", str(lib), "--copy"]) == 0
    assert copy.is_file() and one.is_file()


def test_sort_copy_refuses_the_inbox(
    trained: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Originals copied from the inbox stay there, where the daemon would sort them again."""
    inbox, _ = _inbox(tmp_path)
    monkeypatch.setenv("FACESORTD_INBOX", str(inbox))
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    assert cli.main(["sort", "--copy"]) == 2
    assert "--copy leaves the originals where they are" in capsys.readouterr().err
    assert cli.main(["sort", "--copy", str(inbox / "landscape.png")]) == 2
    assert cli.main(["sort", "--copy", str(tmp_path)]) == 2  # a folder holding the inbox
    assert not (tmp_path / "lib").exists()


def test_detect_json_and_draw(trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img, _ = draw_screenshot("sad", np.random.default_rng(1))
    cv2.imwrite(str(tmp_path / "a.png"), img)
    assert cli.main(["detect", str(tmp_path / "a.png"), "--json", "--draw", str(tmp_path / "drawn")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["path"].endswith("a.png") and len(result["faces"]) == 1
    face = result["faces"][0]
    assert len(face["box"]) == 4 and face["emotion"] == "sad" and 0 <= face["confidence"] <= 1
    drawn = cv2.imread(str(tmp_path / "drawn" / "a.png"))
    x, y, w, h = face["box"]
    assert (drawn[y + h // 2, x] == (0, 0, 255)).all()  # the box's left edge, in red
    assert (drawn[y + h // 2, x + w // 2] == img[y + h // 2, x + w // 2]).all()  # the face itself untouched


def test_detect_says_why_it_found_no_face(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`detect` on a picture without a face said only "0 face(s)": now whether the cascade proposed
    nothing, or proposed candidates that the verifier turned down (and the best score). The real
    cascade and verifier: what they propose and reject is the point."""
    cv2.imwrite(str(tmp_path / "flat.png"), np.full((200, 300, 3), 60, np.uint8))
    cv2.imwrite(
        str(tmp_path / "noise.png"), np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    )
    assert cli.main(["detect", str(tmp_path / "flat.png"), str(tmp_path / "noise.png")]) == 0
    flat, noise = capsys.readouterr().out.splitlines()
    assert flat.endswith("flat.png: 0 face(s): the cascade proposed no candidate")
    assert re.search(
        r"noise\.png: 0 face\(s\): the cascade proposed \d+ candidate\(s\), the verifier rejected them "
        r"\(best score 0\.\d\d, detection\.min_score 0\.50\)$",
        noise,
    ), noise
    assert cli.main(["detect", "--json", str(tmp_path / "flat.png"), str(tmp_path / "noise.png")]) == 0
    flat_json, noise_json = map(json.loads, capsys.readouterr().out.splitlines())
    assert flat_json["faces"] == [] and flat_json["candidates"] == {"proposed": 0, "best_score": None}
    assert noise_json["candidates"]["proposed"] >= 1 and 0 <= noise_json["candidates"]["best_score"] < 0.5


def test_detect_runs_detection_once_per_picture_without_a_face(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """To say why it found no face, `detect` ran every pass of the detector a second time; it now
    says so from the one run. The real detector, as its passes are what is counted."""
    from facesortd.detect import FaceDetector

    runs: list[int] = []
    candidates = FaceDetector.candidates

    def counted(self: FaceDetector, *args: object, **kwargs: object) -> object:
        runs.append(1)
        return candidates(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FaceDetector, "candidates", counted)
    cv2.imwrite(str(tmp_path / "flat.png"), np.full((200, 300, 3), 60, np.uint8))
    cv2.imwrite(
        str(tmp_path / "noise.png"), np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    )
    assert cli.main(["detect", str(tmp_path / "flat.png"), str(tmp_path / "noise.png")]) == 0
    assert "the verifier rejected them" in capsys.readouterr().out
    assert len(runs) == 2


def test_detect_draw_never_replaces_a_file(
    fake_detector: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`detect shot.png --draw .` wrote the drawn copy over the screenshot itself (and over any file
    of that name in OUT_DIR, `a.jpg` and `a.png` over each other); a file named as OUT_DIR ended
    in a FileExistsError traceback."""
    img, _ = draw_screenshot("sad", np.random.default_rng(1))
    shot = tmp_path / "a.png"
    cv2.imwrite(str(shot), img)
    original = shot.read_bytes()
    assert cli.main(["detect", str(shot), "--draw", str(tmp_path)]) == 0
    assert shot.read_bytes() == original
    drawn = tmp_path / "a (1).png"
    assert f"  drawn: {drawn}" in capsys.readouterr().out.splitlines()
    assert cv2.imread(str(drawn)).shape == img.shape
    not_a_folder = tmp_path / "a file"
    not_a_folder.write_bytes(b"x")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["detect", str(shot), "--draw", str(not_a_folder)])
    assert exit_.value.code == 2 and not_a_folder.read_bytes() == b"x"
    assert f"argument --draw: {not_a_folder} is not a folder" in capsys.readouterr().err


def test_detect_refuses_a_missing_name_and_reads_a_folder_like_sort(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["detect", str(tmp_path / "typo.png")]) == 2
    assert "typo.png: no such file or folder" in capsys.readouterr().err
    img, _ = draw_screenshot("happy", np.random.default_rng(2))
    (tmp_path / "shots").mkdir()
    cv2.imwrite(str(tmp_path / "shots" / "b.png"), img)
    (tmp_path / "shots" / "notes.txt").write_text("not an image")
    assert cli.main(["detect", str(tmp_path / "shots"), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["path"] for line in lines] == [str(tmp_path / "shots" / "b.png")]


def test_eval_measures_a_model(trained: str, crop_dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["eval", str(crop_dataset), "--kind", "crops", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)  # stdout is the JSON document and nothing else
    assert figures["balanced_accuracy"] > 0.9 and figures["n"] == 4 * 30


def test_eval_calls_faces_held_out_only_where_they_were_and_says_which_the_model_learnt(
    trained: str, crop_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`eval` headed its figures "held-out faces" whatever it was given, the model's own training
    folder too, whose figures flatter it; `train`'s cross-validated figures are the held-out ones."""
    from facesortd.cli.evaluate import learnt_from
    from facesortd.model_store import load_model_in_force

    assert "held-out faces: " in trained  # train's
    assert cli.main(["eval", str(crop_dataset), "--kind", "crops"]) == 0
    out, err = capsys.readouterr()
    assert "\nfaces: 120\n" in out and "held-out" not in out and "was trained from" not in err
    model = load_model_in_force(load_settings())
    assert model is not None
    [learnt] = model.info["trained_from"]
    assert cli.main(["eval", learnt, "--kind", "crops"]) == 0
    out, err = capsys.readouterr()
    assert "held-out" not in out
    assert f"the model was trained from {learnt} (its `train` recorded it): these figures are of faces" in err
    # as an older `train` recorded it, and the shipped model still does: relative to a folder not named
    model.info["trained_from"] = ["../shared/data/anime_expressions"]
    shared, other = Path("/x/shared/data/anime_expressions"), Path("/x/data/anime_expressions")
    assert learnt_from(model, [shared, other]) == [shared]


def test_doctor_says_what_to_fix(
    fake_detector: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli.main(["doctor"]) == 0  # defaults, the shipped model: nothing to fix
    assert "ok    emotion model:" in capsys.readouterr().out
    monkeypatch.setattr("facesortd.model_store.shipped_model", lambda: None)
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "ok    inbox" in out and "created on first use" in out and "FIX   emotion model: none yet" in out
    assert "1 problem(s) found" in out
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "file"))
    monkeypatch.setenv("FACESORTD_INBOX", str(tmp_path / "file" / "sub"))
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "library" in out and "is not a folder" in out and "overlap: keep them as separate folders" in out


def test_train_on_too_few_faces_to_hold_any_out_says_so(
    tmp_path: Path, fake_detector: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first try with a face or two per emotion (the default ensemble): every cross-validation
    fold lacked two emotions to learn from, and `train` ended in a traceback ("zip() argument 2 is
    shorter than argument 1")."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=1)
    for name in ("angry", "surprised"):
        shutil.rmtree(crops / name)
    for share in ("0.1", "0"):  # the validation set takes one emotion; else no fold has two to learn
        assert cli.main(["train", str(crops), "--kind", "crops", "--validation-share", share]) == 2
        err = capsys.readouterr().err
        assert "too few faces" in err and "Traceback" not in err


def test_doctor_and_status_say_the_model_put_in_force_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    """models/current named a file no longer there (deleted, or a state folder copied without it):
    the shipped model took over in silence, and doctor said "all good" while files went unsure."""
    models = load_settings().state_dir / "models"
    models.mkdir(parents=True)
    (models / "current").write_text("20260101-120000.fsm.npz")
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert f"FIX   the emotion model put in force, 20260101-120000.fsm.npz, is not in {models}" in out
    assert "`facesortd model use default`" in out
    assert cli.main(["status", "--json"]) == 0
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert "the emotion model put in force, 20260101-120000.fsm.npz, is not in" in problem
    assert cli.main(["model", "use", "default"]) == 0  # the advice, followed
    capsys.readouterr()
    assert cli.main(["doctor"]) == 0


def test_doctor_and_status_say_the_pointer_to_the_model_in_force_is_gone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """models/current deleted by hand (`rm models/cur*`, a state folder copied in part): the shipped
    model took over and nothing said so, not even doctor, though the history named the person's model."""
    from facesortd import model_store

    settings = load_settings()
    shipped = model_store.shipped_model()
    assert shipped is not None
    mine = model_store.save_new_model(settings, lambda dest: shutil.copyfile(shipped, dest))
    model_store.adopt(settings, mine)
    (models_dir(settings) / model_store.CURRENT).unlink()
    assert model_store.model_in_force(settings) == shipped
    assert cli.main(["doctor"]) == 1
    said = capsys.readouterr().out
    assert f"is missing (deleted?), so the shipped model is used, though {mine.name}" in said
    assert cli.main(["status", "--json"]) == 0
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert f"`facesortd model use {mine}` puts it back" in problem
    assert cli.main(["model", "use", str(mine)]) == 0  # the advice, followed
    capsys.readouterr()
    assert cli.main(["doctor"]) == 0


def test_a_model_put_in_force_damaged_since_leaves_the_shipped_one_in_use_and_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model models/current names truncated by hand (a half copy put back, a damaged disk): the
    daemon would not start (exit 2, "corrupt"), nor `sort`, and `status` printed that line alone;
    `model rollback` went back to it from the model before. Now it counts as gone: the shipped model
    is used, each says so with what to do, and rollback goes back past it."""
    from facesortd import model_store

    settings = load_settings()
    shipped = model_store.shipped_model()
    assert shipped is not None
    older, damaged = (
        model_store.save_new_model(settings, lambda dest: shutil.copyfile(shipped, dest)) for _ in range(2)
    )
    for path in (older, damaged):
        model_store.adopt(settings, path)
    os.truncate(damaged, 1000)
    assert model_store.model_in_force(settings) == shipped
    assert model_store.load_model_in_force(settings) is not None  # what the daemon starts with
    assert cli.main(["doctor"]) == 1
    assert "cannot be read" in capsys.readouterr().out
    assert cli.main(["status", "--json"]) == 0
    [problem] = json.loads(capsys.readouterr().out)["problems"]
    assert "the shipped model is used: `facesortd model rollback` puts back the one" in problem
    (tmp_path / "shot.png").write_bytes(cv2.imencode(".png", np.zeros((60, 80), np.uint8))[1].tobytes())
    assert cli.main(["sort", "--dry-run", str(tmp_path / "shot.png")]) == 0
    assert cli.main(["model", "rollback"]) == 0  # the advice, followed
    assert f"model in force is now {older}" in capsys.readouterr().out
    model_store.adopt(settings, damaged)
    os.truncate(older, 1000)  # nothing readable to go back to but the shipped model
    assert model_store.rollback(settings) == shipped


def test_doctor_names_a_file_where_the_quarantine_folder_belongs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file named `_quarantine` in the library made every quarantined file fail to move, and
    doctor said "all good"."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "_quarantine").write_text("a note")
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    cli.main(["doctor"])
    out = capsys.readouterr().out
    assert f"FIX   {tmp_path / 'lib' / '_quarantine'} is a file, not a folder: move that file away" in out


def test_doctor_flags_a_model_in_force_that_learnt_nothing(
    crop_dataset: Path,
    fake_detector: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from facesortd import model_store
    from facesortd.ensemble import load_model

    assert cli.main(["train", str(crop_dataset), "--kind", "crops", "--descriptor", "hog", "--activate"]) == 0
    settings = load_settings()
    model = load_model(model_store.model_in_force(settings))
    model.info["held_out"] = {**model.info["held_out"], "balanced_accuracy": 0.26, "chance": 0.25}
    model_store.adopt(settings, model_store.save_new_model(settings, model.save))
    capsys.readouterr()
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "has learnt next to nothing" in out and "facesortd model rollback" in out
    # The shipped model is judged out of source and there is nothing to go back to: doctor says what
    # that means for the user instead of asking for a fix.
    monkeypatch.setattr(model_store, "shipped_model", lambda: model_store.model_in_force(settings))
    code = cli.main(["doctor"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "the shipped one" in out and "until your reviews train it" in out


def test_doctor_does_not_send_a_model_that_sorts_nothing_back_to_one_that_sorts_nothing_either(
    crop_dataset: Path, fake_detector: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A retrain on a few labels, adopted since it was no worse, auto-sorts none of its held-out
    faces, as the shipped model it came from: doctor said FIX, "go back with `facesortd model
    rollback`", to that shipped model, which it calls fine, and which sorts nothing either (the
    person's labels thrown away for nothing). Going back is advised only where it would sort more."""
    from facesortd import model_store
    from facesortd.ensemble import load_model

    assert cli.main(["train", str(crop_dataset), "--kind", "crops", "--descriptor", "hog"]) == 0
    settings = load_settings()
    [trained] = model_store.user_models(settings)
    model = load_model(trained)
    unsure = {**model.info["held_out"], "balanced_accuracy": 0.5, "chance": 0.25, "coverage": 0.0}
    model.info["held_out"] = unsure
    model_store.adopt(settings, model_store.save_new_model(settings, model.save))
    capsys.readouterr()
    assert cli.main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert "rollback" not in out and "auto-sorts 0%" in out and "until your reviews train it" in out
    model_store.adopt(settings, trained)  # one that sorts, then one that does not: going back helps
    model_store.adopt(settings, model_store.save_new_model(settings, model.save))
    capsys.readouterr()
    assert cli.main(["doctor"]) == 1
    assert "has learnt next to nothing" in capsys.readouterr().out


def test_user_errors_are_one_line_not_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[recognition]\nthreshold = 2\n")
    assert cli.main(["--config", str(cfg), "sort", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "recognition.threshold = 2" in err and "Traceback" not in err
    assert cli.main(["train", str(tmp_path / "missing")]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "D", "--folds", "1"], "--folds: must be at least 2, got 1"),
        (["train", "D", "--face-size", "8"], "--face-size: must be at least 16, got 8"),
        (["train", "D", "--epochs", "two"], "--epochs: not a whole number: 'two'"),
        (
            ["train", "D", "--validation-share", "0.7"],
            "--validation-share: must be between 0 and 0.5, got 0.7",
        ),
        (["train-detector", "--out", "c.xml", "--stages", "0"], "--stages: must be at least 1, got 0"),
        (["train-detector", "--out", "c.xml", "--min-hit-rate", "1.5"], "must be between 0 and 1, got 1.5"),
        (["review", "--port", "99999"], "--port: must be at most 65535, got 99999"),  # was an OverflowError
    ],
)
def test_bad_numbers_are_refused_before_any_work(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "D", "--report", "{file}"], "argument --report: {file} is not a folder"),
        (["train", "D", "--out", "{folder}"], "argument --out: {folder} is a folder: name the file to write"),
        (["eval", "D", "--plots", "{file}"], "argument --plots: {file} is not a folder"),
        (["detect", "x.png", "--draw", "{file}"], "argument --draw: {file} is not a folder"),
        (["train-detector", "--out", "{folder}"], "argument --out: {folder} is a folder"),
        (
            ["train-detector", "--out", "c.xml", "--verifier-out", "{folder}"],
            "argument --verifier-out: {folder}",
        ),
        # A typo away from a person's screenshot: it was replaced by the model, cascade or verifier.
        (["train", "D", "--out", "{file}"], "argument --out: {file} exists and is not a facesortd model"),
        (["train-detector", "--out", "{file}"], "argument --out: {file} exists and is not a cascade file"),
        (
            ["train-detector", "--out", "c.xml", "--verifier-out", "{file}"],
            "argument --verifier-out: {file} exists and is not a facesortd verifier file",
        ),
    ],
)
def test_output_places_of_the_wrong_kind_are_refused_before_any_work(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file where figures go, or a folder where a model goes: a traceback once training (minutes
    of it) was done and the figures or the model were due."""
    file, folder = tmp_path / "a file", tmp_path / "a folder"
    file.write_bytes(b"x")
    folder.mkdir()
    with pytest.raises(SystemExit) as exit_:
        cli.main([part.format(file=file, folder=folder) for part in argv])
    assert exit_.value.code == 2 and message.format(file=file, folder=folder) in capsys.readouterr().err
    assert file.read_bytes() == b"x" and list(folder.iterdir()) == []


def test_output_files_of_their_own_kind_are_replaced(tmp_path: Path) -> None:
    """Retraining into the same file is normal: a model, cascade or verifier there is replaced, not
    refused. A bare .npy is no model: refused, not a traceback."""
    from facesortd.cli.app import build_parser
    from facesortd.detect import SHIPPED_CASCADE, SHIPPED_VERIFIER, shipped_file
    from facesortd.model_store import shipped_model

    model, cascade, verifier = shipped_model(), shipped_file(SHIPPED_CASCADE), shipped_file(SHIPPED_VERIFIER)
    assert model and cascade and verifier
    parser = build_parser()
    assert parser.parse_args(["train", "D", "--out", str(model)]).out == model
    args = parser.parse_args(["train-detector", "--out", str(cascade), "--verifier-out", str(verifier)])
    assert (args.out, args.verifier_out) == (cascade, verifier)
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "D", "--out", str(tmp_path / "a.npy")])


def test_retraining_to_the_same_file_without_a_validation_set_removes_the_old_one(
    crop_dataset: Path, fake_detector: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The set held out from the model replaced may be in the new one's training data: left beside
    it, every later retrain (and `model use`, which copies it along) judged it on faces it had seen."""
    out = tmp_path / "m.fsm.npz"
    train = ["train", str(crop_dataset), "--kind", "crops", "--folds", "2", "--descriptor", "hog+lbp"]
    assert cli.main([*train, "--out", str(out)]) == 0
    assert FaceSet.load(validation_path(out)).labels
    assert cli.main([*train, "--validation-share", "0", "--out", str(out)]) == 0
    assert "no validation set held out" in capsys.readouterr().out
    assert out.is_file() and not validation_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crops", "m.fsm.npz"]


@pytest.mark.parametrize("share", ["0", "0.2"])
def test_train_out_never_replaces_another_file_where_its_validation_set_goes(
    tmp_path: Path, share: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train` replaces (or, with share 0, removes) the validation set beside --out: a person's file
    of that name is refused before training, like one at --out itself."""
    out = tmp_path / "m.fsm.npz"
    mine = validation_path(out)
    mine.write_bytes(b"my notes")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", str(tmp_path / "no such dataset"), "--validation-share", share, "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"{mine} exists and is not a validation set" in err, err
    assert mine.read_bytes() == b"my notes" and not out.exists()


def test_train_out_never_replaces_a_model_in_force_or_in_the_models_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`model rollback` goes back to the models folder's files and the shipped model; a model
    pinned by the config is in force: --out naming one is refused before any training."""
    from facesortd.model_store import shipped_model

    shipped = shipped_model()
    assert shipped is not None
    folder = models_dir(load_settings(None))
    folder.mkdir(parents=True)
    kept, pinned = folder / "20260101-000000.fsm.npz", tmp_path / "mine.fsm.npz"
    for copy in (kept, pinned):
        shutil.copyfile(shipped, copy)
    config = tmp_path / "pinned.toml"
    config.write_text(f'[recognition]\nmodel = "{pinned}"\n')
    no_data = str(tmp_path / "no such dataset")  # had training started, this would be the error
    for argv, said in [
        (["--out", str(kept)], f"--out {kept} is in the models folder {folder}"),
        (["--out", str(folder / "new.fsm.npz")], "is in the models folder"),
        (["--out", str(shipped)], f"--out {shipped} is the model in force"),
        (["--config", str(config), "--out", str(pinned)], f"--out {pinned} is the model in force"),
        (["--config", str(config), "--out", str(shipped)], f"--out {shipped} is the shipped model"),
    ]:
        config_args, out_args = argv[:-2], argv[-2:]
        assert cli.main([*config_args, "train", no_data, *out_args]) == 2
        err = capsys.readouterr().err
        assert said in err and "name another file" in err and "--activate" in err, err
    assert kept.read_bytes() == pinned.read_bytes() == shipped.read_bytes()
    assert sorted(folder.iterdir()) == [kept]


def test_train_features_needs_the_cnn_descriptor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It used to be ignored silently: the user waited for a HOG model thinking a net was trained."""
    assert cli.main(["train", str(tmp_path), "--descriptor", "hog+lbp", "--train-features"]) == 2
    assert "--train-features trains the net of the cnn descriptor: add --descriptor cnn" in (
        capsys.readouterr().err
    )


def test_python_dash_m_and_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "facesortd", "sort", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "--dry-run" in out.stdout and "--copy" in out.stdout


def test_sort_on_defaults_creates_the_inbox_and_says_where(
    fake_detector: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["sort"]) == 0
    inbox = Path(__import__("os").environ["XDG_PICTURES_DIR"]) / "facesortd" / "inbox"
    assert inbox.is_dir() and f"drop screenshots into {inbox}" in capsys.readouterr().err


def test_train_from_several_sources_with_label_map(
    crop_dataset: Path, fake_detector: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crops folder plus a faces.json of screenshots; --map renames and drops labels."""
    shots = tmp_path / "seed" / "screenshots"
    shots.mkdir(parents=True)
    rng = np.random.default_rng(3)
    boxes = {}
    for i, emotion in enumerate(EMOTIONS * 4):
        img, box = draw_screenshot(emotion, rng)
        cv2.imwrite(str(shots / f"who{'xyzw'[i % 4]}{i}.png"), img)
        boxes[f"who{'xyzw'[i % 4]}{i}.png"] = [
            {"box": list(box), "emotion": emotion},
            {"box": [0, 0, 9, 9], "emotion": None},
        ]
    (tmp_path / "seed" / "faces.json").write_text(json.dumps(boxes))
    args = [
        "train",
        str(crop_dataset),
        str(tmp_path / "seed" / "faces.json"),
        "--map",
        "sad=glum",
        "--map",
        "angry=",
    ]
    assert cli.main([*args, "--folds", "3", "--out", str(tmp_path / "m.fsm.npz")]) == 0
    out = capsys.readouterr().out
    counts = out[: out.index("held-out")]
    assert "glum" in counts and "angry" not in counts and "happy        34" in counts
    assert "--- faces from crops ---" in out and "--- faces from faces.json ---" in out
    members = out[out.index("--- each member of the ensemble alone ---") :]  # the default is an ensemble
    assert "\ncnn: balanced accuracy" in members and "    faces from faces.json: balanced accuracy" in members
    assert cli.main(["train", str(crop_dataset), "--map", "nonsense"]) == 2


def test_train_activates_only_when_asked_and_rollback_steps_down_to_the_shipped_model(
    crop_dataset: Path,
    fake_detector: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from facesortd import model_store

    settings = load_settings()
    shipped = model_store.shipped_model()
    assert cli.main(["model", "rollback"]) == 2  # the shipped model is in force: nothing earlier
    assert "no earlier model" in capsys.readouterr().err
    train = ["train", str(crop_dataset), "--kind", "crops", "--folds", "2"]
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101-000001")
    assert cli.main(train) == 0
    out = capsys.readouterr().out
    assert model_store.model_in_force(settings) == shipped  # written, not put in force
    assert "not in force yet: `facesortd model use" in out
    spaced = tmp_path / "my models" / "a.fsm.npz"  # advice pasted into a shell must name this file
    spaced.parent.mkdir()
    # The quickest fit: what this run checks is the advice, which is the same for any model.
    assert cli.main([*train, "--descriptor", "pixels", "--out", str(spaced)]) == 0
    assert f"`facesortd model use '{spaced}'`" in capsys.readouterr().out
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260101-000002")
    assert cli.main([*train, "--descriptor", "pixels", "--mirror", "--activate"]) == 0
    assert model_store.load_model_in_force(settings).info["mirrored"]  # fitted on faces and mirrors
    assert model_store.model_in_force(settings).name == "20260101-000002.fsm.npz"
    capsys.readouterr()
    assert cli.main(["model"]) == 0
    listing = capsys.readouterr().out
    assert "* 20260101-000002.fsm.npz" in listing and "balanced accuracy" in listing and "happy 27" in listing
    assert "on the bootstrap validation set: balanced accuracy" in listing
    assert cli.main(["model", "use", str(model_store.models_dir(settings) / "20260101-000001.fsm.npz")]) == 0
    default = model_store.load_model_in_force(settings)
    assert default.info["descriptors"] == list(DEFAULT_ENSEMBLE)
    assert not any(m.info.get("mirrored") for m in default.members)  # mirrors only when asked
    assert cli.main(["model", "rollback"]) == 0  # back through what was in force: 000002, then shipped
    assert model_store.model_in_force(settings).name == "20260101-000002.fsm.npz"
    assert cli.main(["model", "rollback"]) == 0
    assert model_store.model_in_force(settings) == shipped
    assert cli.main(["model", "rollback"]) == 2
    assert cli.main(["model", "use", str(tmp_path / "nothing.fsm.npz")]) == 2
    assert "nothing.fsm.npz does not exist" in capsys.readouterr().err
    (tmp_path / "junk.fsm.npz").write_bytes(b"junk")
    assert cli.main(["model", "use", str(tmp_path / "junk.fsm.npz")]) == 2
    assert model_store.model_in_force(settings) == shipped  # a broken file is never put in force
    assert cli.main(["model", "use"]) == 2 and "takes `default` or a model FILE" in capsys.readouterr().err
    outside = tmp_path / "elsewhere.fsm.npz"
    outside.write_bytes((model_store.models_dir(settings) / "20260101-000002.fsm.npz").read_bytes())
    assert cli.main(["model", "use", str(outside)]) == 0  # copied in, so deleting it later is harmless
    outside.unlink()
    assert model_store.load_model_in_force(settings).descriptor == "pixels"
    assert cli.main(["model", "use", "default"]) == 0 and model_store.model_in_force(settings) == shipped


def test_train_says_plainly_when_the_new_model_is_worse(
    tmp_path: Path, fake_detector: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Labels that carry no signal (one face under every emotion) give a chance-level model: train says so.

    The very same picture everywhere keeps the figure at chance exactly; faces drawn alike but each
    anew would let a small validation set land above chance by luck."""
    from facesortd import model_store

    face = draw_face("happy", 80, np.random.default_rng(5))
    for emotion in ("angry", "happy", "sad", "surprised"):
        (tmp_path / "small" / emotion).mkdir(parents=True)
        for k in range(20):
            cv2.imwrite(str(tmp_path / "small" / emotion / f"c{k % 5}_{k}.png"), face)
    good = ["train", str(write_crop_dataset(tmp_path / "good", 30)), "--kind", "crops", "--folds", "2"]
    assert cli.main([*good, "--descriptor", "hog", "--activate"]) == 0
    capsys.readouterr()
    before = model_store.model_in_force(load_settings())
    small = ["train", str(tmp_path / "small"), "--kind", "crops", "--folds", "2", "--descriptor", "hog"]
    assert cli.main([*small, "--validation-share", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "new model:      balanced accuracy" in out and "model in force: balanced accuracy" in out
    assert "the new model is WORSE than the model in force" in out and "barely better than chance" in out
    # judged by the adoption rule itself, share right among the auto-sorted faces included
    assert "balanced_accuracy on the validation set" in out and "at least 72% asked" in out
    assert model_store.model_in_force(load_settings()) == before


def test_install_service_writes_the_unit(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["install-service"]) == 0
    unit = Path(__import__("os").environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "facesortd.service"
    text = unit.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and " run" in text and "{exec_start}" not in text
    assert "RestartPreventExitStatus=2" in text  # a refused second start must not restart-loop
    assert "systemctl --user enable --now facesortd" in capsys.readouterr().out
    assert cli.main(["install-service", "--print"]) == 0
    assert capsys.readouterr().out == text  # the one unit, for a hand install


def test_a_unit_replaced_is_followed_by_a_restart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Installed again with another --config, the advice was `systemctl --user enable --now
    facesortd`, which leaves a running daemon as it is: it went on with the old config."""
    assert cli.main(["install-service"]) == 0
    capsys.readouterr()
    config = tmp_path / "c.toml"
    config.write_text(f'inbox = "{tmp_path / "in"}"\n')
    assert cli.main(["--config", str(config), "install-service"]) == 0
    out = capsys.readouterr().out
    assert "systemctl --user enable facesortd\n  systemctl --user restart facesortd\n" in out
    assert "--now" not in out


def test_doctor_says_the_service_unit_cannot_start_and_its_fix_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The config file the unit was installed with, moved since (or the facesortd it runs, gone): the
    service failed at its start, said only in the journal, while doctor said "all good"."""
    from facesortd import service_unit

    config = tmp_path / "c.toml"
    config.write_text(f'inbox = "{tmp_path / "in"}"\n')
    assert cli.main(["--config", str(config), "install-service"]) == 0
    assert cli.main(["--config", str(config), "doctor"]) == 0
    assert "ok    service unit: " in capsys.readouterr().out
    config.unlink()
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    unit = service_unit.unit_file()
    assert f"FIX   service unit: {unit} reads the config file {config}, which is not there" in out
    assert cli.main(["install-service"]) == 0  # the advice, followed
    assert cli.main(["doctor"]) == 0
    with monkeypatch.context() as mp:
        mp.setattr(service_unit, "own_command", lambda: [str(tmp_path / "gone venv" / "facesortd")])
        assert cli.main(["install-service"]) == 0
    capsys.readouterr()
    assert cli.main(["doctor"]) == 1
    assert f"runs {tmp_path / 'gone venv' / 'facesortd'}, which is not there" in capsys.readouterr().out
    unit.unlink()
    unit.mkdir()  # no traceback for what is in its place
    assert cli.main(["doctor"]) == 1
    assert f"FIX   service unit: cannot read {unit} (Is a directory)" in capsys.readouterr().out


def test_install_service_keeps_a_unit_edited_by_hand(capsys: pytest.CaptureFixture[str]) -> None:
    """A unit the person edited (a memory limit, another inbox) was replaced, the edits lost. One
    facesortd wrote, for this facesortd or another, is replaced; the same unit is left alone."""
    from facesortd import service_unit

    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "facesortd.service"
    assert cli.main(["install-service"]) == 0
    mine = unit.read_text().replace("Nice=5\n", "Nice=5\nMemoryMax=2G\n")
    capsys.readouterr()
    assert cli.main(["install-service"]) == 0
    assert (
        capsys.readouterr().out
        == f"already installed: {unit} (`systemctl --user enable --now facesortd` starts it)\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(service_unit, "own_command", lambda: ["/another/venv/bin/facesortd"])
        assert cli.main(["install-service"]) == 0  # facesortd's own unit, for another facesortd
    assert capsys.readouterr().out.startswith(f"wrote {unit}\n")
    assert sorted(p.name for p in unit.parent.iterdir()) == [unit.name]
    assert "ExecStart=/another/venv/bin/facesortd run\n" in unit.read_text()
    unit.write_text(mine)
    for n, kept in enumerate(["facesortd.service.bak", "facesortd.service (1).bak"]):
        if n:
            unit.write_text(mine.replace("2G", "3G"))
        assert cli.main(["install-service"]) == 0
        out = capsys.readouterr().out
        assert (
            f"kept the unit that was there, which facesortd did not write as it is, as {unit.parent / kept}\n"
            in out
        )
        assert f"wrote {unit}\n" in out and "MemoryMax" not in unit.read_text()
    assert (unit.parent / "facesortd.service.bak").read_text() == mine
    assert (unit.parent / "facesortd.service (1).bak").read_text() == mine.replace("2G", "3G")


def test_a_unit_kept_is_said_even_when_the_new_one_cannot_be_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The copy of an edited unit is made before the new unit is written: a write that then fails
    must not leave a `.bak` the person was never told of."""
    assert cli.main(["install-service"]) == 0
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "facesortd.service"
    unit.write_text(unit.read_text().replace("Nice=5\n", "Nice=5\nMemoryMax=2G\n"))
    capsys.readouterr()
    mkstemp = durable.tempfile.mkstemp
    made: list[str] = []

    def full_after_one(*args: object, **kwargs: object) -> tuple[int, str]:
        if made:  # the copy got its temp file; the new unit finds the disk full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        made.append("copy")
        return mkstemp(*args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(durable.tempfile, "mkstemp", full_after_one)
    assert cli.main(["install-service"]) == 2
    said = capsys.readouterr()
    kept = unit.parent / "facesortd.service.bak"
    assert said.out == f"kept the unit that was there, which facesortd did not write as it is, as {kept}\n"
    assert said.err.startswith(f"facesortd: error: cannot write {unit} (")
    assert "MemoryMax=2G" in kept.read_text() and "MemoryMax=2G" in unit.read_text()


@pytest.mark.parametrize(
    ("errno_", "fix"),
    [
        (errno.ENOSPC, "free some space on that disk"),
        (
            errno.EROFS,
            "it is on a read-only filesystem: install the unit by hand (facesortd install-service --print)",
        ),
        (errno.EACCES, "make {folder} writable for you (chmod u+rwx '{folder}')"),
    ],
)
def test_install_service_that_cannot_write_is_one_line_and_keeps_the_old_unit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], errno_: int, fix: str
) -> None:
    """A full disk or a systemd folder the user may not write: the OSError escaped as a traceback."""
    assert cli.main(["install-service"]) == 0
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "facesortd.service"
    old = unit.read_bytes()
    capsys.readouterr()

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(errno_, os.strerror(errno_), str(unit.parent / ".facesortd-tmp-x"))

    monkeypatch.setattr(durable.tempfile, "mkstemp", refused)
    monkeypatch.setattr(
        "facesortd.service_unit.own_command", lambda: ["/another/bin/facesortd"]
    )  # a unit to write
    assert cli.main(["install-service"]) == 2
    fix = fix.format(folder=unit.parent)
    assert capsys.readouterr().err == (
        f"facesortd: error: cannot write {unit} ({os.strerror(errno_)}): {fix}\n"
    )
    assert unit.read_bytes() == old and [p.name for p in unit.parent.iterdir()] == [unit.name]


def test_install_service_under_a_file_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """XDG_CONFIG_HOME naming a file: the fix offered was to chmod that file."""
    config = tmp_path / "config"
    config.write_bytes(b"")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    assert cli.main(["install-service"]) == 2
    unit = config / "systemd" / "user" / "facesortd.service"
    assert capsys.readouterr().err == (
        f"facesortd: error: cannot write {unit} (Not a directory): {config} is not a folder: "
        "move that file away\n"
    )


def test_the_unit_runs_the_facesortd_it_was_installed_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: `<venv>/bin/facesortd install-service` writes a unit that runs that very command,
    not another `facesortd` that happens to come first on PATH (the shared one did, in the walk)."""
    venv_bin, other_bin = tmp_path / "venv" / "bin", tmp_path / "other" / "bin"
    for folder in (venv_bin, other_bin):
        folder.mkdir(parents=True)
        (folder / "facesortd").write_text("#!/bin/sh\n")
        (folder / "facesortd").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    monkeypatch.setenv("PATH", str(other_bin))
    assert cli.main(["install-service", "--print"]) == 0
    assert f"ExecStart={venv_bin / 'facesortd'} run\n" in capsys.readouterr().out
    (venv_bin / "facesortd").unlink()  # run as `python -m facesortd` from an environment without the script
    assert cli.main(["install-service", "--print"]) == 0
    assert f"ExecStart={venv_bin / 'python'} -m facesortd run\n" in capsys.readouterr().out


def test_the_unit_runs_with_the_config_file_it_was_installed_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd --config my.toml install-service` wrote a unit that ran plain `facesortd run`: the
    service watched the default inbox, not the one the person had set up and tried by hand."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my config.toml").write_text('inbox = "~/elsewhere/inbox"\n')
    assert cli.main(["--config", "my config.toml", "install-service", "--print"]) == 0
    config = tmp_path / "my config.toml"
    assert f' --config "{config}" run\n' in capsys.readouterr().out
    assert cli.main(["install-service", "--print"]) == 0
    assert "--config" not in capsys.readouterr().out
    assert cli.main(["--config", "typo.toml", "install-service"]) == 2  # a unit that could never start
    assert "typo.toml does not exist" in capsys.readouterr().err


def test_a_dollar_in_the_config_path_reaches_the_service_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """systemd expands ``${NAME}`` (and a word ``$NAME``) in ExecStart's arguments, though not in the
    program's own path: a config file in a folder named "${USER}s stuff" was read as "rootstuff"."""
    config = tmp_path / "${USER}s stuff" / "$c.toml"
    config.parent.mkdir()
    config.write_text('inbox = "~/elsewhere/inbox"\n')
    assert cli.main(["--config", str(config), "install-service", "--print"]) == 0
    escaped = str(config).replace("$", "$$")
    assert f' --config "{escaped}" run\n' in capsys.readouterr().out


def test_a_line_break_in_the_config_path_stays_inside_execstart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder name holding a line break ended ExecStart there: the rest of the path became a line
    of the unit of its own (here an ExecStartPre= that systemd would run)."""
    config = tmp_path / "a\nExecStartPre=touch x" / "c.toml"
    config.parent.mkdir()
    config.write_text('inbox = "~/elsewhere/inbox"\n')
    assert cli.main(["--config", str(config), "install-service", "--print"]) == 0
    text = capsys.readouterr().out
    assert "\nExecStartPre" not in text
    assert f' --config "{tmp_path}/a\\x0aExecStartPre=touch x/c.toml" run\n' in text


def test_install_service_refuses_a_config_the_daemon_would_refuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A default config the daemon refuses (a typo'd key, an inbox inside the library): the unit
    was written and "now run: systemctl --user enable --now facesortd" printed, and the service then
    failed at once (exit 2, which systemd does not restart), said only in the journal."""
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "facesortd" / "config.toml"
    config.parent.mkdir(parents=True)
    unit = Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / "facesortd.service"
    for text in ("[watch]\nworker = 2\n", f'library = "{tmp_path}"\ninbox = "{tmp_path / "in"}"\n'):
        config.write_text(text)
        assert cli.main(["install-service"]) == 2
        assert "facesortd: error:" in capsys.readouterr().err and not unit.exists()


def test_the_unit_is_one_systemd_accepts_from_any_folder_with_its_readme_as_documentation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Documentation= named a web address we do not own; a venv folder with a space split ExecStart
    and a % in a path is a systemd specifier. systemd-analyze, where installed, has the last word."""
    venv_bin = tmp_path / "my apps 100%" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "facesortd").write_text("#!/bin/sh\n")
    (venv_bin / "facesortd").chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert cli.main(["install-service", "--print"]) == 0
    text = capsys.readouterr().out
    executable = str(venv_bin / "facesortd").replace("%", "%%")
    assert f'ExecStart="{executable}" run\n' in text
    [documentation] = re.findall(r"^Documentation=(.*)$", text, re.MULTILINE)
    assert documentation.startswith("file:///")
    readme = Path(urllib.parse.unquote(urllib.parse.urlparse(documentation.replace("%%", "%")).path))
    assert readme.read_text(encoding="utf-8").startswith("# facesortd\n")
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    unit = tmp_path / "facesortd.service"
    unit.write_text(text)
    verified = subprocess.run(
        [analyze, "--system", "verify", str(unit)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    # Only what it says of this unit: on another machine it may also complain of the units it loads.
    said = [line for line in verified.stderr.splitlines() if unit.name in line]
    assert verified.returncode == 0 and not said, verified.stderr


def test_status_without_a_daemon_and_undo_time_parsing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "daemon: not running" in out and "nothing sorted yet" in out
    # systemctl only once there is a unit for it to start ("Unit facesortd.service not found")
    assert "not running (start it with `facesortd run`, or as a service: `facesortd install-service`)" in out
    assert cli.main(["install-service"]) == 0 and cli.main(["status"]) == 0
    assert "not running (start it with `facesortd run` or `systemctl --user start facesortd`)" in (
        capsys.readouterr().out
    )
    assert "held out: balanced accuracy" in out  # the shipped model's figures
    assert abs(undo_command._parse_since("2h") - (time.time() - 7200)) < 5
    assert cli.main(["undo", "--since", "yesterday-ish"]) == 2
    assert "--since takes" in capsys.readouterr().err
    (tmp_path / "mine.png").write_bytes(b"never sorted")
    assert cli.main(["undo", str(tmp_path / "mine.png")]) == 2
    assert "the journal has no move of facesortd that put this file there" in capsys.readouterr().err


def test_status_with_a_config_file_says_to_start_the_daemon_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`facesortd --config my.toml status` said "start it with `facesortd run`": followed, that
    daemon read the default config and watched another inbox than the one shown."""
    config = tmp_path / "my config.toml"
    config.write_text(f'inbox = "{tmp_path / "in"}"\n')
    assert cli.main(["--config", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert f"start it with `facesortd --config '{config}' run`" in out


def test_undo_of_more_moves_than_sqlite_counts_undoes_them_all(capsys: pytest.CaptureFixture[str]) -> None:
    """`undo 99999999999999999999` (all of them, whatever there are) ended in a traceback:
    "sqlite3.IntegrityError: datatype mismatch"."""
    assert cli.main(["undo", "9" * 30, "--dry-run"]) == 0
    assert capsys.readouterr().out == "nothing to undo\n"  # not then "nothing undone (dry run)" too


@pytest.mark.parametrize("target", ["-3", "3.5", "shot.pgn"])
def test_undo_of_a_name_that_does_not_exist_says_so(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`undo -3` or `undo 3.5` (meaning a count) and `undo shot.pgn` (a typo) were all "the journal
    has no move of facesortd that put this file there", as if the file were one facesortd never
    moved: the person could not tell the typo from the rule."""
    assert cli.main(["undo", target]) == 2
    err = capsys.readouterr().err
    assert f"{target}: no such file" in err and "undo N takes" in err


def test_undo_of_a_file_named_where_it_was_says_where_it_is_now(
    fake_detector: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sort ~/shots/a.png`, then `undo ~/shots/a.png` (the name the person remembers) was "no such
    file (... undo N takes how many of the last moves, a whole number)", read as a typo."""
    shot = tmp_path / "shots" / "a.png"
    shot.parent.mkdir()
    cv2.imwrite(str(shot), np.full((60, 60, 3), 9, np.uint8))
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    assert cli.main(["sort", str(shot)]) == 0
    [now] = (tmp_path / "lib").rglob("a.png")
    capsys.readouterr()
    monkeypatch.chdir(shot.parent)
    assert cli.main(["undo", "a.png"]) == 2
    err = capsys.readouterr().err
    assert f"a.png: facesortd moved it to {now}; undo FILE takes the file where it is now" in err, err
    assert f"`facesortd undo --library {tmp_path / 'lib'} {now}`" in err  # the advice carries the library
    shot.write_bytes(b"another file, saved there since")  # "it" is not this one
    assert cli.main(["undo", "a.png"]) == 2
    assert "a.png: the journal has no move of facesortd that put this file there" in capsys.readouterr().err
    shot.unlink()
    assert cli.main(["undo", str(now)]) == 0 and shot.is_file()


def test_undo_since_takes_the_form_its_help_shows() -> None:
    """`undo --help` shows "--since TIME ... (2h, 30m, 1d ago, ...)"; `--since "1d ago"`, typed as
    shown, was refused: "--since takes e.g. 2h, 30m, 1d ...", got '1d ago'."""
    assert abs(undo_command._parse_since("1d ago") - (time.time() - 86400)) < 5
    assert abs(undo_command._parse_since("30m  ago") - (time.time() - 1800)) < 5
    spelt_out = (("2 days", 2 * 86400), ("3hours ago", 3 * 3600), ("45 min", 2700), ("10 secs", 10))
    for spelt, seconds in spelt_out:  # were refused as not a time
        assert abs(undo_command._parse_since(spelt) - (time.time() - seconds)) < 5, spelt


@pytest.mark.parametrize("argv", [["3", "--since", "2h"], ["--since", "2h", "shot.png"]])
def test_undo_takes_one_selector_not_n_or_files_with_since(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Given both, one was silently ignored (N under --since, --since under FILEs): refused, naming both."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["undo", *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--since" in err and "N|FILE" in err and "not allowed with" in err


def test_train_detector_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:  # in this process: `python -m` is tested above
        cli.main(["train-detector", "--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "--faces-json" in out and "--negatives" in out


def test_sort_journals_its_moves_so_they_are_undoable_and_never_labels(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from facesortd.journal import Journal
    from facesortd.learn.review import Reviewer

    inbox, truth = _inbox(tmp_path)
    lib = tmp_path / "lib"
    monkeypatch.setenv("FACESORTD_LIBRARY", str(lib))
    assert cli.main(["sort", str(inbox)]) == 0
    settings = load_settings()
    journal = Journal.for_state_dir(settings.state_dir)
    monkeypatch.setattr("facesortd.learn.review.FaceDetector", BrightBlobDetector)
    assert Reviewer(settings, journal).scan() == 0  # facesortd's own placements are not labels
    assert sum(journal.counts(lib).values()) == len(truth) + 2
    journal.close()
    assert cli.main(["undo", "2"]) == 0
    assert len(list(inbox.iterdir())) == 2


def test_undo_of_a_copy_removes_the_copy(
    trained: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox, truth = _inbox(tmp_path)
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    assert cli.main(["sort", "--copy", str(inbox)]) == 0
    assert cli.main(["undo", str(len(truth) + 2)]) == 0
    assert len(list(inbox.iterdir())) == len(truth) + 2  # originals untouched, no "name (1)" twins
    assert [p for p in (tmp_path / "lib").rglob("*") if p.is_file()] == []


def test_a_model_rolled_back_says_what_it_left_in_the_emotion_folders_and_undo_model_puts_it_back(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`model rollback` took a model out of force and said nothing of the files it had sorted: they
    stayed in the emotion folders it chose, its mistakes among them, found only by reading the
    journal. Now it says how many, and `undo --model NAME` puts back exactly those still there."""
    from facesortd.model_store import model_in_force

    inbox, _truth = _inbox(tmp_path)
    lib = tmp_path / "lib"
    monkeypatch.setenv("FACESORTD_LIBRARY", str(lib))
    mine = model_in_force(load_settings())
    assert mine is not None and cli.main(["sort", str(inbox)]) == 0
    placed = sorted(p for p in lib.glob("*/*.png"))  # the emotion folders, not _quarantine/*/
    assert len(placed) > 3
    corrected = placed[0]  # a person's correction: moved on to another emotion's folder, stays
    other = next(p.parent for p in placed if p.parent != corrected.parent)
    corrected = corrected.rename(other / corrected.name)
    capsys.readouterr()
    assert cli.main(["model", "rollback"]) == 0
    out = capsys.readouterr().out
    left = f"{len(placed) - 1} file(s) that {mine.name} sorted still sit in the emotion folders it chose"
    assert left in out and f"`facesortd undo --library {lib} --model {mine.name} --dry-run` lists them" in out
    assert cli.main(["undo", "--model", mine.name, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"would go back to {inbox}") == len(placed) - 1 and "nothing undone (dry run)" in out
    assert cli.main(["undo", "--model", mine.name, "--yes"]) == 0
    assert f"{corrected.name}" not in capsys.readouterr().out
    assert list(lib.glob("*/*.png")) == [corrected]  # nothing else the model put there is left
    assert {p.name for p in placed} - {corrected.name} <= {p.name for p in inbox.iterdir()}
    assert cli.main(["undo", "--model", mine.name]) == 0
    none_left = f"nothing to undo: no file that {mine.name} sorted is still where it put it\n"
    assert capsys.readouterr().out == none_left
    assert cli.main(["model", "use", str(mine)]) == 0  # back in force; the shipped one had sorted nothing
    assert capsys.readouterr().out == f"model in force is now {mine}\n"
    journal = load_settings().state_dir / "journal.sqlite"
    journal.write_bytes(b"damaged")  # the model changes all the same: said, not a traceback after it
    assert cli.main(["model", "rollback"]) == 0
    out = capsys.readouterr().out
    assert f"the files {mine.name} sorted could not be counted: the journal {journal} is damaged" in out


def test_what_a_model_taken_out_of_force_left_is_said_of_the_model_taken_out(
    trained: str,
    crop_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`model use` read the model it took out of force before it waited for a retrain: the retrain's
    model, put in force during the wait, was the one taken out, and the files the model before it
    sorted were said instead. `train --activate` said nothing of what it took out of force. With the
    library's drive away every file looked moved on, and nothing was said: 0, silently."""
    import threading

    from test_model_store import loadable_model
    from waiting import HUNG_S, wait_until

    from facesortd import model_store, mounts
    from facesortd.state import RETRAIN, retrain_lock, waiting_for

    inbox, _truth = _inbox(tmp_path)
    lib = tmp_path / "lib"
    monkeypatch.setenv("FACESORTD_LIBRARY", str(lib))
    settings = load_settings()
    mine = model_store.model_in_force(settings)
    assert mine is not None and cli.main(["sort", str(inbox)]) == 0
    placed = len(list(lib.glob("*/*.png")))
    assert placed > 3
    left = f"{placed} file(s) that {mine.name} sorted still sit in the emotion folders it chose"
    capsys.readouterr()
    codes: list[int] = []
    with retrain_lock(settings.state_dir) as retraining:
        assert retraining
        person = threading.Thread(target=lambda: codes.append(cli.main(["model", "use", "default"])))
        person.start()
        wait_until(lambda: waiting_for(RETRAIN) in capsys.readouterr().out)
        model_store.adopt(settings, loadable_model(settings))  # the retrain's model, which sorted nothing
    person.join(timeout=HUNG_S)
    assert codes == [0] and left not in capsys.readouterr().out  # not mine: the retrain's went out
    assert cli.main(["model", "use", str(mine)]) == 0
    away = tmp_path / "lib-unplugged"
    lib.rename(away)
    monkeypatch.setattr(mounts, "DRIVE_PLACES", (tmp_path,))  # where the library's drive is mounted
    capsys.readouterr()
    assert cli.main(["model", "rollback"]) == 0
    out = capsys.readouterr().out
    assert f"the files {mine.name} sorted could not be counted: {lib} is not there" in out, out
    away.rename(lib)
    assert cli.main(["model", "use", str(mine)]) == 0
    capsys.readouterr()
    train = ["train", str(crop_dataset), "--kind", "crops", "--folds", "2", "--descriptor", "pixels"]
    assert cli.main([*train, "--activate"]) == 0
    out = capsys.readouterr().out
    assert (
        "now in force: " in out
        and left in out
        and f"`facesortd undo --library {lib} --model {mine.name}" in out
    )


def test_mistyped_arguments_are_errors_not_skips_or_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["sort", str(tmp_path / "no" / "such")]) == 2
    assert f"{tmp_path / 'no' / 'such'}: no such file or folder" in capsys.readouterr().err
    (tmp_path / "shots" / "album").mkdir(parents=True)
    assert cli.main(["sort", "--dry-run", str(tmp_path / "shots")]) == 2  # no image: nothing to do
    err = capsys.readouterr().err
    assert "album: a folder inside" in err and "no images in" in err  # not skipped without a word
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--log-level", "LOUD", "status"])
    assert exit_info.value.code == 2 and "invalid choice: 'LOUD'" in capsys.readouterr().err
    assert cli.main(["--log-level", "debug", "status"]) == 0  # any case will do
    assert cli.main(["undo", "0"]) == 2 and "1 or more" in capsys.readouterr().err


def test_status_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    """`facesortd status | head`: the reader leaves before the output is written; no traceback."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as for a user
    env["FACESORTD_STATE_DIR"] = str(tmp_path / "state")
    read, write = os.pipe()
    os.close(read)  # a reader that has already gone: every write fails with EPIPE
    try:
        out = subprocess.run(
            [sys.executable, "-m", "facesortd", "status"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
    finally:
        os.close(write)
    assert out.returncode == 141 and out.stderr == ""


def test_undo_shows_a_plan_and_asks_before_undoing_many(
    fake_detector: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(undo_command.CONFIRM_UNDO_OVER + 1):
        cv2.imwrite(str(inbox / f"{i}.png"), np.full((60, 60, 3), i, np.uint8))
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    assert cli.main(["sort", str(inbox)]) == 0
    capsys.readouterr()
    assert cli.main(["undo", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"would go back to {inbox}") == 2 and "nothing undone (dry run)" in out
    assert list(inbox.iterdir()) == []
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    answers = iter(["n", "y"])
    monkeypatch.setattr("builtins.input", lambda *_prompt: next(answers))
    assert cli.main(["undo", "--since", "1h"]) == 0
    assert "nothing undone" in capsys.readouterr().out and list(inbox.iterdir()) == []
    assert cli.main(["undo", "--since", "1h"]) == 0
    assert len(list(inbox.iterdir())) == undo_command.CONFIRM_UNDO_OVER + 1


def test_undo_of_more_moves_than_can_be_undone_says_how_many_there_were(
    fake_detector: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`undo 5` after a sort of 3 files, one changed since, put 2 back, a line each, and said nothing
    of the 3 asked that never were: read as the 5 asked. Its --dry-run alike."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for i in range(3):
        cv2.imwrite(str(inbox / f"{i}.png"), np.full((60, 60, 3), i, np.uint8))
    monkeypatch.setenv("FACESORTD_LIBRARY", str(tmp_path / "lib"))
    assert cli.main(["sort", str(inbox)]) == 0
    changed = next((tmp_path / "lib").rglob("1.png"))
    changed.write_bytes(changed.read_bytes() + b"edited")
    capsys.readouterr()
    assert cli.main(["undo", "5", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [
        "would undo 2 of the 5 asked: there were only 2 that can be undone",
        "nothing undone (dry run)",
    ], lines
    assert cli.main(["undo", "2", "--dry-run"]) == 0  # as many as asked: nothing more said
    assert "asked" not in capsys.readouterr().out
    assert cli.main(["undo", "5"]) == 0
    out = capsys.readouterr().out
    assert "its content changed since facesortd sorted it" in out
    assert out.endswith("undid 2 of the 5 asked: there were only 2 that can be undone\n"), out
    assert sorted(p.name for p in inbox.iterdir()) == ["0.png", "2.png"]


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("library", ["sort", "--library", "{file}", "{inbox}"]),
        ("inbox", ["sort"]),
        ("inbox", ["run"]),
        ("state_dir", ["sort", "{inbox}"]),
        ("state_dir", ["status"]),
    ],
)
def test_a_file_where_a_folder_belongs_is_one_line_with_the_fix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_detector: None,
    name: str,
    command: list[str],
) -> None:
    """An inbox, library or state folder that is a file: `run` and `sort` died with a FileExistsError
    traceback, `sort --library FILE` failed each file in turn, and `status` said "nothing sorted yet"."""
    file = tmp_path / "a file"
    file.write_bytes(b"not a folder")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.png").write_bytes(cv2.imencode(".png", np.full((60, 60, 3), 90, np.uint8))[1].tobytes())
    monkeypatch.setenv(f"FACESORTD_{name.upper()}", str(file))
    argv = [part.format(file=file, inbox=inbox) for part in command]
    problem = f"{name} {file} is not a folder: point {name} at a folder, or move that file away"
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"facesortd: error: {problem}\n"
    assert file.read_bytes() == b"not a folder" and [p.name for p in inbox.iterdir()] == ["a.png"]
    assert cli.main(["doctor"]) == 1
    assert f"FIX   {problem}" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    ("inbox_at", "library_at", "named"),
    [
        ("inbox", "inbox/sorted", "elsewhere"),  # a library inside the inbox
        ("lib/inbox", "lib", "elsewhere"),  # the inbox inside the library
        ("inbox", "lib", "lib"),  # the folder to sort is the library itself
    ],
)
def test_sort_refuses_an_inbox_and_library_that_overlap_as_run_does(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fake_detector: None,
    inbox_at: str,
    library_at: str,
    named: str,
) -> None:
    """`run` refused such folders, `sort DIR --library L` sorted into them: a library inside the
    watched inbox is one the daemon was told to empty, an inbox inside it is read as labels."""
    inbox, library, folder = tmp_path / inbox_at, tmp_path / library_at, tmp_path / named
    for made in (inbox, library, folder):
        made.mkdir(parents=True, exist_ok=True)
    (folder / "a.png").write_bytes(cv2.imencode(".png", np.full((60, 60, 3), 90, np.uint8))[1].tobytes())
    monkeypatch.setenv("FACESORTD_INBOX", str(inbox))
    assert cli.main(["sort", str(folder), "--library", str(library)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facesortd: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert str(library) in err and ("overlap" in err or "is the library" in err)
    assert (folder / "a.png").is_file() and not (library / "_quarantine").exists()


def test_a_state_folder_inside_the_inbox_is_refused_before_its_crops_are_sorted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_detector: None
) -> None:
    """state_dir = "<inbox>/state" with watch.recursive: the face crops kept for retraining (and
    status's advice for that folder, "set watch.recursive = true") were sorted out of the state
    folder; state_dir = library made its faces/ a person's folder of "faces" labels."""
    inbox = tmp_path / "inbox"
    crop = inbox / "state" / "faces" / "a.png"
    crop.parent.mkdir(parents=True)
    crop.write_bytes(cv2.imencode(".png", np.full((60, 60, 3), 90, np.uint8))[1].tobytes())
    monkeypatch.setenv("FACESORTD_INBOX", str(inbox))
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(inbox / "state"))
    monkeypatch.setenv("FACESORTD_WATCH__RECURSIVE", "true")
    assert cli.main(["sort"]) == 2
    err = capsys.readouterr().err
    assert f"state_dir {inbox / 'state'} is inside the inbox {inbox}: keep it apart" in err
    assert crop.is_file()
    assert cli.main(["doctor"]) == 1
    assert "is inside the inbox" in capsys.readouterr().out
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(inbox / ".local" / "state"))  # an inbox of ~
    assert cli.main(["sort", "--dry-run"]) == 0
    library = tmp_path / "library"  # as the library, its faces/ was a person's "faces" labels
    monkeypatch.setenv("FACESORTD_LIBRARY", str(library))
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(library))
    assert cli.main(["sort", "--dry-run"]) == 2  # as `run` and `doctor`
    assert f"state_dir {library} is inside the library {library}" in capsys.readouterr().err


def test_sort_takes_a_folder_inside_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_detector: None
) -> None:
    """A quarantine folder is how a person sorts its files again: not an overlap."""
    library = tmp_path / "lib"
    unsure = library / "_quarantine" / "unsure"
    unsure.mkdir(parents=True)
    (unsure / "a.png").write_bytes(cv2.imencode(".png", np.full((60, 60, 3), 90, np.uint8))[1].tobytes())
    monkeypatch.setenv("FACESORTD_INBOX", str(tmp_path / "inbox"))
    assert cli.main(["sort", str(unsure), "--library", str(library)]) == 0
    assert (library / "_quarantine" / "no-face" / "a.png").is_file()


@pytest.mark.parametrize("command", ["detect", "sort"])
def test_a_folder_with_no_images_is_said_and_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_detector: None, command: str
) -> None:
    """`detect` of such a folder printed nothing and exited 0, `sort` said "nothing to sort" and
    exited 0: each now names the folder and what counts as an image, exit 2, as a typo'd name."""
    folder = tmp_path / "shots"
    folder.mkdir()
    (folder / "notes.txt").write_text("not an image")
    assert cli.main([command, str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"facesortd: error: no images in {folder}") and err.count("\n") == 1
    assert ".png" in err and ".webp" in err and (folder / "notes.txt").is_file()
    (tmp_path / "other").mkdir()  # beside a folder with an image, an empty one is only said
    cv2.imwrite(str(tmp_path / "other" / "a.png"), np.full((60, 60, 3), 90, np.uint8))
    dry_run = ["--dry-run"] if command == "sort" else []
    assert cli.main([command, str(folder), str(tmp_path / "other"), *dry_run]) == 0
    assert f"no images in {folder}" in capsys.readouterr().err


def test_sort_of_an_empty_inbox_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fake_detector: None
) -> None:
    """Nothing waiting is the inbox's normal state (a `sort` from cron must not fail on it), named or
    not: `sort INBOX` beside the daemon, which had taken every file first, ended "no images", exit 2."""
    monkeypatch.setenv("FACESORTD_INBOX", str(tmp_path / "inbox"))
    assert cli.main(["sort"]) == 0
    assert "nothing to sort: drop screenshots into" in capsys.readouterr().err
    assert cli.main(["sort", str(tmp_path / "inbox")]) == 0
    assert "nothing to sort: drop screenshots into" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "env"),
    [
        (["eval", "{dataset}", "--model", "{folder}"], {}),
        (["model", "use", "{folder}"], {}),
        (["sort", "--dry-run", "{dataset}"], {"FACESORTD_RECOGNITION__MODEL": "{folder}"}),
        (["status"], {"FACESORTD_RECOGNITION__MODEL": "{folder}"}),
    ],
)
def test_a_folder_given_as_the_model_is_one_line_the_same_everywhere(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    env: dict[str, str],
) -> None:
    """`eval --model FOLDER` said "corrupt or not a facesortd model ([Errno 21] Is a directory …)",
    `model use FOLDER` "is not a file": every place a model path is taken now says it one way."""
    folder = tmp_path / "models"
    folder.mkdir()
    dataset = tmp_path / "shots"
    dataset.mkdir()
    cv2.imwrite(str(dataset / "a.png"), np.full((60, 60, 3), 90, np.uint8))
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(folder=folder))
    assert cli.main([part.format(folder=folder, dataset=dataset) for part in command]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        f"facesortd: error: model file {folder} is a folder: name the model file (*.fsm.npz) itself, "
        "not the folder it is in"
    )


def test_a_bare_numpy_array_given_as_the_model_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`model use x.npy` (or `eval --model x.npy`) ended in a TypeError traceback."""
    array = tmp_path / "x.npy"
    np.save(array, np.zeros(3))
    assert cli.main(["model", "use", str(array)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"facesortd: error: model file {array} is a numpy array, not a facesortd model"
    )


def test_a_text_file_named_as_a_model_verifier_or_gate_is_not_said_to_be_pickled_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A text file (or a screenshot) given as the model, verifier or gate: the error passed on
    numpy's "contains pickled (object) data. If you trust the file you can load it unsafely using
    the `allow_pickle=` keyword argument", which misnames the file and advises running code from it."""
    from facesortd.gate import load_gate
    from facesortd.verify import load_verifier

    notes = tmp_path / "notes.txt"
    notes.write_text("not a model\n")
    assert cli.main(["model", "use", str(notes)]) == 2
    errors = [capsys.readouterr().err]
    for load in (load_verifier, load_gate):
        with pytest.raises(Exception) as refused:
            load(notes)
        errors.append(str(refused.value))
    for error in errors:
        assert "not a NumPy" in error and "pickle" not in error and "unsafely" not in error


def test_model_use_takes_a_model_by_the_name_model_lists_and_names_a_misspelt_one(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`facesortd model` lists models by name, and `model use <that name>` was "model file ... does
    not exist" (but in the models folder itself); `model use defualt` said the same of a typo."""
    from facesortd.model_store import model_in_force, shipped_model

    settings = load_settings()
    mine = model_in_force(settings)
    assert mine is not None and mine != shipped_model()
    monkeypatch.chdir(tmp_path)
    assert cli.main(["model", "use", "defualt"]) == 2
    assert "model file defualt does not exist (did you mean `facesortd model use default`?" in (
        capsys.readouterr().err
    )
    shipped = shipped_model()
    assert shipped is not None
    assert cli.main(["model", "use", shipped.name]) == 0 and model_in_force(settings) == shipped
    assert cli.main(["model", "use", mine.name]) == 0 and model_in_force(settings) == mine
    assert len(list(mine.parent.glob("*.fsm.npz"))) == 1  # its own file, not a copy of it


def test_model_use_of_a_copy_of_a_model_made_here_puts_that_model_in_force_not_a_second_copy(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`model use ~/backup/model.fsm.npz`, a copy of a model in the models folder not in force now,
    copied it in once more: two files and two lines in `facesortd model` for one model."""
    from facesortd.model_store import model_in_force

    settings = load_settings()
    mine = model_in_force(settings)
    assert mine is not None
    backup = tmp_path / "backup.fsm.npz"
    shutil.copyfile(mine, backup)
    assert cli.main(["model", "use", "default"]) == 0
    capsys.readouterr()
    assert cli.main(["model", "use", str(backup)]) == 0 and model_in_force(settings) == mine
    assert capsys.readouterr().out.startswith(f"model in force is now {mine}\n")
    assert list(mine.parent.glob("*.fsm.npz")) == [mine]


def test_model_use_and_rollback_on_a_full_state_disk_are_one_line_exit_1(
    trained: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full (or read-only) state disk ended `model use FILE` and `model rollback` in a traceback,
    "OSError: [Errno 28] No space left on device"; the model in force stays as it was."""
    from facesortd.model_store import model_in_force, shipped_model

    settings = load_settings()
    mine, shipped = model_in_force(settings), shipped_model()
    assert mine is not None and shipped is not None
    elsewhere = tmp_path / "downloaded.fsm.npz"
    shutil.copyfile(shipped, elsewhere)

    def full(*_args: object, **_kw: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real_writer = model_store.atomic_writer
    monkeypatch.setattr(model_store, "atomic_writer", full)
    for argv in (["model", "use", str(elsewhere)], ["model", "rollback"]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert f"facesortd: error: cannot write into {models_dir(settings)} (No space left on device)" in err
        assert "Traceback" not in err and model_in_force(settings) == mine
    assert list(models_dir(settings).glob("*.fsm.npz")) == [mine]  # no copy left half made
    monkeypatch.setattr(model_store, "atomic_writer", real_writer)
    validation_path(elsewhere).write_bytes(b"its validation set")
    real_copy = model_store._copy

    def model_only(src: Path, dest: Path) -> None:
        if src == validation_path(elsewhere):
            full()
        real_copy(src, dest)

    monkeypatch.setattr(model_store, "_copy", model_only)  # the model copied in, not its validation set
    assert cli.main(["model", "use", str(elsewhere)]) == 1 and model_in_force(settings) == mine
    assert list(models_dir(settings).glob("*.fsm.npz")) == [mine]  # which a try again took as it was


def test_train_activate_on_a_full_state_disk_is_one_line_exit_1(
    crop_dataset: Path,
    fake_detector: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model written, its putting in force refused by a full state disk: an OSError traceback."""
    from facesortd.model_store import model_in_force, shipped_model

    def full(*_args: object, **_kw: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(model_store, "adopt", full)
    train = [
        "train",
        str(crop_dataset),
        "--kind",
        "crops",
        "--folds",
        "2",
        "--descriptor",
        "hog",
        "--activate",
    ]
    assert cli.main(train) == 1
    err = capsys.readouterr().err
    settings = load_settings()
    assert f"facesortd: error: cannot write into {models_dir(settings)} (No space left on device)" in err
    assert "Traceback" not in err and model_in_force(settings) == shipped_model()


@pytest.mark.parametrize("activate", [False, True], ids=["written", "activated"])
def test_train_interrupted_once_its_model_is_written_says_where_the_model_stands(
    crop_dataset: Path,
    fake_detector: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    activate: bool,
) -> None:
    """Ctrl-C in the minutes after `train` wrote its model (its figures, the comparison with the model
    in force, the models folder pruned after `--activate`'s change): a bare "interrupted", which read
    as nothing done. It now says where the model stands: in force or not, and how to put it in force."""
    from facesortd.cli import train as train_command
    from facesortd.model_store import model_in_force, user_models

    def ctrl_c(*_args: object, **_kw: object) -> None:
        raise KeyboardInterrupt

    if activate:  # once the change is made (it is whole or not made), in the pruning after it
        monkeypatch.setattr("facesortd.model_change.prune_logged", ctrl_c)
    else:
        monkeypatch.setattr(train_command, "_compare_with_model_in_force", ctrl_c)
    train = ["train", str(crop_dataset), "--kind", "crops", "--folds", "2", "--descriptor", "hog"]
    assert cli.main([*train, "--activate"] if activate else train) == 130
    settings = load_settings()
    [written] = user_models(settings)
    said = capsys.readouterr().err.splitlines()[-1]
    if activate:
        assert model_in_force(settings) == written
        assert said == f"facesortd: interrupted; the model written to {written} is in force"
    else:
        assert model_in_force(settings) != written
        assert said == (
            f"facesortd: interrupted; the model written to {written} is not in force: "
            f"`facesortd model use {written}` puts it in force"
        )


def _signal_at(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, signum: int, after: bool = False
) -> None:
    """``signum`` sent to this process as ``owner.name`` is called (``after``: once it returned): a
    real signal, taken by what the command installed, as one from `kill` or a terminal closed is."""
    real = getattr(owner, name)

    def sent(*args: object, **kw: object) -> object:
        if not after:
            signal.raise_signal(signum)
        done = real(*args, **kw)
        if after:
            signal.raise_signal(signum)
        return done

    monkeypatch.setattr(owner, name, sent)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=["hup", "term", "int"])
@pytest.mark.parametrize("phase", ["writing", "activating", "comparing"])
def test_train_stopped_by_a_signal_leaves_its_model_whole_and_says_where_it_stands(
    crop_dataset: Path,
    fake_detector: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    signum: int,
    phase: str,
) -> None:
    """`train --activate` sent SIGHUP (its terminal closed) or SIGTERM died without a word: between
    its model and the validation set beside it (a model retraining is held to nothing), or with the
    model written and not yet in force. Ctrl-C cut the first with a bare "interrupted". Each now ends
    as Ctrl-C does once the model is written: the model whole, a line saying whether it is in force,
    the shell's exit status for the signal. A signal while the model is written or put in force is
    acted on once that is done."""
    from facesortd import model_change
    from facesortd.cli import train as train_command
    from facesortd.learn.train_run import TrainRun
    from facesortd.model_store import model_in_force, user_models

    if phase == "writing":  # the model file linked in, its validation set not written yet
        _signal_at(monkeypatch, TrainRun, "save_validation", signum)
    elif phase == "activating":  # the pointer to the model in force about to change
        _signal_at(monkeypatch, model_change, "use", signum)
    else:
        _signal_at(monkeypatch, train_command, "_compare_with_model_in_force", signum, after=True)
    train = ["train", str(crop_dataset), "--kind", "crops", "--folds", "2", "--descriptor", "hog"]
    assert cli.main([*train, "--activate"]) == 128 + signum
    settings = load_settings()
    [written] = user_models(settings)
    assert validation_path(written).is_file()
    said = capsys.readouterr().err.splitlines()[-1]
    if phase == "activating":
        assert model_in_force(settings) == written
        assert said == f"facesortd: interrupted; the model written to {written} is in force"
    else:
        assert model_in_force(settings) != written
        assert said.startswith(f"facesortd: interrupted; the model written to {written} is not in force")


def test_model_use_sent_sigterm_as_it_changes_the_model_in_force_ends_once_the_change_is_whole(
    crop_dataset: Path, fake_detector: None
) -> None:
    """`model use FILE` sent SIGTERM (`kill`, a logout) while it put the model in force ended there;
    the signal is now acted on once the change is made (the process still ends by it, as before)."""
    from facesortd.model_store import model_in_force, user_models

    train = ["train", str(crop_dataset), "--kind", "crops", "--folds", "2", "--descriptor", "hog"]
    assert cli.main(train) == 0
    settings = load_settings()
    [written] = user_models(settings)
    sent_at_the_change = f"""
import os, signal, sys
from facesortd import model_change
real = model_change.use
def use(*args, **kw):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kw)
model_change.use = use
from facesortd.cli import main
sys.exit(main(["model", "use", {str(written)!r}]))
"""
    done = subprocess.run([sys.executable, "-c", sent_at_the_change], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert model_in_force(settings) == written


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=["hup", "term", "int"])
def test_retrain_stopped_by_a_signal_as_its_model_is_written_puts_it_in_force_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], signum: int
) -> None:
    """A signal as `retrain` wrote the model it had judged not worse: SIGHUP and SIGTERM ended it at
    once, and Ctrl-C between the file and putting it in force left a model that `facesortd model`
    showed as adopted and was not in force. The model is now put in force before the signal is acted
    on, and the line says so, with the shell's exit status for the signal."""
    from review_setup import install_model, quarantine, review_settings

    from facesortd.learn import retrain
    from facesortd.model_store import model_in_force

    settings = review_settings(tmp_path, monkeypatch)
    install_model(settings)
    shots = [("a.png", "happy"), ("b.png", "sad"), ("c.png", "sad"), ("d.png", "happy")]
    for name, path in quarantine(settings, "unsure", shots).items():
        path.rename(settings.library / dict(shots)[name] / name)
    for check in (retrain.Comparison, retrain.ShareCheck):  # judged not worse, whatever the drawn faces say
        monkeypatch.setattr(check, "passed", True)
    _signal_at(monkeypatch, retrain, "save_new_model", signum)
    before = model_in_force(settings)
    assert cli.main(["retrain"]) == 128 + signum
    now = model_in_force(settings)
    assert now != before and now is not None and now.parent == models_dir(settings)
    said = capsys.readouterr().err.splitlines()[-1]
    assert said == f"facesortd: interrupted; the model in force is now {now}"


def test_model_use_and_rollback_wait_for_a_retrain_running_now(capsys: pytest.CaptureFixture[str]) -> None:
    """A rollback made while a retrain ran was undone by it a moment later: the retrain, judged
    against the model in force when it began, put its own model in force when it ended."""
    import threading

    from test_model_store import loadable_model
    from waiting import HUNG_S, wait_until

    from facesortd import model_store
    from facesortd.state import RETRAIN, retrain_lock, waiting_for

    settings = load_settings()
    pointer = model_store.models_dir(settings) / model_store.CURRENT
    codes: list[int] = []
    with retrain_lock(settings.state_dir) as mine:
        assert mine  # the daemon is retraining
        person = threading.Thread(target=lambda: codes.append(cli.main(["model", "use", "default"])))
        person.start()
        wait_until(lambda: waiting_for(RETRAIN) in capsys.readouterr().out)
        assert not pointer.exists()  # nothing put in force before the retrain's own choice
        its_own = loadable_model(settings)
        model_store.adopt(settings, its_own)  # the retrain's choice, made as it ends
    person.join(timeout=HUNG_S)
    assert codes == [0] and pointer.read_text() == model_store.DEFAULT  # then the person's choice


def test_retrain_waits_for_a_retrain_running_now_in_the_words_model_use_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`retrain` said "the daemon is retraining" of a retrain that could as well be the review page's
    or another `retrain`'s; every command waiting for one says the same."""
    import threading

    from waiting import HUNG_S, wait_until

    from facesortd.state import RETRAIN, retrain_lock, waiting_for

    codes: list[int] = []
    with retrain_lock(load_settings().state_dir) as mine:
        assert mine
        person = threading.Thread(target=lambda: codes.append(cli.main(["retrain"])))
        person.start()
        wait_until(lambda: waiting_for(RETRAIN) in capsys.readouterr().out)
        assert not codes  # still waiting
    person.join(timeout=HUNG_S)
    assert codes == [1]  # then its own retrain: no labels, no model


def test_retrain_waiting_for_a_change_of_the_model_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    """`retrain` waiting for a `model use` said "a retrain is running now": the person found none
    (the daemon idle, no other `retrain`), and could not tell what it waited for."""
    import threading

    from waiting import HUNG_S, wait_until

    from facesortd.model_change import no_retrain_running

    codes: list[int] = []
    with no_retrain_running(load_settings()):  # `model use` putting the person's choice in force
        person = threading.Thread(target=lambda: codes.append(cli.main(["retrain"])))
        person.start()
        said: list[str] = []

        def told() -> bool:
            said.append(capsys.readouterr().out)
            return "waiting for it to end" in "".join(said)

        wait_until(told)
        assert "a change of the model in force is running now: waiting for it to end" in "".join(said), said
        assert "a retrain is running" not in "".join(said) and not codes
    person.join(timeout=HUNG_S)
    assert codes == [1]


def test_a_holder_that_did_not_say_who_it_is_is_said_as_either(tmp_path: Path) -> None:
    """A retrain lock taken a moment ago, its holder's words not written yet (or by an older
    facesortd, which writes none): the waiter names both, which is true whichever holds it."""
    import fcntl
    import threading

    from waiting import HUNG_S, wait_until

    from facesortd.state import RETRAIN_LOCK, retrain_lock

    def waiter() -> None:
        with retrain_lock(state, said.append):
            pass

    state = tmp_path / "state"
    with retrain_lock(state):  # a holder's words are cleared when it lets go
        pass
    said: list[str] = []
    with open(state / RETRAIN_LOCK, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = threading.Thread(target=waiter)
        waiting.start()
        wait_until(lambda: bool(said))
    waiting.join(timeout=HUNG_S)
    assert not waiting.is_alive()
    assert said == ["a retrain, or a change of the model in force, is running now: waiting for it to end"]


def test_train_activate_keeps_the_models_folder_bounded(
    crop_dataset: Path, fake_detector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train --activate` added a model and a history line and pruned nothing: only retrains did."""
    from test_model_store import loadable_model

    from facesortd import model_store

    monkeypatch.setattr("facesortd.models_folder.ADOPTED_KEPT", 3)  # the bound, not its size: 3 will do
    settings = load_settings()
    history = [loadable_model(settings) for _ in range(3)]
    for path in history:
        model_store.adopt(settings, path)
    assert cli.main(["train", str(crop_dataset), "--kind", "crops", "--descriptor", "hog", "--activate"]) == 0
    trained = model_store.model_in_force(settings)
    assert not history[0].exists() and all(path.is_file() for path in history[1:])
    assert model_store.adopted(settings) == [path.name for path in history[1:]] + [trained.name]


def test_a_file_opencv_cannot_decode_is_said_in_facesortds_words_only(cli_settings, tmp_path: Path) -> None:
    """OpenCV printed its own "[ERROR:0@1.2] global loadsave.cpp ... imdecode_ ..." line for a GIF
    it could not read, beside facesortd's line for the same file (the daemon's journal too)."""
    folder = tmp_path / "shots"
    folder.mkdir()
    (folder / "x.gif").write_bytes(b"GIF89a")
    done = subprocess.run(
        [sys.executable, "-m", "facesortd", "sort", str(folder), "--dry-run"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"},
    )
    assert done.returncode == 0, done.stderr
    assert "unreadable - not an image OpenCV can decode" in done.stdout
    assert "imdecode" not in done.stderr and "[ERROR" not in done.stderr


def test_install_service_carries_the_facesortd_variables_of_the_unit_there(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A unit the person gave FACESORTD_* variables by hand (another library, another inbox) was
    written anew without them (kept only in the .bak): the daemon went back to the config's folders,
    its files and advice elsewhere. They are carried into the new unit as written (quotes,
    %-specifiers), each said; other variables are left to the .bak, said too, and an empty
    Environment= drops those before it, as systemd reads the unit."""
    from facesortd import service_unit

    unit = service_unit.unit_file()
    assert cli.main(["install-service"]) == 0
    ours = ['"FACESORTD_LIBRARY=/srv/my pictures"', "FACESORTD_STATE_DIR=%h/state", "facesortd_inbox=/in"]
    edited = unit.read_text().replace(
        "[Service]\n",
        "[Service]\nEnvironment=FACESORTD_INBOX=/dropped\nEnvironment=\n"
        f"Environment={ours[0]} OMP_NUM_THREADS=1\nEnvironment = {ours[1]} \\\n  {ours[2]}\n",
    )
    unit.write_text(edited)
    capsys.readouterr()
    assert cli.main(["install-service"]) == 0
    out = capsys.readouterr().out
    for word in ours:
        assert f"kept Environment={word} from the unit that was there\n" in out
    assert "left out Environment=OMP_NUM_THREADS=1, not facesortd's (the copy kept has it)\n" in out
    assert "FACESORTD_INBOX=/dropped" not in out
    text = unit.read_text()
    assert [line for line in text.splitlines() if "Environment" in line] == [f"Environment={w}" for w in ours]
    assert (unit.parent / "facesortd.service.bak").read_text() == edited
    assert cli.main(["install-service"]) == 0  # the same unit, carried lines and all
    assert capsys.readouterr().out.startswith("already installed")
    assert cli.main(["install-service", "--print"]) == 0  # the unit it would write, to install by hand
    assert capsys.readouterr().out == text
    cli.main(["doctor"])
    assert f"ok    service unit: {unit}, for this facesortd and this config" in capsys.readouterr().out
    with pytest.MonkeyPatch.context() as mp:  # a unit facesortd wrote, for another facesortd: carried too
        mp.setattr(service_unit, "own_command", lambda: ["/another/venv/bin/facesortd"])
        assert cli.main(["install-service"]) == 0
    assert f"Environment={ours[0]}\n" in unit.read_text() and "ExecStart=/another/venv" in unit.read_text()
    assert sorted(p.name for p in unit.parent.iterdir()) == ["facesortd.service", "facesortd.service.bak"]


def test_install_service_checks_the_folders_of_the_unit_it_writes_not_the_terminal_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The unit there carries FACESORTD_LIBRARY (written as systemd reads it: quoted, with %h): the
    overlap of inbox and library was checked with this terminal's variables, so a carried library
    inside the config's inbox was installed (the service then failed at once, exit 2, which systemd
    does not restart), and a terminal's stray FACESORTD_LIBRARY refused a unit that was right."""
    from facesortd import service_unit

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    config = tmp_path / "config.toml"
    config.write_text(f'inbox = "{home / "in"}"\nlibrary = "{home / "lib"}"\n')
    unit = service_unit.unit_file()
    monkeypatch.delenv("FACESORTD_LIBRARY", raising=False)
    assert cli.main(["--config", str(config), "install-service"]) == 0
    carried = 'Environment="FACESORTD_LIBRARY=%h/in/lib"\n'
    written = unit.read_text().replace("[Service]\n", f"[Service]\n{carried}")
    unit.write_text(written)
    capsys.readouterr()
    assert cli.main(["--config", str(config), "install-service"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"inbox {home / 'in'} and library {home / 'in' / 'lib'} overlap" in err
    assert unit.read_text() == written
    unit.write_text(written.replace("%h/in/lib", "%h/other"))
    monkeypatch.setenv("FACESORTD_LIBRARY", str(home / "in" / "lib"))  # this terminal's, not the unit's
    assert cli.main(["--config", str(config), "install-service"]) == 0
    assert 'Environment="FACESORTD_LIBRARY=%h/other"' in unit.read_text()
    assert os.environ["FACESORTD_LIBRARY"] == str(home / "in" / "lib")  # given back as it was


def test_install_service_says_the_environment_files_it_leaves_out(capsys: pytest.CaptureFixture[str]) -> None:
    """A unit edited by hand to read its variables from a file (EnvironmentFile=, the daemon's
    library in it): the new unit was written without it and nothing said so, the daemon back on the
    config's folders. Not carried (it may set any variable, and change after the check of the
    folders), but said, each, with where the copy is and where its settings go."""
    from facesortd import service_unit

    unit = service_unit.unit_file()
    assert cli.main(["install-service"]) == 0
    unit.write_text(
        unit.read_text().replace(
            "[Service]\n",
            "[Service]\nEnvironmentFile=/gone.env\nEnvironmentFile=\n"
            "EnvironmentFile=-%h/.config/facesortd/env\nEnvironmentFile=/etc/facesortd.env\n",
        )
    )
    capsys.readouterr()
    assert cli.main(["install-service"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "EnvironmentFile" in line]
    assert said == [
        f"left out EnvironmentFile={path}: the copy kept has it (the FACESORTD_* settings it gave the "
        "daemon go into the config, or into Environment= lines, which are carried)"
        for path in ("-%h/.config/facesortd/env", "/etc/facesortd.env")
    ]
    assert "EnvironmentFile" not in unit.read_text()
    assert "EnvironmentFile=/etc/facesortd.env" in (unit.parent / "facesortd.service.bak").read_text()


_INTERRUPTED_IMPORT = (
    "import builtins, sys\n"
    "real = builtins.__import__\n"
    "def load(name, *args, **kwargs):\n"
    "    if name == 'cv2':\n"
    "        raise KeyboardInterrupt\n"
    "    return real(name, *args, **kwargs)\n"
    "builtins.__import__ = load\n"
    "from facesortd.cli import main\n"
    "sys.exit(main(['status']))\n"
)
"""`facesortd status` given Ctrl-C as OpenCV loads."""


def test_ctrl_c_while_the_command_line_loads_says_interrupted_without_a_traceback() -> None:
    """Ctrl-C in the first second of any command (OpenCV and numpy loading) ended in a traceback."""
    done = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_IMPORT], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (130, "facesortd: interrupted\n")


def test_ctrl_c_while_the_command_line_loads_with_stderr_gone_is_130_still() -> None:
    """stderr's reader gone (`2>&1 | head`, a terminal closed): the "interrupted" line failed, a
    traceback where no one reads it, and an exit status of 1 in place of 130."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-c", _INTERRUPTED_IMPORT], stderr=write, timeout=60)
    finally:
        os.close(write)
    assert done.returncode == 130
