"""The numpy convolution that runs the verifier and the feature net: the fast forward computes
exactly what the plain formulation computes, and a batch gives what one crop at a time gives."""

from __future__ import annotations

import numpy as np

from facesortd.conv_net import ConvNet
from facesortd.feature_net import conv_block, shifted_columns


def _plain_block(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The textbook order: pad, nine shifted copies side by side, product, bias, ReLU, then pool."""
    n, h, wd, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = np.concatenate([xp[:, i : i + h, j : j + wd] for i in range(3) for j in range(3)], axis=-1)
    y = np.maximum(cols.reshape(n * h * wd, 9 * c) @ w + b, 0.0).reshape(n, h, wd, -1)
    return y.reshape(n, h // 2, 2, wd // 2, 2, -1).max(axis=(2, 4))


def _layer(rng: np.random.Generator, inputs: int, outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights scaled as after training (outputs of order one), biases small."""
    w = rng.standard_normal((inputs, outputs)) / np.sqrt(inputs)
    return w.astype(np.float32), 0.1 * rng.standard_normal(outputs).astype(np.float32)


def _net(rng: np.random.Generator) -> ConvNet:
    return ConvNet(
        [_layer(rng, 9, 8), _layer(rng, 9 * 8, 16)], [_layer(rng, 8 * 8 * 16, 12), _layer(rng, 12, 1)]
    )


def test_conv_block_is_bit_for_bit_the_plain_formulation() -> None:
    rng = np.random.default_rng(0)
    for shape in ((3, 8, 6, 1), (2, 16, 16, 5)):
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal((9 * shape[3], 4)).astype(np.float32)
        b = rng.standard_normal(4).astype(np.float32)
        assert np.array_equal(conv_block(x, w, b), _plain_block(x, w, b))


def test_shifted_columns_hold_each_pixels_zero_padded_neighbourhood() -> None:
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    cols = shifted_columns(x).reshape(3, 4, 9)
    assert cols[0, 0].tolist() == [0, 0, 0, 0, 0, 1, 0, 4, 5]  # top-left corner: padded above and left
    assert cols[1, 1].tolist() == [0, 1, 2, 4, 5, 6, 8, 9, 10]


def test_a_batch_scores_each_crop_as_it_would_alone() -> None:
    """Detection verifies all of an image's candidates in one call; that must not change a score."""
    rng = np.random.default_rng(1)
    net = _net(rng)
    x = rng.standard_normal((9, 32, 32, 1)).astype(np.float32)
    one_by_one = np.concatenate([net.forward(x[i : i + 1]) for i in range(len(x))])
    # Equal up to float rounding: the matrix library may sum in another order for another batch size.
    assert np.allclose(net.forward(x), one_by_one, rtol=1e-5, atol=1e-5)
    assert np.ptp(one_by_one) > 0.1  # the crops really score differently
