"""TripleD's inputs are image paths (read when needed: a DIV2K-size folder is not held in memory)
or in-memory ``Image``s; these helpers treat both alike."""
from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from ..data.images import Image, modcrop, read_image, read_size, to_float, to_tensor


class LazyTensors:
    """Images (paths or ``Image``) as float ``(3, H, W)`` tensors in [0, 1], read on access
    (mod-cropped to a multiple of ``mod``)."""

    def __init__(self, items: Sequence[str] | Sequence[Image], mod: int = 1) -> None:
        self.items, self.mod = items, mod

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> torch.Tensor:
        it = self.items[i]
        return to_float(to_tensor(modcrop(it.pixels if isinstance(it, Image) else read_image(it), self.mod)))


def item_name(item: str | Image) -> str:
    """An input's name: the ``Image``'s, or the file name without its extension."""
    return item.name if isinstance(item, Image) else os.path.splitext(os.path.basename(item))[0]


def load_item(item: str | Image) -> Image:
    return item if isinstance(item, Image) else Image(item_name(item), read_image(item))


def item_size(item: str | Image) -> tuple[int, int]:
    """``(H, W)`` of an input, a path's from its header (cheap on a DIV2K-size folder)."""
    return item.pixels.shape[:2] if isinstance(item, Image) else read_size(item)
