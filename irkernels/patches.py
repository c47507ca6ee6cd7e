"""Real patches and the generic ways to pick and relabel them, shared by IDC and ``compare``.

``Instance``: one image's aligned HR patches and their LR patches (``make_instances`` for bicubic
SR, ``cut_instance`` for any aligned pair). ``pick_patches``: the coreset baselines (random,
herding, k-center) on a network's deep features (``extract_features``). ``relabel``: a teacher's
HR targets of LR patches (``upsample``, reflect-padded so a patch's border gets context).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import Image, bicubic_downsample, modcrop, quantize, to_float, to_tensor
from .data.images import patch_origins
from .seeds import seeded_generator


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


def make_instance(image: Image, cfg: Any) -> Instance:
    """Mod-crop, bicubic-downsample the whole image once (MATLAB-style; so the patches' borders are
    the benchmark's), quantise to uint8 as a stored LR image would be, and crop both grids. ``cfg``:
    any settings with ``scale``, ``lr_patch`` and ``lr_stride`` (LR pixels), as IDC's and compare's."""
    hr = to_tensor(modcrop(image.pixels, cfg.scale))
    return cut_instance(image.name, hr, quantize(bicubic_downsample(to_float(hr), cfg.scale)), cfg.scale,
                        cfg.lr_patch * cfg.scale, cfg.lr_stride * cfg.scale)


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


def make_instances(images: list[Image], cfg: Any) -> list[Instance]:
    """Instances of every image large enough for one HR patch (``cfg``: as :func:`make_instance`);
    the others are skipped with one warning listing them. ``ValueError`` when none is left, or when
    two images share a name."""
    names = [im.name for im in images]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"image names must be unique (they name the outputs), repeated: {dupes}")
    hr_patch = cfg.lr_patch * cfg.scale
    out, small = [], []
    for im in images:
        h, w = im.pixels.shape[:2]
        if h - h % cfg.scale < hr_patch or w - w % cfg.scale < hr_patch:
            small.append(f"{im.name} ({w}x{h})")
            continue
        out.append(make_instance(im, cfg))
    if small:
        warnings.warn(f"skipped {len(small)} image(s) smaller than one {hr_patch}x{hr_patch} HR patch "
                      f"(--lr-patch {cfg.lr_patch} × --scale {cfg.scale}): {', '.join(small)}", stacklevel=2)
    if not out:
        raise ValueError(f"no image is at least {hr_patch}x{hr_patch} pixels (HR patch = --lr-patch "
                         f"{cfg.lr_patch} × --scale {cfg.scale}); use a smaller --lr-patch")
    return out


# ---------------------------------------------------------------------------------------------
# a network's view of patches: deep features, a teacher's HR targets
# ---------------------------------------------------------------------------------------------
def features(net: nn.Module, x: torch.Tensor, amp: bool) -> torch.Tensor:
    """``net.features(x)`` as contiguous float32; under bf16 autocast on CUDA when ``amp``."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and x.is_cuda):
        f = net.features(x)
    return f.float().contiguous()


@torch.no_grad()
def extract_features(net: nn.Module, lr: torch.Tensor, device: torch.device, chunk: int = 64,
                     amp: bool = False) -> torch.Tensor:
    """``net.features`` of uint8 LR patches ``(N, 3, h, w)`` in chunks (no gradient)."""
    return torch.cat([features(net, lr[i:i + chunk].to(device).float().div_(255), amp)
                      for i in range(0, len(lr), chunk)])


@torch.no_grad()
def upsample(teacher: nn.Module, lr: torch.Tensor, device: torch.device, margin: int = 8,
             chunk: int = 16) -> torch.Tensor:
    """Teacher's HR targets for LR patches ``(n, 3, h, w)`` in [0, 1] → ``(n, 3, h·s, w·s)`` (CPU, clamped).

    Each patch is reflect-padded by ``margin`` LR pixels (at most ``min(h, w) − 1``, reflection's
    limit) and the ``margin·s`` HR border cropped off the output: a convolutional teacher then sees
    image-like context at the patch border instead of its own zero padding, which otherwise leaves
    a washed-out frame a few pixels wide on every target (tests/test_idc_training.py,
    test_teacher_hr_borders_as_good_as_centres).
    """
    teacher = teacher.to(device).eval()
    h, w = lr.shape[-2:]
    m = min(margin, h - 1, w - 1)
    out = []
    for i in range(0, len(lr), chunk):
        x = lr[i:i + chunk].to(device)
        if m > 0:
            x = F.pad(x, (m, m, m, m), mode="reflect")
        y = teacher(x)
        s = y.shape[-1] // x.shape[-1]
        out.append(y[..., m * s:m * s + h * s, m * s:m * s + w * s].clamp_(0, 1).cpu())
    return torch.cat(out)


def relabel(teacher: nn.Module, lr: torch.Tensor, device: torch.device, margin: int = 8) -> torch.Tensor:
    """The teacher's uint8 HR targets of uint8 LR patches ``(n, 3, h, w)`` (as ``random+teacher``
    and IDC store them)."""
    return quantize(upsample(teacher, lr.float() / 255, device, margin))


# ---------------------------------------------------------------------------------------------
# coresets: pick n of an instance's N real patches
# ---------------------------------------------------------------------------------------------
# All work on the same per-patch feature vectors: the feature network's deep features of the LR
# patch, mean-pooled over space, (N, c) (the network IDC matches distributions with, reduced to one
# vector per patch as herding / k-center need).
PICKS = ("whole", "random", "random+teacher", "herding", "kcenter")


def random_selection(num: int, n: int, generator: torch.Generator) -> list[int]:
    """``n`` distinct indices of ``range(num)``, uniformly."""
    return torch.randperm(num, generator=generator)[:n].tolist()


def herding(features: torch.Tensor, n: int) -> list[int]:
    """Welling's herding: greedily add the patch that keeps the running mean of the chosen
    features closest (L2) to the instance's mean. ``features (N, D)``; ties → lowest index."""
    x = features.double()
    target = x.mean(0)
    chosen: list[int] = []
    total = torch.zeros_like(target)
    free = torch.ones(len(x), dtype=torch.bool)
    for i in range(n):
        err = ((target - (total + x) / (i + 1)) ** 2).sum(1).masked_fill(~free, float("inf"))
        j = int(err.argmin())
        chosen.append(j)
        free[j] = False
        total += x[j]
    return chosen


def kcenter(features: torch.Tensor, n: int) -> list[int]:
    """Greedy k-center (farthest-first traversal), started at the patch nearest the mean:
    each step adds the patch farthest (L2) from everything chosen. ``features (N, D)``."""
    x = features.double()
    first = int(((x - x.mean(0)) ** 2).sum(1).argmin())
    chosen = [first]
    dist = ((x - x[first]) ** 2).sum(1)
    dist[first] = -1.0  # never re-picked, even when the rest are duplicates (distance 0)
    for _ in range(n - 1):
        j = int(dist.argmax())
        chosen.append(j)
        dist = torch.minimum(dist, ((x - x[j]) ** 2).sum(1))
        dist[chosen] = -1.0
    return chosen


def pick_patches(how: str, inst: Instance, n: int, seed: int, net: nn.Module | None, device: torch.device,
                 amp: bool = True) -> list[int]:
    """Indices of ``inst``'s patches picked by ``how`` (one of ``PICKS``): all (``whole``), ``n`` at
    random (seeded by ``seed`` and the image's name; ``random+teacher`` picks the same), or ``n`` by
    herding / k-center on ``net``'s features."""
    if how == "whole":
        return list(range(len(inst)))
    if how in ("random", "random+teacher"):
        return random_selection(len(inst), n, seeded_generator(seed, inst.name))
    if how not in PICKS:
        raise ValueError(f"how must be one of {PICKS}, got {how!r}")
    feats = extract_features(net.to(device).eval(), inst.lr, device, amp=amp).mean(dim=(2, 3)).cpu()
    return herding(feats, n) if how == "herding" else kcenter(feats, n)


__all__ = ["PICKS", "Instance", "cut_instance", "extract_features", "features", "herding", "kcenter", "make_instance",
           "make_instances", "pick_patches", "random_selection", "relabel", "upsample"]
