"""Builders of small CNNs for the bring-your-own-model tests (importable as ``own_models:<name>``)."""

from __future__ import annotations

import torch
from torch import nn


class SmallCNN(nn.Module):
    """conv(3->8) -> ReLU -> conv(8->16) -> ReLU -> SE-like 1x1 gate -> pool -> fc(16 -> n_outputs).

    The gate's convolutions run on a 1x1 pooled map (as in squeeze-and-excitation blocks), and the
    ``late`` convolution is registered before ``body`` but runs after it: the ``last_conv:N`` order
    must follow the forward pass.
    """

    def __init__(self, n_outputs: int = 5):
        super().__init__()
        self.late = nn.Conv2d(16, 16, 3, padding=1)
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.gate = nn.Conv2d(16, 16, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        h = torch.relu(self.late(h))
        h = h * torch.sigmoid(self.gate(self.pool(h)))
        return self.fc(self.pool(h).flatten(1))


def small_cnn(n_outputs: int = 5, seed: int = 0) -> nn.Module:
    """A seeded :class:`SmallCNN`."""
    torch.manual_seed(seed)
    return SmallCNN(n_outputs)


def not_a_model() -> str:
    """A builder that returns something else than a module."""
    return "model"
