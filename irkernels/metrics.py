"""PSNR and SSIM as the super-resolution literature computes them.

Inputs are tensors ``(3, H, W)`` / ``(N, 3, H, W)`` (RGB) or ``(H, W)`` / ``(N, H, W)`` (one channel)
on the **[0, 255] scale** — pass uint8-rounded outputs (``irkernels.data.quantize``) to score what is
stored. Everything is computed in float64.

- ``y_channel=True``: ITU-R BT.601 luma as MATLAB's ``rgb2ycbcr`` gives it,
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (R, G, B on [0, 255]), not rounded (BasicSR's
  convention).
- ``crop_border``: pixels removed on every side before scoring (the SR convention: = scale).
- SSIM: Wang et al. with an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, L = 255, 'valid'
  filtering (the 5-pixel filter margin is excluded), mean over pixels, then over channels; equal to
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


_Y_WEIGHTS = (65.481, 128.553, 24.966)


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """BT.601 luma ``(..., H, W)`` of RGB ``(..., 3, H, W)`` on the [0, 255] scale (MATLAB ``rgb2ycbcr``)."""
    if img.dim() < 3 or img.shape[-3] != 3:
        raise ValueError(f"img must be (..., 3, H, W), got shape {tuple(img.shape)}")
    w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=img.device)
    return 16.0 + torch.einsum("...chw,c->...hw", img.double(), w) / 255.0


def _prepare(pred: torch.Tensor, target: torch.Tensor, crop_border: int,
             y_channel: bool) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both as float64 ``(N, C, H, W)`` after the luma conversion and the border crop; whether the
    input was batched."""
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() not in (2, 3, 4):
            raise ValueError(f"{name} must be (H, W), (C, H, W) or (N, C, H, W), got shape {tuple(t.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    batched = pred.dim() == 4
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if pred.dim() == 2:
        pred, target = pred[None, None], target[None, None]
    elif pred.dim() == 3:
        pred, target = pred[None], target[None]
    pred, target = pred.double(), target.double()
    if y_channel:
        pred, target = rgb_to_y(pred)[:, None], rgb_to_y(target)[:, None]
    if crop_border:
        h, w = pred.shape[-2:]
        if h <= 2 * crop_border or w <= 2 * crop_border:
            raise ValueError(f"crop_border {crop_border} leaves nothing of a {h}x{w} image")
        pred = pred[..., crop_border:-crop_border, crop_border:-crop_border]
        target = target[..., crop_border:-crop_border, crop_border:-crop_border]
    return pred, target, batched


def psnr(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = False,
         data_range: float = 255.0) -> torch.Tensor:
    """PSNR in dB per image, float64 ``(N,)`` (a 0-d tensor for unbatched input); inf when equal."""
    p, t, batched = _prepare(pred, target, crop_border, y_channel)
    mse = (p - t).pow(2).mean(dim=(1, 2, 3))
    out = 10 * torch.log10(data_range**2 / mse)
    return out if batched else out[0]


def _gaussian_window(device: torch.device) -> torch.Tensor:
    t = torch.arange(11, dtype=torch.float64, device=device) - 5
    g = torch.exp(-(t * t) / (2 * 1.5**2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, crop_border: int = 0, y_channel: bool = False,
         data_range: float = 255.0) -> torch.Tensor:
    """SSIM per image (mean over channels), float64 ``(N,)`` (0-d for unbatched input)."""
    p, t, batched = _prepare(pred, target, crop_border, y_channel)
    n, c, h, w = p.shape
    if h < 11 or w < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 after cropping, got {w}x{h}")
    g = _gaussian_window(p.device)
    kh, kw = g.view(1, 1, 11, 1), g.view(1, 1, 1, 11)

    def blur(x: torch.Tensor) -> torch.Tensor:  # separable 'valid' Gaussian, per channel
        return F.conv2d(F.conv2d(x.reshape(n * c, 1, h, w), kh), kw)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_p, mu_t = blur(p), blur(t)
    var_p = blur(p * p) - mu_p**2
    var_t = blur(t * t) - mu_t**2
    cov = blur(p * t) - mu_p * mu_t
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    out = s.reshape(n, c, -1).mean(dim=2).mean(dim=1)
    return out if batched else out[0]
