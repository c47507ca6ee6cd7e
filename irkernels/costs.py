"""What a command costs, said up front and kept current.

A command declares its stages with their step counts (:func:`command_plan`, a :class:`CommandPlan`:
``idc`` = pre-training + condensation, ``tripled`` = scorer + pre-training + VAE + distillation +
fine-tuning + training on the output, each when it runs; ``compare`` = the teacher's pre-training + its
student rows). Every stage that loops over steps times
its steps with a :class:`CostEstimate` (the trainer, IDC's condensation, TripleD's scorer, VAE,
distillation and fine-tuning), which reports its measured seconds a step to the plan. The plan
estimates the time left for the whole command: a stage measured at its own rate, a stage not run yet
at the rate of the stage measured last — and it says so (the stages' steps cost differently, see
:class:`CommandPlan`). When the command's time left exceeds ``LONG_STAGE_S``, each stage logs one
line after its first timed steps: its own estimate, the flag that shortens it, and the command's
estimate with each stage's share; the stage's progress bar shows the command's time left in its
postfix, refreshed at most every ``REFRESH_S`` seconds (host clock: no device sync). Without a
plan (API use, ``train``, the stages inside ``compare``'s rows) a stage is a one-stage plan of its own.
Importable without torch."""
from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)


# A command whose remaining steps would take longer than LONG_STAGE_S says so, with its measured cost,
# after ESTIMATE_AFTER_STEPS timed steps (the brief: stages over ~5 minutes print an estimate) that
# follow WARMUP_STEPS untimed ones (allocator, cuDNN autotuning, lazy init); a bar's estimate is
# refreshed at most every REFRESH_S seconds after that.
LONG_STAGE_S = 300.0
ESTIMATE_AFTER_STEPS = 5
WARMUP_STEPS = 3
REFRESH_S = 5.0

# The stages a command may declare, in the order they run; a CostEstimate names one of them.
STAGES = ("scorer", "pre-training", "condensation", "VAE", "distillation", "fine-tuning", "training",
          "students")  # compare's student rows, each made and trained (counted in training steps)


def format_duration(seconds: float) -> str:
    """``seconds`` as seconds under a minute, minutes, or hours from one hour on (what an estimate is read in)."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _check_stage(name: str) -> None:
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; one of {STAGES}")


class _Stage:
    def __init__(self, name: str, steps: int) -> None:
        self.name, self.steps, self.done = name, steps, 0
        self.per_step: float | None = None  # measured seconds a step, once timed
        self.over = False  # a later stage began: this one is finished (or was skipped: cached, reused)


class CommandPlan:
    """The stages of one command, ``[(name, steps), ...]`` in the order they run, and the time left.

    ``begin(name, steps, start)`` as a stage starts (its real count replaces the declared one; the
    stages declared before it are over, run or skipped); ``measured(name, done, per_step)`` as it
    is timed. ``seconds_left()`` is ``None`` until a stage is measured; then a measured stage counts
    at its own rate and a stage not run yet at the rate of the stage measured last.

    Why not a table of measured ratios between the stages' steps: they scale with different
    settings — pre-training, distillation and fine-tuning with the feature network (EDSR-baseline's
    step is ~10× edsr-tiny's), distillation and fine-tuning with the number of synthetic crops, the
    VAE with none of these — so a ratio measured once holds at that one setting (tripled's defaults on
    2 CPU cores: a tiny-VAE step 0.22 s, 7 min 29 s for 2000 (docs/tripled.md), a pre-training step
    of EDSR-baseline ×4 0.57 s, 19 min for 2000 (README): 0.39, and 0 with the CPU recipe, which
    skips the VAE). The estimate therefore says which stages are measured and which are counted at
    another's rate, and each stage replaces the guess by its own rate as soon as it is timed."""

    def __init__(self, command: str, stages: Sequence[tuple[str, int]], *, check: bool = True) -> None:
        names = [name for name, _ in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"a stage is declared twice: {names}")
        for name, steps in stages:
            if check:
                _check_stage(name)
            if steps < 0:
                raise ValueError(f"stage {name!r} has {steps} steps; must be >= 0")
        self.command = command
        self.stages = {name: _Stage(name, steps) for name, steps in stages}
        self.latest: str | None = None  # the stage measured last

    def __contains__(self, name: str) -> bool:
        return name in self.stages

    def begin(self, name: str, steps: int, start: int = 0) -> None:
        """Stage ``name`` starts at step ``start`` of ``steps``: every stage declared before it is over."""
        for stage in self.stages.values():
            if stage.name == name:
                break
            stage.over = True
        stage = self.stages[name]
        stage.steps, stage.done, stage.over = steps, start, False

    def declare(self, name: str, steps: int) -> None:
        """Stage ``name`` will have ``steps`` steps (known only once the command has looked at its
        inputs); unlike ``begin`` the stages before it are not over."""
        self.stages[name].steps = steps

    def measured(self, name: str, done: int, per_step: float) -> None:
        """Stage ``name`` has done ``done`` steps and takes ``per_step`` seconds a step."""
        stage = self.stages[name]
        stage.done, stage.per_step, self.latest = done, per_step, name

    def remaining(self) -> dict[str, float] | None:
        """Seconds left per stage with steps left, in order (``None`` before any stage is measured)."""
        if self.latest is None:
            return None
        rate = self.stages[self.latest].per_step
        return {s.name: (s.steps - s.done) * (s.per_step if s.per_step is not None else rate)
                for s in self.stages.values() if not s.over and s.steps > s.done}

    def seconds_left(self) -> float | None:
        left = self.remaining()
        return None if left is None else sum(left.values())

    def shares(self) -> dict[str, int]:
        """Each stage's share of the time left in whole per cent, summing to 100 (largest remainders)."""
        left = self.remaining() or {}
        total = sum(left.values())
        if total <= 0:
            return {}
        exact = {name: 100 * s / total for name, s in left.items()}
        out = {name: int(v) for name, v in exact.items()}
        for name in sorted(exact, key=lambda n: out[n] - exact[n])[:100 - sum(out.values())]:
            out[name] += 1
        return out

    def describe(self) -> str | None:
        """``"tripled: about 42 min left in all (pre-training 60 %, VAE 25 %, …; measured: pre-training;
        not run yet, counted at pre-training's rate a step: VAE, …)"``; ``None`` before a measurement."""
        left = self.remaining()
        if left is None:
            return None
        shares = ", ".join(f"{name} {share} %" for name, share in self.shares().items())
        measured = [n for n in left if self.stages[n].per_step is not None]
        guessed = [n for n in left if self.stages[n].per_step is None]
        parts = [shares] if shares else []
        if measured:
            parts.append("measured: " + ", ".join(measured))
        if guessed:
            parts.append(f"not run yet, counted at {self.latest}'s rate a step: " + ", ".join(guessed))
        return f"{self.command}: about {format_duration(sum(left.values()))} left in all ({'; '.join(parts)})"


_plans: list[CommandPlan] = []


def active_plan() -> CommandPlan | None:
    """The plan of the command running now (``None`` outside :func:`command_plan`)."""
    return _plans[-1] if _plans else None


@contextlib.contextmanager
def command_plan(command: str, stages: Sequence[tuple[str, int]]) -> Iterator[CommandPlan]:
    """The command's plan for the ``with`` block: a new one of ``stages``, or the one already in
    force when an outer caller declared it first (the CLI that adds a stage after the method's run;
    ``compare``, whose plan of pre-training + students leaves each stage inside its rows a plan of
    its own)."""
    if _plans:
        yield _plans[-1]
        return
    plan = CommandPlan(command, stages)
    _plans.append(plan)
    try:
        yield plan
    finally:
        _plans.remove(plan)


class CostEstimate:
    """One stage's timing: ``tick(step)`` as each of its ``steps`` steps begins (numbered from
    ``start``); the steps after ``warmup`` untimed ones (default ``WARMUP_STEPS``) are timed on the
    host clock. After ``ESTIMATE_AFTER_STEPS`` of them the stage reports its rate to the command's
    plan (the active :func:`command_plan` when it declares ``stage``, else a plan of this stage
    alone) and, when the plan's time left exceeds ``LONG_STAGE_S``, logs its own estimate, ``hint``
    (how to make the stage shorter) and the command's estimate with each stage's share. From then on
    the rate is refreshed every ``REFRESH_S`` seconds, ``postfix`` holds ``{"left": …}`` (the
    command's time left) and ``bar`` (a tqdm bar, optional) shows it. ``report=False``: it only
    times, as on the ranks other than 0 of a distributed run."""

    def __init__(self, what: str, steps: int, hint: str, start: int = 0, warmup: int | None = None,
                 report: bool = True, *, stage: str | None = None, bar: Any = None) -> None:
        if stage is not None:
            _check_stage(stage)
        self.what, self.steps, self.hint, self.report, self.bar = what, steps, hint, report, bar
        warmup = WARMUP_STEPS if warmup is None else warmup
        self.timed_from = start + min(warmup, max(0, steps - start - 1))
        plan = active_plan()
        if stage is not None and plan is not None and stage in plan:
            self.plan, self.key = plan, stage
        else:
            self.key = stage or what
            self.plan = CommandPlan(plan.command if plan is not None else "", [(self.key, steps)], check=False)
        self.plan.begin(self.key, steps, start)
        self.t_start = self.t_shown = time.perf_counter()
        self.t_step: int | None = None  # the step timing started at
        self.estimated = False
        self.postfix: dict[str, str] = {}

    def now(self) -> float:
        return time.perf_counter()

    def tick(self, step: int) -> None:
        if self.t_step is None:
            if step >= self.timed_from:
                self.t_start, self.t_step = time.perf_counter(), step
            return
        timed = step - self.t_step
        if timed < ESTIMATE_AFTER_STEPS:
            return
        now = time.perf_counter()
        if self.estimated and now - self.t_shown < REFRESH_S:
            return
        per_step = (now - self.t_start) / timed
        self.plan.measured(self.key, step, per_step)
        self.t_shown = now
        self._show()
        if not self.estimated:
            self.estimated = True
            if self.report:
                self._warn(step, per_step, timed)

    def _show(self) -> None:
        left = self.plan.remaining()
        if not left:
            return
        text = format_duration(sum(left.values()))
        self.postfix = {"left": f"{text} for {len(left)} stages" if len(left) > 1 else text}
        if self.bar is not None:
            self.bar.set_postfix(self.postfix)

    def _warn(self, step: int, per_step: float, timed: int) -> None:
        left = self.plan.remaining() or {}
        if sum(left.values()) <= LONG_STAGE_S:
            return
        line = (f"{self.what}: about {format_duration(per_step * (self.steps - step))} for the {self.steps - step} "
                f"steps left ({per_step:.2f} s a step, measured over {timed} steps); {self.hint}")
        if len(left) > 1:
            line += f". {self.plan.describe()}"
        log.warning("%s", line)


__all__ = ["CommandPlan", "CostEstimate", "ESTIMATE_AFTER_STEPS", "LONG_STAGE_S", "REFRESH_S", "STAGES",
           "WARMUP_STEPS", "active_plan", "command_plan", "format_duration"]
