"""Feature-space statistics of a real image set: the target of latent distillation and CNN fine-tuning.

Features are a restoration network's ``features(x)`` ``(N, C, H, W)``; every spatial position of
every image is one sample of a ``C``-dimensional distribution (``(N·H·W, C)``). Samples are
standardised with the real set's per-channel mean and standard deviation (the per-channel KL, which
is invariant to a shared affine map, is unchanged), and the CF frequencies are ``t ~ N(0, σ²I)``
with ``σ = 1/√C`` by default — the rule IDC uses (``IDCConfig.frequency_std``): ``⟨t, x⟩`` then has
about unit variance for ``C`` standardised, uncorrelated channels, so the phases neither wrap around
many times (the empirical CF of ``N(0, I)`` frequencies sinks to the ``1/√N`` noise floor) nor stay
near zero. Channels constant over the real set are dropped.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..ops.ncfd import CFStats, cf_stats, sample_frequencies
from ..resume import fingerprint


@dataclass
class FeatureTarget:
    """Statistics of the real set's features: channel ``mean``/``var`` ``(C,)`` float64 (raw
    features), ``freqs`` ``(T, C)`` and the CF statistics ``cf`` of the standardised samples;
    ``backend``: the ops backend every matching against it uses (``"auto"``, ``"triton"``, ``"torch"``)."""

    mean: torch.Tensor
    var: torch.Tensor
    freqs: torch.Tensor
    cf: CFStats
    count: int
    backend: str = "auto"

    @property
    def std(self) -> torch.Tensor:
        return self.var.clamp(min=1e-12).sqrt()

    @property
    def live(self) -> torch.Tensor:
        """``(C,)`` bool: channels that vary over the real set. Constant ones (dead ReLUs) carry no
        distribution, and standardising them would blow any synthetic activity up by ``1/σ ≈ ∞``."""
        return live_channels(self.var)

    def fingerprint(self) -> str:
        """sha256 of the statistics (what a distillation matches against): part of the key of its
        checkpoints (``irkernels.resume.StepCheckpoint``)."""
        return fingerprint(self.mean, self.var, self.freqs, self.cf.re, self.cf.im)

    def samples(self, feats: torch.Tensor, max_samples: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``feature_samples`` of ``feats`` in this target's standardised live-channel space."""
        return feature_samples(feats, self.mean, self.std, max_samples, generator, self.live)


def live_channels(var: torch.Tensor) -> torch.Tensor:
    return var > 1e-10 * max(float(var.max()), 1e-30)


def feature_samples(feats: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, max_samples: int | None = None,
                    generator: torch.Generator | None = None, live: torch.Tensor | None = None) -> torch.Tensor:
    """``(N, C, H, W)`` features → ``(M, C')`` standardised samples: only the ``live`` channels
    (``(C,)`` bool, default all), a random subset of ``max_samples`` positions when given and
    smaller than ``N·H·W``."""
    x = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
    if max_samples is not None and x.shape[0] > max_samples:
        idx = torch.randperm(x.shape[0], generator=generator)[:max_samples].to(x.device)
        x = x[idx]
    if live is not None:
        live = live.to(x.device)
        x, mean, std = x[:, live], mean[live.to(mean.device)], std[live.to(std.device)]
    return (x.float() - mean.to(x.device, torch.float32)) / std.to(x.device, torch.float32)


@torch.no_grad()
def feature_target(extractor: nn.Module, images: Sequence[torch.Tensor], num_freqs: int = 256, seed: int = 0,
                   device: torch.device | str = "cpu", freq_std: float | None = None,
                   backend: str = "auto") -> FeatureTarget:
    """Statistics of ``extractor.features`` over ``images`` (each ``(3, H, W)`` or ``(N, 3, H, W)``
    float in [0, 1], any sizes; a lazy sequence that reads files is fine): two streaming passes
    (moments, then CF statistics at seeded frequencies of std ``freq_std``, default ``1/√C`` over
    the ``C`` live channels), one item at a time, exact (per-item means weighted by sample counts)."""
    if len(images) == 0:
        raise ValueError("images must not be empty")
    if freq_std is not None and not freq_std > 0:
        raise ValueError(f"freq_std must be > 0 (or None for 1/sqrt(C)), got {freq_std}")
    extractor = extractor.to(device).eval()

    def batches():
        for im in images:
            yield (im[None] if im.dim() == 3 else im).to(device)

    total, s1, s2 = 0, None, None
    for b in batches():
        f = extractor.features(b).double()
        f = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
        s1 = f.sum(0) if s1 is None else s1 + f.sum(0)
        s2 = (f * f).sum(0) if s2 is None else s2 + (f * f).sum(0)
        total += f.shape[0]
    mean = s1 / total
    var = (s2 / total - mean * mean).clamp(min=0)
    live = live_channels(var)
    gen = torch.Generator().manual_seed(seed)
    dim = int(live.sum())
    scale = freq_std if freq_std is not None else dim ** -0.5
    freqs = (sample_frequencies(num_freqs, dim, generator=gen) * scale).to(device)
    std = var.clamp(min=1e-12).sqrt()
    re = im_ = None
    for b in batches():
        samples = feature_samples(extractor.features(b), mean, std, live=live)
        st = cf_stats(samples, freqs, backend=backend)
        w = samples.shape[0] / total
        re = st.re * w if re is None else re + st.re * w
        im_ = st.im * w if im_ is None else im_ + st.im * w
    counts = torch.full((1,), total, dtype=torch.int64, device=re.device)
    return FeatureTarget(mean.cpu(), var.cpu(), freqs, CFStats(re, im_, counts), total, backend)


__all__ = ["FeatureTarget", "feature_samples", "feature_target", "live_channels"]
