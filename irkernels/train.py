"""Training a restoration network on LQ/HQ patch pairs.

AdamW + cosine schedule, L1/L2 loss, gradient accumulation, bf16 autocast (CUDA only),
``channels_last``, optional EMA, exact resume, tqdm progress, a CSV log (TensorBoard when
installed and asked for), DDP under ``torchrun`` (``WORLD_SIZE > 1``).

Batches: every step draws ``batch_size`` patch indices (and their flips/transposes) from a seeded
generator whose state is checkpointed, so an interrupted run resumed from its checkpoint takes the
same steps as an uninterrupted one. ``batch_size`` is the effective batch of one optimizer step;
it is split into ``accum_steps`` micro-batches (the memory knob of TripleD's Table 8). Under DDP the
global batch is split across ranks, then into micro-batches.
"""
from __future__ import annotations

import copy
import csv
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .configs import TrainConfig  # noqa: F401  (re-exported)
from .data.images import PairSet, to_float
# dist_info and resolve_device are also re-exported here, for older imports
from .devices import dist_info, join_process_group, resolve_device  # noqa: F401
from .models.checkpoint import checkpoint_metadata, save_checkpoint
from .outputs import atomic_path
from .costs import CostEstimate
from .stopping import StopRequest, stop_at_step_boundary

log = logging.getLogger(__name__)

CSV_FIELDS = ("step", "loss", "lr", "patches_per_s", "max_memory_mib")


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # per step, this run only
    start_step: int = 0
    steps: int = 0
    patches_per_s: float = 0.0
    max_memory_mib: float | None = None
    model_path: str = ""


def augment(lq: torch.Tensor, hq: torch.Tensor, flips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample dihedral augmentation: ``flips`` ``(B, 3)`` bools = (h-flip, v-flip, transpose)."""
    for axis, col in ((-1, 0), (-2, 1)):
        m = flips[:, col].view(-1, 1, 1, 1)
        lq, hq = torch.where(m, lq.flip(axis), lq), torch.where(m, hq.flip(axis), hq)
    if lq.shape[-1] == lq.shape[-2]:
        m = flips[:, 2].view(-1, 1, 1, 1)
        lq, hq = torch.where(m, lq.transpose(-1, -2), lq), torch.where(m, hq.transpose(-1, -2), hq)
    return lq, hq


def atomic_torch_save(obj: object, path: str) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _rng_state(sampler: torch.Generator) -> dict:
    state = {"sampler": sampler.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(sampler: torch.Generator, state: dict) -> None:
    sampler.set_state(state["sampler"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CsvLog:
    """Append-only CSV of training statistics; on resume, rows after the checkpoint are dropped."""

    def __init__(self, path: str, resume_step: int) -> None:
        self.path = path
        rows = []
        if resume_step and os.path.exists(path):
            with open(path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, CSV_FIELDS)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, CSV_FIELDS).writerow(row)


def _tensorboard(cfg: TrainConfig):
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed: logging to CSV only", stacklevel=3)
        return None
    return SummaryWriter(os.path.join(cfg.out_dir, "tb"))


def network_inputs(lq: torch.Tensor, hq: torch.Tensor, flips: torch.Tensor | None,
                   memory_format: torch.memory_format) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of uint8 pairs as the network takes them: float inputs in ``memory_format`` and float
    targets, both augmented by ``flips`` when given."""
    x, y = to_float(lq), to_float(hq)
    if flips is not None:
        x, y = augment(x, y, flips)
    return x.contiguous(memory_format=memory_format), y


def accumulate_gradients(net: nn.Module, lq: torch.Tensor, hq: torch.Tensor, flips: torch.Tensor | None,
                         accum_steps: int, loss_fn: Callable, autocast: Callable = nullcontext,
                         memory_format: torch.memory_format = torch.contiguous_format,
                         distributed: bool = False) -> torch.Tensor:
    """Forward/backward of one optimizer step's batch in ``accum_steps`` equal micro-batches.

    ``lq``/``hq``: ``uint8`` ``(B, 3, h, w)`` / ``(B, 3, H, W)`` on the device (B divisible by
    ``accum_steps``); ``flips`` ``(B, 3)`` bools or ``None``. Each micro-batch loss is divided by
    ``accum_steps``, so the accumulated gradients are those of the mean loss over the whole batch;
    under DDP only the last micro-batch all-reduces. Returns that mean loss (0-d, detached).
    """
    micro = lq.shape[0] // accum_steps
    total = torch.zeros((), device=lq.device)
    for k in range(accum_steps):
        sl = slice(k * micro, (k + 1) * micro)
        x, y = network_inputs(lq[sl], hq[sl], None if flips is None else flips[sl], memory_format)
        sync = net.no_sync() if distributed and k < accum_steps - 1 else nullcontext()
        with sync:
            with autocast():
                out = net(x)
            loss = loss_fn(out.float(), y) / accum_steps
            loss.backward()
        total += loss.detach()
    return total


def train(model: nn.Module, data: PairSet, cfg: TrainConfig,
          allowed: Callable[[int], torch.Tensor] | None = None,
          on_step: Callable[[int, nn.Module], None] | None = None, *, steps_flag: str = "--steps",
          stage: str = "training") -> TrainResult:
    """Train ``model`` in place on ``data`` for ``cfg.steps`` optimizer steps (resuming from
    ``out_dir/last.pt`` when it exists and ``cfg.resume``); returns losses and throughput.

    ``allowed``: ``step ↦`` 1-D int64 tensor of the patch indices that step may draw from (e.g. a
    sampler that changes per epoch; default all of ``data``). It must be a pure function of the
    step, so that a resumed run draws what an uninterrupted one would.

    ``on_step(done, net)``: called on the main process after optimizer step ``done`` (1-based) and
    before that step's checkpoint, with the network being trained (the EMA's when ``ema_decay > 0``),
    e.g. to score a validation split for a learning curve; it must not draw from torch's global RNG
    (a resumed run would then diverge). The network is put back in train mode after it. A caller
    that keeps what it records across restarts drops the entries past the step a run resumes from
    (``TrainResult.start_step``).

    The final weights (the EMA's when ``ema_decay > 0``) are written to ``out_dir/model.safetensors``.
    ``steps_flag``: the calling command's flag for ``cfg.steps``, named by the long-run warning;
    ``stage``: which stage of the command's plan this training is (``irkernels.costs``).
    """
    rank, world, _ = dist_info()
    if cfg.batch_size % (world * cfg.accum_steps):
        raise ValueError(f"batch_size {cfg.batch_size} must be divisible by world size × accum_steps "
                         f"= {world} × {cfg.accum_steps}")
    device, owns_group = join_process_group(resolve_device(cfg.device))
    run = _Run(model, data, cfg, device, allowed, on_step, steps_flag, rank, world, stage)
    net = run.model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(run.model, device_ids=[device.index] if device.type == "cuda" else None)
    with stop_at_step_boundary() as stop:
        for step in range(run.start, cfg.steps):
            lq, hq, flips = run.batch(step)
            run.opt.zero_grad()
            step_loss = accumulate_gradients(net, lq, hq, flips, cfg.accum_steps, run.loss_fn, run.autocast,
                                             run.memory_format, world > 1)
            run.opt.step(run.model)
            stopping = stop.requested
            if world > 1:  # the ranks agree on the loss and on stopping after this step, in one all-reduce
                both = torch.stack([step_loss, torch.tensor(float(stopping), device=step_loss.device)])
                torch.distributed.all_reduce(both)
                step_loss, stopping = both[0] / world, bool(both[1] > 0)
            if run.end_step(step, float(step_loss), stop if world == 1 else None, stopping):
                raise stop.interrupt(f"training stopped after step {step + 1} of {cfg.steps}; "
                                     f"checkpoint {run.ckpt_path}")
    result = run.finish()
    if world > 1:
        torch.distributed.barrier()
        if owns_group:
            torch.distributed.destroy_process_group()
    return result


def train_together(models: Sequence[nn.Module], datas: Sequence[PairSet], cfgs: Sequence[TrainConfig],
                   on_steps: Sequence[Callable[[int, nn.Module], None] | None] | None = None, *,
                   steps_flag: str = "--steps", stage: str = "training") -> list[TrainResult]:
    """Train several networks of one architecture at once, each exactly as :func:`train` would
    (its own data, sampler, optimizer, schedule, EMA, log, checkpoint and ``out_dir``; each resumes
    from its own ``last.pt``, at whatever step it reached), with one batched forward and backward
    for all of them per step: their parameters stacked, the network's function mapped over the
    stack (``torch.func.vmap``), so that small networks fill a device together that each would
    leave idle. One process, ``accum_steps`` 1, one device. A network trained together equals the
    same network trained alone within float tolerance (the batched convolutions round differently).
    Returns each network's :class:`TrainResult`."""
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    on_steps = list(on_steps) if on_steps is not None else [None] * len(models)
    if not len(models) == len(datas) == len(cfgs) == len(on_steps) or not models:
        raise ValueError(f"models, datas, cfgs and on_steps must be non-empty and of one length, got "
                         f"{len(models)}, {len(datas)}, {len(cfgs)}, {len(on_steps)}")
    if dist_info()[1] > 1 or any(c.accum_steps != 1 for c in cfgs):
        raise ValueError("train_together runs in one process with accum_steps 1; use train() for the others")
    names = {getattr(m, "registry_name", type(m).__name__) for m in models}
    shapes = {tuple((k, tuple(v.shape)) for k, v in m.state_dict().items()) for m in models}
    if len(names) > 1 or len(shapes) > 1:
        raise ValueError(f"models must be one architecture with one set of shapes, got {sorted(names)}")
    shared = {(str(resolve_device(c.device)), c.batch_size, c.loss, c.amp) for c in cfgs}  # one batched step
    if len(shared) > 1:
        raise ValueError(f"cfgs must share device, batch_size, loss and amp, got {sorted(shared)}")
    device = resolve_device(cfgs[0].device)
    runs = [_Run(m, d, c, device, None, f, steps_flag, stage=stage)
            for m, d, c, f in zip(models, datas, cfgs, on_steps)]
    template = copy.deepcopy(runs[0].model).to("meta")  # the architecture; the weights come from the stack
    first = runs[0]  # autocast and loss are shared (checked above)

    def loss_of(params, buffers, x, y):
        with first.autocast():
            out = functional_call(template, (params, buffers), (x,))
        return first.loss_fn(out.float(), y)

    with stop_at_step_boundary() as stop:
        while active := [r for r in runs if r.step < r.cfg.steps]:
            inputs = [network_inputs(*r.batch(r.step), r.memory_format) for r in active]
            params, buffers = stack_module_state([r.model for r in active])
            grads, losses = vmap(grad_and_value(loss_of))(
                params, buffers, torch.stack([x for x, _ in inputs]), torch.stack([y for _, y in inputs]))
            losses = losses.tolist()  # one host sync per step for all the networks, as train() has for one
            for k, r in enumerate(active):
                r.opt.zero_grad()
                for name, p in r.model.named_parameters():
                    if p.requires_grad:
                        p.grad = grads[name][k]
                r.opt.step(r.model)
            stopping = any([r.end_step(r.step, loss, stop, False) for r, loss in zip(active, losses)])
            if stopping:
                raise stop.interrupt(f"training stopped; {len(active)} checkpoints written "
                                     f"({', '.join(r.ckpt_path for r in active)})")
    return [r.finish() for r in runs]


class _Run:
    """One network's training in :func:`train` / :func:`train_together`: its device copy, optimizer,
    sampler (resumed from ``out_dir/last.pt``), log and clock; ``batch`` draws a step's pairs,
    ``end_step`` does what follows the optimizer step (log, ``on_step``, checkpoint), ``finish``
    writes the final weights."""

    def __init__(self, model: nn.Module, data: PairSet, cfg: TrainConfig, device: torch.device,
                 allowed: Callable[[int], torch.Tensor] | None, on_step: Callable[[int, nn.Module], None] | None,
                 steps_flag: str, rank: int = 0, world: int = 1, stage: str = "training") -> None:
        self.data, self.cfg, self.device, self.allowed, self.on_step = data, cfg, device, allowed, on_step
        self.rank, self.world, self.main_proc = rank, world, rank == 0
        os.makedirs(cfg.out_dir, exist_ok=True)
        torch.manual_seed(cfg.seed + rank)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=self.memory_format)
        self.opt = _Optimisation(self.model, cfg)
        self.sampler = torch.Generator().manual_seed(cfg.seed)
        self.ckpt_path = os.path.join(cfg.out_dir, "last.pt")
        self.fingerprint = data.fingerprint()
        self.start = _resume(self.ckpt_path, cfg, self.fingerprint, self.model, self.opt, self.sampler) \
            if cfg.resume else 0
        self.step = self.start
        if self.start and self.main_proc:
            log.info("resumed from %s at step %d", self.ckpt_path, self.start)
        use_amp = cfg.amp and device.type == "cuda"
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext
        self.loss_fn = F.l1_loss if cfg.loss == "l1" else F.mse_loss
        self.logger = _Logger(cfg, self.start, device) if self.main_proc else None
        self.result = TrainResult(start_step=self.start)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.per_rank = cfg.batch_size // world
        self.model.train()
        self.clock = _Clock(self.start, cfg.steps, self.model, device, self.main_proc, steps_flag, stage)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Step ``step``'s uint8 LR / HR pairs of this rank on the device, and their flips (``None``
        without augmentation)."""
        self.clock.tick(step)
        idx, flips = _draw(step, len(self.data), self.cfg, self.sampler, self.allowed)
        part = slice(self.rank * self.per_rank, (self.rank + 1) * self.per_rank)
        idx, flips = idx[part], flips[part]
        return (self.data.lq[idx].to(self.device, non_blocking=True), self.data.hq[idx].to(self.device, non_blocking=True),
                flips.to(self.device) if self.cfg.augment else None)

    def end_step(self, step: int, loss: float, stop: StopRequest | None, stopping: bool) -> bool:
        """After optimizer step ``step``: record ``loss``, call ``on_step``, checkpoint (every
        ``ckpt_every`` steps, at the last, and when stopping: ``stopping``, or ``stop`` asked for
        it by the end of ``on_step``). Returns whether the run stops here (checkpoint written)."""
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss became {loss} at step {step + 1}; lower lr or enable grad_clip")
        self.result.losses.append(loss)
        done = self.step = step + 1
        if self.logger is not None:
            self.logger.step(done, loss, self.opt.sched.get_last_lr()[0], self.clock.estimate.postfix)
        if self.on_step is not None and self.main_proc:
            self.on_step(done, self.opt.trained(self.model))
            self.model.train()
        stopping = stopping or (stop is not None and stop.requested)  # a request made during on_step counts now
        # an interrupted run checkpoints the step it finished, so that a rerun loses nothing
        if self.main_proc and (done % self.cfg.ckpt_every == 0 or done == self.cfg.steps or stopping):
            atomic_torch_save({**self.opt.state(self.model), "rng": _rng_state(self.sampler), "step": done,
                               "config": asdict(self.cfg), "data": self.fingerprint}, self.ckpt_path)
        if stopping and self.logger is not None:
            self.logger.close()
        return stopping

    def finish(self) -> TrainResult:
        """Close the log, write the final weights (the EMA's when there is one), fill the result."""
        if self.logger is not None:
            self.logger.close()
        result = self.result
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            result.max_memory_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        result.steps = self.cfg.steps - self.start
        result.patches_per_s = self.clock.patches_per_s(self.cfg.batch_size)
        final = self.opt.trained(self.model)
        result.model_path = os.path.join(self.cfg.out_dir, "model.safetensors")
        if self.main_proc:
            # which network and factor the weights are for: ``eval --checkpoint`` reads them back
            save_checkpoint(final, result.model_path, checkpoint_metadata(final))
        if self.opt.ema is not None:
            self.model.load_state_dict(self.opt.ema.module.state_dict())
        return result


class _Optimisation:
    """AdamW on the trainable parameters, the cosine schedule, gradient clipping and the weights'
    EMA (when ``ema_decay > 0``): one optimizer step and the state a checkpoint keeps."""

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        self.ema = None
        if cfg.ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.trainable, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=cfg.steps, eta_min=cfg.min_lr)
        self.grad_clip = cfg.grad_clip

    def zero_grad(self) -> None:
        self.opt.zero_grad(set_to_none=True)

    def step(self, model: nn.Module) -> None:
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.trainable, self.grad_clip)
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.update_parameters(model)

    def trained(self, model: nn.Module) -> nn.Module:
        """The network the run produces: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else model

    def state(self, model: nn.Module) -> dict:
        return {"model": model.state_dict(), "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def load(self, model: nn.Module, state: dict) -> None:
        model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])


def _resume(path: str, cfg: TrainConfig, data_fingerprint: str, model: nn.Module, opt: _Optimisation,
            sampler: torch.Generator) -> int:
    """Load ``path`` (when it exists) into the model, optimizer and sampler; the step it was saved at
    (0 without one). ``ValueError`` when it was written on other data."""
    if not os.path.exists(path):
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("data", data_fingerprint) != data_fingerprint:  # resuming would mix two runs' steps
        raise ValueError(f"--out {cfg.out_dir} holds a training run on other data (its last.pt has another "
                         "fingerprint of the pairs); choose another --out, or pass --overwrite to start afresh")
    opt.load(model, state)
    _set_rng_state(sampler, state["rng"])
    return int(state["step"])


def _draw(step: int, n: int, cfg: TrainConfig, sampler: torch.Generator,
          allowed: Callable[[int], torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole batch's patch indices and flips for ``step`` (every rank draws the same, then takes
    its slice), from ``allowed(step)`` when given."""
    if allowed is None:
        idx = torch.randint(n, (cfg.batch_size,), generator=sampler)
    else:
        pool = allowed(step)
        idx = pool[torch.randint(len(pool), (cfg.batch_size,), generator=sampler)]
    return idx, torch.rand((cfg.batch_size, 3), generator=sampler) < 0.5


class _Clock:
    """Throughput, timed after the warm-up steps of the run's ``CostEstimate`` (which the main
    process's clock also logs, and whose time left the bar shows: ``estimate.postfix``)."""

    def __init__(self, start: int, steps: int, model: nn.Module, device: torch.device, main_proc: bool,
                 steps_flag: str, stage: str = "training") -> None:
        name = getattr(model, "registry_name", type(model).__name__)
        self.estimate = CostEstimate(f"training {name} on {device}", steps, f"fewer {steps_flag} or a smaller "
                                     "network make it shorter", start, report=main_proc, stage=stage)
        self.tick = self.estimate.tick

    def patches_per_s(self, batch_size: int) -> float:
        first = self.estimate.t_step
        timed = self.estimate.steps - first if first is not None else 0
        return timed * batch_size / max(self.estimate.now() - self.estimate.t_start, 1e-9) if timed > 0 else 0.0


class _Logger:
    """The main process's progress bar, ``log.csv`` rows every ``log_every`` steps and TensorBoard."""

    def __init__(self, cfg: TrainConfig, start: int, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.csv = CsvLog(os.path.join(cfg.out_dir, "log.csv"), start)
        self.tb = _tensorboard(cfg)
        self.bar = None
        if cfg.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=cfg.steps, initial=start, desc="train", dynamic_ncols=True)
        self.t_log, self.patches = time.perf_counter(), 0

    def step(self, done: int, loss: float, lr: float, postfix: dict[str, str]) -> None:
        """``postfix``: shown on the bar after the loss (the command's time left, ``CostEstimate.postfix``)."""
        self.patches += self.cfg.batch_size
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", **postfix)
        if done % self.cfg.log_every == 0 or done == self.cfg.steps:
            now = time.perf_counter()
            mem = torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda" else None
            row = {"step": done, "loss": loss, "lr": lr, "patches_per_s": self.patches / max(now - self.t_log, 1e-9),
                   "max_memory_mib": mem}
            self.csv.write(row)
            if self.tb is not None:
                for key in ("loss", "lr", "patches_per_s"):
                    self.tb.add_scalar(key, row[key], done)
            self.t_log, self.patches = now, 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
