"""`status`, `undo` and `sort` whose stdout cannot take what they print: a file on a full disk (/dev/full
fails every write with ENOSPC, as `status > /full/disk/file` does), a terminal gone (EIO: an SSH
connection dropped), a pipe's reader gone. Each ended in a traceback (and again at the
interpreter's exit for what stayed buffered); now a full disk is said once, exit 1, and a reader
gone ends it quietly, 141, as `sort` does."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from journal_holder import journal_held
from synthetic import screenshot_png
from tree_files import files_in

from facesortd import cli
from facesortd import journal as journal_module
from facesortd.cli.undo import CONFIRM_UNDO_OVER
from facesortd.config import Settings

FULL = "facesortd: error: cannot write the output to /dev/full (No space left on device): it is cut short\n"

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")


class _GoneTerminal(io.StringIO):
    """A terminal whose connection dropped: every write to it fails, EIO."""

    failure = errno.EIO

    def write(self, text: str) -> int:
        raise OSError(self.failure, os.strerror(self.failure))


class _FullDisk(_GoneTerminal):
    """A file on a full disk, in this process: every write fails, ENOSPC."""

    failure = errno.ENOSPC


def _into_full_disk(*args: str) -> subprocess.CompletedProcess[str]:
    """``facesortd ARGS > /dev/full``, in a process of its own: the exit's flush is part of it."""
    with open("/dev/full", "w") as full:
        return subprocess.run(
            [sys.executable, "-m", "facesortd", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )


def _sorted_shot(tmp_path: Path) -> Path:
    """A screenshot sorted out of a folder of its own (`undo` puts it back there)."""
    shots = tmp_path / "screens"
    shots.mkdir()
    shot = shots / "a.png"
    shot.write_bytes(screenshot_png(61))
    assert cli.main(["sort", str(shots)]) == 0 and not shot.exists()
    return shot


@needs_dev_full
@pytest.mark.parametrize("form", [[], ["--json"]])
def test_status_into_a_file_on_a_full_disk_says_so_once(cli_settings: Settings, form: list[str]) -> None:
    done = _into_full_disk("status", *form)
    assert (done.returncode, done.stderr) == (1, FULL)


@needs_dev_full
def test_undo_into_a_file_on_a_full_disk_puts_the_file_back_and_says_so_once(
    cli_settings: Settings, tmp_path: Path
) -> None:
    shot = _sorted_shot(tmp_path)
    done = _into_full_disk("undo")
    assert (done.returncode, done.stderr) == (1, FULL)
    assert shot.read_bytes() == screenshot_png(61) and files_in(cli_settings.library) == []


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["undo"], ["undo", "--dry-run"]])
def test_status_and_undo_on_a_terminal_gone_end_quietly(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    shot = _sorted_shot(tmp_path)
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _GoneTerminal())
    assert cli.main(command) == 141
    assert capsys.readouterr().err == ""  # stderr still there: nothing to say of a reader gone
    assert shot.exists() == (command == ["undo"])


def test_an_undo_stopped_by_a_held_journal_on_a_terminal_gone_ends_without_a_traceback(
    cli_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`undo` stopped by the journal held by another process printed its error to stderr unguarded:
    on a terminal gone, a traceback in place of the exit status."""
    _sorted_shot(tmp_path)
    monkeypatch.setattr(journal_module, "LOCK_WAIT_S", 0.2)
    terminal = _GoneTerminal()
    with journal_held(cli_settings.state_dir):
        monkeypatch.setattr(sys, "stdout", terminal)
        monkeypatch.setattr(sys, "stderr", terminal)
        assert cli.main(["undo"]) == 141
    assert len(files_in(cli_settings.library)) == 1


def test_sort_json_into_a_file_on_a_full_disk_stops_and_says_so_once(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sort --json > FILE` on a full disk: the first record's failure ended the sort in a traceback,
    the files the workers had placed meanwhile unsaid. It stops as for a reader gone, and says why."""
    shots = tmp_path / "screens"
    shots.mkdir()
    for i in range(12):
        (shots / f"shot{i:02d}.png").write_bytes(screenshot_png(70 + i))
    monkeypatch.setattr(sys, "stdout", _FullDisk())
    assert cli.main(["sort", "--json", "--workers", "1", str(shots)]) == 1
    err = capsys.readouterr().err
    [said] = [line for line in err.splitlines() if "stopped:" in line]
    assert "stopped: cannot write the output to stdout (No space left on device): it is cut short" in said
    placed, left = len(files_in(cli_settings.library)), len(files_in(shots))
    assert placed + left == 12 and "file(s) left where they were" in said and left > 0


_PRINTING = [
    ["config"],
    ["config", "--example"],
    ["doctor"],
    ["model"],
    ["install-service", "--print"],
    ["detect", "SHOT"],
    ["detect", "--json", "SHOT"],
]
"""Commands that printed with a bare ``print``: a full disk or a terminal gone at their first line was
a traceback (and `install-service --print` blamed the unit file for stdout's full disk, exit 2)."""


def _command(command: list[str], tmp_path: Path) -> list[str]:
    shot = tmp_path / "shot.png"
    shot.write_bytes(screenshot_png(64))
    return [str(shot) if word == "SHOT" else word for word in command]


@pytest.mark.parametrize(
    ("stdout", "status", "last_lines"),
    [(_FullDisk, 1, [FULL.replace("/dev/full", "stdout").rstrip()]), (_GoneTerminal, 141, [])],
    ids=["full-disk", "terminal-gone"],
)
@pytest.mark.parametrize("command", _PRINTING, ids=" ".join)
def test_a_command_whose_stdout_fails_says_a_full_disk_once_and_ends_quietly_for_a_reader_gone(
    cli_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    stdout: type[io.StringIO],
    status: int,
    last_lines: list[str],
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(sys, "stdout", stdout())
    assert cli.main(_command(command, tmp_path)) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1:][: len(last_lines)] == last_lines
    assert not (tmp_path / "config" / "systemd").exists()  # --print writes no unit


@needs_dev_full
def test_config_example_into_a_file_on_a_full_disk_says_so_once(cli_settings: Settings) -> None:
    """The example is longer than stdout's buffer: it failed in the middle, a traceback."""
    done = _into_full_disk("config", "--example")
    assert (done.returncode, done.stderr) == (1, FULL)


class _Answering(io.StringIO):
    """A terminal's stdin: ``answer`` read from it, ``""`` for Ctrl-D, None for a terminal gone (EIO)."""

    def __init__(self, answer: str | None) -> None:
        super().__init__()
        self.answer = answer

    def isatty(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        if self.answer is None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return self.answer


@pytest.fixture
def many_sorted(cli_settings: Settings, tmp_path: Path) -> Path:
    """More files sorted than `undo` puts back without asking; their folder."""
    shots = tmp_path / "many"
    shots.mkdir()
    for i in range(CONFIRM_UNDO_OVER + 1):
        (shots / f"s{i:02d}.png").write_bytes(screenshot_png(100 + i))
    assert cli.main(["sort", str(shots)]) == 0 and files_in(shots) == []
    return shots


@pytest.mark.parametrize("answer", ["", None], ids=["ctrl-d", "stdin gone"])
def test_undo_asked_and_given_no_answer_says_nothing_undone_on_a_line_of_its_own(
    many_sorted: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], answer: str | None
) -> None:
    """Ctrl-D at the question: "nothing undone" went on after it ("[y/N] nothing undone"); the
    terminal gone as it is read (stdout a file, EIO): a traceback."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", _Answering(answer))
    assert cli.main(["undo", "--since", "1h"]) == 0
    asked = f"undo these {CONFIRM_UNDO_OVER + 1} moves? [y/N] "
    assert capsys.readouterr().out.splitlines()[-2:] == [asked, "nothing undone"]
    assert files_in(many_sorted) == []


class _FullFrom(io.StringIO):
    """A file whose disk fills once ``marker`` is written: what came before kept, every write after fails."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.refused: list[str] = []

    def write(self, text: str) -> int:
        if self.marker in self.getvalue() + text:
            self.refused.append(text)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(text)


def test_train_activate_whose_output_fails_once_the_model_is_written_puts_it_in_force_and_says_so(
    crop_dataset: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The figures' line failed: `train --activate` stopped there, its model written and not in force,
    and said only that its output was "cut short"."""
    from facesortd import model_store
    from facesortd.config import load_settings

    monkeypatch.setattr(sys, "stdout", _FullFrom("trained on"))
    train = ["train", str(crop_dataset), "--kind", "crops", "--folds", "2", "--descriptor", "hog"]
    assert cli.main([*train, "--activate"]) == 1
    [written] = model_store.user_models(load_settings())
    assert model_store.model_in_force(load_settings()) == written
    said = capsys.readouterr().err.splitlines()[-1]
    assert said == (
        "facesortd: error: cannot write the output to stdout (No space left on device): it is cut short; "
        f"the model written to {written} is in force"
    )


def test_model_use_whose_waiting_line_fails_still_puts_the_model_in_force_and_says_so(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A retrain running, `model use` said it waits on a stdout that takes nothing: it ended there, the
    model in force unchanged, said as output "cut short" only."""
    import threading

    from test_model_store import loadable_model
    from waiting import HUNG_S, wait_until

    from facesortd import model_store
    from facesortd.state import retrain_lock

    stdout = _FullFrom("waiting")
    monkeypatch.setattr(sys, "stdout", stdout)
    pointer = model_store.models_dir(cli_settings) / model_store.CURRENT
    codes: list[int] = []
    with retrain_lock(cli_settings.state_dir) as mine:
        assert mine
        person = threading.Thread(target=lambda: codes.append(cli.main(["model", "use", "default"])))
        person.start()
        wait_until(lambda: bool(stdout.refused))  # the person told of the wait, on a full disk
        model_store.adopt(cli_settings, loadable_model(cli_settings))  # the retrain's choice, as it ends
    person.join(timeout=HUNG_S)
    assert codes == [1] and pointer.read_text() == model_store.DEFAULT
    assert (
        capsys.readouterr()
        .err.splitlines()[-1]
        .endswith(f"it is cut short; model in force is now {model_store.shipped_model()}")
    )


def test_retrain_whose_waiting_line_fails_still_retrains_and_says_the_outcome(
    cli_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`retrain` waiting for another on a stdout that takes nothing ended there, no retrain run."""
    import threading

    from waiting import HUNG_S, wait_until

    from facesortd.state import retrain_lock

    stdout = _FullFrom("waiting")
    monkeypatch.setattr(sys, "stdout", stdout)
    codes: list[int] = []
    with retrain_lock(cli_settings.state_dir) as mine:
        assert mine
        person = threading.Thread(target=lambda: codes.append(cli.main(["retrain"])))
        person.start()
        wait_until(lambda: bool(stdout.refused))
    person.join(timeout=HUNG_S)
    assert codes == [1]  # no labels: no model, said after the retrain looked
    assert "it is cut short; no retrain: " in capsys.readouterr().err.splitlines()[-1]
