"""NCFD forward+backward: fused op vs the eager NCFM formula vs torch.compile of it, with floors.

    python benchmarks/bench_ncfd.py            # CUDA: the issue's sizes; CPU: small sizes
    python benchmarks/bench_ncfd.py --small    # small sizes anywhere (smoke run)

Each row times one loss evaluation and the backward to the synthetic samples ``y`` (the real set
``x`` is constant during condensation). ``ours (cached x)`` reuses the real side's ``cf_stats``,
as the IDC loop does while the frequencies are unchanged. The grouped rows time G=32 against a
Python loop over groups, and IDC's 528 groups against the ungrouped op (``vs_ungrouped``). Writes ``benchmarks/results/ncfd.{json,md}``
on CUDA, ``ncfd_cpu.{json,md}`` on CPU.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import device_peaks, markdown, measure, write_results  # noqa: E402
from benchmarks.roofline import floor_times, ncfd_work  # noqa: E402
from irkernels.ops.ncfd import cf_stats, ncfd_loss, ncfd_loss_reference  # noqa: E402

CUDA_SIZES = [(65_536, 6_554), (262_144, 26_214), (618_496, 61_850)]
IDC_GROUPS = 16 * 33  # IDC: 16 instances per batch × (32 groups + the unassigned one)
SMALL_SIZES = [(4_096, 410), (16_384, 1_638)]


def _fwd_bwd(loss_fn, y):
    def step():
        y.grad = None
        loss_fn().backward()
    return step


def _floors(N: int, M: int, T: int, D: int) -> dict:
    """The roofline model's work for one fwd+bwd to y (``benchmarks/roofline.py``: the fast mode's
    3×TF32 phase dots for ⟨t, x⟩ and ⟨t, y⟩, the latter again in the backward, the backward GEMM,
    sin/cos of every argument) and, on a known GPU, the tensor-core and SFU times at peak."""
    work = ncfd_work(N, M, T, D)
    out = {"gflop": work.tf32_flops / 1e9, "sincos_pairs_g": work.sfu_ops / 2e9}
    peaks = device_peaks()
    if peaks:
        times = floor_times(work, peaks)
        out.update(gemm_floor_ms=times["tensor_ms"], sincos_floor_ms=times["sfu_ms"])
    return out


def bench_size(N: int, M: int, T: int, D: int, G: int, use_compile: bool) -> list[dict]:
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(N, D, device=dev, generator=gen) * 0.1
    y = (torch.randn(M, D, device=dev, generator=gen) * 0.1 + 0.01).requires_grad_()
    t = torch.randn(T, D, device=dev, generator=gen)
    sx = cf_stats(x, t)
    variants = {
        "eager NCFM formula": lambda: ncfd_loss_reference(x, y, t),
        "ours fast": lambda: ncfd_loss(x, y, t),
        "ours high": lambda: ncfd_loss(x, y, t, precision="high"),
        "ours highest": lambda: ncfd_loss(x, y, t, precision="highest"),
        "ours fast (cached x)": lambda: ncfd_loss(sx, y, t),
    }
    if use_compile:
        compiled = torch.compile(ncfd_loss_reference)
        variants["torch.compile(eager)"] = lambda: compiled(x, y, t)
    rows, eager_ms = [], None
    for name, fn in variants.items():
        try:
            m = measure(name, _fwd_bwd(fn, y))
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            rows.append({"size": f"{N}x{M}", "variant": name, "median_ms": None, "note": "out of memory"})
            continue
        eager_ms = m.median_ms if name.startswith("eager") else eager_ms
        rows.append({"size": f"{N}x{M}", "variant": name, "median_ms": m.median_ms, "min_ms": m.min_ms,
                     "runs": m.runs, "peak_extra_mib": m.peak_extra_mib,
                     "speedup_vs_eager": eager_ms / m.median_ms if eager_ms else None})
    rows.append({"size": f"{N}x{M}", "variant": "floor", **_floors(N, M, T, D)})

    # Grouped form. vs a Python loop over groups (eager formula) at G groups; and IDC's grouping
    # (16 instances × 33 groups = 528) next to the ungrouped op: the grouped kernels evaluate each
    # sample's sin/cos once whatever G, so the floors are the ungrouped ones (target ≤ 1.3×).
    by_name = {r["variant"]: r.get("median_ms") for r in rows}
    ungrouped_ms = {"full": by_name["ours fast"], "cached x": by_name["ours fast (cached x)"]}
    loop_ms = None
    for groups in (G, IDC_GROUPS):
        xg = torch.randint(0, groups, (N,), device=dev, generator=gen)
        yg = torch.randint(0, groups, (M,), device=dev, generator=gen)
        sxg = cf_stats(x, t, xg, groups)
        grouped = {
            f"grouped G={groups}: ours, one launch": ("full", lambda: ncfd_loss(
                x, y, t, x_groups=xg, y_groups=yg, num_groups=groups, reduction="sum")),
            f"grouped G={groups}: ours (cached x)": ("cached x", lambda: ncfd_loss(
                sxg, y, t, y_groups=yg, reduction="sum")),
        }
        if groups == G:
            grouped = {f"grouped G={G}: loop over groups (eager)": (None, lambda: ncfd_loss_reference(
                x, y, t, x_groups=xg, y_groups=yg, num_groups=G, reduction="sum")), **grouped}
        for name, (base, fn) in grouped.items():
            m = measure(name, _fwd_bwd(fn, y), runs=10)
            loop_ms = m.median_ms if "loop" in name else loop_ms
            rows.append({"size": f"{N}x{M}", "variant": name, "median_ms": m.median_ms, "min_ms": m.min_ms,
                         "runs": m.runs, "peak_extra_mib": m.peak_extra_mib,
                         "speedup_vs_eager": loop_ms / m.median_ms if loop_ms and groups == G else None,
                         "vs_ungrouped": m.median_ms / ungrouped_ms[base] if base and ungrouped_ms[base] else None})
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="small sizes (default without CUDA)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    p.add_argument("--freqs", type=int, default=None, help="T (default 4096 on CUDA, 256 small)")
    p.add_argument("--dim", type=int, default=None, help="D (default 128 on CUDA, 32 small)")
    p.add_argument("--groups", type=int, default=32)
    args = p.parse_args(argv)
    small = args.small or not torch.cuda.is_available()
    sizes = SMALL_SIZES if small else CUDA_SIZES
    T = args.freqs or (256 if small else 4096)
    D = args.dim or (32 if small else 128)
    rows = []
    for N, M in sizes:
        rows += bench_size(N, M, T, D, args.groups, use_compile=not args.no_compile)
        print(markdown([r for r in rows if r["size"] == f"{N}x{M}"],
                       ["size", "variant", "median_ms", "peak_extra_mib", "speedup_vs_eager", "vs_ungrouped"]),
              flush=True)
    cols = ["size", "variant", "median_ms", "min_ms", "peak_extra_mib", "speedup_vs_eager", "vs_ungrouped",
            "gflop", "gemm_floor_ms", "sincos_floor_ms"]
    notes = (f"\nT={T}, D={D}; forward + backward to y; median of up to 30 runs after 5 warm-up (CUDA events).\n"
             "speedup: vs the eager NCFM formula (grouped rows: vs the Python loop over groups).\n"
             f"vs_ungrouped: time / the ungrouped row of the same kind (target ≤ 1.3 at G={IDC_GROUPS}); "
             "the floor row holds for the grouped rows too (same sin/cos and GEMM work).\n")
    paths = write_results("ncfd", rows, markdown(rows, cols), notes, small=args.small)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
