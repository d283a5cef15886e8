"""What an ordinary user's permissions refuse (checked by hand as a non-root user, sixth round): each
test is the minimal repro of a defect found then. The suite runs as root, whom permissions never
refuse, so the refusals are simulated where the kernel would make them."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from loguru import logger
from synthetic import BrightBlobDetector, screenshot_png

from facesortd import journal as journal_module
from facesortd.config import Settings
from facesortd.decide import Decision
from facesortd.journal import Journal, content_id
from facesortd.learn import review
from facesortd.library import Library
from facesortd.placement import journaled_apply


def _denied(path: Path) -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied", str(path))


def test_a_file_we_may_not_read_in_the_library_does_not_cost_the_labels_given_beside_it(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root-owned mode-600 file dropped into the inbox is sorted to unreadable/ (it can be moved,
    not read). The label scan then hashed it, failed, and with it every label of that scan."""
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    real_hash = journal_module.file_hash

    def file_hash(path: Path) -> str:
        if Path(path).name == "secret.png":
            raise _denied(path)
        return real_hash(path)

    monkeypatch.setattr(journal_module, "file_hash", file_hash)
    monkeypatch.setattr(review, "file_hash", file_hash, raising=False)  # where the scan once took it
    lib = daemon_settings.library
    secret = daemon_settings.inbox / "secret.png"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"not ours to read")
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    unreadable = Decision.quarantine("unreadable", detail="cannot read file: Permission denied")
    journaled_apply(journal, Library(lib), secret, content_id(secret), unreadable, "m")
    (lib / "happy").mkdir(parents=True)
    (lib / "happy" / "b.png").write_bytes(screenshot_png(7))

    assert review.Reviewer(daemon_settings, journal).scan() == 1  # b.png's label, nothing else
    assert [label for _h, label, *_ in journal.labels()] == ["happy"]
    journal.close()


def test_a_folder_we_may_not_list_holds_back_only_its_own_labels(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An emotion folder made unreadable (chmod 300) failed every scan: no label anywhere counted."""
    warnings: list[str] = []
    logger.add(warnings.append, level="WARNING", format="{message}")
    monkeypatch.setattr(review, "FaceDetector", BrightBlobDetector)
    lib = daemon_settings.library
    for emotion, seed in (("happy", 1), ("sad", 2)):
        (lib / emotion).mkdir(parents=True)
        (lib / emotion / f"{emotion}.png").write_bytes(screenshot_png(seed))
    locked = {lib / "happy"}
    real_iterdir = Path.iterdir

    def iterdir(folder: Path):  # type: ignore[no-untyped-def]
        if folder in locked:
            raise _denied(folder)
        return real_iterdir(folder)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    journal = Journal.for_state_dir(daemon_settings.state_dir)
    reviewer = review.Reviewer(daemon_settings, journal)
    assert reviewer.scan() == 1  # sad's label
    assert reviewer.scan() == 0
    assert [w.startswith(f"{lib / 'happy'}: cannot list it (Permission denied)") for w in warnings] == [True]
    locked.clear()  # the person lets facesortd in again: the label waiting there counts now
    assert reviewer.scan() == 1
    assert sorted(label for _h, label, *_ in journal.labels()) == ["happy", "sad"]
    journal.close()
