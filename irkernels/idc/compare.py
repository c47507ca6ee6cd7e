"""IDC's row of ``compare`` (``METHOD.compare``): IDC run into the row's folder with the
comparison's teacher as feature network and teacher, its pairs read back as stored."""
from __future__ import annotations

from ..data import PairSet
from ..methods import SetRequest
from .config import IDCConfig
from .pipeline import Networks, run


def idc_config(request: SetRequest) -> IDCConfig:
    """The comparison's patches, ratio and seed, the teacher's architecture, then the settings the
    comparison gives IDC (``--idc``, ``--idc-tune``)."""
    return IDCConfig(method="idc", scale=request.scale, ratio=request.ratio, lr_patch=request.lr_patch,
                     lr_stride=request.lr_stride, feature_model=request.feature_model, seed=request.seed,
                     device=request.device, progress=request.progress, **request.settings)


def make_set(request: SetRequest) -> PairSet:
    cfg = idc_config(request)
    nets = Networks(request.teacher, request.teacher,
                    {"feature_extractor": request.teacher_info, "teacher": request.teacher_info})
    run(cfg, request.folder, images=list(request.images), networks=nets)
    request.record["idc_settings"] = cfg.settings()
    return request.stored_pairs()
