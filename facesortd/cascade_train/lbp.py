"""Multi-block LBP features over integral images, computed exactly as OpenCV's cascade evaluates them.

A feature is one cell rectangle (x, y, w, h) in window coordinates; its 3x3 grid of cells spans
3w x 3h. Its code is 8 bits, one per outer cell, set when that cell's pixel sum is >= the centre
cell's sum; bit order (MSB first) runs clockwise from the top-left cell, as in cascadedetect.hpp.
The trainer, the evaluator and OpenCV must agree bit for bit, so this is the one place it is defined.
"""

from __future__ import annotations

import numpy as np

# (row, column) of the 3x3 cell that sets bits 7..0: clockwise from the top-left cell.
_BIT_CELLS = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))


def all_rects(window: tuple[int, int]) -> np.ndarray:
    """Every cell rectangle whose 3x3 grid fits the (width, height) window, as int32 rows x, y, w, h."""
    win_w, win_h = window
    rows = [
        (x, y, w, h)
        for w in range(1, win_w // 3 + 1)
        for h in range(1, win_h // 3 + 1)
        for y in range(win_h - 3 * h + 1)
        for x in range(win_w - 3 * w + 1)
    ]
    return np.array(rows, dtype=np.int32).reshape(-1, 4)


def integral_images(patches: np.ndarray) -> np.ndarray:
    """(N, H+1, W+1) int32 integral images of (N, H, W) uint8 patches, zero first row and column."""
    n, h, w = patches.shape
    ii = np.zeros((n, h + 1, w + 1), dtype=np.int32)
    np.cumsum(np.cumsum(patches, axis=1, dtype=np.int32), axis=2, out=ii[:, 1:, 1:])
    return ii


def lbp_codes(ii: np.ndarray, rects: np.ndarray) -> np.ndarray:
    """(N, F) uint8 codes of F features on N integral images.

    Features sharing a cell size are computed together, so the cost is a few dozen vectorised
    gathers instead of one Python step per feature.
    """
    n = ii.shape[0]
    codes = np.empty((n, len(rects)), dtype=np.uint8)
    sizes = rects[:, 2:4]
    for w, h in np.unique(sizes, axis=0):
        idx = np.flatnonzero((sizes[:, 0] == w) & (sizes[:, 1] == h))
        xs = rects[idx, 0][:, None] + w * np.arange(4)  # (k, 4) grid corner columns
        ys = rects[idx, 1][:, None] + h * np.arange(4)  # (k, 4) grid corner rows
        corners = ii[:, ys[:, :, None], xs[:, None, :]]  # (N, k, 4, 4)
        cells = (
            corners[:, :, 1:, 1:] - corners[:, :, :-1, 1:] - corners[:, :, 1:, :-1] + corners[:, :, :-1, :-1]
        )
        centre = cells[:, :, 1, 1]
        code = np.zeros(centre.shape, dtype=np.uint8)
        for bit, (r, c) in zip(range(7, -1, -1), _BIT_CELLS, strict=True):
            code |= (cells[:, :, r, c] >= centre).astype(np.uint8) << bit
        codes[:, idx] = code
    return codes
