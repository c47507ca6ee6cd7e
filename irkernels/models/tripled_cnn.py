"""TripleD's data fine-tuning CNN (§3.4): eight 3×3 stride-1 convolutions, image in, image out."""
from __future__ import annotations

import torch
from torch import nn


class TripleDCNN(nn.Module):
    """``(N, 3, H, W)`` → ``(N, 3, H, W)``: ``x + conv8(relu(... conv1(x)))``, all 3×3, stride 1.

    The last conv starts at zero so the untrained network is the identity: fine-tuning starts from
    the selected images themselves, which is what the method adjusts.
    """

    def __init__(self, channels: int = 64, layers: int = 8) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError(f"layers must be >= 2, got {layers}")
        convs: list[nn.Module] = [nn.Conv2d(3, channels, 3, 1, 1), nn.ReLU(True)]
        for _ in range(layers - 2):
            convs += [nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU(True)]
        self.body = nn.Sequential(*convs)
        self.last = nn.Conv2d(channels, 3, 3, 1, 1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Features of the 7th conv (after its ReLU), ``(N, channels, H, W)``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.last(self.features(x))
