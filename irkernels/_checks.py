"""Argument validation shared by the ops: every error names the argument and what was expected.

Two kinds of check. Shape / dtype / device checks read only metadata: they always run. Value
checks (non-finite entries, index ranges) read the data and make the host wait for the device, so
they run only while :func:`value_checks_enabled` (default on; off inside ``torch.compile`` graphs).
Pipelines check their data once where it enters and run their loops under
``value_checks(False)``: a steady-state step then makes no host sync.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import torch

_state = threading.local()


def value_checks_enabled() -> bool:
    """True unless inside ``value_checks(False)`` or while ``torch.compile`` traces."""
    if torch.compiler.is_compiling():
        return False
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Turn the ops' value checks (NaN/Inf, index ranges: each a host sync) on or off in this
    thread for the ``with`` block, e.g. ``with irkernels.value_checks(False): train_loop()``."""
    previous = getattr(_state, "enabled", True)
    _state.enabled = bool(enabled)
    try:
        yield
    finally:
        _state.enabled = previous

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def check_float_tensor(name: str, value: object, ndim: int | Sequence[int] | None = None) -> torch.Tensor:
    """A floating-point tensor of the given rank(s); raises ``TypeError`` / ``ValueError``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32/float16/bfloat16/float64, got {value.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.dim() not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}, got shape {tuple(value.shape)}")
    return value


def check_finite(name: str, value: torch.Tensor) -> None:
    """Raises ``ValueError`` if ``value`` holds NaN or Inf: one ``aminmax`` pass (NaN propagates to
    both ends, ±Inf shows at one end), no ``value``-sized temporary, one device sync.
    Skipped while value checks are off."""
    if value.numel() == 0 or not value_checks_enabled():
        return
    low, high = torch.aminmax(value.detach())
    if not bool(torch.isfinite(low) & torch.isfinite(high)):
        raise ValueError(f"{name} contains NaN or Inf")


def check_same_device(**tensors: torch.Tensor | None) -> torch.device:
    """All given tensors on one device; returns it."""
    present = {k: v for k, v in tensors.items() if v is not None}
    devices = {v.device for v in present.values()}
    if len(devices) > 1:
        listing = ", ".join(f"{k} on {v.device}" for k, v in present.items())
        raise ValueError(f"tensors must be on one device, got {listing}")
    return devices.pop()


def check_index_tensor(name: str, value: object, length: int, upper: int, device: torch.device) -> int | None:
    """An integer tensor of shape ``(length,)`` with values in ``[0, upper)`` on ``device``.

    Returns its largest value (-1 when empty), read in the same single device sync as the range
    check, so a caller that needs it (e.g. a group count) does not sync again. While value checks
    are off the range is not read and ``None`` is returned: a caller then needs the bound another
    way (an explicit count argument).
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {value.dtype}")
    if value.shape != (length,):
        raise ValueError(f"{name} must have shape ({length},), got {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{name} must be on {device}, got {value.device}")
    if not length:
        return -1
    if not value_checks_enabled():
        return None
    low, high = (int(v) for v in torch.stack(torch.aminmax(value)).tolist())
    if low < 0 or high >= upper:
        raise ValueError(f"{name} values must lie in [0, {upper}), got range [{low}, {high}]")
    return high


def check_offsets(name: str, value: object, total: int) -> tuple[int, ...]:
    """Offsets ``(B+1,)`` of a packed ragged batch: integers, ``0`` first, ``total`` last,
    non-decreasing. Returns the per-instance sizes (one host sync)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {value.dtype}")
    if value.dim() != 1 or value.numel() < 2:
        raise ValueError(f"{name} must have shape (B+1,) with B >= 1, got {tuple(value.shape)}")
    offs = [int(v) for v in value.tolist()]
    if offs[0] != 0 or offs[-1] != total:
        raise ValueError(f"{name} must start at 0 and end at {total} (the number of rows), got {offs[0]}..{offs[-1]}")
    sizes = tuple(b - a for a, b in zip(offs[:-1], offs[1:]))
    if any(n < 0 for n in sizes):
        raise ValueError(f"{name} must be non-decreasing, got {offs[:16]}")
    return sizes
