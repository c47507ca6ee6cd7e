"""Issue 5's experiment: EDSR-baseline ×4 trained for a fixed budget, scored next to bicubic, and the
gradient-accumulation table (TripleD Table 8 at our scale: memory, throughput, PSNR for 1/4/8 steps).

Every accumulation setting trains a fresh network from the same seed for the same number of
optimizer steps with the same effective batch; only the micro-batch (= batch / accum) changes.

GPU run (results → benchmarks/results/train.{json,md}):
  python benchmarks/bench_train.py --data ../shared/data/train/CBSD432 \\
      --test ../shared/data/test/Set5 ../shared/data/test/Set14 --steps 5000
CPU check (tiny budget, embedded photos; → train_cpu.{json,md}):
  python benchmarks/bench_train.py --small
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import markdown, write_results, y_scores  # noqa: E402
from irkernels.data import DegradationConfig, PatchConfig, load_folder, make_pairs, sample_images  # noqa: E402
from irkernels.evaluate import EvalConfig, evaluate, format_table  # noqa: E402
from irkernels.models import edsr_baseline  # noqa: E402
from irkernels.train import TrainConfig, train  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="training image folder (default: the embedded scikit-image photos)")
    p.add_argument("--test", nargs="+", help="test set folders (default: scikit-learn's two photos)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--patch-size", type=int, default=192, help="HR patch size (LR = patch / scale)")
    p.add_argument("--batch-size", type=int, default=16, help="effective batch per optimizer step")
    p.add_argument("--steps", type=int, default=5000, help="optimizer steps per run (the budget)")
    p.add_argument("--accum", type=int, nargs="+", default=[1, 4, 8], help="accumulation settings to compare")
    p.add_argument("--max-images", type=int, help="use at most this many training images")
    p.add_argument("--small", action="store_true", help="tiny CPU-sized budget (automatic without CUDA)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.small or not torch.cuda.is_available():
        args.small = True
        args.patch_size, args.batch_size, args.steps = 48, 8, min(args.steps, 20)
        args.max_images = args.max_images or 3
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    deg = DegradationConfig("bicubic", scale=args.scale, seed=args.seed)
    if args.data:
        images = load_folder(args.data, args.max_images)
    else:
        images = sample_images(include_sklearn=False, limit=args.max_images)
    data = make_pairs(images, deg, PatchConfig(args.patch_size, args.patch_size // 2))
    test_sets = {} if args.test else {"sklearn-photos": sample_images(names=["china", "flower"], limit=1 if args.small else None)}
    eval_cfg = EvalConfig(sets=args.test or [], degradation=deg)
    print(f"{len(images)} training images → {len(data)} patches of {args.patch_size}px (×{args.scale})")

    bicubic = evaluate(None, eval_cfg, test_sets)
    print(format_table(bicubic))
    rows = [{"method": "bicubic", **y_scores(bicubic)}]
    for accum in args.accum:
        if args.batch_size % accum:
            print(f"skipping accum {accum}: batch {args.batch_size} is not divisible")
            continue
        torch.manual_seed(args.seed)
        model = edsr_baseline(args.scale)
        with tempfile.TemporaryDirectory() as out_dir:
            cfg = TrainConfig(out_dir=out_dir, steps=args.steps, batch_size=args.batch_size, accum_steps=accum,
                              seed=args.seed, ckpt_every=args.steps, log_every=max(1, args.steps // 20),
                              progress=False)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            t0 = time.perf_counter()
            result = train(model, data, cfg)
            seconds = time.perf_counter() - t0
        res = evaluate(model, eval_cfg, test_sets)
        print(f"accum {accum}:\n{format_table(res)}")
        rows.append({"method": f"EDSR-baseline accum={accum}", "accum_steps": accum,
                     "micro_batch": args.batch_size // accum, "steps": args.steps, "train_s": seconds,
                     "patches_per_s": result.patches_per_s, "peak_mem_mib": result.max_memory_mib,
                     "final_loss": sum(result.losses[-10:]) / len(result.losses[-10:]), **y_scores(res)})
    score_cols = [c for c in rows[0] if c != "method"]
    columns = ["method", "accum_steps", "micro_batch", "steps", "patches_per_s", "peak_mem_mib", "final_loss",
               *score_cols]
    table = markdown(rows, columns)
    print(table)
    notes = (f"EDSR-baseline ×{args.scale}, AdamW lr 3e-4 cosine, L1, batch {args.batch_size} (effective), "
             f"HR patches {args.patch_size}px stride {args.patch_size // 2} from {len(images)} images "
             f"({args.data or 'embedded scikit-image photos'}), flips/transposes, bf16 autocast + channels_last on "
             f"CUDA. Test: {', '.join(args.test or ['scikit-learn photos'])}; Y (BT.601) PSNR/SSIM, border = scale, "
             "uint8-rounded outputs. patches/s includes warm-up; peak memory = max_memory_allocated during training "
             "(model + optimizer + activations of one micro-batch).\n")
    if args.small:
        notes += "\nSMALL CPU RUN: a tiny budget to check the script works; these numbers mean nothing about quality.\n"
    paths = write_results("train", rows, table, notes, small=args.small)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
