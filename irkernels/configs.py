"""The trainer's and the evaluation's settings, importable without torch so that the CLI builds its
flags from their defaults fast; ``irkernels.train`` and ``irkernels.evaluate`` use and re-export them.
``path_value`` / ``with_paths``: a nested setting named by its dotted path (``latent.steps``), the
one way the CLI and ``compare`` set them."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from .data.config import DegradationConfig
from .methods import MethodConfig


@dataclass
class TrainConfig(MethodConfig):
    """Training settings; ``out_dir`` receives ``last.pt`` (resume), ``model.safetensors``, ``log.csv``."""

    out_dir: str = "runs/train"
    steps: int = 1000
    batch_size: int = 16
    accum_steps: int = 1
    lr: float = 3e-4
    min_lr: float = 1e-6
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    loss: str = "l1"
    grad_clip: float = 0.0
    amp: bool = True
    channels_last: bool = True
    ema_decay: float = 0.0
    augment: bool = True
    seed: int = 0
    ckpt_every: int = 500
    log_every: int = 10
    resume: bool = True
    tensorboard: bool = False
    progress: bool = True
    device: str = "auto"

    # what does not change what a resumed run computes (steps: a run may be extended), so a checkpoint
    # written with other values resumes
    EXECUTION: ClassVar[tuple[str, ...]] = ("out_dir", "steps", "ckpt_every", "log_every", "resume", "tensorboard",
                                            "progress", "device")

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "l2"):
            raise ValueError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        if self.steps < 1 or self.batch_size < 1 or self.accum_steps < 1:
            raise ValueError(f"steps, batch_size and accum_steps must be >= 1, got {self.steps}, "
                             f"{self.batch_size}, {self.accum_steps}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


@dataclass
class EvalConfig:
    """``sets``: folders to score (name = folder name); ``crop_border`` ``None`` → the SR scale
    (0 for size-preserving degradations)."""

    sets: list[str] = field(default_factory=list)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    crop_border: int | None = None
    device: str = "auto"
    json_path: str | None = None


def path_value(config: Any, path: str) -> Any:
    """The value of the field at dotted ``path`` of a (nested) dataclass: ``latent.steps``."""
    for name in path.split("."):
        config = getattr(config, name)
    return config


def with_paths(config: Any, values: dict[str, Any], _within: str = "") -> Any:
    """A copy of dataclass ``config`` with each dotted path of ``values`` set (``{"ratio": 0.1,
    "latent.steps": 3}``), nested configs copied too; every changed level is validated again by its
    ``__post_init__``. ``TypeError`` naming the path when a field does not exist."""
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        name, _, rest = path.partition(".")
        if not hasattr(config, name):
            raise TypeError(f"{type(config).__name__} has no field {name!r} (in {_within + path!r})")
        if rest:
            nested.setdefault(name, {})[rest] = value
        else:
            top[name] = value
    top.update({name: with_paths(getattr(config, name), inner, f"{_within}{name}.") for name, inner in nested.items()})
    return replace(config, **top) if top else config
