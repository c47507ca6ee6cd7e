"""One way to seed a part of a run: ``derive_seed(run seed, what the part is)``.

A part's draws then depend only on the run's seed and the part's own name (an image's name, a draw
number, a step such as ``"matching"``), never on which other parts share its batch, rank or order,
so a resumed or re-sharded run draws the same numbers. Importable without torch (configs use it).
"""
from __future__ import annotations

import zlib

_MULTIPLIER = 1_000_003  # a prime above any draw or image count, so parts do not alias one another


def derive_seed(seed: int, *parts: int | str) -> int:
    """A seed in ``[0, 2**31)`` for the part of a run named by ``parts`` (ints, or strings such as an
    image name, folded in by their CRC-32), from the run's ``seed``: each part folds in as
    ``s · 1000003 + part``. ``derive_seed(seed, image_name)`` is IDC's per-image seed (unchanged
    since IDC's first release, so its random baseline and initial patches are the same draws)."""
    s = int(seed)
    for part in parts:
        s = (s * _MULTIPLIER + (zlib.crc32(part.encode()) if isinstance(part, str) else int(part))) % 2**31
    return s


def seeded_generator(seed: int, *parts: int | str):
    """A CPU ``torch.Generator`` seeded with ``derive_seed(seed, *parts)``."""
    import torch

    return torch.Generator().manual_seed(derive_seed(seed, *parts))


__all__ = ["derive_seed", "seeded_generator"]
