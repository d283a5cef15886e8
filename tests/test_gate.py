"""The detection gate: its numpy runtime, how detection uses it, and the region scan under it."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import draw_face
from torch_nets import as_if_trained

from facesortd import region_scan
from facesortd.config import GATE_TRADE, ConfigError, DetectionSettings, load_settings
from facesortd.detect import SHIPPED_GATE, DetectorError, FaceDetector, iou, shipped_file
from facesortd.doctor import run_checks
from facesortd.gate import CELL, SIDE_RANGE, THRESHOLD, WIDTHS, Gate, GateNet, Mark, load_gate


def _constant_gate(path: Path, logit: float, side: float) -> Path:
    """A gate whose head ignores the picture: every cell marked (``logit`` > 0) or none, all
    asking for faces of ``side`` px at the level the net runs on."""
    rng = np.random.default_rng(0)
    cin, weights, biases = 1, [], []
    for cout in WIDTHS:
        weights.append(rng.normal(0, 0.1, (9 * cin, cout)).astype(np.float32))
        biases.append(np.zeros(cout, np.float32))
        cin = cout
    head_w = np.zeros((WIDTHS[-1], 2), np.float32)
    head_b = np.array([logit, np.log(side)], np.float32)
    GateNet(weights, biases, head_w, head_b, {"test": True}).save(path)
    return path


def _faces_on_a_backdrop() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A 1280x720 picture with two drawn faces of 200 and 240 px."""
    rng = np.random.default_rng(3)
    image = cv2.resize(
        rng.integers(60, 120, (12, 24)).astype(np.uint8), (1280, 720), interpolation=cv2.INTER_CUBIC
    )
    boxes = [(100, 200, 200, 200), (800, 150, 240, 240)]
    for x, y, w, h in boxes:
        image[y : y + h, x : x + w] = draw_face("happy", w, rng)
    return image, boxes


def test_numpy_runtime_matches_torch() -> None:
    torch = pytest.importorskip("torch")  # the training extra; the runtime itself never needs it
    from facesortd.cascade_train.gate_net import GateTorch, exported, torch_outputs

    torch.manual_seed(0)
    net = as_if_trained(GateTorch())
    images = np.random.default_rng(1).integers(0, 256, (2, 3 * CELL, 5 * CELL), np.uint8)
    ours = exported(net, {}).outputs(images)
    assert ours.shape == (2, 3, 5, 2)
    assert np.abs(ours - torch_outputs(net, images)).max() < 1e-4


def test_a_gate_file_round_trips_with_its_operating_point_and_a_broken_one_is_a_clear_error(
    tmp_path: Path,
) -> None:
    path = _constant_gate(tmp_path / "gate.npz", 5.0, 50.0)
    net = GateNet.load(path)
    assert net.info == {"test": True} and len(net.weights) == len(WIDTHS)
    assert (load_gate(path).threshold, load_gate(path).side_range) == (THRESHOLD, SIDE_RANGE)
    assert load_gate(path).complete
    net.info = {"threshold": 0.2, "side_range": [0.7, 1.4], "reach": 0.5, "complete": False}
    net.save(path)
    gate = load_gate(path)
    assert (gate.threshold, gate.side_range, gate.reach, gate.complete) == (0.2, (0.7, 1.4), 0.5, False)
    net.save(tmp_path / "models" / "gate")  # the very name given, in a folder made for it
    assert GateNet.load(tmp_path / "models" / "gate").info == net.info
    (tmp_path / "broken.npz").write_bytes(b"not a gate")
    np.save(tmp_path / "array.npy", np.zeros(3))  # np.load gives a bare array: a TypeError before
    for wrong in ("broken.npz", "array.npy"):
        with pytest.raises(DetectorError, match=r"detection\.gate"):
            FaceDetector(DetectionSettings(gate=tmp_path / wrong))


def test_off_means_no_gate_and_no_gate_is_the_default(tmp_path: Path) -> None:
    assert DetectionSettings(gate="off").gate is None
    assert DetectionSettings().gate is None and FaceDetector(DetectionSettings()).gate_path is None
    (tmp_path / "config.toml").write_text("[detection]\n")
    assert load_settings(tmp_path / "config.toml").detection.gate is None


def test_the_shipped_gate_is_turned_on_by_its_name_and_finds_drawn_faces() -> None:
    """`detection.gate = "shipped"` is the fast option for a user without the training data: the
    file ships as package data and carries the operating point it was measured at."""
    image, boxes = _faces_on_a_backdrop()
    detector = FaceDetector(DetectionSettings(gate="shipped"))
    assert detector.gate_path == shipped_file(SHIPPED_GATE) is not None
    gate = load_gate(detector.gate_path)
    assert (gate.threshold, gate.side_range, gate.reach, gate.complete) == (0.05, (0.7, 1.4), 0.5, False)
    found = detector.detect(image)
    for truth in boxes:
        assert max(iou(truth, f.box) for f in found) >= 0.6


def test_doctor_says_whether_the_gate_is_on_and_what_the_shipped_one_trades(tmp_path: Path) -> None:
    """The option is off by default: `doctor` is where a user after a faster sort learns of it."""
    config = tmp_path / "config.toml"
    for value, said in (
        ("off", 'gate: off, the cascade scans everywhere (detection.gate = "shipped": '),
        ("shipped", f"gate: {shipped_file(SHIPPED_GATE)} ("),
    ):
        config.write_text(f'[detection]\ngate = "{value}"\n')
        lines = [text for ok, text in run_checks(config) if ok and text.startswith("gate: ")]
        assert len(lines) == 1 and lines[0].startswith(said) and GATE_TRADE in lines[0]


def test_a_misspelt_gate_name_is_refused_with_the_name_meant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare word is a gate's name, not a file in whatever folder facesortd started in: `shiped`
    said "file not found" only once detection started, naming no fix."""
    config = tmp_path / "config.toml"
    config.write_text('[detection]\ngate = "shiped"\n')
    with pytest.raises(ConfigError, match=r"detection\.gate = 'shiped': .*did you mean shipped\?"):
        load_settings(config)
    monkeypatch.setattr(  # a build without it
        "facesortd.detect.shipped_file", lambda name: None if name == SHIPPED_GATE else shipped_file(name)
    )
    with pytest.raises(DetectorError, match="ships no gate"):
        FaceDetector(DetectionSettings(gate="shipped"))


def test_drawn_faces_are_found_with_the_gate_on_and_not_where_it_marks_nothing(tmp_path: Path) -> None:
    """The gate decides where the full-size pass looks: marking every cell for faces of the right
    size finds what the whole scan finds; marking none leaves the full-size pass nothing."""
    image, boxes = _faces_on_a_backdrop()
    settings = {"close_ups": False, "cut_faces": False}
    whole = FaceDetector(DetectionSettings(**settings)).detect(image)
    everywhere = _constant_gate(tmp_path / "all.npz", 5.0, 55.0)  # 55 px at 320 wide: 110 in the 640 copy
    gated = FaceDetector(DetectionSettings(gate=everywhere, **settings)).detect(image)
    unverified = FaceDetector(DetectionSettings(gate=everywhere, verify=False, **settings)).detect(image)
    assert len(whole) == len(boxes)
    for truth in boxes:  # verified (from raw windows) and not (from groups weighed as OpenCV does)
        assert max(iou(truth, f.box) for f in gated) >= 0.6
        assert max(iou(truth, f.box) for f in unverified) >= 0.6
    assert all(0.5 < f.score < 1.0 for f in unverified)  # the cascade's weight, squashed
    nowhere = _constant_gate(tmp_path / "none.npz", -5.0, 55.0)
    assert FaceDetector(DetectionSettings(gate=nowhere, **settings)).detect(image) == []


def test_a_gate_file_says_whether_the_clusters_it_touches_are_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Completing the clusters costs much of the gate's saving on busy pictures: a gate file's
    operating point says whether its scan does it (the shipped gate was measured so)."""
    asked: list[float | None] = []
    scan = region_scan.raw_windows
    monkeypatch.setattr(
        "facesortd.region_scan.raw_windows", lambda *args: (asked.append(args[5]), scan(*args))[1]
    )
    path = _constant_gate(tmp_path / "gate.npz", 5.0, 55.0)
    image = _faces_on_a_backdrop()[0][:360, :640]
    for complete in (True, False):
        net = GateNet.load(path)
        net.info = {"complete": complete}
        net.save(path)
        asked.clear()
        FaceDetector(DetectionSettings(gate=path, close_ups=False, cut_faces=False)).detect(image)
        assert asked and all((eps is not None) == complete for eps in asked)


def test_regions_ask_for_the_marks_sizes_and_never_overlap() -> None:
    """A window scanned twice would count as its own neighbour in grouping."""
    gate = Gate(GateNet([], [], np.zeros((1, 2)), np.zeros(2)), side_range=(0.5, 2.0))
    marks = [Mark(50, 50, 40, 28), Mark(70, 60, 40, 28), Mark(400, 300, 100, 58), Mark(630, 10, 40, 28)]
    shape = (360, 640)
    for window in (20, 40, 80, 150, 250):
        regions = gate.regions(marks, window, shape)
        assert all(0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0] for x0, y0, x1, y1 in regions)
        for a, b in itertools.combinations(regions, 2):
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3])
        for m in marks:  # every mark asking for this window size has its centre's square in a region
            wanted = 0.5 * m.side <= window <= 2.0 * m.side
            inside = any(x0 <= m.x <= x1 and y0 <= m.y <= y1 for x0, y0, x1, y1 in regions)
            assert inside == wanted
    assert len(gate.regions(marks, 40, shape)) == 2  # the two neighbours merged, the far one apart
    small_everywhere = Gate(gate.net, side_range=(0.5, 2.0), whole_below=48)
    assert small_everywhere.regions([], 40, shape) == [(0, 0, 640, 360)]
    assert small_everywhere.regions(marks, 80, shape) == gate.regions(marks, 80, shape)
    big_everywhere = Gate(gate.net, side_range=(0.5, 2.0), whole_above=96)
    assert big_everywhere.regions([], 96, shape) == [(0, 0, 640, 360)]
    assert big_everywhere.regions(marks, 80, shape) == gate.regions(marks, 80, shape)


def test_a_region_scan_gives_the_whole_scans_windows_inside_it() -> None:
    """Cut from the picture resized as OpenCV resizes it and scanned on its grid: the windows of
    the scales below 2 are the whole scan's exactly; from 2 up, where OpenCV steps 1 px and skips a
    position after a window rejected at the first stage, the visit order differs, so most (not all)
    are; every window has the whole scan's weight."""
    image, _boxes = _faces_on_a_backdrop()
    small = cv2.equalizeHist(cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA))
    cascade = FaceDetector(DetectionSettings(verify=False))._cascades[0]
    rects, _levels, weights = cascade.detectMultiScale3(
        small, scaleFactor=1.1, minNeighbors=0, minSize=(29, 29), outputRejectLevels=True
    )
    whole = dict(zip(map(tuple, np.asarray(rects).tolist()), np.ravel(weights).tolist(), strict=True))
    found, found_w = region_scan.raw_windows(cascade, small, 1.1, 29, lambda side: [(0, 0, 640, 360)])
    ours = dict(zip(map(tuple, found.tolist()), found_w.tolist(), strict=True))
    assert len(ours) == len(found)  # no window twice
    assert {r: w for r, w in whole.items() if r[2] < 48} == {r: w for r, w in ours.items() if r[2] < 48}
    big = {r: w for r, w in ours.items() if r[2] >= 48}
    shared = [r for r in big if r in whole]
    assert len(big) > 10 and len(shared) >= 0.8 * len(big)
    assert all(whole[r] == big[r] for r in shared)
    region = (40, 100, 340, 360)
    part, _w = region_scan.raw_windows(cascade, small, 1.1, 29, lambda side: [region])
    slack = part[:, 2:3] / 12 + 1  # a cut starts on the scale's grid: up to 2 px of it before the region
    assert len(part) and np.all(part[:, :2] >= np.array(region[:2]) - slack)
    assert np.all(part[:, :2] + part[:, 2:] <= np.array(region[2:]) + 1)


def _similar(a: tuple[int, ...], b: tuple[int, ...], eps: float = 0.2) -> bool:
    """cv2.groupRectangles' test of two windows."""
    delta = eps * (min(a[2], b[2]) + min(a[3], b[3])) / 2
    return all(abs(u - v) <= delta for u, v in zip(_corners(a), _corners(b), strict=True))


def _corners(r: tuple[int, ...]) -> tuple[int, ...]:
    return r[0], r[1], r[0] + r[2], r[1] + r[3]


def test_a_closed_region_scan_completes_each_cluster_of_windows_it_touches() -> None:
    """A region holding only one size at a face's centre cuts its cluster of windows, so grouping
    would see other neighbours (and another mean box) than in the whole scan; with grouping's eps
    the scan goes on wherever a window found has a similar one unscanned, so every window of the
    whole scan similar to one found is found (exactly below scale 2, from 2 up all but the few
    positions the whole scan visits in another order)."""
    image, boxes = _faces_on_a_backdrop()
    small = cv2.equalizeHist(cv2.resize(image, (640, 360), interpolation=cv2.INTER_AREA))
    cascade = FaceDetector(DetectionSettings(verify=False))._cascades[0]
    rects, _levels, _weights = cascade.detectMultiScale3(
        small, scaleFactor=1.1, minNeighbors=0, minSize=(29, 29), outputRejectLevels=True
    )
    whole = set(map(tuple, np.asarray(rects).tolist()))
    x, y, w, _h = (v // 2 for v in boxes[0])
    centre = (x + w // 2 - 20, y + w // 2 - 20, x + w // 2 + 20, y + w // 2 + 20)
    one_size = min((s for s, _f in region_scan.sides(24, 1.1, small.shape)), key=lambda s: abs(s - w))

    def regions(side: int) -> list[tuple[int, int, int, int]]:
        half = side // 2
        return (
            [(centre[0] - half, centre[1] - half, centre[2] + half, centre[3] + half)]
            if side == one_size
            else []
        )

    cut, _w = region_scan.raw_windows(cascade, small, 1.1, 29, regions)
    closed, _w = region_scan.raw_windows(cascade, small, 1.1, 29, regions, eps=0.2)
    cut_set, closed_set = set(map(tuple, cut.tolist())), set(map(tuple, closed.tolist()))
    assert len(closed_set) == len(closed)  # no window twice, though cut-outs overlap
    assert cut_set <= closed_set and len(closed_set) > 2 * len(cut_set) > 0
    assert len({r[2] for r in closed_set}) > 3  # neighbours of other sizes joined
    unscanned = [r for r in whole - closed_set if any(_similar(r, c) for c in closed_set)]
    assert not [r for r in unscanned if r[2] < 48]
    assert len(unscanned) <= 0.1 * len(closed_set)
    assert all(any(_similar(r, b) for b in whole) for r in closed_set - whole)  # strays stay near
    only_small, _w = region_scan.raw_windows(
        cascade, small, 1.1, 29, lambda side: [(0, 0, 640, 360)] if side < 48 else [], eps=0.2
    )
    assert len(only_small) and only_small[:, 2].max() < 48  # sizes scanned everywhere start no completion


def test_training_names_a_wrong_data_folder_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    import argparse

    from facesortd.cascade_train import gate_net

    parser = argparse.ArgumentParser()
    gate_net.add_arguments(parser)
    args = parser.parse_args(["--vn-faces", str(tmp_path), "--out", str(tmp_path / "g.npz")])
    assert gate_net.run(args) == 2
    assert "not a vn_faces folder" in capsys.readouterr().err
    assert not (tmp_path / "g.npz").exists()


def test_training_never_replaces_a_file_that_is_not_a_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out replaced any file once the minutes of training were done: a typo away from a
    screenshot. A gate there is replaced (a retrain to the same name); anything else is refused first."""
    pytest.importorskip("torch")
    import argparse

    from facesortd.cascade_train import gate_net

    parser = argparse.ArgumentParser()
    gate_net.add_arguments(parser)
    gate = _constant_gate(tmp_path / "gate.npz", 5.0, 50.0)
    assert parser.parse_args(["--vn-faces", str(tmp_path), "--out", str(gate)]).out == gate
    shot, bare = tmp_path / "shot.png", tmp_path / "a.npy"
    shot.write_bytes(b"\x89PNG my screenshot")
    np.save(bare, np.zeros(3))
    for other in (shot, bare, tmp_path):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["--vn-faces", str(tmp_path), "--out", str(other)])
        assert exit_.value.code == 2 and f"argument --out: {other}" in capsys.readouterr().err
    assert shot.read_bytes() == b"\x89PNG my screenshot"
