"""The contract every condensation method follows (the registry that finds them is the CLI's,
``irkernels.pipeline.registry``).

A method is a sub-package ``irkernels/<name>/`` plus one CLI file ``irkernels/pipeline/<name>_cmd.py``:

``config.py``
    One dataclass (a :class:`MethodConfig`), importable without torch, validated in
    ``__post_init__``. Its ``settings()`` is what determines the outputs (the execution knobs named
    in ``EXECUTION`` left out, at every nesting level); the run folder keeps it as its guard. Beside
    it, ``METHOD = MethodSpec(...)``: the method's registration, next to the method.
``pipeline.py``
    ``run(cfg, out, *, data=None, overwrite=False, ...) -> RunResult``: data → networks → the method
    → outputs, each step a plain function. Outputs go to a :class:`irkernels.outputs.RunFolder`
    (one record per finished unit of work, so re-running the same call resumes), then
    ``manifest.json`` (``RunFolder.write_manifest``) and ``report.html``.
``report.py``
    ``write_report(...) -> path``, built from :mod:`irkernels.outputs`' helpers (tables, thumbnails
    at a readable size with counts, before/after rows, a real-vs-synthetic distribution figure,
    paths relative to the report).
``<name>_cmd.py``
    ``NAME``, ``HELP``, ``add_arguments(parser)``, ``run(args)`` as every command, and ``METHOD``
    (the config module's): ``irkernels.pipeline.registry`` collects the ``METHOD`` of the command
    modules, so the CLI needs no edit (``tests/test_layers.py``' LAYERS and ``compare``'s sets do:
    ``docs/methods.md``).

Everything here imports without torch (a registration only names ``module:attribute`` strings).
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, ClassVar


class MethodConfig:
    """Base of every config dataclass whose settings guard what it made (a method's run folder,
    ``train``'s checkpoint, a pre-trained network's cache key, a comparison): ``settings()`` = the
    fields (nested dataclasses as dicts) without the execution knobs named in ``EXECUTION`` (device,
    progress bars, caches, batch sizes that change nothing but speed), dropped at every nesting
    level. The one way the package says which settings are execution-only."""

    EXECUTION: ClassVar[tuple[str, ...]] = ()

    def settings(self) -> dict:
        if not is_dataclass(self):
            raise TypeError(f"{type(self).__name__} must be a dataclass")
        drop = set(self.EXECUTION)

        def strip(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k not in drop}
            return value

        return strip(asdict(self))

    def to_dict(self) -> dict:
        return asdict(self)


def next_train_command(out: str, scale: int) -> str:
    """The ``next:`` line a method prints: train a network on the run folder it just wrote (``train``
    picks a patch size that fits the folder's pairs, so this runs as printed)."""
    out = os.path.normpath(out)  # "runs/idc/" → "runs/idc-trained", not a folder inside the run
    return f"next: python -m irkernels.pipeline train --data {out} --scale {scale} --out {out}-trained"


@dataclass
class RunResult:
    """What a method's ``run`` returns: where its outputs are and how many.

    ``manifest``, ``report`` and ``pairs`` are ``None`` on ranks other than 0 of a distributed run
    (rank 0 writes them). ``units``: units of work of the run (instances, images, ...), ``skipped``:
    those this call found finished and did not redo (a resumed run)."""

    method: str
    out: str
    scale: int
    units: int
    skipped: int
    manifest: str | None
    report: str | None
    pairs: int | None

    def summary(self, next_step: bool = True) -> str:
        """What the CLI prints: counts, where the files are, and (``next_step``) the command that
        trains a network on them."""
        if self.pairs is None:
            return f"{self.method}: this rank's units done in {self.out} (rank 0 writes the manifest and report)"
        return (f"{self.method}: {self.pairs} LR/HR pairs from {self.units} unit(s) in {self.out}"
                f"{f' ({self.skipped} already finished)' if self.skipped else ''}\n"
                f"  manifest: {self.manifest}\n  report:   {self.report}"
                + (f"\n{next_train_command(os.path.relpath(self.out), self.scale)}" if next_step else ""))


def _resolve(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class MethodSpec:
    """A method's registration: its ``name``, a one-line ``help``, and where its config dataclass
    and run function live, as ``"module:attribute"`` (imported only when asked for)."""

    name: str
    help: str
    config: str
    run: str

    def config_class(self) -> type:
        return _resolve(self.config)

    def runner(self) -> Callable[..., RunResult]:
        return _resolve(self.run)


__all__ = ["MethodConfig", "MethodSpec", "RunResult", "next_train_command"]
