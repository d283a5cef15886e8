"""Writes a Cascade in the XML that ``cv2.CascadeClassifier`` loads (BOOST stages, LBP features).

Only the features the stumps use are written, renumbered in pool order. Each stump becomes
``internalNodes`` ``0 -1 <feature> <8 x int32 subset words>`` (bit c of the subset set: code c goes
to the first leaf) and ``leafValues`` ``<left> <right>``. Floats are written with enough digits to
come back as the same float32 OpenCV computes with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facesortd.cascade_train.boost import Stump
from facesortd.cascade_train.cascade import Cascade
from facesortd.durable import atomic_writer
from facesortd.shown_names import shown


def _num(value: float) -> str:
    return repr(float(np.float32(value)))


def subset_words(subset: np.ndarray) -> list[int]:
    """The 256-bit subset as 8 signed 32-bit words, bit ``c & 31`` of word ``c >> 5`` for code c."""
    bits = np.asarray(subset, dtype=bool).reshape(8, 32).astype(np.uint64)
    words = (bits << np.arange(32, dtype=np.uint64)).sum(axis=1).astype(np.uint32)
    return [int(w) for w in words.view(np.int32)]


def _stump_xml(stump: Stump, feature: int) -> str:
    nodes = " ".join(str(v) for v in [0, -1, feature, *subset_words(stump.subset)])
    return (
        "        <_>\n"
        f"          <internalNodes>\n            {nodes}</internalNodes>\n"
        f"          <leafValues>\n            {_num(stump.left)} {_num(stump.right)}</leafValues></_>\n"
    )


def cascade_xml(cascade: Cascade, params: dict[str, float], comment: str = "") -> str:
    """The XML text; ``params`` (minHitRate, maxFalseAlarm, maxWeakCount) documents how it was trained.
    The comment (the command line) may name a path that is not UTF-8: it is :func:`shown`, which
    keeps the file UTF-8 for OpenCV's parser."""
    used = cascade.used_features()
    renumber = {int(f): i for i, f in enumerate(used)}
    width, height = cascade.window
    safe_comment = shown(comment).replace("--", "- -")  # "--" may not appear inside an XML comment
    out = ['<?xml version="1.0"?>\n']
    if safe_comment:
        out.append(f"<!--\n{safe_comment}\n-->\n")
    out.append(
        "<opencv_storage>\n<cascade>\n"
        "  <stageType>BOOST</stageType>\n  <featureType>LBP</featureType>\n"
        f"  <height>{height}</height>\n  <width>{width}</width>\n"
        "  <stageParams>\n    <boostType>GAB</boostType>\n"
        f"    <minHitRate>{params['minHitRate']!r}</minHitRate>\n"
        f"    <maxFalseAlarm>{params['maxFalseAlarm']!r}</maxFalseAlarm>\n"
        "    <weightTrimRate>1.</weightTrimRate>\n    <maxDepth>1</maxDepth>\n"
        f"    <maxWeakCount>{int(params['maxWeakCount'])}</maxWeakCount></stageParams>\n"
        "  <featureParams>\n    <maxCatCount>256</maxCatCount>\n    <featSize>1</featSize></featureParams>\n"
        f"  <stageNum>{len(cascade.stages)}</stageNum>\n  <stages>\n"
    )
    for i, stage in enumerate(cascade.stages):
        out.append(
            f"    <!-- stage {i} -->\n    <_>\n      <maxWeakCount>{len(stage.stumps)}</maxWeakCount>\n"
            f"      <stageThreshold>{_num(stage.threshold)}</stageThreshold>\n      <weakClassifiers>\n"
        )
        out.extend(_stump_xml(s, renumber[s.feature]) for s in stage.stumps)
        out.append("      </weakClassifiers></_>\n")
    out.append("  </stages>\n  <features>\n")
    for f in used:
        x, y, w, h = (int(v) for v in cascade.rects[f])
        out.append(f"    <_>\n      <rect>\n        {x} {y} {w} {h}</rect></_>\n")
    out.append("  </features>\n</cascade>\n</opencv_storage>\n")
    return "".join(out)


def write_cascade(cascade: Cascade, path: Path, params: dict[str, float], comment: str = "") -> None:
    """Whole or not at all (durable.atomic_writer), so a crash or a full disk mid-training never
    leaves a truncated XML, nor a half temp file beside it, that the detector would refuse."""
    with atomic_writer(Path(path)) as fh:
        fh.write(cascade_xml(cascade, params, comment).encode("utf-8"))
