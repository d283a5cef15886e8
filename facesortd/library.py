"""The library's folder layout and the one way files enter it.

``<library>/<emotion>/`` holds sorted files, ``<library>/_quarantine/<reason>/`` the rest. The
folders are the user interface: a person reviews quarantine by moving files into emotion folders.
"""

from __future__ import annotations

import errno
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from facesortd import shown_names
from facesortd.decide import Decision
from facesortd.durable import Claiming, move_no_replace
from facesortd.mounts import mounted_at
from facesortd.quarantine import QUARANTINE_DIR, names_an_emotion, outside_library
from facesortd.refusals import Outside, Refused, mount_moved


@dataclass(frozen=True)
class Library:
    """A library root; knows where a decision sends a file.

    ``leads_to``: where ``root`` led when this Library was made (the start of `run` or `sort`, whose
    checks against the inbox and the state folder held for that place). A ``root`` re-pointed since
    (a symbolic link changed while the daemon ran) is refused rather than used: it may lead into the
    inbox (each file sorted again, as a person's), the state folder, or another library, where the
    journal's paths no longer find what was placed (undo, duplicates, labels).

    ``started_as``: the command a person restarts to use where ``root`` leads now, as the refusal's
    fix names it: the daemon's "facesortd" by default; the review page, which runs on its own
    (`facesortd review`, never inside the daemon), names itself, or "restart facesortd" sent the
    person to restart the daemon, which left the page refusing.
    """

    root: Path
    leads_to: Path = field(init=False, compare=False, repr=False)
    mounted_at: Path = field(init=False, compare=False, repr=False)
    """Where the filesystem holding the library was mounted at the start (``mounts.mounted_at``): a
    drive unmounted under a running daemon left the library's path on the disk below, where each
    move made the library anew: the files went to the internal disk, hidden once the drive was
    mounted again (if it could be: FUSE refuses a mount point that is not empty)."""
    started_as: str = field(default="facesortd", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "leads_to", self.root.resolve())
        object.__setattr__(self, "mounted_at", mounted_at(self.leads_to))

    def folder_for(self, decision: Decision) -> Path:
        if decision.to_emotion_folder:
            assert decision.emotion, "a sorted or labelled decision always names its emotion"
            return self.root / decision.emotion
        return self.root / QUARANTINE_DIR / (decision.reason or "unsure")

    def holds(self, src: Path, decision: Decision) -> bool:
        """Is ``src`` already in the folder ``decision`` sends it to? Moving it would only rename it
        to "name (1)" (a quarantined file looked at again and still unsure, say). Not if its own
        folder is gone (a sub-folder of the inbox renamed away meanwhile): the move then finds the
        file gone, where this raised, and the file was said as a move that failed."""
        folder = self.folder_for(decision)
        try:
            return folder.is_dir() and folder.samefile(src.parent)
        except FileNotFoundError:
            return False

    def make_emotion_folders(self, emotions: Iterable[str]) -> None:
        """Create ``<emotion>/`` for each emotion, so a person reviewing with a file manager finds a
        folder to drop every file into from the start (not only once something was sorted there).

        A convenience, so a library this user may not write to is said once and not fatal: the
        daemon must live on, and sort again as soon as the person fixes the permissions (each move
        then names the folder that refuses it).
        """
        for emotion in emotions:
            try:
                (self.root / emotion).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                # chmod was advised for a drive mounted read-only too, where it cannot help, and
                # for a library under /proc (mkdir: ENOENT)
                if exc.errno == errno.EROFS:
                    fix = "mount it writable"
                elif exc.errno in (errno.EACCES, errno.EPERM):
                    fix = f"make it writable (chmod u+rwx '{self.root}')"
                else:
                    fix = "point library at a folder that can be made"
                logger.warning(
                    "cannot create the emotion folders in {} ({}): a file for a missing one waits where "
                    "it is until you {}",
                    self.root,
                    exc.strerror or exc,
                    fix,
                )
                return

    def destination(self, src: Path, decision: Decision) -> Path:
        """Where ``src`` would go (before clash numbering; the real name may get ' (n)')."""
        return self.folder_for(decision) / src.name

    def apply(
        self,
        src: Path,
        decision: Decision,
        *,
        copy: bool = False,
        content: str | None = None,
        claiming: Claiming | None = None,
    ) -> Path:
        """Move (or copy) ``src`` to its folder, never overwriting; returns where it ended up. Refused
        (the file left where it is) while :meth:`refusal` says why.

        :meth:`refusal` looks at paths just before the move; a quarantine made a link out of the
        library in between would still take the file out of it. So a file for the quarantine is
        linked into its folder as opened and found inside the library (``inside``), and such a swap
        is refused with refusal's own message (the daemon says it once). :meth:`refusal` is asked
        each time the move makes the folder (``check``), so a drive gone since is not made anew."""
        inside = None if decision.to_emotion_folder else self.leads_to
        dest = self.destination(src, decision)
        try:
            return move_no_replace(
                src,
                dest,
                copy=copy,
                inside=inside,
                check=lambda: self._refuse(decision),
                content=content,
                claiming=claiming,
            )
        except Outside as exc:
            raise (self.refusal(decision) or exc) from exc

    def _refuse(self, decision: Decision) -> None:
        """Raise :meth:`refusal`'s answer, if any."""
        if refused := self.refusal(decision):
            raise refused

    def refusal(self, decision: Decision | None = None) -> Refused | None:
        """Why no file may be moved into this library now (or, with ``decision``, to its folder), with
        the fix; None: it may. Asked before each move: a few system calls against a misplaced file."""
        now = self.root.resolve()
        if now != self.leads_to:
            moved = OSError(errno.EXDEV, f"it leads to {now} now, not to {self.leads_to} as at the start")
            use_now = f"restart {self.started_as} to use where it leads now"
            fix = f"point {self.root} back to {self.leads_to}, or {use_now}"
            return Refused(moved, f"cannot use the library {self.root}", fix)
        if (now_at := mounted_at(self.leads_to)) != self.mounted_at:
            return mount_moved("library", self.root, self.mounted_at, now_at, self.started_as)
        if decision is not None and decision.to_emotion_folder:
            return None
        return quarantine_refusal(self.root, self.folder_for(decision) if decision else None)


UNTIL_THEN = "the files for it stay where they are until then"
"""What a refused library or quarantine means for the files meanwhile (said by the daemon and `status`)."""


def quarantine_refusal(library: Path, folder: Path | None = None) -> Refused | None:
    """Why no file may be put into ``library``'s quarantine (or, with ``folder``, into that folder of
    it), with the fix; None: it may. The one wording of :func:`quarantine.outside_library` for every
    place that asks it: a move (``Library.refusal``), `status`, and `undo` putting a file back."""
    if (outside := outside_library(library, folder)) is None:
        return None
    linked = Path(outside.filename)
    fix = f"facesortd keeps files inside the library: make {linked} a folder of the library again"
    return Refused(outside, f"cannot use {linked}", fix)


ZERO_WIDTH = dict.fromkeys(map(ord, shown_names.ZERO_WIDTH))
"""Characters that take no room where a name is shown (zero-width space, non-joiner, joiner, word
joiner, byte-order mark), for ``str.translate`` to drop: a name pasted from a web page or a chat
carries them, and no listing shows them."""


def case_twins(library: Path, folders: Iterable[str], known: Iterable[str]) -> list[str]:
    """A problem, with the merge, for each emotion folder whose name differs from another's (or from an
    emotion the model in force knows) only by case: ``Happy/`` made by hand beside ``happy/``; or
    only by how its letters are encoded: ``café/`` typed on one system (é one character, NFC) beside
    ``café/`` from another (e and an accent, NFD, as macOS writes names), two folders that look the
    same everywhere; or by a space at either end (``happy /``, a slip when naming a folder), or a
    character of no width (``ZERO_WIDTH``: a name pasted), which no listing shows.

    A label is its folder's name, exactly, so the files put there taught an emotion of their own and
    split the happy faces in two. Said (by `status` and `doctor`) rather than folded together: a label
    compared without case would change what every recorded label and model class means, and two
    names can stay apart by intent. The name kept is the model's (lower case, composed, among several)."""
    knows = set(known)
    groups: dict[str, set[str]] = {}
    for name in {*folders, *knows}:
        if names_an_emotion(name):
            look = unicodedata.normalize("NFC", name).translate(ZERO_WIDTH).strip().casefold()
            groups.setdefault(look, set()).add(name)
    problems = []
    for names in sorted(map(sorted, groups.values())):
        if len(names) < 2:
            continue
        composed = {n: unicodedata.normalize("NFC", n) for n in names}
        keep = min(
            names,
            key=lambda n: (
                n not in knows,
                n != n.translate(ZERO_WIDTH),
                n != n.strip(),
                n != composed[n].lower(),
                n != composed[n],
                n,
            ),
        )
        for other in (n for n in names if n != keep):
            # Each way they differ that stays once the others are taken away; none: only the encoding.
            ways = [
                way
                for way, rest in (
                    ("case", lambda n: n.translate(ZERO_WIDTH).strip()),
                    ("a space at either end", lambda n: n.translate(ZERO_WIDTH).casefold()),
                    ("characters of no width", lambda n: n.strip().casefold()),
                )
                if rest(composed[other]) != rest(composed[keep])
            ]
            how = f"by {' and '.join(ways)}" if ways else "in how their letters are encoded"
            # Shown so that what tells them apart shows: by their codes where it is unseen, quoted
            # where it is a space at an end.
            if not ways or "characters of no width" in ways:
                a, b = ascii(other), ascii(keep)
            elif "a space at either end" in ways:
                a, b = f"'{other}'", f"'{keep}'"
            else:
                a, b = other, keep
            problems.append(
                f"{a}/ and {b}/ in {library} differ only {how}, so facesortd takes them for two "
                f"emotions (files in {a}/ become labels of an emotion {other!r}): move the files of "
                f"{a}/ into {b}/ and remove {a}/"
            )
    return problems
