"""Coreset baselines at the same budget: pick ``n`` of an instance's ``N`` real patches.

All work on the same per-patch feature vectors: the feature extractor's deep features of the LR
patch, mean-pooled over space, ``(N, c)`` (the network IDC matches distributions with, reduced to
one vector per patch as herding / k-center need).
"""
from __future__ import annotations

import torch


def random_selection(num: int, n: int, generator: torch.Generator) -> list[int]:
    """``n`` distinct indices of ``range(num)``, uniformly."""
    return torch.randperm(num, generator=generator)[:n].tolist()


def herding(features: torch.Tensor, n: int) -> list[int]:
    """Welling's herding: greedily add the patch that keeps the running mean of the chosen
    features closest (L2) to the instance's mean. ``features (N, D)``; ties → lowest index."""
    x = features.double()
    target = x.mean(0)
    chosen: list[int] = []
    total = torch.zeros_like(target)
    free = torch.ones(len(x), dtype=torch.bool)
    for i in range(n):
        err = ((target - (total + x) / (i + 1)) ** 2).sum(1).masked_fill(~free, float("inf"))
        j = int(err.argmin())
        chosen.append(j)
        free[j] = False
        total += x[j]
    return chosen


def kcenter(features: torch.Tensor, n: int) -> list[int]:
    """Greedy k-center (farthest-first traversal), started at the patch nearest the mean:
    each step adds the patch farthest (L2) from everything chosen. ``features (N, D)``."""
    x = features.double()
    first = int(((x - x.mean(0)) ** 2).sum(1).argmin())
    chosen = [first]
    dist = ((x - x[first]) ** 2).sum(1)
    dist[first] = -1.0  # never re-picked, even when the rest are duplicates (distance 0)
    for _ in range(n - 1):
        j = int(dist.argmax())
        chosen.append(j)
        dist = torch.minimum(dist, ((x - x[j]) ** 2).sum(1))
        dist[chosen] = -1.0
    return chosen
