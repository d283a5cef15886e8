"""What the tests that check a net's numpy export against PyTorch share (they need the train extra)."""

from __future__ import annotations

from typing import Any


def as_if_trained(net: Any) -> Any:
    """``net`` in eval mode with batch norm statistics and affine terms of its own, as after training
    (fresh ones are 0 and 1, which would let a wrong folding of batch norm pass unseen); drawn from
    PyTorch's generator, which the caller seeds."""
    import torch

    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net.eval()
