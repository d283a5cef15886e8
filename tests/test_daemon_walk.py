"""A hostile user's walk of the running daemon (2026-12-03): each test is the minimal repro of what a
file, or the words said of it, suffered then, kept so that it stays fixed."""

from __future__ import annotations

import inspect
import logging
import os

import pytest
from synthetic import screenshot_png, stub_pipeline
from waiting import log_lines, running_daemon, wait_until

from facesortd import watch
from facesortd.config import Settings


def _deaf_to(monkeypatch: pytest.MonkeyPatch, word: bytes) -> None:
    """The watcher hears no event for a name holding ``word``: inotify's queue overflowed."""
    real_path = watch._Handler._path
    monkeypatch.setattr(
        watch._Handler,
        "_path",
        lambda self, raw: None if word in os.fsencode(raw) else real_path(self, raw),
    )


@pytest.mark.parametrize("folder", ["", "sub"])
def test_files_whose_events_were_all_lost_are_sorted_without_waiting_for_the_rescan(
    daemon_settings: Settings, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    """The daemon stopped (Ctrl-Z, SIGSTOP) or starved while 20 files were dropped: inotify's queue
    (64 events here, `fs.inotify.max_queued_events`) overflowed and no event of theirs was read. With
    nothing else placed, no look after a burst came, and they waited for the rescan (5 minutes by
    default; here off). A change to the inbox's folders is now looked into once the daemon is idle."""
    _deaf_to(monkeypatch, b"lost")
    settings = daemon_settings.model_copy(
        update={"watch": daemon_settings.watch.model_copy(update={"recursive": bool(folder)})}
    )
    where = settings.inbox / folder
    where.mkdir(parents=True)
    with running_daemon(settings, stub_pipeline):
        for i in range(3):
            (where / f"lost{i}.png").write_bytes(screenshot_png(40 + i))
        wait_until(lambda: not list(where.iterdir()))
    assert sorted(p.name for p in settings.library.rglob("*.png")) == ["lost0.png", "lost1.png", "lost2.png"]


def test_inotifys_overflow_is_said_once_in_the_logs_words_not_bare_on_stderr(
    daemon_settings: Settings, capfd: pytest.CaptureFixture[str]
) -> None:
    """watchdog logs through the standard `logging`, which facesortd does not set up: its "Inotify
    queue overflowed; filesystem events were lost" went bare to stderr (the journal), 41 times in a
    burst of 3,000 files, with no word of what it meant for them."""
    from watchdog.observers import inotify_c

    overflow = "Inotify queue overflowed; filesystem events were lost"
    assert overflow in inspect.getsource(inotify_c)  # what watchdog says, as this version words it
    with log_lines("WARNING") as lines, running_daemon(daemon_settings, stub_pipeline):
        for _ in range(41):
            logging.getLogger(inotify_c.__name__).warning(overflow)
        logging.getLogger(inotify_c.__name__).error("Unable to rebuild recursive inotify watches")
    said = [line for line in lines if "overflowed" in line]
    assert len(said) == 1 and "looks through the inbox itself" in said[0]
    assert "ERROR watchdog: Unable to rebuild recursive inotify watches" in lines
    assert overflow not in capfd.readouterr().err
