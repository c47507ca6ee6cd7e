"""Issue 12's quality experiment: TripleD p = 2 % against a random 2 % for ×4 SR (sr4) and denoising
σ = 25 (denoise25), with the ablations (no latent distillation, no CNN fine-tuning), over 3 seeds,
scored by Y and RGB PSNR on the test sets; plus the complexity scorer's check (held-out Spearman
correlation of the ViT with exact entropy and the seconds each costs).

Every training run builds EDSR-baseline from the run's seed and trains it for the same number of
optimizer steps, batch and patch size; only the training pairs differ (random: the selected real
pairs; TripleD: the selected real pairs + the distilled synthetic ones). TripleD's feature network is
pre-trained on the training images (``irkernels.pretrained``, cached in ``--work/cache``: one per
task and seed, shared by the TripleD variants). Each finished row is kept in ``--work/rows.json``;
a restart skips the rows already there, and the results files are rewritten after every row.

``--val``: tune on a validation split of the training folder instead — the last 32 images by
sorted name are held out (nothing is trained or selected on them) and are the only evaluation set;
the test sets are not touched. Results → ``tripled_val.*``.

GPU run (results → benchmarks/results/tripled.{json,md}; the CPU estimate of its device time is in
docs/tripled.md):
  python benchmarks/bench_tripled.py --data ../shared/data/train/CBSD432 \\
      --test ../shared/data/test/Set5 ../shared/data/test/Set14 --work /tmp/tripled_bench
  python benchmarks/bench_tripled.py --data ../shared/data/train/CBSD432 --val --work /tmp/tripled_val
CPU script check (embedded photos at 1/4 size, tiny budget; → tripled_cpu.{json,md}):
  python benchmarks/bench_tripled.py --small
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import markdown, write_results, y_scores  # noqa: E402
from irkernels.data import PatchConfig, load_paired_folder, make_pairs, make_pairs_from_paired, sample_images  # noqa: E402
from irkernels.data.images import Image, list_images, read_image  # noqa: E402
from irkernels.evaluate import EvalConfig, evaluate  # noqa: E402
from irkernels.models import build_model  # noqa: E402
from irkernels.outputs import atomic_write_json  # noqa: E402
from irkernels.train import TrainConfig, train  # noqa: E402
from irkernels.tripled import FinetuneConfig, LatentConfig, ScorerConfig, TripleDConfig  # noqa: E402
from irkernels.tripled import run as run_tripled  # noqa: E402
from irkernels.tripled.pipeline import complexity_scores, task_types  # noqa: E402
from irkernels.tripled.scoring import entropy_scores, load_scorer, score_images  # noqa: E402
from irkernels.tripled.selection import selection_count  # noqa: E402

METHODS = ("random", "tripled", "tripled-no-latent", "tripled-no-cnn")
VAL_IMAGES = 32


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="training image folder (default: the embedded photos)")
    p.add_argument("--test", nargs="+", help="test set folders (default: a 128² crop of scikit-learn's china photo)")
    p.add_argument("--val", action="store_true", help="evaluate on the last 32 training images (held out) instead")
    p.add_argument("--tasks", nargs="+", default=["sr4", "denoise25"], choices=["sr4", "denoise25"])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--p", type=float, default=0.02, help="keep fraction (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1000, help="training steps per run (the budget)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=96, help="HR training patch side")
    p.add_argument("--pretrain-steps", type=int, default=600, help="feature-network pre-training steps")
    p.add_argument("--scorer-steps", type=int, default=300, help="ViT scorer training steps (scorer check only)")
    p.add_argument("--latent-steps", type=int, default=100)
    p.add_argument("--cnn-steps", type=int, default=200)
    p.add_argument("--syn-size", type=int, default=128)
    p.add_argument("--syn-per-image", type=int, default=4)
    p.add_argument("--work", default="/tmp/irkernels_tripled_bench", help="distilled sets, caches, finished rows")
    p.add_argument("--small", action="store_true", help="tiny CPU-sized budget (automatic without CUDA)")
    args = p.parse_args(argv)
    if args.small or not torch.cuda.is_available():
        args.small = True
        args.steps, args.batch_size, args.patch_size = min(args.steps, 4), 4, 32
        args.pretrain_steps, args.scorer_steps, args.latent_steps, args.cnn_steps = 3, 10, 3, 3
        args.syn_size, args.syn_per_image = 64, 1
        args.p = max(args.p, 0.2)
        args.seeds = args.seeds[:2]
        args.work = args.work + "_small"
    return args


def tripled_config(args, task: str, method: str, seed: int, cache: str) -> TripleDConfig:
    small = {"depth": 2, "embed_dim": 48, "num_heads": 3} if args.small else {}
    return TripleDConfig(
        task=task, p=args.p, syn_size=args.syn_size, syn_per_image=args.syn_per_image,
        pretrain_steps=args.pretrain_steps, pretrain_batch=args.batch_size, cache_dir=cache,
        scorer_cfg=ScorerConfig(model_kwargs=small, steps=args.scorer_steps, seed=seed),
        use_cnn=method != "tripled-no-cnn", use_latent=method != "tripled-no-latent",
        latent=LatentConfig(steps=args.latent_steps, vae_steps=20 if args.small else 2000,
                            vae_crop=min(64, args.syn_size), seed=seed),
        finetune=FinetuneConfig(steps=args.cnn_steps, seed=seed), seed=seed, progress=False)


def small_photo_folder(folder: str) -> str:
    from PIL import Image as PILImage

    os.makedirs(folder, exist_ok=True)
    for im in sample_images():
        h, w = im.pixels.shape[:2]
        PILImage.fromarray(im.pixels).resize((w // 4, h // 4), PILImage.BICUBIC).save(os.path.join(folder, f"{im.name}.png"))
    return folder


def split_folder(data: str, work: str, held: int) -> tuple[str, list[Image]]:
    """``--val``: a folder of links to all but the last ``held`` images (sorted by name) and those
    ``held`` images, loaded."""
    paths = list_images(data)
    if len(paths) <= held:
        raise ValueError(f"--val needs more than {held} images in {data}, found {len(paths)}")
    train_dir = os.path.join(work, "train_split")
    os.makedirs(train_dir, exist_ok=True)
    for path in paths[:-held]:
        link = os.path.join(train_dir, os.path.basename(path))
        if not os.path.exists(link):
            os.symlink(os.path.abspath(path), link)
    val = [Image(os.path.splitext(os.path.basename(p))[0], read_image(p)) for p in paths[-held:]]
    return train_dir, val


def psnr_scores(evaluation: dict) -> dict[str, float]:
    """``y_scores`` plus ``"<set> PSNR-RGB"`` from ``irkernels.evaluate.evaluate``'s result."""
    rgb = {f"{os.path.basename(name.rstrip('/'))} PSNR-RGB": r["mean"]["psnr_rgb"]
           for name, r in evaluation["sets"].items()}
    return {**y_scores(evaluation), **rgb}


def scorer_rows(args, data: str, cache: str) -> list[dict]:
    """The scorer check of ``complexity_scores`` (ViT: training seconds, held-out Spearman against
    exact entropy, scoring seconds) next to exact entropy's seconds, on all training images."""
    items = list_images(data)
    cfg = tripled_config(args, "sr4", "tripled", 0, cache)
    cfg.scorer = "vit"
    cfg.device = "auto"
    t = time.perf_counter()
    _, info = complexity_scores(items, cfg, os.path.join(args.work, "scorer.safetensors"))
    vit_total = time.perf_counter() - t
    scorer = load_scorer(os.path.join(args.work, "scorer.safetensors"))
    t = time.perf_counter()
    score_images(scorer, items, batch_size=64)
    vit_score = time.perf_counter() - t
    t = time.perf_counter()
    entropy_scores(items)
    ent = time.perf_counter() - t
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    return [{"task": "scoring", "method": f"ViT {scorer.backbone_name} ({dev}), {args.scorer_steps} steps",
             "images": len(items), "spearman_heldout": info["spearman_heldout"],
             "train_s": info.get("train_seconds"), "score_s": vit_score, "total_s": vit_total},
            {"task": "scoring", "method": "exact entropy (CPU, 1 process)", "images": len(items),
             "spearman_heldout": 1.0, "score_s": ent, "total_s": ent}]


def mean_rows(rows: list[dict]) -> list[dict]:
    """Per (task, method): the mean and the seeds' standard deviation of every PSNR column."""
    out = []
    keys = sorted({(r["task"], r["method"]) for r in rows if r["task"] != "scoring"}, key=str)
    for task, method in keys:
        group = [r for r in rows if (r["task"], r["method"]) == (task, method)]
        row = {"task": task, "method": method, "seeds": len(group)}
        for col in sorted({c for r in group for c in r if "PSNR" in c}):
            vals = [r[col] for r in group if col in r]
            row[col] = statistics.mean(vals)
            row[f"{col} sd"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    rows_path = os.path.join(args.work, "rows.json")
    rows: list[dict] = json.load(open(rows_path)) if os.path.exists(rows_path) else []
    done = {(r["task"], r["method"], r.get("seed")) for r in rows}
    cache = os.path.join(args.work, "cache")
    if args.small and not args.data:  # the embedded photos at 1/4 size, as files, so the CPU check is quick
        args.data = small_photo_folder(os.path.join(args.work, "photos"))
    if not args.data:
        raise SystemExit("--data is required outside --small")
    data, test_sets = args.data, {}
    if args.val:
        data, val = split_folder(args.data, args.work, 3 if args.small else VAL_IMAGES)
        test_sets = {"val": val}
    elif not args.test:
        china = sample_images(names=["china"])[0]
        test_sets = {"china": [Image("china", china.pixels[150:278, 250:378])]}
    images = [Image(os.path.splitext(os.path.basename(p))[0], read_image(p)) for p in list_images(data)]

    def save_rows() -> None:
        atomic_write_json(rows_path, rows)
        first = ["task", "method", "seed", "seeds", "images", "spearman_heldout", "train_s", "score_s", "total_s",
                 "selected", "patches", "space", "vae_psnr", "kl_initial", "kl_after_cnn", "psnr_vs_input",
                 "prep_s", "fit_s"]
        per_seed = [r for r in rows if r["task"] != "scoring"]
        scoring = [r for r in rows if r["task"] == "scoring"]
        tables = []
        for part in (scoring, mean_rows(per_seed), per_seed):
            present = {c for r in part for c in r}
            cols = [c for c in first if c in present] + sorted(present - set(first))
            tables.append(markdown(part, cols) if part else "")
        table = ("## Scorer check\n\n" + tables[0] + "\n\n## Mean over seeds (sd = seeds' standard deviation)\n\n"
                 + tables[1] + "\n\n## Every run\n\n" + tables[2])
        notes = (f"\nEDSR-baseline, AdamW 3e-4 cosine, L1, {args.steps} steps × batch {args.batch_size}, HR patches "
                 f"{args.patch_size}px (stride = size) — identical for every row; only the training pairs differ. "
                 f"Data: {data}; evaluation: {'the last 32 training images (held out)' if args.val else ', '.join(args.test or ['china (a 128² crop)'])}; "
                 f"PSNR on Y and RGB (border = scale for SR, 0 otherwise). p = {args.p}. TripleD: feature network "
                 f"pre-trained {args.pretrain_steps} steps, {args.latent_steps} latent/pixel steps, {args.cnn_steps} "
                 f"CNN steps, {args.syn_per_image} synthetic {args.syn_size}² crops per selected image.\n")
        if args.small:
            notes += "\nSMALL CPU RUN: a tiny budget to check the script works; the numbers mean nothing.\n"
        print(table)
        print("wrote", *write_results("tripled_val" if args.val else "tripled", rows, table, notes, small=args.small))

    if not any(r["task"] == "scoring" for r in rows):
        rows += scorer_rows(args, data, cache)
        save_rows()

    for task in args.tasks:
        (_, deg), = task_types(task)
        patches = PatchConfig(args.patch_size, args.patch_size)
        eval_cfg = EvalConfig(sets=[] if args.val else (args.test or []), degradation=deg)
        for seed in args.seeds:
            for method in args.methods:
                if (task, method, seed) in done:
                    continue
                t0 = time.perf_counter()
                extra: dict = {}
                if method == "random":
                    k = selection_count(len(images), args.p)
                    pick = np.random.default_rng(seed).choice(len(images), k, replace=False)
                    pairs = make_pairs([images[i] for i in sorted(pick)], deg, patches)
                    extra["selected"] = k
                else:
                    out = os.path.join(args.work, task, f"{method}-seed{seed}")
                    cfg = tripled_config(args, task, method, seed, cache)
                    res = run_tripled(cfg, out, data=data)
                    pairs = make_pairs_from_paired(load_paired_folder(out, cfg.scale), cfg.scale, patches)
                    syn = next((r for r in res.folder.records() if r["unit"] == "synthetic"), {})
                    extra = {"selected": len(res.selected), "space": syn.get("distillation_space", "-"),
                             "vae_psnr": (syn.get("vae") or {}).get("reconstruction_psnr"),
                             "psnr_vs_input": (syn.get("psnr_vs_input") or {}).get("final"),
                             **{f"kl_{s}": syn[s]["kl"] for s in ("initial", "after_cnn") if s in syn}}
                prep_s = time.perf_counter() - t0
                torch.manual_seed(seed)
                model = build_model("edsr-baseline", deg.factor)
                train(model, pairs, TrainConfig(out_dir=os.path.join(args.work, task, f"{method}-seed{seed}", "train"),
                                                steps=args.steps, batch_size=args.batch_size, seed=seed,
                                                ckpt_every=args.steps, progress=False,
                                                log_every=max(1, args.steps // 20)))
                ev = evaluate(model, eval_cfg, test_sets)
                rows.append({"task": task, "method": method, "seed": seed, "patches": len(pairs), "prep_s": prep_s,
                             "fit_s": time.perf_counter() - t0 - prep_s, **extra, **psnr_scores(ev)})
                save_rows()


if __name__ == "__main__":
    main()
