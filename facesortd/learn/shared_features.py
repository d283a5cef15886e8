"""Training terms that reward features shared by artists and punish features that tell the artist.

Cross-entropy alone rewards whatever separates the emotions in the training art, and between 29
repositories an artist's way of drawing separates faces more than an emotion does (README,
"Emotion model"). Two terms, added to the emotion net's loss, act on its feature layer (what the
Fisherface head reads at run time) through heads used only while training:

- :func:`cross_unit_contrast`: supervised contrast over a normalised projection, where a face's
  positives are faces of the same emotion from a *different* independent unit (another vn_faces
  repository, another seed character, or the other dataset): features only draw together what
  carries across artists. Same-emotion faces of the face's own unit are neither positives nor
  negatives, so an artist's own look earns nothing.
- :class:`UnitAdversary`: a small head predicting the face's unit from the features, trained
  through a gradient-reversal layer, so the features are pushed to make that prediction fail.

Both heads are dropped at export: the shipped net keeps its size. PyTorch does every gradient.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``-weight`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float) -> torch.Tensor:
    """``x`` unchanged, but what learns to read it downstream teaches ``x`` the opposite."""
    return _ReverseGradient.apply(x, weight)


def cross_unit_contrast(
    embedding: torch.Tensor, labels: torch.Tensor, units: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """Supervised-contrastive loss over L2-normalised ``embedding`` (n, d), whose positives are
    same-label faces of other units; anchors without any such face in the batch are left out."""
    z = F.normalize(embedding, dim=1)
    similarity = z @ z.T / temperature
    same_label = labels[:, None] == labels[None, :]
    same_unit = units[:, None] == units[None, :]
    positive = same_label & ~same_unit
    counted = ~(same_label & same_unit)  # self and same-unit twins: neither pulled nor pushed
    log_prob = similarity - torch.logsumexp(similarity.masked_fill(~counted, -math.inf), dim=1, keepdim=True)
    n_positive = positive.sum(dim=1)
    anchors = n_positive > 0
    if not anchors.any():
        return embedding.sum() * 0.0
    mean_log_prob = (log_prob * positive).sum(dim=1)[anchors] / n_positive[anchors]
    return -mean_log_prob.mean()


def ramp(done: float) -> float:
    """0 at the start of training, near 1 by its middle: the adversary's weight is raised as the
    features form (DANN's schedule; full strength at once drowns the emotion in the first steps)."""
    return 2.0 / (1.0 + math.exp(-10.0 * done)) - 1.0


class UnitAdversary(nn.Module):
    """Guesses a face's unit from its features, through a gradient reversal."""

    def __init__(self, features: int, units: int, hidden: int = 64) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, units))

    def forward(self, features: torch.Tensor, weight: float) -> torch.Tensor:
        return self.head(reverse_gradient(features, weight))


class SharedFeatureLoss(nn.Module):
    """The two terms, weighted (0 leaves a term out), over a batch's features, labels and units."""

    def __init__(
        self, features: int, units: int, contrast: float, adversary: float, projection: int = 64
    ) -> None:
        super().__init__()
        self.contrast, self.adversary = contrast, adversary
        self.projection = nn.Sequential(
            nn.Linear(features, features), nn.ReLU(), nn.Linear(features, projection)
        )
        self.guess_unit = UnitAdversary(features, units)

    def forward(
        self, features: torch.Tensor, labels: torch.Tensor, units: torch.Tensor, done: float
    ) -> torch.Tensor:
        loss = features.sum() * 0.0
        if self.contrast:
            loss = loss + self.contrast * cross_unit_contrast(self.projection(features), labels, units)
        if self.adversary:
            guess = self.guess_unit(features, self.adversary * ramp(done))
            loss = loss + F.cross_entropy(guess, units)
        return loss
