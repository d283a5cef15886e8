"""Every file facesortd writes into its state, models or cascade folders is written whole or not at
all: a disk that fills up (or a crash) half way through writing a new one leaves the old one as
it was, and no half file behind, since the detector or the model store would refuse it at the
next start."""

from __future__ import annotations

import contextlib
import errno
import resource
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from facesortd.cascade_train.cascade import Cascade
from facesortd.cascade_train.xml_writer import write_cascade
from facesortd.conv_net import ConvNet
from facesortd.emotion import write_model_file
from facesortd.gate import WIDTHS, GateNet
from facesortd.learn.figures import save_predictions
from facesortd.learn.training import FaceSet, Predictions
from facesortd.verify import CNN_CROP, CnnVerifier


@contextlib.contextmanager
def disk_full_after(size: int) -> Iterator[None]:
    """Writes past ``size`` bytes of a file fail (EFBIG), as on a disk that fills up meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _verifier(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    conv = [(rng.normal(0, 0.3, (9, 4)).astype(np.float32), np.zeros(4, np.float32))]
    dense = [(rng.normal(0, 0.05, (4 * (CNN_CROP // 2) ** 2, 1)).astype(np.float32), np.zeros(1, np.float32))]
    CnnVerifier(ConvNet(conv, dense), (1.0, float(seed))).save(path)


def _cascade(path: Path, seed: int) -> None:
    rects = np.random.default_rng(seed).integers(0, 8, (4000, 4))
    write_cascade(
        Cascade((24, 24), rects),
        path,
        {"minHitRate": 0.99, "maxFalseAlarm": 0.5, "maxWeakCount": 9},
        "x" * 4000 * (seed + 1),
    )


def _model(path: Path, seed: int) -> None:
    write_model_file(path, {"seed": seed}, {"w": np.random.default_rng(seed).normal(size=4000)})


def _gate(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cin, weights, biases = 1, [], []
    for cout in WIDTHS:
        weights.append(rng.normal(0, 0.1, (9 * cin, cout)).astype(np.float32))
        biases.append(np.zeros(cout, np.float32))
        cin = cout
    GateNet(weights, biases, np.zeros((WIDTHS[-1], 2), np.float32), np.zeros(2, np.float32), {}).save(path)


def _validation_set(path: Path, seed: int) -> None:
    faces = np.random.default_rng(seed).random((20, 48, 48))
    FaceSet(faces, ["happy"] * 20, ["g"] * 20, [Path("f.png")] * 20, ["s"] * 20).save(path)


def _predictions(path: Path, seed: int) -> None:
    """`train --report`'s predictions, under exactly the name given (np.savez added ``.npz``)."""
    proba = np.random.default_rng(seed).random((1000, 4))
    save_predictions(path, Predictions(["a", "b", "c", "d"], proba.argmax(axis=1), proba), ["s"] * 1000)


def _unit(path: Path, seed: int) -> None:
    """`install-service`'s systemd unit: another facesortd's each seed, a unit facesortd wrote as it
    is, so the one before is replaced without a copy kept."""
    from facesortd import service_unit

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(service_unit, "own_command", lambda: [f"/venv{seed}/bin/facesortd"])
        service_unit.install(path, service_unit.unit_text(), lambda kept: pytest.fail(f"kept {kept}"))


WRITERS: dict[str, Callable[[Path, int], None]] = {
    "verifier": _verifier,
    "cascade": _cascade,
    "emotion model": _model,
    "gate": _gate,
    "validation set": _validation_set,
    "predictions": _predictions,
    "systemd unit": _unit,
}


@pytest.mark.parametrize("writer", WRITERS)
def test_a_write_that_fails_half_way_leaves_the_old_file_whole(tmp_path: Path, writer: str) -> None:
    write = WRITERS[writer]
    path = tmp_path / "models" / "the file"
    write(path, 0)
    old = path.read_bytes()
    with disk_full_after(len(old) // 2), pytest.raises(OSError) as failed:
        write(path, 1)
    assert failed.value.errno == errno.EFBIG
    assert path.read_bytes() == old
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no half-written temp file either
