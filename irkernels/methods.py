"""The contract every condensation method follows, and how it registers (the registry that finds
the methods is :mod:`irkernels.registry`).

A method is one sub-package ``irkernels/<name>/`` (or a package of its own, registered through the
``irkernels.methods`` entry-point group); nothing outside it names it:

``config.py``
    One dataclass (a :class:`MethodConfig`), importable without torch, validated in
    ``__post_init__``. Its ``settings()`` is what determines the outputs (the execution knobs named
    in ``EXECUTION`` left out, at every nesting level); the run folder keeps it as its guard. Beside
    it, ``METHOD = MethodSpec(...)``: the method's registration, next to the method, which the
    registry finds there.
``pipeline.py``
    ``run(cfg, out, *, data=None, overwrite=False, ...) -> RunResult``: data → networks → the method
    → outputs, each step a plain function. Outputs go to a :class:`irkernels.outputs.RunFolder`
    (one record per finished unit of work, so re-running the same call resumes), then
    ``manifest.json`` (``RunFolder.write_manifest``) and ``report.html``.
``report.py``
    ``write_report(...) -> path``, built from :mod:`irkernels.outputs`' helpers (tables, thumbnails
    at a readable size with counts, before/after rows, a real-vs-synthetic distribution figure,
    paths relative to the report).
``cli.py``
    ``FLAGS``, a :class:`irkernels.flags.FlagTable`: the ``--help`` text and the config's flags, from
    which the CLI builds the method's sub-command (``python -m irkernels.pipeline <name>``).
``compare.py``
    The functions that make the method's rows of ``compare`` (:class:`CompareSet` ``make``), each
    from a :class:`SetRequest`.

Everything here imports without torch (a registration only names ``module:attribute`` strings,
imported when asked for).
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
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
class CompareSet:
    """One training set (a row) of ``compare``: one of a method's (``MethodSpec.compare``) or one of
    the comparison's own (whole, random, the coresets, random-images).

    ``make``: ``"module:function"``, ``make(request: SetRequest) -> PairSet`` (imported when a row
    is made). ``unit``: ``"patch"`` (keeps ``ratio`` of each image's patches; at a budget of fewer
    patches than images, one patch of each of a random subset of images), ``"image"`` (keeps whole
    images: a budget counts images, and below half an image it has no row) or ``"split"`` (picks a
    budget's ``count`` patches over the whole split at once). ``teacher``: it needs the comparison's
    teacher (its feature network, or the labeller of its HR targets). ``same_size``: it is made for
    the same-size tasks too (else SR only). ``scales``: the SR factors it can make (``None``: all).
    ``control``: ``(set, step)``: the set its own step is measured against at one budget, and what
    that step is (``"IDC's condensation over its relabelled initial patches"``). ``split_when``:
    ``(field, value)``: the set's unit is ``"split"`` when the method's settings give ``field`` that
    value (IDC's ``scope=split`` condenses the whole split at once)."""

    make: str
    unit: str = "patch"
    teacher: bool = True
    same_size: bool = False
    scales: tuple[int, ...] | None = None
    control: tuple[str, str] | None = None
    split_when: tuple[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.unit not in ("patch", "image", "split"):
            raise ValueError(f"unit must be 'patch', 'image' or 'split', got {self.unit!r}")

    def unit_for(self, settings: dict) -> str:
        """The unit of the row made with the method's ``settings`` (``split_when``)."""
        if self.split_when is not None and settings.get(self.split_when[0]) == self.split_when[1]:
            return "split"
        return self.unit

    def maker(self) -> Callable[[SetRequest], Any]:
        return _resolve(self.make)


@dataclass
class SetRequest:
    """What ``compare`` hands a set's ``make``: which row (``kind``, ``seed``), the comparison's
    settings (``task`` ``"sr"`` or a same-size task of ``irkernels.data.config.SAME_SIZE_TASKS``;
    ``scale``; ``ratio``, the share it keeps, a budget's when there is one; the patch grid
    ``lr_patch`` / ``lr_stride`` in LR pixels; ``feature_model``, the teacher's architecture;
    ``settings``, the method's own settings given to the comparison, over its config's defaults),
    the training split (``images``, and their patches ``instances``, ``irkernels.patches.Instance``),
    the ``teacher`` network and its ``teacher_info`` (``None`` for a set that needs none), the row's
    own ``folder`` (for a method that writes a run folder: resumable there), ``count`` (a budget's
    patches, for a ``"split"`` set), ``device`` and ``progress``. ``record``: fields the set adds
    to its row (a method: its config's settings, as ``<name>_settings``)."""

    kind: str
    seed: int
    task: str
    scale: int
    ratio: float
    lr_patch: int
    lr_stride: int
    feature_model: str
    settings: dict
    images: list
    instances: list
    teacher: Any
    teacher_info: dict | None
    folder: str
    count: int | None
    device: str
    progress: bool
    record: dict = field(default_factory=dict)

    @property
    def factor(self) -> int:
        """Output side over input side: ``scale`` for SR, 1 for a same-size task."""
        return self.scale if self.task == "sr" else 1

    def stored_pairs(self, folder: str | None = None) -> Any:
        """The pairs of a run folder (default: the row's) as stored (uint8 PNGs), cut into the
        comparison's patches: what a method that writes a run folder returns."""
        from .data import PatchConfig, load_paired_folder, make_pairs_from_paired

        f = self.factor
        return make_pairs_from_paired(load_paired_folder(folder or self.folder, f), f,
                                      PatchConfig(self.lr_patch * f, self.lr_stride * f))


@dataclass(frozen=True)
class MethodSpec:
    """A method's registration: what the package needs of it, each as ``"module:attribute"``
    (imported only when asked for, so that reading the registry needs no torch).

    ``name``, a one-line ``help``; ``config``: its config dataclass; ``run``: its run function;
    ``report``: the function writing its ``report.html``; ``flags``: its
    :class:`irkernels.flags.FlagTable` (the CLI builds the sub-command ``name`` from it; without
    one the command has only ``--data``, ``--out``, ``--overwrite``); ``compare``: the rows it adds
    to ``compare``, set name → :class:`CompareSet`; ``fixed``: the config fields the comparison sets
    itself (from its own settings), which its ``--<name> KEY=VALUE`` settings cannot."""

    name: str
    help: str
    config: str
    run: str
    report: str | None = None
    flags: str | None = None
    compare: dict[str, CompareSet] = field(default_factory=dict)
    fixed: tuple[str, ...] = ()

    def config_class(self) -> type:
        return _resolve(self.config)

    def runner(self) -> Callable[..., RunResult]:
        return _resolve(self.run)

    def reporter(self) -> Callable[..., str] | None:
        return _resolve(self.report) if self.report else None

    def flag_table(self) -> Any:
        """The :class:`irkernels.flags.FlagTable`, or ``None``."""
        return _resolve(self.flags) if self.flags else None


__all__ = ["CompareSet", "MethodConfig", "MethodSpec", "RunResult", "SetRequest", "next_train_command"]
