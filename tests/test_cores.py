"""OpenCV's threads and facesortd's workers share the cores instead of fighting over them."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import pytest

from facesortd.cores import share_cores, usable_cores


@pytest.fixture(autouse=True)
def _restored_threads() -> Iterator[None]:
    before = cv2.getNumThreads()
    yield
    cv2.setNumThreads(before)


def test_opencv_gets_the_cores_the_workers_leave_over() -> None:
    cores = usable_cores()
    assert share_cores(cores) == 1 == cv2.getNumThreads()
    assert share_cores(2 * cores) == 1  # more workers than cores: still one thread each
    assert share_cores(1) == cores == cv2.getNumThreads()
