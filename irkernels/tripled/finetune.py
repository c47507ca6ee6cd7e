"""TripleD step 4: data fine-tuning with the 8-layer CNN (paper §3.4, eq. 4).

``TripleDCNN`` (identity at initialisation) maps the synthetic images ``B_s`` to adjusted ones whose
features ``F_b`` match the real subset's ``F_a``. Our reading of eq. 4 (docs/tripled.md), per feature
channel ``c`` with means ``μ`` and variances ``σ²`` over all positions of the set:

    L = ‖μ_a − μ_b‖₂ + mean_c KL(N(μ_a,c, σ²_a,c) ‖ N(μ_b,c, σ²_b,c))
      + w_pix · L1(CNN(B_s), B_s)                          (pixel fidelity)
      [+ w_rest · L1(R(degrade(CNN(B_s))), CNN(B_s))]      (optional restoration loss)

The pixel term keeps the adjusted images close to their inputs: the CNN's output becomes the HQ
ground truth, and without it the feature moments can be matched by changing colours and textures
freely (docs/tripled.md gives the measurements behind the default weight).

Features are standardised with the real set's channel mean/std (``features`` module), so
``μ_a = 0``, ``σ_a = 1``. Channels that are constant over the real set (dead ReLUs) are left out:
a KL to a point mass is undefined. Only the CNN's weights are trained (Adam); the feature network is frozen.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.tripled_cnn import TripleDCNN
from ..devices import resolve_device
from ..costs import CostEstimate
from ..resume import StepCheckpoint, fingerprint
from .features import FeatureTarget
from .config import FinetuneConfig, PIXEL_WEIGHT, stage_settings  # noqa: F401  (re-exported)


def gaussian_kl(mu_a: torch.Tensor, var_a: torch.Tensor, mu_b: torch.Tensor, var_b: torch.Tensor) -> torch.Tensor:
    """Elementwise ``KL(N(mu_a, var_a) ‖ N(mu_b, var_b))``."""
    var_a, var_b = var_a.clamp(min=1e-8), var_b.clamp(min=1e-8)
    return 0.5 * (torch.log(var_b / var_a) + (var_a + (mu_a - mu_b) ** 2) / var_b - 1)


def channel_moments(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) variance of ``(N, C, H, W)`` over ``N, H, W``."""
    var, mean = torch.var_mean(feats.float(), dim=(0, 2, 3), correction=0)
    return mean, var


def distribution_terms(feats: torch.Tensor, target: FeatureTarget) -> tuple[torch.Tensor, torch.Tensor]:
    """``(‖μ_a − μ_b‖₂, mean_c KL)`` of eq. 4 for raw features ``(N, C, H, W)`` against ``target``."""
    live = target.live.to(feats.device)
    mean = target.mean.to(feats.device, torch.float32)[live]
    std = target.std.to(feats.device, torch.float32)[live]
    mu_b, var_b = channel_moments((feats[:, live].float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1))
    zeros, ones = torch.zeros_like(mu_b), torch.ones_like(var_b)
    return torch.linalg.vector_norm(mu_b - zeros), gaussian_kl(zeros, ones, mu_b, var_b).mean()


def finetune_images(images: torch.Tensor, extractor: nn.Module, target: FeatureTarget, cfg: FinetuneConfig,
                    restoration: tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]] | None = None,
                    checkpoint: str | None = None) -> tuple[torch.Tensor, TripleDCNN, dict[str, list[float]]]:
    """Train a ``TripleDCNN`` on ``images`` ``(M, 3, H, W)`` in [0, 1] and return the adjusted images
    (CPU, clamped), the CNN and per-step histories (``loss``, ``l2``, ``kl``, ``pixel``).

    ``restoration``: ``(network, degrade)`` for the optional restoration loss (needs
    ``restoration_weight > 0``; ``degrade`` must be differentiable).
    ``checkpoint``: a file for the loop's state (``irkernels.resume.StepCheckpoint``): on Ctrl-C or
    SIGTERM the step in progress is finished and the CNN, Adam, the batch generator and the
    histories written there; the same call again continues from that step. The finished state
    stays until the caller deletes it.
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (M, 3, H, W), got shape {tuple(images.shape)}")
    if cfg.restoration_weight > 0 and restoration is None:
        raise ValueError("restoration_weight > 0 needs restoration=(network, degrade)")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    cnn = TripleDCNN(cfg.channels, cfg.layers).to(device)
    extractor = extractor.to(device).eval().requires_grad_(False)
    if restoration is not None:
        restoration[0].to(device).eval().requires_grad_(False)
    opt = torch.optim.Adam(cnn.parameters(), lr=cfg.lr)
    history: dict[str, list[float]] = {"loss": [], "l2": [], "kl": [], "pixel": []}
    ckpt = StepCheckpoint(checkpoint, "CNN fine-tuning", cfg.steps, key={
        "settings": stage_settings(cfg), "images": fingerprint(images), "target": target.fingerprint(),
        "restoration": restoration is not None})

    def snapshot() -> dict:
        return {"cnn": cnn.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                "history": history}

    if ckpt.state is not None:
        cnn.load_state_dict(ckpt.state["cnn"])
        opt.load_state_dict(ckpt.state["optimizer"])
        gen.set_state(ckpt.state["generator"])
        history = {k: list(v) for k, v in ckpt.state["history"].items()}
    bar = ckpt.progress_bar(cfg.progress, "cnn")
    estimate = CostEstimate(f"CNN fine-tuning on {device}", cfg.steps, "fewer --cnn-steps make it shorter", ckpt.start,
                            stage="fine-tuning", bar=bar)
    with ckpt:
        for step in ckpt.steps(snapshot):
            estimate.tick(step)
            idx = torch.randperm(len(images), generator=gen)[: cfg.batch_size]
            batch = images[idx].to(device)
            adjusted = cnn(batch)
            l2, kl = distribution_terms(extractor.features(adjusted), target)
            pixel = F.l1_loss(adjusted, batch)
            loss = cfg.mean_weight * l2 + cfg.kl_weight * kl + cfg.pixel_weight * pixel
            if cfg.restoration_weight > 0:
                net, degrade_fn = restoration
                restored = net(degrade_fn(adjusted))
                if restored.shape != adjusted.shape:
                    raise ValueError(f"the restoration network maps the degraded images to {tuple(restored.shape)}, "
                                     f"not their size {tuple(adjusted.shape)} (its scale must match the degradation)")
                loss = loss + cfg.restoration_weight * F.l1_loss(restored, adjusted)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for key, v in (("loss", loss), ("l2", l2), ("kl", kl), ("pixel", pixel)):
                history[key].append(v.item())
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    ckpt.finish(snapshot)
    cnn.eval()
    with torch.no_grad():
        out = torch.cat([cnn(images[i:i + cfg.batch_size].to(device)).clamp(0, 1).cpu()
                         for i in range(0, len(images), cfg.batch_size)])
    return out, cnn, history


__all__ = ["PIXEL_WEIGHT", "FinetuneConfig", "channel_moments", "distribution_terms", "finetune_images", "gaussian_kl"]
