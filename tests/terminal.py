"""A terminal for tests of what is drawn on one (progress bars, log lines over them)."""

from __future__ import annotations

import io
import re


class Terminal(io.StringIO):
    """stderr as a terminal: what is written, and the screen it leaves (``\\r`` back to the line's
    start, ESC[K clears the rest of it)."""

    def isatty(self) -> bool:
        return True

    def screen(self) -> list[str]:
        lines = [""]
        for part in re.split(r"(\r|\n|\x1b\[K)", re.sub(r"\x1b\[[0-9;]*m", "", self.getvalue())):
            if part == "\n":
                lines.append("")
            elif part in ("\r", "\x1b[K"):
                lines[-1] = "" if part == "\r" else lines[-1]
            else:
                lines[-1] += part
        return lines
