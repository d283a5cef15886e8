"""Configuration: sources, precedence, and error messages a user can act on."""

from __future__ import annotations

import errno
import os
import re
import threading
import tomllib
from pathlib import Path

import pytest
from waiting import HUNG_S

from facesortd.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


def test_defaults_live_under_xdg_folders(tmp_path: Path) -> None:
    s = load_settings()
    assert s.inbox.is_relative_to(Path(__import__("os").environ["XDG_PICTURES_DIR"]))
    assert s.state_dir.name == "facesortd"
    assert s.detection.scale_factor == 1.1


def test_toml_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('library = "/tmp/lib-from-toml"\n[detection]\nscale_factor = 1.3\nmin_neighbors = 7\n')
    s = load_settings(cfg)
    assert s.library == Path("/tmp/lib-from-toml") and s.detection.scale_factor == 1.3
    monkeypatch.setenv("FACESORTD_DETECTION__SCALE_FACTOR", "1.5")
    s = load_settings(cfg)
    assert s.detection.scale_factor == 1.5 and s.detection.min_neighbors == 7
    assert load_settings(cfg, library=Path("/x")).library == Path("/x")


def test_default_config_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "facesortd").mkdir()
    (tmp_path / "facesortd" / "config.toml").write_text("[recognition]\nthreshold = 0.8\n")
    assert load_settings().recognition.threshold == 0.8


def test_bad_value_names_key_value_and_expectation(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[detection]\nscale_factor = 0.9\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    msg = str(err.value)
    assert "detection.scale_factor" in msg and "0.9" in msg and "greater than 1" in msg


@pytest.mark.parametrize(
    "key",
    [
        "watch.poll_interval_s",
        "watch.settle_s",
        "watch.unreadable_settle_s",
        "watch.rescan_interval_s",
        "learning.retrain_interval_h",
    ],
)
def test_a_wait_too_long_for_a_clock_is_refused_by_name(tmp_path: Path, key: str) -> None:
    """1e308 (or inf) was taken: the polling observer's and a retry timer's threads died of
    OverflowError, leaving a daemon that said it was watching and saw no new file, and `status`
    failed on the retrain time it could not print."""
    section, name = key.split(".")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[{section}]\n{name} = 1e308\n")
    with pytest.raises(ConfigError, match=re.escape(key) + " = 1e[+]?308: Input should be less than"):
        load_settings(cfg)


@pytest.mark.parametrize("key", ["min_size", "max_side"])
def test_a_face_size_no_image_can_have_is_refused_by_name(tmp_path: Path, key: str) -> None:
    """detection.min_size = 100000000000000000000 was taken: OpenCV refused the number, so every
    file was quarantined as "unreadable" and `doctor` ended in a traceback."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[detection]\n{key} = 100000000000000000000\n")
    with pytest.raises(ConfigError, match=f"detection.{key} = 100000000000000000000: Input should be less"):
        load_settings(cfg)


@pytest.mark.parametrize("value", [".png", '[".png"'])
def test_a_list_variable_that_is_not_json_names_itself_and_the_form(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """FACESORTD_WATCH__EXTENSIONS=.png ended every command in a pydantic-settings traceback."""
    monkeypatch.setenv("FACESORTD_WATCH__EXTENSIONS", value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert f"FACESORTD_WATCH__EXTENSIONS = {value!r}" in str(err.value)
    assert """FACESORTD_WATCH__EXTENSIONS='[".png", ".jpg"]'""" in str(err.value)


def test_a_config_path_that_is_a_folder_or_unreadable_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--config FOLDER` was said not to exist, a folder at the default config path was passed over
    in silence (doctor: "built-in defaults"), and a file it may not read was "not valid TOML"."""
    folder = tmp_path / "conf.d"
    folder.mkdir()
    message = (
        f"config file {folder} is not a file: name a TOML file (every key is optional; "
        "`facesortd config --example` prints each with its default)"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(folder)
    assert str(caught.value) == message
    default = Path(os.environ["XDG_CONFIG_HOME"]) / "facesortd" / "config.toml"
    default.mkdir(parents=True)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == message.replace(str(folder), str(default))
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    real_read = Path.read_text

    def read_text(path: Path, *args: object, **kwargs: object) -> str:
        if path == cfg:  # root reads anything: what the kernel answers a user of mode 000
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_read(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    assert str(caught.value) == f"cannot read the config file {cfg} (Permission denied): chmod u+r '{cfg}'"


def test_a_variable_that_names_no_setting_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`FACESORTD_LIBARY=~/reactions facesortd run` sorted into the config's library: a top-level
    variable that names no setting was passed over in silence (a nested one was refused, without
    saying it came from a variable)."""
    monkeypatch.setenv("FACESORTD_LIBARY", str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(
        "invalid configuration (from FACESORTD_* variables):\n"
        f"  FACESORTD_LIBARY = {str(tmp_path)!r}: unknown key libary (did you mean library? "
    )
    assert load_settings(environment=False).library != tmp_path  # what the variables are not asked for
    monkeypatch.delenv("FACESORTD_LIBARY")
    monkeypatch.setenv("FACESORTD_WATCH__RECURSVE", "true")
    with pytest.raises(ConfigError, match=r"\(from FACESORTD_\* variables or options\):\n  watch.recursve"):
        load_settings()


def test_unknown_key_and_missing_or_broken_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[detection]\nscale_factr = 1.2\n")
    with pytest.raises(ConfigError, match="scale_factr: unknown key") as caught:
        load_settings(cfg)
    assert "did you mean detection.scale_factor? the keys of [detection]: " in str(caught.value)
    cfg.write_text('libary = "~/lib"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(cfg)
    assert "libary: unknown key (did you mean library? the keys of the top level: inbox, library," in str(
        caught.value
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.toml")
    said = str(caught.value)
    assert "nope.toml does not exist: write it, or leave out --config for the built-in defaults" in said
    cfg.write_text("library = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg)


def _keys(model: type, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            out |= _keys(ann, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def _flatten(data: dict, prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in data.items():
        out |= _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k}
    return out


def test_example_config_documents_every_key_and_loads() -> None:
    """config.example.toml lists each key (commented-out keys count) and is itself valid."""
    text = (REPO / "config.example.toml").read_text()
    uncommented = re.sub(r"(?m)^# (?=[a-z_]+ = )", "", text)
    documented = _flatten(tomllib.loads(uncommented))
    assert _keys(Settings) == documented
    load_settings(REPO / "config.example.toml")


def _documented_unset(text: str) -> dict[str, str]:
    """Each key of an example config (commented out) with the comment lines above it, since the key before."""
    found, block, section = {}, [], ""
    for line in text.splitlines():
        if header := re.fullmatch(r"\[(\w+)\]", line):
            section, block = f"{header.group(1)}.", []
        elif key := re.match(r"# ([a-z_]+) = ", line):
            found[section + key.group(1)], block = " ".join(block), []
        elif line.startswith("#"):
            block.append(line)
    return found


def test_the_example_config_is_printed_by_the_command_and_holds_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """config.example.toml was in the source folder only: `pip install` and pipx users could not
    see it, and the messages no longer named it. It is package data now (a link to the top-level
    file, which stays the one source), printed by `facesortd config --example`, also where the
    config is broken; each key it writes out is the default, or marked "Unset" where the default is
    none and it shows a value to write."""
    from facesortd import cli

    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "config.example.toml" in setuptools["package-data"]["facesortd"]
    assert (REPO / "facesortd" / "config.example.toml").resolve() == (REPO / "config.example.toml").resolve()
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_PICTURES_DIR"):
        monkeypatch.delenv(var)
    broken = tmp_path / "broken.toml"
    broken.write_text("threshold = \n")
    assert cli.main(["--config", str(broken), "config", "--example"]) == 0
    printed = capsys.readouterr().out
    assert printed == (REPO / "config.example.toml").read_text()
    example = tmp_path / "example.toml"
    example.write_text(re.sub(r"(?m)^# (?=[a-z_]+ = )", "", printed))
    written = load_settings(example, environment=False).model_dump()
    defaults = load_settings(environment=False).model_dump()
    unset = _documented_unset(printed)
    for section, values in written.items():
        for key, value in values.items() if isinstance(values, dict) else [("", values)]:
            name = f"{section}.{key}" if key else section
            default = defaults[section][key] if key else defaults[section]
            assert value == default or (default is None and "Unset" in unset[name]), (name, value, default)


def test_config_says_which_file_is_read_and_how_to_start_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A first-time user had no command naming the config file read, nor one to start it from; the
    messages and `doctor` now point at `facesortd config --example`."""
    from facesortd import cli
    from facesortd.config import default_config_file
    from facesortd.doctor import run_checks

    assert cli.main(["config"]) == 0
    path = default_config_file()
    assert capsys.readouterr().out.splitlines() == [
        f"config file: {path}: not there, so the built-in defaults are in force",
        "`facesortd config --example` prints every key with its default and what it does; to start one "
        f"from it: mkdir -p {path.parent} && facesortd config --example > {path}",
    ]
    assert "`facesortd config --example` prints one to start from" in next(run_checks(None))[1]
    path.parent.mkdir(parents=True)
    path.write_text("")
    assert cli.main(["config"]) == 0
    assert capsys.readouterr().out.startswith(f"config file: {path} (the default place; `facesortd doctor`")
    assert cli.main(["--config", str(tmp_path / "nope.toml"), "config"]) == 0
    assert "nope.toml: not there, so every command given it refuses to run" in capsys.readouterr().out


def test_relative_folders_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(library=Path("lib"), inbox=Path("~/in"))
    assert s.library == tmp_path / "lib" and s.inbox == Path.home() / "in"


def _desktop(monkeypatch: pytest.MonkeyPatch, home: Path, user_dirs: str | None) -> None:
    """A user whose shell does not export XDG_PICTURES_DIR, with ``user_dirs`` as their desktop's
    ``user-dirs.dirs`` (None: no such file)."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_PICTURES_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    if user_dirs is not None:
        (home / ".config").mkdir(parents=True)
        (home / ".config" / "user-dirs.dirs").write_text(user_dirs)


GERMAN_DESKTOP = (
    "# written by xdg-user-dirs-update\n"
    'XDG_DESKTOP_DIR="$HOME/Schreibtisch"\n'
    'XDG_PICTURES_DIR="$HOME/Bilder"\n'
)


def test_defaults_follow_the_desktops_pictures_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _desktop(monkeypatch, tmp_path, GERMAN_DESKTOP)
    s = load_settings()
    assert (s.inbox, s.library) == (
        tmp_path / "Bilder/facesortd/inbox",
        tmp_path / "Bilder/facesortd/library",
    )


def test_a_fifo_for_the_desktops_folder_list_is_passed_over_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FIFO where user-dirs.dirs goes: reading it waited for a writer, and every command with it
    (each works out the default folders, doctor and status too). It counts as no such file."""
    _desktop(monkeypatch, tmp_path, None)
    (tmp_path / ".config").mkdir()
    fifo = tmp_path / ".config" / "user-dirs.dirs"
    os.mkfifo(fifo)
    found: list[Settings] = []
    loading = threading.Thread(target=lambda: found.append(load_settings()), daemon=True)
    loading.start()
    loading.join(timeout=HUNG_S)
    if loading.is_alive():  # let the blocked read go before failing
        with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "w"):
            pass
    assert found and found[0].library == tmp_path / "Pictures/facesortd/library"


def test_defaults_take_an_absolute_pictures_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _desktop(monkeypatch, tmp_path, f'XDG_PICTURES_DIR="{tmp_path}/Images"\n')
    assert load_settings().inbox == tmp_path / "Images/facesortd/inbox"


def test_an_existing_users_folders_stay_where_they_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _desktop(monkeypatch, tmp_path, GERMAN_DESKTOP)
    (tmp_path / "Pictures/facesortd/library").mkdir(parents=True)
    s = load_settings()
    assert (s.inbox, s.library) == (
        tmp_path / "Pictures/facesortd/inbox",
        tmp_path / "Pictures/facesortd/library",
    )


@pytest.mark.parametrize(
    "user_dirs",
    [
        None,
        "",
        'XDG_PICTURES_DIR="$HOME/',
        "XDG_PICTURES_DIR=Bilder\n",
        'XDG_PICTURES_DIR="$HOME/"\n',
        "\xff",
    ],
    ids=["missing", "empty", "unclosed", "unquoted", "disabled", "binary"],
)
def test_defaults_fall_back_to_pictures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_dirs: str | None
) -> None:
    _desktop(monkeypatch, tmp_path, user_dirs)
    if user_dirs == "\xff":
        (tmp_path / ".config/user-dirs.dirs").write_bytes(b"\xff\xfe")
    assert load_settings().inbox == tmp_path / "Pictures/facesortd/inbox"


@pytest.mark.parametrize("endings", ['["png", "jpg"]', "[]", '[".png", "."]'])
def test_name_endings_that_can_match_no_file_are_refused(tmp_path: Path, endings: str) -> None:
    """`extensions = ["png"]` is compared with a file's ".png" ending: nothing was ever sorted,
    `doctor` said "all good", and `sort DIR` said "no images ... whose names end in png"."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[watch]\nextensions = {endings}\n")
    with pytest.raises(ConfigError, match=r"watch\.extensions.*\.png"):
        load_settings(cfg)


@pytest.mark.parametrize("key", ["inbox", "library", "state_dir"])
def test_an_empty_folder_setting_is_refused_not_taken_for_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    """`inbox = ""` (or an exported `FACESORTD_INBOX=`) was the folder the command ran in: the daemon
    started from ~ with another library would have sorted every picture in the home folder, and an
    empty library made ~'s folders emotion folders."""
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'{key} = ""\n')
    with pytest.raises(ConfigError, match=f"{key} = '': .*empty"):
        load_settings(cfg)
    monkeypatch.setenv(f"FACESORTD_{key.upper()}", " ")
    with pytest.raises(ConfigError, match=f"{key} = ' ': .*empty"):
        load_settings()


@pytest.mark.parametrize("value", ["Pictures/inbox", "$HOME/Pictures/inbox"])
def test_a_relative_folder_in_the_config_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """The config file is shared by the daemon (systemd starts it in ~) and every command (started
    anywhere): `inbox = "Pictures/inbox"` was another folder for `facesortd sort` run from /tmp, and
    `$HOME/…` (as user-dirs.dirs writes it) a folder named "$HOME" in the working folder."""
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'inbox = "{value}"\n')
    with pytest.raises(ConfigError, match=r"inbox = '.*': not a full path.*~/"):
        load_settings(cfg)
    assert load_settings(inbox=Path("in")).inbox == tmp_path / "in"  # an option is the user's own folder


def test_a_config_file_saved_with_a_byte_order_mark_says_so(tmp_path: Path) -> None:
    """An editor's "UTF-8 with BOM" was "not valid TOML: Invalid statement (at line 1, column 1)",
    on a first line that looks right: the person could not see what to change."""
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b"\xef\xbb\xbf[watch]\nworkers = 1\n")
    with pytest.raises(ConfigError, match=r"byte order mark.*save it as UTF-8 without"):
        load_settings(cfg)
