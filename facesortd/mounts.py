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
    where = mounted_at(path)
    # The last one mounted there is the one seen.
    return next((kind for point, kind in reversed(_mount_table() or []) if point == where), None)


MOUNTINFO = Path("/proc/self/mountinfo")
"""The mount table the kernel shows this process (proc(5)); tests point it at their own."""


def _mount_table() -> list[tuple[Path, str]] | None:
    """Every mount point with its filesystem's type, in the order mounted, as
    :data:`MOUNTINFO` lists them (a bind mount and an automount's trigger too, which share a
    device with a folder or have none); None where it cannot be read (no /proc)."""
    try:
        lines = MOUNTINFO.read_bytes().splitlines()
    except OSError:
        return None
    table = []
    for line in lines:  # "36 35 98:0 /root /mnt/point rw,noatime ... - ext4 /dev/sda1 rw"
        fields, _, rest = line.partition(b" - ")
        parts = fields.split(b" ")
        if len(parts) > 4 and rest:
            table.append((Path(os.fsdecode(_unescaped(parts[4]))), os.fsdecode(rest.split(b" ")[0])))
    return table


def _unescaped(field: bytes) -> bytes:
    """A mountinfo or fstab path field with its octal escapes (``\\040`` for a space) undone; one
    past a byte (``\\777``, a typo in fstab) is no escape, kept as written."""
    return re.sub(rb"\\([0-3][0-7]{2})", lambda m: bytes([int(m.group(1), 8)]), field)


def _device(path: Path) -> int:
    """The device ``path`` is on (a drive mounted there has its own)."""
    return os.stat(path).st_dev


DRIVE_PLACES = (Path("/media"), Path("/run/media"), Path("/mnt"))
"""Where drives are mounted: by desktops (udisks: ``/media/<user>/<label>``,
``/run/media/<user>/<label>``) and by people (``/mnt/<name>``)."""


FSTAB = Path("/etc/fstab")
"""The drives the system mounts, each at its mount point (fstab(5)); tests point it at their own."""

NOT_DRIVES = frozenset(
    {"swap", "ignore", "proc", "sysfs", "tmpfs", "ramfs", "devtmpfs", "devpts", "cgroup", "cgroup2"}
    | {"securityfs", "debugfs", "tracefs", "pstore", "bpf", "mqueue", "hugetlbfs", "configfs"}
    | {"efivarfs", "fusectl", "binfmt_misc", "autofs"}
)
"""fstab types with no drive behind them: swap, and filesystems the kernel makes up or keeps in
memory. Files put below such a mount point are hidden only from what would have lost them at the
next boot anyway, and a container's copied fstab lists a tmpfs ``/tmp`` it does not mount: taken
for a drive away, every folder in ``/tmp`` would be refused."""


class DriveNotMounted(Exception):
    """A folder facesortd would use (or make) is where a drive is mounted, and no drive is there
    now: files put there would sit on the disk below the mount point, hidden once the drive came
    (and a mount over a folder that is not empty is refused by exfat-fuse). Exit 1: systemd starts
    the daemon again until the drive is there.

    ``listed_in``: the fstab that mounts a drive at ``place``, which says so for a folder that is
    there (a mount point's empty folder, or one made on the disk below before): that folder is no
    less the drive's. Without it, ``place`` is only where drives are mounted (:data:`DRIVE_PLACES`)
    and the folder, missing, may belong on this disk."""

    def __init__(self, folder: Path, place: Path, listed_in: Path | None = None) -> None:
        self.folder, self.place = folder, place
        if listed_in is None:
            super().__init__(
                f"{folder} is not there, and {place} is where drives are mounted (no drive is mounted "
                f"there now): mount the drive that holds it, or make {folder} yourself if it belongs "
                "on this disk"
            )
        else:
            super().__init__(
                f"{folder} is on the drive {listed_in} mounts at {place}, and no drive is mounted there "
                f"now (files put there would be hidden once it is): mount its drive, or take {place} "
                f"out of {listed_in} if that drive is gone for good"
            )


def drive_problem(name: str, away: DriveNotMounted | None) -> str | None:
    """What `doctor` and `status` say of the folder setting ``name`` when `run` and `sort` refuse
    it (``away``: :func:`drive_not_mounted` of it, asked by the caller, who may need the answer
    again): the person sees why the daemon does not start before asking."""
    return None if away is None else f"{name} {away}"


def refuse_unmounted(*folders: Path) -> None:
    """:class:`DriveNotMounted` for the first of ``folders`` that :func:`drive_not_mounted` names."""
    for folder in folders:
        if (away := drive_not_mounted(folder)) is not None:
            raise away


def drive_not_mounted(folder: Path) -> DriveNotMounted | None:
    """Why ``folder`` may not be used now: it is on a drive :data:`FSTAB` mounts (at or under its
    mount point) and no drive is mounted there; or, missing, its nearest existing parent is a place
    drives are mounted in or at (:data:`DRIVE_PLACES`, a folder in one, or a label folder of a
    user's in ``/media`` or ``/run/media``) and holds no drive now. None for a folder that is
    there, or whose nearest parent holds a drive (only not made yet).

    Links are followed first: a library named through one (``~/usb`` -> ``/mnt/usb``) is made where
    it leads, and the link's own folder is no place of drives (the refusal names ``folder`` as given)."""
    leads_to = Path(os.path.realpath(folder))
    nearest = nearest_existing(leads_to)
    if (place := _listed_but_away(leads_to, nearest)) is not None:
        return DriveNotMounted(folder, place, FSTAB)
    if nearest == leads_to or _is_mount_point(nearest):
        return None
    # Where they lead: Silverblue's /mnt is a link to /var/mnt, its /media one to /run/media.
    drive_places = [Path(os.path.realpath(place)) for place in DRIVE_PLACES]
    places = {nearest, nearest.parent}
    if nearest.parent.parent in drive_places[:2]:
        places.add(nearest.parent.parent)
    return DriveNotMounted(folder, nearest) if places & set(drive_places) else None


def _is_mount_point(path: Path) -> bool:
    """Whether something is mounted at ``path``: listed so by the mount table (a bind mount of a
    folder on the same filesystem has its device, so only the table tells it), or on a device of
    its own (a btrfs subvolume; with no /proc, all there is to go by)."""
    return any(point == path for point, _ in _mount_table() or []) or os.path.ismount(path)


def _listed_but_away(folder: Path, nearest: Path) -> Path | None:
    """The mount point :data:`FSTAB` lists that ``folder`` is at or under (the deepest), if the
    filesystem holding ``nearest`` (its nearest existing folder) is mounted above it: the disk below.

    Asked of the mount table, not of devices: a bind mount shares its device with the folder it
    shows, and a ``noauto`` or ``nofail`` drive is no less meant to be there. An automount
    (``x-systemd.automount``) is listed at its mount point before its drive is mounted, and using
    the folder mounts it: not refused."""
    listed = [place for place in _fstab_mount_points() if folder.is_relative_to(place)]
    if not listed:
        return None
    place = max(listed, key=lambda p: len(p.parts))
    holding = [point for point, _ in _mount_table() or [] if nearest.is_relative_to(point)]
    # No /proc (or a root it does not list): as far as devices tell.
    holder = max(holding, key=lambda p: len(p.parts)) if holding else mounted_at(nearest)
    return None if holder.is_relative_to(place) else place


def _fstab_mount_points() -> list[Path]:
    """The mount points of the drives :data:`FSTAB` lists (not swap, nor :data:`NOT_DRIVES`; in a
    container, none named by its device), with its octal escapes (``\\040`` for a space) undone
    and links resolved as the kernel does. A line that is no entry (a typo, a file half zeroed by a
    crash) lists nothing: it may not stop facesortd."""
    try:
        lines = FSTAB.read_bytes().splitlines()
    except OSError:  # none (a container), or not ours to read: no drive listed
        return []
    devices_ignored = _in_container()
    places = []
    for line in lines:  # "UUID=1234-ABCD  /mnt/usb  exfat  noauto,nofail,uid=1000  0  0"
        fields = line.split()
        if len(fields) < 2 or fields[0].startswith(b"#"):
            continue
        place = os.fsdecode(_unescaped(fields[1]))
        kind = os.fsdecode(fields[2]) if len(fields) > 2 else "auto"
        if devices_ignored and fields[0].startswith(DEVICE_NAMES):
            continue
        if os.path.isabs(place) and "\x00" not in place and kind not in NOT_DRIVES:
            places.append(Path(os.path.realpath(place)))
    return places


DEVICE_NAMES = (b"/dev/", b"/sys/", b"UUID=", b"LABEL=", b"PARTUUID=", b"PARTLABEL=", b"ID=")
"""How an fstab entry names a drive (a device, or a tag udev links under /dev/disk), as systemd
tells an entry for a device from one for a network share or a bind mount."""


def _in_container() -> bool:
    """Whether this is a container: ``/sys`` is read-only, the test systemd's fstab generator makes
    before it ignores every entry for a device. Such an fstab was copied in with the image (an image
    made from a machine's disk keeps the machine's): its drives are mounted here never, and its
    ``/home`` is the image's own, no disk below one."""
    try:
        return bool(os.statvfs("/sys").f_flag & os.ST_RDONLY)
    except OSError:  # no /sys to tell by: taken as the machine the fstab is for
        return False
