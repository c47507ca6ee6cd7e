"""Budgets of a data-efficiency sweep: what "keep a share ``b`` of the training split" means for
each set, so that every row of one budget trains its student on the same number of LR pixels.

The unit is the comparison's LR patch (``lr_patch``² LR pixels and its HR target): the training
split holds ``total`` of them (every training image cut on the patch grid, as ``whole`` trains on),
and budget ``b`` keeps ``pairs = max(1, round(b · total))`` of them.

- Patch-level sets (``CompareSet.unit`` "patch": random, random+teacher, idc, herding, kcenter)
  keep ``pairs`` patches: with at least one patch per image, ``max(1, round(pairs/total · N_i))``
  of image ``i``'s ``N_i`` patches (IDC's per-image rule, so the totals are exactly ``pairs`` when
  the images are of one size, as CBSD432's are); with fewer ``pairs`` than training images,
  ``pairs`` images drawn at random for the set's seed (the same images for random, random+teacher
  and idc, so IDC's control stays its initial patches; the draws of a smaller budget are a prefix
  of a larger one's), one patch each.
- Global sets (unit "split": kcenter+teacher, herding+teacher) pick ``pairs`` patches over the
  whole split at once.
- Image-level sets (unit "image": random-images and the TripleD rows) keep
  ``selection_count(n, pairs/total)`` whole images, the number whose patches come nearest
  ``pairs``; a budget below half an image's patches cannot be made by them and is refused for them
  in one line. TripleD adds its distilled
  crops to its images: its row trains on more pixels than the budget, and its actual share is what
  the curve plots.

Importable without torch (the CLI's checks use it).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..data.config import selection_count
from ..seeds import derive_seed
from .config import compare_sets


@dataclass(frozen=True)
class Budget:
    """Budget ``share`` (as asked) of a training split of ``total`` patches in ``images`` images."""

    share: float
    total: int
    images: int

    @property
    def pairs(self) -> int:
        """The patches a patch-level set keeps: ``max(1, round(share · total))``."""
        return max(1, round(self.share * self.total))

    @property
    def ratio(self) -> float:
        """The per-image ratio that keeps ``pairs`` (IDC's and TripleD's ``ratio``)."""
        return self.pairs / self.total

    @property
    def tag(self) -> str:
        """The budget's part of a row's file and folder names: ``n<pairs>``."""
        return f"n{self.pairs}"

    def whole_images(self) -> int:
        """How many whole images an image-level set keeps (0: the budget is below half an image)."""
        return selection_count(self.images, self.ratio, minimum=0)

    def refusal(self, kind: str) -> str | None:
        """Why set ``kind`` cannot be made at this budget (one line), or ``None`` when it can."""
        if compare_sets()[kind].unit == "image" and self.whole_images() < 1:
            return (f"{kind} keeps whole images ({self.total / self.images:.0f} patches each on average): budget "
                    f"{self.share:g} ({self.pairs} patches) is below half an image, so it has no row there")
        return None

    def image_subset(self, seed: int, names: Sequence[str]) -> list[int] | None:
        """For a patch-level set with fewer ``pairs`` than images: the indices (sorted) of the ``pairs``
        images it draws for ``seed``, the first ``pairs`` of one seeded permutation; else ``None``."""
        if self.pairs >= self.images:
            return None
        import random

        order = sorted(range(len(names)), key=lambda i: names[i])  # by name: independent of the list's order
        random.Random(derive_seed(seed, "budget-images")).shuffle(order)
        return sorted(order[:self.pairs])


def make_budgets(shares: Sequence[float], total: int, images: int) -> list[Budget]:
    """The budgets of ``shares`` over a split of ``total`` patches in ``images`` images, smallest
    first; ``ValueError`` naming two shares that round to the same number of patches."""
    budgets = sorted((Budget(s, total, images) for s in shares), key=lambda b: b.share)
    for a, b in zip(budgets, budgets[1:]):
        if a.pairs == b.pairs:
            raise ValueError(f"budgets {a.share:g} and {b.share:g} both keep {a.pairs} of the training split's "
                             f"{total} patches; give budgets further apart")
    return budgets


__all__ = ["Budget", "make_budgets"]
