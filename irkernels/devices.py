"""Device resolution and the torchrun process group, in one place for the trainer, the evaluation
and every method."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_ALONE = [False]  # inside this_process_alone(): this rank's work is its own


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; any other name (``"cpu"``, ``"cuda"``,
    ``"cuda:1"``, ``"mps"``…) as ``torch.device``. ``ValueError`` naming the argument for an
    unknown name, or for CUDA asked for where there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but torch sees no CUDA GPU; use 'cpu' or 'auto'")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} asked for, but there are {torch.cuda.device_count()} CUDA device(s)")
    return device


def dist_info() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; ``(0, 1, local rank)`` inside
    :func:`this_process_alone`."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if _ALONE[0]:
        return 0, 1, local_rank
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), local_rank


def barrier(world: int) -> None:
    """Wait for every rank (under torchrun with the process group joined; nothing otherwise)."""
    if world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()


@contextmanager
def this_process_alone() -> Iterator[None]:
    """Within the block every part of the package runs as in a single process (rank 0 of 1: no DDP,
    no sharding, no barrier), also under torchrun: for a unit of work one rank does by itself, as
    ``compare`` spreads whole rows (a set made, a student trained) over the ranks."""
    before = _ALONE[0]
    _ALONE[0] = True
    try:
        yield
    finally:
        _ALONE[0] = before


def join_process_group(device: torch.device) -> tuple[torch.device, bool]:
    """Under torchrun (world size > 1): join the process group (NCCL on CUDA, gloo otherwise) unless
    it exists, and pin this rank's GPU. Returns the rank's device and whether this call created
    the group (its creator destroys it). One process: ``(device, False)``, nothing done."""
    _, world, local_rank = dist_info()
    if world == 1:
        return device, False
    import torch.distributed as dist

    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device, owns_group
