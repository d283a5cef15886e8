"""Small anime-like faces drawn with OpenCV, so tests need no binary fixtures and no ../shared.

Each emotion has its own mouth, eye and brow shapes, different enough that a model can really
learn them, with random jitter in position, size, lighting and line width so it must generalise.
"""

from __future__ import annotations

import cv2
import numpy as np

from facesortd.faces import FaceSpec, normalise_face

EMOTIONS = ("angry", "happy", "sad", "surprised")


def draw_face(emotion: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A ``size`` x ``size`` grayscale face filling the box convention (bangs line to chin)."""
    img = np.full((size, size), int(rng.integers(40, 90)), np.uint8)
    s = size / 100.0
    skin = int(rng.integers(200, 240))
    j = lambda v: v + rng.normal(0, 1.5)  # noqa: E731 - tiny jitter helper for coordinates
    cv2.ellipse(img, (round(50 * s), round(52 * s)), (round(44 * s), round(48 * s)), 0, 0, 360, skin, -1)
    cv2.ellipse(
        img,
        (round(50 * s), round(8 * s)),
        (round(52 * s), round(22 * s)),
        0,
        0,
        360,
        int(rng.integers(30, 80)),
        -1,
    )
    thick = max(1, round(rng.uniform(2.0, 3.0) * s))
    for side in (-1, 1):
        ex, ey = round(j(50 + side * 20) * s), round(j(48) * s)
        if emotion == "happy":
            cv2.ellipse(img, (ex, ey + round(4 * s)), (round(9 * s), round(7 * s)), 0, 180, 360, 20, thick)
        else:
            tall = 13 if emotion == "surprised" else 10
            cv2.ellipse(img, (ex, ey), (round(8 * s), round(tall * s)), 0, 0, 360, 25, -1)
            cv2.circle(img, (ex - round(3 * s), ey - round(4 * s)), max(1, round(2.5 * s)), 255, -1)
        brow_y = ey - round((17 if emotion == "surprised" else 14) * s)
        inner, outer = (ex - side * round(9 * s), ex + side * round(9 * s))
        tilt = {"angry": 6, "sad": -6}.get(emotion, 0)
        cv2.line(img, (inner, brow_y + round(tilt * s)), (outer, brow_y - round(tilt * s)), 30, thick)
    mx, my = round(j(50) * s), round(j(78) * s)
    if emotion == "happy":
        cv2.ellipse(img, (mx, my - round(4 * s)), (round(14 * s), round(10 * s)), 0, 0, 180, 30, thick)
    elif emotion == "sad":
        cv2.ellipse(img, (mx, my + round(6 * s)), (round(12 * s), round(7 * s)), 0, 180, 360, 30, thick)
    elif emotion == "surprised":
        cv2.ellipse(img, (mx, my), (round(7 * s), round(10 * s)), 0, 0, 360, 40, -1)
    else:
        cv2.line(img, (mx - round(12 * s), my), (mx + round(12 * s), my + round(2 * s)), 30, thick)
    gain, bias = rng.uniform(0.8, 1.1), rng.uniform(-15, 15)
    noisy = img.astype(np.float32) * gain + bias + rng.normal(0, 4, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def normalised_face(emotion: str, spec: FaceSpec, rng: np.random.Generator, drawn: int = 90) -> np.ndarray:
    """A face drawn ``drawn`` pixels wide, normalised as a model of ``spec`` frames one (the whole
    drawing is its box): what the models are fitted on and asked about."""
    return normalise_face(draw_face(emotion, drawn, rng), (0, 0, drawn, drawn), spec)


def draw_textures(n: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """(n, side, side) blurred noise crossed by lines: non-faces for the verifiers."""
    out = []
    for _ in range(n):
        img = cv2.GaussianBlur(
            rng.integers(0, 256, (side, side)).astype(np.uint8), (0, 0), rng.uniform(0.5, 3)
        )
        for _ in range(4):
            p, q = rng.integers(0, side, 2), rng.integers(0, side, 2)
            cv2.line(img, tuple(int(v) for v in p), tuple(int(v) for v in q), int(rng.integers(256)), 2)
        out.append(img)
    return np.stack(out)


def draw_screenshot(
    emotion: str, rng: np.random.Generator, shape: tuple[int, int] = (360, 480), face: int = 140
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A colour 'screenshot' with one face on a textured background; returns it and the face box."""
    h, w = shape
    base = rng.integers(30, 130, size=(h // 16 + 1, w // 16 + 1, 3)).astype(np.uint8)
    img = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC)
    x, y = int(rng.integers(0, w - face)), int(rng.integers(0, h - face))
    img[y : y + face, x : x + face] = cv2.cvtColor(draw_face(emotion, face, rng), cv2.COLOR_GRAY2BGR)
    return img, (x, y, face, face)


class BrightBlobDetector:
    """Test double for FaceDetector on synthetic screenshots: the face is the big bright oval.

    Returns the square box around the largest bright region, which is where draw_screenshot put
    the face; lets pipeline and CLI tests run without a trained cascade.
    """

    def __init__(self, *_args: object, **_kw: object) -> None:
        from facesortd.config import DetectionSettings

        self.settings = DetectionSettings()
        self.paths: list = []
        self.verifier_path = None

    def detect(self, gray: np.ndarray, padded: bool = False) -> list:
        from facesortd.detect import Face

        mask = (gray > 150).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
        faces = []
        for i in range(1, n):
            x, y, w, h, area = stats[i]
            if area >= 400:
                side = max(w, h)
                faces.append(
                    Face((int(x + w / 2 - side / 2), int(y + h / 2 - side / 2), int(side), int(side)), 0.9)
                )
        return faces

    def candidates(self, gray: np.ndarray, padded: bool = False) -> object:
        """What it found, as the one pass that proposed it (what `detect`, the command, looks at)."""
        from facesortd.detect import Candidates

        return Candidates(self.detect(gray), [], [], (gray, 1.0))

    def select(self, gray: np.ndarray, found: object) -> list:
        """All it proposed: the double keeps every face it finds."""
        return found.full  # type: ignore[attr-defined]


def screenshot_png(seed: int, face: bool = True, shape: tuple[int, int] = (120, 160)) -> bytes:
    """PNG bytes of a drawn screenshot with a happy face (or of plain noise: no face)."""
    rng = np.random.default_rng(seed)
    img = draw_screenshot("happy", rng, shape, 80)[0] if face else rng.integers(0, 120, (*shape, 3), np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def stored_png(seed: int, emotion: str = "happy") -> bytes:
    """A drawn screenshot as a PNG stored uncompressed: every one is as long as the others, so one
    can be put over another keeping its size."""
    img = draw_screenshot(emotion, np.random.default_rng(seed), (120, 160), 80)[0]
    return cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 0])[1].tobytes()


def stub_pipeline(settings):  # type: ignore[no-untyped-def]
    """The daemon's pipeline with the test-double detector and no model: every face is unsure."""
    from facesortd.decide import Pipeline

    return Pipeline(BrightBlobDetector(), None, settings.recognition, settings.images)  # type: ignore[arg-type]
