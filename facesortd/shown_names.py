"""How a file name that is not UTF-8 reaches a person or a script: on a stream, and in JSON.

Python keeps such a name's stray bytes as lone surrogates (surrogateescape). A UTF-8 terminal's
stream refuses them with a traceback, and JSON carries them as ``\\udcNN`` escapes, which strict
readers refuse and others turn into U+FFFD, losing the name. Both show each byte as ``\\xNN``; JSON
also keeps the exact bytes, so a script can still open the file. Not in ``cli/``: text facesortd
keeps or writes (source groups, a cascade's comment) shows such a name the same one way.

A name may also hold a line break, a tab or a terminal escape, all valid UTF-8: written as it is, it
split a line of output into lines that read as other files. Line output (:func:`one_line`, and
every log line) shows each such character as ``\\xNN`` (below ``\\x80``) or ``\\uNNNN`` too; JSON
escapes them itself and keeps the name exact.

A line so written reads back one way: ``\\\\`` is one backslash, ``\\xNN`` a control
character (below ``\\x80``) or a stray byte (``\\x80`` and up), ``\\uNNNN`` a character, and
any other backslash itself. So a backslash of the name that such a reading would take for the start
of an escape (one before ``xNN``, ``uNNNN``, another backslash or a character shown escaped) is
doubled: until 2026-12-02 the name holding the text ``\\x0a`` showed as the one holding a line
break. Every other backslash (``a\\b.png``) is shown as it is.
"""

from __future__ import annotations

import base64
import codecs
import json
import re
from typing import Any

NAME_BYTES = "facesortd-name-bytes"
"""The error handler every output stream of `facesortd` encodes with (registered below)."""


def _name_bytes(exc: UnicodeError) -> tuple[str, int]:
    """Each stray byte as ``\\xNN``, anything else the stream cannot show as ``\\uNNNN``."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start : exc.end]
    shown = (f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else f"\\u{ord(c):04x}" for c in text)
    return "".join(shown), exc.end


codecs.register_error(NAME_BYTES, _name_bytes)


def shown(text: str) -> str:
    """``text`` as valid Unicode, stray bytes as ``\\xNN``: what the terminal shows."""
    return text.encode("utf-8", NAME_BYTES).decode("utf-8")


ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
"""Characters of no width: a name holding one (pasted) prints like the plain name, so one shown
as it is passed for another folder in every line that names it."""
_CONTROLS = rf"\x00-\x1f\x7f-\x9f\u2028\u2029{ZERO_WIDTH}"
_CONTROL = re.compile(f"[{_CONTROLS}]")
"""What breaks a line, acts on a terminal or does not show: C0 and C1 controls, DEL, the Unicode
line and paragraph separators, the characters of no width."""
_READ_AS_ESCAPE = re.compile(rf"\\(?=[\\\ud800-\udfff{_CONTROLS}]|x[0-9a-fA-F]{{2}}|u[0-9a-fA-F]{{4}})")
"""A backslash that, shown as it is, would read as the start of an escape: one before another
backslash, a stray byte or a control character (each shown from a backslash), ``xNN`` or ``uNNNN``."""


def one_line(text: object) -> str:
    """``text`` (a name, or a line holding names) as one line of valid text: stray bytes as
    :func:`shown` shows them, a control or zero-width character as ``\\xNN`` (C0, DEL) or ``\\uNNNN`` (C1 and
    beyond, so that ``\\x80`` and up is always a stray byte), and a backslash that would read as an
    escape doubled. Not for text already shown: its escapes would be shown as text."""
    return _CONTROL.sub(_escaped, shown(_READ_AS_ESCAPE.sub(r"\\\\", str(text))))


def _escaped(found: re.Match[str]) -> str:
    code = ord(found[0])
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def json_text(data: Any, **options: Any) -> str:
    """``json.dumps(data)`` where every string is valid Unicode: one that held stray bytes is
    :func:`shown`, and an object member so changed gets a ``<member>_bytes_b64`` beside it with the
    exact bytes (``os.fsdecode(base64.b64decode(...))`` is the name again). Members only: a string
    in a list has no name to pair with, and is only shown."""
    return json.dumps(_valid(data), **options)


def exact(data: dict[str, Any], member: str) -> Any:
    """``data[member]`` as it was before :func:`json_text` wrote ``data``: a name it showed is made
    again from its exact bytes (facesortd reading its own JSON back compares names)."""
    raw = data.get(f"{member}_bytes_b64")
    return data[member] if raw is None else base64.b64decode(raw).decode("utf-8", "surrogateescape")


def _valid(value: Any) -> Any:
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, list | tuple):
        return [_valid(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = shown(str(key))
        out[name] = _valid(item)
        if isinstance(item, str) and out[name] != item:
            raw = item.encode("utf-8", "surrogateescape")
            out[f"{name}_bytes_b64"] = base64.b64encode(raw).decode("ascii")
    return out
