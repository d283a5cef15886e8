"""The layout keeps training out of the way of a screenshot: sorting one never loads training code."""

from __future__ import annotations

import subprocess
import sys

SORT_PATH = ("sorter", "decide", "detect", "verify", "model_store", "placement", "library", "watch", "undo")
"""What reads, detects, predicts, decides and moves a file (``facesortd sort`` and the daemon's workers)."""
TRAINING = ("facesortd.learn", "facesortd.cascade_train")
"""What makes or judges a model: the retrain the daemon runs imports it, a file being sorted never."""


def test_sorting_a_file_imports_no_training_code() -> None:
    code = (
        f"import sys; import {', '.join('facesortd.' + m for m in SORT_PATH)}; "
        f"print(sorted(m for m in sys.modules if m.startswith({TRAINING!r})))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
