"""Settings of a TripleD run, one dataclass per step and ``TripleDConfig`` over them (importable
without torch, so that the CLI builds its flags fast). The task presets ``TASKS`` say how LQ inputs
are made."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..configs import TrainConfig
from ..data.config import SAME_SIZE_TASKS, DegradationConfig, check_fraction
from ..methods import CompareSet, MethodConfig, MethodSpec

# Task presets: each a list of (type name, degradation): SR ×2/×3/×4, the same-size tasks
# (irkernels.data.config.SAME_SIZE_TASKS), and all-in-one = the four same-size tasks, balanced.
TASKS: dict[str, list[tuple[str, DegradationConfig]]] = {
    **{f"sr{s}": [(f"sr{s}", DegradationConfig(kind="bicubic", scale=s))] for s in (2, 3, 4)},
    **{name: [(name, deg)] for name, deg in SAME_SIZE_TASKS.items()},
    "allinone": list(SAME_SIZE_TASKS.items()),
}


def task_types(task: str) -> list[tuple[str, DegradationConfig]]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    return TASKS[task]


def check_differentiable(deg: DegradationConfig) -> None:
    """The restoration loss back-propagates through the degradation: JPEG (PIL) has no gradient."""
    if deg.kind == "jpeg":
        raise ValueError("the restoration loss needs a differentiable degradation; JPEG (PIL) is not")


@dataclass
class ScorerConfig:
    """Scorer network and its training.

    ``backbone``: any timm model name (``vit_tiny_patch16_224``, ``resnet50``, ``mixer_b16_224``…);
    ``model_kwargs``: extra timm constructor arguments (e.g. ``depth``/``embed_dim`` for tiny test
    ViTs). Training: ``steps`` Adam steps on batches of ``batch_size`` random crops whose side is
    drawn uniformly from ``[crop_min, crop_max]`` pixels (clipped to the image).
    """

    backbone: str = "vit_tiny_patch16_224"
    img_size: int = 128
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.05
    crop_min: int = 48
    crop_max: int = 512
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.img_size < 8:
            raise ValueError(f"img_size must be >= 8, got {self.img_size}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if not 1 <= self.crop_min <= self.crop_max:
            raise ValueError(f"need 1 <= crop_min <= crop_max, got {self.crop_min}, {self.crop_max}")


@dataclass
class LatentConfig:
    """``vae``: local diffusers folder (``None`` → train ``tiny_autoencoder``); ``subfolder``: its
    sub-folder (auto: ``vae`` when the folder has one and no ``config.json``). Tiny-VAE training:
    at most ``vae_steps`` AdamW steps at ``vae_lr`` on ``vae_batch`` random ``vae_crop``² crops,
    stopping once the reconstruction PSNR on ``vae_check_crops`` held-out crops (measured every
    ``vae_check_every`` steps) reaches ``vae_min_psnr`` dB; any VAE below that bar is replaced by
    pixel-space distillation (0 trusts every VAE). Latent optimisation: ``steps`` Adam steps at
    ``lr`` (``pixel_lr`` in pixel space) on mini-batches of ``batch_size`` images, the synthetic
    side subsampled to ``max_samples`` feature positions per step."""

    vae: str | None = None
    subfolder: str | None = None
    vae_steps: int = 2000
    vae_min_psnr: float = 30.0
    vae_check_every: int = 100
    vae_check_crops: int = 16
    vae_lr: float = 1e-3
    vae_batch: int = 8
    vae_crop: int = 64
    kl_weight: float = 1e-6
    steps: int = 100
    lr: float = 0.05
    pixel_lr: float = 0.01
    batch_size: int = 16
    max_samples: int = 16384
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 0 or self.vae_steps < 0:
            raise ValueError(f"steps and vae_steps must be >= 0, got {self.steps}, {self.vae_steps}")
        if min(self.batch_size, self.vae_batch, self.vae_check_every, self.vae_check_crops) < 1:
            raise ValueError(f"batch_size, vae_batch, vae_check_every and vae_check_crops must be >= 1, got "
                             f"{self.batch_size}, {self.vae_batch}, {self.vae_check_every}, {self.vae_check_crops}")


def stage_settings(cfg: ScorerConfig | LatentConfig | FinetuneConfig) -> dict:
    """A step config's fields without the execution ones (``TripleDConfig.EXECUTION``): the
    settings part of the key of a step's checkpoint (``irkernels.resume.StepCheckpoint``)."""
    return {k: v for k, v in asdict(cfg).items() if k not in TripleDConfig.EXECUTION}


PIXEL_WEIGHT = 30.0  # see docs/tripled.md, "CPU measurements": the measured trade-off behind it


@dataclass
class FinetuneConfig:
    """``steps`` Adam steps at ``lr`` on mini-batches of ``batch_size`` images; CNN width ``channels``
    and depth ``layers``; loss weights ``mean_weight`` (L2 of means), ``kl_weight`` (Gaussian KL),
    ``pixel_weight`` (L1 between the adjusted images and their inputs, mean over pixels and
    channels in [0, 1] units), ``restoration_weight`` (0 = off)."""

    steps: int = 200
    lr: float = 1e-3
    batch_size: int = 16
    channels: int = 64
    layers: int = 8
    mean_weight: float = 1.0
    kl_weight: float = 1.0
    pixel_weight: float = PIXEL_WEIGHT
    restoration_weight: float = 0.0
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"steps must be >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if min(self.mean_weight, self.kl_weight, self.pixel_weight, self.restoration_weight) < 0:
            raise ValueError("loss weights must be >= 0")


@dataclass
class TripleDConfig(MethodConfig):
    """One TripleD run. ``ratio``: the fraction of images kept (the paper's p; ``ratio`` as in IDC
    and ``compare``). ``scorer``: ``entropy`` (exact full-resolution entropy, the default: it
    ranks better per second than the ViT, docs/tripled.md) or ``vit`` (a trained
    ``ComplexityScorer``; ``scorer_checkpoint`` loads one instead of training). A ViT whose Spearman
    correlation with exact entropy on ``scorer_check_crops`` crops of held-out images is below
    ``min_spearman`` is not used: the run warns and ranks by entropy. ``target``: whose features the
    synthetic set matches — ``all`` (every image, the default) or ``subset`` (the selected ones).
    Synthetic images: ``syn_per_image`` random ``syn_size``² HQ crops per selected image.
    ``feature_model``/``feature_checkpoint``: the restoration network whose ``features(x)`` are
    matched; without a checkpoint it is first trained on all the images' LQ/HQ pairs
    (``pretrain_steps`` steps of ``pretrain_batch`` ``pretrain_patch``² HQ patches) through
    ``irkernels.pretrained`` (cached in ``cache_dir``, shared with other runs and methods).
    ``freq_std``: std of the CF frequencies (default ``1/√C``, see ``features``). ``backend``: the
    ops backend of the feature matching (``auto``: Triton on CUDA, as IDC's ``--backend``). The sub-configs'
    ``device``/``progress``/``seed`` are the run's: ``for_run()`` sets them (on a copy)."""

    task: str = "sr4"
    ratio: float = 0.02
    scorer: str = "entropy"
    scorer_checkpoint: str | None = None
    scorer_cfg: ScorerConfig = field(default_factory=ScorerConfig)
    scorer_images: int = 256
    min_spearman: float = 0.9
    scorer_check_crops: int = 128
    score_batch: int = 64
    num_workers: int = 0
    feature_model: str = "edsr-baseline"
    feature_checkpoint: str | None = None
    pretrain_steps: int = 2000
    pretrain_batch: int = 16
    pretrain_patch: int = 96
    cache_dir: str | None = None
    target: str = "all"
    num_freqs: int = 256
    freq_std: float | None = None
    syn_size: int = 128
    syn_per_image: int = 1
    use_latent: bool = True
    latent: LatentConfig = field(default_factory=LatentConfig)
    use_cnn: bool = True
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    seed: int = 0
    backend: str = "auto"
    device: str = "auto"
    progress: bool = True
    portable: bool = False  # copy the feature network from outside the run folder into it (networks/)

    EXECUTION = ("backend", "device", "progress", "num_workers", "score_batch", "cache_dir", "portable")

    def __post_init__(self) -> None:
        task_types(self.task)
        check_fraction("ratio", self.ratio)
        if self.backend not in ("auto", "triton", "torch"):
            raise ValueError(f"backend must be 'auto', 'triton' or 'torch', got {self.backend!r}")
        if self.scorer not in ("vit", "entropy"):
            raise ValueError(f"scorer must be 'vit' or 'entropy', got {self.scorer!r}")
        if self.target not in ("subset", "all"):
            raise ValueError(f"target must be 'subset' or 'all', got {self.target!r}")
        if self.syn_size < 8 or self.syn_per_image < 1:
            raise ValueError(f"syn_size must be >= 8 and syn_per_image >= 1, got {self.syn_size}, {self.syn_per_image}")
        if self.pretrain_steps < 1 or self.pretrain_batch < 1 or self.pretrain_patch < self.scale:
            raise ValueError(f"pretrain_steps and pretrain_batch must be >= 1 and pretrain_patch >= the scale, got "
                             f"{self.pretrain_steps}, {self.pretrain_batch}, {self.pretrain_patch}")
        if self.scorer_check_crops < 2 or not -1 <= self.min_spearman <= 1:
            raise ValueError(f"scorer_check_crops must be >= 2 and min_spearman in [-1, 1], got "
                             f"{self.scorer_check_crops}, {self.min_spearman}")
        if self.finetune.restoration_weight > 0:
            if len(task_types(self.task)) > 1:
                raise ValueError("the restoration loss needs a single-degradation task, not allinone")
            check_differentiable(task_types(self.task)[0][1])
        if self.syn_size % self.scale:
            raise ValueError(f"syn_size must be a multiple of the scale {self.scale}, got {self.syn_size}")

    @property
    def scale(self) -> int:
        return task_types(self.task)[0][1].factor

    def for_run(self) -> TripleDConfig:
        """A copy whose step configs (scorer, latent, fine-tuning) take this run's ``seed``, run on its
        ``device`` and show progress bars when it does; the caller's objects are left as they were."""
        return replace(self, **{name: replace(getattr(self, name), seed=self.seed, device=self.device,
                                              progress=self.progress)
                                for name in ("scorer_cfg", "latent", "finetune")})


@dataclass
class TrainSpec:
    """Training a network on the result: ``train`` the trainer's settings (steps, batch size,
    accumulation, learning rates, ...; its ``out_dir``, ``seed``, ``device`` and ``progress`` are the
    run's), network ``model`` on ``patch_size``² HR patches, ``test`` folders to evaluate on.
    ``dynamic_epochs > 0`` trains instead on the whole input with the epoch-wise dynamic selection
    (``DynamicSampler``: ``train.steps`` split evenly over the epochs of one run, pool
    ``q_start`` → ``ratio``, ``q_schedule``)."""

    train: TrainConfig = field(default_factory=TrainConfig)
    model: str = "edsr-baseline"
    patch_size: int = 96
    test: list[str] = field(default_factory=list)
    dynamic_epochs: int = 0
    q_start: float = 0.2
    q_schedule: str = "linear"

    def __post_init__(self) -> None:
        if self.dynamic_epochs < 0:
            raise ValueError(f"dynamic_epochs must be >= 0, got {self.dynamic_epochs}")
        if self.dynamic_epochs > self.train.steps:
            raise ValueError(f"dynamic_epochs ({self.dynamic_epochs}) cannot exceed the training steps ({self.train.steps})")


# TripleD's rows of compare, each the TripleDConfig fields its ablation changes: "tripled-selection"
# keeps the selected images alone (no distilled crops): TripleD's selection against random-images with
# the same images' count, as random+teacher is IDC's control
COMPARE_SETS: dict[str, dict[str, Any]] = {"tripled": {}, "tripled-no-latent": {"use_latent": False},
                                           "tripled-no-cnn": {"use_cnn": False},
                                           "tripled-selection": {"use_latent": False, "use_cnn": False}}
_CONTROLS = {"tripled": ("tripled-selection", "TripleD's distillation (its crops) over its selection"),
             "tripled-selection": ("random-images", "TripleD's selection over as many random images")}

# the method's registration (irkernels.registry finds it here)
METHOD = MethodSpec(name="tripled",
                    help="TripleD dataset distillation (complexity scoring, latent distillation, CNN fine-tuning)",
                    config="irkernels.tripled.config:TripleDConfig", run="irkernels.tripled.pipeline:run",
                    report="irkernels.tripled.report:write_tripled_report", flags="irkernels.tripled.cli:FLAGS",
                    compare={name: CompareSet("irkernels.tripled.compare:make_set", unit="image", same_size=True,
                                              scales=(2, 3, 4), control=_CONTROLS.get(name))
                             for name in COMPARE_SETS},
                    fixed=("task", "ratio", "seed", "feature_model", "feature_checkpoint", "use_latent", "use_cnn",
                           "cache_dir"))


__all__ = ["COMPARE_SETS", "METHOD", "TASKS", "FinetuneConfig", "LatentConfig", "PIXEL_WEIGHT", "ScorerConfig", "TrainSpec", "TripleDConfig",
           "check_differentiable", "task_types"]
