"""How trustworthy are the anime_expressions labels? Material for a person to judge, plus one figure.

The emotion targets (README, "Emotion model") are scored against these labels, so their noise caps
any model's score. This prints, per label, the share of crops whose border is mostly white (a
sign of a different source, e.g. visual-novel portraits, rather than of an expression), and
writes one contact sheet per label (a fixed random sample, numbered tiles) for a person to mark
each tile "clearly this emotion", "ambiguous" or "clearly another / not a face". The 2026-11-27
judgement of these sheets is in the README.

    python bench/label_audit.py [--per-label 24] [--seed 7] [--out bench/out/label_audit]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import cv2
import numpy as np
from shared_data import SHARED, require_shared

from facesortd.cli.arg_types import int_at_least
from facesortd.image_names import is_image_name
from facesortd.images import imread_file, imwrite_file

TILE = 128
COLUMNS = 6
WHITE = 235
"""Grey level above which a border pixel counts as white background."""


def white_border_share(gray: np.ndarray, width: int = 4) -> float:
    """Share of near-white pixels along the top, left and right edges (the bottom is often clothes)."""
    border = np.concatenate([gray[:width].ravel(), gray[:, :width].ravel(), gray[:, -width:].ravel()])
    return float((border > WHITE).mean())


def contact_sheet(files: list[Path]) -> np.ndarray:
    """Tiles in rows of COLUMNS, each numbered in its corner so a judgement can name it."""
    tiles = []
    for i, path in enumerate(files):
        tile = cv2.resize(imread_file(path), (TILE, TILE), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, str(i), (3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 255), 2)
        tiles.append(tile)
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % COLUMNS)
    return np.vstack([np.hstack(tiles[r : r + COLUMNS]) for r in range(0, len(tiles), COLUMNS)])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-label", type=int_at_least(1), default=24, help="tiles per contact sheet")
    parser.add_argument("--seed", type=int, default=7, help="sample seed (7: the sheets the README judges)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/label_audit"))
    args = parser.parse_args()
    if not require_shared():
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    print(f"{'label':<10} {'images':>6}  mostly-white border (> half of its pixels > {WHITE})")
    for folder in sorted(p for p in (SHARED / "anime_expressions").iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if is_image_name(p))
        shares = [white_border_share(imread_file(p, cv2.IMREAD_GRAYSCALE)) for p in files]
        print(f"{folder.name:<10} {len(files):>6}  {np.mean(np.array(shares) > 0.5):.0%}")
        sample = rng.sample(files, min(args.per_label, len(files)))
        imwrite_file(args.out / f"{folder.name}.png", contact_sheet(sample))
        names = "".join(f"{i}\t{p.name}\n" for i, p in enumerate(sample))
        (args.out / f"{folder.name}.txt").write_text(names)
    print(f"contact sheets and their file lists: {args.out}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
