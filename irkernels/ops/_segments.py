"""Ragged batches of point sets: one packed ``(ΣN_b, D)`` tensor plus ``offsets (B+1,)``.

The k-means and grouping ops accept three input layouts and work internally on the packed one:

* ``(N, D)``: one instance;
* ``(B, N, D)``: a padded batch, optionally with ``lengths (B,)`` (rows ``lengths[b]:`` of
  instance ``b`` are padding and are ignored);
* ``(ΣN_b, D)`` with ``offsets (B+1,)``: a packed ragged batch, instance ``b`` is rows
  ``offsets[b]:offsets[b+1]`` (the variable-length-attention convention).
"""
from __future__ import annotations

import functools
import itertools
import weakref
from dataclasses import dataclass

import torch

from .._checks import check_float_tensor, check_offsets, value_checks_enabled

# id(offsets) -> (weak reference, version counter, sizes): the sizes of a packed batch are read to
# the host once per offsets tensor (one sync where the data enters), not on every call reusing it.
# (Keyed by id: tensors compare elementwise, so they cannot be dictionary keys themselves.)
_SIZES_SEEN: dict[int, tuple[weakref.ref, int, tuple[int, ...]]] = {}
_SIZES_SEEN_MAX = 64


@dataclass(frozen=True)
class Packing:
    """How packed rows split into instances, instance after instance: ``offsets (B+1,)`` int64 on
    the rows' device, the per-instance ``sizes`` on the host, and the instance of every row."""

    offsets: torch.Tensor
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, sizes: tuple[int, ...], device: torch.device) -> Packing:
        sizes = tuple(int(n) for n in sizes)
        return cls(device_offsets(sizes, device), sizes)

    @property
    def num_instances(self) -> int:
        return len(self.sizes)

    # plain properties, not functools.cached_property: its lock stops torch.compile from tracing
    @property
    def starts(self) -> list[int]:
        out, pos = [], 0
        for n in self.sizes:
            out.append(pos)
            pos += n
        return out

    @property
    def instance_ids(self) -> torch.Tensor:
        """``(P,)`` int64: the instance each packed row belongs to (from the device offsets: no
        host-to-device copy, no sync); computed once per batch."""
        ids = self.__dict__.get("_instance_ids")
        if ids is None:
            dev = self.offsets.device
            ids = torch.repeat_interleave(torch.arange(len(self.sizes), device=dev), self.offsets.diff(),
                                          output_size=sum(self.sizes))
            object.__setattr__(self, "_instance_ids", ids)  # frozen dataclass: a private cache
        return ids


@dataclass(frozen=True, kw_only=True)
class Segments(Packing):
    """A packed batch of points: ``points (P, D)`` with the ``Packing`` of its instances, and how to
    give results back in the caller's layout."""

    points: torch.Tensor
    layout: str = "packed"  # "single" | "padded" | "packed"
    padded_len: int = 0  # N of a (B, N, D) input

    def unpack_rows(self, values: torch.Tensor, fill: float | int) -> torch.Tensor:
        """Per-row results ``(P, ...)`` back in the caller's layout (padding rows get ``fill``)."""
        if self.layout != "padded":
            return values
        out = values.new_full((self.num_instances, self.padded_len) + tuple(values.shape[1:]), fill)
        for b, (start, n) in enumerate(zip(self.starts, self.sizes)):
            out[b, :n] = values[start:start + n]
        return out

    def unpack_instances(self, values: torch.Tensor) -> torch.Tensor:
        """Per-instance results ``(B, ...)``; a single instance drops the batch axis."""
        return values[0] if self.layout == "single" else values


def pack(x: object, *, offsets: torch.Tensor | None = None, lengths: torch.Tensor | None = None,
         name: str = "x") -> Segments:
    """Validate ``x`` (and ``offsets`` / ``lengths``) and return the packed form.

    Raises ``ValueError`` for empty instances, NaN/Inf, or conflicting layout arguments.
    """
    x = check_float_tensor(name, x, ndim=(2, 3))
    if x.dim() == 3:
        if offsets is not None:
            raise ValueError(f"offsets is for a packed 2-D {name}; got a 3-D (padded) {name} — use lengths")
        batch, length = x.shape[0], x.shape[1]
        if lengths is None:
            sizes = (length,) * batch
        else:
            if not isinstance(lengths, torch.Tensor) or lengths.dtype.is_floating_point or lengths.shape != (batch,):
                raise ValueError(f"lengths must be an integer tensor of shape ({batch},), got {lengths!r}")
            sizes = tuple(int(n) for n in lengths.tolist())
            if any(n < 0 or n > length for n in sizes):
                raise ValueError(f"lengths must lie in [0, {length}], got {list(sizes)}")
        points = torch.cat([x[b, :n] for b, n in enumerate(sizes)]) if lengths is not None else x.reshape(-1, x.shape[2])
        layout, padded_len = "padded", length
    else:
        if lengths is not None:
            raise ValueError(f"lengths is for a padded 3-D {name}; a packed 2-D {name} takes offsets")
        if offsets is None:
            sizes, layout = (x.shape[0],), "single"
        else:
            sizes, layout = _packed_sizes(offsets, x.shape[0]), "packed"
        points, padded_len = x, 0
    empty = [b for b, n in enumerate(sizes) if n == 0]
    if empty:
        raise ValueError(f"{name}: instance(s) {empty[:8]} have no points; every instance needs at least one")
    if points.shape[1] == 0:
        raise ValueError(f"{name} must have at least one feature column, got shape {tuple(x.shape)}")
    if value_checks_enabled() and not bool(torch.isfinite(points).all()):
        raise ValueError(f"{name} contains NaN or Inf")
    points = points.contiguous()
    if layout == "packed" and offsets.device == x.device:
        offs = offsets.to(torch.int64)
    else:
        # (traced under torch.compile, where the offsets become a graph constant instead)
        make = device_offsets.__wrapped__ if torch.compiler.is_compiling() else device_offsets
        offs = make(tuple(sizes), x.device)
    return Segments(offs, tuple(sizes), points=points, layout=layout, padded_len=padded_len)


def _packed_sizes(offsets: torch.Tensor, total: int) -> tuple[int, ...]:
    """:func:`~irkernels._checks.check_offsets`, remembered per offsets tensor (until it is
    modified in place): a loop that passes the same offsets every step syncs once."""
    cacheable = isinstance(offsets, torch.Tensor) and not torch.compiler.is_compiling()
    seen = _SIZES_SEEN.get(id(offsets)) if cacheable else None
    if seen is not None and seen[0]() is offsets and seen[1] == offsets._version and sum(seen[2]) == total:
        return seen[2]
    sizes = check_offsets("offsets", offsets, total)
    if cacheable:
        if len(_SIZES_SEEN) >= _SIZES_SEEN_MAX:  # drop entries whose tensor is gone, else the oldest
            dead = [key for key, entry in _SIZES_SEEN.items() if entry[0]() is None]
            for key in dead or [next(iter(_SIZES_SEEN))]:
                del _SIZES_SEEN[key]
        _SIZES_SEEN[id(offsets)] = (weakref.ref(offsets), offsets._version, sizes)
    return sizes


@functools.lru_cache(maxsize=64)
def device_offsets(sizes: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``(B+1,)`` int64 offsets of ``sizes`` on ``device``, cached (a host-to-device copy is a
    synchronising op; callers never write to it)."""
    return torch.tensor((0, *itertools.accumulate(sizes)), dtype=torch.int64, device=device)


def segment_sum(values: torch.Tensor, segments: Segments) -> torch.Tensor:
    """``(B, ...)`` sums of ``values (P, ...)`` over each instance, in float64.

    Uses a cumulative sum rather than ``index_add_`` so that the result is deterministic on CUDA
    too (float atomics are not)."""
    cum = torch.cumsum(values.double(), dim=0)
    cum = torch.cat([torch.zeros_like(cum[:1]), cum])
    return cum[segments.offsets[1:]] - cum[segments.offsets[:-1]]


def sq_dists_to_sets(segments: Segments, sets: torch.Tensor, chunk_rows: int = 16384) -> torch.Tensor:
    """``(P, S)`` squared L2 distances of each packed point to the ``S`` vectors of its instance.

    ``sets (B, S, D)``. Uses ``‖x‖² − 2⟨x, c⟩ + ‖c‖²`` (the kernels' formula, so argmins agree)
    clamped at 0, in the dtype of ``sets``; one GEMM per instance and row chunk bounds memory.
    """
    set_norms = (sets * sets).sum(-1)  # (B, S)
    out = torch.empty(segments.points.shape[0], sets.shape[1], dtype=sets.dtype, device=sets.device)
    sizes = segments.sizes
    if len(sizes) > 1 and len(set(sizes)) == 1:  # equal sizes: batched GEMMs, no per-instance loop
        n, step = sizes[0], max(1, chunk_rows // len(sizes))
        points, view = segments.points.view(len(sizes), n, -1), out.view(len(sizes), n, -1)
        for lo in range(0, n, step):
            rows = points[:, lo:lo + step].to(sets.dtype)
            dots = torch.bmm(rows, sets.transpose(1, 2))
            view[:, lo:lo + step] = ((rows * rows).sum(-1, keepdim=True) - 2 * dots + set_norms[:, None]).clamp_min_(0)
        return out
    for b, (start, n) in enumerate(zip(segments.starts, segments.sizes)):
        for lo in range(start, start + n, chunk_rows):
            hi = min(lo + chunk_rows, start + n)
            rows = segments.points[lo:hi].to(sets.dtype)
            dots = rows @ sets[b].T
            out[lo:hi] = ((rows * rows).sum(-1, keepdim=True) - 2 * dots + set_norms[b]).clamp_min_(0)
    return out
