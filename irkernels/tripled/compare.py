"""TripleD's rows of ``compare`` (``METHOD.compare``): TripleD (or an ablation, ``COMPARE_SETS``) run
into the row's folder with the comparison's teacher as feature network, its pairs read back as
stored."""
from __future__ import annotations

from ..configs import with_paths
from ..data import PairSet
from ..methods import SetRequest
from .config import COMPARE_SETS, TripleDConfig
from .pipeline import run


def tripled_config(request: SetRequest) -> TripleDConfig:
    """Task ``sr<scale>`` (or the comparison's same-size task), the comparison's ratio and seed, the
    teacher's architecture as feature network, the settings the comparison gives TripleD
    (``--tripled``, a step's field as ``step.field``), then the set's ablation."""
    own = {"task": f"sr{request.scale}" if request.task == "sr" else request.task, "ratio": request.ratio,
           "feature_model": request.feature_model, "seed": request.seed, "device": request.device,
           "progress": request.progress}
    return with_paths(TripleDConfig(), {**own, **request.settings, **COMPARE_SETS[request.kind]})


def make_set(request: SetRequest) -> PairSet:
    cfg = tripled_config(request)
    run(cfg, request.folder, images=list(request.images), feature_net=(request.teacher, request.teacher_info))
    request.record["tripled_settings"] = cfg.settings()
    return request.stored_pairs()
