"""The demo (what ``python -m irkernels.pipeline`` runs with no command): IDC ×2 on a few embedded
photos, a student trained on the condensed pairs, scored next to bicubic on a photo it never saw."""
from __future__ import annotations

import html
import logging
import os
import shutil

import torch

from ..data import PatchConfig, load_paired_folder, make_pairs_from_paired, sample_images
from ..data.config import DegradationConfig
from ..evaluate import EvalConfig, baseline_network, evaluate, versus_baseline
from ..models import build_model
from ..outputs import add_report_section, atomic_write_json
from ..train import TrainConfig, train
from .config import IDCConfig
from .pipeline import IDCResult, run


# The demo: ×2 on four embedded photos, a teacher trained long enough to beat bicubic on its
# held-out image, then a student trained on the condensed pairs and scored next to bicubic on a
# photo the demo never condenses. ×4 with a 100-step teacher (the first demo) left both the teacher
# (24.3 vs 27.3 dB) and the student of its `next:` command below bicubic; see docs/idc.md, "Demo".
DEMO_CONFIG = dict(feature_model="edsr-tiny", scale=2, ratio=0.1, lr_patch=16, lr_stride=16, iters=80, num_groups=8,
                   rlff_channels=64, num_freqs=512, resample_every=25, reassign_every=10, pretrain_steps=2000,
                   pretrain_batch=16, batch_instances=4, log_every=5)
DEMO_STUDENT = dict(model="edsr-tiny", steps=1000, batch_size=16, lr=3e-4)


def demo(out: str = "runs/idc-demo", max_images: int = 4, overwrite: bool = False) -> IDCResult:
    """What ``python -m irkernels.pipeline`` runs: IDC on ``max_images`` embedded photos with a tiny
    teacher trained on them first, then a student trained on the condensed pairs (``out/student``)
    and scored next to bicubic on the last embedded photo, which the demo never condenses — a few
    minutes on a CPU. Prints where the outputs and the report are, the student's score, and what
    to run next. A folder holding a demo of other settings (another ``max_images``) is refused
    unless ``overwrite``; the same demo again resumes (or finds it done)."""
    photos = sample_images()
    if not 1 <= max_images < len(photos):
        raise ValueError(f"--max-images must be between 1 and {len(photos) - 1} (one embedded photo is kept for "
                         f"scoring), got {max_images}")
    logging.getLogger("irkernels").setLevel(logging.INFO)
    cfg = IDCConfig(**DEMO_CONFIG)
    print(f"irkernels demo: IDC ×{cfg.scale} on {max_images} embedded sample photos (tiny EDSR teacher trained on "
          f"them first), then a student trained on the result and scored on {photos[-1].name!r}, which it never "
          f"sees; outputs in {os.path.relpath(out)}\n(`python -m irkernels.pipeline --help` lists the commands)")
    student_dir = os.path.join(out, "student")
    if overwrite:
        shutil.rmtree(student_dir, ignore_errors=True)
    result = run(cfg, out, images=photos[:max_images], overwrite=overwrite)
    print(result.summary(next_step=False))
    patch = cfg.lr_patch * cfg.scale
    pairs = make_pairs_from_paired(load_paired_folder(out, cfg.scale), cfg.scale, PatchConfig(patch, patch))
    torch.manual_seed(0)
    student = build_model(DEMO_STUDENT["model"], cfg.scale)
    spec = {k: v for k, v in DEMO_STUDENT.items() if k != "model"}
    trained = train(student, pairs, TrainConfig(out_dir=student_dir, seed=0, device=cfg.device,
                                                progress=cfg.progress, **spec))
    deg = DegradationConfig("bicubic", scale=cfg.scale)
    ev = EvalConfig(sets=[], degradation=deg, device=cfg.device)
    scores = [evaluate(net, ev, {photos[-1].name: photos[-1:]}) for net in (student, baseline_network(deg)[1])]
    headline = [f"student: {DEMO_STUDENT['model']} trained {DEMO_STUDENT['steps']} steps on the {len(pairs)} condensed "
                f"pairs ({trained.model_path})", *versus_baseline(DEMO_STUDENT["model"], scores[0], scores[1], "bicubic")]
    print("\n".join(headline))
    # the headline kept with the run: in the student's folder and first in the report
    atomic_write_json(os.path.join(student_dir, "eval.json"),
                      {"scored_on": photos[-1].name, "student": scores[0], "bicubic": scores[1], "pairs": len(pairs),
                       **DEMO_STUDENT})
    add_report_section(result.report, "The student trained on this set, on a photo it never saw",
                       "".join(f"<p>{html.escape(line)}</p>" for line in headline))
    print("does the condensed set beat random patches and the whole set? (the same student on each, "
          "4-5 min on 2 quiet CPU cores; 50 min was measured on 2 cores busy with other jobs)")
    print("next: python -m irkernels.pipeline compare --preset tiny --out runs/compare-tiny")
    return result
