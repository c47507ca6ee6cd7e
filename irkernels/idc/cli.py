"""IDC's command line: its flag table (``FLAGS``, from which the CLI builds ``python -m
irkernels.pipeline idc``) and its one flag beyond the config's, ``--max-images`` (handed to
``run``). Torch-free."""
from __future__ import annotations

import argparse

from ..flags import BACKEND, BACKENDS, DEVICE, PORTABLE, PROGRESS, SCALES, Flag, FlagTable, at_least_one
from ..models import MODEL_NAMES
from .config import INITS, LOSS_SCALES, METHODS, REGROUPS, SCOPES, IDCConfig

ABOUT = """Condense a folder of images with IDC (Instance Data Condensation), or pick a coreset baseline.

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

# The flags of IDCConfig's fields, by group (types and defaults come from the dataclass)
OPTIONS = {
    "method": [
        Flag("method", "idc, or a baseline that picks real patches at the same ratio (default: %(default)s)"),
    ],
    "data": [
        Flag("scale", "SR factor (default: %(default)s)"),
        Flag("ratio", "condensation ratio r: n = max(1, round(r·N)) patches per image (default: %(default)s)"),
        Flag("lr_patch", "LR patch size in pixels; HR patch = this × scale (default: %(default)s)"),
        Flag("lr_stride", "LR stride of the patch grid (default: %(default)s)"),
    ],
    "condensation (--method idc)": [
        Flag("init", "synthetic init: real (random real LR patches), noise (uniform noise) or kcenter (the kcenter "
                 "baseline's pick) (default: %(default)s)"),
        Flag("scope", "image: condense every image alone (the paper); split: the whole folder as one instance, "
                  "its patches matched to every image's (default: %(default)s)"),
        Flag("iters", "optimisation iterations per instance (default: %(default)s)"),
        Flag("lr", "Adam learning rate on the pixels (default: %(default)s)"),
        Flag("warmup", "fraction of --iters with the instance loss only (default: %(default)s)"),
        Flag("assigning", "fraction of --iters over which the assigned share of patches grows to 1 (default: %(default)s)"),
        Flag("reassign_every", "re-assign groups and pairs every this many steps (default: %(default)s)"),
        Flag("resample_every", "re-draw RLFF rows and frequencies (and re-cluster the real side) every this many "
                           "steps (default: %(default)s)"),
        Flag("w_ins", "weight of the instance-level loss (default: %(default)s)"),
        Flag("w_group", "weight of the group-level loss (default: %(default)s)"),
        Flag("w_pair", "weight of the pair-wise loss (default: %(default)s)"),
        Flag("loss_scale", "phase-start: scale L_group and L_pair to L_ins where each starts; none: as computed "
                       "(default: %(default)s)"),
        Flag("num_groups", "k-means groups per instance (capped by the smallest instance) (default: %(default)s)"),
        Flag("kmeans_iters", "Lloyd iterations of the grouping (default: %(default)s)"),
        Flag("regroup", "warm: a re-draw's k-means starts from the previous groups; fresh: new k-means++ "
                    "(default: %(default)s)"),
        Flag("rlff_kernel", "RLFF kernel size k (default: %(default)s)"),
        Flag("rlff_channels", "RLFF sampled output channels C_out (default: %(default)s)"),
        Flag("rlff_patch", "RLFF patch size p (default: %(default)s)"),
        Flag("num_freqs", "frequencies T of the characteristic-function loss (default: %(default)s)"),
        Flag("freq_std", "std of the frequencies (default: 1/sqrt(rlff-channels))"),
        Flag("alpha", "amplitude/phase balance of the CF discrepancy (default: %(default)s)"),
        Flag("seed", "seed of everything random (default: %(default)s)"),
    ],
    "networks": [
        Flag("feature_model", "feature network to pre-train when no checkpoint is given, and the architecture of "
                          "--feature-checkpoint (default: %(default)s)"),
        Flag("feature_checkpoint", "checkpoint of the frozen feature network (.pth/.pt/.safetensors)"),
        Flag("teacher_checkpoint", "checkpoint of the teacher that up-samples the synthetic LR patches"),
        Flag("teacher_model", "architecture of --teacher-checkpoint (default: --feature-model)"),
        Flag("pretrain_steps", "steps of the pre-training when a network is missing (default: %(default)s)"),
        Flag("pretrain_batch", "batch size of that pre-training (per rank) (default: %(default)s)"),
        Flag("teacher_val", "share of the images (last by name) held out from that pre-training to score it "
                        "(default: %(default)s)"),
        Flag("teacher_margin", "LR pixels of reflected context around each patch the teacher up-samples "
                           "(default: %(default)s)"),
        Flag("cache_dir", "folder of the pre-trained networks (default: $IRKERNELS_CACHE/pretrained, "
                      "~/.cache/irkernels/pretrained)"),
        PORTABLE,
    ],
    "execution": [
        Flag("batch_instances", "instances condensed together per step on one device (default: %(default)s)"),
        BACKEND,
        DEVICE,
        Flag("log_every", "steps between loss-curve points (default: %(default)s)"),
        Flag("amp", "run the feature extractor in float32 on CUDA (default: bf16 autocast; CPU is always fp32)", "no-amp"),
        PROGRESS,
    ],
}
SCALES_IDC = tuple(s for s in SCALES if s > 1)  # IDC's teacher up-samples: no ×1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-images", type=at_least_one, help="use at most this many images")


FLAGS = FlagTable(
    ABOUT, OPTIONS,
    choices={"method": METHODS, "init": INITS, "feature_model": sorted(MODEL_NAMES), "teacher_model": sorted(MODEL_NAMES),
             "backend": BACKENDS, "scale": SCALES_IDC, "loss_scale": LOSS_SCALES, "regroup": REGROUPS,
             "scope": SCOPES},
    renamed=IDCConfig.RENAMED, add_arguments=add_arguments, keywords=("max_images",))
