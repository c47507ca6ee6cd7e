"""The data settings (how LQ inputs are made, how patches are cut), importable without torch so that
the CLI builds its flags from their defaults fast; ``degrade`` and ``images`` use and re-export them.
Also the named same-size tasks (``SAME_SIZE_TASKS``) and how many items a share keeps
(``patches_kept`` per image, ``selection_count`` of images), which the methods and ``compare`` share."""
from __future__ import annotations

import math
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


# The same-size restoration tasks by name (TripleD's task presets and compare's same-size tasks):
# deblur is Gaussian σ = 2 px; JPEG quality 30; rain: 2 % drop density, 15 px streaks.
SAME_SIZE_TASKS = {
    "denoise25": DegradationConfig(kind="noise", noise_sigma=25.0),
    "deblur": DegradationConfig(kind="blur", blur_sigma=2.0),
    "derain": DegradationConfig(kind="rain", rain_density=0.02, rain_length=15),
    "jpeg": DegradationConfig(kind="jpeg", jpeg_quality=30),
}


def patches_kept(ratio: float, num: int) -> int:
    """The patches a ``ratio`` keeps of an image's ``num``: ``max(1, round(ratio·num))`` (a ratio
    that rounds to zero patches still keeps one; IDC's ``n``)."""
    return max(1, round(ratio * num))


def check_fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"{name} must be a fraction in (0, 1], got {value!r}")
    return float(value)


def selection_count(n: int, p: float, minimum: int = 1) -> int:
    """How many of ``n`` candidates a fraction ``p`` keeps: ``max(minimum, floor(p·n + 0.5))``, at most ``n``."""
    check_fraction("p", p)
    if n < 1:
        raise ValueError(f"need at least one candidate, got n={n}")
    return min(n, max(minimum, math.floor(p * n + 0.5)))
