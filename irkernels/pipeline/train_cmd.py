"""Train a restoration network on LQ/HQ patches.

Data: --data is a folder of images (LQ made on the fly by --degradation) or a BasicSR paired folder
(HR/ + LR_bicubic/X{scale}/). Without --data, the photos embedded in scikit-image / scikit-learn
are used, so this runs on a fresh machine.

Examples:
  python -m irkernels.pipeline train --model edsr-tiny --scale 2 --steps 1000 --out runs/demo
  python -m irkernels.pipeline train --data CBSD432/ --model edsr-baseline --scale 4 \\
      --patch-size 192 --batch-size 16 --accum-steps 4 --steps 20000 --test Set5/ Set14/
  torchrun --nproc-per-node 8 -m irkernels.pipeline train --data DIV2K/ --batch-size 64
Every network is scored next to the baseline (bicubic for SR, the degraded input otherwise): on
--test, or else on the last --val-images image(s) of --data, held out of training; a network below
it is said so. Outputs in --out: last.pt (exact resume), model.safetensors, log.csv, eval.json
(with --test) or held_out.json.
"""
from __future__ import annotations

import argparse
import logging
import os

from .options import (DEVICE, PROGRESS, Flag, UserError, add_config_flags, add_degradation_arguments,
                      add_renamed_flags, at_least_one, config_fields, degradation_from_args, take_renamed_flags)

log = logging.getLogger(__name__)

PATCH_SIZE = 96  # default HR patch side, lowered to the smallest image's when that is smaller
MIN_AUTO_LR_PATCH = 8  # ... but not below this many LR pixels: smaller images need an explicit --patch-size

NAME = "train"
HELP = "train a restoration network (EDSR, SwinIR, TripleD CNN) on a folder or the embedded photos"


# The flags of TrainConfig's fields (types and defaults from the dataclass)
OPTIONS = {
    "training": [
        Flag("out_dir", "output folder (default: %(default)s)", "out"),
        Flag("steps", "optimizer steps (default: %(default)s)"),
        Flag("batch_size", "patches per optimizer step, split over ranks and --accum-steps (default: %(default)s)"),
        Flag("accum_steps", "gradient accumulation: micro-batches per step (default: %(default)s)"),
        Flag("lr", "AdamW peak learning rate (default: %(default)s)"),
        Flag("min_lr", "cosine schedule's final lr (default: %(default)s)"),
        Flag("weight_decay", "AdamW weight decay (default: %(default)s)"),
        Flag("loss", "pixel loss (default: %(default)s)"),
        Flag("grad_clip", "max gradient norm, 0 = off (default: %(default)s)"),
        Flag("ema_decay", "EMA decay of the weights, 0 = off (e.g. 0.999) (default: %(default)s)"),
        Flag("amp", "disable bf16 autocast (only used on CUDA anyway)", "no-amp"),
        Flag("channels_last", "keep NCHW memory layout", "no-channels-last"),
        Flag("augment", "disable random flips/transposes", "no-augment"),
        Flag("seed", "seed of sampling, augmentation and noise (default: %(default)s)"),
        Flag("ckpt_every", "steps between checkpoints (default: %(default)s)"),
        Flag("log_every", "steps between CSV log rows (default: %(default)s)"),
        Flag("tensorboard", "also log to --out/tb (needs the tensorboard package)"),
        PROGRESS,
        DEVICE,
    ],
}
RENAMED = {"ema": "ema_decay"}  # old flag → new one (works until the next release, with a warning)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..configs import TrainConfig
    from ..models import MODEL_NAMES

    g = p.add_argument_group("data")
    g.add_argument("--data", help="image folder or paired folder (HR/ + LR_bicubic/X{s}/); default: embedded photos")
    g.add_argument("--max-images", type=at_least_one, help="use at most this many images of --data")
    g.add_argument("--patch-size", type=int,
                   help=f"HR patch size in pixels (default: {PATCH_SIZE}, or the smallest image's side rounded down "
                        f"to a multiple of the scale when that is smaller, e.g. for condensed 64 px pairs)")
    g.add_argument("--stride", type=int, help="HR patch stride (default: the patch size)")
    add_degradation_arguments(p)
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=sorted(MODEL_NAMES), default="edsr-baseline", help="network (default: %(default)s)")
    g.add_argument("--init", metavar="CKPT", help="start from these weights (.pth/.pt/.safetensors)")
    add_config_flags(p, TrainConfig(), OPTIONS, {"loss": ("l1", "l2")})
    g = p.add_argument_group("run folder and scoring")
    g.add_argument("--overwrite", action="store_true",
                   help="start afresh, replacing the training run in --out (default: resume it)")
    g.add_argument("--no-resume", action="store_true",
                   help="deprecated: the old name of --overwrite, removed in the next release")
    g.add_argument("--test", nargs="+", metavar="DIR",
                   help="test sets scored after training, next to the baseline (bicubic, or the degraded input)")
    g.add_argument("--val-images", type=int, default=1,
                   help="without --test: hold out the last N images (or pairs) of --data by name, never trained on, "
                        "and score the network next to the baseline on them; 0 = train on all (default: %(default)s)")
    add_renamed_flags(p, RENAMED, {"ema": float})


def patch_size_for(hr_sides: dict[str, int], factor: int) -> int:
    """The default HR patch side: ``PATCH_SIZE``, or the shortest of ``hr_sides`` (image name →
    short side in HR pixels) rounded down to a multiple of ``factor`` when smaller. ``UserError``
    when that is below ``MIN_AUTO_LR_PATCH`` LR pixels."""
    name, side = min(hr_sides.items(), key=lambda kv: kv[1])
    default = PATCH_SIZE // factor * factor
    size = min(default, side // factor * factor)
    if size < MIN_AUTO_LR_PATCH * factor:
        raise UserError(f"image {name!r} is {side} px on its short side, below the {MIN_AUTO_LR_PATCH * factor} px "
                        f"({MIN_AUTO_LR_PATCH} LR px at ×{factor}) train picks a patch size down to; "
                        "remove it or pass --patch-size")
    if size < default:
        log.info("HR patch size %d px: the default %d is larger than the shortest image (%s, %d px); "
                 "--patch-size sets it", size, default, name, side)
    return size


def resumed_state(cfg, overwrite: bool) -> dict | None:
    """The folder's guard (:func:`irkernels.outputs.guard_folder`, as every command's): the state of
    ``cfg.out_dir/last.pt``, which ``train`` resumes, when its training settings are ``cfg``'s
    (``None`` when there is none, or with ``overwrite``: training starts afresh); ``FileExistsError``
    for a folder holding another command's output, or a training run with other settings unless
    ``overwrite``. Checked before the data is loaded."""
    import torch

    from ..outputs import guard_folder

    path = os.path.join(cfg.out_dir, "last.pt")
    state = torch.load(path, map_location="cpu", weights_only=True) if os.path.exists(path) else None
    settings = cfg.settings()
    previous = None if state is None else {k: state.get("config", {}).get(k) for k in settings}
    guard_folder(cfg.out_dir, "train", "a training run", settings, previous, overwrite=overwrite)
    return None if overwrite else state


def check_network(state: dict | None, model, out: str) -> None:
    """``UserError`` when the ``last.pt`` to resume holds another network (other layers or sizes),
    instead of a state-dict error deep in the resume."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if state is not None and {k: tuple(v.shape) for k, v in state["model"].items()} != shapes:
        raise UserError(f"--out {out} holds a training run of another network ({type(model).__name__} with other "
                        "layers or sizes); choose another --out, or pass --overwrite to start afresh there")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data import (PatchConfig, hold_out_last, is_paired_folder, load_folder, load_paired_folder, make_pairs,
                        make_pairs_from_paired, sample_images)
    from dataclasses import replace

    from ..devices import dist_info, resolve_device
    from ..evaluate import (EvalConfig, baseline_network, degraded_pairs, evaluate, evaluate_images, format_table,
                            stored_triples, versus_baseline)
    from ..outputs import atomic_write_json
    from ..models import build_model, load_checkpoint, model_scale
    from ..configs import with_paths
    from ..train import TrainConfig, train

    take_renamed_flags(args, RENAMED)
    if args.no_resume:
        log.warning("--no-resume is deprecated and will be removed in the next release: use --overwrite")
    overwrite = args.overwrite or args.no_resume
    cfg = with_paths(TrainConfig(), {**config_fields(args, OPTIONS), "resume": not overwrite})
    state = resumed_state(cfg, overwrite)
    if args.val_images < 0:
        raise UserError(f"--val-images must be >= 0, got {args.val_images}")
    deg = degradation_from_args(args)
    paired = bool(args.data) and is_paired_folder(args.data)
    if paired:
        if deg.kind != "bicubic":
            raise UserError("a paired folder holds bicubic LR images; use --degradation bicubic")
        pairs = load_paired_folder(args.data, deg.scale)[: args.max_images]
        pairs, held_out = hold_out_last(pairs, 0 if args.test else args.val_images, lambda p: p[1].name)
        sides = {hr.name: min(hr.pixels.shape[:2]) for _, hr in pairs}
    else:
        images = load_folder(args.data, args.max_images) if args.data else sample_images(limit=args.max_images)
        images, held_out = hold_out_last(images, 0 if args.test else args.val_images, lambda im: im.name)
        sides = {im.name: min(im.pixels.shape[:2]) for im in images}
    size = args.patch_size or patch_size_for(sides, deg.factor)
    patches = PatchConfig(size, args.stride or size)
    data = make_pairs_from_paired(pairs, deg.scale, patches) if paired else make_pairs(images, deg, patches)
    torch.manual_seed(args.seed)  # the initial weights, identical on every rank
    model = build_model(args.model, deg.factor)
    if model_scale(model) != deg.factor:
        raise UserError(f"--model {args.model} up-scales ×{model_scale(model)} but the data needs ×{deg.factor}")
    if args.init:
        load_checkpoint(model, args.init)
    check_network(state, model, args.out)
    result = train(model, data, cfg)
    if dist_info()[0] != 0:
        return 0
    print(f"trained {result.steps} steps ({result.start_step} before) on {len(data)} patches: "
          f"last loss {result.losses[-1] if result.losses else float('nan'):.4f}, "
          f"{result.patches_per_s:.1f} patches/s; weights in {result.model_path}")
    baseline, floor = baseline_network(deg)
    if args.test:
        ev = EvalConfig(sets=args.test, degradation=deg, device=args.device, json_path=os.path.join(args.out, "eval.json"))
        res = evaluate(model, ev)
        print(format_table(res))
        scores = (res, evaluate(floor, replace(ev, json_path=None)))
    elif held_out:
        triples = stored_triples(held_out) if paired else degraded_pairs(held_out, deg)
        crop = deg.scale if deg.kind == "bicubic" else 0
        device = resolve_device(args.device)
        scores = tuple({"sets": {"held-out": evaluate_images(run, triples, crop, device)}}
                       for run in (model.eval(), floor))
        atomic_write_json(os.path.join(args.out, "held_out.json"),
                          {"images": [t[0] for t in triples], "network": scores[0], baseline: scores[1]})
        print(f"held out of --data (never trained on): {', '.join(t[0] for t in triples)}")
    else:
        print(f"no held-out image to score against {baseline} (--val-images 0 or too few images): pass --test")
        return 0
    print("\n".join(versus_baseline(args.model, *scores, baseline)))
    return 0

