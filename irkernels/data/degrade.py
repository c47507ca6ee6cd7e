"""Degradations that turn clean (HQ) images into LQ inputs, on float tensors in ``[0, 1]``.

Every function takes ``x`` of shape ``(C, H, W)`` or ``(N, C, H, W)``, any float dtype, and returns
the same rank. Conventions:

- ``imresize``: MATLAB's ``imresize(..., 'bicubic')`` (cubic kernel a = -0.5, antialiasing when
  down-sampling by widening the kernel by ``1/scale``, symmetric border padding, rows resized before
  columns). This is how SR benchmarks make their LR images.
- Gaussian noise ``sigma`` is given on the ``[0, 255]`` scale (``sigma=25`` adds N(0, (25/255)²)),
  as the denoising literature states it.
- Blur kernels sum to 1; images are padded by reflection.
- JPEG uses PIL's encoder (4:2:0 chroma subsampling, PIL's standard quantisation tables).
- Rain streaks: sparse random drops smeared by a motion kernel, added and clipped (the common
  synthetic-rain recipe of the deraining literature).
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_float_tensor
from .config import KINDS, DegradationConfig  # noqa: F401  (re-exported)


def _batched(name: str, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    check_float_tensor(name, x, ndim=(3, 4))
    return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


def cubic(t: torch.Tensor) -> torch.Tensor:
    """MATLAB's cubic convolution kernel (Keys, a = -0.5)."""
    a = t.abs()
    a2, a3 = a * a, a * a * a
    near = (1.5 * a3 - 2.5 * a2 + 1) * (a <= 1)
    far = (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2))
    return near + far


def resize_matrix(in_length: int, out_length: int, scale: float, antialiasing: bool = True) -> torch.Tensor:
    """Dense ``(out_length, in_length)`` float64 matrix of MATLAB's bicubic ``contributions``.

    Taps that fall outside the image are folded back symmetrically (MATLAB's ``[1:n, n:-1:1]``
    index map), so ``matrix @ signal`` is MATLAB's 1-D resize.
    """
    kernel_width = 4.0
    widen = scale < 1 and antialiasing
    if widen:
        kernel_width /= scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    dist = u[:, None] - indices
    weights = scale * cubic(scale * dist) if widen else cubic(dist)
    weights = weights / weights.sum(dim=1, keepdim=True)
    period = 2 * in_length
    folded = torch.remainder(indices.long() - 1, period)
    folded = torch.where(folded < in_length, folded, period - 1 - folded)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, folded, weights)
    return matrix


def imresize(x: torch.Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialiasing: bool = True) -> torch.Tensor:
    """MATLAB-style bicubic resize of ``x`` ``(C, H, W)`` / ``(N, C, H, W)`` by ``scale`` or to ``size``.

    The output size is ``ceil(H * scale)`` as in MATLAB. Values are not clipped (bicubic overshoots);
    computed in float64 and returned in ``x``'s dtype.
    """
    xb, squeeze = _batched("x", x)
    if (scale is None) == (size is None):
        raise ValueError("imresize needs exactly one of scale or size")
    h, w = xb.shape[-2:]
    if size is None:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        out_h, out_w, sh, sw = math.ceil(h * scale), math.ceil(w * scale), float(scale), float(scale)
    else:
        out_h, out_w = size
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"size must be positive, got {size}")
        sh, sw = out_h / h, out_w / w
    rows = resize_matrix(h, out_h, sh, antialiasing).to(xb.device)
    cols = resize_matrix(w, out_w, sw, antialiasing).to(xb.device)
    out = torch.einsum("oh,nchw,pw->ncop", rows, xb.double(), cols).to(x.dtype)
    return out[0] if squeeze else out


def bicubic_downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """``imresize(x, 1/scale)`` — the SR benchmarks' LR image (crop ``x`` to a multiple of ``scale`` first)."""
    if scale not in (2, 3, 4, 8):
        raise ValueError(f"scale must be 2, 3, 4 or 8, got {scale}")
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"x's size {h}x{w} must be a multiple of scale {scale} (use modcrop)")
    return imresize(x, size=(h // scale, w // scale))


def add_gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None,
                       clip: bool = True) -> torch.Tensor:
    """``x + N(0, (sigma/255)²)``; ``sigma`` on the [0, 255] scale. Clipped to [0, 1] when ``clip``."""
    check_float_tensor("x", x, ndim=(3, 4))
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
    out = x + noise * (sigma / 255.0)
    return out.clamp(0, 1) if clip else out


def gaussian_kernel(sigma: float, size: int | None = None) -> torch.Tensor:
    """Normalised 2-D Gaussian ``(size, size)`` float64; default size ``2*ceil(3 sigma)+1``."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else size
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd integer, got {size}")
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(t * t) / (2 * sigma * sigma))
    k = g[:, None] * g[None, :]
    return k / k.sum()


def motion_kernel(length: int, angle: float) -> torch.Tensor:
    """Normalised linear motion-blur kernel ``(L, L)`` (L = odd ``length``), direction ``angle`` degrees.

    The segment through the centre is sampled densely and splatted bilinearly onto the grid.
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    size = length if length % 2 else length + 1
    c = size // 2
    k = torch.zeros(size, size, dtype=torch.float64)
    theta = math.radians(angle)
    for s in torch.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length + 1).tolist():
        px, py = c + s * math.cos(theta), c - s * math.sin(theta)
        x0, y0 = math.floor(px), math.floor(py)
        fx, fy = px - x0, py - y0
        for dy, dx, wgt in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
            yy, xx = y0 + dy, x0 + dx
            if 0 <= yy < size and 0 <= xx < size:
                k[yy, xx] += wgt
    return k / k.sum()


def filter2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Depthwise 2-D filtering of ``x`` with ``kernel`` ``(k, k)``, reflection padding, same size."""
    xb, squeeze = _batched("x", x)
    k = kernel.shape[-1]
    pad = k // 2
    mode = "reflect" if min(xb.shape[-2:]) > pad else "replicate"
    padded = F.pad(xb, (pad, pad, pad, pad), mode=mode)
    weight = kernel.to(xb.dtype).to(xb.device).expand(xb.shape[1], 1, k, k)
    out = F.conv2d(padded, weight, groups=xb.shape[1])
    return out[0] if squeeze else out


def gaussian_blur(x: torch.Tensor, sigma: float, size: int | None = None) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels."""
    return filter2d(x, gaussian_kernel(sigma, size))


def motion_blur(x: torch.Tensor, length: int, angle: float) -> torch.Tensor:
    """Linear motion blur over ``length`` pixels in direction ``angle`` degrees."""
    return filter2d(x, motion_kernel(length, angle))


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG compression round trip at ``quality`` (1..95) through PIL, per image (RGB ``C = 3``)."""
    from PIL import Image

    xb, squeeze = _batched("x", x)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in [1, 100], got {quality}")
    if xb.shape[1] != 3:
        raise ValueError(f"x must have 3 channels for jpeg, got {xb.shape[1]}")
    arrays = (xb.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for arr in arrays:
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    res = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255
    return res[0] if squeeze else res


def rain_streaks(x: torch.Tensor, density: float = 0.02, length: int = 15, angle: float = 75.0,
                 intensity: float = 0.8, generator: torch.Generator | None = None) -> torch.Tensor:
    """Synthetic rain: drops with probability ``density`` per pixel, smeared along ``angle``, added.

    The streak layer (one per image, grey, shared by the channels) is scaled so a lone streak peaks
    at ``intensity``; the result is clipped to [0, 1].
    """
    xb, squeeze = _batched("x", x)
    if not 0 <= density <= 1:
        raise ValueError(f"density must be in [0, 1], got {density}")
    n, _, h, w = xb.shape
    drops = (torch.rand((n, 1, h, w), generator=generator, dtype=torch.float64) < density).double()
    kernel = motion_kernel(length, angle)
    streaks = filter2d(drops, kernel) * (intensity / kernel.max())
    out = (xb + streaks.to(device=xb.device, dtype=xb.dtype)).clamp(0, 1)
    return out[0] if squeeze else out


def degrade(hq: torch.Tensor, cfg: DegradationConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """The LQ version of ``hq`` ``(C, H, W)`` / ``(N, C, H, W)`` in [0, 1] under ``cfg``.

    Bicubic output is clipped to [0, 1] (an LR image is stored as an image).
    """
    if generator is None:
        generator = torch.Generator().manual_seed(cfg.seed)
    if cfg.kind == "bicubic":
        return bicubic_downsample(hq, cfg.scale).clamp(0, 1)
    if cfg.kind == "noise":
        return add_gaussian_noise(hq, cfg.noise_sigma, generator)
    if cfg.kind == "blur":
        return gaussian_blur(hq, cfg.blur_sigma)
    if cfg.kind == "motion":
        return motion_blur(hq, cfg.motion_length, cfg.motion_angle)
    if cfg.kind == "jpeg":
        return jpeg(hq, cfg.jpeg_quality)
    return rain_streaks(hq, cfg.rain_density, cfg.rain_length, generator=generator)
