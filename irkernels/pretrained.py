"""Networks trained on the real data before a method runs: IDC's feature extractor and teacher,
TripleD's feature network. Both papers pre-train these on the full training set.

``pretrained_network`` trains ``model`` on the given LQ/HQ pairs with the substrate's trainer, or
reuses an earlier result: the cache key is the settings plus a fingerprint of the pairs, so the
same teacher is reused across runs and across methods, and a changed data set or budget trains a
new one (never silently the wrong one). Cache root: ``cache_dir`` if given, else
``$IRKERNELS_CACHE/pretrained`` (default ``~/.cache/irkernels/pretrained``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from .data.images import PairSet, quantize
from .methods import MethodConfig
from .metrics import psnr
from .models import build_model, load_checkpoint, model_scale
from .outputs import atomic_write_json
from .devices import dist_info, resolve_device
from .train import TrainConfig, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig(MethodConfig):
    """What defines a pre-trained network: its ``settings()`` (every field but the execution ones)
    and its data's fingerprint make its cache key."""

    EXECUTION: ClassVar[tuple[str, ...]] = ("device", "progress", "steps_flag")

    model: str = "edsr-baseline"
    scale: int = 4
    steps: int = 2000
    batch_size: int = 16
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    steps_flag: str = "--pretrain-steps"  # the calling command's flag for steps, named by its cost warning


def default_cache_dir() -> str:
    root = os.environ.get("IRKERNELS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "irkernels")
    return os.path.join(root, "pretrained")


def build_checked(name: str, scale: int) -> nn.Module:
    """``build_model(name, scale)``, refusing a network whose scale differs or that has no ``features()``."""
    net = build_model(name, scale)
    if model_scale(net) != scale:
        raise ValueError(f"network {name!r} up-scales ×{model_scale(net)}, but the run needs ×{scale}")
    if not hasattr(net, "features"):
        raise ValueError(f"network {name!r} has no features() method for the feature extractor")
    return net


@torch.no_grad()
def patch_psnr(net: nn.Module, pairs: PairSet, scale: int, device: torch.device | str = "cpu",
               chunk: int = 32) -> dict:
    """PSNR (dB, RGB and Y, ``scale`` pixels cropped per side, outputs rounded to uint8 as stored)
    of ``net`` on uint8 or [0, 1] patch pairs, from the squared error pooled over all patches (so a
    perfectly restored flat patch does not make it infinite): the validation score of a
    pre-trained network. Returns ``{"pairs", "psnr_rgb", "psnr_y"}``."""
    if not len(pairs):
        raise ValueError("pairs must hold at least one patch pair to score")
    was_training = net.training
    net = net.to(device).eval()
    mse_rgb, mse_y = [], []  # per patch, recovered from the metric's PSNR (inf → 0)
    for i in range(0, len(pairs), chunk):
        lq, hq = pairs.lq[i:i + chunk], pairs.hq[i:i + chunk]
        lq = lq.float() / 255 if lq.dtype == torch.uint8 else lq.float()
        hq = hq.double() if hq.dtype == torch.uint8 else quantize(hq.float()).double()
        sr = quantize(net(lq.to(device)).float()).cpu().double()
        mse_rgb.append(255.0 ** 2 / 10 ** (psnr(sr, hq, scale) / 10))
        mse_y.append(255.0 ** 2 / 10 ** (psnr(sr, hq, scale, y_channel=True) / 10))
    net.train(was_training)

    def pooled(mse: list[torch.Tensor]) -> float:
        return float(10 * torch.log10(255.0 ** 2 / torch.cat(mse).mean()))

    return {"pairs": len(pairs), "psnr_rgb": pooled(mse_rgb), "psnr_y": pooled(mse_y)}


def pretrained_network(cfg: PretrainConfig, pairs: PairSet, cache_dir: str | None = None,
                       val: PairSet | None = None) -> tuple[nn.Module, dict]:
    """A ``cfg.model`` network trained on ``pairs`` for ``cfg.steps`` steps, from the cache when there.

    ``pairs``: LQ ``(P, 3, h, w)`` and HQ ``(P, 3, h·scale, w·scale)`` patches (uint8 or float in
    [0, 1]). Returns the network (on CPU, train mode as the trainer left it) and an ``info`` dict for
    manifests: model, checkpoint path, cache key, steps, whether it was reused, seconds, final loss.
    An interrupted training resumes from its own ``last.pt`` in the cache folder.
    ``val``: held-out pairs (not part of the key); their ``patch_psnr`` goes into ``info["val"]``
    (cached beside the network with the pairs' fingerprint, recomputed for other pairs).
    """
    key_fields = {**cfg.settings(), "data": pairs.fingerprint()}
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:16]
    folder = os.path.join(cache_dir or default_cache_dir(), f"{cfg.model}-x{cfg.scale}-{key}")
    path = os.path.join(folder, "model.safetensors")
    info_path = os.path.join(folder, "info.json")
    torch.manual_seed(cfg.seed)  # the initial weights, should this call train
    net = build_checked(cfg.model, cfg.scale)
    if os.path.exists(path) and os.path.exists(info_path):
        with open(info_path) as fh:
            info = json.load(fh)
        log.info("reusing %s trained earlier on the same data and settings: %s", cfg.model, path)
        net = load_checkpoint(net, path)
        if val is not None and (info.get("val") or {}).get("fingerprint") != val.fingerprint():
            info["val"] = _val_score(net, val, cfg)
            if dist_info()[0] == 0:
                atomic_write_json(info_path, info)
        return net, {**info, "reused": True}
    log.info("training %s on the real data first (%d patch pairs, %d steps, batch %d) → %s",
             cfg.model, len(pairs), cfg.steps, cfg.batch_size, folder)
    device_type = resolve_device(cfg.device).type
    start = time.perf_counter()
    result = train(net, pairs, TrainConfig(out_dir=folder, steps=cfg.steps, batch_size=cfg.batch_size * dist_info()[1],
                                           seed=cfg.seed, device=cfg.device, progress=cfg.progress,
                                           channels_last=device_type == "cuda"),  # NHWC convs are slow on CPU
                   steps_flag=cfg.steps_flag, stage="pre-training")
    if dist_info()[1] > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()
    load_checkpoint(net, result.model_path)
    info = {"model": cfg.model, "scale": cfg.scale, "checkpoint": path, "cache_key": key, "trained_here": True,
            "steps": cfg.steps, "batch_size": cfg.batch_size, "seed": cfg.seed, "pairs": len(pairs),
            "seconds": time.perf_counter() - start, "final_loss": result.losses[-1] if result.losses else None}
    if val is not None:
        info["val"] = _val_score(net, val, cfg)
    if dist_info()[0] == 0:
        atomic_write_json(info_path, info)  # written last: its presence marks a finished network
    return net, {**info, "reused": False}


def _val_score(net: nn.Module, val: PairSet, cfg: PretrainConfig) -> dict:
    return {"fingerprint": val.fingerprint(), **patch_psnr(net, val, cfg.scale, resolve_device(cfg.device))}
