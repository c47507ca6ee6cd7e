"""The comparison's own training sets (``compare.config``'s ``PATCH_SETS``, ``GLOBAL_SETS``,
``IMAGE_SETS``), each ``make(request) -> PairSet`` from an :class:`irkernels.methods.SetRequest`
as a method's sets are: real patches of the training split (:mod:`irkernels.patches`), picked per
image or over the whole split, some relabelled by the teacher."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..data import PairSet
from ..data.config import patches_kept, selection_count
from ..devices import resolve_device
from ..methods import SetRequest
from ..patches import Instance, extract_features, herding, kcenter, pick_patches, relabel


def pairs_of(instances: Sequence[Instance], picks: Sequence[Sequence[int]] | None = None) -> PairSet:
    """The real LR/HR patches of ``instances`` (all, or ``picks[i]`` of instance ``i``)."""
    if picks is None:
        return PairSet(torch.cat([i.lr for i in instances]), torch.cat([i.hr for i in instances]),
                       [i.name for i in instances for _ in range(len(i))])
    return PairSet(torch.cat([i.lr[list(p)] for i, p in zip(instances, picks)]),
                   torch.cat([i.hr[list(p)] for i, p in zip(instances, picks)]),
                   [i.name for i, p in zip(instances, picks) for _ in p])


def whole(request: SetRequest) -> PairSet:
    """Every patch of the training split."""
    return pairs_of(request.instances)


def picked(request: SetRequest) -> PairSet:
    """``random`` / ``herding`` / ``kcenter`` / ``random+teacher``: ``ratio`` of each image's patches
    picked as ``idc --method`` picks them (``random``: the patches IDC starts from for the same
    seed; herding / k-center on the teacher's features); ``random+teacher`` relabels the random
    pick's LR patches with the teacher."""
    device = resolve_device(request.device)
    picks = [pick_patches(request.kind, i, patches_kept(request.ratio, len(i)), request.seed, request.teacher, device)
             for i in request.instances]
    data = pairs_of(request.instances, picks)
    if request.kind == "random+teacher":
        data = PairSet(data.lq, relabel(request.teacher, data.lq, device), data.sources)
    return data


def global_selection(kind: str, instances: Sequence[Instance], count: int, teacher: nn.Module,
                     device: torch.device) -> list[list[int]]:
    """``count`` patches of the whole split picked at once by k-center (``kcenter+teacher``) or herding
    (``herding+teacher``) on the teacher's deep features mean-pooled per patch (what the per-image
    coresets use); as per-instance index lists. Deterministic: the seed changes only the student."""
    lr = torch.cat([i.lr for i in instances])
    feats = extract_features(teacher.to(device).eval(), lr, device).mean(dim=(2, 3)).cpu()
    chosen = (kcenter if kind == "kcenter+teacher" else herding)(feats, min(count, len(lr)))
    starts = torch.tensor([0] + [len(i) for i in instances]).cumsum(0).tolist()
    return [sorted(j - s for j in chosen if s <= j < e) for s, e in zip(starts, starts[1:])]


def global_picked(request: SetRequest) -> PairSet:
    """``kcenter+teacher`` / ``herding+teacher``: ``count`` patches (a budget's; by default as many as
    ``random`` keeps) over the whole split (:func:`global_selection`), relabelled by the teacher."""
    device = resolve_device(request.device)
    count = request.count or sum(patches_kept(request.ratio, len(i)) for i in request.instances)
    data = pairs_of(request.instances, global_selection(request.kind, request.instances, count, request.teacher,
                                                        device))
    return PairSet(data.lq, relabel(request.teacher, data.lq, device), data.sources)


def random_images(request: SetRequest) -> PairSet:
    """The control of a method that keeps whole images: every patch of as many whole images as
    TripleD keeps at ``ratio`` (``selection_count``), drawn at random (seeded)."""
    instances = request.instances
    k = selection_count(len(instances), request.ratio)
    picks = torch.randperm(len(instances), generator=torch.Generator().manual_seed(request.seed))[:k]
    return pairs_of([instances[i] for i in sorted(picks.tolist())])


__all__ = ["global_picked", "global_selection", "pairs_of", "picked", "random_images", "whole"]
