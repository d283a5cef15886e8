"""``facesortd status``: is the daemon running, what has it done, what went wrong lately."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from facesortd.config import Settings
from facesortd.journal import Journal
from facesortd.metrics import headline
from facesortd.model_store import last_retrain, load_model_in_force, model_in_force
from facesortd.review import label_summary
from facesortd.service import STATUS_FILE


def daemon_state(settings: Settings) -> dict[str, object] | None:
    """The running daemon's last published status, or None if no daemon runs for this state folder."""
    path = settings.state_dir / STATUS_FILE
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
        os.kill(int(status["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return status if time.time() - float(status.get("updated", 0)) < 30 else None


def report(settings: Settings) -> str:
    """The status text: daemon, model, counts today and in total, last errors."""
    lines = []
    state = daemon_state(settings)
    if state:
        lines.append(f"daemon: running (pid {state['pid']}), queue {state['queue']}, model {state['model']}")
    else:
        lines.append(
            "daemon: not running (start it with `facesortd run` or `systemctl --user start facesortd`)"
        )
    lines.append(f"model in force: {model_in_force(settings) or 'none (every face is unsure)'}")
    model = load_model_in_force(settings)
    if model:
        info = model.info
        lines.append(
            f"  {info.get('created', '?')}; held out: {headline(info.get('held_out')) or 'no figures'}"
        )
        if retrained := last_retrain(settings):
            lines.append(f"  last retrain {retrained[0]}: {retrained[1]}")
        lines.append("  (`facesortd model` lists every version; `facesortd model rollback` goes back one)")
    if not (settings.state_dir / "journal.sqlite").exists():
        lines.append("nothing sorted yet")
        return "\n".join(lines)
    journal = Journal.for_state_dir(settings.state_dir)
    try:
        midnight = time.mktime((*time.localtime()[:3], 0, 0, 0, 0, 0, -1))
        for title, since in (("today", midnight), ("in total", 0.0)):
            counts = journal.counts(since)
            body = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing"
            lines.append(f"{title}: {sum(counts.values())} file(s): {body}")
        counts, unusable, imported = label_summary(journal)
        if counts or unusable:
            body = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            lines.append(
                f"labels for training: {sum(counts.values())} ({body})"
                + (f"; {imported} of them imported (import-labels)" if imported else "")
                + (f"; {unusable} without a usable face, not used" if unusable else "")
            )
            known = set(model.labels) if model else set()
            for label, n in sorted(counts.items()):
                if label not in known and n < settings.learning.min_per_class:
                    lines.append(
                        f"  {label}: waiting for {settings.learning.min_per_class - n} more example(s)"
                    )
        errors = journal.last_errors()
        if errors:
            lines.append("last errors:")
            for at, path, message in errors:
                lines.append(
                    f"  {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(at))} {Path(path).name}: {message}"
                )
    finally:
        journal.close()
    return "\n".join(lines)
