"""Gentle AdaBoost of depth-1 categorical trees over LBP codes: one boosted stage of the cascade.

A weak tree sends an LBP code to its left leaf when the code is in its 256-bit subset, else to
its right leaf (OpenCV's rule). Gentle AdaBoost fits each tree by weighted least squares to the
labels (+1 face, -1 non-face); for two leaves over categories, the best subset is a prefix of the
codes sorted by their weighted mean label (Breiman's ordering), so every split is found exactly
by one sort and a cumulative sum per feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

THRESHOLD_EPS = 1e-5
"""OpenCV lowers every stage threshold by this when it loads a cascade; the evaluator does too."""


def effective_threshold(threshold: float) -> float:
    """The threshold OpenCV compares stage sums with: the stored float32 minus EPS, kept as a float32."""
    return float(np.float32(np.float32(threshold) - THRESHOLD_EPS))


_HIST_CHUNK = 512


@dataclass(frozen=True)
class Stump:
    """One weak tree: feature index, the 256 codes that go left, and the two leaf values."""

    feature: int
    subset: np.ndarray  # (256,) bool: codes sent to the left leaf
    left: np.float32
    right: np.float32

    def predict(self, codes: np.ndarray) -> np.ndarray:
        """Leaf values (float32) for the (N, F) code matrix."""
        return np.where(self.subset[codes[:, self.feature]], self.left, self.right)


@dataclass
class Stage:
    """A boosted stage: the window passes when the sum of its trees is >= threshold (minus EPS)."""

    stumps: list[Stump] = field(default_factory=list)
    threshold: float = 0.0  # a float32 value: what the XML stores and OpenCV compares with

    def sums(self, codes: np.ndarray) -> np.ndarray:
        """Stage sums accumulated as OpenCV does (float32 leaves into a double)."""
        total = np.zeros(len(codes), dtype=np.float64)
        for stump in self.stumps:
            total += stump.predict(codes)
        return total

    def passes(self, codes: np.ndarray) -> np.ndarray:
        return self.sums(codes) >= effective_threshold(self.threshold)


@dataclass(frozen=True)
class StageReport:
    """What one stage achieved on its training samples (shown as training progress)."""

    trees: int
    hit_rate: float
    false_alarm: float


def _category_sums(codes_t: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(F, 256) sums of ``values`` per feature and code; ``codes_t`` is (F, N) so chunks are contiguous."""
    n_feat = codes_t.shape[0]
    out = np.empty((n_feat, 256), dtype=np.float64)
    for start in range(0, n_feat, _HIST_CHUNK):
        block = codes_t[start : start + _HIST_CHUNK]
        k = len(block)
        flat = (block.astype(np.intp) + (256 * np.arange(k))[:, None]).ravel()
        out[start : start + k] = np.bincount(flat, weights=np.tile(values, k), minlength=256 * k).reshape(
            k, 256
        )
    return out


def best_stump(codes_t: np.ndarray, y: np.ndarray, weights: np.ndarray) -> Stump:
    """The weighted-least-squares best categorical stump over all features."""
    sw = _category_sums(codes_t, weights)
    swy = _category_sums(codes_t, weights * y)
    mean = np.divide(swy, sw, out=np.zeros_like(sw), where=sw > 0)
    order = np.argsort(mean, axis=1, kind="stable")
    cw = np.cumsum(np.take_along_axis(sw, order, axis=1), axis=1)[:, :-1]
    cwy = np.cumsum(np.take_along_axis(swy, order, axis=1), axis=1)[:, :-1]
    tw, twy = sw.sum(axis=1, keepdims=True), swy.sum(axis=1, keepdims=True)
    rw, rwy = tw - cw, twy - cwy
    # Least-squares error = const - gain; gain of a split is sum over leaves of (sum wy)^2 / sum w.
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(cw > 0, cwy**2 / cw, 0.0) + np.where(rw > 0, rwy**2 / rw, 0.0)
    f, cut = np.unravel_index(int(np.argmax(gain)), gain.shape)
    left_codes = order[f, : cut + 1]
    subset = np.zeros(256, dtype=bool)
    subset[left_codes] = True
    left = cwy[f, cut] / cw[f, cut] if cw[f, cut] > 0 else 0.0
    right = rwy[f, cut] / rw[f, cut] if rw[f, cut] > 0 else 0.0
    return Stump(int(f), subset, np.float32(left), np.float32(right))


def train_stage(
    pos_codes: np.ndarray,
    neg_codes: np.ndarray,
    min_hit_rate: float,
    max_false_alarm: float,
    max_trees: int,
) -> tuple[Stage, StageReport]:
    """Add trees until the stage keeps ``min_hit_rate`` of the positives and passes at most
    ``max_false_alarm`` of the negatives (or ``max_trees`` is reached).

    The threshold is placed just below the positive sum that keeps ``min_hit_rate``; it is stored as
    float32, exactly what the XML carries, so the trainer's view of the stage is OpenCV's.
    """
    codes = np.concatenate([pos_codes, neg_codes])
    codes_t = np.ascontiguousarray(codes.T)
    y = np.concatenate([np.ones(len(pos_codes)), -np.ones(len(neg_codes))])
    weights = np.concatenate(
        [np.full(len(pos_codes), 0.5 / len(pos_codes)), np.full(len(neg_codes), 0.5 / len(neg_codes))]
    )
    stage = Stage()
    sums = np.zeros(len(codes), dtype=np.float64)
    n_pos = len(pos_codes)
    keep = min(n_pos - 1, int(np.floor((1.0 - min_hit_rate) * n_pos)))
    while True:
        stump = best_stump(codes_t, y, weights)
        stage.stumps.append(stump)
        out = stump.predict(codes)
        sums += out
        weights *= np.exp(-y * out)
        weights /= weights.sum()
        stage.threshold = float(np.float32(np.sort(sums[:n_pos])[keep]))
        passed = sums >= effective_threshold(stage.threshold)
        hit, fa = float(passed[:n_pos].mean()), float(passed[n_pos:].mean())
        if fa <= max_false_alarm or len(stage.stumps) >= max_trees:
            return stage, StageReport(len(stage.stumps), hit, fa)
