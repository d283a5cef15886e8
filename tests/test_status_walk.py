"""`status`, `doctor`, `config` and `install-service` walked as a demanding user: each leftover,
damaged file or odd setting is one clear line (or a true report), never a traceback or a false
"all fine"."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from journal_holder import journal_held_exclusively
from waiting import HUNG_S

from facesortd import cli
from facesortd.config import Settings, load_settings
from facesortd.journal import Journal
from facesortd.state import STATUS_FILE, DaemonLock


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, sub in (("INBOX", "inbox"), ("LIBRARY", "lib"), ("STATE_DIR", "state")):
        monkeypatch.setenv(f"FACESORTD_{key}", str(tmp_path / sub))
    settings = load_settings()
    settings.state_dir.mkdir(parents=True)
    return settings


def _status_json(capsys: pytest.CaptureFixture[str]) -> dict:
    assert cli.main(["status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "written",
    [
        "[]",
        "null",
        '{"pid": PID, "updated": "x"}',
        '{"pid": 99999999999, "updated": NOW, "queue": 0, "model": "m"}',
        '{"pid": PID, "updated": NaN, "queue": 0, "model": "m"}',
    ],
)
def test_a_status_file_that_is_not_one_is_no_daemon_not_a_traceback(
    settings: Settings, capsys: pytest.CaptureFixture[str], written: str
) -> None:
    """A status file cut short by a disk, edited, or from another facesortd version ended `status`
    (and `--json`) in a TypeError, ValueError, KeyError or OverflowError traceback."""
    written = written.replace("PID", str(os.getpid())).replace("NOW", str(time.time()))
    (settings.state_dir / STATUS_FILE).write_text(written)  # this process's pid: alive
    assert _status_json(capsys)["daemon"] == {"running": False}
    assert cli.main(["status"]) == 0
    assert capsys.readouterr().out.startswith("daemon: not running")


def test_a_status_file_with_odd_members_still_says_the_daemon_runs(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its pid and time say a daemon runs; a queue, model or start of another kind (garbled bytes of
    the model's name) ended `status` in a traceback."""
    status = {"pid": os.getpid(), "updated": time.time(), "queue": [], "model": "m", "model_bytes_b64": "a"}
    (settings.state_dir / STATUS_FILE).write_text(json.dumps({**status, "started": "x"}))
    daemon = _status_json(capsys)["daemon"]
    assert daemon["running"] and daemon["pid"] == os.getpid() and daemon["model"] is None
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"daemon: running (pid {os.getpid()}, up 0 min), queue not known, model not known")


def test_a_status_file_dated_ahead_of_the_clock_is_not_a_running_daemon(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A daemon killed while the clock ran a year ahead (put right since), its pid now another
    process's: `status` called it running for a year, and the files in the inbox "waiting to be
    sorted" with no word that nothing sorts them."""
    settings.inbox.mkdir()
    (settings.inbox / "a.png").write_bytes(b"x")
    ahead = time.time() + 365 * 24 * 3600
    status = {"pid": os.getpid(), "started": ahead, "updated": ahead, "queue": 0, "model": "m"}
    (settings.state_dir / STATUS_FILE).write_text(json.dumps(status))
    data = _status_json(capsys)
    assert data["daemon"] == {"running": False}
    assert data["inbox"]["stuck"][0]["why"] == "waiting to be sorted (the daemon is not running)"


def test_a_daemon_that_has_not_published_yet_is_starting_not_missing(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Between taking its lock and its first status (its models loading, a big inbox listed, the
    status file of a daemon killed before still there) `status` said "not running (start it with
    `facesortd run`)", which was then refused as a second daemon."""
    gone = {"pid": 1 << 22, "started": 1.0, "updated": 1.0, "queue": 0, "model": "m"}
    (settings.state_dir / STATUS_FILE).write_text(json.dumps(gone))
    with DaemonLock(settings.state_dir):  # this process stands in for the daemon
        data = _status_json(capsys)
        assert data["daemon"] == {"running": True, "pid": os.getpid(), "starting": True}
        assert cli.main(["status"]) == 0
        assert capsys.readouterr().out.startswith(f"daemon: starting (pid {os.getpid()})")
    assert _status_json(capsys)["daemon"] == {"running": False}


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        ('inbox = "~nosuchuser/in"', "inbox = '~nosuchuser/in': there is no user 'nosuchuser'"),
        (
            '[recognition]\nmodel = "~nosuchuser/m.fsm.npz"',
            "recognition.model = '~nosuchuser/m.fsm.npz': there",
        ),
        (
            '[detection]\ncascades = ["~nosuchuser/c.xml"]',
            "detection.cascades = ['~nosuchuser/c.xml']: there",
        ),
        ('library = "/tmp/a\\u0000b"', "library = '/tmp/a\\x00b': a NUL character, which no file or folder"),
        ("[watch]\nsettle_s = nan", "watch.settle_s = nan: Input should be a finite number"),
    ],
)
def test_a_path_no_file_can_have_or_a_number_that_is_none_is_named_with_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, said: str
) -> None:
    """`~nosuchuser/…` (a user of another machine) or a NUL in a path ended every command, `doctor`
    and `status` too, in a RuntimeError or ValueError traceback; `nan` was "should be less than or
    equal to 1"."""
    config = tmp_path / "config.toml"
    config.write_text(toml + "\n")
    for command in (["status"], ["doctor"]):
        assert cli.main(["--config", str(config), *command]) == (2 if command == ["status"] else 1)
        captured = capsys.readouterr()
        assert said in captured.err + captured.out


def test_a_file_setting_written_from_home_is_read_from_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cascade, verifier or gate file written "~/…" was looked for in a folder named "~": "does not
    exist" of a file that did, where the model and the folders were read from home."""
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "config.toml"
    config.write_text('[detection]\ncascades = ["~/c.xml"]\nverifier = "~/v.npz"\ngate = "~/g.npz"\n')
    detection = load_settings(config).detection
    assert (detection.cascades, detection.verifier, detection.gate) == (
        [tmp_path / "c.xml"],
        tmp_path / "v.npz",
        tmp_path / "g.npz",
    )
    monkeypatch.setenv("FACESORTD_INBOX", "~nosuchuser/in")
    assert cli.main(["--config", str(config), "config"]) == 0  # reads nothing of it: no traceback either
    assert cli.main(["--config", "~nosuchuser/c.toml", "config"]) == 0


def test_config_does_not_call_the_defaults_in_force_beside_a_folder_at_the_config_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A folder where the config file goes: every command refuses it ("is not a file"), while
    `config` said "not there, so the built-in defaults are in force"."""
    from facesortd.config import default_config_file

    default_config_file().mkdir(parents=True)
    assert cli.main(["config"]) == 0
    out = capsys.readouterr().out
    assert "is not a file, so every command refuses to run" in out and "defaults are in force" not in out
    assert cli.main(["status"]) == 2 and "is not a file" in capsys.readouterr().err


def test_config_names_the_variables_that_come_before_the_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`config` said "the built-in defaults are in force" with FACESORTD_LIBRARY set in the shell,
    whose commands then sorted into another library."""
    monkeypatch.setenv("FACESORTD_LIBRARY", "/elsewhere")
    assert cli.main(["config"]) == 0
    out = capsys.readouterr().out
    assert "this shell also sets FACESORTD_LIBRARY: such variables come before the config file" in out


def test_status_with_a_damaged_journal_or_model_still_reports_then_exits_as_every_command(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A damaged journal (or pinned model) made `status` say that one line on stderr and nothing of
    the daemon, the inbox or the quarantine; `--json` printed nothing a script could parse."""
    settings.inbox.mkdir()
    (settings.inbox / "a.png").write_bytes(b"x")
    (settings.state_dir / "journal.sqlite").write_bytes(b"not a database, garbage " * 200)
    assert cli.main(["status", "--json"]) == 2
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert "damaged" in captured.err and any("is damaged" in p for p in data["problems"])
    assert data["total"] is None and data["inbox"]["count"] == 1  # not known, rather than "none"
    assert cli.main(["status"]) == 2
    out = capsys.readouterr().out
    assert "nothing sorted yet" not in out and "what was sorted: not known" in out and "a.png" in out
    (settings.state_dir / "journal.sqlite").unlink()
    broken = settings.state_dir / "m.fsm.npz"
    broken.write_bytes(b"not a model")
    monkeypatch.setenv("FACESORTD_RECOGNITION__MODEL", str(broken))
    assert cli.main(["status"]) == 2
    captured = capsys.readouterr()
    assert f"PROBLEM: model file {broken} is corrupt" in captured.out and "a.png" in captured.out
    assert "corrupt" in captured.err


def test_status_on_a_terminal_says_a_damaged_journal_once(settings: Settings) -> None:
    """On a terminal a damaged journal's message was shown twice, the report's PROBLEM line and then
    the same words as "facesortd: error" (stderr, the same terminal): once is enough there; the exit
    status is still 2, and the line on stderr still there for a report piped elsewhere (above)."""
    (settings.state_dir / "journal.sqlite").write_bytes(b"not a database, garbage " * 200)
    controller, terminal = os.openpty()
    shown: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(controller, shown), daemon=True)
    reader.start()
    with (
        open(terminal, "w", closefd=False) as out,
        open(terminal, "w", closefd=False) as err,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(sys, "stdout", out)
        patch.setattr(sys, "stderr", err)
        assert cli.main(["status"]) == 2
    os.close(terminal)
    reader.join(timeout=HUNG_S)
    os.close(controller)
    screen = b"".join(shown).decode()
    assert screen.count("is damaged") == 1 and "PROBLEM: the journal" in screen, screen


def _read_all(controller: int, into: list[bytes]) -> None:
    """What a terminal is shown, until its other end is closed (EIO)."""
    with contextlib.suppress(OSError):
        while chunk := os.read(controller, 1 << 16):
            into.append(chunk)


def test_status_says_it_waits_for_a_journal_another_process_holds(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A journal held by another process in SQLite's exclusive locking mode (a sqlite3 shell, a
    stuck tool): `status` waited the lock's 30 s without a word. It now says within a moment that it
    waits, for what and who holds it."""
    journal = settings.state_dir / "journal.sqlite"
    Journal(journal).close()
    with journal_held_exclusively(journal) as holder:
        monkeypatch.setattr("facesortd.journal.LOCK_WAIT_S", 1.5)  # the wait itself is not the point
        monkeypatch.setattr("facesortd.progress.SAY_WAITING_S", 0.1)
        assert cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert f"the journal {journal} has not opened in 0.1 s: most likely another process holds" in err
    assert f"pid {holder.pid} (" in err.split("has not opened")[1].split("\n")[0]


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs made read-only (root only: skipped without the privilege), with a folder in it."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    tmpfs = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)]
    if os.geteuid() != 0 or subprocess.run(tmpfs).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        (mount / "library" / "happy").mkdir(parents=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_doctor_says_a_read_only_mount_is_one_not_to_chmod(
    read_only_mount: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library (or state folder) on a read-only mount: doctor advised chmod, which does nothing
    there."""
    from facesortd.doctor import run_checks

    monkeypatch.setenv("FACESORTD_LIBRARY", str(read_only_mount / "library"))
    [said] = [message for ok, message in run_checks(None) if not ok and "library" in message]
    assert said == (
        f"library {read_only_mount / 'library'} is on a read-only filesystem: mount it writable, or set "
        "library to a folder on a writable one"
    )


def test_doctor_reads_a_unit_as_systemd_runs_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A unit of this very command with a line edited (or written by an older facesortd) was "not the
    command or config checked here"; `ExecStart=python3 …`, which systemd finds in its own search
    path, "is not there"; a unit with no ExecStart=, which systemd refuses, "ok"; a masked one (a link
    to /dev/null) "not one facesortd can read"."""
    from facesortd.doctor import unit_check
    from facesortd.service_unit import unit_file

    assert cli.main(["install-service"]) == 0
    unit = unit_file()
    written = unit.read_text()
    unit.write_text(written.replace("Restart=on-failure", "Restart=always"))
    ok, said = unit_check(None)
    assert ok and "runs this facesortd with this config; its other lines are not those" in said
    unit.write_text(re.sub(r"(?m)^ExecStart=.*$", "ExecStart=sh -c true", written))
    assert unit_check(None) == (
        True,
        f"service unit: {unit} runs `sh -c true` (not the command or config checked here)",
    )
    unit.write_text(re.sub(r"(?m)^ExecStart=.*\n", "", written))
    ok, said = unit_check(None)
    assert not ok and "has no ExecStart= line, so systemd cannot start it" in said
    unit.unlink()
    unit.symlink_to(os.devnull)  # `systemctl --user mask facesortd`
    assert unit_check(None) == (
        True,
        f"service unit: masked ({unit} leads to {os.devnull}): systemd will not start it (`systemctl "
        "--user unmask facesortd` undoes that)",
    )
    unit.unlink()
    unit.write_text(re.sub(r"(?m)^ExecStart=.*\n", "", written))
    dropins = unit.with_name(unit.name + ".d")
    dropins.mkdir()
    (dropins / "override.conf").write_text("[Service]\nExecStart=\nExecStart=/x run\n")
    assert unit_check(None)[0]
    unit.write_text(written)
    assert unit_check(None) == (
        True,
        f"service unit: {unit}, for this facesortd and this config (with the drop-ins override.conf of "
        f"{unit}.d, checked by hand)",
    )


def test_install_service_without_systemctl_says_nothing_will_start_the_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a system without systemd it wrote the unit and advised `systemctl --user …`: "command not
    found", and no word of what to run instead."""
    monkeypatch.setenv("PATH", str(tmp_path))  # no systemctl on it
    assert cli.main(["install-service"]) == 0
    out = capsys.readouterr().out
    assert "but systemctl is not on this system" in out and "run `facesortd run` yourself instead" in out
    assert cli.main(["install-service"]) == 0
    assert "already installed" in (out := capsys.readouterr().out) and "but systemctl is not" in out


def test_a_pinned_model_not_there_is_not_to_be_fixed_or_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`doctor` said "fix or remove it" of a model file that did not exist (and removing a damaged one
    left recognition.model naming nothing)."""
    from facesortd.doctor import run_checks

    monkeypatch.setenv("FACESORTD_RECOGNITION__MODEL", str(tmp_path / "gone.fsm.npz"))
    [said] = [message for ok, message in run_checks(None) if not ok]
    assert said == (
        f"emotion model: model file {tmp_path / 'gone.fsm.npz'} does not exist: set recognition.model to "
        "a facesortd model file (*.fsm.npz), or leave it unset for the model put in force (`facesortd "
        "model` lists them)"
    )


def test_status_advises_systemctl_only_where_it_can_start_the_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the unit masked, or no systemctl on the system, `status` advised `systemctl --user start
    facesortd`, which fails there ("Unit facesortd.service is masked", "command not found")."""
    from facesortd.service_unit import unit_file

    unit = unit_file()
    unit.parent.mkdir(parents=True)
    unit.symlink_to(os.devnull)
    assert cli.main(["status"]) == 0
    assert capsys.readouterr().out.startswith(
        "daemon: not running (start it with `facesortd run`; its unit is masked (`systemctl --user unmask"
    )
    unit.unlink()
    assert cli.main(["install-service"]) == 0
    monkeypatch.setenv("PATH", str(tmp_path))  # no systemctl on it
    capsys.readouterr()
    assert cli.main(["status"]) == 0
    assert capsys.readouterr().out.startswith(
        "daemon: not running (start it with `facesortd run` (this system has no systemctl to start its unit))"
    )


def test_a_log_level_in_the_config_is_taken_in_any_case_as_the_option_is(tmp_path: Path) -> None:
    """`--log-level debug` worked; `log_level = "debug"` in the config (or FACESORTD_LOG_LEVEL=debug)
    was refused, and every command with it, the daemon's start too."""
    config = tmp_path / "config.toml"
    config.write_text('log_level = "debug"\n')
    assert load_settings(config).log_level == "DEBUG"


def test_doctor_does_not_promise_a_journal_under_a_file(settings: Settings) -> None:
    """A file where the state folder goes: doctor said "ok journal: …/journal.sqlite (does not exist
    yet; created on first use)", below a file, beside the state_dir FIX."""
    from facesortd.doctor import run_checks

    settings.state_dir.rmdir()
    settings.state_dir.write_text("a note")
    said = [message for _ok, message in run_checks(None)]
    assert "journal: not looked for, as state_dir is not a folder (said above)" in said
    assert not any("created on first use" in m and "journal" in m for m in said)


def test_a_fifo_named_as_verifier_gate_or_cascade_is_said_not_waited_on(tmp_path: Path) -> None:
    """detection.verifier or detection.gate naming a FIFO hung `doctor` for ever (and `run` before it
    was ready): numpy waited for a writer. A cascade so named, or a folder, "did not exist"."""
    from facesortd.detect import DetectorError, load_cascade
    from facesortd.gate import GateError, load_gate
    from facesortd.verify import VerifierError, load_verifier

    fifo = tmp_path / "f.npz"
    os.mkfifo(fifo)
    said: list[str] = []

    def load_each() -> None:
        for load, error in (
            (load_verifier, VerifierError),
            (load_gate, GateError),
            (load_cascade, DetectorError),
        ):
            with pytest.raises(error) as caught:
                load(fifo)
            said.append(str(caught.value))

    thread = threading.Thread(target=load_each, daemon=True)
    thread.start()
    thread.join(timeout=HUNG_S)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a writer comes and goes: the read ends
        pytest.fail("blocked reading the FIFO")
    assert len(said) == 3 and all("not a regular file (a FIFO, socket or device)" in s for s in said), said
    with pytest.raises(DetectorError, match="is a folder"):
        load_cascade(tmp_path)


def test_install_service_says_the_link_it_writes_in_place_of(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A unit that was a link (a dotfile manager's, or systemctl's mask to /dev/null) was replaced by
    a file without a word: the dotfile kept the old unit, the mask was gone."""
    from facesortd.service_unit import unit_file

    unit = unit_file()
    unit.parent.mkdir(parents=True)
    dotfile = tmp_path / "dotfiles" / "facesortd.service"
    dotfile.parent.mkdir()
    dotfile.write_text("[Service]\nExecStart=/old/facesortd run\n")
    unit.symlink_to(dotfile)
    assert cli.main(["install-service"]) == 0
    assert f"  in place of a link to {dotfile}, which is left as it was\n" in capsys.readouterr().out
    assert not unit.is_symlink() and dotfile.read_text() == "[Service]\nExecStart=/old/facesortd run\n"
    unit.unlink()
    unit.symlink_to(os.devnull)
    assert cli.main(["install-service"]) == 0
    assert "  it was masked (a link to /dev/null), and is not now" in capsys.readouterr().out


@pytest.mark.parametrize("form", [[], ["--json"]])
def test_a_library_that_became_a_file_under_a_running_daemon_is_one_line_beside_the_daemon(
    cli_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], form: list[str]
) -> None:
    """`status` refused to run at all while the library's path held a file ("library … is not a
    folder", exit 2), so it said nothing of the daemon running meanwhile, nor of what it sorted."""
    from synthetic import screenshot_png, stub_pipeline
    from waiting import running_daemon, wait_until

    library = cli_settings.library
    with running_daemon(cli_settings, stub_pipeline) as daemon:
        (cli_settings.inbox / "a.png").write_bytes(screenshot_png(1))
        wait_until(lambda: daemon.counts.total() == 1)
        library.rename(tmp_path / "library.old")
        library.write_bytes(b"not a folder")
        capsys.readouterr()
        assert cli.main(["status", *form]) == 2
        out, err = capsys.readouterr()
    refusal = f"library {library} is not a folder: point library at a folder, or move that file away"
    assert err == f"facesortd: error: {refusal}\n"
    # (the test's daemon runs with settings of its own: "other settings than these" is said too)
    if form:
        shown = json.loads(out)
        assert shown["daemon"]["running"] and sum(shown["total"].values()) == 1
        assert [p for p in shown["problems"] if p.startswith("library")] == [refusal]
    else:
        assert out.startswith(f"daemon: running (pid {os.getpid()}")
        assert [line for line in out.splitlines() if "PROBLEM: library" in line] == [f"PROBLEM: {refusal}"]
        assert "today: 1 file(s)" in out


def test_sort_into_a_library_it_is_given_is_not_refused_for_the_configs_library_a_file(
    cli_settings: Settings, tmp_path: Path
) -> None:
    """`main` checked the config's folders before any command, without the command's own options:
    `sort --library DIR` was refused for the config's library, a file, that it would not use."""
    from synthetic import screenshot_png

    if cli_settings.library.is_dir():
        cli_settings.library.rmdir()
    cli_settings.library.write_bytes(b"not a folder")
    shots = tmp_path / "screens"
    shots.mkdir()
    (shots / "a.png").write_bytes(screenshot_png(3))
    assert cli.main(["sort", "--library", str(tmp_path / "other"), str(shots)]) == 0
    assert not (shots / "a.png").exists() and list((tmp_path / "other").rglob("a.png"))
