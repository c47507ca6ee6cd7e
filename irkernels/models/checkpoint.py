"""Loading user / official checkpoints (``.pth``, ``.pt``, ``.safetensors``) and saving safetensors."""
from __future__ import annotations

import os

import torch
from torch import nn

from ..outputs import atomic_write_bytes

# Wrappers used by the official releases and common trainers, tried in this order.
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")
# Buffers that the networks recompute themselves (SwinIR's shifted-window masks depend on the size).
DERIVED_SUFFIXES = ("attn_mask",)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensor dict stored at ``path``: unwraps ``params_ema``/``params``/``state_dict``/``model``
    and strips DDP's ``module.`` prefix."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        sd: object = load_file(path)
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    while isinstance(sd, dict):
        key = next((k for k in WRAPPER_KEYS if k in sd and isinstance(sd[k], dict)), None)
        if key is None:
            break
        sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"checkpoint {path!r} holds no state dict (looked inside {', '.join(WRAPPER_KEYS)})")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_checkpoint(model: nn.Module, path: str, strict: bool = True) -> nn.Module:
    """Load ``path`` into ``model`` (in place; returned). With ``strict``, any missing or unexpected
    key other than recomputed buffers raises ``ValueError`` listing them."""
    sd = {k: v for k, v in read_state_dict(path).items() if not k.endswith(DERIVED_SUFFIXES)}
    own = model.state_dict()
    other = [k for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if other:  # instead of load_state_dict's "size mismatch" line per tensor
        k = other[0]
        raise ValueError(f"checkpoint {path!r} holds another network than {type(model).__name__} with these "
                         f"settings: {len(other)} tensor(s) differ in shape, e.g. {k} {tuple(sd[k].shape)} vs "
                         f"{tuple(own[k].shape)} (another --model or --scale?)")
    result = model.load_state_dict(sd, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ValueError(f"checkpoint {path!r} does not fit {type(model).__name__}: "
                         f"missing {result.missing_keys[:8]}, unexpected {result.unexpected_keys[:8]}")
    return model


def checkpoint_metadata(model: nn.Module) -> dict[str, str]:
    """What a saved file says about its network: ``model`` (the registry name ``build_model`` gave
    it, when it did) and ``scale``."""
    name = getattr(model, "registry_name", None)
    scale = int(getattr(model, "scale", getattr(model, "upscale", 1)))
    return {"scale": str(scale), **({"model": name} if name else {})}


def read_metadata(path: str) -> dict[str, str]:
    """The metadata of a safetensors file (``{}`` for other formats or none)."""
    if not path.endswith(".safetensors") or not os.path.isfile(path):
        return {}
    from safetensors import safe_open

    with safe_open(path, "pt") as fh:
        return dict(fh.metadata() or {})


def save_checkpoint(model: nn.Module | dict[str, torch.Tensor], path: str, metadata: dict[str, str] | None = None) -> str:
    """Save ``model``'s state dict (or a tensor dict) as safetensors, atomically; returns ``path``."""
    from safetensors.torch import save

    sd = model.state_dict() if isinstance(model, nn.Module) else model
    tensors = {k.removeprefix("module."): v.detach().cpu().contiguous() for k, v in sd.items()}
    # serialised in memory: safetensors' own file writer creates owner-only (0600) files
    return atomic_write_bytes(path, save(tensors, metadata=metadata))
