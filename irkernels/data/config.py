"""The data settings (how LQ inputs are made, how patches are cut), importable without torch so that
the CLI builds its flags from their defaults fast; ``degrade`` and ``images`` use and re-export them."""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("bicubic", "noise", "blur", "motion", "jpeg", "rain")


@dataclass
class DegradationConfig:
    """How LQ inputs are made from HQ images.

    ``kind``: ``bicubic`` (×``scale`` SR), ``noise`` (``noise_sigma`` on [0, 255]), ``blur``
    (Gaussian ``blur_sigma`` px), ``motion`` (``motion_length`` px at ``motion_angle`` deg), ``jpeg``
    (``jpeg_quality``), ``rain`` (``rain_density``, streaks of ``rain_length`` px). Only ``bicubic``
    changes the size.
    """

    kind: str = "bicubic"
    scale: int = 4
    noise_sigma: float = 25.0
    blur_sigma: float = 2.0
    motion_length: int = 15
    motion_angle: float = 45.0
    jpeg_quality: int = 30
    rain_density: float = 0.02
    rain_length: int = 15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"degradation kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def factor(self) -> int:
        """Spatial factor between HQ and LQ (``scale`` for bicubic, else 1)."""
        return self.scale if self.kind == "bicubic" else 1


@dataclass
class PatchConfig:
    """HR patch ``size`` (pixels, a multiple of the degradation's factor) and ``stride``."""

    size: int = 96
    stride: int = 96
