"""The commands a person runs on their own folders (train, eval, import-labels, detect --draw) walked
as a demanding user would: odd names, lying box files, a folder that takes no more. Each test failed
before its fix."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import pytest
from conftest import write_crop_dataset
from synthetic import screenshot_png

from facesortd import cli
from facesortd.config import load_settings

TRAIN = ["train", "--no-detect", "--descriptor", "hog", "--folds", "2"]


def test_a_face_file_whose_name_is_not_utf8_is_trained_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A crop named in another encoding (an old archive's `caf\\xe9.png`), or a DATASET folder so
    named, ended `train` in a UnicodeEncodeError traceback: the held-out split hashed its name."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=4)
    os.rename(crops / "sad" / "chara_0.png", os.fsencode(crops / "sad") + b"/caf\xe9_0.png")
    assert cli.main([*TRAIN, str(crops)]) == 0
    assert "model written to" in capsys.readouterr().out
    renamed = os.fsdecode(os.fsencode(tmp_path) + b"/d\xe9")
    os.rename(crops, renamed)
    assert cli.main([*TRAIN, renamed, "--out", str(tmp_path / "m.fsm.npz")]) == 0
    assert "model written to" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "shown"), [(b"new\nline", r"new\x0aline"), (b"we\xffird", r"we\xffird")])
def test_an_emotion_folder_named_off_one_line_is_refused_with_its_name_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: bytes, shown: str
) -> None:
    """A folder named with a line break became an emotion that split `train`'s counts and confusion
    matrix (and `model`'s listing) into lines that read as other emotions; one not UTF-8 trained a
    model whose emotion the journal cannot store."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=4)
    os.rename(crops / "sad", os.fsencode(crops) + b"/" + name)
    assert cli.main([*TRAIN, str(crops)]) == 2
    err = capsys.readouterr().err
    assert f"an emotion may not be named {shown} (" in err, err
    assert err.count("\n") == 1 and not (load_settings().state_dir / "models").exists()


@pytest.mark.parametrize(
    ("name", "entry", "said"),
    [
        ("a.png", {"box": [0, 0, 1e400, 40], "emotion": "happy"}, "cannot convert float infinity"),
        ("a.png", {"box": [10, 10, 0, 40], "emotion": "happy"}, "width, height > 0"),
        ("a.png", {"box": [10, 10, 40, 40], "emotion": 5}, "is not a name in quotes"),
        ("a.png\0b", {"box": [10, 10, 40, 40], "emotion": "sad"}, "the file name a.png\\x00b holds a NUL"),
    ],
)
def test_a_faces_json_entry_that_is_no_box_or_no_emotion_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, entry: dict[str, object], said: str
) -> None:
    """A box of 1e400 ended in an OverflowError traceback, a file name holding a NUL in a
    ValueError one; a box of no size was trained on as a face; an emotion given as a number became
    an emotion `5`."""
    boxes = tmp_path / "faces.json"
    boxes.write_text(json.dumps({name: [entry]}).replace("Infinity", "1e400"))
    for command in ("train", "import-labels"):
        assert cli.main([command, "--no-detect", str(boxes)]) == 2
        err = capsys.readouterr().err
        assert f"{boxes}: " in err and said in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("errno_", "fix"),
    [(errno.ENOSPC, "its disk is full: free some space there"), (errno.EROFS, "read-only filesystem")],
)
def test_detect_draw_into_a_folder_that_takes_no_file_stops_in_one_line(
    fake_detector: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    errno_: int,
    fix: str,
) -> None:
    """`detect shots --draw /mnt/full` ended in an OSError traceback ("No space left on device")."""
    shot = tmp_path / "a.png"
    shot.write_bytes(screenshot_png(1))

    def refused(dest: Path, fill: object) -> Path:
        raise OSError(errno_, os.strerror(errno_))

    monkeypatch.setattr("facesortd.cli.detect.write_new", refused)
    assert cli.main(["detect", str(shot), "--draw", str(tmp_path / "drawn")]) == 1
    err = capsys.readouterr().err
    drawn = tmp_path / "drawn"
    assert err.startswith(f"facesortd: error: cannot write into {drawn} ({os.strerror(errno_)}): ")
    assert fix in err, err
    assert err.count("\n") == 1 and shot.read_bytes() == screenshot_png(1)


@pytest.mark.parametrize("option", ["--report", "--out"])
def test_train_into_a_folder_that_takes_no_file_is_refused_before_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    """`train --out /mnt/ro/m.fsm.npz` (or `--report`) trained for its minutes, then ended in an
    OSError traceback, the model lost. (As root every folder takes a file but a read-only one's:
    os.access stands in for a folder of another user.)"""
    crops = write_crop_dataset(tmp_path / "crops", per_class=4)
    taken = tmp_path / "taken"
    taken.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != taken)
    target = taken / ("m.fsm.npz" if option == "--out" else "figures")
    with pytest.raises(SystemExit) as exit_:
        cli.main([*TRAIN, str(crops), option, str(target)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: cannot write {'into ' if option == '--report' else ''}{target}: " in err, err
    assert f"you may not write into {taken} (chmod u+rwx" in err
    assert not (load_settings().state_dir / "models").exists()


@pytest.mark.parametrize("out", [False, True])
def test_a_model_the_full_disk_refuses_is_one_line_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], out: bool
) -> None:
    """A disk full once the training was done ended in "OSError: [Errno 28] No space left on
    device", naming no folder."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=4)

    def full(*_args: object, **_kw: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("facesortd.learn.train_run.replace_dropping", full)
    monkeypatch.setattr("facesortd.cli.train.save_new_model", full)
    model = tmp_path / "models" / "m.fsm.npz"
    assert cli.main([*TRAIN, str(crops), *(["--out", str(model)] if out else [])]) == 1
    err = capsys.readouterr().err
    folder = model.parent if out else load_settings().state_dir / "models"
    assert f"facesortd: error: cannot write into {folder} (No space left on device): its disk is full" in err
    assert "Traceback" not in err


def test_a_faces_json_box_beyond_its_image_is_skipped_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A box past the image's edge (a faces.json of other, larger screenshots) was trained on and
    imported as a face: the padding beyond the edge, labelled happy. A face the frame cuts (its box
    partly outside) is still one."""
    (tmp_path / "a.png").write_bytes(screenshot_png(3))  # 160 x 120
    boxes = tmp_path / "faces.json"
    faces = [{"box": [500, 400, 60, 60], "emotion": "happy"}, {"box": [-20, 10, 60, 60], "emotion": "sad"}]
    boxes.write_text(json.dumps({"a.png": faces}))
    assert cli.main(["import-labels", "--no-detect", str(boxes)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "imported: 1, its box lies outside the image: 1"
    assert cli.main(["train", "--no-detect", str(boxes)]) == 2
    trained = capsys.readouterr()
    assert "happy: 1 file(s) skipped (its box lies outside the image)" in trained.err
    assert trained.out == "faces per emotion:\n  sad          1\n", trained.out


@pytest.mark.parametrize(("link", "to"), [("loop", "."), ("joy", "happy")])
def test_an_emotion_folder_linked_to_the_dataset_or_another_emotion_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str, to: str
) -> None:
    """A symbolic link `loop -> .` in a dataset made an emotion `loop` of every face (each trained
    on under two emotions), `joy -> happy` one of happy's faces."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=4)
    (crops / link).symlink_to(to)
    assert cli.main([*TRAIN, str(crops)]) == 2
    err = capsys.readouterr().err
    assert f"{crops / link}" in err and "(a symbolic link" in err and "remove the link" in err, err


@pytest.mark.parametrize("command", ["import-labels", "train", "eval"])
@pytest.mark.parametrize("into", ["library", "inbox"])
def test_an_emotion_folder_linked_into_the_library_or_inbox_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    into: str,
    command: str,
) -> None:
    """`happy -> ~/Pictures/facesortd/library/happy` in a dataset was read: facesortd's own guesses
    taken for labels (imported, trained on, measured by), which the library named as the DATASET
    is refused for; a link to the inbox made one emotion of every screenshot not sorted yet."""
    folders = {name: tmp_path / "facesortd" / name for name in ("library", "inbox")}
    for name, folder in folders.items():
        monkeypatch.setenv(f"FACESORTD_{name.upper()}", str(folder))
    (folders["library"] / "happy").mkdir(parents=True)
    folders["inbox"].mkdir()
    crops = write_crop_dataset(tmp_path / "crops", per_class=2)
    link = crops / "glad"
    target = folders["library"] / "happy" if into == "library" else folders["inbox"]
    link.symlink_to(target)
    args = [*TRAIN, str(crops)] if command == "train" else [command, "--no-detect", str(crops)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"{link} is a symbolic link to {target}, which is (or holds, or is in) facesortd's {into} " in err
    assert err.endswith("; remove the link\n") and err.count("\n") == 1, err
    assert not (load_settings().state_dir / "journal.sqlite").exists()


def test_an_emotion_folder_without_an_image_is_said_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder `disgusted/` of HEIC photos (or empty) was left out of the counts without a word."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=4)
    (crops / "disgusted").mkdir()
    (crops / "disgusted" / "a.heic").write_bytes(b"x")
    assert cli.main([*TRAIN, str(crops)]) == 0
    assert f"{crops / 'disgusted'}: no images in it (names ending in .png, " in capsys.readouterr().err


def test_a_validation_set_that_takes_every_face_says_none_are_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two screenshots of one character (one unit, held out whole) left "faces of one emotion only
    ()" to train on."""
    for i in (0, 1):
        (tmp_path / f"aki{i}.png").write_bytes(screenshot_png(i))
    boxes = tmp_path / "faces.json"
    face = {"box": [10, 10, 60, 60]}
    boxes.write_text(
        json.dumps({"aki0.png": [face | {"emotion": "happy"}], "aki1.png": [face | {"emotion": "sad"}]})
    )
    assert cli.main(["train", "--no-detect", str(boxes)]) == 2
    assert "held out (--validation-share 0.1) leaves no faces to train on" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "eval"])
def test_figures_into_an_emotion_folder_of_the_dataset_are_refused_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """`train crops --report crops/happy` wrote its confusion matrices there, and the next `train`
    read them as two more happy faces (`--plots` likewise)."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=4)
    before = sorted(p.name for p in (crops / "happy").iterdir())
    option = "--report" if command == "train" else "--plots"
    assert cli.main([command, "--no-detect", str(crops), option, str(crops / "happy")]) == 2
    assert f"{option} {crops / 'happy'} is inside the dataset {crops}: " in capsys.readouterr().err
    assert sorted(p.name for p in (crops / "happy").iterdir()) == before


@pytest.mark.parametrize("into", ["inbox", "library/happy"])
@pytest.mark.parametrize("command", ["detect", "train", "eval"])
def test_pictures_into_the_inbox_or_library_are_refused(
    fake_detector: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    into: str,
    command: str,
) -> None:
    """`detect shot.png --draw ~/Pictures/facesortd/inbox` put the drawing where the daemon sorted it
    as a screenshot; into an emotion folder of the library it was a label. `train --report` and
    `eval --plots` likewise."""
    for name in ("inbox", "library"):
        monkeypatch.setenv(f"FACESORTD_{name.upper()}", str(tmp_path / name))
    shot = tmp_path / "a.png"
    shot.write_bytes(screenshot_png(1))
    crops = write_crop_dataset(tmp_path / "crops", per_class=2)
    option, argv = {
        "detect": ("--draw", [str(shot)]),
        "train": ("--report", ["--no-detect", str(crops)]),
        "eval": ("--plots", ["--no-detect", str(crops)]),
    }[command]
    assert cli.main([command, *argv, option, str(tmp_path / into)]) == 2
    assert f"{option} {tmp_path / into} is in facesortd's {into.split('/')[0]} " in capsys.readouterr().err
    assert not (tmp_path / into).exists()


def test_eval_of_an_emotion_the_model_does_not_know_says_it_counts_as_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dataset calling its sad faces `unhappy` was measured as if the model got every one wrong,
    without a word (balanced accuracy halved)."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=3)
    model = tmp_path / "m.fsm.npz"
    assert cli.main([*TRAIN, "--validation-share", "0", str(crops), "--out", str(model)]) == 0
    (crops / "sad").rename(crops / "unhappy")
    capsys.readouterr()
    assert cli.main(["eval", "--no-detect", str(crops), "--model", str(model)]) == 0
    assert "the model knows no emotion unhappy: each such face counts as wrong" in capsys.readouterr().err


def test_import_labels_stopped_by_ctrl_c_says_what_it_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C in `import-labels` said "facesortd: interrupted" alone: nothing said whether the labels
    imported so far were kept."""
    from facesortd.learn import label_import

    crops = write_crop_dataset(tmp_path / "crops", per_class=2)
    kept, calls = label_import.keep_face, []

    def keep_two(*args: object) -> object:
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return kept(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(label_import, "keep_face", keep_two)
    assert cli.main(["import-labels", "--no-detect", str(crops)]) == 130
    assert capsys.readouterr().out == "imported: 2; interrupted: the same command imports the rest\n"


@pytest.mark.parametrize("new", ["../escape", "/tmp/escape", "_quarantine"])
def test_an_emotion_named_as_a_path_out_of_its_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], new: str
) -> None:
    """A faces.json emotion (or `--map happy=../escape`) trained a model that `sort` and the daemon
    followed out of the library (`<library>/../escape/shot.png`, `/tmp/escape/shot.png`) or into
    `_quarantine` itself; a model file so made (before this fix, or by hand) is refused at load."""
    from facesortd.emotion import ModelError
    from facesortd.ensemble import load_model

    crops = write_crop_dataset(tmp_path / "crops", per_class=3)
    assert cli.main([*TRAIN, str(crops), "--map", f"happy={new}"]) == 2
    assert f"an emotion may not be named {new} (it names a library folder: no '/'" in capsys.readouterr().err
    model = tmp_path / "m.fsm.npz"
    assert cli.main([*TRAIN, "--validation-share", "0", str(crops), "--out", str(model)]) == 0
    made = load_model(model)
    made.labels[made.labels.index("happy")] = new
    made.save(tmp_path / "bad.fsm.npz")
    with pytest.raises(ModelError, match=f"has an emotion named {re.escape(new)}, which is refused"):
        load_model(tmp_path / "bad.fsm.npz")


def test_train_with_a_state_folder_that_takes_no_file_is_refused_before_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A state folder on a read-only disk (or another user's) was found out once the training was
    done, the model lost."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=4)
    state = load_settings().state_dir
    state.mkdir(parents=True)
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != state)
    assert cli.main([*TRAIN, str(crops)]) == 2
    captured = capsys.readouterr()
    assert f"cannot write a model into {state / 'models'}: you may not write into {state} " in captured.err
    assert "faces per emotion" not in captured.out


def test_import_labels_into_a_full_state_disk_says_what_it_imported_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A face crop the full state disk refused ended `import-labels` in an OSError traceback."""
    from facesortd.learn import label_import

    crops = write_crop_dataset(tmp_path / "crops", per_class=2)
    kept, calls = label_import.keep_face, []

    def fill_up(*args: object) -> object:
        calls.append(args)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return kept(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(label_import, "keep_face", fill_up)
    assert cli.main(["import-labels", "--no-detect", str(crops)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "imported: 2; stopped: the same command imports the rest\n"
    faces = load_settings().state_dir / "faces"
    full = f"cannot write into {faces} (No space left on device): its disk is full: free some space there"
    assert captured.err == f"facesortd: error: {full} (df -h '{faces}')\n"


def test_sort_refuses_the_face_crops_of_the_state_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sort ~/.local/state/facesortd/faces` moved the face crops retraining reads (the faces of the
    labels) into the library."""
    faces = load_settings().state_dir / "faces"
    faces.mkdir(parents=True)
    (faces / "abc.png").write_bytes(screenshot_png(2))
    for copy in ([], ["--copy"]):
        assert cli.main(["sort", *copy, str(faces)]) == 2
        assert f"{faces} is in facesortd's state folder " in capsys.readouterr().err
    assert (faces / "abc.png").read_bytes() == screenshot_png(2)


@pytest.mark.parametrize("option", ["--report", "--out"])
def test_train_into_a_path_below_a_file_is_refused_before_the_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    """`train --report shot.png/figures` trained, then ended in a NotADirectoryError traceback."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=4)
    shot = tmp_path / "shot.png"
    shot.write_bytes(b"x")
    with pytest.raises(SystemExit):
        cli.main([*TRAIN, str(crops), option, str(shot / "figures")])
    assert f"{shot} is a file, not a folder" in capsys.readouterr().err
    assert shot.read_bytes() == b"x"


@pytest.mark.parametrize("given", ["state", "its parent"])
def test_the_state_folder_is_refused_as_a_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    """`import-labels ~/facesortd-state` made an emotion `faces` of every face crop kept there (the
    faces of the labels), which the next retrain learnt and the daemon sorted into."""
    state = tmp_path / "home" / "state"
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(state))
    (state / "faces").mkdir(parents=True)
    (state / "faces" / "abc.png").write_bytes(screenshot_png(4))
    src = state if given == "state" else state.parent
    assert cli.main(["import-labels", "--no-detect", str(src)]) == 2
    assert f"{src} is (or holds, or is in) facesortd's state folder {state}: " in capsys.readouterr().err
    hidden = tmp_path / "other" / ".state"
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(hidden))  # below a folder a dataset leaves out
    write_crop_dataset(tmp_path / "other", per_class=2)
    assert cli.main(["import-labels", "--no-detect", str(tmp_path / "other")]) == 0


def test_a_dataset_named_twice_in_two_spellings_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`train crops ~/work/crops` read the same faces twice: every count doubled, each face trained
    on twice."""
    crops = write_crop_dataset(tmp_path / "crops", per_class=3)
    monkeypatch.chdir(tmp_path)
    assert cli.main([*TRAIN, "crops", str(crops), "crops/../crops"]) == 0
    assert "faces per emotion:\n  angry        3\n" in capsys.readouterr().out
