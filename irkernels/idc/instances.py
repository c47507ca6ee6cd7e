"""Instances: one image → aligned HR patches and their bicubic LR patches (with coordinates)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..data import Image, bicubic_downsample, modcrop, quantize, to_float, to_tensor
from ..data.images import patch_origins
from .config import IDCConfig


@dataclass
class Instance:
    """Patches of one image: ``hr (N, 3, H, W)`` / ``lr (N, 3, H/s, W/s)`` uint8, ``origins`` the HR
    top-left corner ``(y, x)`` of each patch in the mod-cropped image."""

    name: str
    hr: torch.Tensor
    lr: torch.Tensor
    origins: list[tuple[int, int]]
    sources: list[str] | None = None  # per patch, its image's name where the instance spans several

    def __len__(self) -> int:
        return self.hr.shape[0]


def make_instance(image: Image, cfg: IDCConfig) -> Instance:
    """Mod-crop, bicubic-downsample the whole image once (MATLAB-style; so the patches' borders are
    the benchmark's), quantise to uint8 as a stored LR image would be, and crop both grids."""
    hr = to_tensor(modcrop(image.pixels, cfg.scale))
    return cut_instance(image.name, hr, quantize(bicubic_downsample(to_float(hr), cfg.scale)), cfg.scale,
                        cfg.hr_patch, cfg.hr_stride)


def cut_instance(name: str, hr: torch.Tensor, lr: torch.Tensor, scale: int, hr_patch: int, hr_stride: int) -> Instance:
    """The aligned patches of one image pair ``hr (3, H, W)`` / ``lr (3, H/s, W/s)`` uint8 on the
    HR grid of ``hr_patch`` at ``hr_stride`` (``patch_origins``), the LR ones at ``1/scale``."""
    origins = patch_origins(hr.shape[1], hr.shape[2], hr_patch, hr_stride, name)
    pl = hr_patch // scale
    hr_p = torch.stack([hr[:, y:y + hr_patch, x:x + hr_patch] for y, x in origins])
    lr_p = torch.stack([lr[:, y // scale:y // scale + pl, x // scale:x // scale + pl] for y, x in origins])
    return Instance(name, hr_p, lr_p, origins)


def merge_instances(instances: list[Instance], name: str = "split") -> Instance:
    """One instance holding every patch of ``instances`` (IDC's ``scope="split"``), each patch's
    image named in ``sources``."""
    return Instance(name, torch.cat([i.hr for i in instances]), torch.cat([i.lr for i in instances]),
                    [o for i in instances for o in i.origins], [i.name for i in instances for _ in range(len(i))])


def make_instances(images: list[Image], cfg: IDCConfig) -> list[Instance]:
    """Instances of every image large enough for one HR patch; the others are skipped with one
    warning listing them. ``ValueError`` when none is left, or when two images share a name."""
    names = [im.name for im in images]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"image names must be unique (they name the outputs), repeated: {dupes}")
    out, small = [], []
    for im in images:
        h, w = im.pixels.shape[:2]
        if h - h % cfg.scale < cfg.hr_patch or w - w % cfg.scale < cfg.hr_patch:
            small.append(f"{im.name} ({w}x{h})")
            continue
        out.append(make_instance(im, cfg))
    if small:
        warnings.warn(f"skipped {len(small)} image(s) smaller than one {cfg.hr_patch}x{cfg.hr_patch} HR patch "
                      f"(--lr-patch {cfg.lr_patch} × --scale {cfg.scale}): {', '.join(small)}", stacklevel=2)
    if not out:
        raise ValueError(f"no image is at least {cfg.hr_patch}x{cfg.hr_patch} pixels (HR patch = --lr-patch "
                         f"{cfg.lr_patch} × --scale {cfg.scale}); use a smaller --lr-patch")
    return out
