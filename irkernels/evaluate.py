"""Evaluating a restoration network (or the bicubic baseline) on test sets: PSNR/SSIM on RGB and Y.

A test set is a folder of HQ images (Set5, Set14, ...: LQ inputs are made with the degradation,
after mod-cropping to the scale) or a BasicSR paired folder (``HR/`` + ``LR_bicubic/X{s}/``).
Outputs are rounded to uint8 before scoring; ``crop_border`` defaults to the SR scale (0 otherwise).
"""
from __future__ import annotations

import os
from dataclasses import asdict

import torch
from torch import nn

from .configs import EvalConfig  # noqa: F401  (re-exported)
from .data.config import DegradationConfig
from .data.degrade import degrade, imresize
from .data.images import Image, is_paired_folder, load_folder, load_paired_folder, modcrop, quantize, to_float, to_tensor
from .metrics import psnr, ssim
from .devices import resolve_device
from .outputs import atomic_write_json

METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def bicubic_upsampler(scale: int):
    """The baseline "network": MATLAB-style bicubic up-sampling of ``(N, 3, h, w)``."""
    return lambda lq: imresize(lq, float(scale)).clamp(0, 1)


class Baseline(nn.Module):
    """The floor every trained network is read against, as a module (scored by the same code as a
    network): bicubic up-sampling ×``scale`` for SR, the degraded input itself for ``scale`` 1."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.upsample = bicubic_upsampler(scale) if scale > 1 else None

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        return self.upsample(lq) if self.upsample is not None else lq


def baseline_network(deg: DegradationConfig) -> tuple[str, Baseline]:
    """``(name, Baseline)`` of a degradation: bicubic for SR, the degraded input otherwise."""
    return ("bicubic" if deg.kind == "bicubic" else "degraded input"), Baseline(deg.factor)


def versus_baseline(label: str, network: dict, baseline: dict, baseline_name: str) -> list[str]:
    """One line per set of two ``evaluate`` results: the network's PSNR-Y next to the baseline's,
    and the word BELOW when the network does worse (a finding to read, not to miss)."""
    lines = []
    for name, res in network["sets"].items():
        ours, floor = res["mean"]["psnr_y"], baseline["sets"][name]["mean"]["psnr_y"]
        lines.append(f"{name}: {label} {ours:.2f} dB PSNR-Y, {baseline_name} {floor:.2f} dB ({ours - floor:+.2f} dB)"
                     + (f": BELOW {baseline_name}" if ours < floor else ""))
    return lines


def degraded_pairs(images: list[Image], deg: DegradationConfig) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, lq uint8 (3, h, w), hq uint8 (3, H, W)) with LQ made by ``deg`` (seeded) from mod-cropped HQ."""
    gen = torch.Generator().manual_seed(deg.seed)
    out = []
    for im in images:
        hq = to_tensor(modcrop(im.pixels, deg.factor))
        out.append((im.name, quantize(degrade(to_float(hq), deg, gen)), hq))
    return out


def stored_triples(pairs: list[tuple[Image, Image]]) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, lq, hq) uint8 triples of stored (LR, HR) image pairs, scored as they are."""
    return [(hr.name, to_tensor(lr.pixels), to_tensor(hr.pixels)) for lr, hr in pairs]


def folder_pairs(folder: str, deg: DegradationConfig) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """A test set's (name, lq, hq) triples: stored pairs for a paired folder, else degraded HQ images."""
    if deg.kind == "bicubic" and is_paired_folder(folder):
        return stored_triples(load_paired_folder(folder, deg.scale))
    return degraded_pairs(load_folder(folder), deg)


def is_grey(hq: torch.Tensor) -> bool:
    """Whether a ``(3, H, W)`` image holds one channel three times (R = G = B)."""
    return bool((hq[0] == hq[1]).all() and (hq[1] == hq[2]).all())


def image_scores(sr: torch.Tensor, hq: torch.Tensor, crop_border: int, metrics: tuple[str, ...] = METRICS) -> dict:
    """``metrics`` of one uint8 output against its uint8 target. A greyscale target (R = G = B, e.g.
    some Set14 images) is scored on its own channel against the output's channel mean, for the RGB
    and the Y columns alike: Y would add BT.601's 16 + 219/255·v offset and range (+1.3 dB PSNR)."""
    y = not is_grey(hq)
    if not y:
        sr, hq = sr.double().mean(0), hq[0].double()
    fns = {"psnr_rgb": lambda: psnr(sr, hq, crop_border), "ssim_rgb": lambda: ssim(sr, hq, crop_border),
           "psnr_y": lambda: psnr(sr, hq, crop_border, y_channel=y),
           "ssim_y": lambda: ssim(sr, hq, crop_border, y_channel=y)}
    return {m: float(fns[m]()) for m in metrics}


@torch.no_grad()
def evaluate_images(model, images: list[tuple[str, torch.Tensor, torch.Tensor]], crop_border: int,
                    device: torch.device, metrics: tuple[str, ...] = METRICS) -> dict:
    """Scores per image and their means: ``{"images": {name: {metric: v}}, "mean": {metric: v}}``
    (``metrics``: a subset of ``METRICS``, e.g. the PSNRs alone for a learning curve)."""
    per_image = {}
    for name, lq, hq in images:
        if min(hq.shape[-2:]) <= 2 * crop_border:
            raise ValueError(f"{name} is {hq.shape[-1]}x{hq.shape[-2]}: too small to score with a border crop of "
                             f"{crop_border} px on each side (--crop-border)")
        out = model(to_float(lq)[None].to(device))[0]
        if out.shape[-2:] != hq.shape[-2:]:
            raise ValueError(f"{name}: output {tuple(out.shape[-2:])} does not match the target {tuple(hq.shape[-2:])}")
        per_image[name] = image_scores(quantize(out).cpu(), hq, crop_border, metrics)
    mean = {m: sum(v[m] for v in per_image.values()) / len(per_image) for m in metrics}
    return {"images": per_image, "mean": mean}


def evaluate(model: nn.Module | None, cfg: EvalConfig, sets: dict[str, list[Image]] | None = None) -> dict:
    """Score ``model`` (``None`` → bicubic up-sampling, for ``bicubic`` degradation) on every set.

    ``sets`` may pass in-memory HQ images by set name in addition to ``cfg.sets`` folders. Returns
    ``{"config": ..., "sets": {name: {"images": ..., "mean": ...}}}`` and writes it to
    ``cfg.json_path`` atomically when given.
    """
    deg = cfg.degradation
    device = resolve_device(cfg.device)
    crop = (deg.scale if deg.kind == "bicubic" else 0) if cfg.crop_border is None else cfg.crop_border
    if model is None:
        if deg.kind != "bicubic":
            raise ValueError(f"the bicubic baseline (model=None) needs the bicubic degradation, got {deg.kind!r}")
        run = bicubic_upsampler(deg.scale)
    elif not isinstance(model, nn.Module):  # a plain function, e.g. baseline_network's
        run = model
    else:
        model = model.to(device).eval()
        run = model
    all_sets = {os.path.basename(os.path.normpath(folder)): folder_pairs(folder, deg) for folder in cfg.sets}
    all_sets.update({name: degraded_pairs(images, deg) for name, images in (sets or {}).items()})
    if not all_sets:
        raise ValueError("nothing to evaluate: give at least one test set")
    name = ("bicubic" if model is None else getattr(model, "registry_name", type(model).__name__)
            if isinstance(model, nn.Module) else "baseline")
    results = {"config": {**asdict(cfg), "crop_border": crop, "model": name},
               "sets": {name: evaluate_images(run, images, crop, device) for name, images in all_sets.items()}}
    if cfg.json_path:
        atomic_write_json(cfg.json_path, results)
    return results


def format_table(results: dict) -> str:
    """One row per set: mean PSNR/SSIM on RGB and Y."""
    header = f"{'set':<16}{'images':>7}{'PSNR-RGB':>10}{'SSIM-RGB':>10}{'PSNR-Y':>9}{'SSIM-Y':>9}"
    lines = [header, "-" * len(header)]
    for name, res in results["sets"].items():
        m = res["mean"]
        lines.append(f"{name:<16}{len(res['images']):>7}{m['psnr_rgb']:>10.3f}{m['ssim_rgb']:>10.4f}"
                     f"{m['psnr_y']:>9.3f}{m['ssim_y']:>9.4f}")
    return "\n".join(lines)
