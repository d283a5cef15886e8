"""The `facesortd` command line: parsing, error mapping and presentation only; the modules it calls
do the work.

One module per command group: `sorting` (sort, detect, undo), `daemon` (run, status, install-service,
doctor), `models` (train, eval, model, retrain), `labels` (import-labels, review); `dataset_args` holds
the DATASET options three of them share, `common` the settings and detector every group uses, and
`app` the parser and `main`, which turns a user's mistake into a one-line message.
"""

from facesortd.cli.app import main

__all__ = ["main"]
