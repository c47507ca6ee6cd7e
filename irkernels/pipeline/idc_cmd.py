"""Condense a folder of images with IDC (Instance Data Condensation), or pick a coreset baseline.

Per image: HR patches (--lr-patch × --scale, stride --lr-stride × --scale), bicubic LR, n = max(1,
round(ratio·N)) synthetic LR patches optimised so that their RLFF features match the real patches'
at the instance, group and pair level; a teacher network up-samples them into HR targets.
Without --feature-checkpoint/--teacher-checkpoint, --feature-model is first trained on the real
patches (cached by settings and data under $IRKERNELS_CACHE/pretrained, or --cache-dir, and reused by
later runs). Output: OUT/HR/, OUT/LR_bicubic/X{s}/ (BasicSR layout: `train --data OUT` reads
it), OUT/manifest.json, OUT/report.html. Re-running the same command resumes (finished images are
skipped); torchrun shards the images across ranks.

Examples:
  python -m irkernels.pipeline idc --data CBSD432/ --scale 4 --ratio 0.1 --iters 2000 --out runs/idc
  python -m irkernels.pipeline idc --data DIV2K_HR/ --feature-checkpoint fe.pth --teacher-checkpoint t.pth \\
      --feature-model swinir-light --batch-instances 16 --out runs/idc-div2k
  python -m irkernels.pipeline idc --method herding --data CBSD432/ --out runs/herding
  torchrun --nproc-per-node 8 -m irkernels.pipeline idc --data DIV2K_HR/ --out runs/idc
"""
from __future__ import annotations

import argparse

from ..idc.config import INITS, LOSS_SCALES, METHOD, METHODS, REGROUPS, IDCConfig
from .options import SCALES, add_renamed_flags, take_renamed_flags

NAME, HELP = METHOD.name, METHOD.help

# (field, flag help); defaults and types come from IDCConfig
OPTIONS = {
    "data": [
        ("scale", "SR factor (default: %(default)s)"),
        ("ratio", "condensation ratio r: n = max(1, round(r·N)) patches per image (default: %(default)s)"),
        ("lr_patch", "LR patch size in pixels; HR patch = this × scale (default: %(default)s)"),
        ("lr_stride", "LR stride of the patch grid (default: %(default)s)"),
    ],
    "condensation (--method idc)": [
        ("init", "synthetic init: real (random real LR patches) or noise (uniform noise) (default: %(default)s)"),
        ("iters", "optimisation iterations per instance (default: %(default)s)"),
        ("lr", "Adam learning rate on the pixels (default: %(default)s)"),
        ("warmup", "fraction of --iters with the instance loss only (default: %(default)s)"),
        ("assigning", "fraction of --iters over which the assigned share of patches grows to 1 (default: %(default)s)"),
        ("reassign_every", "re-assign groups and pairs every this many steps (default: %(default)s)"),
        ("resample_every", "re-draw RLFF rows and frequencies (and re-cluster the real side) every this many "
                           "steps (default: %(default)s)"),
        ("w_ins", "weight of the instance-level loss (default: %(default)s)"),
        ("w_group", "weight of the group-level loss (default: %(default)s)"),
        ("w_pair", "weight of the pair-wise loss (default: %(default)s)"),
        ("loss_scale", "phase-start: scale L_group and L_pair to L_ins where each starts; none: as computed "
                       "(default: %(default)s)"),
        ("num_groups", "k-means groups per instance (capped by the smallest instance) (default: %(default)s)"),
        ("kmeans_iters", "Lloyd iterations of the grouping (default: %(default)s)"),
        ("regroup", "warm: a re-draw's k-means starts from the previous groups; fresh: new k-means++ "
                    "(default: %(default)s)"),
        ("rlff_kernel", "RLFF kernel size k (default: %(default)s)"),
        ("rlff_channels", "RLFF sampled output channels C_out (default: %(default)s)"),
        ("rlff_patch", "RLFF patch size p (default: %(default)s)"),
        ("num_freqs", "frequencies T of the characteristic-function loss (default: %(default)s)"),
        ("freq_std", "std of the frequencies (default: 1/sqrt(rlff-channels))"),
        ("alpha", "amplitude/phase balance of the CF discrepancy (default: %(default)s)"),
        ("seed", "seed of everything random (default: %(default)s)"),
    ],
    "networks": [
        ("feature_model", "feature network to pre-train when no checkpoint is given, and the architecture of "
                          "--feature-checkpoint (default: %(default)s)"),
        ("feature_checkpoint", "checkpoint of the frozen feature network (.pth/.pt/.safetensors)"),
        ("teacher_checkpoint", "checkpoint of the teacher that up-samples the synthetic LR patches"),
        ("teacher_model", "architecture of --teacher-checkpoint (default: --feature-model)"),
        ("pretrain_steps", "steps of the pre-training when a network is missing (default: %(default)s)"),
        ("pretrain_batch", "batch size of that pre-training (per rank) (default: %(default)s)"),
        ("teacher_val", "share of the images (last by name) held out from that pre-training to score it "
                        "(default: %(default)s)"),
        ("teacher_margin", "LR pixels of reflected context around each patch the teacher up-samples "
                           "(default: %(default)s)"),
        ("cache_dir", "folder of the pre-trained networks (default: $IRKERNELS_CACHE/pretrained, "
                      "~/.cache/irkernels/pretrained)"),
    ],
    "execution": [
        ("batch_instances", "instances condensed together per step on one device (default: %(default)s)"),
        ("backend", "ops backend: auto (Triton/CUDA on GPUs), triton or torch (default: %(default)s)"),
        ("device", "auto, cpu, cuda, cuda:1, ... (default: %(default)s)"),
        ("log_every", "steps between loss-curve points (default: %(default)s)"),
    ],
}
SCALES_IDC = tuple(s for s in SCALES if s > 1)  # IDC's teacher up-samples: no ×1


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..models import MODEL_NAMES

    choices = {"init": INITS, "feature_model": sorted(MODEL_NAMES), "teacher_model": sorted(MODEL_NAMES),
               "backend": ("auto", "triton", "torch"), "scale": SCALES_IDC, "loss_scale": LOSS_SCALES,
               "regroup": REGROUPS}
    defaults = IDCConfig()
    p.add_argument("--method", choices=METHODS, default="idc",
                   help="idc, or a baseline that picks real patches at the same ratio (default: %(default)s)")
    p.add_argument("--data", help="folder of images (default: the embedded sample photos)")
    p.add_argument("--max-images", type=int, help="use at most this many images")
    p.add_argument("--out", default="runs/idc", help="output folder (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a folder holding a run with other settings")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm progress bars")
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="run the feature extractor in float32 on CUDA (default: bf16 autocast; CPU is always fp32)")
    for title, options in OPTIONS.items():
        g = p.add_argument_group(title)
        for name, text in options:
            value = getattr(defaults, name)
            kind = {int: int, float: float}.get(type(value), str)
            if name == "freq_std":
                kind = float
            g.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=value, help=text,
                           choices=choices.get(name))
    add_renamed_flags(p, IDCConfig.RENAMED)


def config_from_args(args: argparse.Namespace) -> IDCConfig:
    """The ``IDCConfig`` of the parsed flags."""
    take_renamed_flags(args, IDCConfig.RENAMED)
    fields = {name: getattr(args, name) for options in OPTIONS.values() for name, _ in options}
    return IDCConfig(method=args.method, progress=args.progress, amp=args.amp, **fields)


def run(args: argparse.Namespace) -> int:
    from ..idc.pipeline import run as run_idc

    result = run_idc(config_from_args(args), args.out, data=args.data, max_images=args.max_images,
                     overwrite=args.overwrite)
    print(result.summary())
    return 0
