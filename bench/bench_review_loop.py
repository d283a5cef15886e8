"""Issue #17's walk-through on real screenshots: drop the 75 seed screenshots, review 15, retrain.

What a new user sees, on the shipped model: how many of the 75 it auto-sorts (and, of those with a
labelled face, how many into the right folder, judged by faces.json's label of the largest labelled
face; 26 of the 75 have none, so nobody knows where they belong), whether 15 reviewed files
start a retrain (they must not: fewer than ``retrain_after_labels``), a forced retrain's decision with
both models' figures, and what the model in force auto-sorts afterwards: on all 75 and on the
screenshots that were not reviewed (the reviewed ones flatter it). One data source only (the
seed); the figures say what the loop does to a user, not how good the model is elsewhere.

    python bench/bench_review_loop.py [--reviewed 15] [--seed 0] [--model FILE]

``--model FILE`` starts from that model instead of the shipped one (put in force as `facesortd
model use FILE` does, with its validation set): the shipped model was trained on the seed's faces,
which flatters every figure here; a model trained without them does not.
"""

from __future__ import annotations

import facesortd  # noqa: F401  (first: sets the BLAS thread limits before numpy loads)

# isort: split

import argparse
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

from shared_data import SHARED, require_shared

from facesortd import cli
from facesortd.config import Settings, load_settings
from facesortd.decide import Pipeline
from facesortd.journal import Journal
from facesortd.learn.datasets import load_faces_json
from facesortd.learn.retrain import ShareCheck, retrain_if_due
from facesortd.learn.review import Reviewer, user_labels
from facesortd.model_store import load_model_in_force, model_in_force, use


def _truth() -> dict[str, str | None]:
    """Each screenshot's emotion: that of its largest labelled face (None: no labelled face)."""
    out: dict[str, str | None] = {}
    for name, faces in load_faces_json(SHARED / "seed" / "faces.json").items():
        labelled = [f for f in faces if f.emotion]
        out[name] = max(labelled, key=lambda f: f.box[2] * f.box[3]).emotion if labelled else None
    return out


def _auto_sorted(
    settings: Settings, files: list[Path], truth: dict[str, str | None], wrong: list[str] | None = None
) -> tuple[int, int, int]:
    """(auto-sorted, of them with a labelled emotion, of those into its folder) by the model in force;
    ``wrong`` gets "name: sorted → labelled" for each of the others.

    A screenshot without a labelled face (26 of the 75) has no truth: counting it as wrongly sorted
    would make the share right look lower than it is."""
    pipeline = Pipeline.for_settings(settings, load_model_in_force(settings))
    sure = [(path, d.emotion) for path in files if (d := pipeline.decide(path)).action == "sorted"]
    known = [(path, emotion) for path, emotion in sure if truth[path.name]]
    if wrong is not None:
        wrong += [f"{p.name}: {e} → {truth[p.name]}" for p, e in known if e != truth[p.name]]
    return len(sure), len(known), sum(emotion == truth[path.name] for path, emotion in known)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviewed", type=int, default=15, help="files the user files by hand")
    parser.add_argument("--seed", type=int, default=0, help="which of them (random order)")
    parser.add_argument(
        "--model", type=Path, help="the model in force at the start (default: the shipped one)"
    )
    args = parser.parse_args()
    if not require_shared():
        return 1
    truth = _truth()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for key, sub in (("INBOX", "inbox"), ("LIBRARY", "lib"), ("STATE_DIR", "state")):
            os.environ[f"FACESORTD_{key}"] = str(root / sub)
        settings = load_settings()
        fixed = root / "fixed"  # the same 75 screenshots, never moved: the measuring set
        shutil.copytree(SHARED / "seed" / "screenshots", fixed)
        shutil.copytree(fixed, settings.inbox)
        files = sorted(fixed.iterdir())
        if args.model:
            use(settings, str(args.model))
        print(f"model in force: {model_in_force(settings)}; threshold {settings.recognition.threshold}")
        before = _auto_sorted(settings, files, truth)
        print(f"before review, of the {len(files)}: {before} (sorted, with a labelled emotion, right)")
        assert cli.main(["--log-level", "WARNING", "sort"]) == 0
        placed = [p for p in settings.library.rglob("*.png")]
        wrong = [p for p in placed if truth[p.name] and p.parent.name != truth[p.name]]
        random.Random(args.seed).shuffle(wrong)
        reviewed = wrong[: args.reviewed]
        for path in reviewed:  # as with a file manager: into the folder of its emotion
            (settings.library / str(truth[path.name])).mkdir(exist_ok=True)
            path.rename(settings.library / str(truth[path.name]) / path.name)
        print(f"reviewed {len(reviewed)} of the {len(wrong)} placed outside their labelled emotion's folder")
        rest = [f for f in files if f.name not in {p.name for p in reviewed}]
        rest_before = _auto_sorted(settings, rest, truth)
        journal = Journal.for_state_dir(settings.state_dir)
        Reviewer(settings, journal).scan()
        labels = user_labels(journal)
        due = retrain_if_due(settings, journal, labels)
        print(f"{len(labels)} usable labels; retrain due by itself: {'yes' if due else 'no'}")
        result = due or retrain_if_due(settings, journal, labels, force=True)
        journal.close()
        assert result is not None
        print(f"forced retrain: {result.describe() if result.path else result.reason}")
        for check in result.comparisons:
            if isinstance(check, ShareCheck):  # what sorting more is judged by (README, "Reviewing")
                n, right = check.evidence.sorted_right_capped()
                print(f"its sure answers on the labels, no emotion over half: {right:.1f} of {n:.1f} right")
        print(f"model in force now: {model_in_force(settings)}")
        after = _auto_sorted(settings, files, truth)
        print(f"after review, of the {len(files)}: {after} (sorted, with a labelled emotion, right)")
        misplaced: list[str] = []
        rest_after = _auto_sorted(settings, rest, truth, misplaced)
        print(
            f"on the {len(rest)} not reviewed: before {rest_before}, after {rest_after}"
            " (sorted, with a labelled emotion, right)"
        )
        print(f"of them in a wrong folder (sorted → labelled): {'; '.join(misplaced) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
