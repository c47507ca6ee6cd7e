"""Random Local Fourier Features (IDC §3.3): normalise → conv with sampled DFT rows → p×p patch unfold.

Conventions (docs/rlff.md; every implementation here follows them so results compare exactly):

* Filter bank: ``E`` is the identity of size ``C' = c·k²`` reshaped to ``(C', c, k, k)``; the DFT is
  taken along the output-channel axis and split into ``[Re(DFT(E)), -Im(DFT(E))]``, so bank row
  ``j < C'`` is ``cos(2π j q / C')`` and row ``C' + j`` is ``sin(2π j q / C')``, where ``q`` runs
  over ``(channel, ky, kx)`` row-major.
* Normalisation per channel: ``x̂ = (f - mean) / std``. With ``stats=(mean, std)`` (a reference
  set's, see :func:`reference_stats`) those are used as given; with ``stats=None`` the batch's own:
  ``mean``/``var`` over ``(N, h, w)``, biased variance, ``std = sqrt(var + 1e-5)`` (BatchNorm in
  training mode, no affine). Statistics are constants for autograd when given, and differentiated
  through when they are the batch's own.
* Zero "same" padding ``k // 2`` (zeros in the normalised space), stride 1.
* Output ``(N', p·p, C_out)``, ``N' = N·⌈h/p⌉·⌈w/p⌉``: patches row-major over
  ``(n, patch row, patch col)``, positions inside a patch row-major ``(dy, dx)``. Positions of a
  partial border patch that fall outside the map are exactly zero.
* Output dtype = input dtype. The Triton kernels accumulate in fp32 (fp64 for fp64 inputs); fp32
  inputs multiply as ``precision`` says (``"fast"``: TF32, ``"high"``: 3×TF32, ``"highest"``: fp32
  FMA; default: TF32 while ``torch.backends.cudnn.allow_tf32`` is set, PyTorch's own default for
  convolutions); bf16/fp16 inputs multiply in their own dtype.

Two implementations sit side by side: the plain-torch reference (:func:`rlff_reference`: filter
bank, ``F.conv2d``, pad/reshape/permute; the CPU path and the test oracle) and the fused Triton
kernels (CUDA path, or CPU under ``TRITON_INTERPRET=1``).
"""
from __future__ import annotations

import dataclasses
import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ._backend import resolve_backend
from .._checks import check_finite, check_float_tensor, check_index_tensor, check_same_device, value_checks_enabled
from .utils import (cdiv, check_precision, compute_dtype, conv_precision_from_torch, dot_precision, next_power_of_2,
                    tile_config, tl, triton)

BN_EPS = 1e-5

Stats = tuple[torch.Tensor, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Filter bank and row sampling
# ----------------------------------------------------------------------------------------------
def sampled_filters(rows: torch.Tensor, c: int, kernel_size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The bank rows ``rows`` (any integer tensor of indices into ``[0, 2·c·k²)``) as conv filters.

    Returns ``(len(rows), c, k, k)`` of ``dtype`` on ``rows.device``. The phase ``j·q mod C'`` is
    formed in integers and the cos/sin evaluated in float64, so every row is exact to ``dtype``.
    """
    c_prime = c * kernel_size * kernel_size
    rows = rows.long()
    freq = rows % c_prime
    q = torch.arange(c_prime, device=rows.device)
    phase = (freq[:, None] * q[None, :]) % c_prime
    angle = phase.double() * (2.0 * math.pi / c_prime)
    bank = torch.where((rows >= c_prime)[:, None], torch.sin(angle), torch.cos(angle))
    return bank.to(dtype).reshape(len(rows), c, kernel_size, kernel_size)


def dft_filter_bank(c: int, kernel_size: int, dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """The full RLFF bank ``[Re(DFT(E)), -Im(DFT(E))]``: ``(2·c·k², c, k, k)`` of ``dtype``.

    >>> dft_filter_bank(1, 3).shape
    torch.Size([18, 1, 3, 3])
    """
    _check_geometry(c, kernel_size)
    rows = torch.arange(2 * c * kernel_size * kernel_size, device=device)
    return sampled_filters(rows, c, kernel_size, dtype)


def sample_rows(c: int, kernel_size: int, out_channels: int, *, seed: int | None = None,
                generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """``out_channels`` distinct bank rows, ascending: a ``LongTensor (out_channels,)``.

    Deterministic for a ``seed`` (or a ``generator`` in a given state); with neither, torch's
    global CPU generator is used. Pass the same rows to ``rlff`` for the real and the synthetic
    features of a step.
    """
    _check_geometry(c, kernel_size)
    total = 2 * c * kernel_size * kernel_size
    _check_out_channels(out_channels, total)
    if seed is not None and generator is not None:
        raise ValueError("pass seed or generator to sample_rows, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    gen_device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(total, generator=generator, device=gen_device)
    return perm[:out_channels].sort().values.to(device if device is not None else gen_device)


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------
def _check_geometry(c: int, kernel_size: int) -> None:
    if not isinstance(c, int) or c < 1:
        raise ValueError(f"c (channels) must be a positive int, got {c!r}")
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")


def _check_out_channels(out_channels: int, total: int) -> None:
    if not isinstance(out_channels, int) or not 1 <= out_channels <= total:
        raise ValueError(f"out_channels must be an int in [1, 2·c·k² = {total}], got {out_channels!r}")


def _check_stats(stats: object, c: int, device: torch.device, min_std: float = 0.0) -> Stats:
    if not (isinstance(stats, (tuple, list)) and len(stats) == 2):
        raise TypeError(f"stats must be a (mean, std) pair of tensors or None, got {type(stats).__name__}")
    mean, std = (check_float_tensor(name, t, 1) for name, t in zip(("stats[0] (mean)", "stats[1] (std)"), stats))
    for name, t in (("stats[0] (mean)", mean), ("stats[1] (std)", std)):
        if t.shape != (c,):
            raise ValueError(f"{name} must have shape ({c},) (one value per channel of f), got {tuple(t.shape)}")
        if t.device != device:
            raise ValueError(f"{name} must be on {device} (f's device), got {t.device}")
        check_finite(name, t)
    if value_checks_enabled() and not bool((std > min_std).all()):
        raise ValueError(f"stats[1] (std) must be > {min_std:g} in every channel, got min {float(std.min()):g}"
                         + (" (float16 f: the filters are scaled by 1/std in f's dtype)" if min_std else ""))
    return mean, std


def _validate(f: object, kernel_size: int, out_channels: int, patch_size: int, rows: torch.Tensor | None,
              seed: int | None, stats: object) -> tuple[torch.Tensor, Stats | None]:
    f = check_float_tensor("f", f, 4)
    n, c, h, w = f.shape
    if f.numel() == 0:
        raise ValueError(f"f must be non-empty, got shape {tuple(f.shape)}")
    _check_geometry(c, kernel_size)
    _check_out_channels(out_channels, 2 * c * kernel_size * kernel_size)
    if not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size must be a positive int, got {patch_size!r}")
    if patch_size > h or patch_size > w:
        raise ValueError(f"patch_size ({patch_size}) must not exceed the feature map (h={h}, w={w})")
    if rows is not None and seed is not None:
        raise ValueError("pass rows or seed to rlff, not both")
    if rows is not None:
        check_index_tensor("rows", rows, out_channels, 2 * c * kernel_size * kernel_size, f.device)
    check_finite("f", f)
    if stats is not None:
        # fp16: the fused kernel scales the filters by 1/std in fp16 (max 65504).
        stats = _check_stats(stats, c, f.device, min_std=2.0**-15 if f.dtype == torch.float16 else 0.0)
        check_same_device(f=f, mean=stats[0], std=stats[1])
    return f, stats


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------
if triton is not None:

    @triton.jit
    def _dft_rows_kernel(rows_ptr, w_ptr, C, C_OUT, TOTAL, K: tl.constexpr, IS_FP64: tl.constexpr,
                         BLOCK: tl.constexpr):
        """The sampled bank rows as the GEMM's B operand, Wt[(ky·K + kx)·C + ch, o], in one launch:
        q = (ch·K + ky)·K + kx, phase = (row mod C')·q mod C' in integers (exact), then cos or sin."""
        ACC_DTYPE: tl.constexpr = tl.float64 if IS_FP64 else tl.float32
        idx = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        ok = idx < TOTAL
        o = idx % C_OUT
        kk = idx // C_OUT
        tap = kk // C
        ch = kk % C
        c_prime = C * K * K
        row = tl.load(rows_ptr + o, mask=ok, other=0)
        q = (ch * K + tap // K) * K + tap % K
        phase = ((row % c_prime) * q) % c_prime
        turns = phase.to(ACC_DTYPE) / c_prime
        # 2π as an fp32 pair (hi + lo): Triton literals are fp32, one literal would cap fp64 at ~1e-7.
        angle = turns * 6.2831854820251465 + turns * -1.7484555314695172e-07
        val = tl.where(row >= c_prime, tl.sin(angle), tl.cos(angle))
        tl.store(w_ptr + idx, val.to(w_ptr.dtype.element_ty), mask=ok)


    @triton.jit
    def _channel_stats_kernel(f_ptr, plane_mean_ptr, plane_m2_ptr, C, H, W,
                              sf_n, sf_c, sf_h, sf_w, IS_FP64: tl.constexpr,
                              ROWS: tl.constexpr, BLOCK_W: tl.constexpr):
        """One program per (n, channel) plane: its mean and sum of squared deviations (two passes,
        the second from cache), combined across planes on the host with Chan's formula — exact and
        stable for any dtype, with no fp32 copy of a half-precision input. 2-D (ROWS, BLOCK_W) tiles
        so that no per-element index division is needed for arbitrary strides."""
        ACC_DTYPE: tl.constexpr = tl.float64 if IS_FP64 else tl.float32
        pid = tl.program_id(0)
        base = f_ptr + (pid // C).to(tl.int64) * sf_n + (pid % C).to(tl.int64) * sf_c
        rows = tl.arange(0, ROWS)[:, None]
        cols = tl.arange(0, BLOCK_W)[None, :]
        total = tl.zeros([ROWS, BLOCK_W], ACC_DTYPE)
        for y0 in range(0, H, ROWS):
            for x0 in range(0, W, BLOCK_W):
                ok = (y0 + rows < H) & (x0 + cols < W)
                v = tl.load(base + (y0 + rows) * sf_h + (x0 + cols) * sf_w, mask=ok, other=0.0)
                total += v.to(ACC_DTYPE)
        mean = tl.sum(tl.sum(total, axis=1), axis=0) / (H * W)
        dev = tl.zeros([ROWS, BLOCK_W], ACC_DTYPE)
        for y0 in range(0, H, ROWS):
            for x0 in range(0, W, BLOCK_W):
                ok = (y0 + rows < H) & (x0 + cols < W)
                v = tl.load(base + (y0 + rows) * sf_h + (x0 + cols) * sf_w, mask=ok, other=0.0)
                d = tl.where(ok, v.to(ACC_DTYPE) - mean, 0.0)
                dev += d * d
        tl.store(plane_mean_ptr + pid, mean)
        tl.store(plane_m2_ptr + pid, tl.sum(tl.sum(dev, axis=1), axis=0))


    @triton.jit
    def _rlff_fwd_kernel(f_ptr, w_ptr, valid_ptr, bias_ptr, out_ptr,
                         C, H, W, WP, HPWP, M_OUT, C_OUT,
                         sf_n, sf_c, sf_h, sf_w,
                         K: tl.constexpr, P: tl.constexpr, KK_PAD: tl.constexpr, IS_FP64: tl.constexpr,
                         DOT_PRECISION: tl.constexpr, BIAS_PRECISION: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
        """out[m, o] = Σ_{tap, ch} x̂[n, ch, y+ky-K//2, x+kx-K//2] · W[tap·C + ch, o].

        Implicit GEMM, M = output rows in the patch-unfolded order (m = n'·P² + dy·P + dx), so the
        store is one contiguous (BLOCK_M, BLOCK_N) block of the final layout. The A tile is gathered
        from f at the tap's shift (out-of-map taps masked to 0); nothing of size (N, C_out, h, w) or
        im2col is ever written. Loop order: channel block outer, taps inner — the K² shifted A tiles
        of one channel block overlap almost entirely, so after the first tap they come from L1.

        Normalisation without touching A: a register-modified A operand makes sm_90 wgmma serialise
        (ptxas C7515), so A goes memory → shared → tensor cores as loaded. ``w_ptr`` holds the rows
        pre-scaled by 1/std, the loop computes Σ (W/std)·f, and the accumulator starts from
        Σ_{taps inside the map} bias[tap, o], bias = -Σ_ch W·mean/std, one more dot of the
        (h·w, KK_PAD) tap-validity matrix (``valid_ptr``) with ``bias_ptr`` — exactly the zero padding
        of x̂, i.e. x̂ = (f - mean)/std inside the map and 0 outside.
        """
        ACC_DTYPE: tl.constexpr = tl.float64 if IS_FP64 else tl.float32
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        m_ok = offs_m < M_OUT
        n_ok = offs_n < C_OUT
        patch = offs_m // (P * P)
        pos = offs_m % (P * P)
        img = patch // HPWP
        rem = patch % HPWP
        y = (rem // WP) * P + pos // P
        x = (rem % WP) * P + pos % P
        inside = m_ok & (y < H) & (x < W)
        f_img = f_ptr + img.to(tl.int64) * sf_n
        acc = tl.zeros([BLOCK_M, BLOCK_N], ACC_DTYPE)
        # Bias dot first, so no zero accumulator enters the loop: a loop that may run zero times
        # gets the zeros rematerialised on its skip path after the loop, inside the in-flight
        # wgmma's window, and Triton 3.6's ptxas then serialises the wgmma pipeline (C7515, fp32).
        taps = tl.arange(0, KK_PAD)
        valid = tl.load(valid_ptr + (y * W + x)[:, None] * KK_PAD + taps[None, :], mask=inside[:, None], other=0.0)
        bias = tl.load(bias_ptr + taps[:, None] * C_OUT + offs_n[None, :], mask=n_ok[None, :], other=0.0)
        acc = tl.dot(valid, bias, acc, input_precision=BIAS_PRECISION)
        num_cb = tl.cdiv(C, BLOCK_C)
        for it in range(0, num_cb * K * K):
            cb = it // (K * K)
            tap = it % (K * K)
            ys = y + tap // K - K // 2
            xs = x + tap % K - K // 2
            ch = cb * BLOCK_C + tl.arange(0, BLOCK_C)
            ch_ok = ch < C
            a_ok = (m_ok & (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W))[:, None] & ch_ok[None, :]
            a = tl.load(f_img[:, None] + ch[None, :] * sf_c + (ys * sf_h + xs * sf_w)[:, None], mask=a_ok, other=0.0)
            b = tl.load(w_ptr + (tap * C + ch)[:, None] * C_OUT + offs_n[None, :],
                        mask=ch_ok[:, None] & n_ok[None, :], other=0.0)
            acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        # Positions of partial border patches that lie outside the map are zero by definition.
        acc = tl.where(inside[:, None], acc, 0.0)
        out = out_ptr + offs_m.to(tl.int64)[:, None] * C_OUT + offs_n[None, :]
        tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


    @triton.jit
    def _rlff_bwd_step(acc, it, g_img, w_ptr, y, x, m_ok, ch, ch_ok, C, H, W, WP, C_OUT, sg_0, sg_1, sg_2,
                       K: tl.constexpr, P: tl.constexpr, DOT_PRECISION: tl.constexpr, BLOCK_O: tl.constexpr):
        """Step ``it`` of :func:`_rlff_bwd_kernel`'s GEMM: o-block ``it // K²``, tap ``it % K²``."""
        ob = it // (K * K)
        tap = it % (K * K)
        yo = y - tap // K + K // 2
        xo = x - tap % K + K // 2
        o = ob * BLOCK_O + tl.arange(0, BLOCK_O)
        o_ok = o < C_OUT
        g_ok = (m_ok & (yo >= 0) & (yo < H) & (xo >= 0) & (xo < W))[:, None] & o_ok[None, :]
        patch = (yo // P) * WP + xo // P
        pos = (yo % P) * P + xo % P
        a = tl.load(g_img[:, None] + (patch.to(tl.int64) * sg_0 + pos * sg_1)[:, None] + o[None, :] * sg_2,
                    mask=g_ok, other=0.0)
        b = tl.load(w_ptr + (tap * C + ch)[None, :] * C_OUT + o[:, None],
                    mask=o_ok[:, None] & ch_ok[None, :], other=0.0)
        return tl.dot(a.to(b.dtype), b, acc, input_precision=DOT_PRECISION)


    @triton.jit
    def _rlff_bwd_kernel(g_ptr, w_ptr, f_ptr, mean_ptr, inv_std_ptr, gx_ptr, psum_ptr, psumx_ptr,
                         C, H, W, WP, HPWP, M_IN, C_OUT,
                         sg_0, sg_1, sg_2, sf_n, sf_c, sf_h, sf_w, sx_n, sx_c, sx_h, sx_w,
                         K: tl.constexpr, P: tl.constexpr, BATCH_STATS: tl.constexpr,
                         IS_FP64: tl.constexpr, DOT_PRECISION: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_O: tl.constexpr):
        """dL/dx̂[n, ch, y, x] = Σ_{tap, o} G[n, o, y-ky+K//2, x-kx+K//2] · Wt[tap·C + ch, o].

        Transposed implicit GEMM, M = input positions (n, y, x) row-major, N = channels, K = taps ×
        C_out; the G tile is gathered straight from the patch-unfolded gradient (contiguous over o).
        Loop order: o-block outer, taps inner (the shifted G tiles of one o-block reuse L1).
        Reference stats: the epilogue scales by 1/std and writes dL/df. Batch stats: it writes
        dL/dx̂ (fp32) and this tile's per-channel Σ dL/dx̂ and Σ dL/dx̂·x̂ into row pid_m of two
        (num_m_blocks, C) buffers (summed on the host — deterministic, no atomics); a second
        elementwise kernel then applies the normalisation's own backward.
        """
        ACC_DTYPE: tl.constexpr = tl.float64 if IS_FP64 else tl.float32
        pid_m = tl.program_id(0)
        pid_c = tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        ch = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
        m_ok = offs_m < M_IN
        ch_ok = ch < C
        img = offs_m // (H * W)
        y = (offs_m // W) % H
        x = offs_m % W
        g_img = g_ptr + (img * HPWP).to(tl.int64) * sg_0
        # Step 0 peeled off the loop: a zero accumulator entering a loop that may run zero times
        # is rematerialised on the skip path after the loop, and Triton 3.6's ptxas then serialises
        # the wgmma pipeline (C7515, fp32 with reference stats).
        acc = _rlff_bwd_step(tl.zeros([BLOCK_M, BLOCK_C], ACC_DTYPE), 0, g_img, w_ptr, y, x, m_ok, ch, ch_ok,
                             C, H, W, WP, C_OUT, sg_0, sg_1, sg_2, K, P, DOT_PRECISION, BLOCK_O)
        for it in range(1, tl.cdiv(C_OUT, BLOCK_O) * K * K):
            acc = _rlff_bwd_step(acc, it, g_img, w_ptr, y, x, m_ok, ch, ch_ok,
                                 C, H, W, WP, C_OUT, sg_0, sg_1, sg_2, K, P, DOT_PRECISION, BLOCK_O)
        ok = m_ok[:, None] & ch_ok[None, :]
        inv_std = tl.load(inv_std_ptr + ch, mask=ch_ok, other=0.0)
        gx = gx_ptr + img.to(tl.int64)[:, None] * sx_n + ch[None, :] * sx_c + (y * sx_h + x * sx_w)[:, None]
        if BATCH_STATS:
            mean = tl.load(mean_ptr + ch, mask=ch_ok, other=0.0)
            fv = tl.load(f_ptr + img.to(tl.int64)[:, None] * sf_n + ch[None, :] * sf_c + (y * sf_h + x * sf_w)[:, None],
                         mask=ok, other=0.0)
            xhat = tl.where(ok, (fv.to(ACC_DTYPE) - mean[None, :]) * inv_std[None, :], 0.0)
            tl.store(psum_ptr + pid_m * C + ch, tl.sum(acc, axis=0), mask=ch_ok)
            tl.store(psumx_ptr + pid_m * C + ch, tl.sum(acc * xhat, axis=0), mask=ch_ok)
            tl.store(gx, acc.to(gx_ptr.dtype.element_ty), mask=ok)
        else:
            tl.store(gx, (acc * inv_std[None, :]).to(gx_ptr.dtype.element_ty), mask=ok)


    @triton.jit
    def _batchnorm_grad_kernel(g_ptr, f_ptr, out_ptr, mean_ptr, inv_std_ptr, g_mean_ptr, gx_mean_ptr, C, H, W,
                               sg_n, sg_c, sg_h, sg_w, sf_n, sf_c, sf_h, sf_w, so_n, so_c, so_h, so_w,
                               IS_FP64: tl.constexpr, ROWS: tl.constexpr, BLOCK_W: tl.constexpr):
        """dL/df = inv_std · (dL/dx̂ - mean(dL/dx̂) - x̂ · mean(dL/dx̂ · x̂)), means per channel over
        (N, h, w) — BatchNorm's backward without affine. Elementwise, one program per (plane, ROWS
        rows) with 2-D tiles (no per-element index division); may run in place (g is out)."""
        ACC_DTYPE: tl.constexpr = tl.float64 if IS_FP64 else tl.float32
        plane = tl.program_id(0)
        img = (plane // C).to(tl.int64)
        ch = plane % C
        rows = tl.program_id(1) * ROWS + tl.arange(0, ROWS)[:, None]
        cols = tl.arange(0, BLOCK_W)[None, :]
        mean = tl.load(mean_ptr + ch)
        inv_std = tl.load(inv_std_ptr + ch)
        g_mean = tl.load(g_mean_ptr + ch)
        gx_mean = tl.load(gx_mean_ptr + ch)
        for x0 in range(0, W, BLOCK_W):
            ok = (rows < H) & (x0 + cols < W)
            g = tl.load(g_ptr + img * sg_n + ch * sg_c + rows * sg_h + (x0 + cols) * sg_w, mask=ok, other=0.0)
            fv = tl.load(f_ptr + img * sf_n + ch * sf_c + rows * sf_h + (x0 + cols) * sf_w, mask=ok, other=0.0)
            xhat = (fv.to(ACC_DTYPE) - mean) * inv_std
            res = inv_std * (g.to(ACC_DTYPE) - g_mean - xhat * gx_mean)
            tl.store(out_ptr + img * so_n + ch * so_c + rows * so_h + (x0 + cols) * so_w,
                     res.to(out_ptr.dtype.element_ty), mask=ok)


# ----------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------
def _empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Every buffer a kernel writes comes from here or :func:`_empty_like` (tests poison them)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _empty_like(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    return torch.empty_like(t, dtype=dtype)


@dataclasses.dataclass(frozen=True)
class RLFFTiles:
    """Tile sizes of the fused forward (``fwd_*``) and backward (``bwd_*``) GEMMs, plus warps and
    pipeline stages of both."""

    fwd_m: int
    fwd_n: int
    fwd_c: int
    bwd_m: int
    bwd_c: int
    bwd_o: int
    warps: int
    stages: int


def _tiles(dtype: torch.dtype, c: int, c_out: int, cuda: bool) -> RLFFTiles:
    """Tile sizes. Interpreter: small tiles (speed of the CPU tests; still several blocks along
    every axis at test sizes). CUDA: chosen for an H100 by reading ptxas output (registers,
    spills, wgmma serialisation) of the sm_90 compile in tests — not yet timed on one.
    Forward: BLOCK_M=128 output rows (8 patches of 4×4: a 4×32 region of f for p=4); BLOCK_N up
    to 128 so one program covers all of C_out=128 and gathers each A element once; BLOCK_C=32
    channels per tap step (128 B of fp32 per row; 64 channels of bf16 need 255 registers).
    Backward: BLOCK_M=128 positions, BLOCK_C=64 channels (all of c=64 in one program, so the
    gathered gradient is read once per tap), BLOCK_O = 128 B of C_out per step. 8 warps, 3 stages.
    fp64 (no tensor-core path worth tuning): half-size tiles to keep the fp64 accumulator in
    registers. ``IRKERNELS_RLFF_TILES`` overrides any field (:func:`~irkernels.ops.utils.tile_config`).
    """
    if not cuda:
        tiles = dict(fwd_m=32, fwd_n=16, fwd_c=16, bwd_m=32, bwd_c=16, bwd_o=16, warps=4, stages=1)
    elif dtype == torch.float64:
        tiles = dict(fwd_m=64, fwd_n=64, fwd_c=16, bwd_m=64, bwd_c=32, bwd_o=16, warps=4, stages=2)
    else:
        tiles = dict(fwd_m=128, fwd_n=max(16, min(128, next_power_of_2(c_out))),
                     fwd_c=max(16, min(32, next_power_of_2(c))),
                     bwd_m=128, bwd_c=max(16, min(64, next_power_of_2(c))),
                     bwd_o=max(16, min(128 // dtype.itemsize, next_power_of_2(c_out))), warps=8, stages=3)
    return tile_config(RLFFTiles, "rlff", **tiles)


def _weight_matrix(rows: torch.Tensor, c: int, kernel_size: int, dtype: torch.dtype) -> torch.Tensor:
    """The sampled rows as the GEMM's B operand: ``(k·k·c, C_out)``, index ``(ky·k + kx)·c + ch``
    (one kernel launch instead of the ~10 small ops of :func:`sampled_filters`)."""
    c_out = len(rows)
    weight = _empty((kernel_size * kernel_size * c, c_out), dtype, rows.device)
    block = 1024 if rows.device.type == "cuda" else 256
    _dft_rows_kernel[(cdiv(weight.numel(), block),)](
        rows.long(), weight, c, c_out, weight.numel(), K=kernel_size, IS_FP64=dtype == torch.float64, BLOCK=block)
    return weight


def _plane_tile(h: int, w: int, device: torch.device) -> tuple[int, int]:
    """(ROWS, BLOCK_W) of the per-plane elementwise kernels: ~2048 elements per tile on CUDA
    (a 32×64 block of a 64×64 map), ~64 in the interpreter."""
    block_w = min(next_power_of_2(w), 256 if device.type == "cuda" else 16)
    rows = max(1, min(next_power_of_2(h), (2048 if device.type == "cuda" else 64) // block_w))
    return rows, block_w


def _stats_triton(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, biased var) over ``(N, h, w)`` via the plane kernel + Chan's combination."""
    n, c, h, w = f.shape
    acc = compute_dtype(f.dtype)
    plane_mean = _empty((n, c), acc, f.device)
    plane_m2 = _empty((n, c), acc, f.device)
    rows, block_w = _plane_tile(h, w, f.device)
    _channel_stats_kernel[(n * c,)](f, plane_mean, plane_m2, c, h, w, *f.stride(),
                                    IS_FP64=f.dtype == torch.float64, ROWS=rows, BLOCK_W=block_w)
    mean = plane_mean.mean(0)
    m2 = plane_m2.sum(0) + (h * w) * ((plane_mean - mean) ** 2).sum(0)
    return mean, m2 / (n * h * w)


@functools.lru_cache(maxsize=16)
def _tap_validity(h: int, w: int, kernel_size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(h·w, KK_PAD)``: 1 where tap ``(ky, kx)`` of position ``(y, x)`` lies inside the map
    (taps past ``k²`` padded with 0 up to a tensor-core K of at least 16). Cached per geometry."""
    kk_pad = max(16, next_power_of_2(kernel_size * kernel_size))
    taps = torch.arange(kk_pad, device=device)
    ys = torch.arange(h, device=device)[:, None, None] + taps // kernel_size - kernel_size // 2
    xs = torch.arange(w, device=device)[None, :, None] + taps % kernel_size - kernel_size // 2
    ok = (taps < kernel_size * kernel_size) & (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    return ok.reshape(h * w, kk_pad).to(dtype)


def _rlff_forward_triton(f: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, inv_std: torch.Tensor,
                         kernel_size: int, patch_size: int, precision: str) -> torch.Tensor:
    """``weight``: the unscaled rows ``(k·k·c, C_out)`` in accumulation precision."""
    n, c, h, w = f.shape
    p = patch_size
    kk, c_out = kernel_size * kernel_size, weight.shape[1]
    hp, wp = cdiv(h, p), cdiv(w, p)
    m_out = n * hp * wp * p * p
    out = _empty((n * hp * wp, p * p, c_out), f.dtype, f.device)
    cfg = _tiles(f.dtype, c, c_out, f.device.type == "cuda")
    # Normalisation folded into the GEMM (see _rlff_fwd_kernel): rows scaled by 1/std, the mean
    # as a per-tap bias added only for taps inside the map.
    scaled = weight.view(kk, c, c_out) * inv_std[None, :, None]
    valid = _tap_validity(h, w, kernel_size, weight.dtype, f.device)
    bias = torch.zeros(valid.shape[1], c_out, device=f.device, dtype=weight.dtype)
    bias[:kk] = -(scaled * mean[None, :, None]).sum(1)
    grid = (cdiv(m_out, cfg.fwd_m), cdiv(c_out, cfg.fwd_n))
    _rlff_fwd_kernel[grid](f, scaled.reshape(kk * c, c_out).to(f.dtype), valid, bias, out,
                           c, h, w, wp, hp * wp, m_out, c_out, *f.stride(),
                           K=kernel_size, P=p, KK_PAD=valid.shape[1], IS_FP64=f.dtype == torch.float64,
                           DOT_PRECISION=dot_precision(precision, f.dtype),
                           BIAS_PRECISION=dot_precision(precision, weight.dtype),
                           BLOCK_M=cfg.fwd_m, BLOCK_N=cfg.fwd_n, BLOCK_C=cfg.fwd_c,
                           num_warps=cfg.warps, num_stages=cfg.stages)
    return out


def _rlff_backward_triton(grad_out: torch.Tensor, f: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor,
                          inv_std: torch.Tensor, batch_stats: bool, kernel_size: int,
                          patch_size: int, precision: str) -> torch.Tensor:
    n, c, h, w = f.shape
    p = patch_size
    c_out = weight.shape[1]
    wp = cdiv(w, p)
    hpwp = cdiv(h, p) * wp
    m_in = n * h * w
    cfg = _tiles(f.dtype, c, c_out, f.device.type == "cuda")
    grid = (cdiv(m_in, cfg.bwd_m), cdiv(c, cfg.bwd_c))
    acc = compute_dtype(f.dtype)
    grad_f = _empty_like(f)
    # Batch stats need dL/dx̂ kept at accumulation precision for the mean-subtracting step; for
    # fp32/fp64 inputs grad_f itself holds it (finished in place), half inputs get an fp32 buffer.
    gx = grad_f if not batch_stats or f.dtype == acc else _empty_like(f, acc)
    psum = _empty((grid[0], c), acc, f.device) if batch_stats else gx
    psumx = _empty_like(psum) if batch_stats else gx
    _rlff_bwd_kernel[grid](grad_out, weight, f, mean, inv_std, gx, psum, psumx,
                           c, h, w, wp, hpwp, m_in, c_out, *grad_out.stride(), *f.stride(), *gx.stride(),
                           K=kernel_size, P=p, BATCH_STATS=batch_stats, IS_FP64=f.dtype == torch.float64,
                           DOT_PRECISION=dot_precision(precision, f.dtype), BLOCK_M=cfg.bwd_m, BLOCK_C=cfg.bwd_c,
                           BLOCK_O=cfg.bwd_o, num_warps=cfg.warps, num_stages=cfg.stages)
    if batch_stats:
        g_mean = psum.sum(0) / m_in
        gx_mean = psumx.sum(0) / m_in
        rows, block_w = _plane_tile(h, w, f.device)
        _batchnorm_grad_kernel[(n * c, cdiv(h, rows))](
            gx, f, grad_f, mean, inv_std, g_mean, gx_mean, c, h, w, *gx.stride(), *f.stride(), *grad_f.stride(),
            IS_FP64=f.dtype == torch.float64, ROWS=rows, BLOCK_W=block_w)
    return grad_f


# ----------------------------------------------------------------------------------------------
# Plain-torch reference (CPU path and test oracle)
# ----------------------------------------------------------------------------------------------
def _stats_torch(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, biased var) over ``(N, h, w)`` in fp32 (fp64 for fp64 input)."""
    var, mean = torch.var_mean(f.to(compute_dtype(f.dtype)), dim=(0, 2, 3), correction=0)
    return mean, var


def rlff_reference(f: torch.Tensor, rows: torch.Tensor, kernel_size: int, patch_size: int,
                   stats: Stats | None = None) -> torch.Tensor:
    """RLFF in plain torch, differentiable by autograd (through the batch statistics too).

    ``f (N, c, h, w)``, ``rows (C_out,)`` → ``(N', p·p, C_out)`` of ``f.dtype``; computes in fp32
    (fp64 for fp64 input). Memory: the normalised input, the conv output ``(N, C_out, h, w)`` and
    its padded, permuted copy (about twice the output); no chunking since the output itself is the
    same size as the intermediates.
    """
    weight = sampled_filters(rows, f.shape[1], kernel_size, compute_dtype(f.dtype))
    return rlff_conv_reference(f, weight, patch_size, stats)


def rlff_conv_reference(f: torch.Tensor, weight: torch.Tensor, patch_size: int,
                        stats: Stats | None = None) -> torch.Tensor:
    """:func:`rlff_reference` with the sampled filters ``weight (C_out, c, k, k)`` already built
    (what an eager user would cache per step; the benchmarks' eager baseline)."""
    n, c, h, w = f.shape
    c_out, kernel_size, p = weight.shape[0], weight.shape[-1], patch_size
    x = f.to(compute_dtype(f.dtype))
    if stats is None:
        mean, var = _stats_torch(x)
        std = torch.sqrt(var + BN_EPS)
    else:
        mean, std = (s.detach().to(x.dtype) for s in stats)
    x = (x - mean[:, None, None]) / std[:, None, None]
    y = F.conv2d(x, weight.to(x.dtype), padding=kernel_size // 2)
    hp, wp = cdiv(h, p), cdiv(w, p)
    y = F.pad(y, (0, wp * p - w, 0, hp * p - h))
    y = y.reshape(n, c_out, hp, p, wp, p).permute(0, 2, 4, 3, 5, 1)
    return y.reshape(n * hp * wp, p * p, c_out).to(f.dtype)


# ----------------------------------------------------------------------------------------------
# Custom ops
# ----------------------------------------------------------------------------------------------
# Both paths as torch.library custom ops (as flash-attention's interface registers its kernels,
# and as every op here does, with ``backend`` an argument): torch.compile sees one opaque node with
# a shape-only fake, and autograd goes through register_autograd. Statistics are constants when
# given, differentiated through (BatchNorm's backward) when they are the batch's own (mean/std
# None): the forward then also returns the batch (mean, 1/std) that the backward needs.
def _rlff_backward_torch(grad_out: torch.Tensor, f: torch.Tensor, rows: torch.Tensor, mean: torch.Tensor,
                         inv_std: torch.Tensor, batch_stats: bool, kernel_size: int, patch_size: int) -> torch.Tensor:
    """The gradient of :func:`rlff_reference` written out (what the Triton backward computes):
    the unfold's adjoint, the convolution's input gradient, then BatchNorm's backward for batch
    statistics (``g - mean(g) - x̂·mean(g·x̂)``, times 1/std)."""
    n, c, h, w = f.shape
    p, acc = patch_size, compute_dtype(f.dtype)
    c_out = rows.shape[0]
    hp, wp = cdiv(h, p), cdiv(w, p)
    g = grad_out.to(acc).reshape(n, hp, wp, p, p, c_out).permute(0, 5, 1, 3, 2, 4)
    g = g.reshape(n, c_out, hp * p, wp * p)[:, :, :h, :w]
    weight = sampled_filters(rows, c, kernel_size, acc)
    g_hat = torch.nn.grad.conv2d_input((n, c, h, w), weight, g, padding=kernel_size // 2)
    scale = inv_std[:, None, None]
    if batch_stats:
        x_hat = (f.to(acc) - mean[:, None, None]) * scale
        g_hat = g_hat - g_hat.mean((0, 2, 3))[:, None, None] - x_hat * (g_hat * x_hat).mean((0, 2, 3))[:, None, None]
    return (g_hat * scale).to(f.dtype)


def _normalisation(f: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None,
                   backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, 1/std) as contiguous fp32 (fp64) vectors; the batch's own when ``mean``/``std`` are
    ``None``."""
    acc = compute_dtype(f.dtype)
    if mean is None:
        mean, var = _stats_triton(f) if backend == "triton" else _stats_torch(f)
        return mean.contiguous(), torch.rsqrt(var + BN_EPS).contiguous()
    # a copy even when already contiguous in ``acc``: a custom op's output may not alias an input
    return mean.detach().to(acc, copy=True).contiguous(), (1.0 / std.detach().to(acc)).contiguous()


@torch.library.custom_op("irkernels::rlff_samples", mutates_args=())
def _rlff_samples(f: torch.Tensor, rows: torch.Tensor, mean: torch.Tensor | None, std: torch.Tensor | None,
                  kernel_size: int, patch_size: int, precision: str,
                  backend: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    given = None if mean is None else (mean, std)
    mean, inv_std = _normalisation(f, mean, std, backend)
    if backend == "triton":
        weight = _weight_matrix(rows, f.shape[1], kernel_size, compute_dtype(f.dtype))
        out = _rlff_forward_triton(f, weight, mean, inv_std, kernel_size, patch_size, precision)
    else:  # the reference itself, so that the torch path equals it to the bit
        out = rlff_reference(f, rows, kernel_size, patch_size, given)
    return out, mean, inv_std


@_rlff_samples.register_fake
def _rlff_samples_fake(f, rows, mean, std, kernel_size, patch_size, precision, backend):
    n, c, h, w = f.shape
    tiles = cdiv(h, patch_size) * cdiv(w, patch_size)
    vec = f.new_empty((c,), dtype=compute_dtype(f.dtype))
    return f.new_empty((n * tiles, patch_size * patch_size, rows.shape[0])), vec, torch.empty_like(vec)


@torch.library.custom_op("irkernels::rlff_samples_backward", mutates_args=())
def _rlff_samples_backward(grad_out: torch.Tensor, f: torch.Tensor, rows: torch.Tensor, mean: torch.Tensor,
                           inv_std: torch.Tensor, batch_stats: bool, kernel_size: int, patch_size: int,
                           precision: str, backend: str) -> torch.Tensor:
    if backend != "triton":
        return _rlff_backward_torch(grad_out, f, rows, mean, inv_std, batch_stats, kernel_size, patch_size)
    weight = _weight_matrix(rows, f.shape[1], kernel_size, compute_dtype(f.dtype)).to(f.dtype)
    # any strides: the kernel reads e.g. the stride-0 gradient of ``samples.mean(1)`` in place
    return _rlff_backward_triton(grad_out.to(f.dtype), f, weight, mean, inv_std, batch_stats,
                                 kernel_size, patch_size, precision)


@_rlff_samples_backward.register_fake
def _rlff_samples_backward_fake(grad_out, f, rows, mean, inv_std, batch_stats, kernel_size, patch_size, precision,
                                backend):
    return torch.empty_like(f)


def _rlff_setup_context(ctx, inputs, output) -> None:
    f, rows, mean, _, kernel_size, patch_size, precision, backend = inputs
    _, batch_mean, inv_std = output
    ctx.save_for_backward(f, rows, batch_mean, inv_std)
    ctx.batch_stats = mean is None
    ctx.args = (kernel_size, patch_size, precision, backend)


def _rlff_backward(ctx, grad_out, grad_mean, grad_inv_std):
    f, rows, mean, inv_std = ctx.saved_tensors
    grad_f = None
    if ctx.needs_input_grad[0]:
        grad_f = _rlff_samples_backward(grad_out, f, rows, mean, inv_std, ctx.batch_stats, *ctx.args)
    return grad_f, None, None, None, None, None, None, None


_rlff_samples.register_autograd(_rlff_backward, setup_context=_rlff_setup_context)


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def reference_stats(f: torch.Tensor, *, eps: float = BN_EPS, backend: str = "auto") -> Stats:
    """Per-channel ``(mean, std)`` of a reference feature batch ``f (N, c, h, w)`` for ``rlff``.

    ``mean``/``var`` over ``(N, h, w)``, biased; ``std = sqrt(var + eps)``. Both ``(c,)`` in fp32
    (fp64 for fp64 input), detached. ``rlff(f, stats=reference_stats(f))`` equals
    ``rlff(f, stats=None)`` in value (not in gradient: given stats are constants).
    """
    f = check_float_tensor("f", f, 4)
    check_finite("f", f)
    with torch.no_grad():
        if resolve_backend(backend, f.device) == "triton":
            mean, var = _stats_triton(f.detach())
        else:
            mean, var = _stats_torch(f.detach())
    return mean, torch.sqrt(var + eps)


def rlff(f: torch.Tensor, *, kernel_size: int = 3, out_channels: int = 128, patch_size: int = 4,
         rows: torch.Tensor | None = None, seed: int | None = None, stats: Stats | None = None,
         precision: str | None = None, backend: str = "auto") -> torch.Tensor:
    """Random Local Fourier Features of ``f (N, c, h, w)`` → ``(N', p·p, C_out)``.

    ``N' = N·⌈h/p⌉·⌈w/p⌉``; the result ``.reshape(-1, C_out)`` gives one sample per spatial
    position of every patch. ``rows`` (``(C_out,)`` integer indices into the ``2·c·k²`` bank rows)
    fixes the sampled filters — pass the same rows for real and synthetic features of a step;
    otherwise ``seed`` (or torch's global generator) draws them with :func:`sample_rows`.
    ``stats=(mean, std)`` (each ``(c,)``, e.g. :func:`reference_stats` of the real features)
    normalises with those; ``None`` with the batch's own (biased var, eps 1e-5). Output dtype =
    ``f.dtype`` (fp32/bf16/fp16/fp64). Gradient w.r.t. ``f`` (once differentiable on the Triton
    path). ``precision`` (``"fast"`` | ``"high"`` | ``"highest"``): the fused kernels' fp32 dots
    (TF32 / 3×TF32 / fp32 FMA); ``None`` follows torch's convolution setting
    (:func:`~irkernels.ops.utils.conv_precision_from_torch`: ``"fast"`` while
    ``torch.backends.cudnn.allow_tf32``, torch's default). The torch backend ignores it (cuDNN
    follows torch's own flags). ``backend``: ``"auto"`` (Triton for CUDA tensors), ``"triton"`` or
    ``"torch"``. Both paths are the custom op ``torch.ops.irkernels.rlff_samples`` (traceable by
    ``torch.compile(fullgraph=True)``); with value checks off
    (:func:`irkernels.value_checks`) and ``rows`` given it makes no host sync.

    >>> f = torch.randn(2, 3, 8, 8)
    >>> rlff(f, out_channels=16, seed=0).shape
    torch.Size([8, 16, 16])
    """
    f, stats = _validate(f, kernel_size, out_channels, patch_size, rows, seed, stats)
    precision = conv_precision_from_torch() if precision is None else check_precision(precision)
    c = f.shape[1]
    if rows is None:
        rows = sample_rows(c, kernel_size, out_channels, seed=seed, device=f.device)
    mean, std = stats if stats is not None else (None, None)
    return _rlff_samples(f, rows, mean, std, kernel_size, patch_size, precision, resolve_backend(backend, f.device))[0]


class RLFF(nn.Module):
    """RLFF with its own row generator and (optional) reference statistics.

    Buffers: ``rows (C_out,)`` (the current draw), ``ref_mean``/``ref_std`` ``(c,)`` (used once
    set by ``reference=`` or :meth:`set_reference`; until then each call normalises with the
    batch's own statistics). Call :meth:`resample` once per step, then the module on the real
    and on the synthetic features: both use the same rows.
    The generator's state is saved in ``state_dict`` so a resumed run draws the same rows.

    >>> m = RLFF(3, out_channels=16, seed=0)
    >>> mean, std = m.set_reference(torch.randn(4, 3, 8, 8))
    >>> samples, descriptors = m(torch.randn(2, 3, 8, 8))
    >>> samples.shape, descriptors.shape
    (torch.Size([8, 16, 16]), torch.Size([8, 16]))
    """

    def __init__(self, channels: int, kernel_size: int = 3, out_channels: int = 128, patch_size: int = 4, *,
                 seed: int = 0, reference: Stats | None = None, precision: str | None = None,
                 backend: str = "auto") -> None:
        super().__init__()
        _check_geometry(channels, kernel_size)
        _check_out_channels(out_channels, 2 * channels * kernel_size * kernel_size)
        self.channels = channels
        self.kernel_size = kernel_size
        self.out_channels = out_channels
        self.patch_size = patch_size
        self.precision = None if precision is None else check_precision(precision)
        self.backend = backend
        self.generator = torch.Generator().manual_seed(int(seed))
        self.register_buffer("rows", torch.empty(out_channels, dtype=torch.long))
        self.register_buffer("ref_mean", torch.zeros(channels))
        self.register_buffer("ref_std", torch.ones(channels))
        self.has_reference = False
        if reference is not None:
            mean, std = _check_stats(reference, channels, reference[0].device)
            self._store_reference(mean, std)
        self.resample()

    def _store_reference(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.ref_mean, self.ref_std = mean.detach().clone(), std.detach().clone()
        self.has_reference = True

    def resample(self) -> torch.Tensor:
        """Draw new rows from the module's generator (call once per step); returns them."""
        self.rows = sample_rows(self.channels, self.kernel_size, self.out_channels,
                                generator=self.generator, device=self.rows.device)
        return self.rows

    @torch.no_grad()
    def set_reference(self, f: torch.Tensor) -> Stats:
        """Use ``reference_stats(f)`` (a real feature batch) for every later call; returns them."""
        mean, std = reference_stats(f, backend=self.backend)
        if mean.shape != (self.channels,):
            raise ValueError(f"f must have {self.channels} channels, got shape {tuple(f.shape)}")
        self._store_reference(mean, std)
        return self.ref_mean, self.ref_std

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``f (N, c, h, w)`` → samples ``(N', p·p, C_out)`` and descriptors ``(N', C_out)`` (the
        mean over each patch's p·p samples, zero-filled positions of border patches included)."""
        stats = (self.ref_mean, self.ref_std) if self.has_reference else None
        samples = rlff(f, kernel_size=self.kernel_size, out_channels=self.out_channels,
                       patch_size=self.patch_size, rows=self.rows, stats=stats, precision=self.precision,
                       backend=self.backend)
        return samples, samples.mean(dim=1)

    def get_extra_state(self) -> dict:
        return {"generator_state": self.generator.get_state(), "has_reference": self.has_reference}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator_state"])
        self.has_reference = state["has_reference"]

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, kernel_size={self.kernel_size}, out_channels={self.out_channels}, "
                f"patch_size={self.patch_size}, reference={'set' if self.has_reference else 'batch'}")
