"""TripleD step 3: latent distillation (paper §3.3; GLaD with a diffusion model's VAE).

The selected images are encoded by a diffusers ``AutoencoderKL`` (the posterior mean), and the
latents — not the pixels — are optimised with Adam so that the decoded images' restoration-network
features match the selected real set's feature distribution: the loss is ``irkernels.ncfd_loss``
between the real set's CF statistics (``features.FeatureTarget``, computed once) and the decoded
batch's standardised per-position feature samples. The VAE is frozen.

The VAE: any diffusers ``AutoencoderKL`` from a local folder (SD3's ``vae`` folder, or a model
folder holding one in ``vae/``); otherwise a small one (``tiny_autoencoder``) trained here on random
crops of the images (L1 reconstruction + a small KL term) until its reconstruction PSNR on held-out
crops reaches ``vae_min_psnr`` (checked every ``vae_check_every`` steps) or ``vae_steps`` runs out.
Its decodes become HQ ground truth, so a VAE (loaded or trained) below the bar is not trusted: the
run warns and distils in pixel space instead (``distill_latents`` with ``vae=None``: the pixels
themselves are optimised, clamped to [0, 1] after each step). Images map to the VAE's ``[-1, 1]``
range; no latent scaling is needed because latents are only decoded by the same VAE.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..ops.ncfd import CFStats, cf_stats, ncfd_from_stats
from ..devices import resolve_device
from ..seeds import derive_seed
from ..costs import CostEstimate
from ..resume import StepCheckpoint, fingerprint
from .features import FeatureTarget
from .config import LatentConfig, TripleDConfig, stage_settings

log = logging.getLogger(__name__)


def tiny_autoencoder(latent_channels: int = 4) -> nn.Module:
    """A small ``AutoencoderKL`` (×4 spatial reduction, 32/64 channels, ~1 M parameters)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                         up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 64),
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=16, sample_size=64)


def vae_subfolder(path: str, subfolder: str | None = None) -> str | None:
    """The sub-folder of local diffusers folder ``path`` that holds the VAE (``subfolder`` as above);
    ``ValueError`` naming the flag when there is none, so that a run checks it before any work."""
    if not os.path.isdir(path):
        raise ValueError(f"--vae must be a local diffusers folder, {path!r} is not a directory")
    if subfolder is None and not os.path.exists(os.path.join(path, "config.json")) \
            and os.path.exists(os.path.join(path, "vae", "config.json")):
        subfolder = "vae"
    where = os.path.join(path, subfolder) if subfolder else path
    if not os.path.exists(os.path.join(where, "config.json")):
        raise ValueError(f"--vae {where!r} holds no diffusers config.json (give the VAE folder, or --vae-subfolder)")
    return subfolder


def load_vae(path: str, subfolder: str | None = None) -> nn.Module:
    """A diffusers ``AutoencoderKL`` from local folder ``path`` (``subfolder`` as above)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_pretrained(path, subfolder=vae_subfolder(path, subfolder))


def vae_factor(vae: nn.Module) -> int:
    """Spatial reduction of ``vae``'s encoder (image sides must be multiples of it)."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


def encode(vae: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` in [0, 1] → posterior-mean latents."""
    return vae.encode(images * 2 - 1).latent_dist.mean


def decode(vae: nn.Module, latents: torch.Tensor) -> torch.Tensor:
    """Latents → ``(N, 3, H, W)`` images in [0, 1] (clamped)."""
    return ((vae.decode(latents).sample + 1) / 2).clamp(0, 1)


def random_crops(images: list[torch.Tensor], count: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """``count`` random ``size``² crops ``(count, 3, size, size)`` of ``(3, H, W)`` images (random image, position)."""
    small = [tuple(im.shape[-2:]) for im in images if min(im.shape[-2:]) < size]
    if small:
        raise ValueError(f"images must be at least vae_crop={size} pixels on each side, got {small[:3]}")
    out = []
    for _ in range(count):
        im = images[rng.integers(len(images))]
        h, w = im.shape[-2:]
        y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        out.append(im[:, y:y + size, x:x + size])
    return torch.stack(out)


@torch.no_grad()
def reconstruction_psnr(vae: nn.Module, crops: torch.Tensor, batch_size: int = 8) -> float:
    """Mean PSNR (dB, [0, 1] range) of ``decode(encode(crops))`` against ``crops`` ``(N, 3, h, w)``."""
    from ..metrics import psnr

    was_training = vae.training
    vae.eval()
    dev = next(vae.parameters()).device
    recon = torch.cat([decode(vae, encode(vae, crops[i:i + batch_size].to(dev))).cpu()
                       for i in range(0, len(crops), batch_size)])
    vae.train(was_training)
    return float(psnr(recon, crops, data_range=1.0).mean())


def train_vae(vae: nn.Module, images: list[torch.Tensor], cfg: LatentConfig, held_out: torch.Tensor,
              checkpoint: str | None = None) -> dict:
    """Fit ``vae`` to random crops of ``images`` (``(3, H, W)`` floats in [0, 1], each at least
    ``vae_crop`` on both sides): L1 reconstruction + ``kl_weight``·KL, until the reconstruction PSNR
    on ``held_out`` crops ``(N, 3, h, w)`` reaches ``cfg.vae_min_psnr`` or ``cfg.vae_steps`` are done.

    ``checkpoint``: a file for the loop's state (``irkernels.resume.StepCheckpoint``): on Ctrl-C or
    SIGTERM the step in progress is finished and the weights, AdamW, schedule, crop generator and
    histories written there; the same call again continues from that step. The finished state stays
    until the caller deletes it.

    Returns ``{"losses", "psnr_history": [[step, dB], ...], "psnr", "steps", "reached"}``.
    """
    device = resolve_device(cfg.device)
    vae.to(device).train()
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.vae_steps, 1))
    losses, history = [], []
    ckpt = StepCheckpoint(checkpoint, "VAE training", cfg.vae_steps, key={
        "settings": stage_settings(cfg), "held_out": fingerprint(held_out), "images": [list(im.shape) for im in images]})

    def snapshot() -> dict:
        return {"vae": vae.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "crops": rng.bit_generator.state, "losses": losses, "psnr_history": history}

    if ckpt.state is not None:
        vae.load_state_dict(ckpt.state["vae"])
        opt.load_state_dict(ckpt.state["optimizer"])
        sched.load_state_dict(ckpt.state["scheduler"])
        rng.bit_generator.state = ckpt.state["crops"]
        losses, history = list(ckpt.state["losses"]), [list(h) for h in ckpt.state["psnr_history"]]
    bar = ckpt.progress_bar(cfg.progress, "vae")
    # measured on 2 CPU cores: 3-4 steps a second, and after the 2000 default steps 22.9 dB on CBSD432
    # (compare's cpu preset, which skips it since) and 25.7 dB on the embedded photos: under the 30 dB
    # bar both times, so the run distils in pixel space anyway
    estimate = CostEstimate(f"tiny-VAE training on {device} (at most)", cfg.vae_steps,
                            "--vae-steps 0 skips it (pixel-space distillation), or give a trusted --vae DIR",
                            ckpt.start, stage="VAE", bar=bar)
    with ckpt:
        for step in ckpt.steps(snapshot):
            estimate.tick(step)
            x = random_crops(images, cfg.vae_batch, cfg.vae_crop, rng).to(device)
            posterior = vae.encode(x * 2 - 1).latent_dist
            recon = (vae.decode(posterior.sample()).sample + 1) / 2
            loss = F.l1_loss(recon, x) + cfg.kl_weight * posterior.kl().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if bar is not None:
                bar.update(1)
            if (step + 1) % cfg.vae_check_every == 0 or step + 1 == cfg.vae_steps:
                history.append([step + 1, reconstruction_psnr(vae, held_out)])
                if history[-1][1] >= cfg.vae_min_psnr:
                    break
    if bar is not None:
        bar.close()
    ckpt.finish(snapshot, len(losses))
    vae.eval().requires_grad_(False)
    final = history[-1][1] if history else reconstruction_psnr(vae, held_out)
    return {"losses": losses, "psnr_history": history, "psnr": final, "steps": len(losses),
            "reached": final >= cfg.vae_min_psnr}


def matching_loss(images: torch.Tensor, extractor: nn.Module, target: FeatureTarget,
                  max_samples: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """NCFD between ``target`` and the standardised features of ``images`` ``(N, 3, H, W)``."""
    samples = target.samples(extractor.features(images), max_samples, generator)
    freqs = target.freqs.to(samples.device)
    cf = CFStats(target.cf.re.to(samples.device), target.cf.im.to(samples.device), target.cf.counts.to(samples.device))
    return ncfd_from_stats(cf, cf_stats(samples, freqs, backend=target.backend))


def distill_latents(images: torch.Tensor, vae: nn.Module | None, extractor: nn.Module, target: FeatureTarget,
                    cfg: LatentConfig, checkpoint: str | None = None) -> tuple[torch.Tensor, list[float]]:
    """Encode ``images`` ``(M, 3, H, W)`` (sides multiples of ``vae_factor``), optimise the latents
    against ``target`` and decode; ``vae=None`` optimises the pixels themselves (at ``pixel_lr``,
    clamped to [0, 1] after every step). Returns the synthetic images ``(M, 3, H, W)`` on the CPU and
    the per-step losses. Mini-batches cycle over a seeded permutation of the images each pass.

    ``checkpoint``: a file for the loop's state (``irkernels.resume.StepCheckpoint``): on Ctrl-C or
    SIGTERM the step in progress is finished and the latents (or pixels), Adam, the generator, the
    pass's remaining order and the losses written there; the same call again continues from that
    step. The finished state stays until the caller deletes it."""
    f = vae_factor(vae) if vae is not None else 1
    if images.dim() != 4 or images.shape[-1] % f or images.shape[-2] % f:
        raise ValueError(f"images must be (M, 3, H, W) with H, W multiples of the VAE's factor {f}, "
                         f"got {tuple(images.shape)}")
    device = resolve_device(cfg.device)
    extractor = extractor.to(device).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(cfg.seed)
    if vae is None:
        code, lr = images.to(device).clone(), cfg.pixel_lr

        def to_images(z: torch.Tensor) -> torch.Tensor:
            return z
    else:
        vae = vae.to(device).eval().requires_grad_(False)
        with torch.no_grad():
            code = torch.cat([encode(vae, images[i:i + cfg.batch_size].to(device))
                              for i in range(0, len(images), cfg.batch_size)])
        lr = cfg.lr

        def to_images(z: torch.Tensor) -> torch.Tensor:
            return decode(vae, z)
    code = code.requires_grad_(True)
    opt = torch.optim.Adam([code], lr=lr)
    space = "latent" if vae is not None else "pixel"
    losses, order = [], torch.empty(0, dtype=torch.long)
    ckpt = StepCheckpoint(checkpoint, f"{space} distillation", cfg.steps, key={
        "settings": stage_settings(cfg), "images": fingerprint(images), "target": target.fingerprint(),
        "vae": None if vae is None else fingerprint(*vae.state_dict().values())})

    def snapshot() -> dict:
        return {"code": code.detach(), "optimizer": opt.state_dict(), "generator": gen.get_state(), "order": order,
                "losses": losses}

    if ckpt.state is not None:
        with torch.no_grad():
            code.copy_(ckpt.state["code"])
        opt.load_state_dict(ckpt.state["optimizer"])
        gen.set_state(ckpt.state["generator"])
        order, losses = ckpt.state["order"], list(ckpt.state["losses"])
    bar = ckpt.progress_bar(cfg.progress, "latents" if vae is not None else "pixels")
    estimate = CostEstimate(f"{space} distillation on {device}", cfg.steps, "fewer --latent-steps make it shorter",
                            ckpt.start, stage="distillation", bar=bar)
    with ckpt:
        for step in ckpt.steps(snapshot):
            estimate.tick(step)
            if len(order) == 0:
                order = torch.randperm(len(images), generator=gen)
            idx, order = order[: cfg.batch_size], order[cfg.batch_size:]
            loss = matching_loss(to_images(code[idx.to(device)]), extractor, target, cfg.max_samples, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if vae is None:
                with torch.no_grad():
                    code.clamp_(0, 1)
            losses.append(loss.item())
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    ckpt.finish(snapshot)
    with torch.no_grad():
        out = torch.cat([to_images(code[i:i + cfg.batch_size]).cpu() for i in range(0, len(images), cfg.batch_size)])
    return out, losses


# ---------------------------------------------------------------------------------------------
# the VAE a run trusts
# ---------------------------------------------------------------------------------------------
def vae_split(targets: Sequence[torch.Tensor], cfg: TripleDConfig) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Training images for the fallback VAE (up to 64) and ``vae_check_crops`` seeded crops of
    held-out images (every eighth image, at least one; a single image serves both)."""
    n = len(targets)
    held = list(range(7, n, 8)) or [n - 1]
    train_idx = [i for i in range(n) if i not in held] or held
    crop = cfg.latent.vae_crop
    check = random_crops([targets[i] for i in held], cfg.latent.vae_check_crops, crop,
                         np.random.default_rng(derive_seed(cfg.seed, "vae-check")))
    return [targets[i] for i in train_idx[:64]], check


def trusted_vae(targets: Sequence[torch.Tensor], cfg: TripleDConfig,
                checkpoint: str | None = None) -> tuple[torch.nn.Module | None, dict]:
    """The VAE for latent distillation and its record (``source``, ``reconstruction_psnr`` on
    held-out crops, ``trusted``, training history): a loaded or fallback one that reaches
    ``cfg.latent.vae_min_psnr``, else ``None`` (pixel-space distillation) after a loud warning.
    Without ``vae`` and with ``vae_steps=0``, pixel space is the user's choice: no VAE, one plain line.
    ``checkpoint``: the fallback VAE's training state (``train_vae``)."""
    lat = cfg.latent
    if not lat.vae and lat.vae_steps == 0:
        log.info("no VAE (--vae-steps 0 and no --vae): distilling in pixel space")
        return None, {"source": "none (vae_steps=0: pixel space chosen)", "reconstruction_psnr": None,
                      "trusted": False, "chosen": True, "min_psnr": lat.vae_min_psnr}
    train_images, check = vae_split(targets, cfg)
    if lat.vae:
        vae = load_vae(lat.vae, lat.subfolder).to(resolve_device(cfg.device))
        record = {"source": os.path.abspath(lat.vae), "reconstruction_psnr": reconstruction_psnr(vae, check)}
    else:
        torch.manual_seed(cfg.seed)
        vae = tiny_autoencoder()
        fit = train_vae(vae, train_images, lat, check, checkpoint)
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


__all__ = ["LatentConfig", "decode", "distill_latents", "encode", "load_vae", "matching_loss", "random_crops",
           "reconstruction_psnr", "tiny_autoencoder", "train_vae", "trusted_vae", "vae_factor", "vae_split"]
