"""The errors a person can fix, in one line with the fix (``Refused``): a folder facesortd may not
write into or list, a full disk, a name a drive refuses, a path too long, a drive gone from under
a folder (or mounted over it).

Apart from the moves (durable.py) because most who say them never move a file (the watcher,
`status`, `doctor`, the review page, the journal): they import the wording, not the move machinery.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from facesortd.file_names import PATH_MAX
from facesortd.mounts import mount_change, nearest_existing


class Refused(OSError):
    """A move or a listing the permissions (or a mount) refused: what could not be done, and what to
    do about it, in one line; the user can fix it. The bare error named the failed system call's two
    paths, from which the person could not tell which folder (or file) to change."""

    def __init__(self, exc: OSError, what: str, fix: str) -> None:
        super().__init__(exc.errno, f"{what} ({exc.strerror}): {fix}")

    def __str__(self) -> str:
        return self.strerror or ""  # one line for the person: "[Errno 13]" tells them nothing


class Unmade(Refused):
    """The destination folder could not be made (a library under /proc, whose mkdir answers ENOENT),
    or vanished each time it was made (the library deleted under a sort). That ENOENT was taken for
    the file's own: `sort` said each file "written to or replaced while it was sorted", exit 0.
    Every move into that library fails alike, so a `sort` stops at the first."""

    def __init__(self, exc: OSError, folder: Path, vanished: bool) -> None:
        fix = (
            "it vanished each time it was made (deleted meanwhile): keep the folder there"
            if vanished
            else f"{nearest_existing(folder)} takes no folders made in it: use a folder on a disk of yours"
        )
        super().__init__(exc, f"cannot make the folder {folder}", fix)


def yours_to_move(path: Path) -> bool:
    """Is ``path`` (where a folder belongs) a file of this user, whose moving away may be advised?
    Not /dev/null (`--library /dev/null/x`), which was advised to be moved away too."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid()


def in_the_way(folder: Path) -> Path | None:
    """The first of ``folder`` and its parents that is there but is no folder, so that no folder can
    be made or found there: a file, a device, a symbolic link to a file, to nothing or round in a
    loop; None if each is a folder or missing. The one answer for the folder settings checked up
    front (``config.not_a_folder``) and a folder a move could not make (``durable``): asked with
    ``exists`` there, a link to nothing on a library's path passed the check, and `sort` failed each
    file on it."""
    return next((p for p in (folder, *folder.parents) if os.path.lexists(p) and not p.is_dir()), None)


def not_a_folder_fix(blocker: Path) -> str:
    """What to say of ``blocker``, a part of a folder's path that is not a folder."""
    if yours_to_move(blocker):
        return f"{blocker} is a file, not a folder: move that file away"
    return f"{blocker} is not a folder"


class Outside(Refused):
    """The destination folder, opened for the move, was not inside the folder it had to be in: a
    symbolic link swapped in on its path since the caller looked (see :func:`durable.move_no_replace`)."""


REFUSALS = (errno.EACCES, errno.EPERM, errno.EROFS)
"""What a folder (or a file's owner) answers when facesortd may not change it."""
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""What a write answers when the disk (or the user's quota) has no room: chmod will not help."""


def mount_moved(name: str, folder: Path, before: Path, now: Path, restart: str = "facesortd") -> Refused:
    """The ``name`` (inbox, library) ``folder`` may not be used: its filesystem was mounted at
    ``before`` at the start and is at ``now`` (``mounts.mounted_at``). With what puts the drive back,
    or the restart of the command ``restart`` (the daemon, the review page) that uses the folder where
    it is now; ENODEV, by which `sort` tells it from a folder's permissions (it stops, not skips).
    The daemon's inbox and every library say it alike."""
    what, undo = mount_change(before, now)
    fix = f"{undo}, or restart {restart} to use {folder} on the filesystem at {now}"
    return Refused(OSError(errno.ENODEV, what), f"cannot use the {name} {folder}", fix)


def disk_full_fix(folder: Path) -> str:
    """What to do when ``folder``'s disk has no room: the journal and the moves say it alike."""
    return f"its disk is full: free some space there (df -h '{folder}')"


class NotWritten(Refused):
    """A file a command makes (a model, a drawing) was not written: the folder's disk or permissions,
    not the command line, so exit 1, as a `sort` into a full library."""


def write_refused(exc: OSError, folder: Path) -> NotWritten:
    """``folder`` took no new file (``exc``): full, read-only or not the person's to write to."""
    if exc.errno in DISK_FULL:
        return NotWritten(exc, f"cannot write into {folder}", disk_full_fix(folder))
    return NotWritten(exc, f"cannot write into {folder}", _fix(exc, folder, False, folder))


def name_refused(exc: OSError, dest: Path) -> Refused:
    """``dest``'s folder takes files, but its filesystem refused this name even as
    :func:`file_names.portable_name` and :func:`file_names.ascii_name` have it."""
    fix = "its filesystem refuses that name (a drive formatted FAT, exFAT or NTFS): rename the file"
    return Refused(exc, f"cannot put it into {dest.parent} as {dest.name}", fix)


def path_too_long_fix(folder: Path) -> str:
    """What to do when ``folder``'s path leaves no room for a file name within PATH_MAX."""
    return (
        f"its path is {len(os.fsencode(folder))} bytes long and Linux takes {PATH_MAX} at most, the "
        "file's name included: use a library (or folder names) with a shorter path"
    )


def folder_refused(exc: OSError, folder: Path, leaving: bool, src: Path) -> Refused:
    doing = f"cannot remove it from {folder}" if leaving else f"cannot write into {folder}"
    return Refused(exc, doing, _fix(exc, folder, leaving, src))


def _fix(exc: OSError, folder: Path, leaving: bool, src: Path) -> str:
    if exc.errno == errno.EROFS:
        return "it is on a read-only filesystem; facesortd must be able to write there"
    try:
        folder_st, file_st = folder.stat(), src.lstat()
    except OSError:
        return "facesortd must be able to write there"
    me = os.getuid()
    if leaving and folder_st.st_mode & stat.S_ISVTX and me not in (file_st.st_uid, folder_st.st_uid):
        return (
            f"the file belongs to another user (uid {file_st.st_uid}) and {folder} only lets owners "
            "remove their files (sticky bit): ask them to move it"
        )
    if folder_st.st_uid != me:
        return (
            f"the folder belongs to another user (uid {folder_st.st_uid}): ask them, or use a folder of yours"
        )
    return f"facesortd must be able to write there (chmod u+rwx '{folder}')"


def list_folder(folder: Path) -> list[os.DirEntry[str]]:
    """What ``folder`` holds; nothing if it is missing (or not a folder). A folder this user may not
    list is Refused, in one sentence with the fix, so that every caller (status, the label scan, the
    review page, the watcher) says it the same way and goes on with the other folders."""
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        # Listing needs r and x; facesortd also moves files out of every folder it lists: w too.
        raise Refused(exc, f"cannot list {folder}", f"make it readable (chmod u+rwx '{folder}')") from exc


class OnceLister:
    """:func:`list_folder` for callers that list the same folders again and again (the label scan
    every 30 s, the review page at every request): a folder that may not be listed is reported to
    ``say`` once, and again only if the reason changes or it could be listed in between; it lists
    as empty meanwhile, so one such folder does not take the others down with it."""

    def __init__(self, say: Callable[[Refused], None]) -> None:
        self._say = say
        self._said: dict[Path, str] = {}

    def entries(self, folder: Path) -> list[os.DirEntry[str]]:
        try:
            found = list_folder(folder)
        except Refused as exc:
            return self.refuse(folder, exc)
        self._said.pop(folder, None)
        return found

    def refused(self, folder: Path) -> bool:
        """Was ``folder``'s last listing refused? Listed as empty, it is not known to be."""
        return folder in self._said

    def refuse(self, folder: Path, exc: Refused) -> list[os.DirEntry[str]]:
        """``folder`` is not to be listed, for ``exc``'s reason: said unless said last time; nothing."""
        if self._said.get(folder) != str(exc):
            self._said[folder] = str(exc)
            self._say(exc)
        return []
