"""How long and how a net is trained: plain settings, importable without PyTorch (the CLI reads
them for its defaults on machines that have no ``train`` extra)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoopSettings:
    """AdamW with a one-cycle learning rate and label smoothing, ``epochs`` rounds of
    ``steps_per_epoch`` batches (the emotion net's defaults: README, "Emotion model")."""

    epochs: int = 6
    steps_per_epoch: int = 100
    batch: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0
