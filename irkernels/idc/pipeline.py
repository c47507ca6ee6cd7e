"""IDC end to end: images → instances → networks → condensation (or a baseline) → run folder.

``run(cfg, out, data=...)`` is what ``python -m irkernels.pipeline idc`` calls (the method template of
:mod:`irkernels.methods`; it returns an :class:`IDCResult`). Under
``torchrun`` every rank takes the instances ``rank, rank + W, …`` (of those not finished yet), writes
its own finished instances, and rank 0 writes ``manifest.json`` and ``report.html`` after a barrier.
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data import Image, PairSet, hold_out_last, load_folder, quantize, sample_images
from ..devices import barrier, dist_info, join_process_group, resolve_device
from ..evaluate import Baseline
from ..methods import RunResult
from ..models import load_checkpoint
from ..ops.utils import cdiv
from ..outputs import RunFolder, keep_network
from ..resume import key_name
from ..pretrained import PretrainConfig, build_checked, patch_psnr, pretrained_network
from ..costs import CostEstimate, command_plan
from ..patches import Instance, make_instances, merge_instances, pick_patches
from ..patches import relabel as teacher_targets
from .condense import LOSS_NAMES, CondenseResult, Condenser
from .config import FEATURE_METHODS, TEACHER_METHODS, IDCConfig

log = logging.getLogger(__name__)


@dataclass
class Networks:
    """The frozen feature extractor (``features()``) and the teacher that makes the HR targets;
    ``info`` says where they came from (recorded in the manifest)."""

    feature_extractor: nn.Module | None = None
    teacher: nn.Module | None = None
    info: dict = field(default_factory=dict)


@dataclass
class IDCResult(RunResult):
    """:class:`irkernels.methods.RunResult` plus ``groups``: the k-means groups per instance."""

    groups: int = 0


def teacher_split(instances: list[Instance], val_share: float) -> tuple[list[Instance], list[Instance]]:
    """(train, validation) instances of the pre-training: the last ``ceil(val_share·n)`` by name are
    held out (none when ``val_share`` is 0 or there is only one image)."""
    return hold_out_last(instances, math.ceil(val_share * len(instances)), lambda i: i.name)


def _pairs(instances: list[Instance]) -> PairSet:
    return PairSet(torch.cat([i.lr for i in instances]), torch.cat([i.hr for i in instances]))


def prepare_networks(cfg: IDCConfig, instances: list[Instance], device: torch.device) -> Networks:
    """Load the checkpoints given; when one is needed and not given, ``cfg.feature_model`` trained on the
    real patches of the training split (``pretrained_network``: cached by settings + data, so a
    restart, another run or another method on the same data reuses it), scored on the held-out
    split (``teacher_split``)."""
    need_fe, need_teacher = _needs(cfg)
    nets = Networks()
    if need_fe and cfg.feature_checkpoint:
        nets.feature_extractor = load_checkpoint(build_checked(cfg.feature_model, cfg.scale), cfg.feature_checkpoint)
        nets.info["feature_extractor"] = {"model": cfg.feature_model, "checkpoint": os.path.abspath(cfg.feature_checkpoint)}
    if need_teacher and cfg.teacher_checkpoint:
        name = cfg.teacher_model or cfg.feature_model
        nets.teacher = load_checkpoint(build_checked(name, cfg.scale), cfg.teacher_checkpoint)
        nets.info["teacher"] = {"model": name, "checkpoint": os.path.abspath(cfg.teacher_checkpoint)}
    if (need_fe and nets.feature_extractor is None) or (need_teacher and nets.teacher is None):
        train_part, val_part = teacher_split(instances, cfg.teacher_val)
        pre = PretrainConfig(model=cfg.feature_model, scale=cfg.scale, steps=cfg.pretrain_steps, batch_size=cfg.pretrain_batch,
                             seed=cfg.seed, device=cfg.device, progress=cfg.progress)
        val = _pairs(val_part) if val_part else None
        net, info = pretrained_network(pre, _pairs(train_part), cfg.cache_dir, val=val)
        info = {**info, "train_images": len(train_part), "val_images": [i.name for i in val_part]}
        if val is not None:  # the baseline the held-out PSNR is read against: bicubic on the same patches
            info["val_bicubic"] = patch_psnr(Baseline(cfg.scale), val, cfg.scale)
            ours, floor = info["val"]["psnr_y"], info["val_bicubic"]["psnr_y"]
            line = (f"the pre-trained {cfg.feature_model} scores {ours:.2f} dB PSNR-Y on {len(val_part)} held-out image(s), "
                    f"bicubic {floor:.2f} dB ({ours - floor:+.2f} dB)")
            # shown at the default level either way (a score is read where the network is made); below
            # bicubic it needs attention: its HR targets would be worse than bicubic's
            log.log(logging.WARNING if ours < floor else logging.INFO, "%s%s", line,
                    ": BELOW bicubic; give it more --pretrain-steps or a trained --teacher-checkpoint"
                    if ours < floor else "")
        if need_fe and nets.feature_extractor is None:
            nets.feature_extractor, nets.info["feature_extractor"] = net, info
        if need_teacher and nets.teacher is None:
            nets.teacher, nets.info["teacher"] = net, info
    return nets


def _needs(cfg: IDCConfig) -> tuple[bool, bool]:
    """Whether ``cfg.method`` needs a feature extractor, a teacher."""
    return cfg.method in FEATURE_METHODS, cfg.method in TEACHER_METHODS


def stage_plan(cfg: IDCConfig, pending: int, pretrain: bool = True) -> list[tuple[str, int]]:
    """The stages of a run that loop over steps, with their counts (``irkernels.costs.CommandPlan``):
    the pre-training of the network a checkpoint does not give (``pretrain=False``: networks given;
    a cached one is skipped when the condensation begins), then the condensation of the ``pending``
    instances (``cfg.iters`` per batch of ``cfg.batch_instances``). A baseline's pick has no steps."""
    need_fe, need_teacher = _needs(cfg)
    stages = []
    if pretrain and ((need_fe and not cfg.feature_checkpoint) or (need_teacher and not cfg.teacher_checkpoint)):
        stages.append(("pre-training", cfg.pretrain_steps))
    if cfg.method == "idc" and pending:
        stages.append(("condensation", cdiv(pending, cfg.batch_instances) * cfg.iters))
    return stages


def num_groups(cfg: IDCConfig, instances: list[Instance]) -> int:
    """Groups per instance: ``cfg.num_groups``, capped by the smallest instance's RLFF patch count
    over the WHOLE run (not the batch or shard), so every instance sees the same K wherever it runs."""
    tiles = cdiv(cfg.lr_patch, cfg.rlff_patch) ** 2
    return max(1, min(cfg.num_groups, min(len(i) for i in instances) * tiles))


def _patch(inst: Instance, i: int, cfg: IDCConfig) -> dict:
    """Where real patch ``i`` of ``inst`` lies: HR coordinates, size, and its image when the
    instance spans several (``scope="split"``)."""
    where = {"y": inst.origins[i][0], "x": inst.origins[i][1], "size": cfg.hr_patch}
    return where if inst.sources is None else {"image": inst.sources[i], **where}


def _items(inst: Instance, n: int) -> list[str]:
    return [f"{inst.name}_{j:03d}" for j in range(n)]


def _curve(history: torch.Tensor, every: int) -> dict:
    steps = list(range(every - 1, len(history), every))
    if history.shape[0] and (not steps or steps[-1] != len(history) - 1):
        steps.append(len(history) - 1)
    out = {"step": [s + 1 for s in steps]}
    for j, name in enumerate(LOSS_NAMES):
        out[name] = [float(history[s, j]) for s in steps]
    return out


def write_condensed(run: RunFolder, inst: Instance, res: CondenseResult, teacher: nn.Module, cfg: IDCConfig,
                    device: torch.device, batch_instances: int, rank: int = 0) -> None:
    """Quantise the synthetic LR patches (as stored), let the teacher up-sample them, write, record.

    ``inst`` was condensed together with ``batch_instances - 1`` others in one ``Condenser.run``
    call: the record's ``seconds`` is the instance's share of that call (``res.seconds``),
    ``batch_seconds`` the whole call."""
    lr = quantize(res.synthetic)
    hr = relabel(teacher, lr, cfg, device)
    items = _items(inst, len(lr))
    for item, a, b in zip(items, lr, hr):
        run.write_pair(item, a.float() / 255, b.float() / 255)
    final = {name: float(res.history[-1, j]) for j, name in enumerate(LOSS_NAMES)} if len(res.history) else {}
    run.finish_unit(inst.name, {
        "source": inst.name, "method": "idc", "rank": rank, "num_real": len(inst), "num_pairs": len(items),
        "items": items, "init_index": res.init_index,
        "init_patches": None if res.init_index is None else [_patch(inst, i, cfg) for i in res.init_index],
        "final_losses": final, "loss_curve": _curve(res.history, cfg.log_every), "loss_scales": res.loss_scales,
        "group_keep": res.group_keep,
        "seconds": res.seconds, "batch_seconds": res.seconds * batch_instances, "batch_instances": batch_instances,
        "ms_per_iter": 1000 * res.seconds / max(1, cfg.iters)})


def relabel(teacher: nn.Module, lr: torch.Tensor, cfg: IDCConfig, device: torch.device) -> torch.Tensor:
    """The teacher's uint8 HR targets of uint8 LR patches ``(n, 3, h, w)`` at IDC's ``teacher_margin``
    (:func:`irkernels.patches.relabel`)."""
    return teacher_targets(teacher, lr, device, cfg.teacher_margin)


def write_selection(run: RunFolder, inst: Instance, index: list[int], method: str, cfg: IDCConfig,
                    seconds: float, rank: int = 0, teacher: nn.Module | None = None,
                    device: torch.device | str = "cpu") -> None:
    """A baseline's pick: the real LR patches with their coordinates, and the real HR patches (or,
    given a ``teacher``, its targets for those LR patches: ``random+teacher``)."""
    items = _items(inst, len(index))
    hr = inst.hr[index] if teacher is None else relabel(teacher, inst.lr[index], cfg, torch.device(device))
    for item, i, target in zip(items, index, hr):
        run.write_pair(item, inst.lr[i].float() / 255, target.float() / 255)
    run.finish_unit(inst.name, {
        "source": inst.name, "method": method, "rank": rank, "num_real": len(inst), "num_pairs": len(items),
        "items": items,
        "patches": [{"item": it, "index": i, **_patch(inst, i, cfg)} for it, i in zip(items, index)],
        "seconds": seconds, "batch_seconds": seconds, "batch_instances": 1})


def select(cfg: IDCConfig, inst: Instance, fe: nn.Module | None, device: torch.device) -> list[int]:
    """Indices picked by a baseline ``cfg.method`` for one instance (:func:`irkernels.patches.pick_patches`)."""
    return pick_patches(cfg.method, inst, cfg.num_synthetic(len(inst)), cfg.seed, fe, device, cfg.amp)


def run(cfg: IDCConfig, out: str, *, data: str | None = None, images: list[Image] | None = None,
        max_images: int | None = None, overwrite: bool = False, networks: Networks | None = None,
        on_instance: Callable[[str], None] | None = None) -> IDCResult:
    """Condense (or select from) ``images`` / the folder ``data`` / the embedded photos into ``out``.

    Finished instances (their record exists) are skipped, so re-running the same command resumes;
    a batch stopped by Ctrl-C or SIGTERM keeps its loop state in ``partial/`` and continues from the
    step it stopped at (``Condenser.run``'s ``checkpoint``).
    ``networks`` overrides the checkpoint/pre-training logic (API use). ``on_instance(name)`` is
    called after each instance is written. Returns where the outputs are and how many
    (``manifest``, ``report`` and ``pairs`` are ``None`` on ranks other than 0).
    """
    t0 = time.perf_counter()
    rank, world, _ = dist_info()
    device, _ = join_process_group(resolve_device(cfg.device))
    source = "given" if images is not None else (os.path.abspath(data) if data else "embedded")
    if images is None:
        images = load_folder(data, max_images) if data else sample_images(limit=max_images)
    instances = make_instances(images, cfg)
    settings = {**cfg.settings(), "data": source, "images": [i.name for i in instances]}
    if rank == 0:  # rank 0 creates (or, with overwrite, clears) the folder before the others look at it
        folder = RunFolder(out, settings, cfg.scale, overwrite=overwrite, renamed=IDCConfig.RENAMED)
    barrier(world)
    if rank != 0:
        folder = RunFolder(out, settings, cfg.scale, renamed=IDCConfig.RENAMED)
    names = ["split"] if cfg.scope == "split" else [inst.name for inst in instances]
    pending = sum(not folder.is_done(name) for name in names[rank::world])
    # the cost estimates cover the whole run (or the caller's command when it declared one)
    with command_plan("idc", stage_plan(cfg, pending, pretrain=networks is None)):
        return _condense(cfg, folder, instances, networks, device, on_instance, t0)


def _condense(cfg: IDCConfig, folder: RunFolder, instances: list[Instance], networks: Networks | None,
              device: torch.device, on_instance: Callable[[str], None] | None, t0: float) -> IDCResult:
    """``run`` once the folder is ready: the networks, then every instance of this rank not done yet."""
    rank, world, _ = dist_info()
    nets = networks or prepare_networks(cfg, instances, device)  # pre-trained on the images, whatever the scope
    if cfg.portable:  # the folder then travels with the networks it was made with
        nets.info.update({role: keep_network(info, folder.root) for role, info in nets.info.items()
                          if isinstance(info, dict)})
    if cfg.scope == "split":
        instances = [merge_instances(instances)]
    mine = [inst for inst in instances[rank::world] if not folder.is_done(inst.name)]
    skipped = len(instances[rank::world]) - len(mine)
    if skipped:
        log.info("rank %d: %d instance(s) already finished in %s, skipped", rank, skipped, folder.root)
    k = num_groups(cfg, instances)
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc=f"{cfg.method} instances" + (f" (rank {rank})" if world > 1 else ""),
                   dynamic_ncols=True)
    condenser = Condenser(nets.feature_extractor, cfg, device, cfg.progress) if cfg.method == "idc" else None
    batches = range(0, len(mine), cfg.batch_instances if condenser else 1)
    estimate = CostEstimate(f"condensing {len(mine)} image(s) on {device}", len(batches) * cfg.iters,
                            "fewer --iters or --max-images (or, on a GPU, a larger --batch-instances) make it "
                            "shorter", report=rank == 0, stage="condensation", bar=bar)
    for number, start in enumerate(batches):
        batch = mine[start:start + (cfg.batch_instances if condenser else 1)]
        if condenser is not None:
            steps_before = number * cfg.iters
            # the batch's loop state, kept there when it is stopped (and after it, until its instances are
            # written): the same command resumes the batch at the step it stopped at
            partial = folder.partial_path(f"idc-{key_name([inst.name for inst in batch])}")
            results = condenser.run(batch, k, lambda step: estimate.tick(steps_before + step), checkpoint=partial)
            for inst, res in zip(batch, results):
                write_condensed(folder, inst, res, nets.teacher, cfg, device, len(batch), rank)
                if on_instance:
                    on_instance(inst.name)
            if os.path.exists(partial):
                os.unlink(partial)
        else:
            t = time.perf_counter()
            index = select(cfg, batch[0], nets.feature_extractor, device)
            write_selection(folder, batch[0], index, cfg.method, cfg, time.perf_counter() - t, rank,
                            nets.teacher if cfg.method in TEACHER_METHODS else None, device)
            if on_instance:
                on_instance(batch[0].name)
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    barrier(world)
    if rank == 0:  # every instance is recorded: a state left by a batch of other instances is stale
        folder.clear_partial()
    result = IDCResult(method=cfg.method, out=folder.root, scale=cfg.scale, units=len(instances), skipped=skipped,
                       manifest=None, report=None, pairs=None, groups=k)
    if rank == 0:
        from .report import write_idc_report

        extra = {"method": cfg.method, "execution": {name: getattr(cfg, name) for name in cfg.EXECUTION},
                 "groups_per_instance": k, "networks": nets.info, "world_size": world,
                 "seconds_this_run": time.perf_counter() - t0}
        result.manifest = folder.write_manifest(extra)
        result.report = write_idc_report(folder, cfg, instances, os.path.join(folder.root, "report.html"),
                                         nets.info, nets.feature_extractor, device)
        result.pairs = len(os.listdir(folder.hr_dir))
    return result
