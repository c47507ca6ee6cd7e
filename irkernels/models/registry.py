"""Restoration networks by name: ``MODELS`` (name → builder taking the up-scaling factor)."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .edsr import EDSR, edsr, edsr_baseline
from .swinir import SwinIR, swinir_classical, swinir_lightweight
from .tripled_cnn import TripleDCNN


def _swinir_restoration(_scale: int) -> SwinIR:
    return SwinIR(1, 180, (6,) * 6, (6,) * 6, 8, 2.0, "")


MODELS: dict[str, Callable[[int], nn.Module]] = {
    "edsr-baseline": edsr_baseline,
    "edsr": edsr,
    "edsr-tiny": lambda scale: EDSR(scale, n_resblocks=4, n_feats=32),  # demos and CPU tests
    # a teacher wider than edsr-tiny for CPU-scale work (about 4x its work per pixel): a teacher
    # stronger than its students, as the IDC paper's MambaIRv2 teaching EDSR
    "edsr-small": lambda scale: EDSR(scale, n_resblocks=4, n_feats=64),
    "swinir-light": swinir_lightweight,
    "swinir-classical": swinir_classical,
    "swinir-restoration": _swinir_restoration,
    "tripled-cnn": lambda _scale: TripleDCNN(),
}


def build_model(name: str, scale: int = 4) -> nn.Module:
    """A network by name (``MODELS``) for up-scaling factor ``scale`` (1 for restoration tasks).

    ``swinir-restoration`` and ``tripled-cnn`` are size-preserving; the others take ``scale`` 1, 2,
    3, 4 or 8 (SwinIR-light needs ``scale > 1``).
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, got {name!r}")
    if name.startswith("swinir-") and name != "swinir-restoration" and scale == 1:
        raise ValueError(f"{name} is an SR network; use swinir-restoration for scale 1")
    net = MODELS[name](scale)
    net.registry_name = name  # saved with the weights (checkpoint_metadata), so a file says what it holds
    return net


def model_scale(model: nn.Module) -> int:
    """The spatial factor between a network's output and input (1 for size-preserving ones)."""
    return int(getattr(model, "scale", getattr(model, "upscale", 1)))
