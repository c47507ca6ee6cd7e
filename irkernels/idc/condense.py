"""IDC's optimisation (Algorithm 1) on a batch of instances at once.

Every instance keeps its own synthetic patches, reference statistics, k-means groups, quotas and
pairs; the batch only shares kernel launches. The losses are computed per instance and summed, so
each instance's gradient (and, Adam being element-wise, its whole trajectory) is what it would be
alone — batching changes results only by float rounding (tested).

One launch serves all instances because the ops take group ids: a synthetic RLFF sample of
instance ``b`` in group ``m`` gets id ``b·(K+1) + m``, an unassigned one ``b·(K+1) + K``. One
grouped ``cf_stats`` per side then gives every (instance, group) characteristic function; the
instance-level one (``L_ins``) is their count-weighted mean, so ``L_ins`` and ``L_group`` cost one
launch per side and step. The real side (features, RLFF output, k-means groups, statistics) only
changes when the RLFF rows and frequencies are re-drawn (every ``resample_every`` steps) and is
cached in between. A re-draw's k-means starts from the previous partition (``regroup="warm"``), so
groups keep their identity; how many real patches keep their group is measured per instance.

The loop runs under ``value_checks(False)``: the data are checked once where they enter, and a
step between re-draws and re-assignments makes no host sync (tested).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from .._checks import check_finite, value_checks
from ..ops.nearest import nearest_in_group
from ..ops.quotas import assign_with_quotas
from ..ops.kmeans import kmeans
from ..ops.ncfd import CFStats, cf_stats, ncfd_from_stats, sample_frequencies
from ..ops.rlff import reference_stats, rlff, sample_rows
from ..ops._segments import Packing
from ..resume import StepCheckpoint, fingerprint
from ..ops.utils import cdiv
from ..seeds import derive_seed, seeded_generator
from ..patches import Instance, extract_features, features, kcenter
from .config import IDCConfig

LOSS_NAMES = ("ins", "group", "pair")


@dataclass
class CondenseResult:
    """One instance's outcome: ``synthetic (n, 3, h, w)`` float in [0, 1] (CPU), ``init_index``
    the real patches it started from (``None`` for noise), ``history (iters, 3)`` the unweighted
    ``L_ins, L_group, L_pair`` of every step, its share of the batch's wall time, ``loss_scales``
    the factors applied to ``L_group``/``L_pair`` (``loss_scale``; 1 before a term starts) and
    ``group_keep`` the stability of its groups across re-draws (``group_stability``)."""

    synthetic: torch.Tensor
    init_index: list[int] | None
    history: torch.Tensor
    seconds: float
    loss_scales: dict[str, float] = field(default_factory=dict)
    group_keep: dict = field(default_factory=dict)


def group_stability(real: list[np.ndarray], syn: list[np.ndarray | None]) -> dict:
    """Share of patches keeping their group across the re-draws of one instance.

    ``real[j]`` is the ``(K, K)`` contingency of re-draw ``j`` (real patches in old group ``a`` and
    new group ``b``), ``syn[j]`` the same for the synthetic patches assigned before and after
    (``None`` when there were none). Groups are matched one-to-one by the real contingency
    (Hungarian, ``scipy.optimize.linear_sum_assignment``), so a mere renaming of the groups counts
    as kept. Returns ``{"redraws", "real", "real_same_id", "synthetic"}``: mean shares over the
    re-draws (``real_same_id`` without matching; ``None`` where there is nothing to average).
    """
    kept_real, same_id, kept_syn = [], [], []
    for r, y in zip(real, syn):
        rows, cols = linear_sum_assignment(-r)
        kept_real.append(r[rows, cols].sum() / max(r.sum(), 1))
        same_id.append(np.trace(r) / max(r.sum(), 1))
        if y is not None and y.sum() > 0:
            kept_syn.append(y[rows, cols].sum() / y.sum())

    def mean(v: list) -> float | None:
        return float(np.mean(v)) if v else None

    return {"redraws": len(real), "real": mean(kept_real), "real_same_id": mean(same_id), "synthetic": mean(kept_syn)}


def _pool_instances(s: CFStats, b: int, groups: int) -> CFStats:
    """Instance-level statistics from the per-(instance, group) ones: the count-weighted mean."""
    counts = s.counts.view(b, groups)
    w = counts.to(s.re.dtype)[..., None]
    total = counts.sum(1)
    denom = total.clamp(min=1).to(s.re.dtype)[:, None]
    re = (s.re.view(b, groups, -1) * w).sum(1) / denom
    im = (s.im.view(b, groups, -1) * w).sum(1) / denom
    return CFStats(re, im, total)


def _contingency(inst: torch.Tensor, old: torch.Tensor, new: torch.Tensor, b: int, k: int) -> torch.Tensor:
    """``(B, K, K)`` counts of items in old group ``a`` and new group ``b`` per instance (items with
    a label < 0 on either side, i.e. unassigned, are left out)."""
    both = (old >= 0) & (new >= 0)
    key = torch.where(both, (inst * k + old.clamp(min=0)) * k + new.clamp(min=0), b * k * k)
    return torch.bincount(key, minlength=b * k * k + 1)[:-1].view(b, k, k)


@dataclass
class _Batch:
    """The constants of one ``run``: sizes, the normalised real features and the index tensors
    that say which instance every image and patch belongs to (packed: instance after instance)."""

    k: int  # groups per instance
    seeds: list[int]  # per instance: ``derive_seed(run seed, image name)``
    n_syn: list[int]  # synthetic patches per instance
    feats: torch.Tensor  # (ΣN, C, h', w') real features, each instance normalised with its own statistics
    unit: tuple[torch.Tensor, torch.Tensor]  # (C,) mean and std given to RLFF as its "stats"
    syn_mean: torch.Tensor  # (Σn, C, 1, 1) the reference mean of each synthetic image's instance
    syn_inv_std: torch.Tensor  # (Σn, C, 1, 1) 1 / its reference std
    real_patches: Packing  # the real RLFF patches: N·tiles per instance
    syn_patches: Packing  # the synthetic ones: n·tiles per instance

    @property
    def b(self) -> int:
        return len(self.seeds)


@dataclass
class _RealSide:
    rows: torch.Tensor
    t: torch.Tensor
    patches: torch.Tensor  # (ΣN', p·p, C) RLFF output of the real features
    labels: torch.Tensor  # (ΣN',) k-means group within the instance
    centroids: torch.Tensor  # (B, K, C)
    counts: torch.Tensor  # (B, K)
    stats: CFStats  # (B·(K+1), T) per (instance, group)
    stats_ins: CFStats  # (B, T)


@dataclass
class _Grouping:
    labels: torch.Tensor  # (Σn',) group of every synthetic patch within its instance (-1: unassigned)
    sample_groups: torch.Tensor  # (Σn'·p·p,) id b·(K+1) + group (K: unassigned) of every synthetic sample
    assigned: torch.Tensor  # synthetic patches with a pair
    pair: torch.Tensor  # their real patch (packed index)
    weight: torch.Tensor  # 1 / (pairs in their (instance, group)): eq. 8's 1/N_m
    instance: torch.Tensor  # their instance


def _phase_start(raw: torch.Tensor, scales: torch.Tensor, started: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``loss_scale="phase-start"``: an instance's ``L_group`` / ``L_pair`` (columns of the ``(B, 3)``
    detached losses ``raw``) are multiplied by ``L_ins / L_term`` of the first step where the term
    is non-zero. Returns the updated ``(scales, started)``; stays on the device (no sync)."""
    begin = ~started & (raw > 0)
    return torch.where(begin, raw[:, :1] / raw.clamp(min=1e-30), scales), started | begin


def _fields(obj) -> dict:
    """A dataclass's fields as a dict, without copying its tensors (a checkpoint's state)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


class Condenser:
    """Condenses a batch of instances with a frozen feature extractor ``net`` (``net.features``).

    ``run`` is a sequence of steps that get what they need as arguments: ``prepare_batch`` (real
    features and index tensors), ``init_synthetic``, then per step ``_real_side`` (on re-draws),
    ``_synthetic_patches``, ``_reassign`` (on re-assignments) and ``_losses``, and ``_results``."""

    def __init__(self, net: nn.Module, cfg: IDCConfig, device: torch.device, progress: bool = False):
        self.net = net.to(device).eval().requires_grad_(False)
        if device.type == "cuda":  # cuDNN's fastest conv layout (its kernels picked per run(): benchmark)
            self.net = self.net.to(memory_format=torch.channels_last)
        self.cfg = cfg
        self.device = device
        self.progress = progress

    # -- the loop --------------------------------------------------------------------------------
    def run(self, instances: list[Instance], k: int, on_step: Callable[[int], None] | None = None,
            checkpoint: str | None = None) -> list[CondenseResult]:
        """Condense ``instances`` (one batch) with ``k`` groups per instance; returns one result each.
        ``on_step(step)``: called before each iteration (the pipeline's cost estimate). cuDNN picks
        its conv kernels by timing them (``benchmark``) inside this call only: the shapes are fixed
        for its whole loop, and the process-wide setting is left as the caller had it.

        ``checkpoint``: a file for the loop's state (``irkernels.resume.StepCheckpoint``, keyed by
        the instances, ``k`` and the settings). On Ctrl-C or SIGTERM the step in progress is
        finished, the state written there (synthetic patches, Adam's moments, the k-means groups of
        the RLFF draw in use, the synthetic groups and pairs, loss scales, the history so far; the
        draw's rows, frequencies and real patches are remade from its seed) and ``KeyboardInterrupt`` raised; the same
        call again continues from that step and returns what an uninterrupted call returns. The
        finished state stays there too, until the caller deletes it (once the results are kept)."""
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=True,
                                        deterministic=torch.backends.cudnn.deterministic,
                                        allow_tf32=torch.backends.cudnn.allow_tf32):
            return self._run(instances, k, on_step, checkpoint)

    def _run(self, instances: list[Instance], k: int, on_step: Callable[[int], None] | None,
             checkpoint: str | None) -> list[CondenseResult]:
        cfg, dev = self.cfg, self.device
        start_time = time.perf_counter()
        batch = self.prepare_batch(instances, k)
        b = batch.b
        y, init_index = self.init_synthetic(instances, batch.n_syn, batch.seeds)
        opt = torch.optim.Adam([y], lr=cfg.lr)
        weights = torch.tensor([cfg.w_ins, cfg.w_group, cfg.w_pair], device=dev)

        unassigned = torch.full((len(batch.syn_patches.instance_ids),), -1, dtype=torch.long, device=dev)
        groups = self._grouping(batch, unassigned, unassigned)
        scales = torch.ones(b, 3, device=dev)
        started = torch.zeros(b, 3, dtype=torch.bool, device=dev)
        started[:, 0] = True
        history, real_cont, syn_cont = [], [], []
        real = None
        ckpt = StepCheckpoint(checkpoint, "IDC's condensation", cfg.iters, key={
            "instances": [inst.name for inst in instances], "patches": fingerprint(*[inst.lr for inst in instances]),
            "k": k, "settings": cfg.settings()})

        def snapshot() -> dict:
            return {"y": y.detach(), "optimizer": opt.state_dict(), "scales": scales, "started": started,
                    "history": torch.stack(history) if history else torch.zeros(0, b, 3, device=dev),
                    "real_cont": real_cont, "syn_cont": syn_cont, "groups": _fields(groups),
                    # the real side's k-means result; the rest is a function of the draw (remade on resume)
                    "real": None if real is None else {"labels": real.labels, "centroids": real.centroids},
                    "seconds": time.perf_counter() - start_time}

        if ckpt.state is not None:
            state = ckpt.state
            with torch.no_grad():
                y.copy_(state["y"])
            opt.load_state_dict(state["optimizer"])
            scales, started = state["scales"].to(dev), state["started"].to(dev)
            history = list(state["history"].to(dev).unbind(0))
            real_cont = [c.to(dev) for c in state["real_cont"]]
            syn_cont = [None if c is None else c.to(dev) for c in state["syn_cont"]]
            if state["real"] is not None:  # the draw of the last re-draw step done
                draw = (ckpt.start - 1) // cfg.resample_every
                real = self._real_grouped(batch, *self._real_draw(batch, draw), state["real"]["labels"].to(dev),
                                          state["real"]["centroids"].to(dev))
            groups = _Grouping(**{name: v.to(dev) for name, v in state["groups"].items()})
            start_time -= state["seconds"]  # the batch's time is that of both runs
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.iters, initial=ckpt.start, desc=f"condense {b} instance(s)", leave=False,
                       dynamic_ncols=True)
        warmup = cfg.warmup_iters()
        with value_checks(False), ckpt:
            for step in ckpt.steps(snapshot):
                if on_step is not None:
                    on_step(step)
                regroup = step % cfg.resample_every == 0
                if regroup:
                    previous = real
                    real = self._real_side(batch, step // cfg.resample_every, previous)
                    if previous is not None:
                        real_cont.append(_contingency(batch.real_patches.instance_ids, previous.labels, real.labels,
                                                      b, k))
                        syn_cont.append(None)
                    if bar is not None and history:  # re-draws sync anyway: show the losses then
                        bar.set_postfix({n: f"{v:.4f}" for n, v in zip(LOSS_NAMES, history[-1].mean(0).tolist())})
                syn = self._synthetic_patches(batch, y, real.rows)
                if step >= warmup and (regroup or (step - warmup) % cfg.reassign_every == 0):
                    new = self._reassign(batch, syn.detach(), real, cfg.assigned_fraction(step))
                    if regroup and real_cont and step > warmup:
                        syn_cont[-1] = _contingency(batch.syn_patches.instance_ids, groups.labels, new.labels, b, k)
                    groups = new
                losses = self._losses(batch, syn, real, groups)  # (B, 3)
                if cfg.loss_scale == "phase-start":
                    scales, started = _phase_start(losses.detach(), scales, started)
                opt.zero_grad(set_to_none=True)
                (losses * scales * weights).sum().backward()
                opt.step()
                with torch.no_grad():
                    y.clamp_(0, 1)
                history.append(losses.detach())
                if bar is not None:
                    bar.update(1)
        if bar is not None:
            bar.close()
        ckpt.finish(snapshot)
        return self._results(batch, y, init_index, history, scales, real_cont, syn_cont, start_time)

    # -- the steps -------------------------------------------------------------------------------
    def prepare_batch(self, instances: list[Instance], k: int) -> _Batch:
        """The batch's constants: real features (checked finite, then normalised with each
        instance's own reference statistics, RLFF's BatchNorm) and the packed index tensors."""
        cfg, dev = self.cfg, self.device
        n_syn = [cfg.num_synthetic(len(inst)) for inst in instances]
        n_real = [len(inst) for inst in instances]
        h, w = instances[0].lr.shape[-2:]
        p = cfg.rlff_patch
        tiles = cdiv(h, p) * cdiv(w, p)
        feats, means, stds = [], [], []
        for inst in instances:
            f = extract_features(self.net, inst.lr, dev, amp=cfg.amp)
            check_finite(f"features of {inst.name}'s real patches", f)  # the loop checks nothing
            mean, std = reference_stats(f, backend=cfg.backend)
            feats.append((f - mean[:, None, None]) / std[:, None, None])
            means.append(mean)
            stds.append(std)
        feats = torch.cat(feats)
        c = feats.shape[1]
        # features are already normalised; RLFF's "stats" only rescale so that each RLFF channel (a sum
        # of c·k² unit-variance terms with cos/sin weights) has about unit variance
        rms = (c * cfg.rlff_kernel ** 2 / 2) ** 0.5
        img_inst_syn = Packing.of(n_syn, dev).instance_ids  # instance of every synthetic image
        return _Batch(
            k=k, seeds=[derive_seed(cfg.seed, inst.name) for inst in instances], n_syn=n_syn, feats=feats,
            unit=(torch.zeros(c, device=dev), torch.full((c,), rms, device=dev)),
            syn_mean=torch.stack(means)[img_inst_syn][:, :, None, None],
            syn_inv_std=1.0 / torch.stack(stds)[img_inst_syn][:, :, None, None],
            real_patches=Packing.of([n * tiles for n in n_real], dev),
            syn_patches=Packing.of([n * tiles for n in n_syn], dev))

    def init_synthetic(self, instances: list[Instance], n_syn: list[int],
                       seeds: list[int]) -> tuple[torch.Tensor, list[list[int] | None]]:
        """The packed synthetic patches ``(Σn, 3, h, w)`` float in [0, 1] on the device (requiring
        grad), each instance's drawn from its own generator: ``n_syn[i]`` of its real patches
        (``init="real"``, with their indices; ``"kcenter"``: k-center's pick) or uniform noise
        (index ``None``)."""
        inits, init_index = [], []
        h, w = instances[0].lr.shape[-2:]
        for inst, n, seed in zip(instances, n_syn, seeds):
            gen = torch.Generator().manual_seed(seed)
            if self.cfg.init in ("real", "kcenter"):
                if self.cfg.init == "real":
                    idx = torch.randperm(len(inst), generator=gen)[:n]
                else:  # the kcenter baseline's pick on the same (raw, mean-pooled) features
                    pooled = extract_features(self.net, inst.lr, self.device, amp=self.cfg.amp).mean(dim=(2, 3))
                    idx = torch.tensor(kcenter(pooled.cpu(), n))
                inits.append(inst.lr[idx].float() / 255)
                init_index.append(idx.tolist())
            else:
                inits.append(torch.rand(n, 3, h, w, generator=gen))
                init_index.append(None)
        return torch.cat(inits).to(self.device).requires_grad_(True), init_index

    def _real_side(self, batch: _Batch, draw: int, previous: _RealSide | None) -> _RealSide:
        """Re-draw ``draw``: RLFF rows and frequencies, the real RLFF patches, their k-means groups
        (warm-started from ``previous`` under ``regroup="warm"``) and per-group statistics."""
        cfg, dev = self.cfg, self.device
        b, k, offs, inst = batch.b, batch.k, batch.real_patches.offsets, batch.real_patches.instance_ids
        rows, t, patches = self._real_draw(batch, draw)
        desc = patches.mean(1)
        if previous is not None and cfg.regroup == "warm":
            # the previous groups' means in the new descriptor space: Lloyd then moves from the old
            # partition to the nearest stable one, and group m stays group m
            key = inst * k + previous.labels
            sums = torch.zeros(b * k, desc.shape[1], device=dev, dtype=desc.dtype).index_add_(0, key, desc)
            init = (sums / previous.counts.reshape(-1, 1).clamp(min=1)).view(b, k, -1)
        else:  # k-means++ seeding per instance (its own seed)
            init = torch.stack([kmeans(desc[offs[i]:offs[i + 1]], k, iters=0,
                                       seed=derive_seed(batch.seeds[i], "kmeans", draw), backend=cfg.backend).centroids
                                for i in range(b)])
        km = kmeans(desc, k, offsets=offs, init=init, iters=cfg.kmeans_iters, backend=cfg.backend)
        return self._real_grouped(batch, rows, t, patches, km.labels, km.centroids)

    def _real_draw(self, batch: _Batch, draw: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw ``draw``'s RLFF rows and frequencies (seeded per draw) and the real RLFF patches."""
        cfg, dev = self.cfg, self.device
        draw_seed = derive_seed(cfg.seed, "draw", draw)  # the same draw for every instance: batch-independent
        rows = sample_rows(batch.feats.shape[1], cfg.rlff_kernel, cfg.rlff_channels, seed=draw_seed, device=dev)
        t = sample_frequencies(cfg.num_freqs, cfg.rlff_channels, generator=seeded_generator(draw_seed),
                               device=dev) * cfg.frequency_std()
        patches = rlff(batch.feats, kernel_size=cfg.rlff_kernel, out_channels=cfg.rlff_channels,
                       patch_size=cfg.rlff_patch, rows=rows, stats=batch.unit, backend=cfg.backend)
        return rows, t, patches

    def _real_grouped(self, batch: _Batch, rows: torch.Tensor, t: torch.Tensor, patches: torch.Tensor,
                      labels: torch.Tensor, centroids: torch.Tensor) -> _RealSide:
        """The real side of a draw given its k-means groups: group sizes and per-group statistics."""
        cfg, b, k, inst = self.cfg, batch.b, batch.k, batch.real_patches.instance_ids
        counts = torch.bincount(inst * k + labels, minlength=b * k).view(b, k)
        gid = (inst * (k + 1) + labels).repeat_interleave(cfg.rlff_patch ** 2)
        stats = cf_stats(patches.reshape(-1, cfg.rlff_channels), t, gid, b * (k + 1), backend=cfg.backend)
        return _RealSide(rows, t, patches, labels, centroids, counts, stats, _pool_instances(stats, b, k + 1))

    def _synthetic_patches(self, batch: _Batch, y: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """RLFF output ``(Σn', p·p, C)`` of the synthetic patches ``y``, their features normalised
        with their instance's real statistics (differentiable in ``y``)."""
        cfg = self.cfg
        fs = (features(self.net, y, cfg.amp) - batch.syn_mean) * batch.syn_inv_std
        return rlff(fs, kernel_size=cfg.rlff_kernel, out_channels=cfg.rlff_channels, patch_size=cfg.rlff_patch,
                    rows=rows, stats=batch.unit, backend=cfg.backend)

    def _reassign(self, batch: _Batch, syn: torch.Tensor, real: _RealSide, fraction: float) -> _Grouping:
        """Assign the share ``fraction`` of the (detached) synthetic patches ``syn`` to groups within
        the quotas, and pair each with its nearest real patch of the group."""
        cfg = self.cfg
        labels = assign_with_quotas(syn.mean(1), real.centroids, real.counts, fraction,
                                    offsets=batch.syn_patches.offsets, backend=cfg.backend)
        local = nearest_in_group(syn.flatten(1), labels, real.patches.flatten(1), real.labels,
                                 syn_offsets=batch.syn_patches.offsets, real_offsets=batch.real_patches.offsets,
                                 backend=cfg.backend)
        pairs = torch.where(local >= 0, local + batch.real_patches.offsets[batch.syn_patches.instance_ids], -1)
        return self._grouping(batch, labels, pairs)

    def _grouping(self, batch: _Batch, labels: torch.Tensor, pairs: torch.Tensor) -> _Grouping:
        """Index tensors of one assignment, built once per re-assignment (no host sync per step)."""
        k, inst = batch.k, batch.syn_patches.instance_ids
        gid_patch = inst * (k + 1) + torch.where(labels >= 0, labels, k)
        assigned = torch.nonzero(pairs >= 0).flatten()
        key = gid_patch[assigned]
        per_group = torch.bincount(key, minlength=batch.b * (k + 1))[key].float()
        return _Grouping(labels, gid_patch.repeat_interleave(self.cfg.rlff_patch ** 2), assigned, pairs[assigned],
                         1.0 / per_group, inst[assigned])

    def _losses(self, batch: _Batch, syn: torch.Tensor, real: _RealSide, groups: _Grouping) -> torch.Tensor:
        """``(B, 3)``: per instance ``L_ins`` (eq. 6), ``L_group`` (eq. 7 as a mean over the groups
        holding real and synthetic patches, so that it does not grow with K or with the assigned
        share), ``L_pair`` (eq. 8 with the L1 norm averaged over the patch's elements)."""
        cfg, b, k = self.cfg, batch.b, batch.k
        sy = cf_stats(syn.reshape(-1, cfg.rlff_channels), real.t, groups.sample_groups, b * (k + 1),
                      backend=cfg.backend)
        per_group = ncfd_from_stats(real.stats, sy, alpha=cfg.alpha, reduction="none").view(b, k + 1)[:, :k]
        filled = ((real.stats.counts > 0) & (sy.counts > 0)).view(b, k + 1)[:, :k].sum(1).clamp(min=1)
        group = per_group.sum(1) / filled
        ins = ncfd_from_stats(real.stats_ins, _pool_instances(sy, b, k + 1), alpha=cfg.alpha, reduction="none")
        diff = (syn[groups.assigned] - real.patches[groups.pair]).abs().flatten(1).mean(1)
        pair = torch.zeros(b, device=syn.device, dtype=ins.dtype).index_add(0, groups.instance, diff * groups.weight)
        return torch.stack((ins, group, pair), dim=1)

    @staticmethod
    def _results(batch: _Batch, y: torch.Tensor, init_index: list[list[int] | None], history: list[torch.Tensor],
                 scales: torch.Tensor, real_cont: list[torch.Tensor], syn_cont: list[torch.Tensor | None],
                 start_time: float) -> list[CondenseResult]:
        """One ``CondenseResult`` per instance from the loop's outputs: the packed patches ``y``, the
        per-step ``(B, 3)`` losses, the ``(B, 3)`` loss scales and the ``(B, K, K)`` contingencies of
        the re-draws (synthetic: ``None`` where none were assigned). The batch's wall time since
        ``start_time`` is shared equally."""
        b = batch.b
        hist = torch.stack(history).cpu() if history else torch.zeros(0, b, 3)
        scales = scales.cpu()
        real_np = [r.cpu().numpy() for r in real_cont]
        syn_np = [None if s is None else s.cpu().numpy() for s in syn_cont]
        seconds = (time.perf_counter() - start_time) / b
        out = y.detach().cpu().split(batch.n_syn)
        return [CondenseResult(out[i], init_index[i], hist[:, i], seconds,
                               {n: float(scales[i, j]) for j, n in enumerate(LOSS_NAMES) if j},
                               group_stability([r[i] for r in real_np], [None if s is None else s[i] for s in syn_np]))
                for i in range(b)]
