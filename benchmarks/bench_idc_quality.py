"""IDC quality (the paper's Table 1 at our scale): condense a training folder at ×4, r = 10 %, with
IDC and the coreset baselines, train EDSR-baseline with identical settings and budget on each
result (and on the whole set), and report Y-PSNR / SSIM on the test folders.

  python benchmarks/bench_idc_quality.py --data ../shared/data/train/CBSD432 \\
      --test ../shared/data/test/Set5 ../shared/data/test/Set14      # GPU → results/idc_quality.{json,md}
  python benchmarks/bench_idc_quality.py --small                      # CPU check → idc_quality_cpu.*

Budget (GPU, defaults): pre-training the feature extractor/teacher (EDSR-baseline, --pretrain-steps),
IDC at --iters per image with --batch-instances images per step, and one training run of
--train-steps per method. Each phase's wall time is printed and recorded; lower --iters /
--train-steps to fit a smaller budget (about 20 GPU-minutes is the aim: see the notes written
with the results).
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
from irkernels.data import (DegradationConfig, PatchConfig, load_folder, load_paired_folder,  # noqa: E402
                            make_pairs_from_paired, sample_images)
from irkernels.evaluate import EvalConfig, evaluate, format_table  # noqa: E402
from irkernels.idc.config import IDCConfig  # noqa: E402
from irkernels.idc.instances import make_instances  # noqa: E402
from irkernels.idc.pipeline import pretrain, run_pipeline  # noqa: E402
from irkernels.models import build_model  # noqa: E402
from irkernels.train import TrainConfig, resolve_device, train  # noqa: E402

METHODS = ("whole", "random", "herding", "kcenter", "idc")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="training image folder (default: the embedded photos)")
    p.add_argument("--test", nargs="+", help="test folders (default: scikit-learn's two photos)")
    p.add_argument("--out", help="work folder (default: a temporary one)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--ratio", type=float, default=0.1)
    p.add_argument("--lr-patch", type=int, default=32, help="LR patch size of the condensed pairs")
    p.add_argument("--lr-stride", type=int, default=16, help="LR stride of the patch grid")
    p.add_argument("--iters", type=int, default=500, help="IDC iterations per image (the budget knob)")
    p.add_argument("--batch-instances", type=int, default=16)
    p.add_argument("--pretrain-steps", type=int, default=2000, help="feature extractor / teacher training")
    p.add_argument("--train-steps", type=int, default=2000, help="training steps on each condensed set")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-images", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--small", action="store_true", help="tiny CPU budget (automatic without CUDA)")
    args = p.parse_args(argv)
    args.small = args.small or not torch.cuda.is_available()
    if args.small:
        args.lr_patch, args.lr_stride, args.iters, args.pretrain_steps, args.train_steps = 16, 8, 10, 10, 10
        args.batch_size, args.max_images, args.batch_instances = 4, args.max_images or 2, 2
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    work = args.out or tempfile.mkdtemp(prefix="idc-quality-")
    images = load_folder(args.data, args.max_images) if args.data else sample_images(include_sklearn=False,
                                                                                        limit=args.max_images)
    model = "edsr-tiny" if args.small else "edsr-baseline"
    extra = dict(rlff_channels=32, num_freqs=256, num_groups=8) if args.small else {}
    base = IDCConfig(scale=args.scale, ratio=args.ratio, lr_patch=args.lr_patch, lr_stride=args.lr_stride,
                     iters=args.iters, model=model, pretrain_steps=args.pretrain_steps, seed=args.seed,
                     pretrain_batch=args.batch_size,
                     batch_instances=args.batch_instances, progress=False, **extra)
    deg = DegradationConfig("bicubic", scale=args.scale, seed=args.seed)
    test_sets = {} if args.test else {"sklearn-photos": sample_images(names=["china", "flower"],
                                                                      limit=1 if args.small else None)}
    eval_cfg = EvalConfig(sets=args.test or [], degradation=deg)
    timings = {}
    t0 = time.perf_counter()
    net, info = pretrain(base, make_instances(images, base), os.path.join(work, "pretrained"),
                         resolve_device(base.device))
    timings["pretrain_s"] = time.perf_counter() - t0
    ckpt = info["checkpoint"]
    rows = [{"method": "bicubic", **y_scores(evaluate(None, eval_cfg, test_sets))},
            {"method": f"teacher ({model}, all patches, {args.pretrain_steps} steps)",
             **y_scores(evaluate(net, eval_cfg, test_sets))}]
    for method in args.methods:
        cfg = IDCConfig(**{**base.to_dict(), "method": method, "feature_extractor": ckpt, "teacher": ckpt})
        t = time.perf_counter()
        summary = run_pipeline(cfg, os.path.join(work, method), images=images, overwrite=True)
        make_s = time.perf_counter() - t
        hr = args.lr_patch * args.scale
        data = make_pairs_from_paired(load_paired_folder(summary["out"], args.scale), args.scale, PatchConfig(hr, hr))
        torch.manual_seed(args.seed)
        student = build_model(model, args.scale)
        t = time.perf_counter()
        train(student, data, TrainConfig(out_dir=os.path.join(work, f"train-{method}"), steps=args.train_steps,
                                         batch_size=args.batch_size, seed=args.seed, progress=False,
                                         ckpt_every=args.train_steps, resume=False))
        train_s = time.perf_counter() - t
        res = evaluate(student, eval_cfg, test_sets)
        print(f"{method}: {len(data)} pairs\n{format_table(res)}", flush=True)
        rows.append({"method": method, "pairs": len(data), "make_s": make_s, "train_s": train_s, **y_scores(res)})
    score_cols = [c for c in rows[0] if c != "method"]
    table = markdown(rows, ["method", "pairs", "make_s", "train_s", *score_cols])
    print(table)
    notes = (f"{len(images)} training images ({args.data or 'embedded photos'}), ×{args.scale}, r = {args.ratio}, "
             f"LR patches {args.lr_patch} stride {args.lr_stride}. Feature extractor = teacher = {model} trained "
             f"{args.pretrain_steps} steps on all real patches ({timings['pretrain_s']:.0f} s). IDC: {args.iters} "
             f"iterations per image, {args.batch_instances} images per step, other settings the package defaults. "
             f"Every method: {model} trained from the same seed for {args.train_steps} steps, batch "
             f"{args.batch_size}, the substrate's defaults (AdamW 3e-4 cosine, L1). Y-PSNR/SSIM, border = scale.\n")
    if args.small:
        notes += "\nSMALL CPU RUN: a tiny budget to check the script works; the numbers say nothing about quality.\n"
    print("wrote", *write_results("idc_quality", rows, table, notes, small=args.small))


if __name__ == "__main__":
    main()
