"""File operations that survive crashes and never overwrite: the only place facesortd changes files.

A user's screenshot may be moved, copied or replaced only through these functions. Each one
either completes (data and directory entries fsynced) or leaves the source where it was.
The names a move may give a file are file_names.py's, the errors a person can fix refusals.py's.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from facesortd.file_names import NUMBERED_NAMES, fallback_names, longer_than_name_max, numbered
from facesortd.mounts import nearest_existing
from facesortd.refusals import (
    DISK_FULL,
    REFUSALS,
    Outside,
    Refused,
    Unmade,
    disk_full_fix,
    folder_refused,
    in_the_way,
    name_refused,
    not_a_folder_fix,
    path_too_long_fix,
)

TMP_PREFIX = ".facesortd-tmp-"
"""Temporary files carry this prefix; they are hidden, ignored by the watcher and safe to delete."""

NOT_REGULAR = "not a regular file (a FIFO, socket or device)"


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading if it is a regular file, else OSError(EINVAL, NOT_REGULAR).

    Every user file facesortd reads goes through here. Opened non-blocking and judged by what was
    opened: a FIFO named like an image (dropped into the inbox, named on the command line, or
    swapped in for a file after it was looked at) made a plain open wait for a writer for ever, and
    the command or the daemon's worker with it; its size, 0, read as "empty file (0 bytes)". A
    socket cannot be opened at all (ENXIO), and a device is not opened (opening one may act on it).
    """
    if not stat.S_ISREG(os.stat(path).st_mode):  # a symbolic link to a file is read (the caller judges links)
        raise OSError(errno.EINVAL, NOT_REGULAR, str(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket swapped in
            raise OSError(errno.EINVAL, NOT_REGULAR, str(path)) from None
        raise
    fh = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        fh.close()
        raise OSError(errno.EINVAL, NOT_REGULAR, str(path))
    return fh


def small_file(path: Path, most: int) -> bytes | None:
    """What ``path`` holds if it is a regular file (not a link to one) of at most ``most`` bytes that
    may be read; None if not. For telling a claim's mark (``journal.claim_mark``) from a file of a
    person's: a larger file (any picture but the tiniest) is not read."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > most:
            return None
        with open_regular(path) as fh:
            held = fh.read(most + 1)
    except OSError:
        return None
    return held if len(held) <= most else None


def remove_temp_files(
    folders: Iterable[Path], older_than_s: float | None = None, prefix: str = TMP_PREFIX
) -> list[Path]:
    """Remove the temp files (named ``prefix``, ``TMP_PREFIX`` or one of its kinds) a killed writer
    left in ``folders``, those changed more than ``older_than_s`` ago (a live writer owns a fresh
    one; None: any, for a caller sure no such writer is at work); returns what was removed. A folder
    that is not there, or not ours to list, holds nothing to tidy."""
    removed = []
    now = time.time()
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                stale = [
                    Path(e.path)
                    for e in entries
                    if e.name.startswith(prefix)
                    and e.is_file(follow_symlinks=False)
                    and (older_than_s is None or now - e.stat(follow_symlinks=False).st_mtime > older_than_s)
                ]
        except OSError:
            continue
        for path in stale:
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable (POSIX needs the directory itself synced)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` via a temp file beside it, fsync, rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray], *, compressed: bool = False) -> Path:
    """``arrays`` as one .npz file, whole or not at all (:func:`atomic_writer`) and under exactly
    ``path``: numpy given a file name adds ``.npz`` to one without it, and the reader naming it
    would find nothing. For every array file facesortd writes (models, gate, verifier, face sets,
    predictions): a half-written one is refused at the next start."""
    with atomic_writer(Path(path)) as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return Path(path)


def read_npz(path: Path | BinaryIO) -> Any:
    """``np.load`` for the array files facesortd writes (models, verifier, gate, face sets), which
    never unpickles. Any other file (a text file, a screenshot named as the model) made numpy say it
    "contains pickled (object) data. If you trust the file you can load it unsafely using the
    `allow_pickle=` keyword argument", which every message naming such a file passed on: a wrong
    name for the file, and advice to run code from it. An empty one (truncated, a copy onto a full
    disk) was numpy's EOFError, which no reader took for a damaged file: a model in force emptied
    failed every file the daemon sorted, and `status`, with a traceback. A FIFO (or a device) in
    its place is not opened: reading one waited for a writer for ever (`doctor`, and `run` before it
    was ready, with a verifier or gate so named). Bytes already read (a file object) came from a
    file its reader opened as a regular one (:func:`open_regular`)."""
    if isinstance(path, os.PathLike):
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a folder: numpy's "Is a directory"
            raise ValueError(NOT_REGULAR)
    try:
        return np.load(path, allow_pickle=False)
    except EOFError:
        raise ValueError("an empty file, not a NumPy array file (.npz) as facesortd writes them") from None
    except ValueError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise ValueError("not a NumPy array file (.npz), as facesortd writes them") from None


def replace_dropping(path: Path, write: Callable[[Path], object], stale: Path) -> None:
    """A new ``path``, written whole by ``write`` under a temp name beside it, then ``stale`` (a
    file that belongs to the old ``path`` only) removed, then the new file renamed into place. A
    failed ``write`` leaves both as they were; a crash leaves the old file (perhaps without
    ``stale``) or the new one without it, never the new file beside ``stale``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if stale.exists():
            stale.unlink()
            fsync_dir(stale.parent)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


Claiming = Callable[[Path], bytes]
"""Told each name a move is about to claim (see :func:`_link_no_replace`), before it does; returns
the mark the claim is made holding. The journal records the name, and the mark is one of that move
alone: crash recovery removes that very claim, and only while it holds the mark (not a file a
screenshot tool made under the name after a kill before the claim was)."""


def write_new(
    dest: Path,
    fill: Callable[[BinaryIO], object],
    *,
    stat_from: Path | None = None,
    dir_fd: int | None = None,
    claiming: Claiming | None = None,
) -> Path:
    """A new file at ``dest``, or at the first free ``dest (n)``, never replacing one; returns the
    name used. ``fill`` writes it into a hidden temp file beside ``dest``, which is fsynced (and
    given ``stat_from``'s times and mode) before it is linked into place: whole or not there.
    For what facesortd adds to a folder a person keeps files in (a copy, a drawn image).
    ``dir_fd``: ``dest``'s folder as opened and checked, ``claiming`` (see :func:`link_no_replace`).

    A failure once the new name is made (its folder's fsync, the temp file's removal) takes the
    name back: a move copying across filesystems then leaves the source alone, said failed, and
    its retry copied the file once more (the first copy stayed, unknown to the journal)."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=TMP_PREFIX)
    tmp = Path(tmp_name)
    final: Path | None = None
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        if stat_from is not None:
            _copy_stat(stat_from, tmp)
        try:
            final = link_no_replace(tmp, dest, dir_fd=dir_fd, claiming=claiming)
        except OSError as exc:
            # The temp file went into that folder: what is refused is the name, not the folder
            # (EPERM was blamed on the folder the file came from, with advice to chmod it).
            if exc.errno in NAME_REFUSALS and os.path.lexists(tmp):
                raise name_refused(exc, dest) from exc
            raise
        tmp.unlink(missing_ok=True)
        fsync_dir(dest.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
            if final is not None:
                os.unlink(final if dir_fd is None else final.name, dir_fd=dir_fd)
        raise
    return final


NO_PERMISSIONS = (errno.EPERM, errno.ENOSYS, errno.ENOTSUP)
"""What a filesystem without POSIX permissions may answer a chmod: fusefat has none at all (ENOSYS);
EPERM or ENOTSUP where a driver refuses a mode it cannot keep (the kernel's vfat and exfat drop
such a change without a word, as exfat-fuse and ntfs-3g do)."""


def _copy_stat(src: Path, dest: Path) -> None:
    """``dest`` given ``src``'s times and permission bits, as far as its filesystem keeps them.

    On a FAT drive through fusefat the chmod (``shutil.copystat`` sets times first, then the mode)
    was refused, and with it every copy into a library there: each file failed for ever, "[Errno
    38] Function not implemented" (an EPERM was blamed on the inbox, with advice to chmod it). The
    permissions are those the drive gives every file; the times are kept where it takes them."""
    try:
        shutil.copystat(src, dest)
    except OSError as exc:
        if exc.errno not in NO_PERMISSIONS:
            raise


NAME_REFUSALS = (errno.ENOENT, errno.EINVAL, errno.EILSEQ, errno.EPERM)
"""What a filesystem answers a name it refuses: exFAT through FUSE says ENOENT for ``a:b.png``,
fusefat EPERM, the kernel's vfat and exfat EINVAL; exFAT and NTFS say EILSEQ for bytes that are not
UTF-8. Each means something else too (a source gone, no hard links, no permission), so a name is
only taken for refused when its :func:`portable_name` differs and the source is still there."""


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100
_UNSUPPORTED = (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP)
"""What renameat2 answers where the kernel or the filesystem has no no-replace rename."""


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None  # a C library without it (glibc before 2.28, some others)


def rename_no_replace(src: Path, dest: Path, dir_fd: int | None = None) -> bool:
    """Rename ``src`` to ``dest`` unless ``dest`` exists (FileExistsError), in one step; False where
    the system has no such rename (then nothing happened). Python's ``os.rename`` replaces.
    ``dir_fd``: ``dest`` is a name in that opened folder."""
    call = _renameat2()
    if call is None:
        return False
    into = _AT_FDCWD if dir_fd is None else dir_fd
    if call(_AT_FDCWD, os.fsencode(src), into, os.fsencode(dest), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dest))


def link_no_replace(
    src: Path,
    dest: Path,
    name: Callable[[Path, int], Path] | None = None,
    *,
    dir_fd: int | None = None,
    claiming: Claiming | None = None,
) -> Path:
    """Put ``src`` at ``dest`` or, if taken, at the first free ``dest (n)`` (``name(dest, n)``, for
    names of another pattern: a model's ``_n``); return the name used.

    A name the destination's filesystem refuses (``a:b.png`` or a name that is not UTF-8 on an
    exFAT, FAT or NTFS drive) is given as its :func:`portable_name` instead (``a_b.png``, numbered
    alike), and if that is refused too, as its :func:`ascii_name` (FAT mounted without UTF-8, or
    through fusefat, takes no other): refused, the file was left where it was for ever, said "gone
    meanwhile" or an errno.
    """
    first: OSError | None = None
    for base in fallback_names(dest):
        try:
            return _link_whole_name(src, base, name, dir_fd, claiming)
        except OSError as exc:
            if first is not None and exc.errno not in NAME_REFUSALS:
                raise  # the name went through, something else did not: that says what
            first = first or exc
            if exc.errno not in NAME_REFUSALS or not os.path.lexists(src):
                raise first from None
    assert first is not None
    raise first  # not the name, then: the first error says what


def _link_whole_name(
    src: Path,
    dest: Path,
    name: Callable[[Path, int], Path] | None,
    dir_fd: int | None,
    claiming: Claiming | None,
) -> Path:
    """:func:`_link_no_replace`, a name longer than NAME_MAX bytes tried whole first. exFAT and NTFS
    count 255 UTF-16 units, not bytes: 100 of ``あ`` (300 bytes) is a name there, which was cut to
    255 bytes going into a library on such a drive, and `undo` gave it back cut into an inbox on
    one. Where the filesystem refuses it (ENAMETOOLONG: ext4, btrfs, xfs) it is cut as before."""
    if name is None and longer_than_name_max(dest):
        try:
            return _link_no_replace(src, dest, _whole_first, dir_fd=dir_fd, claiming=claiming)
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
    return _link_no_replace(src, dest, name, dir_fd=dir_fd, claiming=claiming)


def _whole_first(path: Path, n: int) -> Path:
    """``path`` whole, then its numbered names (cut to NAME_MAX bytes)."""
    return path if n == 0 else numbered(path, n)


def _link_no_replace(
    src: Path,
    dest: Path,
    name: Callable[[Path, int], Path] | None = None,
    *,
    dir_fd: int | None = None,
    claiming: Claiming | None = None,
) -> Path:
    """:func:`link_no_replace` under ``dest``'s own name (or its numbered ones).

    ``link`` fails with EEXIST instead of replacing, so two writers can never clobber each other.
    Where a hard link is refused (FAT and some network shares have none; the kernel refuses one
    to another user's file) ``src`` is renamed with the kernel's no-replace rename. Only where that
    is missing too is the name first claimed with O_EXCL and ``src`` renamed onto the claim: still
    no-replace, but a crash between the two leaves the claim behind (which crash recovery
    removes). That is every move into exFAT or FAT through FUSE: its rename answers EINVAL to the
    no-replace flag. ``claiming`` is told each name before it is claimed (a name already taken is
    passed over unclaimed and untold), and the claim is made holding the mark it returns: recovery
    removed any empty file made since the move under any name it might have taken, such as a
    screenshot its tool had just created and was writing, and then any empty file under the name
    told, which a kill before the claim was made left free for such a tool. Without ``claiming``
    (nothing recovers the claim) it is made empty.

    ``dir_fd``: ``dest``'s folder, opened (and checked) by the caller: the file goes into that very
    folder, whatever ``dest``'s path leads to by the time of the link.
    """
    for n in range(NUMBERED_NAMES):
        candidate = (name or numbered)(dest, n)
        target: Path | str = candidate if dir_fd is None else candidate.name
        try:
            os.link(src, target, dst_dir_fd=dir_fd, follow_symlinks=False)
            return candidate
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
        try:
            if (
                rename_no_replace(src, candidate)
                if dir_fd is None
                else rename_no_replace(src, Path(target), dir_fd)
            ):
                return candidate
        except FileExistsError:
            continue
        mark = b""
        if claiming is not None:
            if _taken(target, dir_fd):  # each name told is one more journal write
                continue
            mark = claiming(candidate)
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        claim = os.fstat(fd)
        try:
            try:  # unbuffered, at once: a kill before the mark is in leaves the claim empty, for good
                if os.write(fd, mark) != len(mark):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(candidate))
                if mark:  # on the drive before the rename: a power cut found the claim empty (left)
                    os.fsync(fd)
            finally:
                os.close(fd)
            if dir_fd is None:
                os.rename(src, candidate)
            else:
                os.rename(src, target, dst_dir_fd=dir_fd)
        except BaseException:
            # The file is still at ``src``: the claim goes, or every retry of a source we may not
            # move (another user's file in a sticky folder) left one more file behind.
            with contextlib.suppress(OSError):
                if os.path.samestat(os.stat(target, dir_fd=dir_fd, follow_symlinks=False), claim):
                    os.unlink(target, dir_fd=dir_fd)
            raise
        return candidate
    raise FileExistsError(errno.EEXIST, "no free name", str(dest))


def _taken(name: Path | str, dir_fd: int | None) -> bool:
    """Is something there under ``name``? Not known (any error) is no: the claim itself then says."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def claims_first(folder: Path) -> bool:
    """Does :func:`link_no_replace` claim a name in ``folder`` with an empty file before the rename
    (its filesystem refuses the kernel's no-replace rename)? Tried on a temp file of its own there.
    False where that cannot be made (the folder gone or not writable): no claim is removed there."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
    except OSError:
        return False
    os.close(fd)
    tmp = Path(name)
    renamed = tmp.with_name(tmp.name + "-renamed")
    try:
        return not rename_no_replace(tmp, renamed)
    except OSError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
        renamed.unlink(missing_ok=True)


def move_no_replace(
    src: Path,
    dest: Path,
    *,
    copy: bool = False,
    inside: Path | None = None,
    check: Callable[[], None] | None = None,
    content: str | None = None,
    claiming: Claiming | None = None,
) -> Path:
    """Move (or copy) ``src`` to ``dest`` without ever overwriting; returns the final path.

    Same filesystem: link to the new name, then unlink the old one (no-replace rename). Across
    filesystems, or with ``copy``: copy into a hidden temp file beside ``dest``, fsync it, link it
    to the final name, and only then remove the source. After a crash at any instant the file is
    whole at its source, its destination, or both (never neither, never half); a move that fails
    or is interrupted (Ctrl-C) before the source is removed takes the new name back.

    Only a regular file is moved: something else found under the name (a folder or a symbolic link
    put there since the file was looked at) is FileNotFoundError, the file being gone; a rename
    would have taken a person's folder, or a link, into the library under the file's name.

    ``inside``: a real folder (no link in its path) the file must land in: the destination folder
    is opened, found inside it (:class:`Outside` if not) and the file linked into that very opened
    folder, so a link swapped in on the way after the caller's own check cannot take it elsewhere.

    ``check``: raises (:class:`Refused`) while the destination may not be used; asked each time
    just before its folder is made (see :func:`_into_folder`), not only once before the move.

    ``content``: the SHA-256 the caller journaled the move under. A copy holding other bytes (the
    file written to since it was hashed) is never named, but FileNotFoundError: named, then cut off
    by a crash before its check against the source, it was a file recovery could not tell as the
    move's (neither the journaled content nor the source's now), left in the library unknown to the
    journal while the file stayed in the inbox to be sorted again.

    ``claiming``: told each name the move claims first (see :func:`link_no_replace`).
    """
    folder = dest.parent
    original: os.stat_result | None = None
    try:
        original = os.lstat(src)
        if not stat.S_ISREG(original.st_mode):
            raise FileNotFoundError(errno.ENOENT, MOVED_AWAY, str(src))
        if not copy:
            try:
                final = _into_folder(
                    lambda: _within(
                        folder, inside, lambda fd: link_no_replace(src, dest, dir_fd=fd, claiming=claiming)
                    ),
                    folder,
                    src,
                    original,
                    check,
                )
            except OSError as exc:
                if exc.errno != errno.EXDEV or isinstance(exc, Refused):
                    raise
            else:
                _remove_source(src, original, final)
                return final
        final = _into_folder(
            lambda: _within(
                folder, inside, lambda fd: _copy_no_replace(src, dest, copy, content, fd, claiming)
            ),
            folder,
            src,
            original,
            check,
        )
        if copy:
            _keep_copy(src, original, final)
        else:
            _remove_source(src, original, final)
        return final
    except Refused:
        raise
    except OSError as exc:
        if exc.errno in DISK_FULL:  # "[Errno 28] No space left on device" named no folder, no fix
            raise Refused(exc, f"cannot write into {dest.parent}", disk_full_fix(dest.parent)) from exc
        if exc.errno == errno.ENAMETOOLONG:  # retried for ever as a bare error, naming no fix
            raise Refused(exc, f"cannot put it into {dest.parent}", path_too_long_fix(dest.parent)) from exc
        moved = moved_away(exc) or original is None or not _is(src, original)
        if isinstance(exc, FileNotFoundError) and not moved and folder.is_dir():
            # Still there, its folder too: the folder's filesystem refused the name even as
            # portable_name and ascii_name have it (ENOENT is how exFAT through FUSE says so). It
            # was "gone meanwhile" and left in the inbox without a word.
            raise name_refused(exc, dest) from exc
        if exc.errno not in REFUSALS:
            raise
        into = _unwritable(dest.parent)
        raise folder_refused(exc, into or src.parent, into is None, src) from exc


def _within(folder: Path, inside: Path | None, place: Callable[[int | None], Path]) -> Path:
    """``place`` the file into ``folder`` opened (its fd), once the opened folder is found inside
    ``inside`` by the kernel's own name for it (/proc/self/fd: no path is looked up again). Without
    ``inside`` (or without /proc) the file is placed by its path as before."""
    if inside is None:
        return place(None)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            where = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # no /proc: the caller's own check, made just before, is all there is
            where = inside
        if not where.is_relative_to(inside):
            moved = OSError(errno.EXDEV, f"it led to {where} at the move, outside {inside}")
            fix = f"facesortd keeps files inside {inside}: make {folder} a folder of it again"
            raise Outside(moved, f"cannot put it into {folder}", fix)
        return place(fd)
    finally:
        os.close(fd)


FOLDER_TRIES = 3
"""How often a move makes its destination folder again when it vanished before the file got in."""


def _into_folder(
    place: Callable[[], Path],
    folder: Path,
    src: Path,
    original: os.stat_result,
    check: Callable[[], None] | None,
) -> Path:
    """``place()`` the file into ``folder``, made first. A folder removed between its making and the
    link (a person tidying empty folders, `rm -r` of an emotion folder) failed the link with ENOENT,
    which was taken for the file being gone: `sort` said "gone meanwhile" of a file still in its
    folder and left it. While the file is still there, the folder is made again (a few times).

    ``check`` is asked before each making: a folder gone with its drive (pulled out after the
    caller looked, or while the file was copied onto it) was made anew on the disk below the mount
    point, and the file put there, hidden once the drive was back."""
    for attempt in range(FOLDER_TRIES):
        if check is not None:
            check()
        _make_folder(folder)
        try:
            return place()
        except FileNotFoundError as exc:
            if folder.is_dir() or not _is(src, original):
                raise
            if attempt == FOLDER_TRIES - 1:  # the file is there: the folder it goes into is not
                raise Unmade(exc, folder, vanished=True) from exc
    raise AssertionError("unreachable")


MOVED_AWAY = "moved away or replaced by another process meanwhile"
"""Why a move found its source gone (FileNotFoundError): the sorter reports the file gone, not failed."""


def moved_away(exc: BaseException) -> bool:
    """Is ``exc`` a move's "gone meanwhile" (:data:`MOVED_AWAY`): its source no longer the file it
    took it for (moved on, replaced, or written to as it was copied)?"""
    return isinstance(exc, FileNotFoundError) and exc.strerror == MOVED_AWAY


def _make_folder(folder: Path) -> None:
    """``folder`` and its parents, made where missing. A file where one of them belongs (a note named
    `_quarantine`, a file named like an emotion) was "[Errno 20] Not a directory", retried for ever,
    and on the review page advice to chmod a folder that is not there. One a folder refuses to have
    made in it is said of that folder: the move's refusal named the folder the file came from.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            raise _blocked(exc, folder) from exc
        if isinstance(exc, FileNotFoundError):  # its parents made, it is not: of the destination
            raise Unmade(exc, folder, vanished=False) from exc
        if exc.errno not in REFUSALS:
            raise
        refusing = nearest_existing(folder)
        raise folder_refused(exc, refusing, False, refusing) from exc


def _blocked(exc: OSError, folder: Path) -> Refused:
    """A file where ``folder`` or one of its parents belongs, named with the fix."""
    return Refused(exc, f"cannot make the folder {folder}", not_a_folder_fix(in_the_way(folder) or folder))


def check_writable(folder: Path) -> None:
    """Refused, with the fix, unless this user may create files in ``folder`` (made if missing):
    asked before long work whose result must be stored there. An unnamed file is made and dropped,
    since permission bits alone miss read-only mounts, ACLs and root."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=TMP_PREFIX):
            pass
    except OSError as exc:
        if exc.errno not in REFUSALS:
            raise
        into = _unwritable(folder) or folder
        raise folder_refused(exc, into, False, into) from exc


def _unwritable(folder: Path) -> Path | None:
    """``folder``, or the first of its parents that exists, if this user may not create files in it."""
    folder = nearest_existing(folder)
    return None if os.access(folder, os.W_OK | os.X_OK) else folder


def _remove_source(src: Path, original: os.stat_result, final: Path) -> None:
    """The last step of a move: make the new name durable, then remove the old one.

    If that fails while the source is still there (an inbox on a read-only mount or in a folder
    the user may not write to; Ctrl-C at that instant), the new name is taken back: the file stays
    once, where it was, and a retry cannot pile up one more copy in the library each time. Only
    the very file we moved is taken back for: a new file dropped under its name meanwhile is not.

    A source already gone (or another file now: never removed) was renamed into place by
    link_no_replace's fallback, or moved on, replaced or deleted by a person meanwhile. If the file
    still has a name besides ours (more links than it had), the person's move wins and ours is
    taken back (FileNotFoundError: gone meanwhile), or it stayed in two places; otherwise ours is
    kept, as it may be the only one left.

    The source's folder gone by then (with its drive: an inbox on a USB drive pulled out once the
    copy was whole) has nothing left to make durable: the move is done. Its failed sync failed the
    move, journaled rolled back: the copy kept was unknown to the journal, and the file, back with
    its drive, was not known as sorted before.
    """
    try:
        fsync_dir(final.parent)
        if not _is(src, original, final):  # replaced meanwhile (a tool saving the next file under the name),
            raise FileNotFoundError  # or written to: the unlink would delete those bytes, their only copy
        src.unlink()
    except FileNotFoundError:
        if os.lstat(final).st_nlink > original.st_nlink or _same_inode(src, original):
            final.unlink()
            fsync_dir(final.parent)
            raise FileNotFoundError(errno.ENOENT, MOVED_AWAY, str(src)) from None
    except BaseException as exc:
        if not (_same_inode(src, original) or _is(src, original, final)):
            raise
        final.unlink()
        fsync_dir(final.parent)
        if isinstance(exc, OSError):
            raise folder_refused(exc, src.parent, True, src) from exc
        raise
    try:
        fsync_dir(src.parent)
    except OSError:
        if src.parent.is_dir():
            raise


def _keep_copy(src: Path, original: os.stat_result, final: Path) -> None:
    """The last step of a copy asked for (``sort --copy``): taken back if its source, still the file
    copied, no longer holds the copy's bytes. A tool still writing into it (a download) or saving
    in place over it left a half or stale file in the library, journaled as the file's copy. A
    source replaced by another file meanwhile keeps the copy: it may be the only one left. So is
    the copy taken back if the look is cut short (Ctrl-C): the move is journaled rolled back, and a
    copy left behind, unknown to the journal, was copied a second time by the next `sort --copy`."""
    try:
        if not _same_inode(src, original) or _is(src, original, final):
            return
        raise FileNotFoundError(errno.ENOENT, MOVED_AWAY, str(src))
    except BaseException:
        final.unlink()
        fsync_dir(final.parent)
        raise


def unwritten(st: os.stat_result) -> tuple[int, int, int]:
    """What stays of a file nobody wrote to when its inode number may not: its device, size and
    modification time. FUSE filesystems (exfat-fuse, fusefat) number a file anew whenever the kernel
    dropped it from its cache, so the inode alone took the very file for another: the move's checks
    and the review page's listing ask this instead, with the content where it must be sure."""
    return st.st_dev, st.st_size, st.st_mtime_ns


def _is(path: Path, original: os.stat_result, copy: Path | None = None) -> bool:
    """Is ``path`` still the file ``original`` was taken of? With ``copy`` (where it was just put):
    only if it holds the copy's bytes, unless ``copy`` is a link to it (one file, two names).

    The same inode is not enough once the file was copied: a tool still writing into it (a
    download across filesystems) or saving in place over it wrote bytes the copy never read, and
    they went with the removed source. Another inode number with the same device, size and
    modification time may be the file too: FUSE filesystems (exfat-fuse, fusefat) number a file
    anew whenever the kernel dropped it from its cache, and the source, taken for another file,
    stayed in an inbox on such a drive beside its copy in the library, which sorted it again."""
    try:
        now = os.lstat(path)
        linked = copy is not None and os.path.samestat(now, os.lstat(copy))
    except OSError:
        return False
    if copy is None or linked:
        return os.path.samestat(now, original)
    same = os.path.samestat(now, original) or unwritten(now) == unwritten(original)
    return same and stat.S_ISREG(now.st_mode) and _same_bytes(path, copy)


COARSE_CLOCK_WINDOW_NS = 60 * 10**9
"""How recent a whole-second modification time must be to be doubted (see time_may_hide_a_write)."""


def time_may_hide_a_write(st: os.stat_result) -> bool:
    """Could a write of the same size just now have left ``st``'s size and time as they were?

    Yes for a time on a whole second set lately: FAT keeps 2 s, ext3 and many FUSE filesystems 1
    s, so a file saved over twice within that looks untouched; a nanosecond clock (ext4, btrfs,
    tmpfs) lands on a whole second once in a billion writes. A whole second from long ago (files
    unpacked from an archive keep them) is not doubted: no write of now can hide behind it. One
    ahead of this clock, by however much, is: the clock that set it (a network drive's server,
    sshfs keeping whole seconds) may be writing by it now."""
    age = time.time_ns() - st.st_mtime_ns
    return st.st_mtime_ns % 10**9 == 0 and age < COARSE_CLOCK_WINDOW_NS


def _same_inode(path: Path, original: os.stat_result) -> bool:
    """``path`` still names the very file ``original`` was taken of (whatever was written into it):
    a copy of it is then never the only one left."""
    try:
        return os.path.samestat(os.lstat(path), original)
    except OSError:
        return False


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        with open_regular(a) as fa, open_regular(b) as fb:
            while (block := fa.read(1 << 20)) == fb.read(1 << 20):
                if not block:
                    return True
    except OSError:
        pass
    return False


def _copy_no_replace(
    src: Path,
    dest: Path,
    asked: bool,
    content: str | None = None,
    dir_fd: int | None = None,
    claiming: Claiming | None = None,
) -> Path:
    """Copy ``src`` to ``dest`` or ``dest (n)``; ``asked``: the person asked for a copy (``--copy``),
    rather than ``dest`` being on another filesystem; ``content``: the SHA-256 the copy must hold to
    be named (see :func:`move_no_replace`). ``dir_fd``: ``dest``'s folder, opened; ``claiming``: see
    :func:`link_no_replace`."""
    try:
        inp = open_regular(src)
    except PermissionError as exc:  # a link or rename would not have needed to read it
        why = (
            "a copy (--copy) reads it"
            if asked
            else f"{dest.parent} is on another filesystem, so the file is copied there, which reads it"
        )
        raise Refused(
            exc, "cannot read it", f"{why}: give yourself read access (chmod u+r), or ask its owner"
        ) from exc

    def fill(out: BinaryIO) -> None:
        hashed = _Hashing(out)
        shutil.copyfileobj(inp, hashed, 1 << 20)
        if content is not None and hashed.digest.hexdigest() != content:
            raise FileNotFoundError(errno.ENOENT, MOVED_AWAY, str(src))

    with inp:
        return write_new(dest, fill, stat_from=src, dir_fd=dir_fd, claiming=claiming)


class _Hashing:
    """A file being written that hashes what goes through it: the copy's content known without
    reading it a second time."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()

    def write(self, block: bytes) -> int:
        self.digest.update(block)
        return self.out.write(block)
