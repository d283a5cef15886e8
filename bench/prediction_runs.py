"""One emotion configuration's saved out-of-fold predictions (``predictions_<descriptor>.npz`` of
`bench/bench_emotion.py`), for the scripts that pair or combine runs over the same faces
(`bench/compare_predictions.py`, `bench/ensemble_predictions.py`).

Run a benchmark as ``python bench/NAME.py`` from the repository root; this module sits beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Run:
    """One configuration's out-of-fold predictions, as bench/bench_emotion.py saves them."""

    names: np.ndarray
    truth: np.ndarray
    proba: np.ndarray
    sources: np.ndarray

    @classmethod
    def load(cls, path: Path) -> Run:
        with np.load(path) as run:
            return cls(run["names"], run["truth"], run["proba"], run["sources"])

    def same_faces(self, other: Run) -> bool:
        """Did both runs score the same faces in the same order (so they can be paired)?"""
        return (
            np.array_equal(self.names, other.names)
            and np.array_equal(self.truth, other.truth)
            and np.array_equal(self.sources, other.sources)
        )

    def right(self) -> np.ndarray:
        """Per face: was the most probable label the true one?"""
        return self.proba.argmax(axis=1) == self.truth
