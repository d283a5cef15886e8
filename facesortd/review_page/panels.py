"""What the page shows beside the files: how learning stands, the model (the classes: classes.py).

Every figure comes from where the rest of facesortd keeps it (the journal's labels, the model
files' stored held-out figures), so the page and `facesortd status` / `model` never disagree.
"""

from __future__ import annotations

import threading

from loguru import logger

from facesortd.advice import advised
from facesortd.config import Settings
from facesortd.journal import Journal
from facesortd.learn.metrics import headline
from facesortd.learn.retrain import RETRAIN_HELD_BACK, labels_until_retrain, retrain_if_due
from facesortd.learn.review import Reviewer, label_summary, user_labels
from facesortd.model_store import last_retrain
from facesortd.mounts import DriveNotMounted
from facesortd.plots import figure_images, png_bytes
from facesortd.refusals import Refused
from facesortd.review_page.classes import model_in_force_info
from facesortd.state import retrain_lock
from facesortd.status import daemon_state


def model_panel(settings: Settings) -> dict[str, object]:
    """The model in force: its name, held-out headline, and which plots of it can be drawn."""
    path, info = model_in_force_info(settings)
    held_out = info.get("held_out")
    return {
        "model": path.name if path else None,
        "created": info.get("created"),
        "held_out": headline(held_out) or None,
        "plots": sorted(figure_images(held_out)) if isinstance(held_out, dict) else [],  # type: ignore[arg-type]
        "error": info.get("error"),
        "draw_plots": advised("eval", "DATASET", "--plots", "DIR"),  # for a model without plots
    }


def model_plot(settings: Settings, name: str) -> bytes | None:
    """PNG of one plot of the model in force's held-out figures, or None if it has none such."""
    _path, info = model_in_force_info(settings)
    held_out = info.get("held_out")
    if not isinstance(held_out, dict):
        return None
    image = figure_images(held_out).get(name)
    return None if image is None else png_bytes(image)


class Learning:
    """The learning panel's figures and its "retrain now" button (one retrain at a time, in the
    background)."""

    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal
        self.running = False
        self.message = ""
        self._told_after: tuple[tuple[str, str] | None, str] | None = None
        """Where retraining stood when ``message`` was set (:meth:`_retrains`): once another retrain
        has decided since (the daemon's, `facesortd retrain`), the message is stale and not shown; it
        said "no retrain: not enough labels" beside the daemon's adopted retrain."""
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _retrains(self) -> tuple[tuple[str, str] | None, str]:
        """The newest retrain's decision, and why the last one due could not train."""
        return last_retrain(self.settings), self.journal.get_meta(RETRAIN_HELD_BACK)

    def panel(self) -> dict[str, object]:
        counts, unusable, imported = label_summary(self.journal)
        last, held_back = self._retrains()
        message = self.message if self.running or self._told_after == (last, held_back) else ""
        return {
            "labels": counts,
            "unusable": unusable,
            "imported": imported,
            "next_retrain_in": labels_until_retrain(
                self.settings.learning, self.journal, user_labels(self.journal)
            ),
            # The daemon retrains when it is due; without one the due retrain waits for the button.
            "daemon_running": daemon_state(self.settings, []) is not None,
            "start_daemon": advised("run"),  # what the page says when it is not running
            "last_retrain": {"when": last[0], "decision": last[1]} if last else None,
            # Else "next retrain after 0 more label(s)" stood there while no retrain could run (the
            # button's own message says it when it was the button's).
            "held_back": None if message else held_back or None,
            "retraining": self.running,
            "message": message,
        }

    def start(self) -> bool:
        """Start a retrain unless one runs; False if one does."""
        with self._lock:
            if self.running:
                return False
            self.running = True
            self.message = "retraining…"
            self._thread = threading.Thread(target=self._run, name="review-retrain", daemon=True)
            self._thread.start()
        return True

    def finish(self) -> None:
        """Wait for a retrain started on the page to end, before the page closes the journal it
        uses: closed under it, the retrain failed and its thread died reading the journal (a
        traceback), and the retrain the person asked for was lost. A daemon thread all the same, so
        a second Ctrl-C here ends the process, the retrain left unfinished as a kill would."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            logger.info(
                "waiting for the retrain started on the page to end (Ctrl-C again leaves it unfinished)"
            )
            thread.join()

    def _run(self) -> None:
        """What `facesortd retrain` does: take in labels given by moving files too, then retrain,
        after any retrain running already (the daemon's, `facesortd retrain`): two at once each put
        their own model in force, judged against a model no longer there."""
        try:
            Reviewer(self.settings, self.journal).scan()
            with retrain_lock(self.settings.state_dir, self._waiting):
                result = retrain_if_due(self.settings, self.journal, user_labels(self.journal), force=True)
            assert result is not None, "a forced retrain always returns its result"
            self.message = result.describe() if result.path is not None else f"no retrain: {result.reason}"
        except (DriveNotMounted, Refused) as exc:  # the drive pulled out, the disk full: the person's fix
            self.message = f"no retrain: {exc}"
        except Exception as exc:  # a failed retrain must not take the page down; say it loudly
            logger.exception("retrain from the review page failed")
            self.message = f"retrain failed: {exc}"
        finally:
            try:
                self._told_after = self._retrains()
            finally:
                self.running = False

    def _waiting(self, words: str) -> None:
        self.message = words
