"""Evaluate a restoration network (or bicubic up-sampling) on test sets: PSNR/SSIM on RGB and Y.

Each --test folder is a set (Set5/, Set14/, any folder of HQ images; LQ made with --degradation),
or a BasicSR paired folder (HR/ + LR_bicubic/X{scale}/). Without --test, the embedded photos are
scored. Outputs are rounded to uint8; the border crop defaults to the scale. A checkpoint written
by `train` names its network and scale, so --model and --scale may be left out; any other needs
--model (and --scale unless ×4). A network is printed next to its baseline (bicubic, or the
degraded input), with BELOW when it does worse.

The results go to NAME.eval.json beside the checkpoint (NAME: its file name without the
extension), or in --out; without a checkpoint, NAME is the network's name and the folder
runs/eval. The last line says where. An earlier file of that name is kept: eval stops before
scoring unless --overwrite (or another --out) is given.

Examples:
  python -m irkernels.pipeline eval --model bicubic --test Set5/ Set14/      # runs/eval/bicubic.eval.json
  python -m irkernels.pipeline eval --checkpoint runs/train/model.safetensors \\
      --test Set5/ Set14/                                                     # runs/train/model.eval.json
  python -m irkernels.pipeline eval --checkpoint edsr_x4.pth --model edsr-baseline --test Set5/ --out results
"""
from __future__ import annotations

import argparse
import logging
import os

from .options import (DEVICE, Flag, UserError, add_config_flags, add_degradation_arguments, at_least_one,
                      check_writable_folder, config_fields, degradation_from_args)

log = logging.getLogger(__name__)

SR_SCALE = 4  # --scale without a checkpoint that names one
OUT = "runs/eval"  # the results' folder without --out and --checkpoint (never the current directory)
NAME = "eval"
HELP = "score a network or bicubic up-sampling on Set5/Set14/any folder (PSNR/SSIM, RGB and Y)"


# The flags of EvalConfig's fields (its degradation: the degradation flags; its JSON path: from --out, see
# results_path)
OPTIONS = {
    "scoring": [
        Flag("sets", "test set folders (default: the embedded photos)", "test", metavar="DIR"),
        Flag("crop_border", "pixels cropped on each side before scoring (default: the SR scale; 0 for other "
                            "degradations)"),
        DEVICE,
    ],
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..configs import EvalConfig
    from ..models import MODEL_NAMES

    g = p.add_argument_group("what to evaluate")
    g.add_argument("--model", choices=["bicubic", *sorted(MODEL_NAMES)],
                   help="network, or bicubic up-sampling as the baseline (default: the network named in "
                        "--checkpoint's metadata, as `train` writes it; bicubic without --checkpoint)")
    g.add_argument("--checkpoint", help="weights (.pth/.pt/.safetensors; official EDSR/SwinIR files load with --model)")
    g.add_argument("--max-images", type=at_least_one, help="score at most this many embedded photos (without --test)")
    g.add_argument("--out", metavar="DIR", help="folder of the results, NAME.eval.json (NAME: --checkpoint's file "
                                                "name without extension, else the network's) (default: --checkpoint's "
                                                f"folder, else {OUT})")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an earlier NAME.eval.json there (default: stop before scoring, keeping it)")
    g.add_argument("--json", metavar="FILE", help="deprecated: the results file itself; use --out (removed in the next "
                                                  "release)")
    g.add_argument("--seed", type=int, default=0, help="seed of random degradations (default: %(default)s)")
    add_config_flags(p, EvalConfig(), OPTIONS)
    add_degradation_arguments(p)
    # --scale: a checkpoint written by `train` says its scale, so its default is the checkpoint's
    scale = next(a for a in p._actions if a.dest == "scale")
    scale.default = None
    scale.help = f"SR factor for --degradation bicubic (default: --checkpoint's, as `train` writes it; else {SR_SCALE})"


def checkpoint_scale(args: argparse.Namespace) -> int:
    """--scale, else the scale in --checkpoint's metadata, else ``SR_SCALE``; ``UserError`` when
    --scale contradicts the checkpoint (its network cannot up-sample by another factor)."""
    from ..models import read_metadata

    saved = read_metadata(args.checkpoint).get("scale") if args.checkpoint and args.model != "bicubic" else None
    if args.scale is None:
        return int(saved) if saved else SR_SCALE
    if saved and int(saved) != args.scale and args.degradation == "bicubic":
        raise UserError(f"--checkpoint {args.checkpoint!r} holds a ×{saved} network (its metadata says so) but "
                        f"--scale is {args.scale}; leave --scale out or pass --scale {saved}")
    return args.scale


def model_name(args: argparse.Namespace) -> str:
    """--model, else the network named in --checkpoint's metadata; ``UserError`` when a checkpoint
    does not say and --model is not given (scoring bicubic instead would mislead)."""
    from ..models import read_metadata

    if args.model:
        if args.model == "bicubic" and args.checkpoint:
            raise UserError("--checkpoint: bicubic up-sampling has no weights; name the network with --model")
        return args.model
    if not args.checkpoint:
        return "bicubic"
    if not os.path.isfile(args.checkpoint):
        raise UserError(f"--checkpoint {args.checkpoint!r} does not exist")
    name = read_metadata(args.checkpoint).get("model")
    if name is None:
        raise UserError(f"--checkpoint {args.checkpoint!r} does not say which network it holds; pass --model")
    return name


def results_path(args: argparse.Namespace, name: str) -> str:
    """Where the results JSON goes: ``NAME.eval.json`` (NAME: --checkpoint's file name without its
    extension, else the network ``name``) in --out, else beside --checkpoint, else in ``OUT``; the
    deprecated --json names the file itself."""
    if args.json:
        return args.json
    stem = os.path.splitext(os.path.basename(args.checkpoint))[0] if args.checkpoint else name
    folder = args.out or (os.path.dirname(args.checkpoint) if args.checkpoint else OUT)
    return os.path.join(folder, f"{stem}.eval.json")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..configs import with_paths
    from ..data import sample_images
    from ..evaluate import EvalConfig, baseline_network, evaluate, format_table, versus_baseline
    from ..models import build_model, load_checkpoint

    name = model_name(args)
    args.scale = checkpoint_scale(args)
    if args.json:
        log.warning("--json is deprecated and will be removed in the next release: use --out (the results go to "
                    "--out/NAME.eval.json)")
    path = results_path(args, name)
    flag = "--json" if args.json else "--out"
    check_writable_folder(os.path.dirname(path) or ".", flag)
    if os.path.exists(path) and not args.overwrite:  # checked before scoring: an earlier result is never lost unsaid
        raise UserError(f"{flag}: {path} holds an earlier evaluation; pass --overwrite to replace it, or choose "
                        "another --out")
    deg = degradation_from_args(args)
    model = None
    if name != "bicubic":
        model = build_model(name, deg.factor)
        if args.checkpoint:
            load_checkpoint(model, args.checkpoint)
        else:
            print(f"warning: no --checkpoint: {name} has random weights")
    print(f"scoring {name}" + (f" with the weights in {args.checkpoint}" if args.checkpoint else ""))
    cfg = with_paths(EvalConfig(), {**config_fields(args, OPTIONS), "degradation": deg, "json_path": path})
    extra = None if args.test else {"samples": sample_images(limit=args.max_images)}
    scores = evaluate(model, cfg, extra)
    print(format_table(scores))
    if model is not None:  # a network is read next to its baseline, as train and the methods print it
        baseline, floor = baseline_network(deg)
        print("\n".join(versus_baseline(name, scores, evaluate(floor, replace(cfg, json_path=None), extra), baseline)))
    print(f"results written to {path}")
    return 0
