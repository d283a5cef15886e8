"""How OpenCV's own threads share the machine's cores with facesortd's workers."""

from __future__ import annotations

import os

import cv2


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which a container or systemd may narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def share_cores(workers: int) -> int:
    """Give OpenCV the cores the workers leave over, at least one thread each; returns its count.

    The worker pool is facesortd's parallelism. With as many workers as cores, OpenCV's thread
    pool (the cascade's scan spreads itself over every core) only adds hand-overs and waiting
    threads that compete with the other worker; BLAS is held to one thread for the same reason
    (facesortd/__init__). With fewer workers than cores, one file's detection still spreads over
    the idle ones.
    """
    threads = max(1, usable_cores() // max(1, workers))
    cv2.setNumThreads(threads)
    return threads
