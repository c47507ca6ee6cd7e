"""One place that decides which implementation of an op runs.

``"triton"``: the fused Triton kernels (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``,
which is how the test-suite runs them). ``"torch"``: the plain-torch implementation, chunked so
that memory stays bounded; it runs on any device. ``"auto"`` picks Triton for CUDA tensors when
Triton imports, torch otherwise. ``IRKERNELS_BACKEND`` overrides ``"auto"`` process-wide.
"""
from __future__ import annotations

import os
import warnings
from typing import Literal

import torch

from .utils import triton

Backend = Literal["auto", "triton", "torch"]
_CHOICES = ("auto", "triton", "torch")


_WARNED: set[tuple[str, str]] = set()  # (op, reason) already said in this process


def interpreter_active() -> bool:
    """True when Triton kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available() -> bool:
    """Whether Triton imported (``irkernels.ops.utils`` tries once; every op's torch path runs
    without it)."""
    return triton is not None


def _asked(requested: str | None) -> str:
    """The backend asked for: ``requested``, with ``IRKERNELS_BACKEND`` standing in for ``"auto"``."""
    name = requested if requested is not None else "auto"
    return os.environ.get("IRKERNELS_BACKEND", "auto") if name == "auto" else name


def resolve_backend(requested: str | None, device: torch.device) -> str:
    """Return ``"triton"`` or ``"torch"`` for tensors on ``device``.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when Triton is asked for where
    it cannot run (no Triton, or a CPU tensor without the interpreter).
    """
    name = _asked(requested)
    if name not in _CHOICES:
        raise ValueError(f"backend must be one of {_CHOICES}, got {name!r}")
    if name == "auto":
        return "triton" if device.type == "cuda" and triton_available() else "torch"
    if name == "triton":
        if not triton_available():
            raise RuntimeError("backend='triton' requested but triton is not installed")
        if device.type != "cuda" and not interpreter_active():
            raise RuntimeError(
                f"backend='triton' needs CUDA tensors (got {device.type}); on CPU set "
                "TRITON_INTERPRET=1 before importing irkernels to run the kernels in the interpreter"
            )
    return name


def fused_or_torch(op: str, requested: str | None, device: torch.device, unsupported: str | None = None) -> str:
    """The one fallback rule of every op with Triton kernels: ``"triton"`` or ``"torch"`` for inputs
    on ``device``; ``unsupported`` says why the kernels do not take these inputs (``None``: they do).

    ============  ==========================  ====================================================
    asked         inputs the kernels take     inputs they do not take (``unsupported``)
    ============  ==========================  ====================================================
    ``"auto"``    Triton on CUDA, else torch  torch, silently
    ``"triton"``  Triton                      torch, with a warning naming the op and the reason
                                              (once per process): a caller passes one backend to
                                              every op of a pipeline, so one input an op's kernels
                                              do not take must not stop the run
    ``"torch"``   torch                       torch
    ============  ==========================  ====================================================

    Triton asked for where it cannot run at all (not installed; a CPU tensor without
    ``TRITON_INTERPRET=1``) is a ``RuntimeError`` (:func:`resolve_backend`)."""
    name = resolve_backend(requested, device)
    if name != "triton" or unsupported is None:
        return name
    if _asked(requested) == "triton" and (op, unsupported) not in _WARNED:
        _WARNED.add((op, unsupported))
        warnings.warn(f"{op}: the Triton kernels do not take {unsupported}; running the torch path", stacklevel=3)
    return "torch"


def backend_report() -> dict[str, object]:
    """What would run where: versions, CUDA, interpreter, the environment override and the CUDA
    extension, as one flat ``{name: value}`` dict (``cuda_extension``: loaded or not; the
    ``cuda_extension_*`` entries say from where, its ops, and otherwise why not)."""
    report: dict[str, object] = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "triton_available": triton_available(),
        "triton_interpreter": interpreter_active(),
        "IRKERNELS_BACKEND": os.environ.get("IRKERNELS_BACKEND", "auto"),
        "cuda_tensors": resolve_backend(None, torch.device("cuda")),
        "cpu_tensors": resolve_backend(None, torch.device("cpu")),
    }
    if triton_available():
        report["triton"] = triton.__version__
    if torch.cuda.is_available():
        report["device"] = torch.cuda.get_device_name()
    from ._ext import extension_status

    ext = extension_status()
    report["cuda_extension"] = ext.pop("cuda_extension")
    report.update({f"cuda_extension_{k}": v for k, v in ext.items()})
    return report
