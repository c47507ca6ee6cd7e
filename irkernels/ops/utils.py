"""What every op shares: the argument vocabulary, the Triton import, and small kernel helpers.

One vocabulary across ops (as Liger-Kernel keeps its shared helpers in ``ops/utils.py``):

``precision`` — how much accuracy the op trades for speed, named as torch names matmul precision:

============  ======================================  =========================================
value         dots (Triton ``input_precision``)       special functions (ops that have them)
============  ======================================  =========================================
``"highest"`` fp32 FMA (``"ieee"``)                   accurate (libdevice)
``"high"``    3×TF32 (``"tf32x3"``, ≈ fp32 on         accurate
              tensor cores)
``"fast"``    TF32 (``"tf32"``)                       approximate after range reduction
============  ======================================  =========================================

Where an op departs from the table it says so in its docs: ``ncfd_loss`` / ``cf_stats`` keep the
phase dot ⟨t, x⟩ (the sin/cos argument) of ``"fast"`` in 3×TF32 and only its reductions in TF32,
since a TF32 phase is off by ~|θ|·2⁻¹¹ and the loss does not average that out (docs/ncfd.md).

float64 inputs always compute in float64 (``"ieee"``), whatever ``precision`` says; the torch
backend computes in the input's compute dtype (:func:`compute_dtype`) and ignores ``precision``
except where an op documents otherwise.

``backend`` — ``"auto"`` | ``"triton"`` | ``"torch"`` (see :mod:`irkernels.ops._backend`); an op with
a compiled CUDA-extension kernel uses it under ``"auto"``/``"triton"`` on CUDA tensors when it is
built, so the same string can be passed to every op unchanged.
"""
from __future__ import annotations

from typing import Literal

import torch

try:  # Triton is a Linux-only dependency: without it every op still runs its torch path.
    import triton
    import triton.language as tl
except ImportError:
    triton = None
    tl = None

Precision = Literal["fast", "high", "highest"]
PRECISIONS: tuple[str, ...] = ("fast", "high", "highest")
_DOT_PRECISION = {"highest": "ieee", "high": "tf32x3", "fast": "tf32"}


def check_precision(precision: object, allowed: tuple[str, ...] = PRECISIONS) -> str:
    """``precision`` itself if it is one of ``allowed``; else ``ValueError`` naming the argument."""
    if precision not in allowed:
        raise ValueError(f"precision must be one of {allowed}, got {precision!r}")
    return precision  # type: ignore[return-value]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype of every op: float64 stays float64, every other float computes in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def dot_precision(precision: str, dtype: torch.dtype) -> str:
    """Triton ``tl.dot`` ``input_precision`` for an op's ``precision`` and operand dtype (fp32 math
    for float64 operands and for half-precision ones, whose products are exact in fp32)."""
    if dtype != torch.float32:
        return "ieee"
    return _DOT_PRECISION[check_precision(precision)]


def conv_precision_from_torch() -> str:
    """The ``precision`` matching torch's convolution setting: ``"fast"`` while
    ``torch.backends.cudnn.allow_tf32`` (torch's default, so cuDNN convolutions use TF32), else
    ``"highest"`` — the default of ops whose eager equivalent is a convolution (``rlff``)."""
    return "fast" if torch.backends.cudnn.allow_tf32 else "highest"


def next_power_of_2(n: int) -> int:
    """Smallest power of two ``>= n`` (``1`` for ``n <= 1``); host-side tile arithmetic that also
    works without Triton."""
    return 1 << max(int(n) - 1, 0).bit_length()


def cdiv(a: int, b: int) -> int:
    """``⌈a / b⌉`` for non-negative ints (launch grids)."""
    return -(-a // b)


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA ``device`` (launch grids size themselves by it); 4 for the
    interpreter, whose programs run one after another (few, large chunks are fastest there)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4


def tile_config(tiles_cls: type, op: str, **tiles: int) -> object:
    """An op's frozen tile dataclass ``tiles_cls(**tiles)``, with the fields named in the JSON
    environment variable ``IRKERNELS_<OP>_TILES`` (e.g. ``IRKERNELS_RLFF_TILES='{"fwd_m": 64}'``)
    replacing the chosen values: the one tuning hook of every op, read once per launch plan."""
    import dataclasses
    import json
    import os

    raw = os.environ.get(f"IRKERNELS_{op.upper()}_TILES", "")
    override = json.loads(raw) if raw else {}
    names = {f.name for f in dataclasses.fields(tiles_cls)}
    unknown = sorted(set(override) - names)
    if unknown:
        raise ValueError(f"IRKERNELS_{op.upper()}_TILES names unknown tiles {unknown}; known: {sorted(names)}")
    return tiles_cls(**{**tiles, **override})
