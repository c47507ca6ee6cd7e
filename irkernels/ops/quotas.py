"""IDC grouping (§3.4), the first op: proportional quotas and the quota-constrained progressive
assignment of synthetic patches to k-means groups (the pairing with the nearest real patch of
the same group is :mod:`irkernels.ops.nearest`).

Layouts as in :mod:`irkernels.ops.kmeans`: one instance ``(M, D)``, a padded batch ``(B, M, D)`` +
``lengths``, or packed ``(ΣM_b, D)`` + ``offsets``.

The assignment rule (one instance, ``M`` synthetic descriptors, ``K`` centroids):

1. quotas ``q_m`` = ``M · |real in m| / N'`` rounded by largest remainder (floors first, the
   ``M − Σ floors`` leftover units go to the largest remainders, ties to the lower group index),
   so ``Σ q_m = M`` exactly and an empty group gets 0;
2. all ``M·K`` pairs ``(i, m)`` are ordered by ``(‖desc_i − c_m‖², i, m)`` ascending;
3. walking that order, pair ``(i, m)`` is taken when patch ``i`` is still unassigned and group
   ``m`` has quota left; the walk stops after ``n = ⌊fraction·M + ½⌋`` pairs were taken;
4. patches not taken are labelled −1.

Fast paths compute the same result without the sequential walk. Because every side ranks pairs by
the same strict order, the greedy matching of step 3 (run to completion) is the unique stable
matching of patches to quota-capacitated groups, which patch-proposing deferred acceptance finds in
a few parallel rounds (each round: every patch proposes to its best group that has not rejected it;
each group keeps its ``q_m`` best proposers). The walk accepts pairs in ascending order, so
stopping after ``n`` pairs keeps exactly the ``n`` matched pairs with the smallest
``(distance, patch)``. The CUDA extension runs those rounds with one block per instance and a
shared-memory bitonic sort; the torch path runs them batched with ``argsort``.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

from .._checks import check_float_tensor, value_checks_enabled
from . import _ext
from ._backend import resolve_backend
from ._segments import Segments, pack, sq_dists_to_sets
from .utils import compute_dtype


# ----------------------------------------------------------------------------------------------
# quotas
# ----------------------------------------------------------------------------------------------
def proportional_quotas(real_counts: torch.Tensor, n_syn: torch.Tensor | int) -> torch.Tensor:
    """Largest-remainder apportionment of ``n_syn`` synthetic patches over groups.

    Args:
        real_counts: ``(K,)`` or ``(B, K)`` non-negative integer real-patch counts per group.
        n_syn: synthetic patches per instance, int or ``(B,)``.
    Returns:
        int64 quotas, same shape as ``real_counts``, each row summing to ``n_syn``. Exact integer
        arithmetic; remainder ties go to the lower group index.
    """
    if not isinstance(real_counts, torch.Tensor) or real_counts.dtype.is_floating_point:
        raise TypeError(f"real_counts must be an integer tensor, got {real_counts!r}")
    single = real_counts.dim() == 1
    counts = real_counts.reshape(1, -1) if single else real_counts
    if counts.dim() != 2:
        raise ValueError(f"real_counts must be (K,) or (B, K), got shape {tuple(real_counts.shape)}")
    counts = counts.long()
    n = torch.as_tensor(n_syn, dtype=torch.int64, device=counts.device).reshape(-1).expand(counts.shape[0])
    total = counts.sum(dim=1)
    if value_checks_enabled():  # each a host sync: skipped inside value_checks(False)
        if bool((counts < 0).any()) or bool((total <= 0).any()):
            raise ValueError("real_counts must be non-negative with a positive sum per instance")
        if bool((n < 0).any()):
            raise ValueError(f"n_syn must be non-negative, got {n.tolist()}")
    numer = n[:, None] * counts
    floor, rem = numer // total[:, None], numer % total[:, None]
    leftover = n - floor.sum(dim=1)
    order = torch.argsort(-rem, dim=1, stable=True)
    positions = torch.arange(counts.shape[1], device=counts.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)
    quotas = floor + (rank < leftover[:, None]).long()
    return quotas[0] if single else quotas


# ----------------------------------------------------------------------------------------------
# assignment
# ----------------------------------------------------------------------------------------------
def _prepare_assignment(desc, centroids, real_counts, fraction, offsets, lengths):
    seg = pack(desc, offsets=offsets, lengths=lengths, name="desc")
    b, d = seg.num_instances, seg.points.shape[1]
    centroids = check_float_tensor("centroids", centroids, ndim=(2, 3))
    want = (b, None, d) if seg.layout != "single" else (None, d)
    if centroids.dim() != len(want) or centroids.shape[-1] != d or (seg.layout != "single" and centroids.shape[0] != b):
        raise ValueError(f"centroids must be (K, {d}) for one instance or ({b}, K, {d}) for a batch, "
                         f"got {tuple(centroids.shape)}")
    if centroids.device != seg.points.device:
        raise ValueError(f"centroids must be on {seg.points.device}, got {centroids.device}")
    if value_checks_enabled() and not bool(torch.isfinite(centroids).all()):
        raise ValueError("centroids contains NaN or Inf")
    centroids = centroids.reshape(b, -1, d)
    k = centroids.shape[1]
    if not isinstance(real_counts, torch.Tensor) or real_counts.dtype.is_floating_point:
        raise TypeError(f"real_counts must be an integer tensor, got {type(real_counts).__name__}")
    if real_counts.numel() != b * k:
        raise ValueError(f"real_counts must have shape ({k},) or ({b}, {k}), got {tuple(real_counts.shape)}")
    sizes = seg.offsets.diff()  # on the device: no host-to-device copy
    if isinstance(fraction, numbers.Real) and not isinstance(fraction, bool):
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}")
        n_assign = torch.floor(sizes.double() * float(fraction) + 0.5).long()
    else:
        frac = torch.as_tensor(fraction, dtype=torch.float64).to(seg.points.device).reshape(-1).expand(b)
        if value_checks_enabled() and not bool(((frac >= 0) & (frac <= 1)).all()):
            raise ValueError(f"fraction must lie in [0, 1], got {frac.tolist()}")
        n_assign = torch.floor(frac * sizes + 0.5).long()
    quotas = proportional_quotas(real_counts.reshape(b, k).to(seg.points.device), sizes)
    dtype = compute_dtype(seg.points.dtype)
    dist = sq_dists_to_sets(seg, centroids.to(dtype))  # (P, K)
    return seg, dist, quotas, n_assign


def _match_torch(dist: torch.Tensor, inst: torch.Tensor, quotas: torch.Tensor) -> torch.Tensor:
    """Deferred acceptance, all instances at once: returns each patch's group (P,)."""
    p, k = dist.shape
    pref = torch.argsort(dist, dim=1, stable=True)  # a patch's groups by (distance, index)
    nxt = torch.zeros(p, dtype=torch.int64, device=dist.device)
    rows = torch.arange(p, device=dist.device)
    flat_quota = quotas.reshape(-1)
    while True:
        group = pref[rows, nxt]
        order = torch.argsort(dist[rows, group], stable=True)  # by (distance, patch)
        key = inst * k + group
        order = order[torch.argsort(key[order], stable=True)]  # then by (instance, group)
        key_sorted = key[order]
        rank = rows - torch.searchsorted(key_sorted, key_sorted)  # position within its group
        rejected = order[rank >= flat_quota[key_sorted]]
        if rejected.numel() == 0:
            return group
        nxt[rejected] += 1
        if int(nxt.max()) >= k:  # impossible when Σ quotas = M; guards against bad quotas
            raise RuntimeError("quota matching failed: a patch was rejected by every group")


def _match_cuda(dist: torch.Tensor, offsets: torch.Tensor, quotas: torch.Tensor, max_rows: int) -> torch.Tensor:
    """The CUDA extension's rounds; with value checks on it also verifies (one sync) that
    ``max_rows`` covers every instance."""
    pref = torch.argsort(dist, dim=1, stable=True).to(torch.int32)
    out = torch.empty(dist.shape[0], dtype=torch.int64, device=dist.device)
    torch.ops.irkernels.quota_match_(dist.float().contiguous(), pref.contiguous(), offsets,
                                     quotas.to(torch.int32).contiguous(), out, max_rows, value_checks_enabled())
    return out


# The matching as one custom op: torch.compile sees an opaque node with a shape-only fake (its
# torch fallback's data-dependent rounds and the extension's launch stay out of the graph).
@torch.library.custom_op("irkernels::quota_match", mutates_args=())
def _quota_match(dist: torch.Tensor, inst: torch.Tensor, offsets: torch.Tensor, quotas: torch.Tensor,
                 max_rows: int, backend: str) -> torch.Tensor:
    """Each patch's group (P,) int64 of the stable matching under ``quotas (B, K)``; ``backend``:
    ``"cuda"`` (the compiled extension) or ``"torch"`` (:func:`assign_backend`'s answer)."""
    if backend == "cuda":
        return _match_cuda(dist, offsets, quotas, max_rows)
    return _match_torch(dist, inst, quotas)


@_quota_match.register_fake
def _quota_match_fake(dist, inst, offsets, quotas, max_rows, backend):
    return dist.new_empty((dist.shape[0],), dtype=torch.int64)


def _keep_closest(dist: torch.Tensor, group: torch.Tensor, seg: Segments, n_assign: torch.Tensor) -> torch.Tensor:
    """Keep, per instance, the ``n_assign`` matched pairs with the smallest (distance, patch)."""
    inst = seg.instance_ids
    rows = torch.arange(group.numel(), device=group.device)
    order = torch.argsort(dist[rows, group], stable=True)
    order = order[torch.argsort(inst[order], stable=True)]
    rank = torch.empty_like(order)
    rank[order] = rows - seg.offsets[inst[order]]
    keep = rank < n_assign.to(group.device)[inst]
    return torch.where(keep, group, -1)


def assign_backend(device: torch.device, max_instance: int, k: int, backend: str = "auto") -> str:
    """Which matching runs: ``"cuda"`` (the compiled extension) when ``backend`` resolves to the
    fused path (``"auto"``/``"triton"`` on CUDA tensors), the extension is built, and the problem
    fits it (at most ``_ext.MAX_QUOTA_MATCH_ROWS`` patches per instance and 256 groups); else
    ``"torch"``. There is no Triton kernel for this op, so ``"triton"`` means "fused where one
    exists" like ``"auto"``: callers pass the same string to every op."""
    if resolve_backend(backend, device) == "torch":
        return "torch"
    fits = device.type == "cuda" and max_instance <= _ext.MAX_QUOTA_MATCH_ROWS and k <= 256
    return "cuda" if fits and _ext.has_op("quota_match_") else "torch"


def assign_with_quotas(
    desc: torch.Tensor,
    centroids: torch.Tensor,
    real_counts: torch.Tensor,
    fraction: float | torch.Tensor = 1.0,
    *,
    offsets: torch.Tensor | None = None,
    lengths: torch.Tensor | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Assign synthetic patch descriptors to groups under proportional quotas (module docstring).

    Args:
        desc: synthetic descriptors ``(M, D)``, ``(B, M, D)`` (+ ``lengths``) or ``(ΣM_b, D)`` +
            ``offsets``.
        centroids: ``(K, D)`` or ``(B, K, D)`` group centroids (e.g. ``kmeans(...).centroids``).
        real_counts: ``(K,)`` / ``(B, K)`` integer real patches per group (``bincount`` of the
            k-means labels).
        fraction: share of the synthetic patches to assign, float or ``(B,)``, in ``[0, 1]``.
        backend: ``"auto"`` | ``"triton"`` | ``"torch"`` (see :func:`assign_backend`).
    Returns:
        int64 group per synthetic patch, −1 where unassigned, in ``desc``'s layout (padding −1).

    Host syncs: with value checks off, a float ``fraction``, and packed ``offsets`` already seen
    once (their sizes are remembered per tensor), the CUDA-extension path makes none; the torch
    matching reads one flag per deferred-acceptance round.
    """
    seg, dist, quotas, n_assign = _prepare_assignment(desc, centroids, real_counts, fraction, offsets, lengths)
    name = assign_backend(seg.points.device, max(seg.sizes), dist.shape[1], backend)
    group = _quota_match(dist, seg.instance_ids, seg.offsets, quotas, max(seg.sizes), name)
    return seg.unpack_rows(_keep_closest(dist, group, seg, n_assign), -1)


def assign_with_quotas_reference(desc, centroids, real_counts, fraction=1.0, *, offsets=None,
                                 lengths=None) -> torch.Tensor:
    """The rule verbatim: the sequential greedy walk over globally sorted pairs (CPU, numpy)."""
    seg, dist, quotas, n_assign = _prepare_assignment(desc, centroids, real_counts, fraction, offsets, lengths)
    k = dist.shape[1]
    labels = np.full(seg.points.shape[0], -1, dtype=np.int64)
    dist_np, quotas_np = dist.cpu().numpy(), quotas.cpu().numpy()
    for b, (start, m) in enumerate(zip(seg.starts, seg.sizes)):
        left, taken = quotas_np[b].copy(), 0
        for pair in np.argsort(dist_np[start:start + m].ravel(), kind="stable"):  # (d, i, m) order
            if taken >= n_assign[b]:
                break
            i, g = divmod(int(pair), k)
            if labels[start + i] < 0 and left[g] > 0:
                labels[start + i], left[g], taken = g, left[g] - 1, taken + 1
    return seg.unpack_rows(torch.from_numpy(labels).to(seg.points.device), -1)
