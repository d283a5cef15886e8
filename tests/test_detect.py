"""Detection plumbing: cascade loading errors, downscaling, verifier re-scoring, NMS."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from facesortd import detect, region_scan
from facesortd.config import DetectionSettings
from facesortd.detect import DetectorError, Face, FaceDetector, non_max_suppression


def test_missing_or_broken_cascade_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="does not exist"):
        FaceDetector(DetectionSettings(), [tmp_path / "none.xml"])
    (tmp_path / "bad.xml").write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(DetectorError, match="not an OpenCV cascade"):
        FaceDetector(DetectionSettings(), [tmp_path / "bad.xml"])


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    faces = [Face((0, 0, 100, 100), 0.6), Face((5, 5, 100, 100), 0.9), Face((300, 0, 50, 50), 0.5)]
    kept = non_max_suppression(faces, 0.3)
    assert [f.score for f in kept] == [0.9, 0.5]
    inner = [Face((0, 0, 200, 200), 0.9), Face((50, 50, 60, 60), 0.8)]  # small box inside a big one
    assert non_max_suppression(inner, 0.3) == [inner[0]]


class _Cascade:
    """Stands in for cv2.CascadeClassifier: reports two boxes in the (downscaled) image it gets."""

    def __init__(self) -> None:
        self.seen: tuple[int, ...] = ()
        self.min_size: object = None

    def detectMultiScale3(self, img: np.ndarray, **kw: object):
        self.seen = img.shape
        self.min_size = kw["minSize"]
        return np.array([[10, 10, 50, 50], [200, 100, 40, 40]]), np.array([20, 20]), np.array([1.5, 0.2])


class _CutFaceCascade:
    """Nothing in the full-size pass; in the cut-face pass's copy (a 1080p image: 640 px wide for
    detection, halved to 180 px high, 22 px of border) a face reaching past the left edge and
    one well inside the picture."""

    CUT_COPY = (180 + 2 * 22, 320 + 2 * 22)

    def __init__(self) -> None:
        self.scans: list[tuple[tuple[int, ...], object, object]] = []

    def detectMultiScale3(self, img: np.ndarray, **kw: object):
        self.scans.append((img.shape, kw["minSize"], kw["scaleFactor"]))
        if img.shape == self.CUT_COPY:
            return np.array([[2, 40, 40, 40], [100, 40, 40, 40]]), np.array([20, 20]), np.array([3.0, 3.0])
        return np.zeros((0, 4), int), np.zeros(0, int), np.zeros(0)


def test_the_cut_face_pass_keeps_only_faces_past_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """The full-size pass's grid cannot reach past the frame, the cut-face pass's bordered copy
    can; what it finds inside the picture is the full-size pass's to find (a false face there
    would be the pass's alone), so only the box running off the frame is kept, clipped."""
    cascade = _CutFaceCascade()
    monkeypatch.setattr(detect, "load_cascade", lambda _p: cascade)
    settings = DetectionSettings(verify=False, min_score=0.0, close_ups=False)
    faces = FaceDetector(settings, [Path("c.xml")]).detect(np.zeros((1080, 1920), np.uint8))
    assert (cascade.CUT_COPY, (27, 27), 1.2) in cascade.scans  # from 15 % of the shorter side, steps of 1.2
    assert [f.box for f in faces] == [(0, 108, 120, 240)]  # x6 back: (-120, 108, 240, 240), clipped
    cascade.scans.clear()
    off = FaceDetector(settings.model_copy(update={"cut_faces": False}), [Path("c.xml")])
    assert off.detect(np.zeros((1080, 1920), np.uint8)) == []
    assert [shape for shape, *_ in cascade.scans] == [(360, 640)]


class _Verifier:
    def score(self, gray: np.ndarray, boxes: list, shrunk: tuple[np.ndarray, float]) -> np.ndarray:
        assert gray.shape == (1080, 1920)  # the verifier looks at the original pixels
        assert shrunk[0].shape == (360, 640) and shrunk[1] == 1 / 3  # and detection's shrunk copy
        return np.array([0.95, 0.1])


def test_downscaled_detection_maps_boxes_back_and_verifier_rescores(monkeypatch: pytest.MonkeyPatch) -> None:
    cascade = _Cascade()
    monkeypatch.setattr(detect, "load_cascade", lambda _p: cascade)
    monkeypatch.setattr(detect, "_load_verifier", lambda _p: _Verifier())
    settings = DetectionSettings(
        max_side=640, verifier=Path("v.npz"), close_ups=False, cut_faces=False, lone_window_score=1.0
    )
    faces = FaceDetector(settings, [Path("c.xml")]).detect(np.zeros((1080, 1920), np.uint8))
    assert cascade.seen == (360, 640)
    assert faces == [Face((30, 30, 150, 150), 0.95)]  # x3 back to full size; the 0.1 box is dropped
    plain = FaceDetector(
        DetectionSettings(verify=False, min_score=0.0, close_ups=False, cut_faces=False), [Path("c.xml")]
    )
    assert [round(f.score, 2) for f in plain.detect(np.zeros((1080, 1920), np.uint8))] == [0.82, 0.55]


def test_smallest_face_searched_grows_with_the_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reaction face is the subject of its picture: in a 1080p screenshot faces under 8 % of the
    shorter side (86 px) are not searched, which saves the costliest scales of the scan."""
    cascade = _Cascade()
    monkeypatch.setattr(detect, "load_cascade", lambda _p: cascade)
    big = np.zeros((1080, 1920), np.uint8)
    FaceDetector(DetectionSettings(verify=False, close_ups=False, cut_faces=False), [Path("c.xml")]).detect(
        big
    )
    assert cascade.min_size == (29, 29)  # 0.08 * 1080 = 86 px, shrunk x1/3 for the scan
    FaceDetector(
        DetectionSettings(verify=False, close_ups=False, cut_faces=False, min_size_share=0.0), [Path("c.xml")]
    ).detect(big)
    assert cascade.min_size == (10, 10)  # min_size 30 px, shrunk x1/3
    small = np.zeros((300, 400), np.uint8)
    FaceDetector(DetectionSettings(verify=False, close_ups=False, cut_faces=False), [Path("c.xml")]).detect(
        small
    )
    assert cascade.min_size == (30, 30)  # 8 % of 300 is 24 px: min_size 30 is the larger


class _RawCascade:
    """Raw windows (what minNeighbors 0 gives): three similar ones on one face, a lone one on a
    face cut by the left edge, a lone one on the background, and one inside the grouped face."""

    windows = np.array(
        [
            [100, 100, 60, 60],
            [102, 101, 60, 60],
            [98, 99, 62, 62],
            [0, 200, 50, 50],
            [400, 50, 40, 40],
            [115, 115, 30, 30],
        ]
    )
    weights = np.array([1.0, 1.2, 0.8, 2.0, 1.5, 3.0])

    def __init__(self) -> None:
        self.neighbours: list[object] = []

    def detectMultiScale3(self, img: np.ndarray, **kw: object):
        self.neighbours.append(kw["minNeighbors"])
        if kw["minNeighbors"]:  # grouped by OpenCV: only the face of three windows is left
            return np.array([[100, 100, 61, 61]]), np.zeros(1), np.array([1.2])
        return self.windows, np.zeros(len(self.windows)), self.weights


class _ByBox:
    """A verifier that knows each box's probability; any box it was not told of is a bug here."""

    def __init__(self, probability: dict[tuple[int, ...], float]) -> None:
        self.probability = probability
        self.seen: list[tuple[int, ...]] = []

    def score(self, gray: np.ndarray, boxes: list, shrunk: tuple[np.ndarray, float]) -> np.ndarray:
        self.seen += [tuple(b) for b in boxes]
        return np.array([self.probability[tuple(b)] for b in boxes])


def test_lone_windows_the_grouping_drops_count_when_the_verifier_is_sure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenCV's grouping drops a window with no similar neighbour, which is how faces cut by the
    frame were lost; such a window is a face when the verifier gives it lone_window_score."""
    grouped = (100, 100, 61, 61)  # the mean of the three similar windows
    verifier = _ByBox({grouped: 0.9, (0, 200, 50, 50): 0.99, (400, 50, 40, 40): 0.7})
    cascade = _RawCascade()
    monkeypatch.setattr(detect, "load_cascade", lambda _p: cascade)
    monkeypatch.setattr(detect, "_load_verifier", lambda _p: verifier)
    image = np.zeros((400, 600), np.uint8)
    settings = DetectionSettings(verifier=Path("v.npz"), close_ups=False, cut_faces=False)
    faces = FaceDetector(settings, [Path("c.xml")]).detect(image)
    assert cascade.neighbours == [0]  # one ungrouped scan; the grouping is done from its windows
    assert [f.box for f in faces] == [(0, 200, 50, 50), grouped]  # the 0.7 window is below 0.95
    assert (115, 115, 30, 30) not in verifier.seen  # inside a face found: never looked at
    cascade.neighbours.clear()
    # an image its caller padded (a dataset crop) has no face at its frame: no lone windows there
    padded = FaceDetector(settings, [Path("c.xml")]).detect(image, padded=True)
    assert [f.box for f in padded] == [grouped] and cascade.neighbours == [1]
    cascade.neighbours.clear()
    off = settings.model_copy(update={"lone_window_score": 1.0})
    assert [f.box for f in FaceDetector(off, [Path("c.xml")]).detect(image)] == [grouped]
    assert cascade.neighbours == [1]  # OpenCV groups as before


class _Unsure:
    """A verifier that gives every box the same probability: only which boxes it is shown matters."""

    def score(self, gray: np.ndarray, boxes: list, shrunk: tuple[np.ndarray, float]) -> np.ndarray:
        return np.full(len(boxes), 0.5)


@pytest.mark.parametrize("seed", [4, 5, 8])
def test_the_full_size_pass_groups_its_windows_as_opencv_does(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """With lone windows on, the full-size pass groups its raw windows itself; its proposals must be
    OpenCV's own to the pixel (as with lone windows off), also where windows reach past the right
    or bottom edge, which OpenCV groups before it clips them: else a face there moves."""
    monkeypatch.setattr(detect, "_load_verifier", lambda _p: _Unsure())
    noise = np.random.default_rng(seed).integers(0, 255, (18, 32), np.uint8)
    image = cv2.resize(noise, (640, 360), interpolation=cv2.INTER_CUBIC)  # busy: windows at every edge
    settings = DetectionSettings(verifier=Path("v.npz"), close_ups=False, cut_faces=False)
    ours = FaceDetector(settings).candidates(image)
    opencv = FaceDetector(settings.model_copy(update={"lone_window_score": 1.0})).candidates(image)
    assert ours.windows and not opencv.windows  # one grouped by detect.py, the other by OpenCV
    assert sorted(f.box for f in ours.full) == sorted(f.box for f in opencv.full)  # order: OpenCV's threads


def test_a_window_cut_in_the_corner_gets_back_its_side() -> None:
    """A raw window cut by both the right and the bottom edge has lost its side; the scan's grid
    tells it back (the smallest side scanned that puts a window there)."""
    shape = (360, 640)
    cascade = detect.load_cascade(detect.shipped_file(detect.SHIPPED_CASCADE))  # 24 px
    scales = region_scan.scan_scales(24, 1.1, shape, 29)
    cut = []
    for side, factor in scales:
        f = float(np.float32(factor))
        x, y = round((round(640 / f) - 24) * f), round((round(360 / f) - 24) * f)  # the last window
        if x + side > 640 and y + side > 360:
            cut.append((side, (x, y, 640 - x, 360 - y)))
    assert cut  # some scales' last window reaches past the corner
    rects = np.array([box for _side, box in cut])
    assert region_scan.unclipped(rects, shape, cascade, 1.1, 29)[:, 2].tolist() == [
        side for side, _box in cut
    ]


class _FaceAndCloseUp:
    """A face in the full-size pass; in every close-up pass a box over most of the picture."""

    def detectMultiScale3(self, img: np.ndarray, **kw: object):
        if img.shape == (360, 640):
            return np.array([[200, 100, 80, 80]]), np.zeros(1), np.array([1.0])
        h, w = img.shape
        return np.array([[w // 10, h // 10, 8 * w // 10, 8 * h // 10]]), np.zeros(1), np.array([1.0])


class _FullFirst:
    """Scores the full-size pass's box ``full`` and the close-up boxes ``close``."""

    def __init__(self, full: float, close: float) -> None:
        self.full, self.close = full, close

    def score(self, gray: np.ndarray, boxes: list, shrunk: tuple[np.ndarray, float]) -> np.ndarray:
        return np.array([self.full if tuple(b) == (200, 100, 80, 80) else self.close for b in boxes])


@pytest.mark.parametrize(("full", "close", "kept"), [(0.9, 0.8, "full"), (0.6, 0.9, "close")])
def test_a_close_up_box_holding_a_face_found_keeps_the_better_scored(
    monkeypatch: pytest.MonkeyPatch, full: float, close: float, kept: str
) -> None:
    """A close-up box around a face the full-size pass found would be a second, false face (the
    close-up grid frames loosely); but a better-scored close-up box holds a face too big for the
    full-size pass, of which that box was only a part."""
    monkeypatch.setattr(detect, "load_cascade", lambda _p: _FaceAndCloseUp())
    monkeypatch.setattr(detect, "_load_verifier", lambda _p: _FullFirst(full, close))
    settings = DetectionSettings(verifier=Path("v.npz"), lone_window_score=1.0)
    faces = FaceDetector(settings, [Path("c.xml")]).detect(np.zeros((360, 640), np.uint8))
    assert len(faces) == 1
    assert (faces[0].box == (200, 100, 80, 80)) == (kept == "full")


def test_boxes_reaching_outside_the_image_are_clipped_to_it() -> None:
    """Close-up boxes may reach past the frame; callers get the faces.json convention (the visible part)."""
    assert detect.clipped((-10, 5, 50, 50), (40, 30)) == (0, 5, 30, 35)
    assert detect.clipped((3, 4, 10, 10), (40, 30)) == (3, 4, 10, 10)
    assert detect.clipped((100, 100, 20, 20), (40, 30)) == (29, 39, 1, 1)  # never starts outside


def test_detection_never_imports_torch() -> None:
    """PyTorch is a training-only extra: the service runs CNN verifiers with numpy."""
    import subprocess
    import sys

    code = "import sys, facesortd.cli, facesortd.detect, facesortd.verify; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_cascade_under_a_name_that_is_not_utf8_loads(tmp_path: Path) -> None:
    """A virtual environment (or a configured cascade) in a folder whose name is not UTF-8: OpenCV
    handed that name killed every command with a segmentation fault. Run in a child process, which
    the old code crashed; the cascade finds what it finds from its usual place."""
    shipped = detect.shipped_file(detect.SHIPPED_CASCADE)
    assert shipped is not None
    odd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/c\xffscade.xml"))
    shutil.copyfile(shipped, odd)
    code = f"""
import os
from pathlib import Path
import cv2, numpy as np
from facesortd.detect import load_cascade
rng = np.random.default_rng(0)
image = cv2.GaussianBlur((rng.random((300, 300)) * 255).astype(np.uint8), (0, 0), 3)
found = [sorted(map(tuple, load_cascade(Path(p)).detectMultiScale(image, 1.1, 1)))
         for p in (os.fsdecode({os.fsencode(odd)!r}), {str(shipped)!r})]
print(len(found[0]), found[0] == found[1])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    count, same = done.stdout.split()
    assert int(count) > 0 and same == "True"


@pytest.mark.parametrize(("scale", "pad"), [(0.4, 13), (0.8, 0), (1 / 3, 7)])  # 0.4, 0.8: halves
def test_windows_map_back_to_the_pixels_rounding_each_gives(scale: float, pad: int) -> None:
    """The scan's windows are mapped back all at once; a box must land on the pixel that rounding
    each of its numbers in Python gives (halves to even), or faces move by a pixel."""
    rects = np.random.default_rng(2).integers(0, 700, (500, 4)).astype(np.int32)
    one_by_one = [
        (round((x - pad) / scale), round((y - pad) / scale), round(w / scale), round(h / scale))
        for x, y, w, h in rects.tolist()
    ]
    assert detect._in_original(rects, scale, pad) == one_by_one
    assert detect._in_original((), scale, pad) == []  # OpenCV's "nothing found"
