"""A folder that behaves like a drive formatted exFAT, FAT or NTFS, for tests that cannot mount one.

Checked against real mounts (exfat-fuse, fusefat, ntfs-3g): no hard links (EPERM), no no-replace
rename through FUSE (EINVAL: ``rename_no_replace`` answers False), and names with ``: ? * " < > | \\``
or control characters refused with ENOENT (exfat-fuse; fusefat says EPERM), bytes that are not
UTF-8 with EILSEQ (exFAT and NTFS alike).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from facesortd import durable, mounts

BAD = frozenset('<>:"\\|?*')


def exfat_refusal(name: str) -> int | None:
    """The errno exFAT through FUSE answers for creating ``name`` (None: it takes it)."""
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):  # os.fsdecode's stand-ins for bytes not UTF-8
        return errno.EILSEQ
    if any(c in BAD or ord(c) < 0x20 for c in name):
        return errno.ENOENT
    return None


def make_foreign(
    monkeypatch: pytest.MonkeyPatch,
    folder: Path,
    refusal: Callable[[str], int | None] = exfat_refusal,
    chmod: int | None = None,
) -> None:
    """Every folder under ``folder`` acts as a FAT-like filesystem for ``durable``'s moves: no hard
    links into it, no no-replace rename, and names ``refusal`` refuses are refused. ``chmod``: what
    a chmod there answers (the kernel's vfat and exfat: EPERM; fusefat: ENOSYS; exfat-fuse takes it)."""
    real_link, real_open, real_rename, real_chmod = os.link, os.open, os.rename, os.chmod
    real_rename_no_replace = durable.rename_no_replace

    def inside(target: object, dir_fd: int | None) -> Path | None:
        where = Path(os.readlink(f"/proc/self/fd/{dir_fd}")) / str(target) if dir_fd is not None else None
        path = where or Path(os.fsdecode(target))  # type: ignore[arg-type]
        return path if path.absolute().is_relative_to(folder) else None

    def refuse(path: Path) -> None:
        if (code := refusal(path.name)) is not None:
            raise OSError(code, os.strerror(code), str(path))

    def link(src, dst, *args, dst_dir_fd=None, **kw):
        if (path := inside(dst, dst_dir_fd)) is not None:
            refuse(path)
            raise OSError(errno.EPERM, os.strerror(errno.EPERM), str(path))
        return real_link(src, dst, *args, dst_dir_fd=dst_dir_fd, **kw)

    def opener(path, flags, *args, dir_fd=None, **kw):
        if flags & os.O_CREAT and (where := inside(path, dir_fd)) is not None:
            refuse(where)
        return real_open(path, flags, *args, dir_fd=dir_fd, **kw)

    def rename(src, dst, *args, dst_dir_fd=None, **kw):
        if (path := inside(dst, dst_dir_fd)) is not None:
            refuse(path)
        return real_rename(src, dst, *args, dst_dir_fd=dst_dir_fd, **kw)

    def rename_no_replace(src, dst, dir_fd=None):
        if (path := inside(dst, dir_fd)) is not None:
            refuse(path)
            return False  # FUSE: EINVAL for the flag, which says "not supported"
        return real_rename_no_replace(src, dst, dir_fd)

    def change_mode(path, mode, *args, **kw):
        if chmod is not None and inside(path, None) is not None:
            raise OSError(chmod, os.strerror(chmod), str(path))
        return real_chmod(path, mode, *args, **kw)

    monkeypatch.setattr(durable.os, "chmod", change_mode)
    monkeypatch.setattr(durable.os, "link", link)
    monkeypatch.setattr(durable.os, "open", opener)
    monkeypatch.setattr(durable.os, "rename", rename)
    monkeypatch.setattr(durable, "rename_no_replace", rename_no_replace)


class Drive:
    """``folder`` acts as a drive mounted there (a device of its own) while ``mounted``; "unmounted",
    it is a folder of the disk below (what was on the drive is for the test to remove)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
        self.folder = folder
        self.mounted = True
        folder.mkdir(parents=True, exist_ok=True)
        real_device = mounts._device

        def device(path: Path) -> int:
            under = Path(path) == folder or folder in Path(path).parents
            return real_device(path) + (1000 if self.mounted and under else 0)

        monkeypatch.setattr(mounts, "_device", device)


def renumbered(st: os.stat_result) -> os.stat_result:
    """``st`` with another inode number, as FUSE gives a file the kernel dropped from its cache."""
    fields = {name: getattr(st, name) for name in dir(st) if name.startswith("st_")}
    fields["st_ino"] += 1 << 40  # not +1: the next file made (the copy) often gets that number
    visible = ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size")
    seq = [fields[n] for n in visible] + [int(st.st_atime), int(st.st_mtime), int(st.st_ctime)]
    return os.stat_result(seq, {k: v for k, v in fields.items() if k not in visible})


def renumber(path: Path) -> None:
    """``path`` as FUSE shows it once the kernel dropped it from its cache: the same bytes, size and
    times under another inode number (a copy put in its place, its times set back)."""
    before = path.stat()
    copy = path.with_name(f".renumbered-{path.name}")
    copy.write_bytes(path.read_bytes())
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(copy, path)
    assert path.stat().st_ino != before.st_ino


def written_over(path: Path, data: bytes, in_place: bool) -> None:
    """``data`` put under ``path``'s name with its size and time kept: written into the file (a tool
    saving within FAT's 2-s tick), or another file put there (a re-download keeping the server's
    time). ``data`` is as long as the file."""
    before = path.stat()
    assert len(data) == before.st_size
    target = path if in_place else path.with_name(f".download-{path.name}")
    target.write_bytes(data)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    if not in_place:
        os.replace(target, path)


def coarse_now(path: Path) -> None:
    """``path``'s time set to this very second, as FAT (2 s) or exFAT through FUSE (1 s) keeps it."""
    now = time.time_ns() // 10**9 * 10**9
    os.utime(path, ns=(now, now))


def windows_names_refusal(name: str) -> int | None:
    """What NTFS mounted with ``ntfs-3g -o windows_names`` answers: EINVAL for the characters
    Windows refuses, and for its device names (``CON.png``, ``aux.png``)."""
    if any(c in BAD or ord(c) < 0x20 for c in name) or name.partition(".")[0].upper() in {
        "CON",
        "AUX",
        "NUL",
    }:
        return errno.EINVAL
    return exfat_refusal(name)
