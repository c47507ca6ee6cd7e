"""IDC speed: milliseconds per iteration per instance with all three losses, batching 1/4/16
instances, the fused ops (Triton + CUDA extension) vs the same pipeline on the reference torch ops.

Setting (the paper's): a DIV2K-sized image (2040×1356) at ×4 → 150 LR patches of 64×64
(HR 256, stride 128), r = 10 % → 15 synthetic patches, EDSR-baseline features (c = 64), RLFF k = 3,
C_out = 128, p = 4, T = 4096 frequencies, K = 32 groups; real side refreshed every 50 steps.
An iteration's cost is measured as (time of a run of I₀ + I iterations − time of I₀) / I (each the
fastest of --repeats runs), so it
includes the amortised real-side refresh (RLFF of the real features, k-means, statistics) and the
re-assignment, but not the one-off feature extraction of the real patches. The row
"no real-side cache" refreshes the real side every step (resample_every = 1): the cost of not caching.

  python benchmarks/bench_idc.py            # CUDA → benchmarks/results/idc.{json,md}
  python benchmarks/bench_idc.py --small    # CPU check → benchmarks/results/idc_cpu.{json,md}
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import markdown, write_results  # noqa: E402
from irkernels.data import Image, sample_images  # noqa: E402
from irkernels.idc.condense import Condenser  # noqa: E402
from irkernels.idc.config import IDCConfig  # noqa: E402
from irkernels.patches import make_instances  # noqa: E402
from irkernels.idc.pipeline import num_groups  # noqa: E402
from irkernels.models import build_model  # noqa: E402

DIV2K_SIZE = (2040, 1356)  # width, height of the setting's image


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="instances per step")
    p.add_argument("--iters", type=int, default=100, help="timed iterations I")
    p.add_argument("--ref-iters", type=int, default=20,
                   help="timed iterations of the slow rows (reference ops, no real-side cache)")
    p.add_argument("--lead-iters", type=int, default=5, help="I₀: iterations whose run is subtracted")
    p.add_argument("--repeats", type=int, default=2, help="runs per measurement; the fastest counts")
    p.add_argument("--small", action="store_true", help="CPU-sized setting (automatic without CUDA)")
    args = p.parse_args(argv)
    args.small = args.small or not torch.cuda.is_available()
    if args.small:
        torch.set_num_threads(1)  # tiny ops on a shared CPU: OpenMP barriers of 2 threads stall for ms
        args.batches, args.iters, args.ref_iters, args.lead_iters, args.repeats = [1, 2], 12, 12, 2, 3
    return args


def div2k_like(count: int, small: bool) -> list[Image]:
    """``count`` DIV2K-sized colour images (an embedded photo resized; content does not change the
    cost), distinct names so each instance gets its own seed."""
    from PIL import Image as PILImage

    size = (160, 96) if small else DIV2K_SIZE
    photo = PILImage.fromarray(sample_images(limit=1)[0].pixels).resize(size, PILImage.BICUBIC)
    return [Image(f"img{i:03d}", np.asarray(photo)) for i in range(count)]


def config(small: bool, **kw) -> IDCConfig:
    base = dict(scale=4, ratio=0.1, lr_patch=64, lr_stride=32, warmup=0.0, assigning=0.0, resample_every=50,
                reassign_every=50, rlff_channels=128, num_freqs=4096, num_groups=32, progress=False)
    if small:
        base.update(lr_patch=16, lr_stride=8, rlff_channels=32, num_freqs=256, num_groups=8, resample_every=2,
                    reassign_every=2, device="cpu")
    return IDCConfig(**{**base, **kw})


def time_run(net, cfg: IDCConfig, instances, k: int) -> float:
    device = torch.device("cuda" if torch.cuda.is_available() and not cfg.device == "cpu" else "cpu")
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    Condenser(net, cfg, device).run(instances, k)  # ends with a device → host copy (synchronises)
    return time.perf_counter() - t0


def per_iteration(net, lead_cfg: IDCConfig, full_cfg: IDCConfig, instances, k: int, repeats: int) -> float:
    """Seconds per iteration: (fastest run of I₀+I − fastest run of I₀) / I, the two runs
    interleaved so that interference from other processes hits both alike."""
    lead = full = float("inf")
    for _ in range(repeats):
        lead = min(lead, time_run(net, lead_cfg, instances, k))
        full = min(full, time_run(net, full_cfg, instances, k))
    return (full - lead) / (full_cfg.iters - lead_cfg.iters)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    net = build_model("edsr-tiny" if args.small else "edsr-baseline", 4)
    images = div2k_like(max(args.batches), args.small)
    rows = []
    every = 2 if args.small else 50
    fused = "fused" if torch.cuda.is_available() else "auto backend (= torch ops on a CPU)"
    variants = [(fused, "auto", every), ("reference (torch ops)", "torch", every)]
    if not args.small:
        variants.append(("fused, no real-side cache", "auto", 1))
    for label, backend, resample in variants:
        for b in args.batches:
            if label.startswith("fused, no") and b != max(args.batches):
                continue
            iters = args.ref_iters if backend == "torch" or resample == 1 else args.iters
            probe = config(args.small, backend=backend, iters=1)
            inst = make_instances(images[:b], probe)
            k = num_groups(probe, inst)
            try:
                def cfg(n: int) -> IDCConfig:
                    return config(args.small, backend=backend, iters=n, resample_every=resample)

                time_run(net, cfg(2), inst, k)  # warm-up
                sec = per_iteration(net, cfg(args.lead_iters), cfg(args.lead_iters + iters), inst, k, args.repeats)
            except torch.cuda.OutOfMemoryError:
                rows.append({"pipeline": label, "instances": b, "note": "out of memory"})
                torch.cuda.empty_cache()
                continue
            ms_iter = 1000 * sec
            row = {"pipeline": label, "instances": b, "patches/instance": len(inst[0]),
                   "synthetic/instance": probe.num_synthetic(len(inst[0])), "K": k, "resample_every": resample,
                   "ms/iteration": ms_iter, "ms/instance-iteration": ms_iter / b,
                   "s/instance for 20k iterations": 20 * ms_iter / b}
            if torch.cuda.is_available():
                row["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
                torch.cuda.reset_peak_memory_stats()
            rows.append(row)
            print(row, flush=True)
    for row in rows:
        ref = next((r for r in rows if r["pipeline"].startswith("reference") and r["instances"] == row["instances"]
                    and "ms/iteration" in r), None)
        if ref and "ms/iteration" in row:
            row["speed-up vs reference"] = ref["ms/iteration"] / row["ms/iteration"]
    cols = ["pipeline", "instances", "patches/instance", "synthetic/instance", "K", "resample_every", "ms/iteration",
            "ms/instance-iteration", "s/instance for 20k iterations", "speed-up vs reference", "peak_mem_mib", "note"]
    table = markdown(rows, cols)
    print(table)
    notes = ("Targets (issue 6): ≤ 3 ms per instance-iteration with batching; ≥ 10× the reference-op pipeline. "
             "Per-iteration time = (run of I₀+I iterations − run of I₀)/I, so the one-off real-feature "
             "extraction "
             "is excluded and the real-side refresh every `resample_every` steps is amortised in. EDSR-baseline "
             "weights are random (they do not change the cost); fp32 network.\n")
    if args.small:
        notes += ("\nSMALL CPU RUN (edsr-tiny, tiny patches, a shared busy CPU): checks that the script works; "
                  "not a speed figure — both rows run the same torch ops, their gap is noise.\n")
    print("wrote", *write_results("idc", rows, table, notes, small=args.small))


if __name__ == "__main__":
    main()
