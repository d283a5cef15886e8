"""The CNN verifier's net in PyTorch: its layout, training loop and export to the numpy runtime
(conv_net.py).

Only for the training extra (``pip install facesortd[train]``); nothing the service runs imports
this module. Kept apart from the emotion net's PyTorch training (written at the same time on
another branch): the verifier needs the spatial layout of the last map (flattened, then a hidden
layer), where the emotion net averages over positions. The loop (AdamW, one-cycle schedule,
class-balanced loss, flips and gain changes as augmentation) and the export that folds batch norm
into the convolutions are what the two could share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from loguru import logger
from torch import nn

from facesortd.conv_net import ConvNet
from facesortd.torch_training import conv_blocks


@dataclass(frozen=True)
class FitSettings:
    epochs: int = 12
    batch: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    dropout: float = 0.3
    gain: float = 0.25
    """Augmentation: contrast and brightness changed by up to this much (inputs are centred)."""
    seed: int = 0


class TorchConvNet(nn.Module):
    """The training twin of conv_net.ConvNet."""

    def __init__(self, widths: Sequence[int], side: int, hidden: int, outputs: int, dropout: float):
        super().__init__()
        self.features = conv_blocks(widths)
        flat = widths[-1] * (side // 2 ** len(widths)) ** 2
        self.head = nn.Sequential(
            nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1, s, s) -> (n, outputs); flattened (row, column, channel) as the numpy runtime does."""
        return self.head(self.features(x).permute(0, 2, 3, 1).flatten(1))


def fit(
    net: TorchConvNet, x: np.ndarray, y: np.ndarray, settings: FitSettings, weights: np.ndarray | None = None
) -> TorchConvNet:
    """Train ``net`` on (n, s, s, 1) float32 inputs and integer labels (one output: binary, logit
    of class 1; several: softmax). Classes weigh equally overall unless ``weights`` are given."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    if weights is None:
        counts = np.bincount(y)
        weights = (len(y) / (len(counts) * np.maximum(counts, 1)))[y]
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt, wt = torch.from_numpy(y), torch.from_numpy(weights.astype(np.float32))
    steps = settings.epochs * -(-len(x) // settings.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, settings.learning_rate, total_steps=steps)
    binary = net.head[-1].out_features == 1
    for epoch in range(settings.epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for start in range(0, len(x), settings.batch):
            idx = order[start : start + settings.batch]
            xb = _augment(xt[idx], settings.gain)
            out = net(xb)
            if binary:
                loss = nn.functional.binary_cross_entropy_with_logits(
                    out[:, 0], yt[idx].float(), reduction="none"
                )
            else:
                loss = nn.functional.cross_entropy(out, yt[idx], reduction="none")
            loss = (loss * wt[idx]).sum() / wt[idx].sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        logger.info("epoch {}/{}: loss {:.4f}", epoch + 1, settings.epochs, total / len(x))
    return net.eval()


def _augment(x: torch.Tensor, gain: float) -> torch.Tensor:
    """Mirror half the batch; change contrast and brightness a little."""
    flip = torch.rand(len(x)) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    scale = 1 + gain * (2 * torch.rand(len(x), 1, 1, 1) - 1)
    shift = gain * (2 * torch.rand(len(x), 1, 1, 1) - 1)
    return x * scale + shift


def predict(net: TorchConvNet, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    """(n, outputs) raw outputs of the trained net."""
    net.eval()
    with torch.no_grad():
        return np.concatenate(
            [
                net(torch.from_numpy(np.ascontiguousarray(x[i : i + batch].transpose(0, 3, 1, 2)))).numpy()
                for i in range(0, len(x), batch)
            ]
        )


def export(net: TorchConvNet) -> ConvNet:
    """The numpy runtime's net: batch norm folded into each convolution, weights laid out for
    conv_net's shifted columns ((row, column, in-channel) x out-channel)."""
    conv = []
    mods = list(net.features)
    for c, bn in zip(mods[0::4], mods[1::4], strict=True):
        assert isinstance(c, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
        w = (c.weight.detach() * scale[:, None, None, None]).permute(2, 3, 1, 0).reshape(-1, c.out_channels)
        b = (bn.bias - bn.running_mean * scale).detach()
        conv.append((w.numpy().astype(np.float32), b.numpy().astype(np.float32)))
    dense = [
        (m.weight.detach().numpy().T.astype(np.float32).copy(), m.bias.detach().numpy().astype(np.float32))
        for m in net.head
        if isinstance(m, nn.Linear)
    ]
    return ConvNet(conv, dense)
