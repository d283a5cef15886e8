"""Which drive a folder is on: where its filesystem is mounted, of what type, and what changed.

Apart from the moves (durable.py) because it only looks: the daemon, the library, `doctor` and the
journal's error for an unusable state folder ask it, and a drive pulled out or mounted over a folder
is told the same way everywhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def nearest_existing(path: Path) -> Path:
    """``path``, or the nearest of its parents that exists: where a missing folder would be made,
    and so the filesystem (and the permissions) it would get."""
    while not os.path.exists(path) and path != path.parent:
        path = path.parent
    return path


def mounted_at(path: Path) -> Path:
    """Where the filesystem that holds ``path`` is mounted: ``path`` or the nearest of its parents
    whose own parent is on another device. A ``path`` not there is asked of its nearest parent that
    is (the filesystem it would be made on), so a drive unmounted under it shows as ``/`` (or the
    disk below), not as the folder it was."""
    path = nearest_existing(Path(os.path.abspath(path)))
    try:
        device = _device(path)
        while path != path.parent and _device(path.parent) == device:
            path = path.parent
    except OSError:  # a parent this user may not look at: as far as can be seen
        pass
    return path


def mount_change(before: Path, now: Path) -> tuple[str, str]:
    """What happened to a folder's filesystem, mounted at ``before`` at the start and at ``now``
    (:func:`mounted_at`), and what puts it back: a drive unmounted (or pulled out), or one mounted
    since over the folder's path (the daemon started before the drive was plugged in)."""
    if now != before and now.is_relative_to(before):
        return f"a drive was mounted at {now} since the start", f"unmount it from {now}"
    return f"the drive mounted at {before} is not there now", f"mount it at {before} again"


FOREIGN_FILESYSTEMS = frozenset({"vfat", "msdos", "exfat", "ntfs", "ntfs3", "fuseblk"})
"""Filesystem types (``/proc/self/mountinfo``) of drives made for Windows, kernel or FUSE
(``fuseblk``: exfat-fuse and ntfs-3g on a device); any ``fuse*`` type is FUSE too."""


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding ``path`` (``ext4``, ``fuseblk``, ``vfat`` ...) as
    ``/proc/self/mountinfo`` names it; None where it cannot be told (no /proc)."""
    where = os.fsencode(mounted_at(path))
    try:
        lines = Path("/proc/self/mountinfo").read_bytes().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:  # "36 35 98:0 /root /mnt/point rw,noatime ... - ext4 /dev/sda1 rw"
        fields, _, rest = line.partition(b" - ")
        parts = fields.split(b" ")
        if len(parts) > 4 and rest and _unescaped(parts[4]) == where:
            found = os.fsdecode(rest.split(b" ")[0])  # the last one mounted there is the one seen
    return found


def _unescaped(field: bytes) -> bytes:
    """A mountinfo path field with its octal escapes (``\\040`` for a space) undone."""
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), field)


def _device(path: Path) -> int:
    """The device ``path`` is on (a drive mounted there has its own)."""
    return os.stat(path).st_dev


DRIVE_PLACES = (Path("/media"), Path("/run/media"), Path("/mnt"))
"""Where drives are mounted: by desktops (udisks: ``/media/<user>/<label>``,
``/run/media/<user>/<label>``) and by people (``/mnt/<name>``)."""


class DriveNotMounted(Exception):
    """A folder facesortd would make is missing where a drive is mounted, and no drive is there now:
    made, it would sit on the disk below the mount point, and the files put there would be hidden
    once the drive came (a mount over a folder that is not empty is refused by exfat-fuse). Exit 1:
    systemd starts the daemon again until the drive is there."""

    def __init__(self, folder: Path, place: Path) -> None:
        self.folder = folder
        super().__init__(
            f"{folder} is not there, and {place} is where drives are mounted (no drive is mounted there "
            f"now): mount the drive that holds it, or make {folder} yourself if it belongs on this disk"
        )


def drive_problem(name: str, folder: Path) -> str | None:
    """What `doctor` and `status` say of the folder setting ``name`` when `run` and `sort` refuse
    it (:class:`DriveNotMounted`): the person sees why the daemon does not start before asking."""
    place = drive_not_mounted(folder)
    return None if place is None else f"{name} {DriveNotMounted(folder, place)}"


def refuse_unmounted(*folders: Path) -> None:
    """:class:`DriveNotMounted` for the first of ``folders`` that :func:`drive_not_mounted` names."""
    for folder in folders:
        if (place := drive_not_mounted(folder)) is not None:
            raise DriveNotMounted(folder, place)


def drive_not_mounted(folder: Path) -> Path | None:
    """Where a drive ``folder`` would be on is not mounted: the nearest existing parent of a missing
    ``folder``, if that is a place drives are mounted in or at (:data:`DRIVE_PLACES`, a folder in
    one, or a label folder of a user's in ``/media`` or ``/run/media``) and holds no drive now.
    None for a folder that is there, or whose nearest parent holds a drive (only not made yet).

    Links are followed first: a library named through one (``~/usb`` -> ``/mnt/usb``) is made where
    it leads, and the link's own folder is no place of drives."""
    folder = Path(os.path.realpath(folder))
    nearest = nearest_existing(folder)
    if nearest == folder or os.path.ismount(nearest):
        return None
    places = {nearest, nearest.parent}
    if nearest.parent.parent in DRIVE_PLACES[:2]:
        places.add(nearest.parent.parent)
    return nearest if places & set(DRIVE_PLACES) else None
