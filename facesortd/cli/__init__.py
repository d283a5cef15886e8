"""The `facesortd` command line: parsing, error mapping and presentation only; the modules it calls
do the work.

One module per command group: `sort` (with `sort_report`, what it says; the batch it runs is
`facesortd.sort_batch`), `detect`, `undo`, `run`, `status`, `install_service`, `doctor`, `train`,
`evaluate` (eval), `models` (model), `retrain`, `labels` (import-labels, review), `configuration`
(config); `model_figures`
holds what `train` and `eval` show of a model. `inputs` holds the files `sort` and `detect` are named,
`stopping` Ctrl-C and SIGTERM noted between files, `dataset_args` the DATASET options three groups
share, `common` the settings, detector and pipeline every group uses, and `app` the parser and
`main`, which turns a user's mistake into a one-line message.
"""

import sys

from facesortd import start_signals


def main(argv: list[str] | None = None) -> int:
    """The command line; what it does is :func:`facesortd.cli.app.main`'s. Its imports (OpenCV,
    numpy, every command's modules) take the first second of every command, and a Ctrl-C then
    ended in a traceback, outside the interrupt handling of ``app.main``: they are made here, the
    daemon's signals held meanwhile (``start_signals``; given back by ``app.main`` to every other
    command, and here to any command that ends before)."""
    start_signals.hold()
    try:
        try:
            from facesortd.cli.app import main as run
        except KeyboardInterrupt:
            from facesortd.progress import written  # stderr's terminal gone: no traceback either

            written(sys.stderr, "facesortd: interrupted\n")
            return 130
        return run(argv)
    finally:
        start_signals.give_back()


__all__ = ["main"]
