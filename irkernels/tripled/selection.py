"""TripleD step 2: choosing the most complex images (paper §3.2, §4.7).

Counts (``irkernels.data.config.selection_count``): a fraction ``p`` of ``n`` candidates keeps
``k = max(minimum, floor(p·n + 0.5))`` (round half up; at least one image, at least one per type
for balanced selection). Ties in score are broken by
the lower index (stable sort), so selection is deterministic.

Balanced (all-in-one) selection over ``T`` degradation types splits ``k`` exactly: every type gets
``k // T`` and the first ``k % T`` types (in the order given) one more.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.config import check_fraction, selection_count  # noqa: F401  (re-exported)
from ..seeds import derive_seed


def ranking(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices by decreasing score, ties by increasing index."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not np.isfinite(s).all():
        raise ValueError(f"scores must be a 1-D array of finite values, got shape {s.shape}")
    return np.argsort(-s, kind="stable")


def select_top(scores: Sequence[float] | np.ndarray, p: float) -> np.ndarray:
    """Indices of the top ``selection_count(len(scores), p)`` scores, best first."""
    order = ranking(scores)
    return order[: selection_count(len(order), p)]


def balanced_counts(k: int, types: Sequence[str]) -> dict[str, int]:
    """``k`` split over ``types``: ``k // T`` each, one more for the first ``k % T``."""
    if not types:
        raise ValueError("types must not be empty")
    q, r = divmod(k, len(types))
    return {t: q + (i < r) for i, t in enumerate(types)}


def select_balanced(scores: Sequence[float] | np.ndarray, types: Sequence[str], p: float,
                    type_order: Sequence[str] | None = None) -> np.ndarray:
    """Top-scoring candidates with exact per-type counts, for a pool labelled by degradation type.

    ``k = selection_count(n, p, minimum=T)`` is split by ``balanced_counts`` (over ``type_order``,
    default: types in order of first appearance); each type keeps its own best. Raises if a type
    has fewer candidates than its share. Returns indices grouped by type, best first in each.
    """
    labels = list(types)
    if len(labels) != len(scores):
        raise ValueError(f"types must label every score: {len(labels)} types for {len(scores)} scores")
    order_types = list(type_order) if type_order is not None else list(dict.fromkeys(labels))
    unknown = set(labels) - set(order_types)
    if unknown:
        raise ValueError(f"types {sorted(unknown)} are not in type_order {order_types}")
    counts = balanced_counts(selection_count(len(labels), p, minimum=len(order_types)), order_types)
    order = ranking(scores)
    out = []
    for t in order_types:
        of_type = [i for i in order if labels[i] == t]
        if len(of_type) < counts[t]:
            raise ValueError(f"type {t!r} has {len(of_type)} candidates, fewer than its share {counts[t]}")
        out += of_type[: counts[t]]
    return np.asarray(out, dtype=np.int64)


def deal_to_types(selected: Sequence[int], types: Sequence[str]) -> list[tuple[int, str]]:
    """All-in-one data from clean images: the selected images (best first) are dealt to the types
    round-robin, so each image is degraded once and the counts are ``balanced_counts``."""
    if not types:
        raise ValueError("types must not be empty")
    return [(int(i), types[r % len(types)]) for r, i in enumerate(selected)]


@dataclass
class DynamicSampler:
    """Epoch-wise dynamic selection: epoch ``e`` draws ``k = selection_count(n, p)`` images at random
    (without replacement, seeded by ``derive_seed(seed, "epoch", e)``) from the top ``q(e)`` fraction, where ``q`` goes
    from ``q_start`` at epoch 0 to ``p`` at the last epoch (``schedule`` linear or cosine), so the
    bar rises as training proceeds.
    """

    scores: np.ndarray
    p: float = 0.02
    q_start: float = 0.2
    epochs: int = 10
    schedule: str = "linear"
    seed: int = 0

    def __post_init__(self) -> None:
        check_fraction("p", self.p)
        check_fraction("q_start", self.q_start)
        if self.q_start < self.p:
            raise ValueError(f"q_start must be >= p, got q_start={self.q_start}, p={self.p}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")
        self.order = ranking(self.scores)
        self.k = selection_count(len(self.order), self.p)

    def q(self, epoch: int) -> float:
        """The pool fraction at ``epoch`` (clamped to the last epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        f = min(epoch, self.epochs - 1) / max(self.epochs - 1, 1)
        if self.schedule == "cosine":
            f = (1 - math.cos(math.pi * f)) / 2
        return self.q_start + (self.p - self.q_start) * f

    def pool(self, epoch: int) -> np.ndarray:
        """Indices of the top-``q(epoch)`` pool (never smaller than ``k``)."""
        size = max(self.k, selection_count(len(self.order), self.q(epoch)))
        return self.order[:size]

    def indices(self, epoch: int) -> np.ndarray:
        """The ``k`` indices of ``epoch``, sorted."""
        rng = np.random.default_rng(derive_seed(self.seed, "epoch", epoch))
        return np.sort(rng.choice(self.pool(epoch), size=self.k, replace=False))


__all__ = ["DynamicSampler", "balanced_counts", "check_fraction", "deal_to_types", "ranking", "select_balanced",
           "select_top", "selection_count"]
