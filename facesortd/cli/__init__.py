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


def main(argv: list[str] | None = None) -> int:
    """The command line; what it does is :func:`facesortd.cli.app.main`'s. Its imports (OpenCV,
    numpy, every command's modules) take the first second of every command, and a Ctrl-C then
    ended in a traceback, outside the interrupt handling of ``app.main``: they are made here."""
    try:
        from facesortd.cli.app import main as run
    except KeyboardInterrupt:
        print("facesortd: interrupted", file=sys.stderr)
        return 130
    return run(argv)


__all__ = ["main"]
