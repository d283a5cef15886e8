"""A small convolutional classifier run in plain numpy: the runtime half of nets trained with
PyTorch (facesortd/cascade_train/verifier_net.py), so the service never imports torch.

Shape: 3x3 convolution blocks (batch norm folded into the weights, ReLU, 2x2 max pool), the last
map flattened, one hidden dense layer with ReLU, one dense output layer. The convolutions reuse the
feature net's convolution block (feature_net.conv_block).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facesortd.feature_net import conv_block

PREFIX = "cnn_"
"""Arrays of a ConvNet are stored under this prefix in whatever file holds it."""


@dataclass
class ConvNet:
    """``conv[i]`` is (9 * in_channels, out_channels) with its bias; ``dense`` the head's layers,
    (inputs, outputs) each; the flattened map is ordered (row, column, channel)."""

    conv: list[tuple[np.ndarray, np.ndarray]]
    dense: list[tuple[np.ndarray, np.ndarray]]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(n, s, s, c) float32 inputs -> (n, outputs) raw outputs (logits)."""
        for w, b in self.conv:
            x = conv_block(x, w, b)
        x = x.reshape(len(x), -1)
        for i, (w, b) in enumerate(self.dense):
            x = x @ w + b
            if i < len(self.dense) - 1:
                x = np.maximum(x, 0.0)
        return x

    def arrays(self) -> dict[str, np.ndarray]:
        named: dict[str, np.ndarray] = {}
        for kind, layers in (("conv", self.conv), ("dense", self.dense)):
            for i, (w, b) in enumerate(layers):
                named[f"{PREFIX}{kind}{i}_w"] = w
                named[f"{PREFIX}{kind}{i}_b"] = b
        return named

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ConvNet:
        def layers(kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
            out = []
            while f"{PREFIX}{kind}{len(out)}_w" in arrays:
                i = len(out)
                w, b = arrays[f"{PREFIX}{kind}{i}_w"], arrays[f"{PREFIX}{kind}{i}_b"]
                out.append((np.asarray(w, np.float32), np.asarray(b, np.float32)))
            return out

        net = cls(layers("conv"), layers("dense"))
        if not net.conv or not net.dense:
            raise KeyError("no convolutional net in the file")
        return net
