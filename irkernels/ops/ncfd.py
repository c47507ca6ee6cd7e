"""Neural characteristic-function discrepancy (NCFD) between a real and a synthetic sample set.

Math (IDC eq. 2-3, the public NCFM code): for frequencies ``t (T, D)``

    Φ_x(t) = mean_n exp(i⟨t, x_n⟩)                     (Re = mean cos, Im = mean sin)
    Chf(t) = α·A(t) + (1-α)·2(|Φ_x||Φ_y| - ReΦ_x ReΦ_y - ImΦ_x ImΦ_y)
    loss   = mean_t sqrt(max(Chf(t), ε))

with the amplitude term ``A = (|Φ_x| - |Φ_y|)²`` (NCFM code, ``amplitude="modulus"``, default) or
``A = |Φ_x - Φ_y|²`` (as the IDC paper writes it, ``amplitude="difference"``).

The expensive part is the statistics ``Φ`` over all samples and their backward; everything after
is elementwise on ``(G, T)``. So the op is split in two:

* ``cf_stats`` — per-group means of ``cos/sin ⟨t, x_n⟩``. The sums are the custom op
  ``irkernels::cf_sums`` (``torch.library``, with a fake and an autograd registration, so that
  ``torch.compile(fullgraph=True)`` traces through it). On CUDA it runs fused Triton kernels that
  never materialise the ``(N, T)`` matrix: each tile is a small GEMM ``x_tile · t_tileᵀ`` whose
  epilogue takes cos/sin and reduces over samples in registers (a one-hot GEMM reduces into the
  groups of the tile). Grouped samples are visited in group order (one sort, on the device), so
  every (sample, frequency) pair's sin/cos is evaluated once whatever the number of groups. The
  backward recomputes the dot products and does the second GEMM in the same kernel. Elsewhere,
  plain torch chunked over samples so that memory stays O(chunk·T).
* ``ncfd_from_stats`` — the discrepancy from two ``CFStats`` in plain torch (O(G·T)).

``ncfd_loss`` composes them; the real side can be computed once with ``cf_stats`` and passed in
place of ``x`` while the frequencies are unchanged.

``ncfd_loss_reference`` is the eager formula of the public NCFM code (materialises ``(T, N)``);
it is the test oracle and the benchmarks' baseline.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

from ._backend import fused_or_torch, interpreter_active
from .._checks import check_finite, check_float_tensor, check_index_tensor, check_same_device
from .utils import Precision, check_precision, compute_dtype, dot_precision, sm_count, tile_config, tl, triton

Amplitude = Literal["modulus", "difference"]
Reduction = Literal["none", "mean", "sum"]

# Largest group block one forward program reduces into with the one-hot GEMM. Grouped samples are
# sorted by group, so a block of groups is one contiguous run of rows: more groups only add
# programs, never re-evaluate a sample's sin/cos.
_MAX_GROUP_BLOCK = 32
# The torch path's (chunk, T) temporaries stay below this many bytes each.
_TORCH_CHUNK_BYTES = 64 * 2**20
# Per-split partial sums of the forward kernel stay below this (they make the result deterministic:
# no atomics, a fixed-order reduction over splits afterwards).
_PARTIAL_BYTES = 16 * 2**20
# Interpreter only (tests): round every TF32 dot operand as the tensor cores would, since the
# interpreter computes dots in fp32 whatever ``input_precision`` says. 0 off, 1 round to nearest,
# 2 truncate. Never used on CUDA, where the hardware does the rounding.
_EMULATE_TF32 = 0
# Seed of the default frequencies when no generator is given (the global RNG is never used).
DEFAULT_FREQUENCY_SEED = 0


class CFStats(NamedTuple):
    """Empirical characteristic function of a (grouped) sample set at frequencies ``t``.

    ``re``, ``im``: ``(G, T)`` float32 means of ``cos/sin ⟨t, x_n⟩`` over the samples of each group
    (``G = 1`` when ungrouped; 0 for an empty group). ``counts``: ``(G,)`` int64 samples per group.
    """

    re: torch.Tensor
    im: torch.Tensor
    counts: torch.Tensor


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _tf32(a, MODE: tl.constexpr):
        """``a`` (fp32) rounded to TF32 (10 explicit mantissa bits): ``MODE`` 1 to nearest (ties
        away from zero, as ``cvt.rna.tf32.f32``), 2 by truncation (what an MMA does with the low
        bits of an fp32 register). Bit masking, so the interpreter can run it."""
        bits = a.to(tl.int32, bitcast=True)
        if MODE == 1:
            bits = bits + 0x1000
        return (bits & -8192).to(tl.float32, bitcast=True)

    @triton.jit
    def _dot(a, b, acc, PRECISION: tl.constexpr, EMULATE_TF32: tl.constexpr):
        """``acc + a @ b`` with Triton's ``input_precision=PRECISION``. With ``EMULATE_TF32`` (1 round
        to nearest, 2 truncate; interpreter only) the TF32 operand rounding is done explicitly, and
        ``"tf32x3"`` as the usual 3-pass split: ``hi = rna(a)``, ``lo = a - hi``,
        ``lo·hi + hi·lo + hi·hi`` (each pass's operands rounded as the tensor cores would)."""
        if EMULATE_TF32 == 0 or PRECISION == "ieee":
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
        elif PRECISION == "tf32":
            acc = tl.dot(_tf32(a, EMULATE_TF32), _tf32(b, EMULATE_TF32), acc, input_precision="ieee")
        else:
            a_hi = _tf32(a, 1)
            b_hi = _tf32(b, 1)
            acc = tl.dot(_tf32(a - a_hi, EMULATE_TF32), b_hi, acc, input_precision="ieee")
            acc = tl.dot(a_hi, _tf32(b - b_hi, EMULATE_TF32), acc, input_precision="ieee")
            acc = tl.dot(a_hi, b_hi, acc, input_precision="ieee")
        return acc

    @triton.jit
    def _sincos(theta, RANGE_REDUCE: tl.constexpr, APPROX: tl.constexpr):
        """cos and sin of ``theta``. ``RANGE_REDUCE`` maps to [-π, π] first (Cody-Waite, two
        constants: 6.28125 has 8 significant bits so ``k·hi`` is exact for |k| < 2^16, i.e.
        |θ| < 4·10^5; the reduced argument's error is ~|k|·1e-10 plus one rounding);
        ``APPROX`` then uses the SFU's ``sin/cos.approx.f32`` (abs. error ~5e-7 on [-π, π]),
        which only the CUDA compiler can lower (never set under the interpreter)."""
        if RANGE_REDUCE:
            k = tl.floor(theta * 0.15915494309189535 + 0.5)
            theta = tl.fma(k, -6.28125, theta)
            theta = tl.fma(k, -0.0019353071795864769, theta)
        if APPROX:
            c = tl.inline_asm_elementwise("cos.approx.f32 $0, $1;", "=r,r", [theta], dtype=tl.float32,
                                          is_pure=True, pack=1)
            s = tl.inline_asm_elementwise("sin.approx.f32 $0, $1;", "=r,r", [theta], dtype=tl.float32,
                                          is_pure=True, pack=1)
        else:
            c = tl.cos(theta)
            s = tl.sin(theta)
        return c, s

    @triton.jit
    def _cf_sums_kernel(
        X, TF, ROWS, GID, OFFS, PART,
        N, D, T, G, n_splits,
        stride_xn, stride_xd, stride_tt, stride_td,
        HAS_GROUPS: tl.constexpr, G_BLOCK: tl.constexpr,
        BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
        PHASE_PRECISION: tl.constexpr, SUM_PRECISION: tl.constexpr, EMULATE_TF32: tl.constexpr,
        RANGE_REDUCE: tl.constexpr, APPROX: tl.constexpr,
    ):
        """Partial sums of cos/sin⟨t, x_n⟩ over one split of one group block's samples, for one
        block of frequencies. ``PART`` is ``(n_splits, 2, G, T)`` float32: [cos, sin].

        Grouped: ``ROWS`` lists the sample rows sorted by group, ``GID`` their (sorted) group ids and
        ``OFFS (G+1,)`` where each group's run starts, so group block ``[g0, g0 + G_BLOCK)`` is the
        run ``ROWS[OFFS[g0]:OFFS[g0 + G_BLOCK]]``. Every row belongs to exactly one block: each
        sample's dot products and sin/cos are evaluated once per frequency, whatever G is."""
        pid_t = tl.program_id(0)  # fastest: programs sharing rows of x run together (L2 reuse)
        pid_s = tl.program_id(1)
        pid_g = tl.program_id(2)
        offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
        t_mask = offs_t < T
        g0 = pid_g * G_BLOCK
        if HAS_GROUPS:
            lo = tl.load(OFFS + g0)
            hi = tl.load(OFFS + tl.minimum(g0 + G_BLOCK, G))
        else:
            lo = 0
            hi = N
        per_split = tl.cdiv(tl.cdiv(hi - lo, n_splits), BLOCK_N) * BLOCK_N
        row_start = lo + pid_s * per_split
        row_end = tl.minimum(row_start + per_split, hi)
        # Reduction over samples = a GEMM with a one-hot (group × sample) matrix: tensor cores do
        # the segment sum for every group of the block at once. Ungrouped is G = 1 (row 0 = all
        # ones); a (16, BLOCK_T) accumulator there also keeps registers low next to θ's tile.
        g_local = tl.arange(0, G_BLOCK)
        acc_c = tl.zeros((G_BLOCK, BLOCK_T), dtype=tl.float32)
        acc_s = tl.zeros((G_BLOCK, BLOCK_T), dtype=tl.float32)
        for n0 in range(row_start, row_end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_mask = offs_n < row_end
            if HAS_GROUPS:
                rows = tl.load(ROWS + offs_n, mask=n_mask, other=0)
            else:
                rows = offs_n
            theta = tl.zeros((BLOCK_N, BLOCK_T), dtype=tl.float32)
            for d0 in range(0, D, BLOCK_D):
                offs_d = d0 + tl.arange(0, BLOCK_D)
                d_mask = offs_d < D
                # int64 row offsets: N·D may pass 2^31 elements.
                xa = tl.load(X + rows[:, None].to(tl.int64) * stride_xn + offs_d[None, :] * stride_xd,
                             mask=n_mask[:, None] & d_mask[None, :], other=0.0).to(tl.float32)
                tb = tl.load(TF + offs_t[None, :] * stride_tt + offs_d[:, None] * stride_td,
                             mask=t_mask[None, :] & d_mask[:, None], other=0.0).to(tl.float32)
                theta = _dot(xa, tb, theta, PHASE_PRECISION, EMULATE_TF32)
            c, s = _sincos(theta, RANGE_REDUCE, APPROX)
            if HAS_GROUPS:
                gid = tl.load(GID + offs_n, mask=n_mask, other=-1) - g0  # masked rows: < 0, match none
                onehot = (gid[None, :] == g_local[:, None]).to(tl.float32)
            else:
                onehot = ((g_local[:, None] == 0) & n_mask[None, :]).to(tl.float32)
            acc_c = _dot(onehot, c, acc_c, SUM_PRECISION, EMULATE_TF32)
            acc_s = _dot(onehot, s, acc_s, SUM_PRECISION, EMULATE_TF32)
        g_ids = g0 + g_local
        ptrs = PART + pid_s * 2 * G * T + g_ids[:, None] * T + offs_t[None, :]
        mask = (g_ids < G)[:, None] & t_mask[None, :]
        tl.store(ptrs, acc_c, mask=mask)
        tl.store(ptrs + G * T, acc_s, mask=mask)

    @triton.jit
    def _cf_grad_samples_kernel(
        X, TF, GID, COEF_RE, COEF_IM, DX,
        N, D, T,
        stride_xn, stride_xd, stride_tt, stride_td, stride_dn, stride_dd,
        HAS_GROUPS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
        PHASE_PRECISION: tl.constexpr, SUM_PRECISION: tl.constexpr, EMULATE_TF32: tl.constexpr,
        RANGE_REDUCE: tl.constexpr, APPROX: tl.constexpr,
    ):
        """dX[n] = Σ_t w[n,t]·t_t with w = cos θ·COEF_IM[g_n,t] - sin θ·COEF_RE[g_n,t] and θ = ⟨x_n, t⟩
        recomputed; both GEMMs in one program, the row tile of X held for the whole T loop. One
        program per row tile whatever G (the coefficients are gathered per row)."""
        pid = tl.program_id(0)
        offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        n_mask = offs_n < N
        offs_d = tl.arange(0, BLOCK_D)
        d_mask = offs_d < D
        xa = tl.load(X + offs_n[:, None].to(tl.int64) * stride_xn + offs_d[None, :] * stride_xd,
                     mask=n_mask[:, None] & d_mask[None, :], other=0.0).to(tl.float32)
        if HAS_GROUPS:
            gid = tl.load(GID + offs_n, mask=n_mask, other=0)
        acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
        for t0 in range(0, T, BLOCK_T):
            offs_t = t0 + tl.arange(0, BLOCK_T)
            t_mask = offs_t < T
            tt = tl.load(TF + offs_t[:, None] * stride_tt + offs_d[None, :] * stride_td,
                         mask=t_mask[:, None] & d_mask[None, :], other=0.0).to(tl.float32)
            theta = _dot(xa, tl.trans(tt), tl.zeros((BLOCK_N, BLOCK_T), dtype=tl.float32),
                         PHASE_PRECISION, EMULATE_TF32)
            c, s = _sincos(theta, RANGE_REDUCE, APPROX)
            if HAS_GROUPS:
                cptr = gid[:, None] * T + offs_t[None, :]
                cmask = n_mask[:, None] & t_mask[None, :]
                w = c * tl.load(COEF_IM + cptr, mask=cmask, other=0.0) - s * tl.load(COEF_RE + cptr, mask=cmask, other=0.0)
            else:
                w = c * tl.load(COEF_IM + offs_t, mask=t_mask, other=0.0)[None, :] \
                    - s * tl.load(COEF_RE + offs_t, mask=t_mask, other=0.0)[None, :]
            acc = _dot(w, tt, acc, SUM_PRECISION, EMULATE_TF32)
        tl.store(DX + offs_n[:, None].to(tl.int64) * stride_dn + offs_d[None, :] * stride_dd,
                 acc.to(DX.dtype.element_ty), mask=n_mask[:, None] & d_mask[None, :])

    @triton.jit
    def _cf_grad_freqs_kernel(
        X, TF, GID, COEF_RE, COEF_IM, DT,
        N, D, T, rows_per_chunk,
        stride_xn, stride_xd, stride_tt, stride_td,
        HAS_GROUPS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
        PHASE_PRECISION: tl.constexpr, SUM_PRECISION: tl.constexpr, EMULATE_TF32: tl.constexpr,
        RANGE_REDUCE: tl.constexpr, APPROX: tl.constexpr,
    ):
        """DT[t] += Σ_n w[n,t]·x_n over one chunk of samples (``DT`` float32, ``(T, BLOCK_D)``-padded
        rows of stride D); one atomic add per program and element."""
        pid_t = tl.program_id(0)
        pid_c = tl.program_id(1)
        offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
        t_mask = offs_t < T
        offs_d = tl.arange(0, BLOCK_D)
        d_mask = offs_d < D
        tt = tl.load(TF + offs_t[:, None] * stride_tt + offs_d[None, :] * stride_td,
                     mask=t_mask[:, None] & d_mask[None, :], other=0.0).to(tl.float32)
        if not HAS_GROUPS:
            coef_re = tl.load(COEF_RE + offs_t, mask=t_mask, other=0.0)
            coef_im = tl.load(COEF_IM + offs_t, mask=t_mask, other=0.0)
        acc = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
        row_start = pid_c * rows_per_chunk
        row_end = tl.minimum(row_start + rows_per_chunk, N)
        for n0 in range(row_start, row_end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_mask = offs_n < row_end
            xa = tl.load(X + offs_n[:, None].to(tl.int64) * stride_xn + offs_d[None, :] * stride_xd,
                         mask=n_mask[:, None] & d_mask[None, :], other=0.0).to(tl.float32)
            theta = _dot(tt, tl.trans(xa), tl.zeros((BLOCK_T, BLOCK_N), dtype=tl.float32),
                         PHASE_PRECISION, EMULATE_TF32)
            c, s = _sincos(theta, RANGE_REDUCE, APPROX)
            if HAS_GROUPS:
                gid = tl.load(GID + offs_n, mask=n_mask, other=0)
                cptr = gid[None, :] * T + offs_t[:, None]
                cmask = n_mask[None, :] & t_mask[:, None]
                w = c * tl.load(COEF_IM + cptr, mask=cmask, other=0.0) - s * tl.load(COEF_RE + cptr, mask=cmask, other=0.0)
            else:
                w = c * coef_im[:, None] - s * coef_re[:, None]
            acc = _dot(w, xa, acc, SUM_PRECISION, EMULATE_TF32)  # masked rows of xa are 0
        tl.atomic_add(DT + offs_t[:, None] * D + offs_d[None, :], acc, mask=t_mask[:, None] & d_mask[None, :])


def _dot_precisions(precision: str) -> tuple[str, str]:
    """``(phase, sum)`` dot precisions: the phase GEMM ⟨x, t⟩ (the sin/cos argument) and the
    reductions (one-hot sums, backward GEMMs). ``"fast"`` keeps the phase in 3×TF32: a TF32 phase
    has an absolute error ~|θ|·2⁻¹¹, which the loss turns into a relative gradient error of
    ~7e-3 (round to nearest) to ~1.7e-2 (truncation) for unit-variance features at D=128 and
    N(0, I) frequencies (|θ| up to ~60); the reductions average their TF32 rounding out."""
    check_precision(precision)
    return dot_precision("high" if precision == "fast" else precision, torch.float32), \
        dot_precision(precision, torch.float32)


def _kernel_flags(precision: str, device: torch.device) -> dict:
    """Dot precisions and sin/cos flavour. Interpreter: plain numpy sin/cos (no inline PTX), but the
    fast mode still runs the range reduction so that its arithmetic is tested on CPU."""
    fast = precision == "fast"
    interp = device.type != "cuda" or interpreter_active()
    phase, total = _dot_precisions(precision)
    return dict(
        PHASE_PRECISION=phase, SUM_PRECISION=total,
        EMULATE_TF32=_EMULATE_TF32 if interp else 0,
        RANGE_REDUCE=fast,
        APPROX=fast and not interp,
    )


def _block_sizes(D: int, precision: str, device: torch.device) -> dict:
    """Tiles ``(BLOCK_N, BLOCK_T, BLOCK_D, num_warps, num_stages)`` for the forward and the backward
    kernels. The backward kernels hold a full ``(BLOCK, D)`` row tile, so they shrink with D.

    Picked by compiling for sm_90 without a GPU (tests/test_ncfd_sm90.py): the largest tiles with
    no register spills and ≤ 100 KB shared memory at D = 128 (figures in docs/ncfd.md). 3×TF32
    phase dots triple the dot operands, and fp32-FMA dots (``"highest"``) hold their operands in
    registers, hence smaller tiles there. Not yet timed on hardware.
    """
    block_d_full = max(16, triton.next_power_of_2(D))
    if device.type != "cuda":  # interpreter: small tiles keep the masked-edge tests meaningful
        return _overridden((32, 32, 16, 4, 1), (16, 16, block_d_full, 4, 1), (16, 16, block_d_full, 4, 1))
    if precision == "fast":
        # BLOCK_D 16, not 32: at 32, Triton 3.6 reaches the 255-register cap and spills (3.8, 3.9 do not).
        fwd = (128, 64, 16, 8, 3)
        # At D=128 the x gradient's (32, 32) and the t gradient's (32, 64) spill under Triton 3.9
        # (bf16 samples; both dtypes); (16, 32) and (32, 32) spill under none of 3.6, 3.8, 3.9.
        bwd = (16, 32, block_d_full, 8, 2)
        bwd_t = (32, 32, block_d_full, 8, 2) if block_d_full <= 128 else (32, 16, block_d_full, 8, 2)
    elif precision == "high":
        fwd = (64, 64, 32, 8, 2)
        bwd = bwd_t = (16, 32, block_d_full, 4, 2)
    else:
        fwd = (64, 64, 16, 8, 2)
        bwd = bwd_t = (16, 32, block_d_full, 4, 1)
    if block_d_full > 256:
        bwd = bwd_t = (16, 16, block_d_full, 4, 1)
    return _overridden(fwd, bwd, bwd_t)


@dataclass(frozen=True)
class NCFDTiles:
    """``(BLOCK_N, BLOCK_T, BLOCK_D, num_warps, num_stages)`` of the forward kernel and of the two
    backward kernels (``IRKERNELS_NCFD_TILES='{"fwd": [64, 64, 16, 8, 2]}'`` replaces one)."""

    fwd: tuple
    bwd: tuple
    bwd_t: tuple


def _overridden(fwd: tuple, bwd: tuple, bwd_t: tuple) -> dict:
    """The chosen tiles with ``IRKERNELS_NCFD_TILES`` applied (the tuning hook every op shares)."""
    tiles = tile_config(NCFDTiles, "ncfd", fwd=fwd, bwd=bwd, bwd_t=bwd_t)
    out = {name: tuple(getattr(tiles, name)) for name in ("fwd", "bwd", "bwd_t")}
    bad = [name for name, v in out.items() if len(v) != 5 or not all(isinstance(i, int) and i > 0 for i in v)]
    if bad:
        raise ValueError(f"IRKERNELS_NCFD_TILES: {bad} must each be 5 positive integers "
                         "(BLOCK_N, BLOCK_T, BLOCK_D, num_warps, num_stages)")
    return out


def _forward_plan(N: int, T: int, G: int, grouped: bool, block_n: int, block_t: int, device: torch.device) -> dict:
    """Grid of the forward kernel, from shapes only (no host sync): ``G_BLOCK`` groups per program,
    ``n_splits`` programs per group block and frequency block (more parallelism when there are few
    groups; capped so that the ``(n_splits, 2, G, T)`` partial sums stay ≤ 16 MiB)."""
    g_block = min(_MAX_GROUP_BLOCK, max(16, triton.next_power_of_2(G))) if grouped else 16
    n_tblocks = triton.cdiv(T, block_t)
    n_gblocks = triton.cdiv(G, g_block) if grouped else 1
    n_splits = max(1, min(triton.cdiv(4 * sm_count(device), n_tblocks * n_gblocks),
                          triton.cdiv(N, block_n * n_gblocks),
                          _PARTIAL_BYTES // (2 * G * T * 4)))
    return dict(g_block=g_block, grid=(n_tblocks, n_splits, n_gblocks))


def _triton_sums(x: torch.Tensor, t: torch.Tensor, groups: torch.Tensor | None, G: int, precision: str) -> torch.Tensor:
    """``(2, G, T)`` float32 sums of [cos, sin] ⟨t, x_n⟩ per group (Triton)."""
    N, D = x.shape
    T = t.shape[0]
    flags = _kernel_flags(precision, x.device)
    block_n, block_t, block_d, warps, stages = _block_sizes(D, precision, x.device)["fwd"]
    grouped = groups is not None and G > 1
    plan = _forward_plan(N, T, G, grouped, block_n, block_t, x.device)
    if grouped:
        # Visit samples in group order: a stable sort (deterministic) and the run starts, on the
        # device. Ids outside [0, G) sort before OFFS[0] or after OFFS[G] and are never read.
        gid_sorted, order = torch.sort(groups, stable=True)
        offsets = torch.searchsorted(gid_sorted, torch.arange(G + 1, device=x.device, dtype=groups.dtype))
        idx_dtype = torch.int32 if N < 2**31 else torch.int64
        rows, offsets = order.to(idx_dtype), offsets.to(idx_dtype)
    else:
        gid_sorted = rows = offsets = x  # dummy pointers (never read)
    part = torch.empty((plan["grid"][1], 2, G, T), device=x.device, dtype=torch.float32)
    _cf_sums_kernel[plan["grid"]](
        x, t, rows, gid_sorted, offsets, part, N, D, T, G, plan["grid"][1],
        x.stride(0), x.stride(1), t.stride(0), t.stride(1),
        HAS_GROUPS=grouped, G_BLOCK=plan["g_block"], BLOCK_N=block_n, BLOCK_T=block_t, BLOCK_D=block_d,
        num_warps=warps, num_stages=stages, **flags,
    )
    return part[0] if part.shape[0] == 1 else part.sum(0)


def triton_backward_supported(D: int, precision: str, device: torch.device) -> bool:
    """Whether the fused backward kernels run for ``D`` features at ``precision`` on ``device``.

    Triton 3.6's ptxas (CUDA 12.8) spills the fast-mode backward kernels at D > 128 with every tile
    tried (16/32-row tiles, 2–16 warps, 1–2 stages: 12–120 bytes spilled); Triton 3.8 and 3.9 do
    not. There the backward runs the torch path (same math, chunked over samples) until the
    kernels split D. The forward is unaffected.
    """
    if device.type != "cuda" or precision != "fast" or D <= 128:
        return True
    major, minor = (int(part) for part in triton.__version__.split(".")[:2])
    return (major, minor) >= (3, 8)


def _triton_grads(x, t, groups, coef_re, coef_im, need_x: bool, need_t: bool, precision: str):
    """Gradients w.r.t. ``x (N, D)`` and ``t (T, D)`` given per-(group, t) coefficients (Triton)."""
    N, D = x.shape
    T = t.shape[0]
    flags = _kernel_flags(precision, x.device)
    sizes = _block_sizes(D, precision, x.device)
    block_n, block_t, block_d, warps, stages = sizes["bwd"]
    has_groups = coef_re.shape[0] > 1
    gid = groups if has_groups else x
    dx = dt = None
    if need_x:
        dx = torch.empty_like(x)
        _cf_grad_samples_kernel[(triton.cdiv(N, block_n),)](
            x, t, gid, coef_re, coef_im, dx, N, D, T,
            x.stride(0), x.stride(1), t.stride(0), t.stride(1), dx.stride(0), dx.stride(1),
            HAS_GROUPS=has_groups, BLOCK_N=block_n, BLOCK_T=block_t, BLOCK_D=block_d,
            num_warps=warps, num_stages=stages, **flags,
        )
    if need_t:
        dt32 = torch.zeros((T, D), device=x.device, dtype=torch.float32)
        block_n, block_t, block_d, warps, stages = sizes["bwd_t"]
        n_tblocks = triton.cdiv(T, block_t)
        n_chunks = max(1, min(triton.cdiv(4 * sm_count(x.device), n_tblocks), triton.cdiv(N, block_n)))
        rows_per_chunk = triton.cdiv(triton.cdiv(N, n_chunks), block_n) * block_n
        _cf_grad_freqs_kernel[(n_tblocks, triton.cdiv(N, rows_per_chunk))](
            x, t, gid, coef_re, coef_im, dt32, N, D, T, rows_per_chunk,
            x.stride(0), x.stride(1), t.stride(0), t.stride(1),
            HAS_GROUPS=has_groups, BLOCK_N=block_n, BLOCK_T=block_t, BLOCK_D=block_d,
            num_warps=warps, num_stages=stages, **flags,
        )
        dt = dt32.to(t.dtype)
    return dx, dt


# ----------------------------------------------------------------------------------------------
# Plain-torch path (any device), chunked over samples
# ----------------------------------------------------------------------------------------------
def _row_chunks(N: int, T: int):
    step = max(1, _TORCH_CHUNK_BYTES // (8 * max(T, 1)))
    return range(0, N, step), step


def _torch_sums(x, t, groups, G: int, precision: str) -> torch.Tensor:
    """``(2, G, T)`` sums of [cos, sin] ⟨t, x_n⟩ per group, O(chunk·T) memory."""
    del precision  # the torch path always computes in full precision
    cdt = compute_dtype(x.dtype)
    tc = t.to(cdt)
    out = torch.zeros((2, G, t.shape[0]), device=x.device, dtype=cdt)
    starts, step = _row_chunks(x.shape[0], t.shape[0])
    for i in starts:
        theta = x[i:i + step].to(cdt) @ tc.T
        if groups is None or G == 1:
            out[0, 0] += torch.cos(theta).sum(0)
            out[1, 0] += torch.sin(theta).sum(0)
        else:
            g = groups[i:i + step]
            out[0].index_add_(0, g, torch.cos(theta))
            out[1].index_add_(0, g, torch.sin(theta))
    return out


def _torch_grads(x, t, groups, coef_re, coef_im, need_x: bool, need_t: bool, precision: str):
    del precision
    cdt = compute_dtype(x.dtype)
    tc = t.to(cdt)
    dx = torch.empty_like(x) if need_x else None
    dt = torch.zeros(t.shape, device=t.device, dtype=cdt) if need_t else None
    grouped = coef_re.shape[0] > 1
    starts, step = _row_chunks(x.shape[0], t.shape[0])
    for i in starts:
        xc = x[i:i + step].to(cdt)
        theta = xc @ tc.T
        if grouped:
            g = groups[i:i + step]
            w = torch.cos(theta) * coef_im[g] - torch.sin(theta) * coef_re[g]
        else:
            w = torch.cos(theta) * coef_im - torch.sin(theta) * coef_re
        if need_x:
            dx[i:i + step] = (w @ tc).to(x.dtype)
        if need_t:
            dt += w.T @ xc
    return dx, (dt.to(t.dtype) if need_t else None)


# ----------------------------------------------------------------------------------------------
# Custom ops (torch.library): opaque to torch.compile, with shapes from the fake implementations
# ----------------------------------------------------------------------------------------------
@torch.library.custom_op("irkernels::cf_sums", mutates_args=())
def _cf_sums(x: torch.Tensor, t: torch.Tensor, groups: torch.Tensor | None, num_groups: int,
             precision: str, backend: str) -> torch.Tensor:
    """``(2, G, T)`` sums of [cos, sin] ⟨t, x_n⟩ per group, in ``compute_dtype(x.dtype)``."""
    sums_fn = _triton_sums if backend == "triton" else _torch_sums
    return sums_fn(x, t, groups, num_groups, precision)


@_cf_sums.register_fake
def _cf_sums_fake(x, t, groups, num_groups, precision, backend):
    return x.new_empty((2, num_groups, t.shape[0]), dtype=compute_dtype(x.dtype))


@torch.library.custom_op("irkernels::cf_sums_backward", mutates_args=())
def _cf_sums_backward(x: torch.Tensor, t: torch.Tensor, groups: torch.Tensor | None, grad: torch.Tensor,
                      need_x: bool, need_t: bool, precision: str, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of ``cf_sums`` for ``grad (2, G, T)``: ``dx`` like ``x`` and ``dt`` like ``t``;
    one not asked for comes back empty ``(0,)`` (custom ops cannot return None)."""
    grad = grad.to(compute_dtype(x.dtype))
    coef_re, coef_im = grad[0].contiguous(), grad[1].contiguous()
    fused = backend == "triton" and triton_backward_supported(x.shape[1], precision, x.device)
    grads_fn = _triton_grads if fused else _torch_grads
    dx, dt = grads_fn(x, t, groups, coef_re, coef_im, need_x, need_t, precision)
    return (dx if need_x else x.new_empty(0)), (dt if need_t else t.new_empty(0))


@_cf_sums_backward.register_fake
def _cf_sums_backward_fake(x, t, groups, grad, need_x, need_t, precision, backend):
    return x.new_empty(x.shape if need_x else (0,)), t.new_empty(t.shape if need_t else (0,))


def _cf_sums_setup(ctx, inputs, output) -> None:
    x, t, groups, _, precision, backend = inputs
    ctx.save_for_backward(x, t, groups)
    ctx.precision, ctx.backend = precision, backend


def _cf_sums_grad(ctx, grad):
    x, t, groups = ctx.saved_tensors
    need_x, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    if not (need_x or need_t):
        return (None,) * 6
    dx, dt = _cf_sums_backward(x, t, groups, grad, need_x, need_t, ctx.precision, ctx.backend)
    return (dx if need_x else None), (dt if need_t else None), None, None, None, None


_cf_sums.register_autograd(_cf_sums_grad, setup_context=_cf_sums_setup)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def _group_count(name: str, groups: torch.Tensor, n: int, num_groups: int | None, device: torch.device,
                 range_checked: bool = False) -> int:
    """``G`` for ``groups (n,)``: ``num_groups`` if given (ids range-checked against it while value
    checks are on), else ``max id + 1`` (one host sync, so only while value checks are on)."""
    if num_groups is not None:
        if isinstance(num_groups, bool) or not isinstance(num_groups, (numbers.Integral, torch.SymInt)) \
                or num_groups < 1:
            raise ValueError(f"num_groups must be an int >= 1, got {num_groups!r}")
        if not range_checked:
            check_index_tensor(name, groups, n, num_groups, device)
        return num_groups if isinstance(num_groups, torch.SymInt) else int(num_groups)
    top = check_index_tensor(name, groups, n, 2**62, device)
    if top is None:
        raise ValueError(f"num_groups is required with {name} while value checks are off (inside "
                         "irkernels.value_checks(False) or torch.compile): the group count would need a "
                         "host sync to read")
    return top + 1


def _pick_backend(backend: str | None, x: torch.Tensor) -> str:
    # the kernels accumulate in fp32; float64 asks for the exact path
    return fused_or_torch("ncfd", backend, x.device,
                          "float64 input (they accumulate in float32)" if x.dtype == torch.float64 else None)


def cf_stats(
    x: torch.Tensor,
    t: torch.Tensor,
    groups: torch.Tensor | None = None,
    num_groups: int | None = None,
    *,
    precision: Precision = "fast",
    backend: str = "auto",
) -> CFStats:
    """Empirical characteristic function of ``x`` at frequencies ``t``, per group.

    Args:
        x: ``(N, D)`` samples, float32/bfloat16/float16/float64. Differentiable.
        t: ``(T, D)`` frequencies, same device. Differentiable.
        groups: optional ``(N,)`` integer group id of each sample, in ``[0, num_groups)``.
        num_groups: ``G``; default ``groups.max() + 1`` (1 without groups), which needs a host
            sync: required while value checks are off (``irkernels.value_checks(False)``, or
            inside ``torch.compile``), when the ids are also not range-checked (they must be valid).
        precision: ``"fast"`` (3×TF32 phase dot, TF32 reductions, range-reduced approximate
            sin/cos on CUDA; ≤ 2e-3 relative on the loss and gradients), ``"high"`` (3×TF32 dots,
            accurate sin/cos) or ``"highest"`` (fp32 dots, accurate sin/cos). The torch path
            always computes in full precision.
        backend: ``"auto"`` (Triton on CUDA, torch elsewhere), ``"triton"`` or ``"torch"``.

    Returns:
        ``CFStats(re, im, counts)`` with ``re``, ``im`` of shape ``(G, T)`` (float32, float64 for
        float64 input) and ``counts (G,)``. Empty groups have ``re = im = 0``.

    No host sync when value checks are off and ``num_groups`` is given (forward and backward).
    Memory: O((N + T)·D + splits·G·T); the ``(N, T)`` matrix is never formed.
    """
    return _stats(x, t, groups, num_groups, precision, backend, names=("x", "groups"))


def _stats(x, t, groups, num_groups, precision, backend, names: tuple[str, str], range_checked: bool = False) -> CFStats:
    """``cf_stats`` with argument names for the error messages (``x``/``y`` and their groups);
    ``range_checked``: the group ids were already checked against ``num_groups``."""
    x_name, g_name = names
    check_float_tensor(x_name, x, 2)
    check_float_tensor("t", t, 2)
    device = check_same_device(**{x_name: x, "t": t, g_name: groups})
    if x.shape[0] == 0:
        raise ValueError(f"{x_name} must have at least one row (sample), got shape (0, D)")
    if t.shape[0] == 0:
        raise ValueError("t must have at least one row (frequency), got shape (0, D)")
    if x.shape[1] != t.shape[1]:
        raise ValueError(f"{x_name} and t must have the same feature dimension D, got "
                         f"{x_name} {tuple(x.shape)}, t {tuple(t.shape)}")
    check_precision(precision)
    check_finite(x_name, x)
    check_finite("t", t)
    if groups is None:
        if num_groups not in (None, 1):
            raise ValueError(f"num_groups={num_groups} given without {g_name}")
        G = 1
        counts = torch.full((1,), x.shape[0], device=device, dtype=torch.int64)
    else:
        G = _group_count(g_name, groups, x.shape[0], num_groups, device, range_checked)
        groups = groups.to(torch.int32 if G < 2**31 else torch.int64).contiguous()
        # index_add_ rather than bincount: bincount sizes its output from the data (a host sync on CUDA).
        counts = torch.zeros(G, device=device, dtype=torch.int64).index_add_(
            0, groups, torch.ones_like(groups, dtype=torch.int64))
    sums = _cf_sums(x, t, groups, G, precision, _pick_backend(backend, x))
    inv = 1.0 / counts.clamp(min=1).to(sums.dtype)
    re, im = sums[0] * inv[:, None], sums[1] * inv[:, None]
    return CFStats(re, im, counts)


def cf_modulus(stats: CFStats) -> torch.Tensor:
    """``|Φ(t)|`` per group and frequency ``(G, T)`` of ``stats`` (the one place it is computed)."""
    return _modulus(stats.re, stats.im)


def _modulus(re: torch.Tensor, im: torch.Tensor) -> torch.Tensor:
    """``|re + i·im|`` with a zero (not NaN) gradient at a zero modulus, e.g. an empty group: the
    squared modulus is clamped at 1e-30 (a 1e-15 floor on the modulus) before the square root.
    Not ``vector_norm(stack((re, im)), dim=0)``: on CPU its forward + backward took 1.27 s at
    (G, T) = (1500, 4096) against 0.04 s for this (2 cores, torch 2.14), 46 % of an IDC run's time."""
    return torch.sqrt((re * re + im * im).clamp(min=1e-30))


def ncfd_from_stats(
    sx: CFStats,
    sy: CFStats,
    *,
    alpha: float = 0.5,
    eps: float = 1e-12,
    amplitude: Amplitude = "modulus",
    reduction: Reduction = "mean",
    phase_weight: float | None = None,
) -> torch.Tensor:
    """Characteristic-function discrepancy between two ``CFStats`` of the same frequencies.

    Per group ``g``: ``mean_t sqrt(max(Chf_g(t), eps))``; a group empty on either side gives 0.
    ``Chf = α·amplitude term + β·phase term`` with ``α = alpha`` and ``β = phase_weight``
    (default ``1 − alpha``; NCFM's ``beta_for_loss``, which need not sum to 1 with α).
    ``reduction``: ``"none"`` → ``(G,)``; ``"sum"`` → the sum over groups (IDC's ``L_group``);
    ``"mean"`` → the mean over groups non-empty on both sides (0 if there is none).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    beta = 1.0 - alpha if phase_weight is None else phase_weight
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"phase_weight must lie in [0, 1], got {phase_weight}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if amplitude not in ("modulus", "difference"):
        raise ValueError(f"amplitude must be 'modulus' or 'difference', got {amplitude!r}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if sx.re.shape != sy.re.shape:
        raise ValueError(f"stats must share (G, T): got {tuple(sx.re.shape)} and {tuple(sy.re.shape)}")
    # Chf = α·amp + β·2(|Φx||Φy| − ReΦx ReΦy − ImΦx ImΦy), evaluated without subtracting the
    # nearly equal |Φx||Φy| and the cross term: that phase term equals |Φx − Φy|² − (|Φx| − |Φy|)²,
    # both squares of differences taken first. At α = β = 0.5 (the default, modulus amplitude) Chf
    # is 0.5·|Φx − Φy|² exactly; tests/test_ncfd.py checks a small-Chf case against float64.
    gap2 = (_modulus(sx.re, sx.im) - _modulus(sy.re, sy.im)) ** 2
    diff2 = (sx.re - sy.re) ** 2 + (sx.im - sy.im) ** 2
    if amplitude == "modulus":  # α·gap² + β·(diff² − gap²)
        chf = (alpha - beta) * gap2 + beta * diff2
    else:  # α·diff² + β·(diff² − gap²)
        chf = (alpha + beta) * diff2 - beta * gap2
    per_group = torch.sqrt(chf.clamp(min=eps)).mean(dim=1)
    valid = (sx.counts > 0) & (sy.counts > 0)
    per_group = torch.where(valid, per_group, torch.zeros_like(per_group))
    if reduction == "none":
        return per_group
    if reduction == "sum":
        return per_group.sum()
    return per_group.sum() / valid.sum().clamp(min=1)


def sample_frequencies(num_freqs: int, dim: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(num_freqs, dim)`` draws of N(0, I) (the default frequency distribution), reproducible with
    ``generator`` (drawn on the generator's device, then moved). Without a generator the draw is
    the same every call: a CPU generator seeded with ``DEFAULT_FREQUENCY_SEED`` (0), never the
    global RNG (which would couple the loss to unrelated random calls)."""
    if num_freqs < 1 or dim < 1:
        raise ValueError(f"num_freqs and dim must be >= 1, got {num_freqs}, {dim}")
    if generator is None:
        generator = torch.Generator().manual_seed(DEFAULT_FREQUENCY_SEED)
    t = torch.randn(num_freqs, dim, generator=generator, device=generator.device, dtype=dtype)
    return t.to(device) if device is not None else t


def ncfd_loss(
    x: torch.Tensor | CFStats,
    y: torch.Tensor,
    t: torch.Tensor | None = None,
    *,
    num_freqs: int = 4096,
    alpha: float = 0.5,
    x_groups: torch.Tensor | None = None,
    y_groups: torch.Tensor | None = None,
    num_groups: int | None = None,
    eps: float = 1e-12,
    generator: torch.Generator | None = None,
    reduction: Reduction = "mean",
    amplitude: Amplitude = "modulus",
    precision: Precision = "fast",
    backend: str = "auto",
    phase_weight: float | None = None,
) -> torch.Tensor:
    """NCFD between real samples ``x`` and synthetic samples ``y`` (see module docstring).

    Args:
        x: ``(N, D)`` real samples, or their ``cf_stats(x, t, x_groups, G)`` computed once
            (then ``t`` is required and ``x_groups`` must be None).
        y: ``(M, D)`` synthetic samples (the usual optimisation variable).
        t: ``(T, D)`` frequencies; default ``num_freqs`` draws of N(0, I) from ``generator``
            (a fixed seed without one, see ``sample_frequencies``).
        x_groups, y_groups: ``(N,)`` / ``(M,)`` group ids in ``[0, G)`` for the grouped form: one
            launch per side computes every group's statistics.
        num_groups: ``G``; default ``max(id) + 1`` over both sides (a host sync; required while
            value checks are off).
        reduction: ``"none"`` → per-group ``(G,)`` (``(1,)`` ungrouped); ``"sum"``; ``"mean"`` over
            groups non-empty on both sides.
        amplitude, alpha, phase_weight, eps: the discrepancy (``ncfd_from_stats``: amplitude weight
            ``alpha``, phase weight ``phase_weight``, default ``1 − alpha``); precision, backend: the
            statistics (``cf_stats``).

    Traceable by ``torch.compile(fullgraph=True)`` (pass ``t`` and ``num_groups``); with value
    checks off and ``num_groups`` given, forward and backward make no host sync.

    Returns:
        The loss, float32 (float64 for float64 inputs). Gradients flow to ``y``, and to ``x`` and
        ``t`` when they require grad.
    """
    check_float_tensor("y", y, 2)
    grouped = y_groups is not None
    range_checked = False
    if isinstance(x, CFStats):
        if t is None:
            raise ValueError("t is required when x is precomputed CFStats (they were computed at some t)")
        if x_groups is not None:
            raise ValueError("x_groups must be None when x is precomputed CFStats (its groups are fixed)")
        if x.re.shape[1] != t.shape[0]:
            raise ValueError(f"x (CFStats) has {x.re.shape[1]} frequencies but t has {t.shape[0]}")
        if num_groups is not None and num_groups != x.re.shape[0]:
            raise ValueError(f"num_groups={num_groups} but x (CFStats) has {x.re.shape[0]} groups")
        if x.re.shape[0] > 1 and not grouped:
            raise ValueError(f"y_groups is required: x (CFStats) has {x.re.shape[0]} groups")
        sx = x
    else:
        check_float_tensor("x", x, 2)
        if (x_groups is not None) != grouped:
            raise ValueError("x_groups and y_groups must be given together (grouped form) or both be None")
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"x and y must have the same feature dimension D, got x {tuple(x.shape)}, y {tuple(y.shape)}")
        check_same_device(x=x, y=y, t=t)
        if t is None:
            t = sample_frequencies(num_freqs, x.shape[1], generator=generator, device=x.device)
        if grouped and num_groups is None:  # both sides' ranges read in the same syncs
            num_groups = max(_group_count("x_groups", x_groups, x.shape[0], None, x.device),
                             _group_count("y_groups", y_groups, y.shape[0], None, y.device))
            range_checked = True
        sx = _stats(x, t, x_groups, num_groups, precision, backend, names=("x", "x_groups"),
                    range_checked=range_checked)
    sy = _stats(y, t, y_groups, sx.re.shape[0] if grouped else None, precision, backend, names=("y", "y_groups"),
                range_checked=range_checked)
    return ncfd_from_stats(sx, sy, alpha=alpha, eps=eps, amplitude=amplitude, reduction=reduction,
                           phase_weight=phase_weight)


def ncfd_loss_reference(
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    *,
    alpha: float = 0.5,
    eps: float = 1e-12,
    x_groups: torch.Tensor | None = None,
    y_groups: torch.Tensor | None = None,
    num_groups: int | None = None,
    amplitude: Amplitude = "modulus",
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Eager formula of the public NCFM code (materialises ``t·xᵀ``), one Python loop iteration per
    group. The test oracle (run it in float64) and the benchmarks' baseline; memory O((N + M)·T)."""

    def cf(z):
        tz = torch.matmul(t, z.T)  # (T, n) as in NCFM's calculate_real/imag
        return torch.cos(tz).mean(dim=1), torch.sin(tz).mean(dim=1)

    def loss(xs, ys):
        xr, xi = cf(xs)
        yr, yi = cf(ys)
        xn = torch.sqrt(xr * xr + xi * xi)
        yn = torch.sqrt(yr * yr + yi * yi)
        amp = (xn - yn) ** 2 if amplitude == "modulus" else (xr - yr) ** 2 + (xi - yi) ** 2
        pha = 2 * (xn * yn - xr * yr - xi * yi)
        return torch.sqrt((alpha * amp + (1 - alpha) * pha).clamp(min=eps)).mean()

    if x_groups is None:
        per_group, valid = loss(x, y).reshape(1), torch.ones(1, dtype=torch.bool)
    else:
        G = num_groups if num_groups is not None else int(max(x_groups.max(), y_groups.max())) + 1
        valid = torch.tensor([bool((x_groups == g).any() and (y_groups == g).any()) for g in range(G)])
        zero = (x.sum() + y.sum() + t.sum()) * 0  # keeps the graph connected for empty groups
        per_group = torch.stack([loss(x[x_groups == g], y[y_groups == g]) if valid[g] else zero for g in range(G)])
    if reduction == "none":
        return per_group
    if reduction == "sum":
        return per_group.sum()
    return per_group.sum() / valid.sum().clamp(min=1)
