"""TripleD end to end: score → select → latent distillation → CNN fine-tuning → paired folder + report.

Units of work in the run folder (``irkernels.outputs.RunFolder``), each skipped on restart once its
record exists: ``scores`` (every image's score and the selection), ``real-<k>`` (one per selected
real image, written as a full LQ/HQ pair) and ``synthetic`` (the distilled, fine-tuned crops,
written as ``syn_*`` pairs). Inside ``synthetic``, the VAE training, the latent distillation and
the CNN fine-tuning each keep their state in ``OUT/partial/`` when stopped by Ctrl-C or SIGTERM (and
once finished, until the unit is recorded), so a rerun continues from the step it stopped at.
The scorer checkpoint ``OUT/scorer.safetensors`` is reused when its recorded settings match.
Output items: ``real_[<type>_]<name>`` and ``syn_[<type>_]<k>``.

It follows the method contract of ``irkernels.methods``: ``run(cfg, out, data=...)`` →
``TripleDResult``; the settings are in ``config``, the report in ``report``. Each step's run-level
function is in its step's module (``scoring.complexity_scores``, ``latent.trusted_vae``, ...);
training a network on the result is ``training``'s (``train_on_output`` / ``train_dynamic``).
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch

from ..costs import command_plan
from ..data.config import DegradationConfig
from ..data.degrade import degrade
from ..data.images import (Image, PairSet, PatchConfig, hold_out_last, list_images, load_folder, make_pairs, modcrop,
                           quantize, to_float, to_tensor)
from ..data.samples import sample_images
from ..models import build_model, load_checkpoint
from ..ops.ncfd import cf_modulus
from ..outputs import RunFolder, keep_network
from ..seeds import seeded_generator
from ..devices import resolve_device
from ..evaluate import baseline_network
from ..pretrained import PretrainConfig, patch_psnr, pretrained_network
from .config import TASKS, TripleDConfig, check_differentiable, task_types
from .report import write_tripled_report
from .result import TripleDResult
from .features import FeatureTarget, feature_target
from .finetune import distribution_terms, finetune_images
from .items import LazyTensors, item_name, item_size, load_item
from .latent import decode, distill_latents, encode, matching_loss, trusted_vae, vae_factor, vae_subfolder
from .scoring import complexity_scores
from .selection import deal_to_types, ranking, selection_count

log = logging.getLogger(__name__)


def differentiable_degradation(deg: DegradationConfig):
    """``x ↦ degrade(x, deg)`` with a fixed seed, for the CNN's restoration loss (gradients flow
    through bicubic, noise, blur and rain; JPEG goes through PIL and has none)."""
    check_differentiable(deg)
    return lambda x: degrade(x, deg, seeded_generator(deg.seed, "restoration-loss"))


FEATURE_VAL = 0.05  # share of the images held out of the feature network's pre-training, as IDC's teacher_val


# ---------------------------------------------------------------------------------------------
# steps
# ---------------------------------------------------------------------------------------------
def pretrain_pairs(items: Sequence[str] | Sequence[Image], cfg: TripleDConfig) -> PairSet:
    """LQ/HQ pairs of every image under every task type: square HQ patches of side
    ``cfg.pretrain_patch`` (capped by the smallest image, a multiple of the scale), stride = side."""
    images = [load_item(i) for i in items]
    side = min([cfg.pretrain_patch] + [min(im.pixels.shape[:2]) for im in images])
    side -= side % cfg.scale
    if side < cfg.scale:
        raise ValueError(f"the smallest image is smaller than the scale {cfg.scale}: nothing to pre-train on")
    parts = [make_pairs(images, deg, PatchConfig(side, side)) for _, deg in task_types(cfg.task)]
    return PairSet(torch.cat([d.lq for d in parts]), torch.cat([d.hq for d in parts]),
                   [n for d in parts for n in d.sources])


def feature_network(cfg: TripleDConfig, items: Sequence[str] | Sequence[Image]) -> tuple[torch.nn.Module, dict]:
    """The frozen network whose features are matched and a record of where it came from:
    ``cfg.feature_checkpoint``, else ``cfg.feature_model`` trained on ``items`` first
    (``irkernels.pretrained.pretrained_network``, cached and reused when settings and data match).
    Pre-trained here, it is scored where it is made: the last ``FEATURE_VAL`` share of ``items`` by
    name is held out of its training, and its PSNR there is logged and recorded next to the
    baseline's (bicubic, or the degraded input), with a warning when it is below."""
    if cfg.feature_checkpoint:
        torch.manual_seed(cfg.seed)
        net = load_checkpoint(build_model(cfg.feature_model, cfg.scale), cfg.feature_checkpoint)
        info = {"model": cfg.feature_model, "checkpoint": os.path.abspath(cfg.feature_checkpoint)}
    else:
        train_items, val_items = hold_out_last(list(items), math.ceil(FEATURE_VAL * len(items)), item_name)
        pre = PretrainConfig(model=cfg.feature_model, scale=cfg.scale, steps=cfg.pretrain_steps,
                             batch_size=cfg.pretrain_batch, seed=cfg.seed, device=cfg.device, progress=cfg.progress)
        val = pretrain_pairs(val_items, cfg) if val_items else None
        net, info = pretrained_network(pre, pretrain_pairs(train_items, cfg), cfg.cache_dir, val=val)
        if val is not None:
            name, floor = baseline_network(task_types(cfg.task)[0][1])  # one floor for all same-size types
            info = {**info, "val_images": [item_name(i) for i in val_items],
                    "val_baseline": {"name": name, **patch_psnr(floor, val, cfg.scale)}}
            ours, base = info["val"]["psnr_y"], info["val_baseline"]["psnr_y"]
            line = (f"the pre-trained {cfg.feature_model} scores {ours:.2f} dB PSNR-Y ({cfg.task}) on {len(val_items)} "
                    f"held-out image(s), {name} {base:.2f} dB ({ours - base:+.2f} dB)")
            # shown at the default level either way (a score is read where the network is made); below
            # its baseline it needs attention
            log.log(logging.WARNING if ours < base else logging.INFO, "%s%s", line,
                    f": BELOW {name}; give it more --pretrain-steps or a --feature-checkpoint" if ours < base else "")
    return net.eval().requires_grad_(False), info


def synthetic_crops(images: Sequence[Image], types: Sequence[str], size: int, per_image: int,
                    seed: int) -> tuple[torch.Tensor, list[str]]:
    """``per_image`` seeded random ``size``² crops of each image (``ValueError`` if one is smaller)."""
    rng = np.random.default_rng(seed)
    crops, crop_types = [], []
    for im, t in zip(images, types):
        h, w = im.pixels.shape[:2]
        if h < size or w < size:
            raise ValueError(f"image {im.name!r} is {w}x{h}, smaller than the synthetic crop size {size}x{size} "
                             "(choose a smaller --syn-size)")
        for _ in range(per_image):
            y, x = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
            crops.append(to_float(to_tensor(im.pixels[y:y + size, x:x + size])))
            crop_types.append(t)
    return torch.stack(crops), crop_types


def _projection_samples(extractor, images: torch.Tensor, target: FeatureTarget, axis: torch.Tensor,
                        count: int, seed: int, device) -> list[float]:
    """Standardised features of ``images`` projected on ``axis`` (``count`` random positions)."""
    with torch.no_grad():
        feats = torch.cat([extractor.features(images[i:i + 8].to(device)).cpu() for i in range(0, len(images), 8)])
    s = target.samples(feats, count, seeded_generator(seed, "projection"))
    return (s @ axis).tolist()


def distill(crops: torch.Tensor, target_items: Sequence[str] | Sequence[Image], cfg: TripleDConfig,
           feature_items: Sequence[str] | Sequence[Image] | None = None,
           network: tuple[torch.nn.Module, dict] | None = None,
           checkpoint_dir: str | None = None) -> tuple[torch.Tensor, dict]:
    """Latent distillation then CNN fine-tuning of ``crops`` towards ``target_items``' features.

    ``feature_items``: the images the feature network is pre-trained on (default ``target_items``);
    ``network``: the feature network and its record, given instead (no pre-training).
    ``checkpoint_dir``: where the VAE training, the distillation and the fine-tuning keep their
    state (``vae.pt``, ``latent.pt``, ``cnn.pt``) when stopped and once finished, so that the same
    call again continues each from its step and redoes no finished one; the caller deletes them.
    Returns the synthetic images and a record: the feature network's and the VAE's records, losses,
    eq. 4's terms and the matching loss before and after each step, and 1-D feature projections
    (real / before / after the CNN) for the report.
    """
    device = resolve_device(cfg.device)
    extractor, net_info = network or feature_network(cfg, feature_items if feature_items is not None
                                                     else target_items)
    extractor = extractor.eval().requires_grad_(False).to(device)
    targets = LazyTensors(target_items)
    target = feature_target(extractor, targets, cfg.num_freqs, cfg.seed, device, cfg.freq_std, cfg.backend)
    def checkpoint(stage: str) -> str | None:
        return os.path.join(checkpoint_dir, f"{stage}.pt") if checkpoint_dir is not None else None

    record: dict = {"target": cfg.target, "target_images": len(targets), "feature_positions": target.count,
                    "feature_network": net_info, "cf_modulus_median": cf_modulus_median(target),
                    "freq_std": float(target.freqs.std())}

    def measure(images: torch.Tensor) -> dict:
        with torch.no_grad():
            feats = torch.cat([extractor.features(images[i:i + 8].to(device)) for i in range(0, len(images), 8)])
            l2, kl = distribution_terms(feats, target)
            ncfd = matching_loss(images.to(device), extractor, target, cfg.latent.max_samples,
                                 seeded_generator(cfg.seed, "matching"))
        return {"l2": float(l2), "kl": float(kl), "ncfd": float(ncfd)}

    record["initial"] = measure(crops)
    synthetic = crops
    if cfg.use_latent:
        vae, record["vae"] = trusted_vae(targets, cfg, checkpoint("vae"))
        if vae is not None:
            f = math.lcm(vae_factor(vae), cfg.scale)
            if cfg.syn_size % f:
                raise ValueError(f"syn_size {cfg.syn_size} must be a multiple of {f} (the VAE factor and the scale)")
            with torch.no_grad():
                recon = torch.cat([decode(vae, encode(vae, crops[i:i + 8].to(device))).cpu()
                                   for i in range(0, len(crops), 8)])
            record["after_vae_reconstruction"] = measure(recon)
        record["distillation_space"] = "latent" if vae is not None else "pixel"
        synthetic, record["latent_losses"] = distill_latents(crops, vae, extractor, target, cfg.latent,
                                                             checkpoint("latent"))
        record["after_latent"] = measure(synthetic)
    before_cnn = synthetic
    if cfg.use_cnn:
        restoration = None
        if cfg.finetune.restoration_weight > 0:
            (_, deg), = task_types(cfg.task)
            restoration = (extractor, differentiable_degradation(deg))
        synthetic, _, history = finetune_images(synthetic, extractor, target, cfg.finetune, restoration,
                                                checkpoint("cnn"))
        record["cnn_losses"] = history
        record["after_cnn"] = measure(synthetic)
    record["psnr_vs_input"] = {"before_cnn": _mean_psnr(before_cnn, crops), "final": _mean_psnr(synthetic, crops)}
    # Figure 12: project standardised features on the real set's first principal axis.
    with torch.no_grad():
        real = torch.cat([target.samples(extractor.features(targets[i][None].to(device)).cpu(), 4096,
                                         seeded_generator(cfg.seed, "projection-axis", i))
                          for i in range(min(len(targets), 16))])
    axis = torch.linalg.svd(real - real.mean(0), full_matrices=False).Vh[0]
    record["projection"] = {
        "real": (real[torch.randperm(len(real), generator=seeded_generator(cfg.seed, "real-sample"))[:2000]]
                 @ axis).tolist(),
        "before_cnn": _projection_samples(extractor, before_cnn, target, axis, 2000, cfg.seed, device),
        "after_cnn": _projection_samples(extractor, synthetic, target, axis, 2000, cfg.seed, device),
    }
    return synthetic, record


def cf_modulus_median(target: FeatureTarget) -> float:
    """Median over frequencies of the real set's empirical CF modulus ``|Φ(t)|``."""
    return float(cf_modulus(target.cf).double().median())


def _mean_psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    from ..metrics import psnr

    return float(psnr(a.clamp(0, 1), b, data_range=1.0).clamp(max=100).mean())


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
# measured with benchmarks/fresh_install.sh on 2 cores (README): 4 min 33 s, the feature network +0.40 dB over bicubic
CPU_RECIPE = "--task sr2 --feature-model edsr-tiny --pretrain-steps 1000 --vae-steps 0"


def cpu_sized(cfg: TripleDConfig) -> bool:
    """Whether a run is about the CPU recipe's size: a tiny feature network (or a checkpoint given)
    and no VAE to train."""
    small_net = cfg.feature_checkpoint is not None or (cfg.feature_model == "edsr-tiny" and cfg.pretrain_steps <= 2000)
    return small_net and (not cfg.use_latent or cfg.latent.vae is not None or cfg.latent.vae_steps == 0)


def run_settings(cfg: TripleDConfig, data: str | None, images: Sequence[Image] | None = None) -> dict:
    """The run folder's guard: the method, where the images came from, and ``cfg.settings()``."""
    source = ({"data": "given", "images": [im.name for im in images]} if images is not None
              else {"data": os.path.abspath(data) if data else "embedded"})
    return {"method": "tripled", **source, **cfg.settings()}


def check_paths(cfg: TripleDConfig) -> None:
    """The files a run will read, checked before any work (a missing ``--vae`` used to fail only
    after minutes of pre-training): the VAE folder, the scorer and feature-network checkpoints."""
    if cfg.use_latent and cfg.latent.vae:
        vae_subfolder(cfg.latent.vae, cfg.latent.subfolder)
    for flag, path in (("--scorer-checkpoint", cfg.scorer == "vit" and cfg.scorer_checkpoint),
                       ("--feature-checkpoint", cfg.feature_checkpoint)):
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"{flag} {path!r} does not exist")


def check_sizes(items: Sequence[str] | Sequence[Image], cfg: TripleDConfig) -> None:
    """Every input can give a ``syn_size``² synthetic crop, checked from the headers before any work
    (the first selected image too small used to fail only after scoring)."""
    if not (cfg.use_latent or cfg.use_cnn):
        return
    sizes = {item_name(i): item_size(i) for i in items}
    name, (h, w) = min(sizes.items(), key=lambda kv: min(kv[1]))
    if min(h, w) < cfg.syn_size:
        raise ValueError(f"image {name!r} is {w}x{h}, smaller than the synthetic crop size {cfg.syn_size}x{cfg.syn_size}: "
                         f"pass --syn-size {min(h, w) - min(h, w) % cfg.scale} or less, or remove the image")


def stage_plan(cfg: TripleDConfig, train_steps: int = 0, pretrain: bool = True) -> list[tuple[str, int]]:
    """The stages a run of ``cfg`` goes through that loop over steps, with their counts
    (``irkernels.costs.CommandPlan``): the ViT scorer's training, the feature network's pre-training
    (``pretrain=False``: a network given), the tiny VAE's training, the distillation, the CNN
    fine-tuning and ``train_steps`` of training on the output. A stage found done (a reused scorer,
    cached network, finished unit) is over when the next one begins."""
    stages = []
    if cfg.scorer == "vit" and not cfg.scorer_checkpoint:
        stages.append(("scorer", cfg.scorer_cfg.steps))
    if cfg.use_latent or cfg.use_cnn:
        if pretrain and not cfg.feature_checkpoint:
            stages.append(("pre-training", cfg.pretrain_steps))
        if cfg.use_latent:
            if not cfg.latent.vae and cfg.latent.vae_steps:
                stages.append(("VAE", cfg.latent.vae_steps))
            stages.append(("distillation", cfg.latent.steps))
        if cfg.use_cnn:
            stages.append(("fine-tuning", cfg.finetune.steps))
    if train_steps:
        stages.append(("training", train_steps))
    return stages


def run(cfg: TripleDConfig, out: str, *, data: str | None = None, images: list[Image] | None = None,
        overwrite: bool = False, feature_net: tuple[torch.nn.Module, dict] | None = None) -> TripleDResult:
    """Run TripleD on ``images`` / the images of folder ``data`` / the embedded photos into ``out``;
    re-running the same call resumes (finished units are skipped; a VAE training, distillation or
    fine-tuning stopped by Ctrl-C or SIGTERM continues from its step, see ``distill``). ``feature_net`` (network, record)
    is the feature network given instead of ``cfg.feature_checkpoint`` or pre-training (API use, as
    ``compare`` gives its teacher). Its cost estimates cover the whole run (``stage_plan``), or the
    caller's command when it declared one."""
    cfg = cfg.for_run()  # before the settings guard: it records the step seeds that run
    with command_plan("tripled", stage_plan(cfg, pretrain=feature_net is None)):
        return _run(cfg, out, data, images, overwrite, feature_net)


def _run(cfg: TripleDConfig, out: str, data: str | None, images: list[Image] | None, overwrite: bool,
         feature_net: tuple[torch.nn.Module, dict] | None) -> TripleDResult:
    check_paths(cfg)
    if images is not None:
        items: list = list(images)
    else:
        items = list_images(data) if data else sample_images()
        if data:
            load_folder(data, max_images=1)  # a clear error now if nothing is readable
    check_sizes(items, cfg)
    if resolve_device(cfg.device).type == "cpu" and feature_net is None and not cpu_sized(cfg):
        log.warning("on a CPU these settings take long (the defaults: 35 min on 2 cores, 19 of them pre-training "
                    "EDSR-baseline); sized for a CPU (4.5 min): %s", CPU_RECIPE)
    types = task_types(cfg.task)
    folder = RunFolder(out, run_settings(cfg, data, images), cfg.scale, overwrite=overwrite, renamed={"p": "ratio"})
    finished_before = len(folder.done_units())
    names = [item_name(i) for i in items]
    if len(set(names)) != len(names):
        raise ValueError(f"image names in {data!r} must be unique (ignoring the extension)")

    if folder.is_done("scores"):
        rec = next(r for r in folder.records() if r["unit"] == "scores")
        if rec["names"] != names:
            raise ValueError(f"the images in {data or 'the embedded set'} changed since {folder.root} was scored; "
                             "use another --out or --overwrite")
        scores, selected = np.asarray(rec["scores"]), [tuple(s) for s in rec["selected"]]
    else:
        scores, info = complexity_scores(items, cfg, os.path.join(folder.root, "scorer.safetensors"),
                                         folder.partial_path("scorer"))
        type_names = [t for t, _ in types]
        k = selection_count(len(items), cfg.ratio, minimum=min(len(type_names), len(items)))
        selected = deal_to_types(ranking(scores)[:k], type_names)
        folder.finish_unit("scores", {"names": names, "scores": scores, "selected": selected, "scorer": cfg.scorer,
                                      "scorer_info": {k2: v for k2, v in info.items() if k2 != "losses"},
                                      "scorer_losses": info.get("losses")})
    degradations = dict(types)
    multi = len(types) > 1
    selected_images = [load_item(items[i]) for i, _ in selected]

    for k, ((idx, t), im) in enumerate(zip(selected, selected_images)):
        unit = f"real-{k:05d}"
        if folder.is_done(unit):
            continue
        hq = to_float(to_tensor(modcrop(im.pixels, cfg.scale)))
        lq = quantize(degrade(hq, degradations[t], seeded_generator(cfg.seed, "real-lq", idx))).float() / 255
        item = f"real_{t}_{im.name}" if multi else f"real_{im.name}"
        folder.write_pair(item, lq, hq)
        folder.finish_unit(unit, {"item": item, "source": im.name, "type": t, "score": float(scores[idx])})

    crops = None
    if cfg.use_latent or cfg.use_cnn:  # seeded, so a restart redraws the same crops (for the report)
        crops, crop_types = synthetic_crops(selected_images, [t for _, t in selected], cfg.syn_size,
                                            cfg.syn_per_image, cfg.seed)
    if not folder.is_done("synthetic") and crops is not None:
        target_items = [items[i] for i, _ in selected] if cfg.target == "subset" else items
        # each step's state is kept in partial/ when stopped (and once done) until the unit is recorded
        synthetic, record = distill(crops, target_items, cfg, items, feature_net, folder.partial_dir)
        written = []
        for k, (img, t) in enumerate(zip(synthetic, crop_types)):
            item = f"syn_{t}_{k:05d}" if multi else f"syn_{k:05d}"
            lq = quantize(degrade(img, degradations[t], seeded_generator(cfg.seed, "synthetic-lq", k))).float() / 255
            folder.write_pair(item, lq, img)
            written.append(item)
        folder.finish_unit("synthetic", {"items": written, **record})
        folder.clear_partial()

    records = {r["unit"]: r for r in folder.records()}
    syn = records.get("synthetic", {})
    if cfg.portable and syn.get("feature_network"):  # the folder then travels with its feature network
        syn["feature_network"] = keep_network(syn["feature_network"], folder.root)
    vae = {k: v for k, v in syn.get("vae", {}).items() if k not in ("losses", "psnr_history")}
    folder.write_manifest({"task": cfg.task, "types": [t for t, _ in types],
                           "degradations": {t: asdict(d) for t, d in types},
                           "num_images": len(items), "num_selected": len(selected),
                           "scorer_used": records["scores"]["scorer_info"].get("used"),
                           "scorer_spearman_heldout": records["scores"]["scorer_info"].get("spearman_heldout"),
                           "feature_network": syn.get("feature_network"), "vae": vae or None,
                           "distillation_space": syn.get("distillation_space")})
    report = write_tripled_report(folder, records, items, crops)
    return TripleDResult("tripled", folder.root, cfg.scale, len(records), finished_before, folder.manifest_path,
                         report, len(os.listdir(folder.hr_dir)), items, names,
                         np.asarray(records["scores"]["scores"]), selected, folder, crops)


__all__ = ["TASKS", "TripleDConfig", "TripleDResult", "distill", "feature_network", "run",
           "run_settings", "stage_plan", "synthetic_crops", "task_types"]
