"""Importing a labelled dataset as labels: faces found as `train` finds them, weighed like bootstrap data."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import BrightBlobDetector, draw_screenshot

from facesortd import cli
from facesortd.config import Settings, load_settings
from facesortd.content import file_hash
from facesortd.journal import Journal
from facesortd.learn import retrain
from facesortd.learn.review import label_summary, user_labels


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(state_dir=tmp_path / "state", library=tmp_path / "lib")


def _faces_json(folder: Path) -> Path:
    """A faces.json dataset of two screenshots, one with two labelled faces, one face unlabelled."""
    shots = folder / "screenshots"
    shots.mkdir(parents=True)
    rng = np.random.default_rng(4)
    happy, box1 = draw_screenshot("happy", rng)
    sad, box2 = draw_screenshot("sad", rng)
    both = np.concatenate([happy, sad], axis=1)  # two faces side by side
    right = (box2[0] + happy.shape[1], *box2[1:])
    cv2.imwrite(str(shots / "kaguya1.png"), both)
    cv2.imwrite(str(shots / "kaguya2.png"), sad)
    truth = {
        "kaguya1.png": [{"box": list(box1), "emotion": "happy"}, {"box": list(right), "emotion": "sad"}],
        "kaguya2.png": [{"box": list(box2), "emotion": None}],
    }
    (folder / "faces.json").write_text(json.dumps(truth))
    return folder / "faces.json"


def test_import_keeps_each_face_weighs_it_like_bootstrap_data_and_is_idempotent(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    dataset = _faces_json(tmp_path / "seed")
    config = tmp_path / "config.toml"
    config.write_text(f'state_dir = "{settings.state_dir}"\nlibrary = "{settings.library}"\n')
    assert cli.main(["--config", str(config), "import-labels", str(dataset)]) == 0
    assert "imported: 2" in capsys.readouterr().out
    journal = Journal.for_state_dir(settings.state_dir)
    labels = user_labels(journal)
    assert sorted(lbl.label for lbl in labels) == ["happy", "sad"]
    assert {lbl.source for lbl in labels} == {"dataset"} and {lbl.group for lbl in labels} == {"kaguya"}
    assert all(lbl.face.is_file() for lbl in labels)  # kept crops: the dataset may go away
    assert [lbl.weight(settings.learning) for lbl in labels] == [1.0, 1.0]
    assert (
        retrain.UserLabel(labels[0].face, "happy", "g").weight(settings.learning)
        == settings.learning.user_weight
    )
    assert label_summary(journal) == ({"happy": 1, "sad": 1}, 0, 2)
    journal.close()
    assert cli.main(["--config", str(config), "import-labels", str(dataset)]) == 0
    assert "imported before: 2" in capsys.readouterr().out


def test_a_journal_on_a_full_disk_stops_the_import_in_one_line_with_the_fix(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state disk filled up between a face crop and its label: SQLite's "database or disk is
    full" was a traceback, which said neither what was imported nor what to do."""
    monkeypatch.setattr("facesortd.cli.common.FaceDetector", BrightBlobDetector)
    monkeypatch.setenv("FACESORTD_STATE_DIR", str(settings.state_dir))
    dataset = _faces_json(tmp_path / "seed")
    real_add, real_statvfs = Journal.add_label, os.statvfs
    room = iter([True])

    def add_label(journal: Journal, *args: object) -> None:
        if not next(room, False):
            raise sqlite3.OperationalError("database or disk is full")
        real_add(journal, *args)

    full = os.statvfs_result((*real_statvfs(tmp_path)[:4], 0, *real_statvfs(tmp_path)[5:]))
    monkeypatch.setattr(Journal, "add_label", add_label)
    monkeypatch.setattr("facesortd.journal.os.statvfs", lambda _folder: full)
    assert cli.main(["import-labels", str(dataset)]) == 1
    said = capsys.readouterr()
    state = settings.state_dir
    assert said.out == "imported: 1; stopped: the same command imports the rest\n"
    assert said.err.endswith(
        f"\nfacesortd: error: cannot use the journal {state / 'journal.sqlite'} (database or disk is full): "
        f"its disk is full: free some space there (df -h '{state}'); it is not damaged, keep it\n"
    )


def test_a_persons_label_is_never_replaced_by_an_import(settings: Settings, tmp_path: Path) -> None:
    from facesortd.learn.datasets import load_items
    from facesortd.learn.label_import import import_labels

    dataset = _faces_json(tmp_path / "seed")
    journal = Journal.for_state_dir(settings.state_dir)
    shot = dataset.parent / "screenshots" / "kaguya1.png"
    journal.add_label(file_hash(shot), "surprised", "human", None, "kaguya", shot)
    outcome = import_labels(settings, journal, load_items(dataset), BrightBlobDetector())
    assert outcome == {"labelled by you already": 2}
    journal.close()


def test_an_old_journal_is_migrated_to_accept_dataset_labels(tmp_path: Path) -> None:
    """Journals written before 'dataset' labels existed keep every label and take the new kind."""
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE labels (id INTEGER PRIMARY KEY, hash TEXT NOT NULL, label TEXT NOT NULL,"
        " source TEXT NOT NULL CHECK (source IN ('human', 'correction')), face TEXT, box TEXT,"
        " grp TEXT NOT NULL, path TEXT NOT NULL, created REAL NOT NULL)"
    )
    db.execute("INSERT INTO labels VALUES (1, 'h1', 'happy', 'human', NULL, NULL, 'g', '/x.png', 1.0)")
    db.commit()
    db.close()
    journal = Journal(path)
    journal.add_label("h2", "sad", "dataset", None, "g", Path("/y.png"))
    assert [(h, lbl, src) for h, lbl, src, *_ in journal.labels()] == [
        ("h1", "happy", "human"),
        ("h2", "sad", "dataset"),
    ]
    journal.close()
    assert len(Journal(path).labels()) == 2  # opening again migrates nothing twice


def test_a_journal_from_before_face_boxes_were_kept_opens_with_its_labels(tmp_path: Path) -> None:
    """The first learning journals (2026-11-24) had no ``box`` column: the dataset migration copied
    the table by position, failed, and every command said "cannot use the journal ... (dmesg)"."""
    path = tmp_path / "journal.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE labels (id INTEGER PRIMARY KEY, hash TEXT NOT NULL, label TEXT NOT NULL,"
        " source TEXT NOT NULL CHECK (source IN ('human', 'correction')), face TEXT,"
        " grp TEXT NOT NULL, path TEXT NOT NULL, created REAL NOT NULL)"
    )
    db.execute("INSERT INTO labels VALUES (1, 'h1', 'happy', 'human', '/f.png', 'g', '/x.png', 1.0)")
    db.commit()
    db.close()
    journal = Journal(path)
    assert journal.labels() == [("h1", "happy", "human", "/f.png", "g", 1.0)]
    journal.close()


def test_a_box_file_that_is_not_text_or_a_dataset_that_is_missing_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A faces.json that is not UTF-8 (a binary file named .json) ended in a UnicodeDecodeError
    traceback; a DATASET that does not exist was called "not a folder" though a file would do."""
    binary = tmp_path / "faces.json"
    binary.write_bytes(b"\xff\xfe{}")
    missing = tmp_path / "nothere.json"
    for dataset, message in (
        (binary, f"cannot read face boxes from {binary}: not a faces.json box file (it is not UTF-8 text)"),
        (
            missing,
            f"{missing}: no such file or folder (a DATASET is a folder of emotion folders, or a faces.json)",
        ),
    ):
        assert cli.main(["import-labels", str(dataset)]) == 2
        assert capsys.readouterr().err == f"facesortd: error: {message}\n"


def test_a_vn_faces_folder_is_refused_and_train_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Read without the backgrounds `train` lays its transparent sprites over, its faces were not
    `train`'s; it was imported all the same."""
    from test_vn_faces import write_vn_folder

    vn = write_vn_folder(tmp_path / "vn")
    assert cli.main(["import-labels", "--no-detect", str(vn)]) == 2
    err = capsys.readouterr().err
    assert f"{vn} is a vn_faces folder" in err and f"facesortd train {vn}" in err
    journal = Journal.for_state_dir(load_settings().state_dir)
    assert journal.labels() == []
    journal.close()


@pytest.mark.parametrize("command", ["import-labels", "train", "eval"])
@pytest.mark.parametrize("which", ["library", "its parent"])
def test_the_library_is_refused_as_a_dataset(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    which: str,
    command: str,
) -> None:
    """`import-labels ~/Pictures/facesortd/library` took the files facesortd had sorted into emotion
    folders for labels (its own guesses, which must never train it); the folder above it made
    "library" and "inbox" emotions of everything in them. `train` and `eval` of it, until
    2026-12-03, trained on those guesses and measured the model by its own answers."""
    library = tmp_path / "facesortd" / "library"
    for emotion in ("happy", "sad"):
        (library / emotion).mkdir(parents=True)
        cv2.imwrite(str(library / emotion / "a.png"), draw_screenshot(emotion, np.random.default_rng(5))[0])
    monkeypatch.setenv("FACESORTD_LIBRARY", str(library))
    src = library if which == "library" else library.parent
    assert cli.main([command, "--no-detect", str(src)]) == 2
    err = capsys.readouterr().err
    assert "facesortd's library" in err and "Traceback" not in err
    assert not (load_settings().state_dir / "models").exists()
    journal = Journal.for_state_dir(load_settings().state_dir)
    assert journal.labels() == []
    journal.close()
