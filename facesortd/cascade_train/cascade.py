"""The trained cascade as the trainer sees it: stages over a pool of LBP features, and its evaluator.

The evaluator applies OpenCV's rules (stage sum >= threshold - EPS, stages in order) so that the
trainer's accept/reject of a window is OpenCV's; the test suite checks that they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facesortd.cascade_train.boost import Stage
from facesortd.cascade_train.lbp import integral_images, lbp_codes


@dataclass
class Cascade:
    """Window size (width, height), the feature pool (F, 4) the stumps index into, and the stages."""

    window: tuple[int, int]
    rects: np.ndarray
    stages: list[Stage] = field(default_factory=list)

    def used_features(self) -> np.ndarray:
        """Sorted pool indices of the features some stump uses (the only ones written to XML)."""
        return np.unique([s.feature for stage in self.stages for s in stage.stumps]).astype(np.int64)

    def passes(self, codes: np.ndarray) -> np.ndarray:
        """(N,) bool: windows, given as (N, F) pool codes, that pass every stage."""
        alive = np.ones(len(codes), dtype=bool)
        for stage in self.stages:
            idx = np.flatnonzero(alive)
            if not len(idx):
                break
            alive[idx] = stage.passes(codes[idx])
        return alive

    def accepts(self, patches: np.ndarray) -> np.ndarray:
        """(N,) bool for (N, height, width) uint8 windows."""
        return self.accepts_integral(integral_images(patches))

    def accepts_integral(self, ii: np.ndarray) -> np.ndarray:
        """(N,) bool for windows given as integral images; computes only the features in use."""
        used = self.used_features()
        codes = np.zeros((len(ii), len(self.rects)), dtype=np.uint8)
        if len(used):
            codes[:, used] = lbp_codes(ii, self.rects[used])
        return self.passes(codes)
