"""EDSR and EDSR-baseline (Lim et al. 2017) with the official release's module names.

State-dict keys match the checkpoints of ``sanghyun-son/EDSR-PyTorch`` (``sub_mean``/``add_mean``,
``head.0``, ``body.{i}.body.{0,2}``, ``body.{n}``, ``tail.0.{0,2,...}``, ``tail.1``), so
``edsr_baseline_x4-6b446fab.pt`` & co. load as they are. The official networks work on the
[0, ``rgb_range``] scale (255); this module takes and returns [0, 1] images and scales inside.
"""
from __future__ import annotations

import math

import torch
from torch import nn

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean, as in the official code


class MeanShift(nn.Conv2d):
    """Fixed 1×1 conv adding ``sign × rgb_range × mean`` (the official ``common.MeanShift``)."""

    def __init__(self, rgb_range: float, sign: int = -1) -> None:
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(RGB_MEAN)
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    def __init__(self, n_feats: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(n_feats, n_feats, 3, padding=1), nn.ReLU(True),
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x).mul(self.res_scale)


def subpixel_upsampler(scale: int, n_feats: int) -> nn.Sequential:
    """Sub-pixel up-sampler: ``log2(scale)`` (conv, ×2 shuffle) stages, or one ×3 stage."""
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(n_feats, 4 * n_feats, 3, padding=1), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [nn.Conv2d(n_feats, 9 * n_feats, 3, padding=1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"scale must be 1, 2, 3, 4 or 8, got {scale}")
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR: ``(N, 3, h, w)`` in [0, 1] → ``(N, 3, h·scale, w·scale)``.

    Baseline: 16 blocks × 64 features, res_scale 1; full: 32 × 256, res_scale 0.1. ``scale=1`` gives
    the same trunk without an up-sampler (restoration tasks).
    """

    def __init__(self, scale: int = 4, n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1.0,
                 rgb_range: float = 255.0) -> None:
        super().__init__()
        self.scale, self.rgb_range = scale, rgb_range
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        self.body = nn.Sequential(*[ResBlock(n_feats, res_scale) for _ in range(n_resblocks)],
                                  nn.Conv2d(n_feats, n_feats, 3, padding=1))
        self.tail = nn.Sequential(subpixel_upsampler(scale, n_feats), nn.Conv2d(n_feats, 3, 3, padding=1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features before the up-sampler, ``(N, n_feats, h, w)`` (body output + head skip)."""
        x = self.head(self.sub_mean(x * self.rgb_range))
        return self.body(x) + x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add_mean(self.tail(self.features(x))) / self.rgb_range


def edsr_baseline(scale: int = 4) -> EDSR:
    return EDSR(scale, n_resblocks=16, n_feats=64, res_scale=1.0)


def edsr(scale: int = 4) -> EDSR:
    return EDSR(scale, n_resblocks=32, n_feats=256, res_scale=0.1)
