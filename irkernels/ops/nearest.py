"""IDC grouping (§3.4), the second op: for every assigned synthetic patch, the nearest real patch
of the same group and instance (the pair-level loss's partner). Layouts as in
:mod:`irkernels.ops.kmeans`: one instance ``(M, F)`` or packed ``(ΣM_b, F)`` + offsets.

Every (instance, group) is a segment of rows sorted by (instance, group); the Triton kernel streams
each segment's real rows past a tile of its synthetic rows (a grouped GEMM with a running argmin,
never the distance matrix), the torch path runs a chunked GEMM and argmin per segment.
"""
from __future__ import annotations

import dataclasses

import torch

from .._checks import value_checks_enabled
from ._backend import resolve_backend
from ._segments import Segments, pack
from .utils import cdiv, check_precision, compute_dtype, dot_precision, tile_config, tl, triton


# ----------------------------------------------------------------------------------------------
# Triton: grouped GEMM with a running argmin
# ----------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------
# pairing: nearest real patch of the same group
# ----------------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _nearest_in_group_kernel(
        syn_ptr, real_ptr, real_norm_ptr, syn_rows_ptr, real_rows_ptr,
        tile_syn_lo_ptr, tile_syn_hi_ptr, tile_real_lo_ptr, tile_real_hi_ptr,
        best_ptr, F,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_F: tl.constexpr, PRECISION: tl.constexpr,
    ):
        """One program = up to BLOCK_M synthetic rows of one (instance, group); it scans that
        group's real rows in BLOCK_N tiles (rows gathered through index lists, no copies),
        accumulating ⟨s, r⟩ over F in BLOCK_F chunks, and keeps a running argmin of
        ‖r‖² − 2⟨s, r⟩ (‖s‖² is constant per row). Ties keep the earlier real row."""
        pid = tl.program_id(0)
        s_lo = tl.load(tile_syn_lo_ptr + pid)
        s_hi = tl.load(tile_syn_hi_ptr + pid)
        r_lo = tl.load(tile_real_lo_ptr + pid)
        r_hi = tl.load(tile_real_hi_ptr + pid)
        offs_m = s_lo + tl.arange(0, BLOCK_M)
        m_mask = offs_m < s_hi
        syn_rows = tl.load(syn_rows_ptr + offs_m, mask=m_mask, other=0).to(tl.int64)
        offs_f = tl.arange(0, BLOCK_F)
        best_val = tl.full((BLOCK_M,), float("inf"), tl.float32)
        best_pos = tl.full((BLOCK_M,), -1, tl.int64)
        for n0 in range(r_lo, r_hi, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_mask = offs_n < r_hi
            real_rows = tl.load(real_rows_ptr + offs_n, mask=n_mask, other=0).to(tl.int64)
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for f0 in range(0, F, BLOCK_F):
                f_mask = (f0 + offs_f) < F
                s = tl.load(syn_ptr + syn_rows[:, None] * F + f0 + offs_f[None, :],
                            mask=m_mask[:, None] & f_mask[None, :], other=0.0).to(tl.float32)
                r = tl.load(real_ptr + real_rows[None, :] * F + f0 + offs_f[:, None],
                            mask=n_mask[None, :] & f_mask[:, None], other=0.0).to(tl.float32)
                acc = tl.dot(s, r, acc, input_precision=PRECISION)
            r_norm = tl.load(real_norm_ptr + real_rows, mask=n_mask, other=0.0)
            dist = tl.where(n_mask[None, :], r_norm[None, :] - 2.0 * acc, float("inf"))
            tile_val = tl.min(dist, axis=1)
            tile_pos = n0 + tl.argmin(dist, axis=1)
            better = tile_val < best_val
            best_val = tl.where(better, tile_val, best_val)
            best_pos = tl.where(better, tile_pos.to(tl.int64), best_pos)
        tl.store(best_ptr + offs_m, best_pos, mask=m_mask)


@dataclasses.dataclass(frozen=True)
class NearestTiles:
    """Synthetic rows per program (``block_m``), real rows per step (``block_n``), features per
    dot (``block_f``), warps."""

    block_m: int
    block_n: int
    block_f: int
    warps: int


def _tiles() -> NearestTiles:
    """128 synthetic rows per program: at IDC sizes (~120 synthetic patches per group) a group's
    real rows are then streamed once, which is what bounds this op. ``IRKERNELS_NEAREST_TILES``
    overrides."""
    return tile_config(NearestTiles, "nearest", block_m=128, block_n=64, block_f=32, warps=8)


def _tile_plan(syn_bounds: torch.Tensor, real_bounds: torch.Tensor, rows: int, block_m: int) -> torch.Tensor:
    """``(4, T)`` int32 (syn lo, syn hi, real lo, real hi) per program, built on the device for the
    host-known bound ``T = ⌈rows / block_m⌉ + groups`` (each group adds at most one partial tile);
    programs past the last tile get empty ranges."""
    groups = syn_bounds.numel() - 1
    count = syn_bounds.diff()
    tiles = (count + block_m - 1) // block_m
    ends = tiles.cumsum(0)
    t = torch.arange(cdiv(rows, block_m) + groups, device=syn_bounds.device)
    g = torch.searchsorted(ends, t, right=True).clamp_max(groups - 1)
    used = t < ends[-1]
    lo = syn_bounds[g] + (t - (ends[g] - tiles[g])) * block_m
    hi = torch.minimum(lo + block_m, syn_bounds[g + 1])
    plan = torch.stack([lo, hi, real_bounds[g], real_bounds[g + 1]])
    return torch.where(used, plan, 0).to(torch.int32)


def _nearest_triton(syn, real, syn_rows, syn_bounds, real_rows, real_bounds, precision: str) -> torch.Tensor:
    cfg = _tiles()
    pos = torch.full((syn_rows.numel(),), -1, dtype=torch.int64, device=syn.device)
    if syn_rows.numel() == 0:
        return pos
    plan = _tile_plan(syn_bounds, real_bounds, syn_rows.numel(), cfg.block_m)
    real_norm = torch.linalg.vector_norm(real, dim=1, dtype=torch.float32).square()  # no (N, F) temporary
    _nearest_in_group_kernel[(plan.shape[1],)](
        syn, real, real_norm, syn_rows, real_rows, plan[0], plan[1], plan[2], plan[3], pos, syn.shape[1],
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_F=cfg.block_f, PRECISION=precision, num_warps=cfg.warps,
    )
    return pos


# ----------------------------------------------------------------------------------------------
# torch path
# ----------------------------------------------------------------------------------------------
def _group_order(labels: torch.Tensor, seg: Segments, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All rows sorted stably by (instance, group), rows with label < 0 last, and CSR offsets
    ``(B·k + 1,)`` of the labelled ones per (instance, group). Fixed shapes: no host sync."""
    key = torch.where(labels >= 0, seg.instance_ids * k + labels, seg.num_instances * k)
    rows = torch.argsort(key, stable=True)
    bounds = torch.searchsorted(key[rows], torch.arange(seg.num_instances * k + 1, device=labels.device))
    return rows, bounds


def _nearest_torch(syn, real, syn_rows, syn_bounds, real_rows, real_bounds, chunk_rows: int = 4096) -> torch.Tensor:
    """Per (instance, group): chunked GEMM distances and argmin; returns positions in ``real_rows``
    (−1 where the group has no real row or the row is unlabelled)."""
    dtype = compute_dtype(syn.dtype)
    pos = torch.full((syn_rows.numel(),), -1, dtype=torch.int64, device=syn.device)
    sb, rb = torch.stack([syn_bounds, real_bounds]).tolist()
    for seg_id in range(len(sb) - 1):
        r_lo, r_hi = rb[seg_id], rb[seg_id + 1]
        if r_hi == r_lo:
            continue
        r = real[real_rows[r_lo:r_hi]].to(dtype)
        r_norm = (r * r).sum(-1)
        for lo in range(sb[seg_id], sb[seg_id + 1], chunk_rows):
            hi = min(lo + chunk_rows, sb[seg_id + 1])
            s = syn[syn_rows[lo:hi]].to(dtype)
            pos[lo:hi] = r_lo + (r_norm[None, :] - 2 * s @ r.T).argmin(dim=1)
    return pos


# ----------------------------------------------------------------------------------------------
# custom op
# ----------------------------------------------------------------------------------------------
# The search as one custom op: torch.compile sees an opaque node with a shape-only fake (the torch
# path's per-group loop reads the bounds on the host; the Triton launch stays out of the graph).
@torch.library.custom_op("irkernels::nearest_in_group", mutates_args=())
def _nearest_positions(syn: torch.Tensor, real: torch.Tensor, syn_rows: torch.Tensor, syn_bounds: torch.Tensor,
                       real_rows: torch.Tensor, real_bounds: torch.Tensor, precision: str, backend: str) -> torch.Tensor:
    """Per row of ``syn_rows`` (in that order) the position in ``real_rows`` of its nearest real row of
    the same (instance, group), −1 where there is none; ``backend``: ``"triton"`` or ``"torch"``."""
    if backend == "triton":
        return _nearest_triton(syn, real, syn_rows, syn_bounds, real_rows, real_bounds, precision)
    return _nearest_torch(syn, real, syn_rows, syn_bounds, real_rows, real_bounds)


@_nearest_positions.register_fake
def _nearest_positions_fake(syn, real, syn_rows, syn_bounds, real_rows, real_bounds, precision, backend):
    return syn_rows.new_empty((syn_rows.shape[0],), dtype=torch.int64)


# ----------------------------------------------------------------------------------------------
# public function
# ----------------------------------------------------------------------------------------------
def nearest_in_group(
    syn: torch.Tensor,
    syn_labels: torch.Tensor,
    real: torch.Tensor,
    real_labels: torch.Tensor,
    *,
    syn_offsets: torch.Tensor | None = None,
    real_offsets: torch.Tensor | None = None,
    num_groups: int | None = None,
    precision: str = "high",
    backend: str = "auto",
) -> torch.Tensor:
    """For every assigned synthetic patch, the nearest real patch of the same group.

    Args:
        syn: synthetic patch features ``(M, F)`` (flatten ``(M, p·p, C)`` first) or packed
            ``(ΣM_b, F)`` with ``syn_offsets``; real: ``(N, F)`` / ``(ΣN_b, F)`` with
            ``real_offsets`` (same number of instances).
        syn_labels / real_labels: int groups per row (−1 for an unassigned synthetic patch).
        num_groups: groups per instance (labels lie in ``[0, num_groups)``); ``None`` reads it
            from the labels (one host sync).
        precision: dot precision of the Triton kernel (``"high"`` | ``"highest"`` | ``"fast"``,
            as :func:`irkernels.ops.kmeans.kmeans`).
        backend: ``"auto"`` | ``"triton"`` | ``"torch"``.
    Returns:
        int64 ``(ΣM_b,)``: the index of the nearest real row *within its instance*
        (``0 … N_b − 1``; ties → lowest index), −1 for unassigned patches and for patches whose
        group has no real patch.

    Host syncs: with value checks off, ``num_groups`` given and offsets seen before (their sizes
    are remembered per tensor), the Triton path makes none (its tile plan is built on the
    device); the torch path reads the per-group bounds once.
    """
    check_precision(precision)
    syn_seg = pack(syn, offsets=syn_offsets, name="syn")
    real_seg = pack(real, offsets=real_offsets, name="real")
    if syn_seg.num_instances != real_seg.num_instances:
        raise ValueError(f"syn has {syn_seg.num_instances} instances but real has {real_seg.num_instances}")
    if syn_seg.points.shape[1] != real_seg.points.shape[1]:
        raise ValueError("syn and real must have the same feature size, "
                         f"got {syn_seg.points.shape[1]} and {real_seg.points.shape[1]}")
    if syn_seg.points.device != real_seg.points.device:
        raise ValueError(f"syn and real must be on one device, got {syn_seg.points.device} and {real_seg.points.device}")
    for name, labels, seg in (("syn_labels", syn_labels, syn_seg), ("real_labels", real_labels, real_seg)):
        rows = seg.points.shape[0]
        if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.shape != (rows,):
            raise ValueError(f"{name} must be an integer tensor of shape ({rows},)")
        if labels.device != seg.points.device:
            raise ValueError(f"{name} must be on {seg.points.device}, got {labels.device}")
    if num_groups is not None and (isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1):
        raise ValueError(f"num_groups must be a positive int or None, got {num_groups!r}")
    if value_checks_enabled():
        low, high, syn_high = (int(v) for v in torch.stack(
            [real_labels.min().long(), real_labels.max().long(), syn_labels.max().long()]).tolist())
        if low < 0:
            raise ValueError("real_labels must be >= 0 (every real patch belongs to a group)")
        if num_groups is not None and max(high, syn_high) >= num_groups:
            raise ValueError(f"labels must lie below num_groups={num_groups}, got max {max(high, syn_high)}")
        k = num_groups if num_groups is not None else max(high, syn_high) + 1
    else:
        k = num_groups if num_groups is not None else int(torch.maximum(syn_labels.max(), real_labels.max())) + 1
    syn_rows, syn_bounds = _group_order(syn_labels.long(), syn_seg, k)
    real_rows, real_bounds = _group_order(real_labels.long(), real_seg, k)
    pos = _nearest_positions(syn_seg.points, real_seg.points, syn_rows, syn_bounds, real_rows, real_bounds,
                             dot_precision(precision, torch.float32), resolve_backend(backend, syn_seg.points.device))
    found = pos >= 0
    real_global = real_rows[pos.clamp_min(0)]
    local = real_global - real_seg.offsets[real_seg.instance_ids[real_global]]
    # syn_rows is a permutation of every synthetic row: one scatter writes the whole result
    out = torch.empty(syn_seg.points.shape[0], dtype=torch.int64, device=syn_seg.points.device)
    return out.scatter_(0, syn_rows, torch.where(found, local, -1))


# ----------------------------------------------------------------------------------------------
# float64 oracle
# ----------------------------------------------------------------------------------------------
def nearest_in_group_reference(syn, syn_labels, real, real_labels, *, syn_offsets=None,
                               real_offsets=None) -> torch.Tensor:
    """Brute force oracle: the full masked distance matrix per instance (small inputs only)."""
    syn_seg = pack(syn, offsets=syn_offsets, name="syn")
    real_seg = pack(real, offsets=real_offsets, name="real")
    out = torch.full((syn_seg.points.shape[0],), -1, dtype=torch.int64)
    for (s0, m), (r0, n) in zip(zip(syn_seg.starts, syn_seg.sizes), zip(real_seg.starts, real_seg.sizes)):
        s, r = syn_seg.points[s0:s0 + m].double().cpu(), real_seg.points[r0:r0 + n].double().cpu()
        ls, lr = syn_labels[s0:s0 + m].cpu(), real_labels[r0:r0 + n].cpu()
        dist = torch.cdist(s, r) ** 2
        dist[ls[:, None] != lr[None, :]] = float("inf")
        best = dist.argmin(dim=1)
        ok = (ls >= 0) & torch.isfinite(dist.min(dim=1).values)
        out[s0:s0 + m] = torch.where(ok, best, -1)
    return out.to(syn_seg.points.device)
