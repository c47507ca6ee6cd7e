"""Training a network on a TripleD run's result: ``train_on_output`` (the paired folder it wrote)
or ``train_dynamic`` (all the input images with the epoch-wise dynamic selection). Each adds
``train/`` + ``eval.json`` (or ``train_dynamic/`` + ``eval_dynamic.json``) to the run folder and
re-writes the report with the network's scores next to the baseline's (bicubic for SR, the
degraded input for the other tasks)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from ..data.images import PairSet, PatchConfig, load_paired_folder, make_pairs, make_pairs_from_paired
from ..evaluate import EvalConfig, evaluate, format_table
from ..models import build_model, model_scale
from ..outputs import atomic_write_json
from ..train import train
from .config import TrainSpec, TripleDConfig, task_types
from .items import item_name, load_item
from .report import write_tripled_report
from .result import TripleDResult
from .selection import DynamicSampler, deal_to_types


def _check_patch(patch_size: int, scale: int, sides: Sequence[int]) -> None:
    if patch_size % scale or patch_size > min(sides):
        raise ValueError(f"patch_size must be a multiple of the scale {scale} and at most the smallest image side "
                         f"{min(sides)}, got {patch_size}")


def _train(net: torch.nn.Module, data, cfg: TripleDConfig, spec: TrainSpec, out_dir: str, allowed=None):
    if model_scale(net) != cfg.scale:
        raise ValueError(f"model {spec.model} up-scales ×{model_scale(net)} but task {cfg.task} needs ×{cfg.scale}")
    run_cfg = replace(spec.train, out_dir=out_dir, seed=cfg.seed, device=cfg.device, progress=cfg.progress)
    # the stage of tripled's plan after the method's own (docs/outputs.md); its warning names tripled's flag
    return train(net, data, run_cfg, allowed, steps_flag="--train-steps", stage="training")


def _evaluate_types(net: torch.nn.Module, cfg: TripleDConfig, spec: TrainSpec, path: str) -> list[str]:
    """Scores on ``spec.test`` under each task type's degradation, the trained network's and the
    baseline's (bicubic up-sampling for SR, the degraded input itself otherwise), written to ``path``
    as ``{type: {"network": ..., "baseline": ..., "baseline_name": ...}}``."""
    if not spec.test:
        return []
    scores, lines = {}, []
    for t, deg in task_types(cfg.task):
        ev = EvalConfig(sets=list(spec.test), degradation=deg, device=cfg.device)
        baseline_name = "bicubic" if deg.kind == "bicubic" else "degraded input"
        scores[t] = {"network": evaluate(net, ev), "baseline": evaluate(None if deg.kind == "bicubic"
                                                                         else torch.nn.Identity(), ev),
                     "baseline_name": baseline_name}
        lines += [f"[{t}] {spec.model}", format_table(scores[t]["network"]),
                  f"[{t}] {baseline_name}", format_table(scores[t]["baseline"])]
    atomic_write_json(path, scores)
    return lines


def train_on_output(result: TripleDResult, cfg: TripleDConfig, spec: TrainSpec) -> str:
    """Train ``spec.model`` on the run's paired folder (``OUT/train/``: resumable), evaluate it
    (``OUT/eval.json``) and re-write the report with the scores. Returns a printable summary."""
    root = result.out
    pairs = load_paired_folder(root, cfg.scale)
    _check_patch(spec.patch_size, cfg.scale, [min(hr.pixels.shape[:2]) for _, hr in pairs])
    data = make_pairs_from_paired(pairs, cfg.scale, PatchConfig(spec.patch_size, spec.patch_size))
    torch.manual_seed(cfg.seed)
    net = build_model(spec.model, cfg.scale)
    trained = _train(net, data, cfg, spec, os.path.join(root, "train"))
    lines = [f"trained {trained.steps} steps on {len(data)} patches; weights in {trained.model_path}"]
    lines += _evaluate_types(net, cfg, spec, os.path.join(root, "eval.json"))
    _rewrite_report(result)
    return "\n".join(lines)


def _rewrite_report(result: TripleDResult) -> None:
    records = {r["unit"]: r for r in result.folder.records()}
    write_tripled_report(result.folder, records, result.items, result.crops)


def epoch_bounds(steps: int, epochs: int) -> list[int]:
    """First step of each epoch (``steps // epochs`` each, the remainder in the last) and ``steps``."""
    per = steps // epochs
    return [e * per for e in range(epochs)] + [steps]


def train_dynamic(result: TripleDResult, cfg: TripleDConfig, spec: TrainSpec) -> str:
    """Train on all ``items`` with epoch-wise dynamic selection, as ONE training run: the pairs of
    every image under every task type are built once, and ``irkernels.train.train``'s ``allowed``
    hook restricts epoch ``e``'s steps (``epoch_bounds``) to the patches of
    ``DynamicSampler.indices(e)`` (dealt over the task's types) — AdamW's state and the cosine
    learning-rate schedule run on across epochs, and a restart resumes mid-epoch from
    ``OUT/train_dynamic/last.pt``. Evaluation → ``OUT/eval_dynamic.json``, then the report is re-written."""
    items, root = result.items, result.out
    sampler = DynamicSampler(np.asarray(result.scores), cfg.ratio, spec.q_start, spec.dynamic_epochs, spec.q_schedule, cfg.seed)
    types = task_types(cfg.task)
    type_names = [t for t, _ in types]
    images = [load_item(i) for i in items]
    _check_patch(spec.patch_size, cfg.scale, [min(im.pixels.shape[:2]) for im in images])
    parts = [make_pairs(images, deg, PatchConfig(spec.patch_size, spec.patch_size)) for _, deg in types]
    data = PairSet(torch.cat([d.lq for d in parts]), torch.cat([d.hq for d in parts]),
                   [n for d in parts for n in d.sources])
    # patch indices of (type, image): make_pairs keeps each image's patches together, in order
    index = {name: i for i, name in enumerate(item_name(it) for it in items)}
    owner = torch.tensor([t * len(items) + index[n] for t, d in enumerate(parts) for n in d.sources])
    bounds = epoch_bounds(spec.train.steps, spec.dynamic_epochs)
    pools = []
    for epoch in range(spec.dynamic_epochs):
        keys = torch.tensor([type_names.index(t) * len(items) + i
                             for i, t in deal_to_types(sampler.indices(epoch), type_names)])
        pools.append(torch.nonzero(torch.isin(owner, keys)).flatten())

    def allowed(step: int) -> torch.Tensor:
        return pools[int(np.searchsorted(bounds, step, side="right")) - 1]

    torch.manual_seed(cfg.seed)
    net = build_model(spec.model, cfg.scale)
    trained = _train(net, data, cfg, spec, os.path.join(root, "train_dynamic"), allowed)
    lines = [f"epoch {e}: q = {sampler.q(e):.4f}, {sampler.k} images, {len(pools[e])} patches, "
             f"steps {bounds[e]}-{bounds[e + 1] - 1}" for e in range(spec.dynamic_epochs)]
    lines.append(f"trained {trained.steps} steps in one run (optimizer and schedule continuous); "
                 f"weights in {trained.model_path}")
    lines += _evaluate_types(net, cfg, spec, os.path.join(root, "eval_dynamic.json"))
    _rewrite_report(result)
    return "\n".join(lines)


__all__ = ["epoch_bounds", "train_dynamic", "train_on_output"]
