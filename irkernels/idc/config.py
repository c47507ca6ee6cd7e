"""Settings of an IDC / baseline run (one dataclass; the CLI maps its flags onto it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..data.config import patches_kept
from ..methods import CompareSet, MethodConfig, MethodSpec

# "random+teacher": the random pick's LR patches (the ones IDC starts from for the same seed) with HR
# targets made by the teacher: the control that separates IDC's relabelling from its condensation
METHODS = ("idc", "random", "random+teacher", "herding", "kcenter", "whole")
FEATURE_METHODS = ("idc", "herding", "kcenter")  # the methods that use the feature extractor
TEACHER_METHODS = ("idc", "random+teacher")  # the methods whose HR targets the teacher makes
INITS = ("real", "noise", "kcenter")
# "image": every image an instance of its own (the paper); "split": the whole training split one
# instance, so that its n = ratio·N synthetic patches match the split's feature distribution
SCOPES = ("image", "split")
LOSS_SCALES = ("phase-start", "none")
REGROUPS = ("warm", "fresh")
STUDENT_STEPS = 1000  # the trainer's default budget (TrainConfig.steps); the teacher gets 10× that


@dataclass
class IDCConfig(MethodConfig):
    """Everything that determines a run's outputs (plus a few execution knobs, see ``EXECUTION``).

    Patches: ``lr_patch``/``lr_stride`` are in LR pixels (HR = ×``scale``). The default 64/32 gives
    ~151 patches on a DIV2K image (2040×1356, ×4) as in the paper, and 6 on a 481×321 photo
    (CBSD432, ×4).
    Schedule (fractions of ``iters``): warm-up ``[0, warmup)`` instance loss only; assigning
    ``[warmup, warmup + assigning)`` the assigned fraction of synthetic patches grows linearly to 1;
    afterwards all patches are assigned. Grouping/pairing are re-done every ``reassign_every``
    steps and whenever the RLFF rows / frequencies are re-drawn (every ``resample_every`` steps).
    Losses: ``loss_scale="phase-start"`` rescales ``L_group`` and ``L_pair`` by
    ``L_ins / L_term`` measured (per instance, detached) at the step they start, so that all three
    start on one scale and ``w_*`` are relative weights; ``"none"`` uses them as computed.
    Groups: ``regroup="warm"`` starts each re-draw's k-means from the previous partition (the
    groups keep their identity); ``"fresh"`` re-seeds k-means++ at every re-draw.
    Instances: ``scope="image"`` condenses every image alone (the paper); ``"split"`` condenses the
    whole training split as one instance: its ``max(1, round(ratio·N))`` synthetic patches (``N``
    the split's patches) match the distribution of every patch of every image, and the groups are
    k-means groups over the split. Under a budget below one patch per image this keeps every image
    in view where ``"image"`` must drop images. ``init``: ``"real"`` random real patches,
    ``"noise"`` uniform noise, ``"kcenter"`` the real patches k-center picks on the feature
    network's mean-pooled features (as the ``kcenter`` baseline).
    Networks (the vocabulary TripleD uses too): a missing teacher/feature network is
    ``feature_model`` trained for ``pretrain_steps`` on the real patches of all but the last
    ``teacher_val`` share of the images (by name; its PSNR on those is recorded), cached in
    ``cache_dir`` (default ``$IRKERNELS_CACHE/pretrained``); ``feature_checkpoint`` loads it instead. The
    teacher up-samples each synthetic patch reflect-padded by ``teacher_margin`` LR pixels and
    crops the margin off again, so that its borders get the context its centre gets.
    """

    method: str = "idc"
    scale: int = 4
    ratio: float = 0.1
    lr_patch: int = 64
    lr_stride: int = 32
    # condensation (method "idc")
    init: str = "real"
    scope: str = "image"
    iters: int = 2000
    lr: float = 0.01
    warmup: float = 0.2
    assigning: float = 0.3
    reassign_every: int = 50
    resample_every: int = 50
    w_ins: float = 1.0
    w_group: float = 1.0
    w_pair: float = 1.0
    loss_scale: str = "phase-start"
    num_groups: int = 32
    kmeans_iters: int = 20
    regroup: str = "warm"
    rlff_kernel: int = 3
    rlff_channels: int = 128
    rlff_patch: int = 4
    num_freqs: int = 4096
    freq_std: float | None = None
    alpha: float = 0.5
    seed: int = 0
    amp: bool = True
    # networks (feature extractor = teacher unless checkpoints say otherwise)
    feature_model: str = "edsr-baseline"
    feature_checkpoint: str | None = None
    teacher_checkpoint: str | None = None
    teacher_model: str | None = None
    pretrain_steps: int = 10 * STUDENT_STEPS
    pretrain_batch: int = 16
    teacher_val: float = 0.05
    teacher_margin: int = 8
    # execution (do not change the outputs beyond float rounding)
    batch_instances: int = 4
    backend: str = "auto"
    device: str = "auto"
    log_every: int = 10
    progress: bool = True
    cache_dir: str | None = None
    portable: bool = False  # copy the networks used from outside the run folder into it (networks/)

    EXECUTION: ClassVar[tuple[str, ...]] = ("batch_instances", "backend", "device", "log_every", "progress", "cache_dir",
                                            "portable")
    # old field name → new one (run folders written before the rename resume; the old flags warn)
    RENAMED: ClassVar[dict[str, str]] = {"model": "feature_model", "feature_extractor": "feature_checkpoint",
                                         "teacher": "teacher_checkpoint", "pretrain_cache": "cache_dir"}

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {SCOPES}, got {self.scope!r}")
        if self.loss_scale not in LOSS_SCALES:
            raise ValueError(f"loss_scale must be one of {LOSS_SCALES}, got {self.loss_scale!r}")
        if self.regroup not in REGROUPS:
            raise ValueError(f"regroup must be one of {REGROUPS}, got {self.regroup!r}")
        if not 0.0 <= self.teacher_val < 1.0:
            raise ValueError(f"teacher_val must lie in [0, 1), got {self.teacher_val}")
        if self.teacher_margin < 0:
            raise ValueError(f"teacher_margin must be >= 0, got {self.teacher_margin}")
        if self.scale not in (2, 3, 4, 8):
            raise ValueError(f"scale must be 2, 3, 4 or 8, got {self.scale}")
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must lie in (0, 1], got {self.ratio}")
        for name in ("lr_patch", "lr_stride", "iters", "reassign_every", "resample_every", "num_groups",
                     "batch_instances", "num_freqs", "rlff_channels", "rlff_patch", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr_patch < self.rlff_kernel:
            raise ValueError(f"lr_patch ({self.lr_patch}) must be >= rlff_kernel ({self.rlff_kernel})")
        if not (0 <= self.warmup and 0 <= self.assigning and self.warmup + self.assigning <= 1):
            raise ValueError(f"warmup and assigning are fractions of iters with warmup + assigning <= 1, "
                             f"got {self.warmup} and {self.assigning}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("w_ins", "w_group", "w_pair"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def hr_patch(self) -> int:
        return self.lr_patch * self.scale

    @property
    def hr_stride(self) -> int:
        return self.lr_stride * self.scale

    def num_synthetic(self, num_real: int) -> int:
        """``n = max(1, round(ratio·N))``: a ratio that rounds to zero patches still keeps one."""
        return patches_kept(self.ratio, num_real)

    def warmup_iters(self) -> int:
        return round(self.warmup * self.iters)

    def assigning_iters(self) -> int:
        return round(self.assigning * self.iters)

    def assigned_fraction(self, step: int) -> float:
        """Share of synthetic patches assigned to groups at ``step`` (0 during warm-up); evaluated at
        the re-assignment steps, one re-assignment period ahead so the first one already assigns."""
        start, length = self.warmup_iters(), self.assigning_iters()
        if step < start:
            return 0.0
        if length == 0:
            return 1.0
        return min(1.0, (step - start + min(self.reassign_every, length)) / length)

    def frequency_std(self) -> float:
        """Std of the frequencies ``t``: ``freq_std``, default ``1/sqrt(rlff_channels)`` so that
        ``⟨t, x⟩`` has about unit variance for unit-variance RLFF samples (N(0, I) would put the
        phase's std at ~sqrt(C_out) ≈ 11 rad, where the empirical characteristic function is noise)."""
        return self.freq_std if self.freq_std is not None else self.rlff_channels ** -0.5


# the method's registration (irkernels.registry finds it here)
METHOD = MethodSpec(name="idc", help="condense a folder with IDC (or the random / herding / kcenter / whole baselines)",
                    config="irkernels.idc.config:IDCConfig", run="irkernels.idc.pipeline:run",
                    report="irkernels.idc.report:write_idc_report", flags="irkernels.idc.cli:FLAGS",
                    compare={"idc": CompareSet("irkernels.idc.compare:make_set",
                                               control=("random+teacher",
                                                        "IDC's condensation over its relabelled initial patches"),
                                               split_when=("scope", "split"))},
                    fixed=("method", "scale", "ratio", "lr_patch", "lr_stride", "seed"))
