"""The emotion net's terms for features shared across artists (the ``train`` extra: PyTorch).

Skipped where PyTorch is not installed: run time never needs it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from synthetic import EMOTIONS, draw_face

pytest.importorskip("torch")

import torch

from facesortd.faces import FaceSpec, normalise_face
from facesortd.learn.feature_net_training import NetSettings, train_feature_net
from facesortd.learn.shared_features import (
    SharedFeatureLoss,
    cross_unit_contrast,
    ramp,
    reverse_gradient,
)
from facesortd.learn.torch_training import LoopSettings
from facesortd.learn.training import FaceSet

LABELS = torch.tensor([0, 0, 1, 1])
UNITS = torch.tensor([0, 1, 0, 1])
"""Two emotions, each drawn by two artists."""


def test_reversed_gradient_passes_values_and_turns_gradients_round() -> None:
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    (y * torch.tensor([3.0, 4.0])).sum().backward()
    assert torch.equal(y, x.detach())
    assert torch.allclose(x.grad, torch.tensor([-1.5, -2.0]))


def test_contrast_rewards_features_that_group_by_emotion_across_artists() -> None:
    by_emotion = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    by_artist = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    assert cross_unit_contrast(by_emotion, LABELS, UNITS) < cross_unit_contrast(by_artist, LABELS, UNITS)


def test_one_artists_faces_of_one_emotion_are_no_positives() -> None:
    """Faces 0 and 1 share emotion and artist: drawing them together would reward the artist's look."""
    z = torch.randn(3, 4, requires_grad=True)
    loss = cross_unit_contrast(z, torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0]))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z.grad, torch.zeros(3, 4))


def test_the_adversary_teaches_the_features_the_opposite_of_what_tells_the_artist() -> None:
    """The features' gradient is the artist guesser's own, reversed and scaled: the head learns to
    tell the artist, the features learn to hide it."""
    torch.manual_seed(0)
    loss_fn = SharedFeatureLoss(features=6, units=2, contrast=0.0, adversary=0.5)
    features = torch.randn(4, 6, requires_grad=True)
    loss_fn(features, LABELS, UNITS, done=0.5).backward()
    plain = features.detach().clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(loss_fn.guess_unit.head(plain), UNITS).backward()
    assert torch.allclose(features.grad, -0.5 * ramp(0.5) * plain.grad, atol=1e-6)
    assert loss_fn.guess_unit.head[0].weight.grad is not None


def test_the_adversary_starts_gently() -> None:
    assert ramp(0.0) == 0.0 and 0.9 < ramp(0.5) < ramp(1.0) < 1.0


def _two_artists(n_per: int) -> FaceSet:
    """Drawn faces of two 'artists' (sources), each with its own groups, as in vn_faces."""
    spec, rng = FaceSpec(size=64), np.random.default_rng(3)
    faces, labels, groups, sources = [], [], [], []
    for artist in ("a", "b"):
        for e in EMOTIONS:
            for k in range(n_per):
                faces.append(normalise_face(draw_face(e, 90, rng), (0, 0, 90, 90), spec))
                labels.append(e)
                groups.append(f"{artist}{k % 2}")
                sources.append(artist)
    n = len(labels)
    return FaceSet(np.stack(faces), labels, groups, [Path("x")] * n, sources)


def test_a_net_trained_with_both_terms_ships_without_their_heads() -> None:
    torch.set_num_threads(1)
    small = NetSettings(widths=(4, 8), loop=LoopSettings(epochs=1, steps_per_epoch=4, batch=16))
    shared = replace(small, contrast=0.5, adversary=0.3)
    data = _two_artists(2)
    plain_net, shared_net = train_feature_net(data, small), train_feature_net(data, shared)
    assert [w.shape for w in shared_net.weights] == [w.shape for w in plain_net.weights]
    assert shared_net.info["contrast"] == 0.5 and shared_net.info["adversary"] == 0.3
    assert "contrast" not in plain_net.info
    assert np.isfinite(shared_net.features(data.faces[:4])).all()
