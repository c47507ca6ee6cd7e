"""TripleD's command line: its flag table (``FLAGS``, from which the CLI builds ``python -m
irkernels.pipeline tripled``) and its flags beyond the config's: ``--train-steps`` and the
``TrainSpec`` flags, which train a network on the result after the run. Torch-free."""
from __future__ import annotations

import argparse

from ..configs import with_paths
from ..flags import BACKEND, BACKENDS, DEVICE, PORTABLE, PROGRESS, Flag, FlagTable, add_config_flags, config_fields
from ..models import MODEL_NAMES
from .config import TASKS, TrainSpec, TripleDConfig

ABOUT = """TripleD: distill a folder of clean images into a small LQ/HQ training set (score → select → latent
distillation → CNN fine-tuning), optionally train and evaluate a restoration network on it.

Tasks (how LQ inputs are made): sr2/sr3/sr4 = MATLAB bicubic ×2/×3/×4; denoise25 = Gaussian noise σ=25/255;
deblur = Gaussian blur σ=2 px; derain = synthetic rain (2 % drops, 15 px streaks); jpeg = JPEG q=30;
allinone = denoise25 + deblur + derain + jpeg with the selected images dealt evenly over the four.

Examples:
  python -m irkernels.pipeline tripled --out runs/tripled          # embedded photos, sr4, ratio (p) = 2 %
  python -m irkernels.pipeline tripled --data CBSD432/ --task denoise25 --ratio 0.02 --out runs/dn25 \\
      --train-steps 20000 --test Set5/ Set14/
  python -m irkernels.pipeline tripled --data DIV2K/ --vae sd3-medium/ --scorer-checkpoint scorer.safetensors
Outputs in --out: HR/ + LR_bicubic/X{s}/ (read back by `train --data OUT`), records/, manifest.json,
report.html, scorer.safetensors; train/ and eval.json with --train-steps.
"""
RENAMED = {"p": "ratio"}  # old flag → new one (works until the next release, with a warning)

# The flags of TripleDConfig's fields, by group (types and defaults come from the dataclass; a step's
# field by its path, e.g. latent.steps as --latent-steps).
OPTIONS = {
    "data and task": [
        Flag("task", "restoration task (default: %(default)s)"),
        Flag("ratio", "fraction of images kept (TripleD's p), in (0, 1] (default: %(default)s)"),
        Flag("seed", "seed of every random choice (default: %(default)s)"),
        DEVICE,
        BACKEND,
        PROGRESS,
    ],
    "complexity scorer": [
        Flag("scorer", "entropy: exact full-resolution entropy; vit: a timm network trained on entropy labels, "
                       "used only if its held-out Spearman vs entropy is >= --min-spearman (default: %(default)s)"),
        Flag("scorer_checkpoint", "use this trained scorer (.safetensors from a previous run)"),
        Flag("min_spearman", "held-out Spearman correlation with entropy a ViT scorer needs (default: %(default)s)"),
        Flag("scorer_cfg.backbone", "timm model name, e.g. resnet50, mixer_b16_224 (default: %(default)s)", "backbone"),
        Flag("scorer_cfg.img_size", "scorer input side (default: %(default)s)", "img-size"),
        Flag("scorer_cfg.model_kwargs", 'extra timm arguments as JSON, e.g. \'{"depth": 6}\' (default: none)',
             "backbone-kwargs"),
        Flag("scorer_cfg.steps", "scorer training steps (default: %(default)s)", "scorer-steps"),
        Flag("scorer_cfg.batch_size", "crops per scorer step (default: %(default)s)", "scorer-batch"),
        Flag("scorer_cfg.lr", "scorer AdamW learning rate (default: %(default)s)", "scorer-lr"),
        Flag("scorer_images", "train the scorer on at most this many images (default: %(default)s)"),
        Flag("scorer_cfg.crop_min", "smallest training crop side (default: %(default)s)", "crop-min"),
        Flag("scorer_cfg.crop_max", "largest training crop side (default: %(default)s)", "crop-max"),
        Flag("score_batch", "images per scoring batch (default: %(default)s)"),
        Flag("num_workers", "DataLoader processes reading images for scoring (default: %(default)s)", "workers"),
    ],
    "feature network and synthetic images": [
        Flag("feature_model", "restoration network whose features are matched (default: %(default)s)"),
        Flag("feature_checkpoint", "its trained weights (default: train it on the data first, cached)"),
        Flag("pretrain_steps", "steps of that training without --feature-checkpoint (default: %(default)s)"),
        Flag("pretrain_batch", "batch size of that training (default: %(default)s)"),
        Flag("pretrain_patch", "HQ patch side of that training (default: %(default)s)"),
        Flag("cache_dir", "folder of the pre-trained networks, shared with idc (default: $IRKERNELS_CACHE/pretrained, "
                          "~/.cache/irkernels/pretrained)"),
        PORTABLE,
        Flag("target", "match the selected real images' features or all images' (default: %(default)s)"),
        Flag("num_freqs", "CF frequencies of the NCFD (default: %(default)s)"),
        Flag("freq_std", "std of the frequencies (default: 1/sqrt(feature channels))"),
        Flag("syn_size", "synthetic HQ crop side (default: %(default)s)"),
        Flag("syn_per_image", "synthetic crops per selected image (default: %(default)s)"),
    ],
    "latent distillation": [
        Flag("use_latent", "skip latent distillation (ablation)", "no-latent"),
        Flag("latent.vae", "local diffusers AutoencoderKL folder (e.g. SD3's; default: train a tiny one)", "vae"),
        Flag("latent.vae_min_psnr", "held-out reconstruction PSNR a VAE needs, else pixel-space distillation "
                                    "(default: %(default)s)", "vae-min-psnr"),
        Flag("latent.subfolder", "sub-folder of --vae holding the VAE (default: vae/ when present)", "vae-subfolder"),
        Flag("latent.vae_steps", "tiny-VAE training steps at most (default: %(default)s)", "vae-steps"),
        Flag("latent.vae_crop", "tiny-VAE training crop side (default: %(default)s)", "vae-crop"),
        Flag("latent.steps", "latent optimisation steps (default: %(default)s)", "latent-steps"),
        Flag("latent.lr", "latent Adam learning rate (default: %(default)s)", "latent-lr"),
        Flag("latent.batch_size", "images per latent step (default: %(default)s)", "latent-batch"),
    ],
    "CNN fine-tuning (eq. 4)": [
        Flag("use_cnn", "skip CNN fine-tuning (ablation)", "no-cnn"),
        Flag("finetune.steps", "CNN training steps (default: %(default)s)", "cnn-steps"),
        Flag("finetune.lr", "CNN Adam learning rate (default: %(default)s)", "cnn-lr"),
        Flag("finetune.channels", "CNN width (default: %(default)s)", "cnn-channels"),
        Flag("finetune.pixel_weight", "weight of eq. 4's L1 pixel-fidelity term (default: %(default)s)", "pixel-weight"),
        Flag("finetune.restoration_weight", "weight of the restoration loss (default: %(default)s)",
             "restoration-weight"),
    ],
}
# The flags of TrainSpec's fields: training a network on the result (with --train-steps > 0).
TRAIN_OPTIONS = {
    "training and evaluation on the result": [
        Flag("model", "network to train (default: %(default)s)"),
        Flag("train.batch_size", "patches per optimizer step (default: %(default)s)", "batch-size"),
        Flag("train.accum_steps", "gradient accumulation micro-batches per step (default: %(default)s)", "accum-steps"),
        Flag("patch_size", "HR training patch side (default: %(default)s)"),
        Flag("train.lr", "AdamW peak learning rate, cosine schedule (default: %(default)s)", "lr"),
        Flag("test", "test sets to evaluate after training", metavar="DIR"),
        Flag("dynamic_epochs", "> 0: train on the whole input instead, each of this many epochs on p %% drawn from "
                               "the top q %% (q shrinking to p) (default: %(default)s = off)"),
        Flag("q_start", "dynamic selection's first pool fraction (default: %(default)s)"),
        Flag("q_schedule", "how q shrinks to --ratio over the epochs (default: %(default)s)"),
    ],
}



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train-steps", type=int, default=0, help="train --model on the output this many steps (0 = no)")
    add_config_flags(p, TrainSpec(), TRAIN_OPTIONS, {"model": sorted(MODEL_NAMES), "q_schedule": ("linear", "cosine")})


def train_spec_from_args(args: argparse.Namespace) -> TrainSpec:
    """The ``TrainSpec`` of the parsed flags (``--train-steps`` > 0)."""
    return with_paths(TrainSpec(), {**config_fields(args, TRAIN_OPTIONS), "train.steps": args.train_steps})


def run(args: argparse.Namespace, cfg: TripleDConfig) -> int:
    from ..costs import command_plan
    from .pipeline import stage_plan

    spec = train_spec_from_args(args) if args.train_steps else None  # checked before any work
    # the command's plan: the method's stages and the training on its output, one estimate for all
    with command_plan("tripled", stage_plan(cfg, args.train_steps)):
        return _run(args, cfg, spec)


def _run(args: argparse.Namespace, cfg: TripleDConfig, spec: TrainSpec | None) -> int:
    from .pipeline import run as run_tripled
    from .training import train_dynamic, train_on_output

    result = run_tripled(cfg, args.out, data=args.data, overwrite=args.overwrite)
    print(f"selected {len(result.selected)} of {len(result.names)} images")
    if spec is None:
        print(result.summary())
        return 0
    print(result.summary(next_step=False))
    print((train_dynamic if spec.dynamic_epochs else train_on_output)(result, cfg, spec))
    return 0


FLAGS = FlagTable(
    ABOUT, OPTIONS,
    choices={"task": sorted(TASKS), "backend": BACKENDS, "scorer": ("vit", "entropy"),
             "feature_model": sorted(MODEL_NAMES), "target": ("subset", "all")},
    data="folder of clean images (default: the embedded scikit-image/scikit-learn photos)",
    out="output run folder (default: %(default)s)", overwrite="replace a run folder made with other settings",
    renamed=RENAMED, renamed_types={"p": float}, add_arguments=add_arguments, run=run)
