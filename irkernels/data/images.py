"""Image folders, paired (BasicSR-style) folders, HR patch cropping and LQ/HQ pair sets.

Images are ``uint8`` arrays ``(H, W, 3)`` while on the host; training tensors are ``uint8``
``(N, 3, h, w)`` and become float in [0, 1] on the device.
"""
from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import DegradationConfig, PatchConfig  # noqa: F401  (re-exported)
from .degrade import degrade

log = logging.getLogger(__name__)

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class Image:
    name: str
    pixels: np.ndarray  # uint8 (H, W, 3)


def to_rgb_uint8(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """``arr`` as ``uint8 (H, W, 3)``: greyscale is replicated to RGB (logged), alpha dropped."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.clip(np.round(arr * 255), 0, 255).astype(np.uint8)
        else:  # 16-bit and other integer images: scale by the dtype's range
            arr = (arr.astype(np.float64) * 255 / np.iinfo(arr.dtype).max).round().astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        log.info("%s is greyscale: replicated to 3 channels", name)
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"{name} must be an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    return np.ascontiguousarray(arr[..., :3])


def read_image(path: str) -> np.ndarray:
    """Read ``path`` (PNG/JPEG/BMP/TIFF) as ``uint8 (H, W, 3)``; greyscale/palette promoted to RGB."""
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        if im.mode in ("L", "I;16", "I", "1"):
            return to_rgb_uint8(np.asarray(im.convert("L") if im.mode == "1" else im), os.path.basename(path))
        return to_rgb_uint8(np.asarray(im.convert("RGB")), os.path.basename(path))


def read_size(path: str) -> tuple[int, int]:
    """``(H, W)`` of the image at ``path``, from its header only (no pixels decoded)."""
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        return im.height, im.width


def list_images(folder: str) -> list[str]:
    """Sorted image paths directly inside ``folder``; ``ValueError`` if it is missing or holds none."""
    if not os.path.isdir(folder):
        raise ValueError(f"image folder {folder!r} does not exist or is not a directory")
    paths = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(EXTENSIONS))
    if not paths:
        raise ValueError(f"image folder {folder!r} holds no images ({', '.join(EXTENSIONS)})")
    return paths


def load_folder(folder: str, max_images: int | None = None) -> list[Image]:
    """All readable images of ``folder``; unreadable files are skipped with ONE warning listing them."""
    images, bad = [], []
    for path in list_images(folder):
        try:
            images.append(Image(os.path.splitext(os.path.basename(path))[0], read_image(path)))
        except Exception as exc:  # PIL raises many types for corrupt files
            bad.append(f"{os.path.basename(path)} ({type(exc).__name__})")
        if max_images is not None and len(images) >= max_images:
            break
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable file(s) in {folder}: {', '.join(bad)}", stacklevel=2)
    if not images:
        raise ValueError(f"image folder {folder!r} holds no readable images")
    return images


def is_paired_folder(root: str) -> bool:
    return os.path.isdir(os.path.join(root, "HR")) and os.path.isdir(os.path.join(root, "LR_bicubic"))


def load_paired_folder(root: str, scale: int) -> list[tuple[Image, Image]]:
    """(LR, HR) pairs from ``root/HR`` and ``root/LR_bicubic/X{scale}`` (BasicSR/DIV2K layout).

    LR files may carry the DIV2K suffix (``0001x4.png`` for ``0001.png``). HR images larger than
    ``scale ×`` LR by less than ``scale`` pixels are mod-cropped; any other size mismatch is an error.
    """
    lr_dir = os.path.join(root, "LR_bicubic", f"X{scale}")
    hr = {im.name: im for im in load_folder(os.path.join(root, "HR"))}
    if not os.path.isdir(lr_dir):
        raise ValueError(f"paired folder {root!r} has no LR_bicubic/X{scale} directory")
    pairs = []
    for lr in load_folder(lr_dir):
        key = re.sub(rf"x{scale}$", "", lr.name, flags=re.IGNORECASE)
        if key not in hr:
            raise ValueError(f"LR image {lr.name!r} in {lr_dir} has no HR counterpart {key!r}")
        h, w = lr.pixels.shape[:2]
        hp = hr[key].pixels
        if not (h * scale <= hp.shape[0] < (h + 1) * scale and w * scale <= hp.shape[1] < (w + 1) * scale):
            raise ValueError(f"pair {key!r}: HR {hp.shape[1]}x{hp.shape[0]} does not match LR {w}x{h} × {scale}")
        pairs.append((lr, Image(key, hp[: h * scale, : w * scale])))
    return pairs


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop ``img`` ``(H, W, ...)`` so both sides are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def patch_origins(h: int, w: int, size: int, stride: int, name: str = "image") -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of :func:`crop_patches`' grid, row-major."""
    if size < 1 or stride < 1:
        raise ValueError(f"patch size and stride must be >= 1, got size={size}, stride={stride}")
    if h < size or w < size:
        raise ValueError(f"{name} is {w}x{h}, smaller than the patch size {size}x{size}")
    ys = sorted(set(list(range(0, h - size + 1, stride)) + [h - size]))
    xs = sorted(set(list(range(0, w - size + 1, stride)) + [w - size]))
    return [(y, x) for y in ys for x in xs]


def crop_patches(img: np.ndarray, size: int, stride: int, name: str = "image") -> np.ndarray:
    """Patches ``(N, size, size, C)`` on a regular grid with ``stride``; the last row/column is
    aligned to the border so the whole image is covered. ``ValueError`` if ``img`` is smaller."""
    origins = patch_origins(img.shape[0], img.shape[1], size, stride, name)
    return np.stack([img[y:y + size, x:x + size] for y, x in origins])


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """``uint8 (..., H, W, 3)`` array → ``uint8 (..., 3, H, W)`` tensor."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).movedim(-1, -3).contiguous()


def to_float(t: torch.Tensor) -> torch.Tensor:
    """``uint8`` tensor → float32 in [0, 1]."""
    return t.float().div_(255)


def quantize(t: torch.Tensor) -> torch.Tensor:
    """Float in [0, 1] → ``uint8`` (rounded, clipped) — how outputs are stored and scored."""
    return t.detach().clamp(0, 1).mul(255).round().to(torch.uint8)


@dataclass
class PairSet:
    """Aligned LQ/HQ patches: ``lq`` ``uint8 (N, 3, h, w)``, ``hq`` ``uint8 (N, 3, h·f, w·f)``."""

    lq: torch.Tensor
    hq: torch.Tensor
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.lq.shape[0] != self.hq.shape[0]:
            raise ValueError(f"lq and hq must hold as many patches, got {self.lq.shape[0]} and {self.hq.shape[0]}")
        if self.lq.shape[0] == 0:
            raise ValueError("a PairSet needs at least one patch")

    def __len__(self) -> int:
        return self.lq.shape[0]

    def fingerprint(self) -> str:
        """sha256 of the pairs' shapes, dtypes and bytes (order matters: a trainer's draws depend on it)."""
        import hashlib

        digest = hashlib.sha256()
        for tensor in (self.lq, self.hq):
            t = tensor.detach().cpu().contiguous()
            digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
            digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return digest.hexdigest()


def hold_out_last(items: list, n: int, key) -> tuple[list, list]:
    """(training, held-out): the last ``n`` of ``items`` by ``key`` held out, never trained on, when
    at least one item is left to train on; else ``(items, [])`` in their order. Every held-out
    split of the package is this one (a pre-trained network's, ``train --val-images``'s)."""
    if n <= 0 or len(items) <= n:
        return list(items), []
    ordered = sorted(items, key=key)
    return ordered[:-n], ordered[-n:]


def make_pairs(images: list[Image], degradation: DegradationConfig, patches: PatchConfig) -> PairSet:
    """Crop HQ patches from ``images`` and degrade each image once to make the LQ patches.

    Degrading the whole image before cropping keeps bicubic's borders the benchmark's borders.
    """
    f = degradation.factor
    if patches.size % f or patches.stride % f:
        raise ValueError(f"patch size {patches.size} and stride {patches.stride} must be multiples of the scale {f}")
    gen = torch.Generator().manual_seed(degradation.seed)
    lqs, hqs, sources = [], [], []
    for im in images:
        hq = modcrop(im.pixels, f)
        hq_patches = crop_patches(hq, patches.size, patches.stride, im.name)
        lq = quantize(degrade(to_float(to_tensor(hq)), degradation, gen)).movedim(0, -1).numpy()
        lq_patches = crop_patches(lq, patches.size // f, patches.stride // f, im.name)
        lqs.append(to_tensor(lq_patches))
        hqs.append(to_tensor(hq_patches))
        sources += [im.name] * len(hq_patches)
    return PairSet(torch.cat(lqs), torch.cat(hqs), sources)


def make_pairs_from_paired(pairs: list[tuple[Image, Image]], scale: int, patches: PatchConfig) -> PairSet:
    """Aligned patches from stored (LR, HR) pairs (see ``load_paired_folder``)."""
    if patches.size % scale or patches.stride % scale:
        raise ValueError(f"patch size {patches.size} and stride {patches.stride} must be multiples of the scale {scale}")
    lqs, hqs, sources = [], [], []
    for lr, hr in pairs:
        hqs.append(to_tensor(crop_patches(hr.pixels, patches.size, patches.stride, hr.name)))
        lqs.append(to_tensor(crop_patches(lr.pixels, patches.size // scale, patches.stride // scale, lr.name)))
        sources += [hr.name] * hqs[-1].shape[0]
    return PairSet(torch.cat(lqs), torch.cat(hqs), sources)
