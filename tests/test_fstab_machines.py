"""Whether an inbox, library or state folder is on a drive away (`mounts.drive_not_mounted`), asked
on the machines facesortd runs on: each one's /etc/fstab and mount table (/proc/self/mountinfo) as
they are, its folders made in a folder of the test's own that stands for its ``/``.

A refusal there stops the daemon on a healthy machine (systemd starts it again every 5 s, forever),
so each machine is asked of the folders people use, mounted as it is after a normal boot; the rows
with a drive away are the refusals that must stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from facesortd import mounts

PROC = """\
22 1 0:21 / {root}/proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
23 1 0:22 / {root}/sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
24 1 0:5 / {root}/dev rw,nosuid,relatime shared:8 - devtmpfs udev rw,size=8026772k,mode=755
25 1 0:25 / {root}/run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=1611572k,mode=755
"""
"""What every booted machine mounts besides its drives."""

UBUNTU_FSTAB = """\
# /etc/fstab: static file system information.
#
# Use 'blkid' to print the universally unique identifier for a
# device; this may be used with UUID= as a more robust way to name devices
# that works even if disks are added and removed. See fstab(5).
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
# / was on /dev/nvme0n1p2 during installation
UUID=3e6f8c7a-2b1d-4c5e-9f0a-1b2c3d4e5f60 {root}               ext4    errors=remount-ro 0       1
# /boot/efi was on /dev/nvme0n1p1 during installation
UUID=5A1B-3C2D  {root}/boot/efi       vfat    umask=0077      0       1
# /home was on /dev/nvme0n1p3 during installation
UUID=9a1c2b3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d {root}/home           ext4    defaults        0       2
/swapfile                                 none            swap    sw              0       0
"""

UBUNTU_ROOT = "26 1 259:2 / {root} rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro\n"
UBUNTU_BOOT = (
    "31 26 259:1 / {root}/boot/efi rw,relatime shared:62 - vfat /dev/nvme0n1p1 rw,fmask=0077,dmask=0077,"
    "codepage=437,iocharset=iso8859-1,shortname=mixed,errors=remount-ro\n"
)
UBUNTU_HOME = "30 26 259:3 / {root}/home rw,relatime shared:60 - ext4 /dev/nvme0n1p3 rw\n"


@dataclass(frozen=True)
class Machine:
    """A machine's fstab and mount table (``{root}`` standing for its ``/``), the folders it has
    (each made, with its parents; those drives are mounted in apart) and links (``link ->
    target``, both as the machine names them)."""

    fstab: str
    mountinfo: str
    folders: tuple[str, ...] = ("home/me/Pictures/inbox", "home/me/.local/state")
    drive_places: tuple[str, ...] = ("media/me", "run/media/me", "mnt")
    links: dict[str, str] = field(default_factory=dict)
    container: bool = False


MACHINES = {
    "ubuntu": Machine(UBUNTU_FSTAB, UBUNTU_ROOT + PROC + UBUNTU_HOME + UBUNTU_BOOT),
    "ubuntu, /home unmounted": Machine(UBUNTU_FSTAB, UBUNTU_ROOT + PROC + UBUNTU_BOOT),
    "fedora btrfs": Machine(
        """\
UUID=b1e2c3d4 {root}  btrfs  subvol=root,compress=zstd:1 0 0
UUID=c2d3e4f5 {root}/boot  ext4  defaults  1 2
UUID=D3E4-F5A6 {root}/boot/efi  vfat  umask=0077,shortname=winnt 0 2
UUID=b1e2c3d4 {root}/home  btrfs  subvol=home,compress=zstd:1 0 0
""",
        "62 1 0:31 /root {root} rw,relatime shared:1 - btrfs /dev/nvme0n1p3 rw,compress=zstd:1,subvol=/root\n"
        + PROC
        + "95 62 0:31 /home {root}/home rw,relatime shared:47 - btrfs /dev/nvme0n1p3 rw,subvol=/home\n"
        "98 62 259:2 / {root}/boot rw,relatime shared:49 - ext4 /dev/nvme0n1p2 rw\n"
        "101 98 259:1 / {root}/boot/efi rw,relatime shared:51 - vfat /dev/nvme0n1p1 rw,fmask=0077\n",
    ),
    "opensuse btrfs": Machine(
        """\
UUID=0a1b2c3d  {root}  btrfs  defaults  0  0
UUID=0a1b2c3d  {root}/var  btrfs  subvol=/@/var  0  0
UUID=0a1b2c3d  {root}/usr/local  btrfs  subvol=/@/usr/local  0  0
UUID=0a1b2c3d  {root}/home  btrfs  subvol=/@/home  0  0
UUID=0a1b2c3d  {root}/.snapshots  btrfs  subvol=/@/.snapshots  0  0
UUID=7F3A-1B2C  {root}/boot/efi  vfat  utf8  0  2
""",
        "64 1 0:32 /@/.snapshots/1/snapshot {root} rw,relatime shared:1 - btrfs /dev/sda2 rw\n"
        + PROC
        + "70 64 0:32 /@/var {root}/var rw,relatime shared:30 - btrfs /dev/sda2 rw,subvol=/@/var\n"
        "71 64 0:32 /@/usr/local {root}/usr/local rw,relatime shared:31 - btrfs /dev/sda2 rw\n"
        "72 64 0:32 /@/home {root}/home rw,relatime shared:32 - btrfs /dev/sda2 rw,subvol=/@/home\n"
        "73 64 0:32 /@/.snapshots {root}/.snapshots rw,relatime shared:33 - btrfs /dev/sda2 rw\n"
        "74 64 8:1 / {root}/boot/efi rw,relatime shared:34 - vfat /dev/sda1 rw,utf8\n",
    ),
    # /home, /mnt and /tmp are links into /var and /sysroot; systemd mounts an fstab entry where its
    # mount point leads (/home at /var/home), as the kernel does.
    "silverblue": Machine(
        """\
UUID=5e6f7a8b {root}  btrfs  subvol=root,compress=zstd:1 0 0
UUID=6f7a8b9c {root}/boot  ext4  defaults  1 2
UUID=AB12-CD34 {root}/boot/efi  vfat  umask=0077,shortname=winnt 0 2
UUID=5e6f7a8b {root}/home  btrfs  subvol=home,compress=zstd:1 0 0
UUID=5e6f7a8b {root}/var  btrfs  subvol=var,compress=zstd:1 0 0
""",
        "60 1 0:37 / {root} ro,relatime shared:1 - overlay composefs ro\n"
        + PROC
        + "61 60 0:33 / {root}/sysroot ro,relatime shared:2 - btrfs /dev/vda3 rw,subvol=/root\n"
        "62 60 0:33 /root/ostree/deploy/fedora/deploy/1a.0/etc {root}/etc rw shared:3 - btrfs /dev/vda3 rw\n"
        "63 60 0:33 /var {root}/var rw,relatime shared:4 - btrfs /dev/vda3 rw,subvol=/var\n"
        "90 63 0:33 /home {root}/var/home rw,relatime shared:48 - btrfs /dev/vda3 rw,subvol=/home\n"
        "91 60 252:2 / {root}/boot rw,relatime shared:50 - ext4 /dev/vda2 rw\n",
        folders=("var/home/me/Pictures/inbox", "var/home/me/.local/state", "var/mnt/usb", "sysroot/tmp"),
        drive_places=("run/media/me",),
        links={"home": "var/home", "mnt": "var/mnt", "media": "run/media", "tmp": "sysroot/tmp"},
    ),
    "luks lvm": Machine(
        """\
/dev/mapper/vgubuntu-root {root}               ext4    errors=remount-ro 0       1
UUID=0E1F-2A3B  {root}/boot/efi       vfat    umask=0077      0       1
/dev/mapper/vgubuntu-home {root}/home ext4 defaults 0 2
/dev/mapper/luks-4c5d6e7f {root}/data ext4 defaults,nofail,x-systemd.device-timeout=10 0 2
/dev/mapper/vgubuntu-swap_1 none            swap    sw              0       0
""",
        "26 1 253:1 / {root} rw,relatime shared:1 - ext4 /dev/mapper/vgubuntu-root rw\n"
        + PROC
        + "30 26 253:2 / {root}/home rw,relatime shared:60 - ext4 /dev/mapper/vgubuntu-home rw\n"
        "31 26 253:3 / {root}/data rw,relatime shared:61 - ext4 /dev/mapper/luks-4c5d6e7f rw\n",
        folders=("home/me/Pictures/inbox", "home/me/.local/state", "data/anime"),
    ),
    # The inbox on a NAS share mounted on demand by its user: away until then.
    "nfs home, cifs share": Machine(
        """\
UUID=3e6f8c7a-2b1d-4c5e-9f0a-1b2c3d4e5f60 {root} ext4 errors=remount-ro 0 1
nas.lan:/export/home  {root}/home  nfs  defaults,_netdev,vers=4.2  0  0
//nas.lan/photos {root}/mnt/nas cifs noauto,user,credentials=/home/me/.smbcred,uid=1000 0 0
""",
        UBUNTU_ROOT + PROC + "40 26 0:45 / {root}/home rw shared:70 - nfs4 nas.lan:/export/home rw\n",
        folders=("home/me/Pictures/inbox", "home/me/.local/state", "mnt/nas"),
    ),
    # An automount's trigger is in the mount table before its drive is: using the folder mounts it.
    "automount": Machine(
        UBUNTU_FSTAB
        + "UUID=1234-ABCD {root}/mnt/usb exfat noauto,nofail,x-systemd.automount,uid=1000 0 0\n"
        + "nas.lan:/photos {root}/srv/photos nfs _netdev,x-systemd.automount,x-systemd.idle-timeout=60 0 0\n",
        UBUNTU_ROOT
        + PROC
        + UBUNTU_HOME
        + "50 26 0:50 / {root}/mnt/usb rw,relatime shared:80 - autofs systemd-1 rw,fd=51,pgrp=1,timeout=0\n"
        + "52 26 0:52 / {root}/srv/photos rw,relatime shared:82 - autofs systemd-1 rw,fd=53,timeout=60\n",
        folders=("home/me/Pictures/inbox", "home/me/.local/state", "mnt/usb", "srv/photos"),
    ),
    # A bind mount shares its device with the folder it shows: only the mount table tells it.
    "bind mounts": Machine(
        UBUNTU_FSTAB
        + "{root}/srv/data {root}/home/me/data none bind 0 0\n"
        + "{root}/srv/photos {root}/mnt/photos none bind,x-systemd.requires-mounts-for=/srv 0 0\n",
        UBUNTU_ROOT
        + PROC
        + UBUNTU_HOME
        + "60 30 259:2 /srv/data {root}/home/me/data rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
        + "61 26 259:2 /srv/photos {root}/mnt/photos rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n",
        folders=("home/me/Pictures/inbox", "home/me/.local/state", "home/me/data/inbox", "mnt/photos"),
    ),
    "tmpfs /tmp": Machine(
        UBUNTU_FSTAB + "tmpfs {root}/tmp tmpfs defaults,noatime,mode=1777 0 0\n",
        UBUNTU_ROOT + PROC + UBUNTU_HOME + "45 26 0:40 / {root}/tmp rw shared:20 - tmpfs tmpfs rw\n",
        folders=("home/me/Pictures/inbox", "tmp/shots"),
    ),
    "wsl": Machine(
        "LABEL=cloudimg-rootfs\t{root}\t ext4\tdefaults\t0 1\n",
        "60 1 8:32 / {root} rw,relatime - ext4 /dev/sdc rw,discard,errors=remount-ro,data=ordered\n"
        + PROC
        + "80 60 0:60 / {root}/mnt/wslg rw,relatime shared:1 - tmpfs none rw\n"
        "83 60 0:63 / {root}/mnt/c rw,noatime - 9p C:\\134 rw,aname=drvfs;path=C:\\;uid=1000;gid=1000\n",
        folders=("home/me/Pictures/inbox", "home/me/.local/state", "mnt/c/Users/me/Pictures"),
    ),
    "docker": Machine(
        "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n",
        "500 400 0:70 / {root} rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/AB\n"
        "510 500 8:1 /var/lib/docker/volumes/shots/_data {root}/data rw,relatime - ext4 /dev/sda1 rw\n",
        folders=("home/me/Pictures/inbox", "home/me/.local/state", "data"),
        container=True,
    ),
    # An image made from a machine's disk keeps its fstab: no drive of it is mounted here, nor ever
    # will be (systemd ignores an fstab's devices in a container), and its /home is the image's own.
    "docker, the host's fstab": Machine(
        UBUNTU_FSTAB,
        "500 400 0:70 / {root} rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/AB\n"
        "501 500 0:71 / {root}/proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
        "505 500 0:73 / {root}/sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro\n"
        "509 500 8:1 /var/lib/docker/containers/ab/hosts {root}/etc/hosts rw,relatime - ext4 /dev/sda1 rw\n",
        container=True,
    ),
    # How people write fstab: tabs, comments after an entry, a space as \040, a trailing slash,
    # an entry twice, a mount point that is a link (mounted where it leads), and lines that are no
    # entry at all; none of it may stop facesortd.
    "hand-written fstab": Machine(
        "UUID=3e6f8c7a-2b1d-4c5e-9f0a-1b2c3d4e5f60\t{root}\text4\terrors=remount-ro\t0\t1  # the disk\n"
        "  # an indented comment\n"
        "LABEL=Photo\\040Card {root}/data/photo\\040card/ exfat nofail,uid=1000 0 0 # the camera's card\n"
        "UUID=aaaa-bbbb {root}/data/big/ ext4 defaults 0 2\n"
        "UUID=aaaa-bbbb {root}/data/big ext4 defaults 0 2\n"
        "UUID=cccc-dddd {root}/backup ext4 nofail 0 2\n"
        "UUID=eeee-ffff {root}/data/usb exfat noauto,user 0 0\n"
        "this line is no entry\n"
        "UUID=1111-2222\n"
        "/dev/sdz1 {root}/bad\\777name ext4 defaults 0 0\n"
        "/dev/sdz2 {root}/nul\\000name ext4 defaults 0 0\n"
        "/dev/sdz3 {root}/raw\x00nul ext4 defaults 0 0\n"
        "/dev/sdz4 {root}/not\udcffutf8 ext4 defaults 0 0\n"
        "\x00\x00\x00\x00\x00\x00\x00\x00\n",
        UBUNTU_ROOT
        + PROC
        + "33 26 8:17 / {root}/data/photo\\040card rw,relatime - exfat /dev/sdb1 rw,uid=1000\n"
        + "34 26 8:33 / {root}/data/big rw,relatime - ext4 /dev/sdc1 rw\n"
        + "35 26 8:49 / {root}/srv/backup rw,relatime - ext4 /dev/sdd1 rw\n",
        folders=("home/me/Pictures/inbox", "data/photo card", "data/big", "srv/backup", "data/usb"),
        links={"backup": "srv/backup"},
    ),
}

ROWS = [
    # (machine, folder, where facesortd says no drive is mounted: None to use it)
    ("ubuntu", "/home/me/Pictures/inbox", None),
    ("ubuntu", "/home/me/Pictures/anime", None),
    ("ubuntu", "/home/me/.local/state/facesortd", None),
    ("ubuntu", "/media/me/USB/anime", "/media/me"),
    ("ubuntu", "/mnt/usb/anime", "/mnt"),
    ("ubuntu, /home unmounted", "/home/me/Pictures/inbox", "/home"),
    ("ubuntu, /home unmounted", "/home/me/.local/state/facesortd", "/home"),
    ("fedora btrfs", "/home/me/Pictures/inbox", None),
    ("fedora btrfs", "/home/me/.local/state/facesortd", None),
    ("fedora btrfs", "/run/media/me/USB/anime", "/run/media/me"),
    ("opensuse btrfs", "/home/me/Pictures/inbox", None),
    ("opensuse btrfs", "/home/me/.local/state/facesortd", None),
    ("silverblue", "/home/me/Pictures/inbox", None),
    ("silverblue", "/var/home/me/Pictures/anime", None),
    ("silverblue", "/home/me/.local/state/facesortd", None),
    ("silverblue", "/tmp/shots", None),
    ("silverblue", "/mnt/usb/anime", "/mnt/usb"),
    ("silverblue", "/media/me/USB/anime", "/run/media/me"),
    ("luks lvm", "/home/me/Pictures/inbox", None),
    ("luks lvm", "/data/anime", None),
    ("luks lvm", "/data/anime/library", None),
    ("nfs home, cifs share", "/home/me/Pictures/inbox", None),
    ("nfs home, cifs share", "/home/me/.local/state/facesortd", None),
    ("nfs home, cifs share", "/mnt/nas", "/mnt/nas"),
    ("nfs home, cifs share", "/mnt/nas/anime", "/mnt/nas"),
    ("automount", "/mnt/usb", None),
    ("automount", "/mnt/usb/anime", None),
    ("automount", "/srv/photos/anime", None),
    ("automount", "/home/me/Pictures/inbox", None),
    ("bind mounts", "/home/me/data/inbox", None),
    ("bind mounts", "/home/me/data/anime", None),
    ("bind mounts", "/mnt/photos/anime", None),
    ("tmpfs /tmp", "/tmp/shots", None),
    ("tmpfs /tmp", "/tmp/facesortd-state", None),
    ("wsl", "/home/me/Pictures/inbox", None),
    ("wsl", "/home/me/.local/state/facesortd", None),
    ("wsl", "/mnt/c/Users/me/Pictures/anime", None),
    ("wsl", "/mnt/c/anime", None),
    ("docker", "/home/me/Pictures/inbox", None),
    ("docker", "/data/anime", None),
    ("docker, the host's fstab", "/home/me/Pictures/inbox", None),
    ("docker, the host's fstab", "/home/me/.local/state/facesortd", None),
    ("hand-written fstab", "/home/me/Pictures/inbox", None),
    ("hand-written fstab", "/data/photo card/anime", None),
    ("hand-written fstab", "/data/big/anime", None),
    ("hand-written fstab", "/backup/anime", None),
    ("hand-written fstab", "/data/usb/anime", "/data/usb"),
    ("hand-written fstab", "/data/usb", "/data/usb"),
]


@pytest.fixture
def machine_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder standing for the machine's ``/``, with its /media, /run/media and /mnt as the
    places drives are mounted (where a link leads, as a folder given through it is looked at)."""
    root = Path(mounts.os.path.realpath(tmp_path)) / "root"
    root.mkdir()
    places = tuple(root / place for place in ("media", "run/media", "mnt"))
    monkeypatch.setattr(mounts, "DRIVE_PLACES", places)
    return root


def _build(machine: Machine, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's folders, links, fstab and mount table, at ``root``."""
    for folder in machine.folders + machine.drive_places:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for link, target in machine.links.items():
        (root / link).symlink_to(target)
    fstab, mountinfo = root.parent / "fstab", root.parent / "mountinfo"
    fstab.write_bytes(machine.fstab.replace("{root}", str(root)).encode("utf-8", "surrogateescape"))
    mountinfo.write_text(machine.mountinfo.replace("{root}", str(root)))
    monkeypatch.setattr(mounts, "FSTAB", fstab)
    monkeypatch.setattr(mounts, "MOUNTINFO", mountinfo)
    monkeypatch.setattr(mounts, "_in_container", lambda: machine.container)


@pytest.mark.parametrize(("name", "folder", "away"), ROWS, ids=[f"{m}: {f}" for m, f, _ in ROWS])
def test_a_folder_is_refused_on_each_machine_only_while_its_drive_is_away(
    machine_root: Path, monkeypatch: pytest.MonkeyPatch, name: str, folder: str, away: str | None
) -> None:
    """Each machine as it is after a normal boot uses the folders people give facesortd; a drive
    away (its mount point's folder empty, or gone) is refused, as where it is mounted."""
    _build(MACHINES[name], machine_root, monkeypatch)
    refused = mounts.drive_not_mounted(machine_root / folder.lstrip("/"))
    assert (None if refused is None else refused.place) == (
        None if away is None else Path(mounts.os.path.realpath(machine_root / away.lstrip("/")))
    )


@pytest.mark.parametrize(("flags", "container"), [(0, False), (mounts.os.ST_RDONLY, True), (None, False)])
def test_a_container_is_told_by_its_read_only_sys(
    monkeypatch: pytest.MonkeyPatch, flags: int | None, container: bool
) -> None:
    """Docker, podman and LXC mount /sys read-only (systemd's own test); with no /sys to ask, the
    fstab is taken as the machine's."""

    def statvfs(path: str) -> mounts.os.statvfs_result:
        assert path == "/sys"
        if flags is None:
            raise FileNotFoundError(path)
        return mounts.os.statvfs_result((4096,) * 8 + (flags, 255))

    monkeypatch.setattr(mounts.os, "statvfs", statvfs)
    assert mounts._in_container() is container
