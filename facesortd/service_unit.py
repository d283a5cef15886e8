"""The systemd user unit: its text for this very facesortd, where it is installed, whether facesortd
wrote it as it is, and its writing (`install-service` installs it, `doctor` checks what it runs)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from pathlib import Path

from facesortd.config import config_home, config_option, is_setting_variable
from facesortd.durable import atomic_writer, write_new
from facesortd.package_data import README, SERVICE_TEMPLATE, data_file, package_file


def own_command() -> list[str]:
    """The command that starts this very facesortd, for the unit: the script installed beside the
    interpreter running now (a virtual environment's or pipx's ``bin/``). A `facesortd` found on
    PATH may be another installation (or none: a virtual environment is rarely on systemd's PATH),
    and the unit must run the one the user installed it with."""
    script = Path(sys.executable).parent / "facesortd"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "facesortd"]


def unit_word(word: str, *, argument: bool = False) -> str:
    """``word`` as one word of a unit file's value, as systemd reads it back: a ``%`` doubled (a
    specifier otherwise: a path or ``file:`` URI holding one was refused), and quoted where it holds
    a space, a quote, a backslash or a control character (a folder such as "My Apps" split ExecStart;
    a line break, escaped, ended the line). A ``$`` is doubled
    in an ``argument`` of ExecStart, where systemd expands ``${NAME}`` (a --config path in a folder
    "${USER}s stuff" was read as "rootstuff"); it stays in the command's path, which systemd runs
    unexpanded, and a URI never holds one."""
    word = word.replace("%", "%%")
    if argument:
        word = word.replace("$", "$$")
    if any(c.isspace() or not c.isprintable() or c in "\\\"'" for c in word):
        quoted = word.replace("\\", "\\\\").replace('"', '\\"')
        # A line break (any control character) as a C escape, which systemd reads back in a quoted
        # word: written as it is, it ended the line, and the rest of the path was a unit line of its own.
        return '"' + "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in quoted) + '"'
    return word


def unit_text(config: Path | None = None, environment: Sequence[str] = ()) -> str:
    """The unit for this facesortd: it runs this very command, with the ``--config`` it was given
    (without it the service read the default config, another inbox than the one the person tried),
    and its ``Documentation=`` is the README installed with it (a ``file:`` URI, as systemd.unit(5)
    allows, that every installed copy has; a web address we do not own was not). ``environment``:
    the FACESORTD_* assignments of the unit it replaces (:func:`facesortd_environment`), a line each."""
    command = own_command() + config_option(config)
    fill = {
        "{exec_start}": " ".join(unit_word(w, argument=i > 0) for i, w in enumerate(command)),
        "{documentation}": unit_word(package_file(README).absolute().as_uri()),
        "{environment}\n": "".join(f"Environment={word}\n" for word in environment),
    }
    text = data_file(SERVICE_TEMPLATE).read_text(encoding="utf-8")
    for field, value in fill.items():
        text = text.replace(field, value)
    return _signed(text)


def _service_values(unit: str, setting: str) -> list[str]:
    """The values of ``unit``'s [Service] lines that set ``setting``, in order, as written."""
    values = []
    section = ""
    for line in re.sub(r"\\\n", " ", unit).splitlines():  # a line ending in a backslash goes on
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith(("#", ";")):
            key, value = (part.strip() for part in line.split("=", 1))
            if key == setting:
                values.append(value)
    return values


def _environment(unit: str) -> list[str]:
    """The assignments the ``Environment=`` lines of ``unit``'s [Service] make, each word as written
    (its quotes, escapes and %-specifiers, which systemd reads back alike). An empty
    ``Environment=`` drops those before it, and a line systemd cannot split is ignored, as systemd
    does."""
    found: list[str] = []
    for value in _service_values(unit, "Environment"):
        if not _WORD.sub("", value).strip():
            words = _WORD.findall(value)
            found = [*found, *words] if words else []
    return found


def environment_files(unit: str) -> list[str]:
    """The files ``unit``'s ``EnvironmentFile=`` lines read variables from, as written (an empty one
    drops those before it, as systemd reads it). Not carried into a new unit: such a file may set
    any variable (a ``PYTHONPATH`` of an older installation too), which :func:`other_environment`
    leaves out for a reason, and what it sets may change after `install-service` checked the
    folders the daemon will use. Said instead, with the copy that keeps it."""
    found: list[str] = []
    for value in _service_values(unit, "EnvironmentFile"):
        found = [*found, value] if value else []
    return found


def facesortd_environment(unit: str) -> list[str]:
    """The FACESORTD_* assignments of ``unit``: the folders or settings a person gave the daemon in
    the unit, which `install-service` writing the unit anew lost (the daemon went on with the
    config's inbox and library, and its advice too)."""
    return [word for word in _environment(unit) if _ours(word)]


def other_environment(unit: str) -> list[str]:
    """The other assignments of ``unit``, which a new unit does not carry: a variable of another
    program, or one an older installation needed (``PYTHONPATH``), would run the new one otherwise
    than installed."""
    return [word for word in _environment(unit) if not _ours(word)]


@contextlib.contextmanager
def unit_environment(words: Sequence[str]) -> Iterator[None]:
    """The FACESORTD_* variables of this process replaced by those ``words`` (the unit's assignments
    as written, :func:`facesortd_environment`) set, as systemd reads them, while settings are read:
    the daemon's settings are the config's and its unit's, not those of the terminal `install-service`
    runs in (a terminal's FACESORTD_LIBRARY was checked, and a carried one not at all)."""
    ours = [name for name in os.environ if is_setting_variable(name)]
    saved = {name: os.environ.pop(name) for name in ours}
    for word in words:
        name, _, value = _as_read(word).partition("=")
        os.environ[name] = value
    try:
        yield
    finally:
        for word in words:
            os.environ.pop(_as_read(word).partition("=")[0], None)
        os.environ.update(saved)


def _as_read(word: str) -> str:
    """A word of an ``Environment=`` line as systemd reads it: quotes taken away, backslash escapes
    and the ``%%`` and ``%h`` (home) specifiers undone; another specifier stays as written."""
    out, quote, i = [], "", 0
    while i < len(word):
        c = word[i]
        if c == "\\" and i + 1 < len(word):
            nxt = word[i + 1]
            if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", word[i + 2 : i + 4]):
                out.append(chr(int(word[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        if c in "\"'" and quote in ("", c):
            quote = "" if quote else c
        elif c == "%" and word[i + 1 : i + 2] in ("%", "h"):
            out.append("%" if word[i + 1] == "%" else str(Path.home()))
            i += 1
        else:
            out.append(c)
        i += 1
    return "".join(out)


_WORD = re.compile(r"""(?:[^\s"'\\]|\\.|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')+""")
"""A space-separated word of a unit's value as written, quotes (anywhere in it) and backslash escapes
kept: systemd's own split, without its unquoting."""


def _ours(word: str) -> bool:
    """Whether the assignment ``word`` sets a FACESORTD_* variable (read whatever its case, as the
    settings read them)."""
    name = word.split("=", 1)[0].replace('"', "").replace("'", "")
    return is_setting_variable(name)


UNIT_SUM = "# Written by `facesortd install-service`, which keeps an edited copy; sha256 of the lines above: "


def _signed(text: str) -> str:
    return f"{text}{UNIT_SUM}{hashlib.sha256(text.encode()).hexdigest()}\n"


def written_as_is(unit: bytes) -> bool:
    """Whether ``unit`` is as `install-service` wrote it (for this facesortd or another): its last
    line sums the lines above. Anything else (edited by hand, written by an older facesortd without
    that line, or by the person) is not replaced without a copy."""
    text = unit.decode(errors="replace")
    return UNIT_SUM in text and text == _signed(text[: text.rindex(UNIT_SUM)])


def unit_file() -> Path:
    """Where `install-service` writes the unit: systemd's folder for a user's own units."""
    return config_home().parent / "systemd" / "user" / "facesortd.service"


def masked(unit: Path) -> bool:
    """Whether ``unit`` is masked (`systemctl --user mask` makes it a link to /dev/null)."""
    return os.path.realpath(unit) == os.devnull


def no_systemctl() -> bool:
    """Whether this system lacks systemctl (runs no systemd): advice to run it fails there."""
    return shutil.which("systemctl") is None


class Installed(Enum):
    """What :func:`install` found where the unit goes: the person's next step differs with it."""

    SAME = "the very unit was there: nothing written"
    NEW = "no unit was there"
    REPLACED = "another unit was there, which a running service still runs"


def install(unit: Path, text: str, kept: Callable[[Path], None]) -> Installed:
    """``text`` written as ``unit``, whole or not at all (a full disk must not leave systemd half a
    unit: the unit before stays until the new one is written). A unit there that facesortd did not
    write as it is (:func:`written_as_is`) is first copied beside it (``<name>.bak``, never replacing
    an older copy), and ``kept`` is given the copy's name at once, so the person hears of it even when
    the write then fails. An OSError is left to the caller, which says what to do about it."""
    old = unit.read_bytes() if unit.is_file() else None
    if old == text.encode():
        return Installed.SAME
    if old is not None and not written_as_is(old):
        kept(write_new(unit.with_name(unit.name + ".bak"), lambda fh: fh.write(old), stat_from=unit))
    with atomic_writer(unit) as fh:
        fh.write(text.encode())
    return Installed.NEW if old is None else Installed.REPLACED
