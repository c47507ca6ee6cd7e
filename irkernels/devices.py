"""Device resolution, in one place for the trainer, the evaluation and every method."""
from __future__ import annotations

import torch


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
