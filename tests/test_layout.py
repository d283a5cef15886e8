"""The layout keeps training out of the way of a screenshot (sorting one never loads training code),
and what the benchmarks share in modules, not in other scripts."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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


def test_no_bench_script_imports_another_script() -> None:
    """A script's helpers change with its experiments, and importing it drags in everything it
    needs: what two scripts share lives in a module that is not a script (`bench/shared_data.py`,
    `bench/emotion_report.py`, `bench/prediction_runs.py`, ...)."""
    bench = Path(__file__).resolve().parents[1] / "bench"
    trees = {path.stem: ast.parse(path.read_text()) for path in bench.glob("*.py")}
    scripts = {name for name, tree in trees.items() if "__main__" in ast.unparse(tree)}
    imports = {
        (name, node.module if isinstance(node, ast.ImportFrom) else alias.name)
        for name, tree in trees.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert scripts and sorted((who, what) for who, what in imports if what in scripts) == []


def test_opencv_opens_no_file_by_name() -> None:
    """OpenCV handed a name that is not UTF-8 kills the process (SIGSEGV): files are read and
    written by Python (`images.imread_file`, `imwrite_file`, `read_image`, `detect.load_cascade`).
    The one exception checks the name first (`detect._cascade_from`)."""
    root = Path(__file__).resolve().parents[1]
    calls = sorted(
        f"{path.relative_to(root)}:{node.lineno}"
        for path in [*root.glob("facesortd/**/*.py"), *root.glob("bench/*.py")]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and node.args
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("imread", "imwrite", "CascadeClassifier")
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "cv2"
    )
    assert [c.split(":")[0] for c in calls] == ["facesortd/detect.py"], calls


def test_the_systemd_folder_shows_the_one_unit_template() -> None:
    """The design's top-level ``systemd/`` holds a link to the package's unit template, not a copy:
    two copies of the unit drifted apart once (issue #18)."""
    from facesortd.package_data import SERVICE_TEMPLATE, data_file

    shown = Path(__file__).resolve().parents[1] / "systemd" / SERVICE_TEMPLATE
    assert shown.is_symlink() and shown.resolve() == data_file(SERVICE_TEMPLATE).resolve()
