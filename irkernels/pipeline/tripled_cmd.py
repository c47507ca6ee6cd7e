"""TripleD: distill a folder of clean images into a small LQ/HQ training set (score → select → latent
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
from __future__ import annotations

import argparse
import json

from ..tripled.config import METHOD
from .options import add_renamed_flags, take_renamed_flags

NAME, HELP = METHOD.name, METHOD.help
RENAMED = {"p": "ratio"}  # old flag → new one (works until the next release, with a warning)


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..models import MODEL_NAMES
    from ..tripled.config import TASKS, FinetuneConfig, LatentConfig, ScorerConfig, TrainSpec, TripleDConfig

    d, s, lat, ft = TripleDConfig(), ScorerConfig(), LatentConfig(), FinetuneConfig()
    g = p.add_argument_group("data and task")
    g.add_argument("--data", help="folder of clean images (default: the embedded scikit-image/scikit-learn photos)")
    g.add_argument("--task", choices=sorted(TASKS), default=d.task, help="restoration task (default: %(default)s)")
    g.add_argument("--ratio", type=float, default=d.ratio,
                   help="fraction of images kept (TripleD's p), in (0, 1] (default: %(default)s)")

    g.add_argument("--out", default="runs/tripled", help="output run folder (default: %(default)s)")
    g.add_argument("--overwrite", action="store_true", help="replace a run folder made with other settings")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of every random choice (default: %(default)s)")
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, ... (default: %(default)s)")
    g.add_argument("--backend", choices=("auto", "triton", "torch"), default=d.backend,
                   help="ops backend of the feature matching: auto (Triton on GPUs), triton or torch, as idc's "
                        "(default: %(default)s)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm progress bars")
    g = p.add_argument_group("complexity scorer")
    g.add_argument("--scorer", choices=("vit", "entropy"), default=d.scorer,
                   help="entropy: exact full-resolution entropy; vit: a timm network trained on entropy labels, "
                        "used only if its held-out Spearman vs entropy is >= 0.9 (default: %(default)s)")
    g.add_argument("--scorer-checkpoint", help="use this trained scorer (.safetensors from a previous run)")
    g.add_argument("--backbone", default=s.backbone,
                   help="timm model name, e.g. resnet50, mixer_b16_224 (default: %(default)s)")
    g.add_argument("--img-size", type=int, default=s.img_size, help="scorer input side (default: %(default)s)")
    g.add_argument("--backbone-kwargs", type=_json_dict, default={},
                   help='extra timm arguments as JSON, e.g. \'{"depth": 6}\' (default: none)')
    g.add_argument("--scorer-steps", type=int, default=s.steps, help="scorer training steps (default: %(default)s)")
    g.add_argument("--scorer-batch", type=int, default=s.batch_size, help="crops per scorer step (default: %(default)s)")
    g.add_argument("--scorer-lr", type=float, default=s.lr, help="scorer AdamW learning rate (default: %(default)s)")
    g.add_argument("--scorer-images", type=int, default=d.scorer_images,
                   help="train the scorer on at most this many images (default: %(default)s)")
    g.add_argument("--crop-min", type=int, default=s.crop_min, help="smallest training crop side (default: %(default)s)")
    g.add_argument("--crop-max", type=int, default=s.crop_max, help="largest training crop side (default: %(default)s)")
    g.add_argument("--score-batch", type=int, default=d.score_batch, help="images per scoring batch (default: %(default)s)")
    g.add_argument("--workers", type=int, default=d.num_workers,
                   help="DataLoader processes reading images for scoring (default: %(default)s)")
    g = p.add_argument_group("feature network and synthetic images")
    g.add_argument("--feature-model", choices=sorted(MODEL_NAMES), default=d.feature_model,
                   help="restoration network whose features are matched (default: %(default)s)")
    g.add_argument("--feature-checkpoint", help="its trained weights (default: train it on the data first, cached)")
    g.add_argument("--pretrain-steps", type=int, default=d.pretrain_steps,
                   help="steps of that training without --feature-checkpoint (default: %(default)s)")
    g.add_argument("--target", choices=("subset", "all"), default=d.target,
                   help="match the selected real images' features or all images' (default: %(default)s)")
    g.add_argument("--num-freqs", type=int, default=d.num_freqs, help="CF frequencies of the NCFD (default: %(default)s)")
    g.add_argument("--syn-size", type=int, default=d.syn_size, help="synthetic HQ crop side (default: %(default)s)")
    g.add_argument("--syn-per-image", type=int, default=d.syn_per_image,
                   help="synthetic crops per selected image (default: %(default)s)")
    g = p.add_argument_group("latent distillation")
    g.add_argument("--no-latent", dest="use_latent", action="store_false", help="skip latent distillation (ablation)")
    g.add_argument("--vae", help="local diffusers AutoencoderKL folder (e.g. SD3's; default: train a tiny one)")
    g.add_argument("--vae-min-psnr", type=float, default=lat.vae_min_psnr,
                   help="held-out reconstruction PSNR a VAE needs, else pixel-space distillation (default: %(default)s)")
    g.add_argument("--vae-subfolder", help="sub-folder of --vae holding the VAE (default: vae/ when present)")
    g.add_argument("--vae-steps", type=int, default=lat.vae_steps, help="tiny-VAE training steps at most (default: %(default)s)")
    g.add_argument("--vae-crop", type=int, default=lat.vae_crop, help="tiny-VAE training crop side (default: %(default)s)")
    g.add_argument("--latent-steps", type=int, default=lat.steps, help="latent optimisation steps (default: %(default)s)")
    g.add_argument("--latent-lr", type=float, default=lat.lr, help="latent Adam learning rate (default: %(default)s)")
    g.add_argument("--latent-batch", type=int, default=lat.batch_size, help="images per latent step (default: %(default)s)")
    g = p.add_argument_group("CNN fine-tuning (eq. 4)")
    g.add_argument("--no-cnn", dest="use_cnn", action="store_false", help="skip CNN fine-tuning (ablation)")
    g.add_argument("--cnn-steps", type=int, default=ft.steps, help="CNN training steps (default: %(default)s)")
    g.add_argument("--cnn-lr", type=float, default=ft.lr, help="CNN Adam learning rate (default: %(default)s)")
    g.add_argument("--cnn-channels", type=int, default=ft.channels, help="CNN width (default: %(default)s)")
    g.add_argument("--pixel-weight", type=float, default=ft.pixel_weight,
                   help="weight of eq. 4's L1 pixel-fidelity term (default: %(default)s)")
    g.add_argument("--restoration-weight", type=float, default=ft.restoration_weight,
                   help="weight of the restoration loss (default: %(default)s)")
    g = p.add_argument_group("training and evaluation on the result")
    t = TrainSpec()
    tc = t.train
    g.add_argument("--train-steps", type=int, default=0, help="train --model on the output this many steps (0 = no)")
    g.add_argument("--model", choices=sorted(MODEL_NAMES), default=t.model, help="network to train (default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=tc.batch_size, help="patches per optimizer step (default: %(default)s)")
    g.add_argument("--accum-steps", type=int, default=tc.accum_steps,
                   help="gradient accumulation micro-batches per step (default: %(default)s)")
    g.add_argument("--patch-size", type=int, default=t.patch_size, help="HR training patch side (default: %(default)s)")
    g.add_argument("--lr", type=float, default=tc.lr, help="AdamW peak learning rate, cosine schedule (default: %(default)s)")
    g.add_argument("--test", nargs="+", default=[], metavar="DIR", help="test sets to evaluate after training")
    g.add_argument("--dynamic-epochs", type=int, default=t.dynamic_epochs,
                   help="> 0: train on the whole input instead, each of this many epochs on p %% drawn from the "
                        "top q %% (q shrinking to p) (default: %(default)s = off)")
    g.add_argument("--q-start", type=float, default=t.q_start, help="dynamic selection's first pool fraction (default: %(default)s)")
    g.add_argument("--q-schedule", choices=("linear", "cosine"), default=t.q_schedule,
                   help="how q shrinks to --ratio over the epochs (default: %(default)s)")
    add_renamed_flags(p, RENAMED, {"p": float})


def config_from_args(args: argparse.Namespace):
    """The ``TripleDConfig`` of the parsed flags."""
    from ..tripled.config import FinetuneConfig, LatentConfig, ScorerConfig, TripleDConfig

    scorer = ScorerConfig(backbone=args.backbone, img_size=args.img_size, model_kwargs=args.backbone_kwargs,
                          steps=args.scorer_steps, batch_size=args.scorer_batch, lr=args.scorer_lr,
                          crop_min=args.crop_min, crop_max=args.crop_max, seed=args.seed)
    latent = LatentConfig(vae=args.vae, subfolder=args.vae_subfolder, vae_steps=args.vae_steps, vae_crop=args.vae_crop,
                          vae_min_psnr=args.vae_min_psnr,
                          steps=args.latent_steps, lr=args.latent_lr, batch_size=args.latent_batch, seed=args.seed)
    finetune = FinetuneConfig(steps=args.cnn_steps, lr=args.cnn_lr, channels=args.cnn_channels,
                              pixel_weight=args.pixel_weight, restoration_weight=args.restoration_weight, seed=args.seed)
    take_renamed_flags(args, RENAMED)
    return TripleDConfig(task=args.task, ratio=args.ratio, backend=args.backend, scorer=args.scorer, scorer_checkpoint=args.scorer_checkpoint,
                         scorer_cfg=scorer, scorer_images=args.scorer_images, score_batch=args.score_batch,
                         num_workers=args.workers, feature_model=args.feature_model,
                         feature_checkpoint=args.feature_checkpoint, pretrain_steps=args.pretrain_steps,
                         target=args.target, num_freqs=args.num_freqs,
                         syn_size=args.syn_size, syn_per_image=args.syn_per_image, use_latent=args.use_latent,
                         latent=latent, use_cnn=args.use_cnn, finetune=finetune, seed=args.seed, device=args.device,
                         progress=args.progress)


def run(args: argparse.Namespace) -> int:
    from ..configs import TrainConfig
    from ..tripled.config import TrainSpec
    from ..tripled.pipeline import run as run_tripled
    from ..tripled.training import train_dynamic, train_on_output

    cfg = config_from_args(args)
    result = run_tripled(cfg, args.out, data=args.data, overwrite=args.overwrite)
    print(f"selected {len(result.selected)} of {len(result.names)} images")
    if not args.train_steps:
        print(result.summary())
        return 0
    spec = TrainSpec(train=TrainConfig(steps=args.train_steps, batch_size=args.batch_size, accum_steps=args.accum_steps,
                                       lr=args.lr),
                     model=args.model, patch_size=args.patch_size, test=args.test, dynamic_epochs=args.dynamic_epochs,
                     q_start=args.q_start, q_schedule=args.q_schedule)
    print(result.summary(next_step=False))
    print((train_dynamic if spec.dynamic_epochs else train_on_output)(result, cfg, spec))
    return 0
