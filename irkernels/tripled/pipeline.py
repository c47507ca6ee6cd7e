"""TripleD end to end: score → select → latent distillation → CNN fine-tuning → paired folder + report.

Units of work in the run folder (``irkernels.outputs.RunFolder``), each skipped on restart once its
record exists: ``scores`` (every image's score and the selection), ``real-<k>`` (one per selected
real image, written as a full LQ/HQ pair) and ``synthetic`` (the distilled, fine-tuned crops,
written as ``syn_*`` pairs). The scorer checkpoint ``OUT/scorer.safetensors`` is reused when its
recorded settings match. Output items: ``real_[<type>_]<name>`` and ``syn_[<type>_]<k>``.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..data.degrade import DegradationConfig, degrade
from ..data.images import (Image, PairSet, PatchConfig, list_images, load_folder, make_pairs, modcrop, quantize,
                           read_image, to_float, to_tensor)
from ..data.samples import sample_images
from ..models import build_model, load_checkpoint
from ..outputs import RunFolder, atomic_write_json, figure_html, mosaic_html, table_html, write_report
from ..devices import resolve_device
from ..pretrained import PretrainConfig, pretrained_network
from .features import FeatureTarget, feature_target
from .finetune import FinetuneConfig, distribution_terms, finetune_images
from .latent import (LatentConfig, decode, distill_latents, encode, load_vae, matching_loss, random_crops,
                     reconstruction_psnr, tiny_autoencoder, train_vae, vae_factor)
from .scoring import (ComplexityScorer, ScorerConfig, entropy_scores, load_scorer, random_crop_batch, save_scorer,
                      score_images, spearman, train_scorer)
from .selection import check_fraction, deal_to_types, ranking, selection_count

log = logging.getLogger(__name__)

# Task presets: each a list of (type name, degradation). Deblur is Gaussian σ = 2 px; JPEG quality 30;
# rain: 2 % drop density, 15 px streaks at 75°; all-in-one = the four same-size tasks, balanced.
_SAME_SIZE = {
    "denoise25": DegradationConfig(kind="noise", noise_sigma=25.0),
    "deblur": DegradationConfig(kind="blur", blur_sigma=2.0),
    "derain": DegradationConfig(kind="rain", rain_density=0.02, rain_length=15),
    "jpeg": DegradationConfig(kind="jpeg", jpeg_quality=30),
}
TASKS: dict[str, list[tuple[str, DegradationConfig]]] = {
    "sr4": [("sr4", DegradationConfig(kind="bicubic", scale=4))],
    **{name: [(name, deg)] for name, deg in _SAME_SIZE.items()},
    "allinone": list(_SAME_SIZE.items()),
}


def task_types(task: str) -> list[tuple[str, DegradationConfig]]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    return TASKS[task]


def differentiable_degradation(deg: DegradationConfig):
    """``x ↦ degrade(x, deg)`` with a fixed seed, for the CNN's restoration loss (gradients flow
    through bicubic, noise, blur and rain; JPEG goes through PIL and has none)."""
    if deg.kind == "jpeg":
        raise ValueError("the restoration loss needs a differentiable degradation; JPEG (PIL) is not")
    return lambda x: degrade(x, deg, _seeded(deg.seed, 11))


@dataclass
class TripleDConfig:
    """One TripleD run. ``scorer``: ``entropy`` (exact full-resolution entropy, the default: it
    ranks better per second than the ViT, docs/tripled.md) or ``vit`` (a trained
    ``ComplexityScorer``; ``scorer_checkpoint`` loads one instead of training). A ViT whose Spearman
    correlation with exact entropy on ``scorer_check_crops`` crops of held-out images is below
    ``min_spearman`` is not used: the run warns and ranks by entropy. ``target``: whose features the
    synthetic set matches — ``all`` (every image, the default) or ``subset`` (the selected ones).
    Synthetic images: ``syn_per_image`` random ``syn_size``² HQ crops per selected image.
    ``feature_model``/``feature_checkpoint``: the restoration network whose ``features(x)`` are
    matched; without a checkpoint it is first trained on all the images' LQ/HQ pairs
    (``pretrain_steps`` steps of ``pretrain_batch`` ``pretrain_patch``² HQ patches) through
    ``irkernels.pretrained`` (cached in ``cache_dir``, shared with other runs and methods).
    ``freq_std``: std of the CF frequencies (default ``1/√C``, see ``features``)."""

    task: str = "sr4"
    p: float = 0.02
    scorer: str = "entropy"
    scorer_checkpoint: str | None = None
    scorer_cfg: ScorerConfig = field(default_factory=ScorerConfig)
    scorer_images: int = 256
    min_spearman: float = 0.9
    scorer_check_crops: int = 128
    score_batch: int = 64
    num_workers: int = 0
    feature_model: str = "edsr-baseline"
    feature_checkpoint: str | None = None
    pretrain_steps: int = 2000
    pretrain_batch: int = 16
    pretrain_patch: int = 96
    cache_dir: str | None = None
    target: str = "all"
    num_freqs: int = 256
    freq_std: float | None = None
    syn_size: int = 128
    syn_per_image: int = 1
    use_latent: bool = True
    latent: LatentConfig = field(default_factory=LatentConfig)
    use_cnn: bool = True
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        task_types(self.task)
        check_fraction("p", self.p)
        if self.scorer not in ("vit", "entropy"):
            raise ValueError(f"scorer must be 'vit' or 'entropy', got {self.scorer!r}")
        if self.target not in ("subset", "all"):
            raise ValueError(f"target must be 'subset' or 'all', got {self.target!r}")
        if self.syn_size < 8 or self.syn_per_image < 1:
            raise ValueError(f"syn_size must be >= 8 and syn_per_image >= 1, got {self.syn_size}, {self.syn_per_image}")
        if self.pretrain_steps < 1 or self.pretrain_batch < 1 or self.pretrain_patch < self.scale:
            raise ValueError(f"pretrain_steps and pretrain_batch must be >= 1 and pretrain_patch >= the scale, got "
                             f"{self.pretrain_steps}, {self.pretrain_batch}, {self.pretrain_patch}")
        if self.scorer_check_crops < 2 or not -1 <= self.min_spearman <= 1:
            raise ValueError(f"scorer_check_crops must be >= 2 and min_spearman in [-1, 1], got "
                             f"{self.scorer_check_crops}, {self.min_spearman}")
        if self.finetune.restoration_weight > 0:
            if len(task_types(self.task)) > 1:
                raise ValueError("the restoration loss needs a single-degradation task, not allinone")
            differentiable_degradation(task_types(self.task)[0][1])
        if self.syn_size % self.scale:
            raise ValueError(f"syn_size must be a multiple of the scale {self.scale}, got {self.syn_size}")

    @property
    def scale(self) -> int:
        return task_types(self.task)[0][1].factor


@dataclass
class TripleDResult:
    folder: RunFolder
    items: list
    names: list[str]
    scores: np.ndarray
    selected: list[tuple[int, str]]
    report_path: str


def _seeded(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(parts)).generate_state(1)[0]))


class _LazyTensors:
    """Images (paths or ``Image``) as float ``(3, H, W)`` tensors, read on access."""

    def __init__(self, items: Sequence[str] | Sequence[Image], mod: int = 1) -> None:
        self.items, self.mod = items, mod

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        it = self.items[i]
        return to_float(to_tensor(modcrop(it.pixels if isinstance(it, Image) else read_image(it), self.mod)))


def _item_name(item: str | Image) -> str:
    return item.name if isinstance(item, Image) else os.path.splitext(os.path.basename(item))[0]


def _load(item: str | Image) -> Image:
    return item if isinstance(item, Image) else Image(_item_name(item), read_image(item))


# ---------------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------------
def scorer_split(n: int, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of ``n`` images into (training, held-out) for the scorer check: a fifth (at
    least one, at most 64) is held out; with a single image both are that image."""
    if n < 2:
        return list(range(n)), list(range(n))
    held = sorted(random.Random(seed + 1).sample(range(n), min(64, max(1, n // 5))))
    rest = sorted(set(range(n)) - set(held))
    return rest, held


def get_scorer(items: Sequence[str] | Sequence[Image], cfg: TripleDConfig, path: str,
               train_idx: Sequence[int]) -> tuple[ComplexityScorer, dict]:
    """The scorer: ``cfg.scorer_checkpoint``, else ``path`` when its recorded settings match, else a
    new one trained on up to ``cfg.scorer_images`` of ``items[train_idx]`` (seeded choice) and saved to ``path``."""
    if cfg.scorer_checkpoint:
        return load_scorer(cfg.scorer_checkpoint), {"checkpoint": cfg.scorer_checkpoint}
    key = json.dumps({"scorer": asdict(cfg.scorer_cfg), "items": [_item_name(i) for i in items],
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
    scorer, losses = train_scorer([_load(items[i]) for i in chosen], cfg.scorer_cfg)
    save_scorer(scorer, path, {"settings": key})
    return scorer, {"checkpoint": path, "reused": False, "losses": losses, "train_images": len(chosen),
                    "train_seconds": time.perf_counter() - start}


@torch.no_grad()
def heldout_spearman(scorer: ComplexityScorer, images: Sequence[Image], cfg: TripleDConfig) -> float:
    """Spearman correlation between ``scorer`` and exact entropy on ``cfg.scorer_check_crops``
    seeded random crops of the held-out ``images`` (sides as in the scorer's training)."""
    sc = cfg.scorer_cfg
    crops, entropy = random_crop_batch(images, cfg.scorer_check_crops, sc.crop_min, sc.crop_max, scorer.img_size,
                                       np.random.default_rng([cfg.seed, 9]))
    dev = resolve_device(cfg.device)
    scorer = scorer.to(dev).eval()
    pred = torch.cat([scorer(crops[i:i + cfg.score_batch].to(dev)).cpu() for i in range(0, len(crops), cfg.score_batch)])
    return spearman(pred.double().numpy(), entropy)


def complexity_scores(items: Sequence[str] | Sequence[Image], cfg: TripleDConfig, scorer_path: str
                      ) -> tuple[np.ndarray, dict]:
    """Every image's complexity score and a record of how it was obtained: exact entropy, or the ViT
    when its held-out Spearman correlation with entropy reaches ``cfg.min_spearman`` (else entropy,
    with a warning). Both costs are timed (seconds) for the report."""
    if cfg.scorer == "entropy":
        start = time.perf_counter()
        scores = entropy_scores(items)
        return scores, {"used": "entropy", "entropy_seconds": time.perf_counter() - start}
    train_idx, held_idx = scorer_split(len(items), cfg.seed)
    scorer, info = get_scorer(items, cfg, scorer_path, train_idx)
    rho = heldout_spearman(scorer, [_load(items[i]) for i in held_idx], cfg)
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


def pretrain_pairs(items: Sequence[str] | Sequence[Image], cfg: TripleDConfig) -> PairSet:
    """LQ/HQ pairs of every image under every task type: square HQ patches of side
    ``cfg.pretrain_patch`` (capped by the smallest image, a multiple of the scale), stride = side."""
    images = [_load(i) for i in items]
    side = min([cfg.pretrain_patch] + [min(im.pixels.shape[:2]) for im in images])
    side -= side % cfg.scale
    if side < cfg.scale:
        raise ValueError(f"the smallest image is smaller than the scale {cfg.scale}: nothing to pre-train on")
    parts = [make_pairs(images, deg, PatchConfig(side, side)) for _, deg in task_types(cfg.task)]
    return PairSet(torch.cat([d.lq for d in parts]), torch.cat([d.hq for d in parts]),
                   [n for d in parts for n in d.sources])


def feature_network(cfg: TripleDConfig, items: Sequence[str] | Sequence[Image]) -> tuple[torch.nn.Module, dict]:
    """The frozen network whose features are matched and a record of where it came from:
    ``cfg.feature_checkpoint``, else ``cfg.feature_model`` trained on ``items`` first
    (``irkernels.pretrained.pretrained_network``, cached and reused when settings and data match)."""
    if cfg.feature_checkpoint:
        torch.manual_seed(cfg.seed)
        net = load_checkpoint(build_model(cfg.feature_model, cfg.scale), cfg.feature_checkpoint)
        info = {"model": cfg.feature_model, "checkpoint": os.path.abspath(cfg.feature_checkpoint)}
    else:
        pre = PretrainConfig(model=cfg.feature_model, scale=cfg.scale, steps=cfg.pretrain_steps,
                             batch_size=cfg.pretrain_batch, seed=cfg.seed, device=cfg.device, progress=cfg.progress)
        net, info = pretrained_network(pre, pretrain_pairs(items, cfg), cfg.cache_dir)
    return net.eval().requires_grad_(False), info


def synthetic_crops(images: Sequence[Image], types: Sequence[str], size: int, per_image: int,
                    seed: int) -> tuple[torch.Tensor, list[str]]:
    """``per_image`` seeded random ``size``² crops of each image (``ValueError`` if one is smaller)."""
    rng = np.random.default_rng(seed)
    crops, crop_types = [], []
    for im, t in zip(images, types):
        h, w = im.pixels.shape[:2]
        if h < size or w < size:
            raise ValueError(f"image {im.name!r} is {w}x{h}, smaller than the synthetic crop size {size}x{size} "
                             "(choose a smaller --syn-size)")
        for _ in range(per_image):
            y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
            crops.append(to_float(to_tensor(im.pixels[y:y + size, x:x + size])))
            crop_types.append(t)
    return torch.stack(crops), crop_types


def _projection_samples(extractor, images: torch.Tensor, target: FeatureTarget, axis: torch.Tensor,
                        count: int, seed: int, device) -> list[float]:
    """Standardised features of ``images`` projected on ``axis`` (``count`` random positions)."""
    with torch.no_grad():
        feats = torch.cat([extractor.features(images[i:i + 8].to(device)).cpu() for i in range(0, len(images), 8)])
    s = target.samples(feats, count, _seeded(seed, 7))
    return (s @ axis).tolist()


def vae_split(targets: Sequence[torch.Tensor], cfg: TripleDConfig) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Training images for the fallback VAE (up to 64) and ``vae_check_crops`` seeded crops of
    held-out images (every eighth image, at least one; a single image serves both)."""
    n = len(targets)
    held = list(range(7, n, 8)) or [n - 1]
    train_idx = [i for i in range(n) if i not in held] or held
    crop = cfg.latent.vae_crop
    check = random_crops([targets[i] for i in held], cfg.latent.vae_check_crops, crop,
                         np.random.default_rng([cfg.seed, 13]))
    return [targets[i] for i in train_idx[:64]], check


def trusted_vae(targets: Sequence[torch.Tensor], cfg: TripleDConfig) -> tuple[torch.nn.Module | None, dict]:
    """The VAE for latent distillation and its record (``source``, ``reconstruction_psnr`` on
    held-out crops, ``trusted``, training history): a loaded or fallback one that reaches
    ``cfg.latent.vae_min_psnr``, else ``None`` (pixel-space distillation) after a loud warning."""
    lat = cfg.latent
    train_images, check = vae_split(targets, cfg)
    if lat.vae:
        vae = load_vae(lat.vae, lat.subfolder).to(resolve_device(cfg.device))
        record = {"source": os.path.abspath(lat.vae), "reconstruction_psnr": reconstruction_psnr(vae, check)}
    else:
        torch.manual_seed(cfg.seed)
        vae = tiny_autoencoder()
        fit = train_vae(vae, train_images, lat, check)
        record = {"source": "tiny AutoencoderKL trained here", "reconstruction_psnr": fit["psnr"],
                  "steps": fit["steps"], "psnr_history": fit["psnr_history"], "losses": fit["losses"]}
    record.update(min_psnr=lat.vae_min_psnr, check_crops=len(check), crop=lat.vae_crop,
                  trusted=record["reconstruction_psnr"] >= lat.vae_min_psnr)
    if not record["trusted"]:
        record["warning"] = (f"VAE NOT TRUSTED: its reconstruction PSNR on held-out crops is "
                             f"{record['reconstruction_psnr']:.2f} dB, below the bar of {lat.vae_min_psnr:.1f} dB; "
                             "distilling in pixel space instead (give a better --vae DIR, or more --vae-steps)")
        log.warning(record["warning"])
        return None, record
    return vae, record


def distil(crops: torch.Tensor, target_items: Sequence[str] | Sequence[Image], cfg: TripleDConfig,
           feature_items: Sequence[str] | Sequence[Image] | None = None) -> tuple[torch.Tensor, dict]:
    """Latent distillation then CNN fine-tuning of ``crops`` towards ``target_items``' features.

    ``feature_items``: the images the feature network is pre-trained on (default ``target_items``).
    Returns the synthetic images and a record: the feature network's and the VAE's records, losses,
    eq. 4's terms and the matching loss before and after each step, and 1-D feature projections
    (real / before / after the CNN) for the report.
    """
    device = resolve_device(cfg.device)
    extractor, net_info = feature_network(cfg, feature_items if feature_items is not None else target_items)
    extractor = extractor.to(device)
    targets = _LazyTensors(target_items)
    target = feature_target(extractor, targets, cfg.num_freqs, cfg.seed, device, cfg.freq_std)
    record: dict = {"target": cfg.target, "target_images": len(targets), "feature_positions": target.count,
                    "feature_network": net_info, "cf_modulus_median": cf_modulus_median(target),
                    "freq_std": float(target.freqs.std())}

    def measure(images: torch.Tensor) -> dict:
        with torch.no_grad():
            feats = torch.cat([extractor.features(images[i:i + 8].to(device)) for i in range(0, len(images), 8)])
            l2, kl = distribution_terms(feats, target)
            ncfd = matching_loss(images.to(device), extractor, target, cfg.latent.max_samples, _seeded(cfg.seed, 3))
        return {"l2": float(l2), "kl": float(kl), "ncfd": float(ncfd)}

    record["initial"] = measure(crops)
    synthetic = crops
    if cfg.use_latent:
        vae, record["vae"] = trusted_vae(targets, cfg)
        if vae is not None:
            f = math.lcm(vae_factor(vae), cfg.scale)
            if cfg.syn_size % f:
                raise ValueError(f"syn_size {cfg.syn_size} must be a multiple of {f} (the VAE factor and the scale)")
            with torch.no_grad():
                recon = torch.cat([decode(vae, encode(vae, crops[i:i + 8].to(device))).cpu()
                                   for i in range(0, len(crops), 8)])
            record["after_vae_reconstruction"] = measure(recon)
        record["distillation_space"] = "latent" if vae is not None else "pixel"
        synthetic, record["latent_losses"] = distill_latents(crops, vae, extractor, target, cfg.latent)
        record["after_latent"] = measure(synthetic)
    before_cnn = synthetic
    if cfg.use_cnn:
        restoration = None
        if cfg.finetune.restoration_weight > 0:
            (_, deg), = task_types(cfg.task)
            restoration = (extractor, differentiable_degradation(deg))
        synthetic, _, history = finetune_images(synthetic, extractor, target, cfg.finetune, restoration)
        record["cnn_losses"] = history
        record["after_cnn"] = measure(synthetic)
    record["psnr_vs_input"] = {"before_cnn": _mean_psnr(before_cnn, crops), "final": _mean_psnr(synthetic, crops)}
    # Figure 12: project standardised features on the real set's first principal axis.
    with torch.no_grad():
        real = torch.cat([target.samples(extractor.features(targets[i][None].to(device)).cpu(), 4096,
                                         _seeded(cfg.seed, 5, i)) for i in range(min(len(targets), 16))])
    axis = torch.linalg.svd(real - real.mean(0), full_matrices=False).Vh[0]
    record["projection"] = {
        "real": (real[torch.randperm(len(real), generator=_seeded(cfg.seed, 6))[:2000]] @ axis).tolist(),
        "before_cnn": _projection_samples(extractor, before_cnn, target, axis, 2000, cfg.seed, device),
        "after_cnn": _projection_samples(extractor, synthetic, target, axis, 2000, cfg.seed, device),
    }
    return synthetic, record


def cf_modulus_median(target: FeatureTarget) -> float:
    """Median over frequencies of the real set's empirical CF modulus ``|Φ(t)|``."""
    return float(torch.sqrt(target.cf.re.double() ** 2 + target.cf.im.double() ** 2).median())


def _mean_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    from ..metrics import psnr

    return float(psnr(a.clamp(0, 1), b, data_range=1.0).clamp(max=100).mean())


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def settings_of(cfg: TripleDConfig, data: str | None) -> dict:
    s = asdict(cfg)
    for k in ("device", "progress", "num_workers", "score_batch", "cache_dir"):  # do not change the outputs
        s.pop(k)
    for sub in ("scorer_cfg", "latent", "finetune"):
        s[sub] = {k: v for k, v in s[sub].items() if k not in ("device", "progress")}
    return {"method": "tripled", "data": os.path.abspath(data) if data else "embedded", **s}


def run_tripled(cfg: TripleDConfig, out: str, data: str | None = None, overwrite: bool = False) -> TripleDResult:
    """Run TripleD on the images of folder ``data`` (default: the embedded photos) into ``out``."""
    items: list = list_images(data) if data else sample_images()
    if data:
        load_folder(data, max_images=1)  # a clear error now if nothing is readable
    types = task_types(cfg.task)
    folder = RunFolder(out, settings_of(cfg, data), cfg.scale, overwrite=overwrite)
    # the sub-steps follow the run's device and progress settings
    for sub in (cfg.scorer_cfg, cfg.latent, cfg.finetune):
        sub.device, sub.progress = cfg.device, cfg.progress
    names = [_item_name(i) for i in items]
    if len(set(names)) != len(names):
        raise ValueError(f"image names in {data!r} must be unique (ignoring the extension)")

    if folder.is_done("scores"):
        rec = next(r for r in folder.records() if r["unit"] == "scores")
        if rec["names"] != names:
            raise ValueError(f"the images in {data or 'the embedded set'} changed since {folder.root} was scored; "
                             "use another --out or --overwrite")
        scores, selected = np.asarray(rec["scores"]), [tuple(s) for s in rec["selected"]]
    else:
        scores, info = complexity_scores(items, cfg, os.path.join(folder.root, "scorer.safetensors"))
        type_names = [t for t, _ in types]
        k = selection_count(len(items), cfg.p, minimum=min(len(type_names), len(items)))
        selected = deal_to_types(ranking(scores)[:k], type_names)
        folder.finish_unit("scores", {"names": names, "scores": scores, "selected": selected, "scorer": cfg.scorer,
                                      "scorer_info": {k2: v for k2, v in info.items() if k2 != "losses"},
                                      "scorer_losses": info.get("losses")})
    degradations = dict(types)
    multi = len(types) > 1
    selected_images = [_load(items[i]) for i, _ in selected]

    for k, ((idx, t), im) in enumerate(zip(selected, selected_images)):
        unit = f"real-{k:05d}"
        if folder.is_done(unit):
            continue
        hq = to_float(to_tensor(modcrop(im.pixels, cfg.scale)))
        lq = quantize(degrade(hq, degradations[t], _seeded(cfg.seed, idx, 1))).float() / 255
        item = f"real_{t}_{im.name}" if multi else f"real_{im.name}"
        folder.write_pair(item, lq, hq)
        folder.finish_unit(unit, {"item": item, "source": im.name, "type": t, "score": float(scores[idx])})

    crops = None
    if cfg.use_latent or cfg.use_cnn:  # seeded, so a restart redraws the same crops (for the report)
        crops, crop_types = synthetic_crops(selected_images, [t for _, t in selected], cfg.syn_size,
                                            cfg.syn_per_image, cfg.seed)
    if not folder.is_done("synthetic") and crops is not None:
        target_items = [items[i] for i, _ in selected] if cfg.target == "subset" else items
        synthetic, record = distil(crops, target_items, cfg, items)
        written = []
        for k, (img, t) in enumerate(zip(synthetic, crop_types)):
            item = f"syn_{t}_{k:05d}" if multi else f"syn_{k:05d}"
            lq = quantize(degrade(img, degradations[t], _seeded(cfg.seed, k, 2))).float() / 255
            folder.write_pair(item, lq, img)
            written.append(item)
        folder.finish_unit("synthetic", {"items": written, **record})

    records = {r["unit"]: r for r in folder.records()}
    syn = records.get("synthetic", {})
    vae = {k: v for k, v in syn.get("vae", {}).items() if k not in ("losses", "psnr_history")}
    folder.write_manifest({"task": cfg.task, "types": [t for t, _ in types],
                           "degradations": {t: asdict(d) for t, d in types},
                           "num_images": len(items), "num_selected": len(selected),
                           "scorer_used": records["scores"]["scorer_info"].get("used"),
                           "scorer_spearman_heldout": records["scores"]["scorer_info"].get("spearman_heldout"),
                           "feature_network": syn.get("feature_network"), "vae": vae or None,
                           "distillation_space": syn.get("distillation_space")})
    report = write_tripled_report(folder, records, items, crops)
    return TripleDResult(folder, items, names, np.asarray(records["scores"]["scores"]), selected, report)


@dataclass
class TrainSpec:
    """Training on the result with the substrate's trainer: ``steps`` optimizer steps of
    ``batch_size`` HR patches of ``patch_size`` (``accum_steps`` micro-batches), AdamW ``lr`` with a
    cosine schedule, network ``model``; ``test`` folders to evaluate on. ``dynamic_epochs > 0``
    trains instead on the whole input with the epoch-wise dynamic selection (``DynamicSampler``:
    ``steps`` split evenly over the epochs of one run, pool ``q_start`` → ``p``, ``q_schedule``)."""

    steps: int = 1000
    model: str = "edsr-baseline"
    batch_size: int = 16
    accum_steps: int = 1
    patch_size: int = 96
    lr: float = 3e-4
    min_lr: float = 1e-6
    test: list[str] = field(default_factory=list)
    dynamic_epochs: int = 0
    q_start: float = 0.2
    q_schedule: str = "linear"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.dynamic_epochs < 0:
            raise ValueError(f"steps must be >= 1 and dynamic_epochs >= 0, got {self.steps}, {self.dynamic_epochs}")
        if self.dynamic_epochs > self.steps:
            raise ValueError(f"dynamic_epochs ({self.dynamic_epochs}) cannot exceed steps ({self.steps})")


def _check_patch(patch_size: int, scale: int, sides: Sequence[int]) -> None:
    if patch_size % scale or patch_size > min(sides):
        raise ValueError(f"patch_size must be a multiple of the scale {scale} and at most the smallest image side "
                         f"{min(sides)}, got {patch_size}")


def _train(net: torch.nn.Module, data, cfg: TripleDConfig, spec: TrainSpec, out_dir: str, allowed=None):
    from ..models import model_scale
    from ..train import TrainConfig, train

    if model_scale(net) != cfg.scale:
        raise ValueError(f"model {spec.model} up-scales ×{model_scale(net)} but task {cfg.task} needs ×{cfg.scale}")

    return train(net, data, TrainConfig(out_dir=out_dir, steps=spec.steps, batch_size=spec.batch_size,
                                        accum_steps=spec.accum_steps, lr=spec.lr, min_lr=spec.min_lr, seed=cfg.seed,
                                        device=cfg.device, progress=cfg.progress), allowed)


def _evaluate_types(net: torch.nn.Module, cfg: TripleDConfig, spec: TrainSpec, path: str) -> list[str]:
    """Scores on ``spec.test`` under each task type's degradation, written to ``path``."""
    from ..evaluate import EvalConfig, evaluate, format_table

    if not spec.test:
        return []
    scores = {t: evaluate(net, EvalConfig(sets=list(spec.test), degradation=deg, device=cfg.device))
              for t, deg in task_types(cfg.task)}
    atomic_write_json(path, scores)
    return [f"[{t}]\n{format_table(res)}" for t, res in scores.items()]


def train_on_output(root: str, cfg: TripleDConfig, spec: TrainSpec) -> str:
    """Train ``spec.model`` on the paired folder ``root`` (``root/train/``: resumable) and evaluate
    (``root/eval.json``). Returns a printable summary."""
    from ..data.images import load_paired_folder, make_pairs_from_paired

    pairs = load_paired_folder(root, cfg.scale)
    _check_patch(spec.patch_size, cfg.scale, [min(hr.pixels.shape[:2]) for _, hr in pairs])
    data = make_pairs_from_paired(pairs, cfg.scale, PatchConfig(spec.patch_size, spec.patch_size))
    torch.manual_seed(cfg.seed)
    net = build_model(spec.model, cfg.scale)
    result = _train(net, data, cfg, spec, os.path.join(root, "train"))
    lines = [f"trained {result.steps} steps on {len(data)} patches; weights in {result.model_path}"]
    return "\n".join(lines + _evaluate_types(net, cfg, spec, os.path.join(root, "eval.json")))


def epoch_bounds(steps: int, epochs: int) -> list[int]:
    """First step of each epoch (``steps // epochs`` each, the remainder in the last) and ``steps``."""
    per = steps // epochs
    return [e * per for e in range(epochs)] + [steps]


def train_dynamic(root: str, cfg: TripleDConfig, spec: TrainSpec, items: Sequence, scores: np.ndarray) -> str:
    """Train on all ``items`` with epoch-wise dynamic selection, as ONE training run: the pairs of
    every image under every task type are built once, and ``irkernels.train.train``'s ``allowed``
    hook restricts epoch ``e``'s steps (``epoch_bounds``) to the patches of
    ``DynamicSampler.indices(e)`` (dealt over the task's types) — AdamW's state and the cosine
    learning-rate schedule run on across epochs, and a restart resumes mid-epoch from
    ``root/train_dynamic/last.pt``. Evaluation → ``root/eval_dynamic.json``."""
    from .selection import DynamicSampler

    sampler = DynamicSampler(np.asarray(scores), cfg.p, spec.q_start, spec.dynamic_epochs, spec.q_schedule, cfg.seed)
    types = task_types(cfg.task)
    type_names = [t for t, _ in types]
    images = [_load(i) for i in items]
    _check_patch(spec.patch_size, cfg.scale, [min(im.pixels.shape[:2]) for im in images])
    parts = [make_pairs(images, deg, PatchConfig(spec.patch_size, spec.patch_size)) for _, deg in types]
    data = PairSet(torch.cat([d.lq for d in parts]), torch.cat([d.hq for d in parts]),
                   [n for d in parts for n in d.sources])
    # patch indices of (type, image): make_pairs keeps each image's patches together, in order
    index = {name: i for i, name in enumerate(_item_name(it) for it in items)}
    owner = torch.tensor([t * len(items) + index[n] for t, d in enumerate(parts) for n in d.sources])
    bounds = epoch_bounds(spec.steps, spec.dynamic_epochs)
    pools = []
    for epoch in range(spec.dynamic_epochs):
        keys = torch.tensor([type_names.index(t) * len(items) + i
                             for i, t in deal_to_types(sampler.indices(epoch), type_names)])
        pools.append(torch.nonzero(torch.isin(owner, keys)).flatten())

    def allowed(step: int) -> torch.Tensor:
        return pools[int(np.searchsorted(bounds, step, side="right")) - 1]

    torch.manual_seed(cfg.seed)
    net = build_model(spec.model, cfg.scale)
    result = _train(net, data, cfg, spec, os.path.join(root, "train_dynamic"), allowed)
    lines = [f"epoch {e}: q = {sampler.q(e):.4f}, {sampler.k} images, {len(pools[e])} patches, "
             f"steps {bounds[e]}-{bounds[e + 1] - 1}" for e in range(spec.dynamic_epochs)]
    lines.append(f"trained {result.steps} steps in one run (optimizer and schedule continuous); "
                 f"weights in {result.model_path}")
    return "\n".join(lines + _evaluate_types(net, cfg, spec, os.path.join(root, "eval_dynamic.json")))


# ---------------------------------------------------------------------------------------------
# report.html
# ---------------------------------------------------------------------------------------------
def _thumb(img: torch.Tensor, size: int = 96) -> torch.Tensor:
    return torch.nn.functional.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False)[0]


def write_tripled_report(folder: RunFolder, records: dict, items: Sequence,
                         syn_inputs: torch.Tensor | None = None) -> str:
    """``report.html``: warnings (untrusted VAE, scorer fallback), selection, score histogram,
    examples, the feature network and statistics, before/after crops (``syn_inputs``: the crops the
    synthetic images started from, when known), losses and Figure-12-style alignment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = records["scores"]
    scores = np.asarray(rec["scores"])
    chosen = {i for i, _ in rec["selected"]}
    order = np.argsort(-scores, kind="stable")
    rejected = [i for i in order[::-1] if i not in chosen][:8]
    lazy = _LazyTensors(items)
    info = rec.get("scorer_info", {})
    syn = records.get("synthetic")
    vae = (syn or {}).get("vae")
    sections = []
    if vae and not vae["trusted"]:
        sections.append(("WARNING: VAE not trusted", f'<p style="color:red;font-weight:bold">{vae["warning"]}</p>'))
    if info.get("fallback"):
        sections.append(("WARNING: ViT scorer not used",
                         f'<p style="color:red;font-weight:bold">held-out Spearman {info["spearman_heldout"]:.3f} '
                         f"against exact entropy is below the bar: the images were ranked by exact entropy.</p>"))
    sections.append(("Summary", table_html([{
        "images": len(scores), "selected": len(chosen), "scorer asked": rec["scorer"], "scorer used": info.get("used"),
        "ViT Spearman vs entropy (held-out crops)": info.get("spearman_heldout"),
        "threshold score": float(min(scores[i] for i in chosen)),
        "distillation space": (syn or {}).get("distillation_space"),
        "VAE reconstruction PSNR (held-out crops, dB)": (vae or {}).get("reconstruction_psnr"),
        "pairs written": len(os.listdir(folder.hr_dir))}])))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(scores, bins=min(50, max(5, len(scores))), color="#888")
    ax.axvline(min(scores[i] for i in chosen), color="red", label="selection threshold")
    ax.set_xlabel("complexity score"), ax.set_ylabel("images"), ax.legend()
    sections.append(("Score histogram", figure_html(fig)))
    sections.append(("Selected (most complex, best first)",
                     mosaic_html([_thumb(lazy[i]) for i, _ in rec["selected"][:16]])))
    sections.append(("Rejected (least complex)", mosaic_html([_thumb(lazy[i]) for i in rejected])))
    if rec.get("scorer_losses"):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot(rec["scorer_losses"]), ax.set_xlabel("step"), ax.set_ylabel("MSE"), ax.set_yscale("log")
        sections.append(("Scorer training", figure_html(fig)))
    if syn:
        net = syn.get("feature_network", {})
        sections.append(("Feature network", table_html([{
            "model": net.get("model"), "checkpoint": net.get("checkpoint"), "trained here": net.get("trained_here"),
            "reused from cache": net.get("reused"), "steps": net.get("steps"),
            "median |Φ_real(t)|": syn.get("cf_modulus_median"), "frequency std": syn.get("freq_std"),
            "feature positions": syn.get("feature_positions")}])))
        stages = [s for s in ("initial", "after_vae_reconstruction", "after_latent", "after_cnn") if s in syn]
        sections.append(("Feature matching (eq. 4 terms and NCFD against the real target)",
                         table_html([{"stage": s, **syn[s]} for s in stages])))
        sections.append(("PSNR of the synthetic images against the crops they started from (dB)",
                         table_html([syn.get("psnr_vs_input", {})])))
        pairs = []
        for k, it in enumerate(syn["items"][:8]):
            pairs.append(_thumb(syn_inputs[k]) if syn_inputs is not None else None)
            pairs.append(_thumb(to_float(to_tensor(read_image(os.path.join(folder.hr_dir, f"{it}.png"))))))
        if syn_inputs is not None:
            sections.append(("Before / after: each input crop next to its synthetic image", mosaic_html(pairs)))
        else:
            sections.append(("Synthetic images (after all steps)", mosaic_html([p for p in pairs if p is not None])))
        curves = [(k, v) for k, v in (("VAE loss", (vae or {}).get("losses")),
                                       ("latent NCFD", syn.get("latent_losses")),
                                       ("CNN loss (eq. 4)", (syn.get("cnn_losses") or {}).get("loss"))) if v]
        if curves:
            fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3), squeeze=False)
            for ax, (name, v) in zip(axes[0], curves):
                ax.plot(v), ax.set_title(name), ax.set_xlabel("step")
            sections.append(("Losses", figure_html(fig)))
        sections.append(("Distribution alignment (Figure 12)", _alignment_figure(syn["projection"], plt)))
    return write_report(os.path.join(folder.root, "report.html"), "TripleD run", sections)


def _alignment_figure(proj: dict, plt) -> str:
    """KDE of the projected features (real, before, after the CNN) and a QQ plot against the real."""
    from scipy.stats import gaussian_kde

    colours = {"real": "tab:blue", "before_cnn": "tab:orange", "after_cnn": "tab:green"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    values = {k: np.asarray(v, dtype=np.float64) for k, v in proj.items()}
    lo = min(v.min() for v in values.values())
    hi = max(v.max() for v in values.values())
    grid = np.linspace(lo, hi, 200)
    for k, v in values.items():
        if v.std() > 0:
            ax1.plot(grid, gaussian_kde(v)(grid), label=k, color=colours[k])
    ax1.set_title("KDE of features on the real set's 1st principal axis"), ax1.legend()
    q = np.linspace(0.01, 0.99, 99)
    ref = np.quantile(values["real"], q)
    for k in ("before_cnn", "after_cnn"):
        ax2.plot(ref, np.quantile(values[k], q), "o", ms=3, label=k, color=colours[k])
    ax2.plot([ref[0], ref[-1]], [ref[0], ref[-1]], "k--", lw=1)
    ax2.set_xlabel("real quantiles"), ax2.set_ylabel("synthetic quantiles"), ax2.set_title("QQ plot"), ax2.legend()
    return figure_html(fig)


__all__ = ["TASKS", "TripleDConfig", "TripleDResult", "distil", "feature_network", "get_scorer", "run_tripled",
           "settings_of", "synthetic_crops", "task_types", "train_dynamic", "train_on_output", "TrainSpec",
           "write_tripled_report"]
