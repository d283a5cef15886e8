"""`detect`: the faces found in images, or why none was kept, printed or as JSON; drawn on request."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facesortd.annotate import draw_faces
from facesortd.cli.arg_types import folder_to_write
from facesortd.cli.common import (
    emotion_model,
    pipeline_for,
    refuse_pictures_into_facesortds,
    settings_for,
)
from facesortd.cli.inputs import expand_inputs
from facesortd.cli.stopping import say
from facesortd.decide import FaceResult
from facesortd.detect import Candidates, FaceDetector
from facesortd.durable import write_new
from facesortd.images import UnreadableImage, read_image
from facesortd.refusals import write_refused
from facesortd.shown_names import json_text, one_line


def cmd_detect(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    paths = expand_inputs(args.images, settings.watch)  # a typo is refused before any work
    pipeline = pipeline_for(settings, emotion_model(settings).model)
    if args.draw:
        refuse_pictures_into_facesortds(settings, "--draw", args.draw)
        args.draw.mkdir(parents=True, exist_ok=True)
    status = 0
    for path in paths:
        try:
            image = read_image(path, settings.images)
        except UnreadableImage as exc:
            status = 1
            if args.json:
                say(json_text({"path": str(path), "error": str(exc), "faces": []}), flush=True)
            else:
                say(f"{one_line(path)}: unreadable: {exc}")
            continue
        faces, found = pipeline.analyse(image)
        try:
            drawn = _draw(image, faces, args.draw / (path.stem + ".png")) if args.draw else None
        except OSError as exc:  # a full disk or a read-only folder was a traceback
            raise write_refused(exc, args.draw) from exc
        facts, why = ({}, "") if faces else _why_no_face(pipeline.detector, found)
        if args.json:
            found = {"path": str(path), "faces": [f.to_json() for f in faces]}
            found |= {"candidates": facts} if facts else {}
            say(json_text(found | ({"drawn": str(drawn)} if drawn else {})), flush=True)
        else:
            say(f"{one_line(path)}: {len(faces)} face(s){why}")
            for f in faces:
                emo = f"  {f.emotion} {f.confidence:.2f}" if f.emotion else ""
                say(f"  box x={f.box[0]} y={f.box[1]} w={f.box[2]} h={f.box[3]}  score {f.score:.2f}{emo}")
            if drawn:
                say(f"  drawn: {one_line(drawn)}")
    return status


def _why_no_face(detector: FaceDetector, found: Candidates) -> tuple[dict[str, object], str]:
    """What the cascade proposed (``found``) where no face was kept, as facts for ``--json`` and a
    clause for the terminal. "0 face(s)" alone left a person with an obvious face on screen
    guessing: a face the cascade never proposed and one the verifier turned down call for
    different settings."""
    scores = [f.score for f in found.full + found.close]
    best = max(scores, default=None)
    facts = {"proposed": len(scores), "best_score": None if best is None else round(best, 3)}
    if best is None:
        return facts, ": the cascade proposed no candidate"
    judge = "the verifier rejected them" if detector.verifier_path else "all scored too low"
    floor = detector.settings.min_score
    return facts, (
        f": the cascade proposed {len(scores)} candidate(s), {judge} "
        f"(best score {best:.2f}, detection.min_score {floor:.2f})"
    )


def _draw(image: np.ndarray, faces: list[FaceResult], out: Path) -> Path:
    """The image with its boxes, as a new file: OUT_DIR may be the screenshots' own folder (or
    hold a.jpg's drawing beside a.png's), and a drawing must never replace a person's file."""
    draw_faces(image, faces)
    return write_new(out, lambda fh: fh.write(cv2.imencode(".png", image)[1].tobytes()))


def add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="print the faces found in images",
        description="Print face boxes (x, y, width, height in image pixels), scores and emotions (by "
        "the model in force) on stdout, or why no face was kept; the tool for a file that landed in "
        "no-face. Moves nothing; the exit status is 1 if an image could not be read, or a drawing not "
        "written (it stops there, naming the fix).",
    )
    p.add_argument(
        "images",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="image files, or folders (the images directly inside, as sort takes them)",
    )
    p.add_argument(
        "--draw",
        type=folder_to_write,
        metavar="OUT_DIR",
        help="also write each image with its boxes drawn into OUT_DIR (made if missing) as <name>.png (a "
        "new file: a name taken there becomes 'name (1).png', none is ever replaced); not in the inbox or "
        "library, where facesortd would take the drawings for your screenshots",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object per image, one per line")
    p.set_defaults(func=cmd_detect)
