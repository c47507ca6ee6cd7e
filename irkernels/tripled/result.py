"""What a TripleD run returns, apart from the run itself: ``pipeline`` makes it, ``training`` trains
on it, so neither has to import the other."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..methods import RunResult
from ..outputs import RunFolder


@dataclass
class TripleDResult(RunResult):
    """``RunResult`` plus what training on the result needs: the input ``items`` (paths or
    ``Image``), their ``names`` and complexity ``scores``, and the ``selected`` (index, type) pairs."""

    items: list
    names: list[str]
    scores: np.ndarray
    selected: list[tuple[int, str]]
    folder: RunFolder
    crops: torch.Tensor | None  # the crops the synthetic images started from (for the report)


__all__ = ["TripleDResult"]
