"""The feature net's own softmax layer as an emotion model: a reference for bench_emotion.py only.

What ships is the Fisherface head on the net's features (it updates from a user's labels); this
says how much of what the net learnt that head keeps. Needs PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from facesortd.emotion import Calibrated
from facesortd.faces import FaceSpec
from facesortd.learn.torch_training import ConvNet, to_tensor


class SoftmaxHead(Calibrated):
    """Logits of ``net`` (mirror-averaged, as its features are), columns in ``labels`` order."""

    descriptor = "net-softmax"

    def __init__(self, net: ConvNet, labels: list[str], spec: FaceSpec) -> None:
        self.net, self.labels, self.spec = net.eval(), labels, spec
        self.temperature = 1.0
        self.info: dict[str, Any] = {}

    def logits(self, faces: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        with torch.no_grad():
            x = to_tensor(faces, self.net.input_size)
            return (0.5 * (self.net(x) + self.net(torch.flip(x, dims=[3])))).numpy().astype(np.float64)
