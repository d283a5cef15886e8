"""Moves never overwrite, and keep working across filesystems and without hard links."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from facesortd import durable, refusals


def _file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_move_never_overwrites_and_numbers_clashes(tmp_path: Path) -> None:
    _file(tmp_path / "lib" / "a.png", b"old")
    _file(tmp_path / "lib" / "a (1).png", b"older")
    src = _file(tmp_path / "in" / "a.png", b"new")
    final = durable.move_no_replace(src, tmp_path / "lib" / "a.png")
    assert final.name == "a (2).png" and final.read_bytes() == b"new"
    assert (tmp_path / "lib" / "a.png").read_bytes() == b"old"
    assert not src.exists()


def test_copy_keeps_source_and_leaves_no_temp(tmp_path: Path) -> None:
    src = _file(tmp_path / "in" / "a.png", b"data")
    final = durable.move_no_replace(src, tmp_path / "lib" / "a.png", copy=True)
    assert src.read_bytes() == final.read_bytes() == b"data"
    assert [p.name for p in (tmp_path / "lib").iterdir()] == ["a.png"]


def test_cross_filesystem_move_copies_then_removes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_link = os.link
    src = _file(tmp_path / "in" / "a.png", b"x" * 5000)

    def link(a, b, **kw):  # the first link (src -> library) crosses filesystems
        if Path(a) == src:
            raise OSError(errno.EXDEV, "cross-device")
        return real_link(a, b, **kw)

    monkeypatch.setattr(durable.os, "link", link)
    final = durable.move_no_replace(src, tmp_path / "lib" / "a.png")
    assert final.read_bytes() == b"x" * 5000 and not src.exists()
    assert [p.name for p in (tmp_path / "lib").iterdir()] == ["a.png"]


def _refuse_links(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hard links refused, as on FAT or for another user's file (protected hardlinks)."""

    def no_links(*_a, **_k):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(durable.os, "link", no_links)


@pytest.mark.parametrize("no_replace_rename", [True, False])
def test_filesystem_without_hard_links_still_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_replace_rename: bool
) -> None:
    """With the kernel's no-replace rename the file moves in one step and no name is claimed
    first (a kill -9 between claim and rename left an empty claim in the library for good), nor
    told to the journal (one more write per move); without it, the claim path still never
    overwrites, and the name claimed is told before it is made (a taken one is passed over)."""
    real_open = os.open

    def no_claims(path, flags, *args, **kw):
        assert not flags & os.O_EXCL, f"an empty claim was made at {path}"
        return real_open(path, flags, *args, **kw)

    _refuse_links(monkeypatch)
    if no_replace_rename:
        monkeypatch.setattr(durable.os, "open", no_claims)
    else:
        monkeypatch.setattr(durable, "rename_no_replace", lambda _a, _b: False)
    _file(tmp_path / "lib" / "a.png", b"old")
    src = _file(tmp_path / "in" / "a.png", b"new")
    told: list[tuple[Path, bool]] = []

    def claiming(name: Path) -> bytes:
        told.append((name, os.path.lexists(name)))
        return b"mark"

    final = durable.move_no_replace(src, tmp_path / "lib" / "a.png", claiming=claiming)
    assert final.name == "a (1).png" and final.read_bytes() == b"new" and not src.exists()
    assert (tmp_path / "lib" / "a.png").read_bytes() == b"old"
    assert told == ([] if no_replace_rename else [(final, False)])


def test_a_copy_onto_a_drive_without_the_no_replace_rename_tells_the_name_it_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy (`sort --copy`, or a move across filesystems) is linked into place as a move is: on a
    drive that claims names first, the name is told before it is claimed, for crash recovery."""
    _refuse_links(monkeypatch)
    monkeypatch.setattr(durable, "rename_no_replace", lambda _a, _b, _fd=None: False)
    src = _file(tmp_path / "in" / "a.png", b"data")
    told: list[Path] = []

    def claiming(name: Path) -> bytes:
        told.append(name)
        return b"mark"

    final = durable.move_no_replace(src, tmp_path / "lib" / "a.png", copy=True, claiming=claiming)
    assert told == [final] and final.read_bytes() == src.read_bytes() == b"data"


@pytest.mark.parametrize("copy", [False, True])
def test_a_claims_mark_is_on_the_drive_before_the_file_is_renamed_onto_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy: bool
) -> None:
    """On a drive that claims names first, the claim's mark is synced before the rename: written
    only, a power cut could leave the claim on the drive without it (empty: recovery leaves it, and
    the file is sorted again beside it as ``a (1).png``)."""
    _refuse_links(monkeypatch)
    monkeypatch.setattr(durable, "rename_no_replace", lambda _a, _b, _fd=None: False)
    src = _file(tmp_path / "in" / "a.png", b"data")
    real_fsync = os.fsync
    synced: list[tuple[str, bytes]] = []

    def fsync(fd: int) -> None:  # what the file synced holds then: the mark, not yet the file
        name = Path(os.readlink(f"/proc/self/fd/{fd}"))
        synced.append((name.name, name.read_bytes() if name.is_file() else b""))
        real_fsync(fd)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    final = durable.move_no_replace(src, tmp_path / "lib" / "a.png", copy=copy, claiming=lambda _n: b"mark")
    assert (final.name, b"mark") in synced and final.read_bytes() == b"data"


def test_no_replace_rename_refuses_to_replace_and_reports_errors(tmp_path: Path) -> None:
    a, b = _file(tmp_path / "a", b"a"), _file(tmp_path / "b", b"b")
    if not durable.rename_no_replace(a, tmp_path / "c"):
        pytest.skip("this system has no no-replace rename")
    c = tmp_path / "c"
    with pytest.raises(FileExistsError):
        durable.rename_no_replace(c, b)
    with pytest.raises(FileNotFoundError):
        durable.rename_no_replace(a, tmp_path / "d")
    assert c.read_bytes() == b"a" and b.read_bytes() == b"b"


def test_atomic_writer_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = _file(tmp_path / "m.bin", b"old")
    with pytest.raises(RuntimeError), durable.atomic_writer(target) as fh:
        fh.write(b"half")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]


@pytest.mark.parametrize("across_filesystems", [False, True])
def test_a_source_that_cannot_be_removed_is_not_copied_into_the_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, across_filesystems: bool
) -> None:
    """An inbox on a read-only mount: each retry used to leave one more copy in the library."""
    src = _file(tmp_path / "in" / "a.png", b"data")
    real_link, real_unlink = os.link, Path.unlink

    def link(a, b, **kw):
        if across_filesystems and Path(a) == src:
            raise OSError(errno.EXDEV, "cross-device")
        return real_link(a, b, **kw)

    def unlink(path: Path, missing_ok: bool = False) -> None:
        if path == src:
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real_unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(durable.os, "link", link)
    monkeypatch.setattr(Path, "unlink", unlink)
    for _retry in range(3):
        with pytest.raises(OSError, match=r"cannot remove it from .*in.*Read-only"):
            durable.move_no_replace(src, tmp_path / "lib" / "a.png")
    assert src.read_bytes() == b"data"
    assert list((tmp_path / "lib").iterdir()) == []


@pytest.mark.parametrize("no_replace_rename", [True, False])
def test_a_source_another_user_owns_in_a_sticky_folder_leaves_no_empty_claims(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_replace_rename: bool
) -> None:
    """Another user's file in a shared sticky inbox: the kernel refuses the hard link (protected
    hardlinks) and the rename. Each retry left one more empty ``a (n).png`` in the library (on a
    system without the no-replace rename, the claim path still cleans up after itself)."""
    src = _file(tmp_path / "in" / "a.png", b"data")
    real_rename = os.rename

    def refused(a, b):
        if Path(a) == src:
            raise OSError(errno.EPERM, "Operation not permitted", str(a))
        real_rename(a, b)

    def refused_no_replace(a: Path, b: Path) -> bool:
        refused(a, b)
        return True

    _refuse_links(monkeypatch)
    monkeypatch.setattr(durable.os, "rename", refused)
    monkeypatch.setattr(
        durable, "rename_no_replace", refused_no_replace if no_replace_rename else lambda _a, _b: False
    )
    for _retry in range(3):
        with pytest.raises(OSError, match=r"cannot remove it from .*in \(Operation not permitted\)"):
            durable.move_no_replace(src, tmp_path / "lib" / "a.png")
    assert src.read_bytes() == b"data"
    assert list((tmp_path / "lib").iterdir()) == []


def test_a_destination_folder_that_refuses_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library folder made read-only: the error names that folder and the fix, not two raw paths."""
    src = _file(tmp_path / "in" / "a.png", b"data")
    folder = tmp_path / "lib" / "happy"
    folder.mkdir(parents=True)
    real_access = os.access

    def link(a, b, **_kw):
        raise OSError(errno.EACCES, "Permission denied", str(a), None, str(b))

    monkeypatch.setattr(durable.os, "link", link)
    monkeypatch.setattr(durable.os, "access", lambda p, mode: Path(p) != folder and real_access(p, mode))
    with pytest.raises(OSError) as caught:
        durable.move_no_replace(src, folder / "a.png")
    assert str(caught.value) == (
        f"cannot write into {folder} (Permission denied): facesortd must be able to write "
        f"there (chmod u+rwx '{folder}')"
    )
    assert src.read_bytes() == b"data" and list(folder.iterdir()) == []


def test_a_file_it_may_not_read_on_another_filesystem_is_said_to_be_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mode-000 file in an inbox on another filesystem cannot be copied: the error blamed the
    inbox ("cannot remove it from <inbox> ... chmod u+rwx"), which was not the problem."""
    src = _file(tmp_path / "in" / "a.png", b"data")
    real_open = durable.open_regular  # as a mode-000 file opens for root, who runs the tests

    def cross_device(*_a, **_k):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def unreadable(path: Path):
        if path == src:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path)

    monkeypatch.setattr(durable, "open_regular", unreadable)
    with pytest.raises(OSError) as caught:
        durable.move_no_replace(src, tmp_path / "lib" / "a.png", copy=True)
    assert str(caught.value) == (
        "cannot read it (Permission denied): a copy (--copy) reads it: give yourself read access "
        "(chmod u+r), or ask its owner"
    )
    monkeypatch.setattr(durable.os, "link", cross_device)
    with pytest.raises(OSError) as caught:
        durable.move_no_replace(src, tmp_path / "lib" / "a.png")
    assert str(caught.value) == (
        f"cannot read it (Permission denied): {tmp_path / 'lib'} is on another filesystem, so the file "
        "is copied there, which reads it: give yourself read access (chmod u+r), or ask its owner"
    )
    assert src.exists() and list((tmp_path / "lib").iterdir()) == []


def test_a_folder_that_may_not_be_listed_is_one_sentence_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one wording status, the label scan, the review page and the watcher all say it in."""
    _file(tmp_path / "open" / "a.png", b"a")
    assert [e.name for e in refusals.list_folder(tmp_path / "open")] == ["a.png"]
    assert refusals.list_folder(tmp_path / "missing") == []
    assert refusals.list_folder(tmp_path / "open" / "a.png") == []
    locked = tmp_path / "locked"
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(refusals.Refused) as refused:
        refusals.list_folder(locked)
    assert str(refused.value) == (
        f"cannot list {locked} (Permission denied): make it readable (chmod u+rwx '{locked}')"
    )


def test_replace_dropping_removes_the_stale_file_only_once_the_new_one_is_whole(tmp_path: Path) -> None:
    """A model retrained to the same name loses the validation set held out from the old one: not
    before the new model is written whole (a failed write keeps both), and never after the new
    model took the name (a crash then would leave the new model judged on the old set)."""
    path, stale = tmp_path / "m.fsm.npz", tmp_path / "m.validation.npz"
    path.write_bytes(b"old")
    stale.write_bytes(b"old set")
    seen: list[tuple[bytes, bool]] = []

    def write(tmp: Path) -> None:
        seen.append((path.read_bytes(), stale.exists()))
        tmp.write_bytes(b"new")

    real_replace = os.replace

    def replace(src: str | Path, dest: str | Path) -> None:
        assert not stale.exists(), "the new model took the name while the stale set was still there"
        real_replace(src, dest)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", replace)
        durable.replace_dropping(path, write, stale)
    assert seen == [(b"old", True)] and path.read_bytes() == b"new" and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fsm.npz"]

    stale.write_bytes(b"old set")

    def fail(tmp: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        durable.replace_dropping(path, fail, stale)
    assert path.read_bytes() == b"new" and stale.read_bytes() == b"old set"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.fsm.npz", "m.validation.npz"]


@pytest.mark.parametrize("blocker", ["_quarantine", "_quarantine/unsure"])
def test_a_file_where_a_library_folder_belongs_is_named_with_the_fix(tmp_path: Path, blocker: str) -> None:
    """A file named `_quarantine` (or like an emotion) in the library: `sort` said "[Errno 20] Not a
    directory", the daemon retried that for ever, and the review page said "File exists: make the
    folder writable (chmod u+rwx)", which cannot help."""
    _file(tmp_path / "lib" / blocker, b"a note")
    src = _file(tmp_path / "in" / "a.png", b"shot")
    with pytest.raises(refusals.Refused) as refused:
        durable.move_no_replace(src, tmp_path / "lib" / "_quarantine" / "unsure" / "a.png")
    assert str(refused.value).endswith(
        f"{tmp_path / 'lib' / blocker} is a file, not a folder: move that file away"
    )
    assert src.read_bytes() == b"shot" and (tmp_path / "lib" / blocker).read_bytes() == b"a note"


@pytest.mark.parametrize("rewrite", ["appended", "same size"])
def test_a_file_written_to_during_its_copy_to_another_filesystem_keeps_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rewrite: str
) -> None:
    """Across filesystems a file is copied, then its source removed. The source counted as the
    file copied whenever its inode was the same, so bytes a tool wrote into it while the copy read
    it (a download still running, a save in place of the same size) were lost with the removed
    source, and the library kept the old or half bytes. Now the copy is taken back and the file
    stays, whole, where it was, to be sorted again."""
    real_link = os.link
    src = _file(tmp_path / "in" / "a.png", b"x" * 5000)
    real_copy = durable.shutil.copyfileobj

    def link(a, b, **kw):
        if Path(a) == src:
            raise OSError(errno.EXDEV, "cross-device")
        return real_link(a, b, **kw)

    def copy_then_written(inp, out, length=0):  # type: ignore[no-untyped-def]
        real_copy(inp, out, length)
        before = os.stat(src)
        with open(src, "r+b") as fh:
            if rewrite == "appended":
                fh.seek(0, os.SEEK_END)
            fh.write(b"y" * 100)
        os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))  # a clock of 2 s (FAT) did not move

    monkeypatch.setattr(durable.os, "link", link)
    monkeypatch.setattr(durable.shutil, "copyfileobj", copy_then_written)
    with pytest.raises(FileNotFoundError):
        durable.move_no_replace(src, tmp_path / "lib" / "a.png")
    written = b"x" * 5000 + b"y" * 100 if rewrite == "appended" else b"y" * 100 + b"x" * 4900
    assert src.read_bytes() == written
    assert list((tmp_path / "lib").iterdir()) == []


def test_a_copy_asked_for_of_a_file_written_to_meanwhile_is_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sort --copy` kept whatever the copy read of a file still being written (a download still
    running, a save in place): a half or stale file in the library, journaled as the file's copy.
    The copy is taken back; the file, whole where it was, is copied again once its writer is done."""
    src = _file(tmp_path / "screens" / "a.png", b"x" * 5000)
    real_copy = durable.shutil.copyfileobj

    def copy_then_appended(inp, out, length=0):  # type: ignore[no-untyped-def]
        real_copy(inp, out, length)
        with open(src, "ab") as fh:
            fh.write(b"y" * 100)

    monkeypatch.setattr(durable.shutil, "copyfileobj", copy_then_appended)
    with pytest.raises(FileNotFoundError):
        durable.move_no_replace(src, tmp_path / "lib" / "a.png", copy=True)
    assert src.read_bytes() == b"x" * 5000 + b"y" * 100
    assert list((tmp_path / "lib").iterdir()) == []
    monkeypatch.setattr(durable.shutil, "copyfileobj", real_copy)  # its writer done: copied whole
    copied = durable.move_no_replace(src, tmp_path / "lib" / "a.png", copy=True)
    assert copied.read_bytes() == src.read_bytes()


def test_a_copy_asked_for_interrupted_while_it_is_checked_is_taken_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while a copy (`sort --copy`) is compared with its source: the move is journaled rolled
    back, so a copy left in the library is unknown to the journal, and the next `sort --copy` puts
    the file in a second time."""
    src = _file(tmp_path / "screens" / "a.png", b"x" * 5000)

    def interrupted(a: Path, b: Path) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(durable, "_same_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        durable.move_no_replace(src, tmp_path / "lib" / "a.png", copy=True)
    assert src.read_bytes() == b"x" * 5000 and list((tmp_path / "lib").iterdir()) == []


def test_a_library_folder_that_cannot_be_made_is_said_of_the_folder_refusing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sort FILE` into a library whose folder its parent refuses to have made in it (EPERM, a
    folder of another user's): the refusal said "cannot remove it from <the file's folder>" and
    advised to chmod that folder, which could not help. It names the folder refusing now."""
    src = _file(tmp_path / "in" / "a.png", b"shot")
    real_mkdir = Path.mkdir

    def refused(self: Path, *args: object, **kw: object) -> None:
        if self.is_relative_to(tmp_path / "lib"):
            raise PermissionError(errno.EPERM, "Operation not permitted", str(self))
        real_mkdir(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "mkdir", refused)
    with pytest.raises(refusals.Refused) as said:
        durable.move_no_replace(src, tmp_path / "lib" / "happy" / "a.png")
    assert str(said.value).startswith(f"cannot write into {tmp_path} (Operation not permitted)"), said.value
    assert src.read_bytes() == b"shot"


def test_an_empty_array_file_is_refused_as_damaged_not_an_end_of_file_error(tmp_path: Path) -> None:
    """A model (or any array file) emptied (truncated, copied onto a full disk) was numpy's EOFError,
    which no reader caught: a model in force emptied failed every file the daemon sorted, and
    `status`, with a traceback. It is refused as any file that is not one now: counted as gone."""
    from facesortd import model_store

    empty = _file(tmp_path / "models" / "mine.fsm.npz", b"")
    with pytest.raises(ValueError, match="an empty file"):
        durable.read_npz(empty)
    assert "an empty file" in model_store.unreadable(empty)
