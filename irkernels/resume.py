"""A loop over steps that keeps its state when it is asked to stop, and resumes from it.

The stages that optimise for many steps outside the trainer (IDC's condensation of a batch,
TripleD's scorer and VAE training, latent distillation and CNN fine-tuning) run their steps through
:class:`StepCheckpoint`; :func:`irkernels.train.train` has its own ``last.pt``::

    ckpt = StepCheckpoint(path, "latent distillation", cfg.steps, key={...})
    if ckpt.state is not None:             # a stopped (or finished) run of the same stage
        restore(ckpt.state)                # the stage puts its tensors, optimizer, generators back
    with ckpt:                             # Ctrl-C / SIGTERM become a stop request in here
        for step in ckpt.steps(snapshot):  # ckpt.start, ..., total - 1
            ...                            # one step
    ckpt.finish(snapshot)                  # the finished state, until the caller records the outputs

On a stop request (:mod:`irkernels.stopping`: Ctrl-C, SIGTERM) the step in progress is finished,
``snapshot()`` (a dict of what the stage needs to go on: tensors, state dicts, lists, numbers) is
written atomically with the step count and torch's global RNG (CPU and CUDA), and
``KeyboardInterrupt("SIGINT: <what> stopped after step s of n; checkpoint <path>")`` is raised,
which the command line turns into "interrupted (...); run the same command again to resume" (exit
130). The same call again finds the file, restores the state and continues with step ``s``; on a
deterministic device it then ends exactly as an uninterrupted run.

``finish`` keeps the final state under the same name, so that a stage finished before a later one
of the same unit was stopped is not redone; the caller deletes the file (``discard``) once the
stage's outputs are recorded. A file written under another ``key`` (other settings or inputs) is
ignored and replaced. Without a path (``path=None``) the loop is a plain ``range``: no signal is
caught and nothing is written. The loop adds no host sync to a step: the request is a Python flag.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch

from .outputs import atomic_path
from .stopping import stop_at_step_boundary

log = logging.getLogger(__name__)

Snapshot = Callable[[], dict]


def fingerprint(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' shapes, dtypes and bytes: the inputs part of a checkpoint's key."""
    digest = hashlib.sha256()
    for tensor in tensors:
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def key_name(key: Any) -> str:
    """A short file-name-safe digest of a JSON-able ``key`` (e.g. a batch's instance names)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def global_rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StepCheckpoint:
    """The checkpoint of one stage's loop of ``total`` steps at ``path`` (module docstring).

    ``what`` names the stage in the interrupt's message; ``key`` (JSON-able: settings, input
    fingerprints) must equal the stored one for a file to be resumed. After construction:
    ``state`` is the stored ``snapshot()`` (``None`` without a file), ``start`` the steps it had
    done, ``finished`` whether the stage had ended (then ``steps`` yields nothing)."""

    def __init__(self, path: str | None, what: str, total: int, key: Any = None) -> None:
        self.path, self.what, self.total = path, what, total
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))  # as stored and read back
        self.state: dict | None = None
        self.start, self.finished, self._rng = 0, False, None
        self._stop, self._handling, self._pending = None, None, None
        if path is None or not os.path.exists(path):
            return
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("key") != self.key or saved.get("what") != what:
            log.warning("%s: %s was written with other settings or inputs; starting afresh", what, path)
            return
        self.state, self.start, self.finished, self._rng = saved["state"], saved["step"], saved["finished"], saved["rng"]
        log.info("%s: resuming from %s at step %d of %d%s", what, path, self.start, total,
                 " (finished)" if self.finished else "")

    def __enter__(self) -> StepCheckpoint:
        """Within the block, Ctrl-C and SIGTERM are stop requests that ``steps`` honours (with a path)."""
        if self.path is not None:
            self._handling = stop_at_step_boundary()
            self._stop = self._handling.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._handling is not None:
            handling, stop, self._handling, self._stop = self._handling, self._stop, None, None
            if exc[0] is None and stop.requested:  # the loop was left (``break``) in the step asked to stop
                self._pending = stop
            handling.__exit__(*exc)

    def steps(self, snapshot: Snapshot) -> Iterator[int]:
        """The step numbers still to do. Torch's global RNG is put back as it was when the state was
        written (when resuming) before the first; inside the ``with`` block, a stop request asked
        during a step writes ``snapshot()`` after it and raises ``KeyboardInterrupt``."""
        if self._rng is not None:
            set_global_rng_state(self._rng)
            self._rng = None
        if self.finished:
            return
        for step in range(self.start, self.total):
            yield step
            if self._stop is not None and self._stop.requested:  # the step is done: keep it
                self.save(snapshot(), step + 1)
                raise self._stop.interrupt(f"{self.what} stopped after step {step + 1} of {self.total}; "
                                           f"checkpoint {self.path}")

    def progress_bar(self, show: bool, desc: str):
        """A tqdm bar over the ``total`` steps that starts at ``start`` (``None`` unless ``show``)."""
        if not show:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=self.total, initial=self.start, desc=desc, dynamic_ncols=True)

    def save(self, state: dict, step: int, finished: bool = False) -> None:
        """Write ``state`` as the stage's state after ``step`` steps, atomically (no-op without a path)."""
        if self.path is None:
            return
        with atomic_path(self.path) as tmp:
            torch.save({"what": self.what, "key": self.key, "step": step, "finished": finished,
                        "rng": global_rng_state(), "state": state}, tmp)

    def finish(self, snapshot: Snapshot, step: int | None = None) -> None:
        """Keep the final state (``step``: the steps done, default ``total``) until ``discard``. A stop
        asked for in the step the loop was left from (a stage that ends early) is honoured here."""
        if self.path is not None and not self.finished:
            step = self.total if step is None else step
            self.save(snapshot(), step, finished=True)
            if self._pending is not None:
                stop, self._pending = self._pending, None
                raise stop.interrupt(f"{self.what} stopped after step {step}, its last; checkpoint {self.path}")

    def discard(self) -> None:
        """Delete the file: the stage's outputs are recorded elsewhere."""
        if self.path is not None and os.path.exists(self.path):
            os.unlink(self.path)


__all__ = ["StepCheckpoint", "fingerprint", "global_rng_state", "key_name", "set_global_rng_state"]
