"""Settings of a comparison (importable without torch, so that the CLI builds its flags from them).

A comparison makes several training sets from one folder at one ratio, trains the same student on
each with the same budget and seeds, and scores them. ``PRESETS`` are the scales it is meant to run
at; the dataclass defaults are the ``cpu`` preset (see ``docs/compare.md`` for how it was found).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ..data.config import SAME_SIZE_TASKS, DegradationConfig
from ..methods import CompareSet, MethodConfig
from ..registry import registry

# The comparison's own training sets (each a row), besides the methods' (MethodSpec.compare).
# "random+teacher" is the control of a method that relabels: random real LR patches (the patches
# IDC starts from for the same seed) with HR targets made by the teacher, so that IDC −
# (random+teacher) is what the condensation itself adds. "random-images" is the control of a method
# that keeps whole images: as many images as it keeps, drawn at random.
_SETS = "irkernels.compare.sets:"
PATCH_SETS = {
    "whole": CompareSet(_SETS + "whole", teacher=False, same_size=True),
    "random": CompareSet(_SETS + "picked", teacher=False),
    "herding": CompareSet(_SETS + "picked"),
    "kcenter": CompareSet(_SETS + "picked"),
    "random+teacher": CompareSet(_SETS + "picked", control=("random", "the teacher's relabelling of random patches")),
}
# "kcenter+teacher" / "herding+teacher": the budget's patches picked over the WHOLE split at once
# (not per image) by k-center / herding on the teacher's features, relabelled by the teacher: a
# candidate to beat random+teacher where few patches must cover many images (docs/compare.md).
GLOBAL_SETS = {name: CompareSet(_SETS + "global_picked", unit="split") for name in ("kcenter+teacher", "herding+teacher")}
IMAGE_SETS = {"random-images": CompareSet(_SETS + "random_images", unit="image", teacher=False, same_size=True)}
# rows without a student: the floor (bicubic up-sampling for SR, the degraded input itself for a
# same-size task) and the teacher itself
REFERENCES = ("bicubic", "input", "teacher")
# "sr": bicubic ×scale, every set; the same-size tasks: the sets made for them (same_size)
TASKS = ("sr", *SAME_SIZE_TASKS)
RANDOM_CONTROLS = ("random", "random-images")  # "whole" must beat each by more than the seed spread


def compare_sets() -> dict[str, CompareSet]:
    """Every set a comparison can make, in table order: the comparison's patch-level sets, the
    methods' patch-level sets, the global coresets, random-images, the methods' image-level sets
    (the methods in the registry's order, each set in its spec's order)."""
    methods: dict[str, CompareSet] = {}
    for spec in registry().values():
        for name, s in spec.compare.items():
            if name in methods or name in PATCH_SETS or name in GLOBAL_SETS or name in IMAGE_SETS or name in REFERENCES:
                raise ValueError(f"method {spec.name!r} adds a compare set named {name!r}, which is taken")
            methods[name] = s
    return {**PATCH_SETS, **{n: s for n, s in methods.items() if s.unit != "image"}, **GLOBAL_SETS, **IMAGE_SETS,
            **{n: s for n, s in methods.items() if s.unit == "image"}}


def set_names() -> tuple[str, ...]:
    return tuple(compare_sets())


def method_of(kind: str) -> str | None:
    """The registered method whose set ``kind`` is (``None``: one of the comparison's own)."""
    return next((spec.name for spec in registry().values() if kind in spec.compare), None)


# IDC at the cpu preset (docs/compare.md: how it was tuned on the validation split)
CPU_IDC: dict[str, Any] = {"iters": 100, "batch_instances": 10}
# TripleD at the cpu preset: its fallback tiny VAE reached 22.9 dB held-out PSNR after the default
# 2000 steps (7.5 min a seed on 2 cores), below the 30 dB bar, so TripleD would distill in pixel space
# anyway; the preset skips that training (an untrained VAE fails the bar at once) and says so.
CPU_TRIPLED: dict[str, Any] = {"latent.vae_steps": 0}

PRESETS: dict[str, dict[str, Any]] = {
    # the README's first run: the embedded photos, minutes on a laptop CPU; too small a budget to tell
    "tiny": dict(scale=2, ratio=0.05, lr_patch=16, lr_stride=16, val_images=2, max_images=None, steps=1000,
                 eval_every=250, teacher_steps=2000, seeds=[0, 1],
                 idc={"iters": 20, "num_freqs": 1024, "rlff_channels": 64, "num_groups": 8, "batch_instances": 8}),
    # two CPU cores, about an hour for the IDC rows on CBSD432 (docs/compare.md: how it was chosen)
    "cpu": {},
    # the IDC paper's scale (×4, 64-pixel LR patches at stride 32, 10 %, EDSR-baseline; a GPU's budget)
    "paper": dict(scale=4, ratio=0.1, lr_patch=64, lr_stride=32, max_images=None, model="edsr-baseline",
                  teacher_model="edsr-baseline", steps=20000, batch_size=16, teacher_steps=200000, eval_every=1000,
                  idc={"iters": 2000}),
}


@dataclass
class CompareConfig(MethodConfig):
    """One comparison.

    Task: ``sr`` (bicubic ×``scale``) or a same-size task (``denoise25``, ``deblur``, ``derain``,
    ``jpeg``: ``scale`` is unused, the networks are ×1 and the floor row is the degraded input).
    Data: the training folder's images sorted by name; the last ``val_images`` are the validation
    split (never trained on, condensed or selected from; the learning curves and every choice are
    made on it), at most ``max_images`` of the others are the training split. Patches:
    ``lr_patch``/``lr_stride`` LR pixels at ×``scale``; every set keeps ``ratio`` of each image's
    patches (``max(1, round(ratio·N))``).
    Student: ``model`` from each seed, ``steps`` AdamW steps of ``batch_size`` at peak ``lr``
    (cosine), the same for every set; the validation split is scored every ``eval_every`` steps.
    Teacher: ``teacher_model`` trained ``teacher_steps`` on all training patches (seed 0): the
    feature network of IDC / herding / k-center and the teacher that labels IDC's and
    random+teacher's HR targets. ``idc``: ``IDCConfig`` fields other than its defaults (the preset's
    IDC); ``idc_tune``: more of them, for tuning: a row ``idc[k=v,...]`` of its own, so that variants
    sit side by side in one folder. ``tripled``: ``TripleDConfig`` fields other than its defaults
    (a step's as ``latent.steps``; its ``p`` is ``ratio``, its feature network the teacher, its task
    ``sr<scale>`` or ``task``). ``target_psnr``: the validation PSNR-Y whose first crossing the
    steps-to-target table reports (default: the best point of the ``random`` row's mean curve, else
    ``random-images``').
    ``budgets``: a data-efficiency sweep instead of one ``ratio``: each a share of the training
    split's LR pixels (on the patch grid) that every set keeps (:mod:`.budgets` says how each set
    makes it); the rows that do not depend on it (whole, the floor, the teacher) are made once.
    ``students_together``: how many students train at once (stacked, one batched step: equal to
    alone within float tolerance); 0: 8 on a GPU, 1 on a CPU (where it measured no faster).
    """

    sets: list[str] = field(default_factory=lambda: ["whole", "random", "random+teacher", "idc"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    task: str = "sr"
    scale: int = 2
    ratio: float = 0.01
    lr_patch: int = 16
    lr_stride: int = 16
    val_images: int = 32
    max_images: int | None = 50
    model: str = "edsr-tiny"
    steps: int = 8000
    batch_size: int = 16
    lr: float = 3e-4
    eval_every: int = 1000
    teacher_model: str = "edsr-tiny"
    teacher_steps: int = 16000
    idc: dict[str, Any] = field(default_factory=lambda: dict(CPU_IDC))
    idc_tune: dict[str, Any] = field(default_factory=dict)
    tripled: dict[str, Any] = field(default_factory=lambda: dict(CPU_TRIPLED))
    target_psnr: float | None = None
    budgets: list[float] = field(default_factory=list)
    # execution
    students_together: int = 0
    device: str = "auto"
    progress: bool = True

    # what changes no finished row (sets, seeds and idc settings only add rows): the folder guard is the rest
    EXECUTION: ClassVar[tuple[str, ...]] = ("device", "progress", "sets", "seeds", "idc_tune", "target_psnr",
                                           "budgets", "students_together")

    def __post_init__(self) -> None:
        sets = compare_sets()
        bad = [s for s in self.sets if s not in sets]
        if bad or not self.sets:
            raise ValueError(f"sets must be a non-empty list of {tuple(sets)}, got {self.sets}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")
        if self.scale not in (2, 3, 4, 8):
            raise ValueError(f"scale must be 2, 3, 4 or 8, got {self.scale}")
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must lie in (0, 1], got {self.ratio}")
        for name in ("lr_patch", "lr_stride", "val_images", "steps", "batch_size", "eval_every", "teacher_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images}")
        if any(not 0.0 < b <= 1.0 for b in self.budgets) or len(set(self.budgets)) != len(self.budgets):
            raise ValueError(f"budgets must be distinct shares in (0, 1], got {self.budgets}")
        if self.students_together < 0:
            raise ValueError(f"students_together must be >= 0 (0: automatic), got {self.students_together}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        same_size = tuple(n for n, s in sets.items() if s.same_size)
        if self.task != "sr" and set(self.sets) - set(same_size):
            raise ValueError(f"task {self.task} takes the sets {same_size}, got "
                             f"{sorted(set(self.sets) - set(same_size))} (the others are SR methods)")
        scaled = [n for n in self.sets if sets[n].scales and self.scale not in sets[n].scales]
        if self.task == "sr" and scaled:
            *most, last = sets[scaled[0]].scales
            raise ValueError(f"the sets {scaled} need scale {', '.join(map(str, most))}{' or ' * bool(most)}{last}, "
                             f"got {self.scale}")

    @property
    def factor(self) -> int:
        """Output side over input side: ``scale`` for SR, 1 for a same-size task."""
        return self.scale if self.task == "sr" else 1

    @property
    def baseline(self) -> str:
        """The floor row: bicubic up-sampling for SR, the degraded input itself otherwise."""
        return "bicubic" if self.task == "sr" else "input"

    @property
    def needs_teacher(self) -> bool:
        """Whether a set of ``sets`` learns from the teacher (then it is trained, a row, and named)."""
        sets = compare_sets()
        return any(sets[kind].teacher for kind in self.sets)

    @property
    def crop_border(self) -> int:
        """Pixels cropped from each side when scoring: the scale for SR (the benchmarks' rule), none otherwise."""
        return self.scale if self.task == "sr" else 0

    def degradation(self) -> DegradationConfig:
        return DegradationConfig("bicubic", scale=self.scale) if self.task == "sr" else SAME_SIZE_TASKS[self.task]

    def method_settings(self, method: str, kind: str) -> dict[str, Any]:
        """The settings the comparison gives ``method``'s set ``kind``: the field named after the
        method (``idc``, ``tripled``: its settings over the preset's), and for the ``idc`` row its
        ``idc_tune`` variant; ``{}`` for a method without such a field (its config's defaults)."""
        given = getattr(self, method, None) if method in FIELDS else None
        return {**(given if isinstance(given, dict) else {}), **(self.idc_tune if kind == "idc" else {})}

    def idc_label(self) -> str:
        """The IDC row's name: ``idc``, or ``idc[k=v,...]`` for settings other than the defaults."""
        return "idc" + (f"[{','.join(f'{k}={v}' for k, v in sorted(self.idc_tune.items()))}]" if self.idc_tune else "")

    def row_name(self, kind: str) -> str:
        return self.idc_label() if kind == "idc" else kind

    def row_stem(self, kind: str) -> str:
        """The row's file and folder stem: its name without the characters shells and globs treat
        specially (``idc[iters=200,lr=0.02]`` → ``idc-iters200-lr0.02``)."""
        return self.row_name(kind).replace("[", "-").replace("]", "").replace("=", "").replace(",", "-")


def preset(name: str) -> dict[str, Any]:
    """The field values of preset ``name`` (``ValueError`` naming the presets otherwise)."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {name!r}")
    return dict(PRESETS[name])


FIELDS = tuple(f.name for f in fields(CompareConfig))
__all__ = ["FIELDS", "GLOBAL_SETS", "IMAGE_SETS", "PATCH_SETS", "PRESETS", "RANDOM_CONTROLS", "REFERENCES", "TASKS",
           "CompareConfig", "compare_sets", "method_of", "preset", "set_names"]
