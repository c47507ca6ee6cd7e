"""TripleD step 1: image complexity scores (paper §3.2).

Entropy (the label): the Shannon entropy in bits of the 256-bin histogram of the image's grey
levels, ``H = -Σ_k p_k log2 p_k`` over non-empty bins, where grey = ITU-R BT.601 luma
``0.299 R + 0.587 G + 0.114 B`` rounded to uint8 (PIL's ``convert("L")`` up to rounding). It equals
``skimage.measure.shannon_entropy`` of that grey image, and lies in ``[0, 8]``.

Scorer: a timm backbone (default ``vit_tiny_patch16_224`` built for 128×128 inputs, trained here
from scratch — no pretrained weights are downloaded) with one output and a sigmoid, fed images
bilinearly down-sampled (with antialiasing) to ``img_size`` and normalised with the ImageNet
mean/std. It is trained (MSE) to predict min-max-normalised entropy labels of random crops of the
user's images: crops of several sizes give many labelled samples from few images, and a crop's
label is the entropy of the crop at full resolution.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..costs import CostEstimate
from ..data.images import Image, read_image, to_float, to_tensor
from ..devices import resolve_device
from ..resume import StepCheckpoint
from ..seeds import derive_seed
from .config import ScorerConfig, TripleDConfig, stage_settings
from .items import item_name, load_item

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------
# entropy
# ---------------------------------------------------------------------------------------------
def grey_levels(pixels: np.ndarray) -> np.ndarray:
    """``uint8 (H, W, 3)`` RGB → ``uint8 (H, W)`` BT.601 luma, rounded."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"pixels must be uint8 (H, W, 3), got {pixels.dtype} {pixels.shape}")
    luma = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)


def image_entropy(pixels: np.ndarray) -> float:
    """Shannon entropy (bits) of the 256-bin grey-level histogram of ``uint8 (H, W, 3)`` ``pixels``."""
    counts = np.bincount(grey_levels(pixels).ravel(), minlength=256).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def minmax_normalise(values: Sequence[float] | np.ndarray, lo: float | None = None,
                     hi: float | None = None) -> np.ndarray:
    """``(v - lo) / (hi - lo)`` (``lo``/``hi`` default to the values' min/max), clipped to [0, 1]."""
    v = np.asarray(values, dtype=np.float64)
    lo = float(v.min()) if lo is None else lo
    hi = float(v.max()) if hi is None else hi
    return np.clip((v - lo) / max(hi - lo, 1e-12), 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# the scorer network
# ---------------------------------------------------------------------------------------------
class ComplexityScorer(nn.Module):
    """``(N, 3, H, W)`` float images in [0, 1] → ``(N,)`` complexity in (0, 1).

    Inputs of any size are bilinearly resized (antialiased) to ``img_size``; ``entropy_range`` is
    the (min, max) entropy the labels were normalised with (kept in the checkpoint).
    """

    def __init__(self, backbone: str = "vit_tiny_patch16_224", img_size: int = 128,
                 model_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        import timm

        self.backbone_name, self.img_size, self.model_kwargs = backbone, img_size, dict(model_kwargs or {})
        try:
            self.net = timm.create_model(backbone, pretrained=False, num_classes=1, img_size=img_size,
                                         **self.model_kwargs)
        except TypeError:  # convolutional backbones take any input size and have no img_size argument
            self.net = timm.create_model(backbone, pretrained=False, num_classes=1, **self.model_kwargs)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.entropy_range = (0.0, 8.0)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.img_size, self.img_size):
            return x
        return F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False,
                             antialias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be (N, 3, H, W), got shape {tuple(x.shape)}")
        x = (self.resize(x) - self.mean) / self.std
        return torch.sigmoid(self.net(x).squeeze(1).float())

    def metadata(self) -> dict[str, str]:
        return {"backbone": self.backbone_name, "img_size": str(self.img_size),
                "model_kwargs": json.dumps(self.model_kwargs), "entropy_range": json.dumps(self.entropy_range)}


def save_scorer(scorer: ComplexityScorer, path: str, extra: dict[str, str] | None = None) -> str:
    """Weights and how to rebuild the scorer (plus ``extra`` string metadata) in one safetensors file."""
    from ..models.checkpoint import save_checkpoint

    return save_checkpoint(scorer, path, metadata={**scorer.metadata(), **(extra or {})})


def load_scorer(path: str, device: str | torch.device = "cpu") -> ComplexityScorer:
    """A scorer saved by ``save_scorer`` (architecture read from the file's metadata)."""
    from safetensors import safe_open

    from ..models.checkpoint import load_checkpoint

    with safe_open(path, "pt") as fh:
        meta = fh.metadata() or {}
    if "backbone" not in meta:
        raise ValueError(f"{path} is not a scorer checkpoint (no 'backbone' metadata)")
    scorer = ComplexityScorer(meta["backbone"], int(meta["img_size"]), json.loads(meta["model_kwargs"]))
    load_checkpoint(scorer, path)
    scorer.entropy_range = tuple(json.loads(meta["entropy_range"]))
    return scorer.to(device).eval()


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def random_crop_batch(images: Sequence[Image], count: int, crop_min: int, crop_max: int, img_size: int,
                      rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """``count`` random crops (random image, side, position), each resized to ``img_size``, and
    their full-resolution entropies: ``((count, 3, img_size, img_size) float, (count,) float64)``."""
    crops, entropies = [], []
    for _ in range(count):
        px = images[rng.integers(len(images))].pixels
        h, w = px.shape[:2]
        side = int(rng.integers(crop_min, crop_max + 1))
        ch, cw = min(side, h), min(side, w)
        y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
        crop = px[y:y + ch, x:x + cw]
        entropies.append(image_entropy(crop))
        crops.append(F.interpolate(to_float(to_tensor(crop))[None], size=(img_size, img_size), mode="bilinear",
                                   align_corners=False, antialias=True)[0])
    return torch.stack(crops), np.asarray(entropies)


def train_scorer(images: Sequence[Image], cfg: ScorerConfig, checkpoint: str | None = None
                 ) -> tuple[ComplexityScorer, list[float]]:
    """Train a fresh scorer on random crops of ``images`` labelled with normalised entropy.

    The normalisation range is the min/max entropy over the images and a seeded probe of 512 crops.
    ``checkpoint``: a file for the loop's state (``irkernels.resume.StepCheckpoint``): on Ctrl-C or
    SIGTERM the step in progress is finished and the weights, AdamW, schedule, crop generator and
    losses written there; the same call again continues from that step.
    Returns the scorer (eval mode, on ``cfg.device``) and the per-step MSE losses.
    """
    if not images:
        raise ValueError("images must not be empty")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    scorer = ComplexityScorer(cfg.backbone, cfg.img_size, cfg.model_kwargs).to(device)
    _, probe = random_crop_batch(images, 512, cfg.crop_min, cfg.crop_max, 8, np.random.default_rng(derive_seed(cfg.seed, "entropy-probe")))
    whole = [image_entropy(im.pixels) for im in images]
    lo, hi = float(min(probe.min(), min(whole))), float(max(probe.max(), max(whole)))
    scorer.entropy_range = (lo, hi)
    opt = torch.optim.AdamW(scorer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.steps, 1))
    losses: list[float] = []
    ckpt = StepCheckpoint(checkpoint, "scorer training", cfg.steps, key={
        "settings": stage_settings(cfg),
        "images": [[im.name, list(im.pixels.shape)] for im in images], "entropy_range": [lo, hi]})

    def snapshot() -> dict:
        return {"scorer": scorer.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "crops": rng.bit_generator.state, "losses": losses}

    if ckpt.state is not None:
        scorer.load_state_dict(ckpt.state["scorer"])
        opt.load_state_dict(ckpt.state["optimizer"])
        sched.load_state_dict(ckpt.state["scheduler"])
        rng.bit_generator.state = ckpt.state["crops"]
        losses = list(ckpt.state["losses"])
    bar = ckpt.progress_bar(cfg.progress, "scorer")
    estimate = CostEstimate(f"scorer training on {device}", cfg.steps, "--scorer entropy (the default) skips it, "
                            "or fewer --scorer-steps make it shorter", ckpt.start, stage="scorer", bar=bar)
    scorer.train()
    with ckpt:
        for step in ckpt.steps(snapshot):
            estimate.tick(step)
            x, ent = random_crop_batch(images, cfg.batch_size, cfg.crop_min, cfg.crop_max, cfg.img_size, rng)
            target = torch.as_tensor(minmax_normalise(ent, lo, hi), dtype=torch.float32, device=device)
            loss = F.mse_loss(scorer(x.to(device)), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    ckpt.finish(snapshot)
    return scorer.eval(), losses


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------
class _ResizedImages(torch.utils.data.Dataset):
    """Images (paths, read lazily, or in memory) resized to ``img_size`` — what a DataLoader streams."""

    def __init__(self, items: Sequence[str] | Sequence[Image], img_size: int) -> None:
        self.items, self.img_size = items, img_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        item = self.items[i]
        pixels = item.pixels if isinstance(item, Image) else read_image(item)
        x = to_float(to_tensor(pixels))[None]
        return F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear", align_corners=False,
                             antialias=True)[0]


@torch.no_grad()
def score_images(scorer: ComplexityScorer, items: Sequence[str] | Sequence[Image], batch_size: int = 64,
                 num_workers: int = 0, device: str = "auto", progress: bool = False) -> np.ndarray:
    """Complexity scores ``(N,)`` float64 of image paths (streamed by a DataLoader: ``num_workers``
    processes read and down-sample, the device only sees ``img_size`` batches) or in-memory images."""
    if len(items) == 0:
        raise ValueError("nothing to score: items is empty")
    dev = resolve_device(device)
    scorer = scorer.to(dev).eval()
    loader = torch.utils.data.DataLoader(_ResizedImages(items, scorer.img_size), batch_size=batch_size,
                                         num_workers=num_workers, pin_memory=dev.type == "cuda")
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="score", dynamic_ncols=True)
    out = [scorer(batch.to(dev, non_blocking=True)).cpu() for batch in loader]
    return torch.cat(out).double().numpy()


def entropy_scores(items: Sequence[str] | Sequence[Image]) -> np.ndarray:
    """``(N,)`` full-resolution image entropies (the ``--scorer entropy`` path, on the CPU)."""
    return np.array([image_entropy(it.pixels if isinstance(it, Image) else read_image(it)) for it in items])


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (scipy), NaN-free: constant inputs give 0."""
    from scipy.stats import spearmanr

    r = spearmanr(a, b).statistic
    return 0.0 if r is None or not math.isfinite(r) else float(r)


# ---------------------------------------------------------------------------------------------
# the scoring step of a run
# ---------------------------------------------------------------------------------------------
def scorer_split(n: int, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of ``n`` images into (training, held-out) for the scorer check: a fifth (at
    least one, at most 64) is held out; with a single image both are that image."""
    if n < 2:
        return list(range(n)), list(range(n))
    held = sorted(random.Random(derive_seed(seed, "scorer-split")).sample(range(n), min(64, max(1, n // 5))))
    rest = sorted(set(range(n)) - set(held))
    return rest, held


def get_scorer(items: Sequence[str] | Sequence[Image], cfg: TripleDConfig, path: str,
               train_idx: Sequence[int], checkpoint: str | None = None) -> tuple[ComplexityScorer, dict]:
    """The scorer: ``cfg.scorer_checkpoint``, else ``path`` when its recorded settings match, else a
    new one trained on up to ``cfg.scorer_images`` of ``items[train_idx]`` (seeded choice) and saved
    to ``path``; its training keeps its state in ``checkpoint`` when stopped (removed once saved)."""
    if cfg.scorer_checkpoint:
        return load_scorer(cfg.scorer_checkpoint), {"checkpoint": cfg.scorer_checkpoint}
    key = json.dumps({"scorer": asdict(cfg.scorer_cfg), "items": [item_name(i) for i in items],
                      "scorer_images": cfg.scorer_images, "train": list(train_idx)}, sort_keys=True)
    if os.path.exists(path):
        from safetensors import safe_open

        with safe_open(path, "pt") as fh:
            if (fh.metadata() or {}).get("settings") == key:
                log.info("reusing the scorer in %s", path)
                return load_scorer(path), {"checkpoint": path, "reused": True}
    rng = random.Random(cfg.seed)
    chosen = sorted(rng.sample(list(train_idx), min(len(train_idx), cfg.scorer_images)))
    start = time.perf_counter()
    scorer, losses = train_scorer([load_item(items[i]) for i in chosen], cfg.scorer_cfg, checkpoint)
    save_scorer(scorer, path, {"settings": key})
    if checkpoint is not None and os.path.exists(checkpoint):
        os.remove(checkpoint)
    return scorer, {"checkpoint": path, "reused": False, "losses": losses, "train_images": len(chosen),
                    "train_seconds": time.perf_counter() - start}


@torch.no_grad()
def heldout_spearman(scorer: ComplexityScorer, images: Sequence[Image], cfg: TripleDConfig) -> float:
    """Spearman correlation between ``scorer`` and exact entropy on ``cfg.scorer_check_crops``
    seeded random crops of the held-out ``images`` (sides as in the scorer's training)."""
    sc = cfg.scorer_cfg
    crops, entropy = random_crop_batch(images, cfg.scorer_check_crops, sc.crop_min, sc.crop_max, scorer.img_size,
                                       np.random.default_rng(derive_seed(cfg.seed, "scorer-check")))
    dev = resolve_device(cfg.device)
    scorer = scorer.to(dev).eval()
    pred = torch.cat([scorer(crops[i:i + cfg.score_batch].to(dev)).cpu() for i in range(0, len(crops), cfg.score_batch)])
    return spearman(pred.double().numpy(), entropy)


def complexity_scores(items: Sequence[str] | Sequence[Image], cfg: TripleDConfig, scorer_path: str,
                      checkpoint: str | None = None) -> tuple[np.ndarray, dict]:
    """Every image's complexity score and a record of how it was obtained: exact entropy, or the ViT
    when its held-out Spearman correlation with entropy reaches ``cfg.min_spearman`` (else entropy,
    with a warning). Both costs are timed (seconds) for the report. ``checkpoint``: where the
    scorer's training keeps its state when stopped (``get_scorer``)."""
    if cfg.scorer == "entropy":
        start = time.perf_counter()
        scores = entropy_scores(items)
        return scores, {"used": "entropy", "entropy_seconds": time.perf_counter() - start}
    train_idx, held_idx = scorer_split(len(items), cfg.seed)
    scorer, info = get_scorer(items, cfg, scorer_path, train_idx, checkpoint)
    rho = heldout_spearman(scorer, [load_item(items[i]) for i in held_idx], cfg)
    info.update(spearman_heldout=rho, heldout_images=len(held_idx), heldout_crops=cfg.scorer_check_crops)
    start = time.perf_counter()
    if rho < cfg.min_spearman:
        log.warning("the ViT scorer ranks held-out crops with Spearman %.3f against exact entropy, below "
                    "min_spearman=%.2f: ranking by exact entropy instead", rho, cfg.min_spearman)
        scores = entropy_scores(items)
        info.update(used="entropy", fallback=True, entropy_seconds=time.perf_counter() - start)
        return scores, info
    scores = score_images(scorer, items, cfg.score_batch, cfg.num_workers, cfg.device, cfg.progress)
    info.update(used="vit", fallback=False, score_seconds=time.perf_counter() - start)
    return scores, info


__all__ = ["ComplexityScorer", "ScorerConfig", "complexity_scores", "entropy_scores", "get_scorer", "grey_levels",
           "heldout_spearman", "image_entropy", "load_scorer", "minmax_normalise", "random_crop_batch",
           "save_scorer", "score_images", "scorer_split", "spearman", "train_scorer"]
