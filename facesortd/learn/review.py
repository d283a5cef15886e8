"""Moving a file is a label: find the files a person put into emotion folders, record them.

A file in ``<library>/<emotion>/`` that facesortd did not put there (the journal says where it put
each content) was placed by a person: coming from quarantine it is a label, coming from another
emotion folder a correction, dropped there directly a label too. A labelled file that the person
moves back into quarantine has its label withdrawn. Its face is found again (with
a more permissive detector if the normal one finds none), kept as a crop in the state folder and
recorded in the journal; a file where no face can be found is recorded as unusable.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

from facesortd.boxes import Box
from facesortd.config import LogLevel, Settings
from facesortd.content import content_id
from facesortd.detect import FaceDetector
from facesortd.durable import unwritten
from facesortd.image_names import is_image_name
from facesortd.images import UnreadableImage, read_image, to_gray
from facesortd.journal import CLAIM_MARK_MOST, Journal, holds_claim_mark
from facesortd.learn.datasets import source_group
from facesortd.learn.kept_faces import keep_face, kept_if_recorded
from facesortd.learn.retrain import UserLabel
from facesortd.placement import end_killed_moves, inode_change, looks_unchanged
from facesortd.quarantine import QUARANTINE_DIR, names_an_emotion, not_an_emotion_name
from facesortd.refusals import OnceLister
from facesortd.shown_names import one_line
from facesortd.state import move_lock


@dataclass
class Reviewer:
    """Scans the library for new human labels; remembers what it has looked at (placement.looks_unchanged)."""

    settings: Settings
    journal: Journal
    seen: dict[Path, tuple[tuple[int, int, int], tuple[int, int], str]] = field(default_factory=dict)
    """Each file looked at: its ``durable.unwritten``, ``placement.inode_change`` and content then
    ("" until it was read). Not known by its inode number: FUSE (exfat-fuse, fusefat) numbers a
    file anew whenever the kernel drops it from its cache, and every file of a library on such a
    drive was read again at every scan."""
    listed: OnceLister = field(
        default_factory=lambda: OnceLister(
            lambda exc: logger.warning("{}; labels given there are not seen until then", exc)
        )
    )
    """Folders that could not be listed are said once (a scan runs every ``review_scan_s``)."""
    unrecorded: dict[Path, tuple[int, int, int]] = field(default_factory=dict)
    """Files whose label could not be recorded, as they were when that was said: said once per
    file until it changes or is recorded (tried again at every scan, every ``review_scan_s``)."""
    found: frozenset[Path] = frozenset()
    """The image files the last scan found: one found now and not then was put where it is since
    (:meth:`_here_before`). Empty until a first scan. Those of a folder a scan could not list are
    kept as found by it: listed as empty, their folder is not known to be (:meth:`scan`)."""
    gone: dict[Path, tuple[tuple[int, int, int], tuple[int, int]]] = field(default_factory=dict)
    """Each file that left since an earlier scan found it, as it was then (``durable.unwritten``,
    ``placement.inode_change``): one back as it was did not move itself, its folder did (moved away
    and back), so it says nothing new (:meth:`_here_before`)."""
    undecided: dict[Path, tuple[int, int, int]] = field(default_factory=dict)
    """Copies of a labelled picture whose order against the labelled copy the clock cannot tell
    (:meth:`_here_before`), as they were when that was said: said once per file until it changes,
    and looked at again at every scan, so that the copy the person keeps is their label once they
    remove the other."""
    not_labels: set[Path] = field(default_factory=set)
    """Folders whose name cannot be a label, said once."""
    label_log_level: LogLevel = "INFO"
    """How each label recorded is logged: `retrain` (the command) prints how many it recorded, and
    a line per label beside that count buried it on a terminal (DEBUG there)."""
    _detectors: list[FaceDetector] | None = None

    def detectors(self) -> list[FaceDetector]:
        """The normal detector, then a permissive one for faces the normal one misses."""
        if self._detectors is None:
            d = self.settings.detection
            permissive = d.model_copy(update={"min_neighbors": 1, "min_score": min(d.min_score, 0.2)})
            self._detectors = [FaceDetector(d), FaceDetector(permissive)]
        return self._detectors

    def scan(self) -> int:
        """Record the labels given (or taken back) since the last scan; returns how many were new."""
        new = 0
        root = self.settings.library
        quarantine = root / QUARANTINE_DIR
        emotions = [
            p for p in self._listing(root) if p.is_dir() and names_an_emotion(p.name) and self._a_label(p)
        ]
        held = [p for p in self._listing(quarantine) if p.is_dir()]
        present: set[Path] = set()
        listed: set[Path] = set()
        changed = [
            path for folder in emotions + held for path in self._changed_images(folder, present, listed)
        ]
        # A folder that could not be listed this time (a chmod, a USB drive's I/O error) keeps what it
        # held: taken for gone, its files were new when it could be listed again, and an old copy of
        # a picture filed since in another folder took the label back to the folder given up on.
        unlisted = [f for f in (root, quarantine, *emotions, *held) if self.listed.refused(f)]
        present.update(p for p in self.found if any(f in p.parents for f in unlisted))
        earlier, self.found = self.found, frozenset(present)
        # Files that left are forgotten (kept as they were in ``gone``): one moved away and back is
        # looked at anew.
        self.gone.update((p, key[:2]) for p, key in self.seen.items() if p not in present)
        self.seen = {p: key for p, key in self.seen.items() if p in present}
        self.unrecorded = {p: key for p, key in self.unrecorded.items() if p in present}
        self.undecided = {p: key for p, key in self.undecided.items() if p in present}
        if changed:
            # A move a killed process left ``planned`` made its content "being moved right now" to
            # every look (``Journal.placed_at``): a file of it a person moved on was taken for
            # facesortd's, remembered as looked at, and its label never recorded.
            with move_lock(self.journal.state_dir):
                end_killed_moves(self.journal)
        for n, path in enumerate(changed):
            try:
                # Under the move lock, which `undo` (the review page's u too) holds while it moves a
                # file back and withdraws its label: a look across the two took the file for where
                # it no longer was, and recorded again the label just withdrawn, for a file back in
                # quarantine. The lock is held for one file's look, so moves wait little.
                with move_lock(self.journal.state_dir):
                    digest = content_id(path)  # a file we may not read is known by its inode, as sorted
                    new += self._look_at(path, digest, path.parent in held, earlier)
            except FileNotFoundError:
                # A person moved it on meanwhile: the next scan meets it where it went, or here again
                # (moved back: kept as looked at, it was never looked at again, its label unrecorded).
                self.seen.pop(path, None)
                continue
            except OSError as exc:  # one odd file must not cost the labels of all the others
                key = self.seen.pop(path)[0]  # looked at again at the next scan
                if self.unrecorded.get(path) != key:
                    logger.warning(
                        "{}: cannot record your label yet ({}); trying again at each look", path, exc
                    )
                    self.unrecorded[path] = key
                continue
            except BaseException:
                # The scan ends here (the journal refused a label: its disk full, read-only): this
                # file and those after it were not looked at, and kept as looked at they were not
                # again until each changed or the daemon restarted, their labels unrecorded.
                for unlooked in changed[n:]:
                    self.seen.pop(unlooked, None)
                raise
            if path in self.undecided:
                self.seen.pop(path)  # looked at again at the next scan
            else:
                self.seen[path] = (*self.seen[path][:2], digest)
            self.unrecorded.pop(path, None)
        # A file that left comes back as it was only with its folder, moved away and back: once that
        # folder is listed holding other names but not its own, it left by itself (labelled
        # elsewhere, deleted) and back it would be the person's filing anew, so it is forgotten;
        # kept, ``gone`` grew by one entry per file that ever left, for the daemon's lifetime. A
        # folder listed empty tells nothing: moved away between the library's listing and its own.
        folders = {p.parent for p in listed}
        self.gone = {
            p: key
            for p, key in self.gone.items()
            if p not in present and (p in listed or p.parent not in folders)
        }
        return new

    def _a_label(self, folder: Path) -> bool:
        """Can ``folder``'s name be the label its files are given? One that is not UTF-8 cannot be
        stored as one (it failed the whole scan); one with a line break or control character split
        every listing of labels (`status`, the retrain's report) into lines of other emotions, where
        `train` refuses such a folder of a dataset. Said once, and its files wait."""
        why = not_an_emotion_name(folder.name)
        if why is None:
            return True
        if folder not in self.not_labels:
            self.not_labels.add(folder)
            logger.warning(
                "{}: a folder name with {} cannot be a label: rename it (labels given there are not seen "
                "until then)",
                one_line(folder),
                why.removesuffix(" in it"),
            )
        return False

    def _look_at(self, path: Path, digest: str, in_quarantine: bool, earlier: frozenset[Path]) -> bool:
        """Record the label (or its withdrawal) that ``path`` (``digest`` its content) being where it
        is means, if any; ``earlier``: the files the last scan found (:meth:`_here_before`)."""
        undecided = self.undecided.pop(path, None) == self.seen[path][0]
        # Under any name: a file renamed where facesortd put it (a bulk rename) was recorded as the
        # person's label, the model's own guess learnt back as theirs.
        if self.journal.placed_last(path, digest, in_its_folder=True):
            return False  # facesortd's own decision, not a person's
        label = self.journal.label_for_hash(digest)
        if in_quarantine:
            return self._withdraw(path, digest, label)
        if label is None or label[0] != path.parent.name:
            if label is not None and self._here_before(path, digest, label[0], earlier, undecided):
                return False
            return self._record(path, digest, path.parent.name)
        return False

    def _here_before(
        self, path: Path, digest: str, label: str, earlier: frozenset[Path], undecided: bool
    ) -> bool:
        """Was ``path`` where it is before this content's newest label, given to another file of
        the same content still where the person left it? Then it says nothing new: copies of a
        picture in two emotion folders were each recorded again at every start of the daemon (its
        memory of what it looked at is gone), taking the label in turn.

        A copy back as an earlier scan found it (``gone``) was not moved itself, its folder was
        (away and back): it was there before. Else told by what the last scan found (``earlier``):
        the labelled copy there and this one not, this one was put here after it, the person's
        later decision, whatever the clock said. Else by the file's ctime, which a move or copy
        sets, against the clock's reading when the label was given (a file put here since), then
        against the labelled copy's ctime (both found by one look: the copy whose folder was listed
        first took the label, whichever the person filed last). Against the label's stamp
        (``journal._STAMP``, ahead of the clock once it was set back, or put right after it ran
        ahead) a copy filed since seemed older than the label, and the person's later decision was
        not recorded.

        A time ahead of the clock now (the label's, or either copy's ctime) shows the clock was set
        back since, perhaps between the two filings, while no scan looked (the daemon stopped):
        their order is not known, and the ctimes took the copy filed first for the later. Such a
        copy (``undecided``: found so by the scan before, and unchanged) leaves the label as it is,
        said once with the fix, and is looked at again at every scan (:attr:`undecided`): once the
        person removes one copy, the other is their label."""
        other = self.journal.labelled_at(digest)
        if other is None or not self.journal.labelled_elsewhere(path, digest):
            return False
        if self.gone.get(path) == self.seen[path][:2]:
            return True
        if other in earlier and path not in earlier:
            return False
        try:
            there = other.lstat().st_ctime
        except OSError:  # moved on since it was found holding the label: this copy is the one left
            return False
        here, given = path.lstat().st_ctime, self.journal.label_clock(digest) or 0.0
        if undecided or max(here, given, there) > time.time():
            if not undecided:
                logger.warning(
                    "{} and {} are copies of one picture, and which you filed last cannot be told: this "
                    "computer's clock was set back since (their times are ahead of it). The label stays "
                    "{!r}; remove the copy you do not mean",
                    path,
                    other,
                    label,
                )
            self.undecided[path] = self.seen[path][0]
            return True
        return here < given and here <= there

    def _changed_images(self, folder: Path, present: set[Path], listed: set[Path]) -> list[Path]:
        """Image files of ``folder`` that are new or changed since the last scan; adds all to
        ``present``, and every name its listing held (looked at or not) to ``listed``."""
        changed = []
        for path in self._listing(folder):
            listed.add(path)
            if path.name.startswith(".") or not is_image_name(path):
                continue
            try:
                st = path.lstat()  # a symbolic link is never a label
            except OSError:
                continue  # moved on since the listing, or in a folder we may list but not enter
            if not stat.S_ISREG(st.st_mode):
                continue
            present.add(path)
            before = self.seen.get(path)
            if before is None or not looks_unchanged(path, st, *before):
                self.seen[path] = (unwritten(st), inode_change(st), "")
                if not _no_picture(path, st):
                    changed.append(path)
            else:
                self.seen[path] = (before[0], inode_change(st), before[2])
        return changed

    def _listing(self, folder: Path) -> list[Path]:
        """What ``folder`` holds; nothing if it is missing or may not be read: the labels given in it
        wait until the person lets facesortd in, without failing every other folder's."""
        return [Path(entry.path) for entry in self.listed.entries(folder)]

    def _withdraw(self, path: Path, digest: str, label: tuple[str, float] | None) -> bool:
        """A labelled file moved back into quarantine: the person is no longer sure, so the label goes.

        Labels are kept by content, so a second copy of the labelled file that was in quarantine
        all along looks the same; while the labelled file is still where the person put it, that
        copy says nothing about their label."""
        if label is None or not label[0]:
            return False
        if self.journal.labelled_elsewhere(path, digest):
            return False
        self.journal.withdraw_label(digest, path)
        logger.info("{}: back in quarantine, so your label {!r} no longer counts", path, label[0])
        return True

    def record(self, path: Path, digest: str, label: str) -> None:
        """A label given on the review page, which has just moved the file to ``path`` itself."""
        self._record(path, digest, label)

    def _record(self, path: Path, digest: str, label: str) -> bool:
        before = self.journal.last_for_hash(digest)
        source = "correction" if before and before.action == "sorted" and before.emotion != label else "human"
        with kept_if_recorded(self.settings, digest):
            face = self._keep_face(path, digest)
            self.journal.add_label(digest, label, source, face, source_group(path.name), path)
        logger.log(
            self.label_log_level,
            "{}: recorded as {} ({}){}",
            path,
            label,
            source,
            "" if face else "; no face found, so it cannot be used for training",
        )
        return True

    def _keep_face(self, path: Path, digest: str) -> tuple[Path, Box] | None:
        """The face of ``path`` kept for training; None: it has none, or is no picture we can decode.

        A file that could not be read (moved on or renamed since its content was, a drive's read
        error, no permission) is not one without a face: its label was recorded so, could never
        teach, and was not looked at again under its new name or once readable (the same label).
        The scan tries it again (:meth:`scan`)."""
        try:
            gray = to_gray(read_image(path, self.settings.images))
        except UnreadableImage as exc:
            if isinstance(exc.__cause__, OSError):
                raise exc.__cause__ from None
            return None
        for detector in self.detectors():
            faces = detector.detect(gray)
            if faces:
                largest = max(faces, key=lambda f: f.area)
                return keep_face(self.settings, digest, gray, largest.box), largest.box
        return None


def _no_picture(path: Path, st: os.stat_result) -> bool:
    """Is ``path`` (``st`` its lstat) sure to be no picture of a person's, so no label: an empty
    file, or a name claimed by a move (``journal.holds_claim_mark``) that a crash left on a FAT or exFAT
    library (recovery leaves an empty one, which a kill before its mark was written leaves, and one
    it could not remove)? Each was recorded as a label with no face, and counted by `status`. Only
    a file no larger than a mark is read for it, so a picture is read once, to know its content."""
    if st.st_size == 0:
        return True
    return st.st_size <= CLAIM_MARK_MOST and holds_claim_mark(path)


def user_labels(journal: Journal) -> list[UserLabel]:
    """The newest label per content that has a usable face, for training."""
    return [
        UserLabel(Path(face), label, group, source, given)
        for _hash, label, source, face, group, given in journal.labels()
        if face and Path(face).is_file()
    ]


def label_summary(journal: Journal) -> tuple[dict[str, int], int, int]:
    """(usable labels per emotion, labels without a usable face, how many of all were imported)."""
    counts: dict[str, int] = {}
    unusable = imported = 0
    for _hash, label, source, face, _group, _at in journal.labels():
        imported += source == "dataset"
        if face:
            counts[label] = counts.get(label, 0) + 1
        else:
            unusable += 1
    return counts, unusable, imported
