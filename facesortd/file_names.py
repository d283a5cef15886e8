"""The names a move may give a file: ``shot (1).png`` beside a taken name, a name cut to fit
NAME_MAX and PATH_MAX, and the portable name a FAT, exFAT or NTFS drive takes instead of one it refuses.

Apart from the moves (durable.py) because these are rules, not file operations: the move tries
the names in this order, and crash recovery looks for a moved file under the same ones, so both
read them from here.
"""

from __future__ import annotations

import errno
import os
import unicodedata
from collections.abc import Iterator
from pathlib import Path

NAME_MAX = 255
"""Bytes in one file name on Linux filesystems (ext4, btrfs, xfs, tmpfs all agree)."""
PATH_MAX = 4096
"""Bytes in a path handed to the kernel on Linux, its final NUL included."""
SHORTEST_STEM = 16
"""Bytes of a name's stem kept at the least when it is cut to fit: a folder that leaves room for
less takes no file under a name a person would know it by (``.png``, `` (1).png``)."""


def numbered(path: Path, n: int) -> Path:
    """``shot.png`` -> ``shot (n).png``: the name used when ``shot.png`` is taken.

    A name that does not fit loses the end of its stem: one near NAME_MAX to make room for
    `` (n)``, and any name (``n`` 0 too) whose whole path would pass PATH_MAX (a deep library).
    Otherwise the name could never be created and the file would be retried forever. The cut never
    falls inside a UTF-8 character (it backs off over at most the 3 bytes that may follow a
    character's first); a stem that is not cut keeps every byte, whatever its encoding. A folder
    leaving room for fewer than SHORTEST_STEM bytes of a stem that must be cut is ENAMETOOLONG.
    """
    room = min(NAME_MAX, PATH_MAX - 2 - len(os.fsencode(path.parent)))  # the NUL, the slash
    if n == 0 and len(os.fsencode(path.name)) <= room:
        return path
    tail = os.fsencode(f" ({n}){path.suffix}" if n else path.suffix)
    whole = os.fsencode(path.stem)
    stem = whole[: max(0, room - len(tail))]
    for _ in range(3):
        if stem == whole or (whole[len(stem)] & 0xC0) != 0x80:  # the cut is between characters
            break
        stem = stem[:-1]
    if stem != whole and len(stem) < SHORTEST_STEM:
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG), str(path))
    return path.with_name(os.fsdecode(stem + tail))


NUMBERED_NAMES = 10_000
"""How many names a new file may take (``shot.png``, ``shot (1).png`` ...): tried in turn when
placing it, all looked for when recovery finds it."""


def numbered_names(path: Path) -> Iterator[Path]:
    """Every name :func:`durable.link_no_replace` may give ``path``, in the order it tries them (its own,
    then, for a name a filesystem may refuse, its :func:`portable_name`'s); those it could never
    create (a folder too deep for them: ENAMETOOLONG) are not among them."""
    for base in fallback_names(path):
        if longer_than_name_max(base):  # tried whole first: see durable._link_whole_name
            yield base
        for n in range(NUMBERED_NAMES):
            try:
                yield numbered(base, n)
            except OSError:
                break


def numbered_names_among(path: Path, names: set[str]) -> list[Path]:
    """Those of :func:`numbered_names` that ``names`` (a folder's listing) holds, in its order.

    Every one starts with a fallback name's stem, or its first SHORTEST_STEM bytes (a cut never
    leaves fewer), so only the listing's names that start so are looked for, and the names are made
    only until each of those is met: making all 30,000 took 80 ms, and recovery asks before every
    move while a killed process's move is left (a recovery that keeps failing: every move)."""
    heads = tuple(os.fsencode(base.stem)[:SHORTEST_STEM] for base in fallback_names(path))
    pool = {name for name in names if os.fsencode(name).startswith(heads)}
    found: list[Path] = []
    met: set[str] = set()
    for candidate in numbered_names(path) if pool else ():
        if candidate.name in pool:
            found.append(candidate)
            met.add(candidate.name)
            if met == pool:
                break
    return found


def fallback_names(dest: Path) -> list[Path]:
    """``dest``, then the names it is given where its own is refused, each once."""
    names = (dest.name, portable_name(dest.name), ascii_name(dest.name))
    return [dest.with_name(n) for n in dict.fromkeys(names)]


def longer_than_name_max(path: Path) -> bool:
    """Is ``path``'s name past NAME_MAX bytes, in a path short enough to try it whole?"""
    return len(os.fsencode(path.name)) > NAME_MAX and len(os.fsencode(path)) < PATH_MAX


REFUSED_CHARACTERS = frozenset('<>:"\\|?*')
"""Characters FAT, exFAT and Windows' NTFS refuse in a name (besides control characters and the
slash, which no name has)."""


RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", *(f"COM{n}" for n in range(1, 10)), *(f"LPT{n}" for n in range(1, 10))]
)
"""Windows' device names, refused whatever their case and ending (``con.png``) by NTFS mounted with
``ntfs-3g -o windows_names`` (EINVAL), and unusable on Windows anywhere."""


def portable_name(name: str) -> str:
    """``name`` with every character FAT, exFAT or NTFS refuse made ``_``: the characters of
    REFUSED_CHARACTERS, control characters, bytes that are not UTF-8 (``os.fsdecode``'s lone
    surrogates), and dots or spaces at its end, which Windows drops; a device name (``CON.png``)
    gets ``_`` after it (``CON_.png``). The name a file takes in a library on such a drive when its
    own is refused (the journal keeps its own, which `undo` gives back); ``name`` itself where
    nothing needs to change."""
    chars = [
        "_" if c in REFUSED_CHARACTERS or ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF else c
        for c in name
    ]
    while chars and chars[-1] in " .":
        chars.pop()
    portable = "".join(chars) + "_" * (len(name) - len(chars))
    device, dot, rest = portable.partition(".")
    return f"{device}_{dot}{rest}" if device.upper() in RESERVED_NAMES else portable


def ascii_name(name: str) -> str:
    """:func:`portable_name` in ASCII: accents dropped (``é`` -> ``e``), any other character that
    is not ASCII made ``_``. For a FAT drive mounted without UTF-8 names, or through fusefat."""
    plain = unicodedata.normalize("NFKD", portable_name(name))
    return "".join(c if c.isascii() else "_" for c in plain if not unicodedata.combining(c))
