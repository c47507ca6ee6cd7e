"""Issue 7's experiment: TripleD against the whole set and a random subset at the same training budget,
the ablations (no CNN fine-tuning, no latent distillation, p = 1/2/5/10 %), and the complexity
scorer's throughput next to full-resolution entropy on the CPU.

Every training run builds EDSR-baseline from the same seed and trains it for the same number of
optimizer steps, batch and patch size; only the training pairs differ. Each finished row is kept in
``--work/rows.json`` so the (long) GPU run can be split over several commands: rows already there
are skipped, and the results files are rewritten after every row.

GPU run (results → benchmarks/results/tripled.{json,md}):
  python benchmarks/bench_tripled.py --data ../shared/data/train/CBSD432 \\
      --test ../shared/data/test/Set5 ../shared/data/test/Set14 --steps 3000 --work /tmp/tripled_bench
  (add --tasks denoise25 or --tasks sr4, --methods ... to run a part)
CPU check (tiny budget, embedded photos; → tripled_cpu.{json,md}):
  python benchmarks/bench_tripled.py --small
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import markdown, write_results, y_scores  # noqa: E402
from irkernels.data import PatchConfig, load_folder, load_paired_folder, make_pairs, make_pairs_from_paired, sample_images  # noqa: E402
from irkernels.data.images import list_images  # noqa: E402
from irkernels.evaluate import EvalConfig, evaluate  # noqa: E402
from irkernels.models import build_model  # noqa: E402
from irkernels.outputs import atomic_write_json  # noqa: E402
from irkernels.train import TrainConfig, train  # noqa: E402
from irkernels.tripled import FinetuneConfig, LatentConfig, ScorerConfig, TripleDConfig, run_tripled  # noqa: E402
from irkernels.tripled.pipeline import task_types  # noqa: E402
from irkernels.tripled.scoring import entropy_scores, load_scorer, save_scorer, score_images, spearman, train_scorer  # noqa: E402
from irkernels.tripled.selection import selection_count  # noqa: E402

METHODS = ("whole", "random", "tripled", "tripled-no-cnn", "tripled-no-latent", "tripled-p1", "tripled-p5",
           "tripled-p10")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="training image folder (default: the embedded photos)")
    p.add_argument("--test", nargs="+", help="test set folders (default: scikit-learn's china photo)")
    p.add_argument("--tasks", nargs="+", default=["denoise25", "sr4"], choices=["denoise25", "sr4"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--p", type=float, default=0.02, help="the main keep fraction (default: %(default)s)")
    p.add_argument("--steps", type=int, default=3000, help="training steps per run (the budget)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=96, help="HR training patch side")
    p.add_argument("--scorer-steps", type=int, default=1000)
    p.add_argument("--latent-steps", type=int, default=200)
    p.add_argument("--cnn-steps", type=int, default=300)
    p.add_argument("--syn-size", type=int, default=128)
    p.add_argument("--work", default="/tmp/irkernels_tripled_bench", help="distilled sets, scorer, finished rows")
    p.add_argument("--small", action="store_true", help="tiny CPU-sized budget (automatic without CUDA)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.small or not torch.cuda.is_available():
        args.small = True
        args.steps, args.batch_size = min(args.steps, 5), 4
        args.scorer_steps, args.latent_steps, args.cnn_steps, args.syn_size = 10, 3, 3, 64
        args.patch_size = 32
        args.p = max(args.p, 0.2)
        args.work = args.work + "_small"
    return args


def scorer_config(args) -> ScorerConfig:
    extra = {"depth": 2, "embed_dim": 48, "num_heads": 3} if args.small else {}
    return ScorerConfig(model_kwargs=extra, steps=args.scorer_steps, seed=args.seed, progress=False)


def throughput_rows(args, items, scorer) -> list[dict]:
    """Scoring speed: the ViT on the device (streaming DataLoader from files, and the network alone
    on ready 128×128 batches) and full-resolution entropy in one CPU process."""
    workers = 0 if args.small else min(8, os.cpu_count() or 1)
    source = "files" if isinstance(items[0], str) else "memory"
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    score_images(scorer, items[:64], batch_size=64, num_workers=workers, device=dev)  # warm-up
    t = time.perf_counter()
    vit = score_images(scorer, items, batch_size=64, num_workers=workers, device=dev)
    t_vit = time.perf_counter() - t
    t = time.perf_counter()
    ent = entropy_scores(items)
    t_ent = time.perf_counter() - t
    x = torch.rand(256, 3, scorer.img_size, scorer.img_size, device=dev)
    scorer.to(dev).eval()
    with torch.no_grad():
        for _ in range(3):
            scorer(x)
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        reps = 20 if not args.small else 2
        for _ in range(reps):
            scorer(x)
        if dev == "cuda":
            torch.cuda.synchronize()
    t_net = (time.perf_counter() - t) / reps
    rho = spearman(vit, ent)
    return [
        {"task": "scoring", "method": f"ViT {scorer.backbone_name} from {source} ({dev}, {workers} workers)",
         "images": len(items), "images_per_s": len(items) / t_vit, "spearman_vs_entropy": rho},
        {"task": "scoring", "method": f"ViT network only, 256×{scorer.img_size}² batches ({dev})",
         "images": 256 * reps, "images_per_s": 256 / t_net},
        {"task": "scoring", "method": f"entropy at full resolution (CPU, 1 process, from {source})",
         "images": len(items), "images_per_s": len(items) / t_ent},
    ]


def tripled_config(args, task: str, method: str, scorer_path: str) -> TripleDConfig:
    p = {"tripled-p1": 0.01, "tripled-p5": 0.05, "tripled-p10": 0.10}.get(method, args.p)
    if args.small and method.startswith("tripled-p"):
        p = min(1.0, p * 10)
    return TripleDConfig(task=task, p=p, scorer_checkpoint=scorer_path, syn_size=args.syn_size,
                         use_cnn=method != "tripled-no-cnn", use_latent=method != "tripled-no-latent",
                         latent=LatentConfig(steps=args.latent_steps, vae_steps=20 if args.small else 1000,
                                             vae_crop=min(64, args.syn_size)),
                         finetune=FinetuneConfig(steps=args.cnn_steps), seed=args.seed, progress=False)


def small_photo_folder(folder: str) -> str:
    from PIL import Image as PILImage

    os.makedirs(folder, exist_ok=True)
    for im in sample_images():
        h, w = im.pixels.shape[:2]
        PILImage.fromarray(im.pixels).resize((w // 4, h // 4), PILImage.BICUBIC).save(os.path.join(folder, f"{im.name}.png"))
    return folder


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    rows_path = os.path.join(args.work, "rows.json")
    rows: list[dict] = json.load(open(rows_path)) if os.path.exists(rows_path) else []
    done = {(r["task"], r["method"]) for r in rows}
    if args.small and not args.data:  # the embedded photos at 1/4 size, as files, so the CPU check is quick
        args.data = small_photo_folder(os.path.join(args.work, "photos"))
    items = list_images(args.data) if args.data else sample_images()
    images = load_folder(args.data) if args.data else items
    test_sets = {} if args.test else {"china": sample_images(names=["china"])}

    def save_rows() -> None:
        atomic_write_json(rows_path, rows)
        first = ["task", "method", "images", "images_per_s", "spearman_vs_entropy", "p", "selected", "patches",
                 "kl_initial", "kl_after_latent", "kl_after_cnn", "prep_s", "train_s"]
        present = {c for r in rows for c in r}
        table = markdown(rows, [c for c in first if c in present] + sorted(present - set(first)))
        notes = (f"EDSR-baseline, AdamW 3e-4 cosine, L1, {args.steps} steps × batch {args.batch_size}, HR patches "
                 f"{args.patch_size}px (stride = size) — identical for every row; only the training pairs differ. "
                 f"Data: {args.data or 'embedded photos'}; test: {', '.join(args.test or ['china'])}; Y PSNR/SSIM "
                 "(border = scale for SR, 0 otherwise). TripleD rows train on the selected real pairs plus the "
                 "synthetic pairs; the feature network is a seeded random EDSR-baseline (no checkpoint).\n")
        if args.small:
            notes += "\nSMALL CPU RUN: a tiny budget to check the script works; the numbers mean nothing.\n"
        print(table)
        print("wrote", *write_results("tripled", rows, table, notes, small=args.small))

    scorer_path = os.path.join(args.work, "scorer.safetensors")
    if not os.path.exists(scorer_path):
        scorer, _ = train_scorer(images[:256], scorer_config(args))
        save_scorer(scorer, scorer_path)
    if not any(task == "scoring" for task, _ in done):
        rows += throughput_rows(args, items, load_scorer(scorer_path))
        save_rows()

    for task in args.tasks:
        (_, deg), = task_types(task)
        patches = PatchConfig(args.patch_size, args.patch_size)
        eval_cfg = EvalConfig(sets=args.test or [], degradation=deg)
        for method in args.methods:
            if (task, method) in done:
                continue
            t0 = time.perf_counter()
            extra: dict = {}
            if method == "whole":
                data = make_pairs(images, deg, patches)
            elif method == "random":
                k = selection_count(len(images), args.p)
                pick = np.random.default_rng(args.seed).choice(len(images), k, replace=False)
                data = make_pairs([images[i] for i in sorted(pick)], deg, patches)
            else:
                out = os.path.join(args.work, task, method)
                cfg = tripled_config(args, task, method, scorer_path)
                res = run_tripled(cfg, out, args.data)
                data = make_pairs_from_paired(load_paired_folder(out, cfg.scale), cfg.scale, patches)
                syn = next((r for r in res.folder.records() if r["unit"] == "synthetic"), {})
                extra = {"p": cfg.p, "selected": len(res.selected),
                         **{f"kl_{s}": syn[s]["kl"] for s in ("initial", "after_latent", "after_cnn") if s in syn}}
            prep_s = time.perf_counter() - t0
            torch.manual_seed(args.seed)
            model = build_model("edsr-baseline", deg.factor)
            run_dir = os.path.join(args.work, task, method, "train")
            train(model, data, TrainConfig(out_dir=run_dir, steps=args.steps, batch_size=args.batch_size,
                                                    seed=args.seed, ckpt_every=args.steps, progress=False,
                                                    log_every=max(1, args.steps // 20)))
            ev = evaluate(model, eval_cfg, test_sets)
            row = {"task": task, "method": method, "patches": len(data), "prep_s": prep_s,
                   "train_s": time.perf_counter() - t0 - prep_s, **extra, **y_scores(ev)}
            rows.append(row)
            save_rows()


if __name__ == "__main__":
    main()
