"""Is configuration B really better than A? A paired count on the same faces, per data source.

Two balanced accuracies on 51 seed faces can differ by 0.10 by chance alone. Pairing asks a sharper
question: of the faces only one of the two gets right, does one side win more often than a coin
would? (Two-sided exact sign test.) Both files come from `bench/bench_emotion.py` runs over the same
faces in the same order (same data and framing of the face list; `--margin` and the descriptor may
differ, since they change the crops, not which faces are listed).

    python bench/compare_predictions.py A/predictions_hog+lbp.npz B/predictions_hog+lbp.npz
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction
from math import comb
from pathlib import Path

import numpy as np
from prediction_runs import Run


def sign_test(wins_a: int, wins_b: int) -> float:
    """Two-sided exact p-value that the discordant faces split this unevenly by chance."""
    n = wins_a + wins_b
    tail = Fraction(sum(comb(n, k) for k in range(min(wins_a, wins_b) + 1)), 2**n)  # exact: n may be 1000s
    return min(1.0, float(2 * tail))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", type=Path, help="predictions file of configuration A")
    parser.add_argument("b", type=Path, help="predictions file of configuration B")
    args = parser.parse_args()
    run_a, run_b = Run.load(args.a), Run.load(args.b)
    if not run_a.same_faces(run_b):
        print("the two runs did not score the same faces in the same order", file=sys.stderr)
        return 2
    right_a, right_b, sources = run_a.right(), run_b.right(), run_a.sources
    print(f"{'source':<18} {'faces':>6} {'A right':>8} {'B right':>8} {'only A':>7} {'only B':>7} {'p':>6}")
    for source in [*sorted(set(sources)), "all"]:
        sel = np.ones(len(sources), bool) if source == "all" else sources == source
        a, b = right_a[sel], right_b[sel]
        only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
        print(
            f"{source:<18} {sel.sum():>6} {a.sum():>8} {b.sum():>8} {only_a:>7} {only_b:>7} "
            f"{sign_test(only_a, only_b):>6.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
