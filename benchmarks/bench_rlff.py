"""RLFF benchmark: eager torch reference, torch.compile of it, the fused Triton kernels, and floors.

Forward and forward+backward (gradient w.r.t. ``f``), for reference statistics (the IDC pipeline's
mode: the real instance's stats applied to the synthetic features) and batch statistics.

    python benchmarks/bench_rlff.py            # CUDA: the issue's shapes; CPU: tiny shapes
    python benchmarks/bench_rlff.py --small    # tiny shapes anywhere

Writes ``benchmarks/results/rlff.{json,md}`` on CUDA and ``rlff_cpu.{json,md}`` on CPU.
Floors (``benchmarks/roofline.py``'s ``rlff_work``): bytes = read f + write the output (forward);
the backward adds read grad_out + write grad_f (+ read f again for batch stats); FLOPs =
2·N·h·w·C_out·c·k² per GEMM (one forward, one backward) at the dense TF32 (fp32 input) or BF16
peak; floor = max(bytes / bandwidth, FLOPs / peak).
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import device_peaks, markdown, measure, write_results  # noqa: E402
from benchmarks.roofline import floor_times, rlff_work  # noqa: E402
from irkernels.ops.utils import conv_precision_from_torch  # noqa: E402
from irkernels.ops.rlff import (  # noqa: E402
    _rlff_samples, reference_stats, rlff, rlff_conv_reference, sample_rows, sampled_filters)

# (name, N, c, h, w, k, C_out, p)
CUDA_SHAPES = [
    ("EDSR features, DIV2K instance", 151, 64, 64, 64, 3, 128, 4),
    ("SwinIR features", 151, 180, 64, 64, 3, 128, 4),
    ("synthetic side", 15, 64, 64, 64, 3, 128, 4),
]
SMALL_SHAPES = [
    ("tiny", 4, 8, 16, 16, 3, 32, 4),
    ("tiny, odd", 3, 5, 13, 11, 3, 24, 4),
]


def floors(n, c, h, w, k, c_out, p, dtype, batch_stats, backward):
    """``(bytes floor, FLOP floor)`` in ms on a known GPU (``benchmarks/roofline.py``'s model)."""
    peaks = device_peaks()
    if peaks is None:
        return None, None
    work = rlff_work(n, c, h, w, k=k, c_out=c_out, p=p, dtype=dtype, backward=backward, batch_stats=batch_stats)
    times = floor_times(work, peaks)
    return times["memory_ms"], times["tensor_ms"]


def bench_shape(shape, dtype, stats_mode, use_compile, fused_available):
    name, n, c, h, w, k, c_out, p = shape
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=device).manual_seed(0)
    f = torch.randn(n, c, h, w, device=device, dtype=dtype, generator=gen)
    f = f.requires_grad_(True)
    rows = sample_rows(c, k, c_out, seed=0, device=device)
    stats = reference_stats(torch.randn(n, c, h, w, device=device, generator=gen)) if stats_mode == "reference" else None
    hp, wp = -(-h // p), -(-w // p)
    grad_out = torch.randn(n * hp * wp, p * p, c_out, device=device, dtype=dtype, generator=gen)

    # Baselines get the sampled filters pre-built (as eager code would cache them per step); the
    # fused rows build their B operand inside the call (one small kernel).
    weight = sampled_filters(rows, c, k, torch.float32)
    impls = {"eager": lambda x: rlff_conv_reference(x, weight, p, stats)}
    if use_compile:
        compiled = torch.compile(rlff_conv_reference, dynamic=False)
        impls["torch.compile"] = lambda x: compiled(x, weight, p, stats)
    if fused_available:
        mean, std = stats if stats is not None else (None, None)  # the custom op itself: no input checks
        impls["fused (kernels)"] = lambda x: _rlff_samples(x, rows, mean, std, k, p, conv_precision_from_torch(), "triton")[0]
        impls["fused (rlff(), with input checks)"] = lambda x: rlff(
            x, kernel_size=k, out_channels=c_out, patch_size=p, rows=rows, stats=stats)

    rows_out = []
    for impl, op in impls.items():
        def fwd():
            with torch.no_grad():
                return op(f)

        def fwd_bwd():
            return torch.autograd.grad(op(f), f, grad_out)

        for pass_name, fn in (("fwd", fwd), ("fwd+bwd", fwd_bwd)):
            m = measure(f"{impl} {pass_name}", fn, warmup=3 if device == "cpu" else 10,
                        runs=5 if device == "cpu" else 50)
            bytes_ms, flops_ms = floors(n, c, h, w, k, c_out, p, dtype, stats is None, pass_name == "fwd+bwd")
            rows_out.append({
                "shape": f"{name}: N={n} c={c} {h}x{w} k={k} C_out={c_out} p={p}", "dtype": str(dtype).split(".")[-1],
                "stats": stats_mode, "impl": impl, "pass": pass_name, "median_ms": m.median_ms, "min_ms": m.min_ms,
                "runs": m.runs, "peak_extra_MiB": m.peak_extra_mib, "bytes_floor_ms": bytes_ms,
                "flop_floor_ms": flops_ms,
            })
            print(" | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in rows_out[-1].values()), flush=True)
    return rows_out


def add_speedups(rows):
    """Speed-up of each row over eager and over torch.compile of the same shape/stats/pass."""
    base = {(r["shape"], r["stats"], r["pass"], r["impl"]): r["median_ms"] for r in rows}
    for r in rows:
        key = (r["shape"], r["stats"], r["pass"])
        eager, comp = base.get(key + ("eager",)), base.get(key + ("torch.compile",))
        r["x_vs_eager"] = eager / r["median_ms"] if eager else None
        r["x_vs_compile"] = comp / r["median_ms"] if comp else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="tiny shapes (automatic without CUDA)")
    parser.add_argument("--stats", choices=["reference", "batch", "both"], default="both")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    shapes = SMALL_SHAPES if args.small or not cuda else CUDA_SHAPES
    dtype = getattr(torch, args.dtype)
    modes = ["reference", "batch"] if args.stats == "both" else [args.stats]
    rows = []
    for shape in shapes:
        for mode in modes:
            rows += bench_shape(shape, dtype, mode, not args.no_compile, fused_available=cuda)
            if cuda:
                torch.cuda.empty_cache()
    add_speedups(rows)
    columns = ["shape", "dtype", "stats", "impl", "pass", "median_ms", "peak_extra_MiB", "x_vs_eager",
               "x_vs_compile", "bytes_floor_ms", "flop_floor_ms"]
    table = markdown(rows, columns)
    print(table)
    notes = ("Fused rows need CUDA; on CPU only eager and torch.compile run (the Triton interpreter is "
             "not a performance path).\n" if not cuda else "")
    paths = write_results("rlff", rows, table, notes, small=args.small)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
