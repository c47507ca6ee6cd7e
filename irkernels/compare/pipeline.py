"""Does condensation pay off? Make each training set at one ratio, train the same student on each,
score them: ``run(CompareConfig(...), out, data=folder, test=[...])``.

Steps, each a function: split the folder (:func:`split_images`) → the patches of every training
image (:func:`task_instances`) → the teacher (:func:`make_teacher`) → one training set per
(set, seed) (:func:`make_set`) → the student trained on it with a validation learning curve
(:func:`train_students`, several at once where they fill a device together) → its scores (:func:`score_network`) → the summary and report
(:mod:`.report`).

The folder ``out``::

    settings.json                the guard: a rerun with other settings is refused (overwrite clears)
    cache/                       the teacher (irkernels.pretrained: reused for the same data/settings)
    sets/<row>-seed<s>/          the run folders of the methods' rows (IDC's, TripleD's: resumable as the method is)
    train/<row>-seed<s>/         the student's checkpoint (resumable per step), curve.json, weights
    rows/<row>[-seed<s>].json    one finished row each, written atomically
    compare.json, table.md, curves.png, report.html

With ``budgets`` (a data-efficiency sweep, :mod:`.budgets`) a row made at a budget is named
``<row>-n<patches>-seed<s>`` in ``sets/``, ``train/`` and ``rows/``; whole, the floor and the teacher
are made once, as above; the outputs are ``budgets.json``, ``budgets.md``, ``budgets.png`` (the
data-efficiency curve), ``report.html`` and, per budget, ``tables/n<patches>.md`` and its curves.

Resumable row by row and, inside a row, step by step: a rerun skips finished rows, resumes the
one that was interrupted from its last checkpoint (its curve continues where the checkpoint is),
and adds the rows of new sets or seeds. ``test`` folders are scored once per row, also for rows
finished earlier (their weights are kept), so a comparison tuned on the validation split is then
scored on the test sets by the same command with ``--test``.
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..configs import TrainConfig
from ..data import Image, PairSet, degrade, load_folder, quantize, sample_images, to_float, to_tensor
from ..devices import barrier, dist_info, join_process_group, resolve_device, this_process_alone
from ..evaluate import METRICS, baseline_network, degraded_pairs, evaluate_images, folder_pairs
from ..methods import SetRequest
from ..models import build_model, load_checkpoint
from ..outputs import atomic_write_json, guard_folder
from ..patches import Instance, cut_instance, make_instances
from ..pretrained import PretrainConfig, pretrained_network
from ..seeds import seeded_generator
from ..costs import CommandPlan, command_plan, format_duration
from ..train import train, train_together
from .budgets import Budget, make_budgets
from .config import REFERENCES, CompareConfig, compare_sets, method_of
from .report import write_budget_outputs, write_outputs
from .sets import pairs_of

log = logging.getLogger(__name__)
CURVE_METRICS = ("psnr_rgb", "psnr_y")  # what the learning curves score (SSIM would double their cost)

ScoredSets = dict[str, list[tuple[str, torch.Tensor, torch.Tensor]]]


@dataclass
class CompareResult:
    """Where the outputs are, and what this call did: ``rows_done`` rows finished by it,
    ``rows_skipped`` found finished; ``summary`` is :func:`.report.summarise`'s dict."""

    out: str
    compare_json: str
    report: str
    curves: str
    table: str
    rows_done: int
    rows_skipped: int
    summary: dict
    verdict: list[str]

    def text(self) -> str:
        return "\n".join([self.table, *self.verdict,
                          f"rows: {self.rows_done} trained now, {self.rows_skipped} found finished",
                          f"  compare.json: {self.compare_json}", f"  curves:       {self.curves}",
                          f"  report:       {self.report}"])


def split_images(cfg: CompareConfig, data: str | None) -> tuple[list[Image], list[Image]]:
    """(training, validation) images: sorted by name, the last ``val_images`` held out, at most
    ``max_images`` of the rest. ``ValueError`` when the folder cannot give both."""
    images = load_folder(data) if data else sample_images()
    images = sorted(images, key=lambda im: im.name)
    if len(images) <= cfg.val_images:
        raise ValueError(f"val_images: {data or 'the embedded photos'} holds {len(images)} images, not enough to "
                         f"hold out {cfg.val_images} for validation and train on the rest")
    train_images, val_images = images[:-cfg.val_images], images[-cfg.val_images:]
    return train_images[:cfg.max_images] if cfg.max_images else train_images, val_images


def budget_view(cfg: CompareConfig, budget: Budget | None, kind: str, seed: int, images: Sequence[Image],
                instances: Sequence[Instance]) -> tuple[CompareConfig, list[Image], list[Instance]]:
    """The comparison as set ``kind`` makes it at ``budget``: the ratio that keeps the budget's
    patches (or images), and for a patch-level set with fewer patches than images the images it
    draws for ``seed`` (:meth:`Budget.image_subset`; not for sets picking from the whole split).
    ``budget=None``: ``cfg`` as it is."""
    if budget is None:
        return cfg, list(images), list(instances)
    cfg = replace(cfg, ratio=budget.ratio)
    method = method_of(kind)
    unit = compare_sets()[kind].unit_for(cfg.method_settings(method, kind) if method else {})
    picks = budget.image_subset(seed, [i.name for i in instances]) if unit == "patch" else None
    if picks is None:
        return cfg, list(images), list(instances)
    keep = {instances[i].name for i in picks}
    return cfg, [im for im in images if im.name in keep], [instances[i] for i in picks]


def make_teacher(cfg: CompareConfig, instances: Sequence[Instance], cache: str) -> tuple[nn.Module, dict]:
    """``teacher_model`` trained ``teacher_steps`` on every training patch (seed 0), or the cached one."""
    pre = PretrainConfig(model=cfg.teacher_model, scale=cfg.factor, steps=cfg.teacher_steps,
                         batch_size=cfg.batch_size, seed=0, device=cfg.device, progress=cfg.progress,
                         steps_flag="--teacher-steps")
    net, info = pretrained_network(pre, pairs_of(instances), cache)
    return net.eval(), info


def make_set(kind: str, cfg: CompareConfig, seed: int, images: Sequence[Image], instances: Sequence[Instance],
             teacher: nn.Module | None, teacher_info: dict | None, folder: str, count: int | None = None,
             record: dict | None = None) -> PairSet:
    """The training pairs of set ``kind`` for ``seed``: its ``CompareSet.make`` (``compare.config
    .compare_sets``: the comparison's own, :mod:`.sets`, or a method's) with a
    :class:`irkernels.methods.SetRequest` of the comparison, the split, the teacher and the row's
    run folder ``folder`` (where a method runs, resumable); ``count``: a budget's patches, for a set
    picking them over the whole split. ``record`` receives the fields the set adds to its row (a
    method's settings)."""
    method = method_of(kind)
    request = SetRequest(kind=kind, seed=seed, task=cfg.task, scale=cfg.scale, ratio=cfg.ratio, lr_patch=cfg.lr_patch,
                         lr_stride=cfg.lr_stride, feature_model=cfg.teacher_model,
                         settings=cfg.method_settings(method, kind) if method else {}, images=list(images),
                         instances=list(instances), teacher=teacher, teacher_info=teacher_info, folder=folder,
                         count=count, device=cfg.device, progress=cfg.progress)
    pairs = compare_sets()[kind].maker()(request)
    if record is not None:
        record.update(request.record)
    return pairs


def score_network(run: Callable[[torch.Tensor], torch.Tensor], sets: ScoredSets, crop_border: int,
                  device: torch.device, metrics: tuple[str, ...] = METRICS) -> dict[str, dict[str, float]]:
    """Mean ``metrics`` per set (outputs rounded to uint8, ``crop_border`` pixels cropped)."""
    return {name: evaluate_images(run, triples, crop_border, device, metrics)["mean"] for name, triples in sets.items()}


def task_instances(cfg: CompareConfig, images: Sequence[Image]) -> list[Instance]:
    """Every training image's aligned patches: IDC's instances for SR (bicubic LR); for a same-size
    task the degraded image (seeded per image, as a stored LQ folder would hold it) cut on the same grid."""
    if cfg.task == "sr":
        return make_instances(list(images), cfg)
    deg, side, stride = cfg.degradation(), cfg.lr_patch, cfg.lr_stride
    out = []
    for im in images:
        if min(im.pixels.shape[:2]) < side:
            continue
        hq = to_tensor(im.pixels)
        lq = quantize(degrade(to_float(hq), deg, seeded_generator(deg.seed, im.name)))
        out.append(cut_instance(im.name, hq, lq, 1, side, stride))
    if not out:
        raise ValueError(f"lr_patch: no training image is at least {side}x{side} pixels")
    return out


class _Student:
    """One row's student: ``cfg.model`` from its seed, its ``TrainConfig`` into ``folder`` and its
    validation curve (``folder/curve.json``, kept across a resume: points past the step resumed from
    are redone), scored by ``on_step`` every ``eval_every`` steps."""

    def __init__(self, cfg: CompareConfig, seed: int, val: ScoredSets, folder: str) -> None:
        self.cfg, self.val, self.folder, self.device = cfg, val, folder, resolve_device(cfg.device)
        torch.manual_seed(seed)
        self.net = build_model(cfg.model, cfg.factor)
        self.train_cfg = TrainConfig(out_dir=folder, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=seed,
                                     ckpt_every=cfg.eval_every, device=cfg.device, progress=cfg.progress,
                                     channels_last=True)
        self.resumed = os.path.exists(os.path.join(folder, "last.pt"))
        self.curve_path = os.path.join(folder, "curve.json")
        self.curve: list[dict] = (_read(self.curve_path) or []) if self.resumed else []

    def on_step(self, done: int, model: nn.Module) -> None:
        self.curve = [p for p in self.curve if p["step"] < done]
        if done % self.cfg.eval_every == 0 or done == self.cfg.steps:
            model.eval()  # the last point has every metric: it is the row's validation score
            metrics = METRICS if done == self.cfg.steps else CURVE_METRICS
            self.curve.append({"step": done, **score_network(model, self.val, self.cfg.crop_border, self.device,
                                                             metrics)["val"]})
            atomic_write_json(self.curve_path, self.curve)


def students_together(cfg: CompareConfig) -> int:
    """How many students train at once: ``cfg.students_together``, or by default all of a group (8)
    on a GPU, where one tiny student leaves it idle, and 1 on a CPU, where stacking them measured no
    faster (benchmarks/results/compare_speed_cpu.md: a CPU runs a tiny student near its peak already)."""
    if cfg.students_together:
        return cfg.students_together
    return 8 if resolve_device(cfg.device).type == "cuda" else 1


def train_students(cfg: CompareConfig, datas: Sequence[PairSet], seeds: Sequence[int], val: ScoredSets,
                   folders: Sequence[str]) -> list[tuple[nn.Module, dict]]:
    """``cfg.model`` from each seed trained on each of ``datas`` for ``cfg.steps`` into each of
    ``folders`` (resuming from its ``last.pt``), the validation split scored every ``eval_every``
    steps into its ``curve.json``: one student alone (:func:`train`), several together
    (:func:`train_together`, equal within float tolerance). Returns per student the network and
    ``{"curve": [{"step", metric...}], "val", "train_s", "segments_s", "patches_per_s", "steps_run"}``
    (``val``: every metric at the last step, the curve's last point; ``train_s``: its share of the
    seconds of every segment it trained in, an interrupted one's included; ``steps_run``: the steps
    this call trained, fewer than ``cfg.steps`` for a resumed student)."""
    students = [_Student(cfg, seed, val, folder) for seed, folder in zip(seeds, folders)]
    seconds = [os.path.join(s.folder, "seconds.json") for s in students]
    segments = [(_read(path) or []) if s.resumed else [] for s, path in zip(students, seconds)]
    t = time.perf_counter()
    try:
        if len(students) == 1:
            results = [train(students[0].net, datas[0], students[0].train_cfg, on_step=students[0].on_step)]
        else:
            results = train_together([s.net for s in students], datas, [s.train_cfg for s in students],
                                     [s.on_step for s in students])
    finally:
        share = (time.perf_counter() - t) / len(students)
        for path, seg in zip(seconds, segments):
            seg.append(share)
            atomic_write_json(path, seg)
    return [(s.net.eval(), {"curve": s.curve, "val": {m: s.curve[-1][m] for m in METRICS}, "train_s": sum(seg),
                            "segments_s": seg, "patches_per_s": r.patches_per_s, "trained_with": len(students),
                            "steps_run": cfg.steps - r.start_step})
            for s, seg, r in zip(students, segments, results)]


def _read(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def _guard(cfg: CompareConfig, out: str, overwrite: bool) -> None:
    """The folder's guard (:func:`irkernels.outputs.guard_folder`) on ``settings.json``: another
    command's output or a comparison with other settings is refused; ``overwrite`` clears the rows,
    students, sets and teacher of other settings."""
    import shutil

    path = os.path.join(out, "settings.json")
    settings = {"command": "compare", **cfg.settings()}
    previous = _read(path)
    if previous is not None:  # a field added since the folder was made reads as its default there
        defaults = {"command": "compare", **CompareConfig().settings()}
        previous = {**{k: v for k, v in settings.items() if k not in previous and v == defaults.get(k)}, **previous}
    if guard_folder(out, "compare", "a comparison", settings, previous, overwrite=overwrite):
        for name in ("cache", "sets", "train", "rows"):
            shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    atomic_write_json(path, settings)


def run(cfg: CompareConfig, out: str, *, data: str | None = None, test: Sequence[str] = (),
        overwrite: bool = False, report_only: bool = False) -> CompareResult:
    """Make, train and score every (set, seed) row of ``cfg`` not finished in ``out`` yet, score the
    ``test`` folders for every row that lacks them, then write the table, curves and report.
    ``report_only``: make, train and score nothing; write the outputs of the rows finished so far
    (while another process runs the comparison, say). Its plan is the teacher's pre-training and the
    student rows (in training steps: counted at the teacher's rate a step until the first row is
    done, then at the measured make + train time of a row), logged after each row; the stages
    inside a row (an IDC or TripleD run) each estimate themselves instead of claiming to be the
    whole command."""
    with command_plan("compare", [("pre-training", 0), ("students", 0)]) as plan:
        return _run(cfg, out, data, test, overwrite, report_only, plan)


def _run(cfg: CompareConfig, out: str, data: str | None, test: Sequence[str], overwrite: bool,
         report_only: bool, costs: CommandPlan) -> CompareResult:
    for folder in test:
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--test {folder!r} is not a folder")
    if report_only and not os.path.exists(os.path.join(out, "settings.json")):
        raise FileNotFoundError(f"--out {out} holds no comparison to report on")
    # under torchrun the ranks split the rows, each on its own device: rank 0 checks (or clears) the
    # folder and trains the teacher, the others wait for both, then every rank makes and trains its rows
    rank, world, _ = dist_info()
    device, owns_group = join_process_group(resolve_device(cfg.device))
    if world > 1:
        cfg = replace(cfg, device=str(device))
    if rank == 0:
        _guard(cfg, out, overwrite)
    barrier(world)
    if rank != 0:
        _guard(cfg, out, False)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    train_images, val_images = split_images(cfg, data)
    instances = task_instances(cfg, train_images)
    deg = cfg.degradation()
    val = {"val": degraded_pairs(val_images, deg)}
    tests = {os.path.basename(os.path.normpath(f)): folder_pairs(f, deg) for f in test}
    rows_dir = os.path.join(out, "rows")
    teacher: tuple[nn.Module, dict] | None = None

    def get_teacher() -> tuple[nn.Module, dict]:
        nonlocal teacher
        if teacher is None:
            t = time.perf_counter()
            net, info = make_teacher(cfg, instances, os.path.join(out, "cache"))
            teacher = (net, {**info, "seconds_here": time.perf_counter() - t})
        return teacher

    # the teacher is a row (and trained) only when a set needs it
    sets = compare_sets()
    references = [cfg.baseline] + (["teacher"] if cfg.needs_teacher else [])
    total_pairs = sum(len(i) for i in instances)  # the training split's patches: what budgets are shares of
    budgets = make_budgets(cfg.budgets, total_pairs, len(instances)) if cfg.budgets else []
    refused = [line for b in budgets for s in cfg.sets if (line := b.refusal(s))]
    for line in refused:
        log.warning("compare: %s", line)
    plan = [(r, None, None) for r in references] + plan_rows(cfg, budgets)
    done = skipped = 0

    def finish(kind: str, name: str, row: dict, net: Callable | None, changed: bool) -> None:
        """Score the test folders the row lacks, and write it when anything changed."""
        missing = {k: v for k, v in tests.items() if k not in row.get("test", {})}
        if missing:
            net = net or _reload(kind, name, cfg, out, get_teacher)
            row.setdefault("test", {}).update(score_network(net, missing, cfg.crop_border, device))
        if missing or changed:
            atomic_write_json(os.path.join(rows_dir, f"{name}.json"), row)

    def train_group(group: list[tuple[str, int, str, dict, PairSet]]) -> None:
        """Train the students of ``group`` (made sets) together, then score and write their rows."""
        trained = train_students(cfg, [g[4] for g in group], [g[1] for g in group], val,
                                 [os.path.join(out, "train", g[2]) for g in group])
        for (kind, _, name, row, _), (net, info) in zip(group, trained):
            row.update(train_s=info["train_s"], train_segments_s=info["segments_s"], curve=info["curve"],
                       val=info["val"], patches_per_s=info["patches_per_s"], trained_with=info["trained_with"])
            finish(kind, name, row, net, True)
        clock["students"] += len(group)
        # a resumed student trained only its remaining steps: counted as that share of a row, so
        # that the first row after a resume does not make the estimate 3x too short (it said 92 s a row for 250 s rows)
        clock["rows_of_work"] += sum(info["steps_run"] for _, info in trained) / cfg.steps
        per_row = (time.perf_counter() - clock["t0"]) / max(clock["rows_of_work"], 1e-9)
        costs.begin("students", len(pending) * cfg.steps, clock["students"] * cfg.steps)
        costs.measured("students", clock["students"] * cfg.steps, per_row / cfg.steps)
        log.info("compare: %d of %d student rows made%s; about %s left at %.0f s a row (make + train, as measured "
                 "in this run)", clock["students"], len(pending), f" on rank {rank}" if world > 1 else "",
                 format_duration(costs.seconds_left() or 0.0), per_row)
        group.clear()

    group: list[tuple[str, int, str, dict, PairSet]] = []
    together = students_together(cfg)
    owners = _owners(plan, world)
    # what this rank will make, said up front; the time it takes, after each group of students
    pending = [p for p, owner in zip(plan, owners) if owner == rank and p[0] not in REFERENCES
               and not os.path.exists(os.path.join(rows_dir, f"{_row_file(cfg, *p)}.json"))]
    if not report_only:  # the teacher's pre-training, when it runs, then says what the whole command costs
        costs.declare("students", len(pending) * cfg.steps)
    if pending and not report_only:
        log.info("compare: %d student row(s) to make%s, %d steps each (%s at once)%s", len(pending),
                 f" on rank {rank} of {world}" if world > 1 else "", cfg.steps, together,
                 "; the time they take is said after the first" if len(pending) > 1 else "")
    if world > 1 and cfg.needs_teacher and not report_only:
        if rank == 0:
            with this_process_alone():
                get_teacher()
        barrier(world)  # the other ranks then find it in the cache
    # timed from the first student row made: the rows before it (bicubic, the teacher) are not a row's cost
    clock = {"students": 0, "rows_of_work": 0.0, "t0": None}
    with this_process_alone():  # each row is one rank's own work: no DDP, sharding or barrier inside
        for number, (kind, seed, budget) in enumerate(plan, 1):
            if owners[number - 1] != rank:
                continue
            name = _row_file(cfg, kind, seed, budget)
            row = _read(os.path.join(rows_dir, f"{name}.json"))
            if row is not None or report_only:
                skipped += row is not None
                if row is not None and not report_only:
                    finish(kind, name, row, None, False)
                continue
            row = {"row": cfg.row_name(kind), "kind": kind, "seed": seed, "device": device_name, "make_s": 0.0,
                   "train_s": 0.0}
            if budget is not None:
                row["budget"] = {"share": budget.share, "pairs": budget.pairs, "total": budget.total}
            log.info("compare: row %s (%d of %d)", name, number, len(plan))
            done += 1
            if kind in REFERENCES:
                if kind != "teacher":
                    net = baseline_network(cfg.degradation())[1]
                else:
                    net, info = get_teacher()
                    row.update(train_s=info.get("seconds", 0.0), steps=info["steps"], pairs=info["pairs"],
                               reused=info.get("reused", False))
                row["val"] = score_network(net, val, cfg.crop_border, device)["val"]
                finish(kind, name, row, net, True)
                continue
            t = time.perf_counter()
            clock["t0"] = clock["t0"] or t
            tnet, tinfo = get_teacher() if sets[kind].teacher else (None, None)
            bcfg, bimages, binstances = budget_view(cfg, budget, kind, seed, train_images, instances)
            added: dict = {}  # a method's settings, as <method>_settings
            pairs = make_set(kind, bcfg, seed, bimages, binstances, tnet, tinfo, os.path.join(out, "sets", name),
                             budget.pairs if budget else None, record=added)
            row["make_s"], row["pairs"] = time.perf_counter() - t, len(pairs)
            row["share"] = len(pairs) / total_pairs  # of the training split's patches
            row.update(added)
            group.append((kind, seed, name, row, pairs))
            if len(group) == together:
                train_group(group)
        if group:
            train_group(group)
    barrier(world)
    if owns_group:
        torch.distributed.destroy_process_group()
    if rank != 0:  # rank 0 writes the outputs of every rank's rows
        return CompareResult(os.path.abspath(out), "", "", "", "", done, skipped, {}, [])
    written = (write_budget_outputs(cfg, out, rows_dir, list(tests), budgets, refused) if budgets
               else write_outputs(cfg, out, rows_dir, list(tests)))
    return CompareResult(out=os.path.abspath(out), rows_done=done, rows_skipped=skipped, **written)


def _row_file(cfg: CompareConfig, kind: str, seed: int | None, budget: Budget | None) -> str:
    """A row's file and folder stem: ``<set>[-n<pairs>]-seed<s>``, or the reference's name."""
    return kind if seed is None else f"{cfg.row_stem(kind)}-{budget.tag + '-' if budget else ''}seed{seed}"


def _owners(plan: Sequence[tuple], world: int) -> list[int]:
    """The rank that makes each row of ``plan``: the references rank 0, the students in turn
    (a rerun with the same world size gives every rank the same rows, finished ones skipped)."""
    students = iter(range(len(plan)))
    return [0 if kind in REFERENCES else next(students) % world for kind, _, _ in plan]


def plan_rows(cfg: CompareConfig, budgets: Sequence[Budget]) -> list[tuple[str, int, Budget | None]]:
    """The (set, seed, budget) rows of ``cfg`` in the order they are made: every set at ``ratio``
    without budgets; with them, ``whole`` once, then each budget from the smallest, the sets a
    budget cannot make (:meth:`Budget.refusal`) left out."""
    if not budgets:
        return [(s, seed, None) for s in cfg.sets for seed in cfg.seeds]
    once = [("whole", seed, None) for seed in cfg.seeds if "whole" in cfg.sets]
    return once + [(s, seed, b) for b in budgets for s in cfg.sets if s != "whole" and b.refusal(s) is None
                   for seed in cfg.seeds]


def _reload(kind: str, name: str, cfg: CompareConfig, out: str, get_teacher) -> Callable:
    """The network of a finished row, to score test sets added later."""
    if kind in ("bicubic", "input"):
        return baseline_network(cfg.degradation())[1]
    if kind == "teacher":
        return get_teacher()[0]
    return load_checkpoint(build_model(cfg.model, cfg.factor), os.path.join(out, "train", name, "model.safetensors")).eval()
