"""The cost of a long stage, said up front: :class:`CostEstimate` times a stage's first steps and,
when the steps left would take longer than ``LONG_STAGE_S``, logs its estimate with the flag that
shortens the stage (the trainer, IDC's condensation, TripleD's VAE, distillation and fine-tuning
use it). Importable without torch."""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


# A run whose remaining steps would take longer than LONG_STAGE_S says so, with its measured cost,
# after ESTIMATE_AFTER_STEPS timed steps (the brief: stages over ~5 minutes print an estimate).
LONG_STAGE_S = 300.0
ESTIMATE_AFTER_STEPS = 5


def format_duration(seconds: float) -> str:
    """``seconds`` as minutes, or hours from one hour on (what an estimate is read in)."""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


class CostEstimate:
    """The one warning of a long stage: ``tick(step)`` as each of its ``steps`` steps begins (numbered
    from ``start``); the ``ESTIMATE_AFTER_STEPS`` steps after ``warmup`` untimed ones (allocator,
    cuDNN autotuning, lazy init) are timed, and when the steps left would take over ``LONG_STAGE_S``
    it logs what they will cost and ``hint``, how to make the stage shorter (``report=False``: it
    only times, as on the ranks other than 0 of a distributed run)."""

    def __init__(self, what: str, steps: int, hint: str, start: int = 0, warmup: int = 3, report: bool = True) -> None:
        self.what, self.steps, self.hint, self.report = what, steps, hint, report
        self.timed_from = start + min(warmup, max(0, steps - start - 1))
        self.estimate_at = self.timed_from + ESTIMATE_AFTER_STEPS
        self.t_start = time.perf_counter()

    def tick(self, step: int) -> None:
        if step == self.timed_from:
            self.t_start = time.perf_counter()
        elif step == self.estimate_at and self.report:
            per_step = (time.perf_counter() - self.t_start) / ESTIMATE_AFTER_STEPS
            left = per_step * (self.steps - step)
            if left > LONG_STAGE_S:
                log.warning("%s: about %s for the %d steps left (%.2f s a step, measured over %d steps); %s",
                            self.what, format_duration(left), self.steps - step, per_step, ESTIMATE_AFTER_STEPS, self.hint)


__all__ = ["CostEstimate", "ESTIMATE_AFTER_STEPS", "LONG_STAGE_S", "format_duration"]
