"""Kernel floors on paper: an H100 roofline model of each op at the README's anchor sizes, and the
registers, spills, shared memory and occupancy of each kernel configuration compiled for sm_90.

    python benchmarks/roofline.py               # the model + the sm_90 compile (minutes on 2 cores)
    python benchmarks/roofline.py --no-compile  # the model alone

Nothing here runs on a GPU: every figure is a model. For each op the work it must do is counted
from its math, per pipe: tensor-core FLOPs at the precision the op uses (a 3×TF32 dot is three TF32
passes), CUDA-core fp32 FLOPs, special-function (SFU) ops for sin/cos, and the bytes that must
cross HBM at least once (inputs read, outputs written, what a backward must read again). Each is
divided by the H100 SXM's published peak (``benchmarks.common.PEAKS``); the pipes run concurrently,
so the floor is the largest of those times. Launch latency, host syncs, tile quantisation and
imperfect overlap are not counted: a kernel can only be slower than its floor.

The registers, spills and shared memory come from compiling the launches of ``tests/sm90_launches.py``
(the ones the sm_90 tests check) with ``tests/sm90.py``; occupancy follows from them and the sm_90
limits below. Writes ``benchmarks/results/roofline_h100.{json,md}``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import asdict, dataclass, fields

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import markdown, published_peaks, write_results  # noqa: E402

# H100 SXM: 50 MB of L2 (datasheet). A working set below it can be re-read from L2, so only its
# first read must come from HBM.
L2_BYTES = 50 * 2**20

# CUDA-core fp32 FLOPs (an FMA counts 2) per sin/cos argument in the NCFD "fast" mode: the
# Cody–Waite range reduction before the SFU's approximate sin/cos is one FMA for k (then a floor)
# and two FMAs for θ − k·2π (``irkernels.ops.ncfd._sincos``).
RANGE_REDUCTION_FLOPS = 6

# sm_90 per-SM limits (CUDA C++ Programming Guide, technical specifications for compute capability
# 9.0; allocation units from the CUDA occupancy calculator): registers are allocated per warp in
# units of 256, and every block also holds 1 KB of shared memory reserved for the system.
SM90 = {"registers": 65_536, "register_unit_per_warp": 256, "threads": 2048, "warps": 64, "blocks": 32,
        "shared_bytes": 228 * 1024, "shared_bytes_per_block": 227 * 1024, "shared_reserved_per_block": 1024,
        "shared_unit": 128}

# The README's H100 anchors and targets (Benchmarks table). Eager times were measured by the
# issues' author; ncfd: fwd+bwd to y, rlff: the first shape, fwd+bwd 4.2 ms and fwd 1.9 ms
# (docs/rlff.md).
NCFD_EAGER_MS = 34.6
NCFD_TARGET_X = 8.0
RLFF_EAGER_FWD_BWD_MS, RLFF_EAGER_FWD_MS = 4.2, 1.9
RLFF_TARGET_X = 4.0
KMEANS_TARGET_MS = {16: 4.0, 1: 1.5}
IDC_TARGET_MS = 3.0  # per instance-iteration, with batching


@dataclass(frozen=True)
class Work:
    """What one call must do, per pipe: tensor-core FLOPs by input precision, CUDA-core fp32 FLOPs,
    SFU ops (one per sin or cos) and bytes across HBM."""

    tf32_flops: float = 0.0
    bf16_flops: float = 0.0
    fp32_flops: float = 0.0
    sfu_ops: float = 0.0
    hbm_bytes: float = 0.0

    def __add__(self, other: Work) -> Work:
        return Work(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __truediv__(self, k: float) -> Work:
        """The share of one step when the work is done once every ``k`` steps."""
        return Work(*(getattr(self, f.name) / k for f in fields(self)))


def floor_times(work: Work, peaks: dict[str, float]) -> dict:
    """Milliseconds each pipe needs at its peak, the floor (their maximum: the pipes overlap) and
    which pipe sets it. TF32 and BF16 FLOPs share the tensor cores, so their times add."""
    times = {
        "tensor_ms": (work.tf32_flops / peaks["tf32_flops"] + work.bf16_flops / peaks["bf16_flops"]) * 1e3,
        "fp32_ms": work.fp32_flops / peaks["fp32_flops"] * 1e3,
        "sfu_ms": work.sfu_ops / peaks["sfu_ops_per_s"] * 1e3,
        "memory_ms": work.hbm_bytes / peaks["bytes_per_s"] * 1e3,
    }
    bound = max(times, key=times.get)
    return {**times, "floor_ms": times[bound], "bound": bound[:-3]}


def ncfd_work(N: int, M: int, T: int, D: int, *, phase_passes: int = 3, sample_bytes: int = 4) -> Work:
    """``ncfd_loss`` in the "fast" mode: the statistics of ``N`` real samples (constant; ``N = 0``
    when they are cached) and ``M`` synthetic ones, and the backward to the synthetic samples.

    Forward: θ = ⟨t, x⟩ for every (sample, frequency) (``phase_passes`` TF32 passes: 3 for the
    3×TF32 phase dot), its cos and sin (2 SFU ops after the range reduction) and their sums over
    samples (2 adds). Backward: θ recomputed for the ``M`` samples (storing (M, T) cos/sin would
    move more bytes than the recompute costs), w = cos·a − sin·b (3 FLOPs) and the TF32 GEMM w·t.
    Bytes: x, y and t read; the backward reads y and t again and writes y's gradient (no backward
    without synthetic samples). The (G, T) statistics are negligible.
    """
    fwd, bwd = T * (N + M), T * M  # sin/cos arguments evaluated in each pass
    return Work(
        tf32_flops=phase_passes * 2 * D * (fwd + bwd) + 2 * D * bwd,
        fp32_flops=fwd * (RANGE_REDUCTION_FLOPS + 2) + bwd * (RANGE_REDUCTION_FLOPS + 3),
        sfu_ops=2 * (fwd + bwd),
        hbm_bytes=sample_bytes * D * (N + M) + 4 * T * D + ((2 * sample_bytes * M * D + 4 * T * D) if M else 0),
    )


def rlff_work(n: int, c: int, h: int, w: int, *, k: int = 3, c_out: int = 128, p: int = 4,
              dtype: torch.dtype = torch.float32, backward: bool = True, batch_stats: bool = False) -> Work:
    """``rlff`` of ``f (n, c, h, w)``: one implicit GEMM of 2·n·h·w·C_out·c·k² FLOPs forward and one
    for the input gradient (TF32 for fp32 features, BF16 rate otherwise). Bytes: read f and write
    the output; the backward reads the output's gradient and writes f's; batch statistics read f
    once more in each direction. The normalisation's elementwise work is folded into the GEMM (given
    statistics) or small next to it (batch statistics), and not counted."""
    elt = torch.finfo(dtype).bits // 8
    in_bytes = n * c * h * w * elt
    out_bytes = n * -(-h // p) * -(-w // p) * p * p * c_out * elt
    passes = 2 if backward else 1
    flops = passes * 2.0 * n * h * w * c_out * c * k * k
    moved = passes * (in_bytes + out_bytes + (in_bytes if batch_stats else 0))
    return Work(tf32_flops=flops, hbm_bytes=moved) if dtype == torch.float32 else Work(bf16_flops=flops, hbm_bytes=moved)


def kmeans_work(sizes: list[int], K: int, D: int, iters: int, *, passes: int = 3) -> Work:
    """``iters`` Lloyd iterations over instances of ``sizes`` fp32 points: the distance GEMM
    (2·n·K·D, ``passes`` TF32 passes: 3 for the default tf32x3), per point and centroid the
    distance from the dot and the comparison (3 FLOPs), per point and feature one add into its
    centroid's sum. Bytes: the points once per iteration while they exceed the L2 (once in all
    otherwise) and the labels (int64) written at the end."""
    n = sum(sizes)
    point_bytes = n * D * 4
    reads = iters if point_bytes > L2_BYTES else 1
    return Work(tf32_flops=iters * passes * 2 * n * K * D, fp32_flops=iters * n * (3 * K + D),
                hbm_bytes=reads * point_bytes + 8 * n)


def conv_stack_work(layers: list[tuple[int, int, int]], n: int, h: int, w: int) -> Work:
    """Forward and input gradient (frozen weights) of same-size convolutions ``(c_in, c_out, taps)``
    under bf16 autocast: 2·n·h·w·c_in·c_out·taps FLOPs each way; bytes: each convolution's input,
    saved for the backward, written once and read once (bf16)."""
    flops = sum(2 * 2 * n * h * w * cin * cout * taps for cin, cout, taps in layers)
    saved = sum(n * h * w * cin * 2 for cin, _, _ in layers)
    return Work(bf16_flops=flops, hbm_bytes=2 * saved)


def idc_step_parts() -> dict[str, Work]:
    """One IDC instance-iteration at ``bench_idc.py``'s GPU setting (a 2040×1356 image at ×4,
    EDSR-baseline features, r = 10 %, RLFF k=3, C_out=128, p=4, T=4096, K=32), per part; the real
    side (re-drawn every ``resample_every`` steps) and the pairing (every ``reassign_every``) are
    amortised. Left out as under 1 % of the total: Adam on the pixels, the quota assignment, the
    (G, T) loss terms."""
    from benchmarks.bench_idc import DIV2K_SIZE, config
    from irkernels.data.images import patch_origins
    from irkernels.models import build_model

    cfg = config(small=False)
    real = len(patch_origins(DIV2K_SIZE[1], DIV2K_SIZE[0], cfg.hr_patch, cfg.hr_stride))
    syn = cfg.num_synthetic(real)
    hw, p, C, T, K = cfg.lr_patch, cfg.rlff_patch, cfg.rlff_channels, cfg.num_freqs, cfg.num_groups
    tiles = (hw // p) ** 2  # RLFF patches per LR patch
    net = build_model("edsr-baseline", cfg.scale)
    convs = [m for part in (net.head, net.body) for m in part.modules() if isinstance(m, torch.nn.Conv2d)]
    layers = [(m.in_channels, m.out_channels, m.kernel_size[0] * m.kernel_size[1]) for m in convs]
    c = layers[-1][1]
    fmap_bytes = syn * c * hw * hw * 4
    return {
        "EDSR-baseline features, fwd + input grad (bf16)": conv_stack_work(layers, syn, hw, hw),
        "feature normalisation, fwd + bwd (fp32 map read and written)": Work(hbm_bytes=4 * fmap_bytes),
        "rlff, synthetic side, fwd + bwd": rlff_work(syn, c, hw, hw, k=cfg.rlff_kernel, c_out=C, p=p),
        "ncfd, synthetic side, fwd + bwd (real side cached)": ncfd_work(0, syn * tiles * p * p, T, C),
        "L_pair, fwd + bwd (paired patches read, gradient written)": Work(hbm_bytes=3 * syn * tiles * p * p * C * 4),
        f"real side every {cfg.resample_every} steps: rlff fwd, k-means, ncfd statistics":
            (rlff_work(real, c, hw, hw, k=cfg.rlff_kernel, c_out=C, p=p, backward=False)
             + Work(hbm_bytes=real * tiles * p * p * C * 4)  # descriptors: the RLFF output read again
             + kmeans_work([real * tiles], K, C, cfg.kmeans_iters)
             + ncfd_work(real * tiles * p * p, 0, T, C)) / cfg.resample_every,
        f"pairing every {cfg.reassign_every} steps (tf32x3, F = p²·C_out)":
            Work(tf32_flops=3 * 2 * syn * tiles * (real * tiles / K) * p * p * C,
                 hbm_bytes=(real + syn) * tiles * p * p * C * 4) / cfg.reassign_every,
    }


def floor_rows(peaks: dict[str, float]) -> list[dict]:
    """One row per anchor (and the IDC step's parts): the work, each pipe's time, the floor, and
    what it allows against the eager anchor and the target."""
    def row(op: str, case: str, work: Work, *, eager_ms: float | None = None, target: str = "",
            target_ms: float | None = None) -> dict:
        times = floor_times(work, peaks)
        out = {"op": op, "case": case, "tensor_tflop": (work.tf32_flops + work.bf16_flops) / 1e12,
               "sfu_gops": work.sfu_ops / 1e9, "hbm_gb": work.hbm_bytes / 1e9, **asdict(work), **times,
               "eager_ms": eager_ms, "eager_over_floor": eager_ms / times["floor_ms"] if eager_ms else None,
               "target": target, "target_ms": target_ms}
        if target_ms is not None:
            out["target_over_floor"] = target_ms / times["floor_ms"]
            out["target_reachable"] = "yes" if times["floor_ms"] <= target_ms else "no"
        return out

    big, mid = (618_496, 61_850), (262_144, 26_214)
    ncfd_target = f"≥ {NCFD_TARGET_X:g}× eager"
    rows = [
        row("ncfd_loss", f"N={big[0]:,}, M={big[1]:,}, D=128, T=4096, fwd+bwd to y, fast (3×TF32 phase)",
            ncfd_work(*big, 4096, 128), eager_ms=NCFD_EAGER_MS, target=ncfd_target,
            target_ms=NCFD_EAGER_MS / NCFD_TARGET_X),
        row("ncfd_loss", "same, if the phase dot were one TF32 pass (misses the fast mode's accuracy bound)",
            ncfd_work(*big, 4096, 128, phase_passes=1), eager_ms=NCFD_EAGER_MS, target=ncfd_target,
            target_ms=NCFD_EAGER_MS / NCFD_TARGET_X),
        row("ncfd_loss", f"N={mid[0]:,}, M={mid[1]:,}, D=128, T=4096, fwd+bwd to y, fast",
            ncfd_work(*mid, 4096, 128), target="≥ 2.5× torch.compile (not measured: no time target)"),
        row("rlff", "N=151, c=64, 64×64, k=3, C_out=128, p=4, fp32 (TF32), fwd+bwd, given stats (IDC's mode)",
            rlff_work(151, 64, 64, 64), eager_ms=RLFF_EAGER_FWD_BWD_MS, target=f"≥ {RLFF_TARGET_X:g}× eager",
            target_ms=RLFF_EAGER_FWD_BWD_MS / RLFF_TARGET_X),
        row("rlff", "same, batch stats", rlff_work(151, 64, 64, 64, batch_stats=True),
            eager_ms=RLFF_EAGER_FWD_BWD_MS, target=f"≥ {RLFF_TARGET_X:g}× eager",
            target_ms=RLFF_EAGER_FWD_BWD_MS / RLFF_TARGET_X),
        row("rlff", "same, fwd only, given stats", rlff_work(151, 64, 64, 64, backward=False),
            eager_ms=RLFF_EAGER_FWD_MS),
    ]
    for instances, target_ms in KMEANS_TARGET_MS.items():
        rows.append(row("kmeans", f"{instances} × 38,656 points, K=32, D=128, 20 Lloyd iterations, tf32x3",
                        kmeans_work([38_656] * instances, 32, 128, 20), target=f"≤ {target_ms:g} ms",
                        target_ms=target_ms))
    parts = idc_step_parts()
    rows.append(row("IDC step", "one instance-iteration (sum of the parts below)", sum(parts.values(), Work()),
                    target=f"≤ {IDC_TARGET_MS:g} ms per instance-iteration", target_ms=IDC_TARGET_MS))
    rows += [row("IDC step", f"part: {name}", work) for name, work in parts.items()]
    return rows


def occupancy(regs: int, num_warps: int, shared_bytes: int) -> dict:
    """Blocks and warps per SM that ``regs`` registers per thread, ``num_warps`` warps per block and
    ``shared_bytes`` of shared memory per block allow on sm_90, and which limit binds."""
    regs_per_warp = math.ceil(regs * 32 / SM90["register_unit_per_warp"]) * SM90["register_unit_per_warp"]
    shared = math.ceil((shared_bytes + SM90["shared_reserved_per_block"]) / SM90["shared_unit"]) * SM90["shared_unit"]
    limits = {
        "registers": SM90["registers"] // (regs_per_warp * num_warps),
        "threads": SM90["threads"] // (num_warps * 32),
        "shared memory": SM90["shared_bytes"] // shared if shared_bytes <= SM90["shared_bytes_per_block"] else 0,
        "blocks": SM90["blocks"],
    }
    limited_by = min(limits, key=limits.get)
    blocks = limits[limited_by]
    return {"blocks_per_sm": blocks, "warps_per_sm": blocks * num_warps,
            "occupancy": blocks * num_warps / SM90["warps"], "limited_by": limited_by}


def kernel_rows() -> tuple[list[dict], dict]:
    """Every configuration of ``tests/sm90_launches.py`` compiled for sm_90 (one subprocess, as
    the tests do): registers, spills, stack, shared memory and the occupancy they allow; and the
    Triton and ptxas versions that compiled them."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from sm90 import compile_sm90
    from sm90_launches import launches

    specs = launches()
    results = compile_sm90([spec for _, _, spec in specs])
    rows = []
    for (op, configuration, spec), res in zip(specs, results):
        warps = spec.get("num_warps", 4)
        rows.append({"op": op, "configuration": configuration, "num_warps": warps,
                     "num_stages": spec.get("num_stages", 3), "registers": res["regs"],
                     "spill_bytes": res["spill_bytes"], "stack_bytes": res["stack_bytes"],
                     "shared_kib": res["shared_bytes"] / 1024, **occupancy(res["regs"], warps, res["shared_bytes"])})
    return rows, {"triton": results[0]["triton"], "ptxas": results[0]["ptxas"]}


FLOOR_COLUMNS = ["op", "case", "tensor_tflop", "sfu_gops", "hbm_gb", "tensor_ms", "fp32_ms", "sfu_ms", "memory_ms",
                 "floor_ms", "bound", "eager_ms", "eager_over_floor", "target", "target_ms", "target_reachable"]
KERNEL_COLUMNS = ["op", "configuration", "num_warps", "num_stages", "registers", "spill_bytes", "stack_bytes",
                  "shared_kib", "blocks_per_sm", "warps_per_sm", "occupancy", "limited_by"]


def findings(rows: list[dict], kernels: list[dict] | None) -> str:
    """The lines the README quotes: targets the floor cannot reach, configurations that spill."""
    missed = [f"{r['op']} ({r['case']}): floor {r['floor_ms']:.3g} ms > target {r['target_ms']:.3g} ms"
              for r in rows if r.get("target_reachable") == "no"]
    lines = ["Targets the floor (model) cannot reach: " + ("; ".join(missed) if missed else "none") + "."]
    if kernels is not None:
        spills = [f"{k['op']} {k['configuration']} ({k['spill_bytes']} bytes)" for k in kernels if k["spill_bytes"]]
        lines.append("Configurations that spill registers: " + ("; ".join(spills) if spills else "none") + ".")
    return "\n".join(f"- {line}" for line in lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-compile", action="store_true", help="skip the sm_90 compile (the floors alone)")
    args = parser.parse_args(argv)
    peaks = published_peaks("H100")
    rows = floor_rows(peaks)
    kernels, versions = kernel_rows() if not args.no_compile else (None, {})
    table = "## Floors (model)\n\n" + markdown(rows, FLOOR_COLUMNS)
    if kernels is not None:
        table += (f"\n## Kernel configurations, sm_90 (Triton {versions['triton']}, ptxas {versions['ptxas']})\n\n"
                  + markdown(kernels, KERNEL_COLUMNS))
    notes = (
        "\nA model, not a measurement: no GPU ran anything here. Peaks (H100 SXM, datasheet, dense): "
        f"TF32 {peaks['tf32_flops'] / 1e12:g} TFLOPS, BF16 {peaks['bf16_flops'] / 1e12:g} TFLOPS, fp32 "
        f"{peaks['fp32_flops'] / 1e12:g} TFLOPS, HBM3 {peaks['bytes_per_s'] / 1e12:g} TB/s, SFU "
        f"{peaks['sfu_ops_per_clk_per_sm']:g} ops/clock/SM × {peaks['sms']:g} SMs × "
        f"{peaks['boost_clock_hz'] / 1e9:g} GHz = {peaks['sfu_ops_per_s'] / 1e12:.2f}·10¹² sin or cos/s.\n"
        "floor_ms = the largest of the pipes' times (tensor cores, fp32 CUDA cores, SFU, HBM), which can "
        "overlap; eager_over_floor = the most any kernel could gain over the eager anchor; a target is "
        "reachable only if its time is at or above the floor. What each op counts: `benchmarks/roofline.py` "
        "(docstrings of `ncfd_work`, `rlff_work`, `kmeans_work`, `idc_step_parts`). k-means on one instance: "
        "the floor is microseconds; what its 1.5 ms target is about is 20 dependent iterations of launches "
        "and syncs (docs/kmeans.md), which the model does not count.\n"
        "Occupancy: blocks per SM from registers (allocated per warp in units of 256, 65,536 per SM), threads "
        "(2,048), shared memory (228 KB per SM, 227 KB per block, 1 KB reserved per block) and 32 blocks; "
        "occupancy = resident warps / 64. spill_bytes: ptxas's spill stores + loads; stack_bytes: the local "
        "frame (libdevice's sin/cos keeps a small array there in the high/highest modes).\n\n"
        + findings(rows, kernels)
    )
    paths = write_results("roofline_h100", rows, table, notes, model_of="H100 SXM",
                          extra={"peaks": peaks, "sm90_limits": SM90, "kernels": kernels, "compiled_with": versions})
    print(table + notes)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
