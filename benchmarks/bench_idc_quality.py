"""IDC quality (the paper's Table 1 at our scale): condense the training folder with IDC and the
coreset baselines, train the same student with the same budget on each result, score on RGB and Y.

Rows, at ×4 and ×2, r = 10 %, for each of ``--seeds`` (mean ± std over them):
whole (all patches) / random / herding / kcenter / random + teacher HR (random real LR patches,
HR made by the teacher: separates relabelling from condensation) / IDC; plus bicubic and the
teacher itself. One teacher (= IDC's feature extractor) per scale, trained 10× the student's
steps on the training split (``irkernels.pretrained``, cached under ``--out``).

Splits: the last ``--val-images`` (32) images of the training folder by sorted name are held out
from everything. ``--val`` scores on them (tune there, e.g. ``--idc w_pair=3 lr=0.02`` adds an
IDC variant row); without it the ``--test`` folders are scored, once, with the settings given
(the tuned ones are the defaults of ``irkernels/idc/config.py``).

  python benchmarks/bench_idc_quality.py --data ../shared/data/train/CBSD432 --val          # tune
  python benchmarks/bench_idc_quality.py --data ../shared/data/train/CBSD432 \\
      --test ../shared/data/test/Set5 ../shared/data/test/Set14    # GPU → results/idc_quality.{json,md}
  python benchmarks/bench_idc_quality.py --small                  # CPU script check → idc_quality_cpu.*

Resumable: every row (scale, method, seed) is one JSON under ``benchmarks/results/
idc_quality_rows/rows/<mode>/`` (``--small``: under ``--out``), written atomically when the row is done; a rerun skips finished
rows and rebuilds the table from all of them, so the table can be finished over several device
sessions (``--deadline-s``: start no row after that many seconds, so a stage timeout never kills
one half-way). Each row records its device and the seconds spent making the data, training and
scoring. Greyscale test images (R = G = B) are scored on their own channel: the output's channel
mean against the image, for the RGB and the Y columns alike (Y would add BT.601's
16 + 219/255·v offset and range, +1.3 dB on PSNR).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import RESULTS_DIR, markdown, write_results  # noqa: E402
from irkernels.data import (DegradationConfig, Image, PairSet, PatchConfig, load_folder,  # noqa: E402
                            load_paired_folder, make_pairs_from_paired, quantize, sample_images, to_float)
from irkernels.evaluate import bicubic_upsampler, degraded_pairs, folder_pairs  # noqa: E402
from irkernels.idc.condense import upsample  # noqa: E402
from irkernels.idc.config import IDCConfig  # noqa: E402
from irkernels.idc.instances import make_instances  # noqa: E402
from irkernels.idc.pipeline import Networks, run as run_idc  # noqa: E402
from irkernels.metrics import psnr, ssim  # noqa: E402
from irkernels.models import build_model  # noqa: E402
from irkernels.outputs import atomic_write_json  # noqa: E402
from irkernels.pretrained import PretrainConfig, pretrained_network  # noqa: E402
from irkernels.train import TrainConfig, resolve_device, train  # noqa: E402

METHODS = ("whole", "random", "herding", "kcenter", "random+teacher", "idc")
METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="training image folder (default: the embedded photos)")
    p.add_argument("--test", nargs="+", help="test folders, scored once (default: scikit-learn's two photos)")
    p.add_argument("--val", action="store_true", help="score on the held-out validation images instead (tuning)")
    p.add_argument("--val-images", type=int, default=32, help="last images of --data (sorted) held out")
    p.add_argument("--out", "--work", dest="out",
                   help="work folder: condensed sets, teacher cache (default: runs/bench-idc-quality)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--scales", type=int, nargs="+", default=[4, 2])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--ratio", type=float, default=0.1)
    p.add_argument("--lr-patch", type=int, default=32, help="LR patch size of every set (HR = × scale)")
    p.add_argument("--lr-stride", type=int, default=16, help="LR stride of the patch grid")
    p.add_argument("--iters", type=int, default=200, help="IDC iterations per image")
    p.add_argument("--batch-instances", type=int, default=16)
    p.add_argument("--train-steps", type=int, default=2000, help="the student's budget, the same for every row")
    p.add_argument("--teacher-factor", type=int, default=10, help="teacher steps = this × --train-steps")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-images", type=int, help="use at most this many training images (after the split)")
    p.add_argument("--idc", nargs="*", default=[], metavar="KEY=VALUE",
                   help="IDC settings other than the config defaults (an IDC variant row, for tuning)")
    p.add_argument("--deadline-s", type=float, default=530.0,
                   help="start no row after this many seconds (the device stage times out at 560); 0: none")
    p.add_argument("--small", action="store_true", help="tiny CPU budget (automatic without CUDA)")
    args = p.parse_args(argv)
    args.small = args.small or not torch.cuda.is_available()
    if args.small:
        args.lr_patch, args.lr_stride, args.iters, args.train_steps, args.teacher_factor = 16, 16, 4, 4, 10
        args.batch_size, args.batch_instances, args.seeds = 4, 2, args.seeds[:2]
        args.max_images, args.val_images, args.deadline_s = args.max_images or 2, 1, 0.0
    return args


def idc_overrides(pairs: list[str]) -> dict:
    """``["w_pair=3", "lr=0.02"]`` → typed ``IDCConfig`` fields (``ValueError`` naming a bad key)."""
    defaults = IDCConfig().to_dict()
    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or key not in defaults:
            raise ValueError(f"--idc takes KEY=VALUE with KEY an IDCConfig field, got {item!r}")
        kind = type(defaults[key]) if defaults[key] is not None else float
        out[key] = value if kind is str else kind(value)
    return out


def _crops(images: list[Image], size: int) -> list[Image]:
    """Centre crops (``size`` × ``size`` at most)."""
    out = []
    for im in images:
        h, w = im.pixels.shape[:2]
        y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
        out.append(Image(im.name, im.pixels[y:y + size, x:x + size].copy()))
    return out


def _is_grey(hq: torch.Tensor) -> bool:
    return bool((hq[0] == hq[1]).all() and (hq[1] == hq[2]).all())


@torch.no_grad()
def score(run, sets: dict[str, list], scale: int, device: torch.device) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM (RGB and Y, ``scale`` pixels cropped, outputs rounded to uint8) per set;
    greyscale images on their own channel (see the module docstring)."""
    out = {}
    for name, triples in sets.items():
        per_image = []
        for _, lq, hq in triples:
            sr = quantize(run(to_float(lq)[None].to(device))[0].float()).cpu()
            if _is_grey(hq):
                p, t = sr.double().mean(0), hq[0].double()
                v = {"psnr_rgb": psnr(p, t, scale), "ssim_rgb": ssim(p, t, scale)}
                v.update(psnr_y=v["psnr_rgb"], ssim_y=v["ssim_rgb"])
            else:
                v = {"psnr_rgb": psnr(sr, hq, scale), "ssim_rgb": ssim(sr, hq, scale),
                     "psnr_y": psnr(sr, hq, scale, y_channel=True), "ssim_y": ssim(sr, hq, scale, y_channel=True)}
            per_image.append({k: float(x) for k, x in v.items()})
        out[name] = {m: statistics.fmean(v[m] for v in per_image) for m in METRICS}
    return out


def student_scores(data: PairSet, model: str, scale: int, seed: int, args, sets, work: str, device) -> tuple:
    """Train the student (same seed, settings, budget for every row) on ``data``; its scores and seconds."""
    torch.manual_seed(seed)
    net = build_model(model, scale)
    t = time.perf_counter()
    train(net, data, TrainConfig(out_dir=work, steps=args.train_steps, batch_size=args.batch_size, seed=seed,
                                 progress=False, ckpt_every=args.train_steps, resume=False))
    train_s = time.perf_counter() - t
    t = time.perf_counter()
    scores = score(net.eval(), sets, scale, device)
    return scores, train_s, time.perf_counter() - t


def folder_patches(folder: str, scale: int, hr: int) -> PairSet:
    return make_pairs_from_paired(load_paired_folder(folder, scale), scale, PatchConfig(hr, hr))


def summarise(records: list[dict], set_names: list[str]) -> list[dict]:
    """One table row per (scale, method): mean ± std over the seeds of every set's metrics."""
    order = {m: i for i, m in enumerate(("bicubic", "teacher", *METHODS))}
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["scale"], r["method"]), []).append(r)
    rows = []
    for (scale, method), rs in sorted(groups.items(), key=lambda kv: (-kv[0][0], order.get(kv[0][1].split("[")[0], 99),
                                                                       kv[0][1])):
        row = {"scale": scale, "method": method, "seeds": len(rs), "pairs": rs[0].get("pairs"),
               "device_s": statistics.fmean(r["make_s"] + r["train_s"] + r["score_s"] for r in rs)}
        for s in set_names:
            for m in METRICS:
                vals = [r["scores"][s][m] for r in rs if s in r["scores"]]
                if vals:
                    row[f"{s} {m}"] = statistics.fmean(vals)
                    row[f"{s} {m} std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        rows.append(row)
    return rows


def table(rows: list[dict], set_names: list[str]) -> str:
    shown = []
    for r in rows:
        t = {k: r[k] for k in ("scale", "method", "seeds", "pairs", "device_s")}
        for s in set_names:
            for m, label, digits in (("psnr_rgb", "PSNR", 2), ("ssim_rgb", "SSIM", 4), ("psnr_y", "PSNR-Y", 2),
                                     ("ssim_y", "SSIM-Y", 4)):
                if f"{s} {m}" in r:
                    t[f"{s} {label}"] = f"{r[f'{s} {m}']:.{digits}f} ± {r[f'{s} {m} std']:.{digits}f}"
        shown.append(t)
    return markdown(shown, list(dict.fromkeys(k for t in shown for k in t)))


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    device = resolve_device("auto")
    device_name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    mode = "val" if args.val else "test"
    work = args.out or os.path.join("runs", "bench-idc-quality" + ("-cpu" if args.small else ""))
    # full runs keep their rows with the results (they come back from the device and are committed);
    # a --small check keeps them in its work folder
    rows_dir = os.path.join(work if args.small else os.path.join(RESULTS_DIR, "idc_quality_rows"), "rows", mode)
    os.makedirs(rows_dir, exist_ok=True)
    overrides = idc_overrides(args.idc)
    idc_label = "idc" + (f"[{','.join(args.idc)}]" if args.idc else "")

    if args.data:
        images = load_folder(args.data)
    else:
        images = sample_images(include_sklearn=False)
    images = sorted(images, key=lambda im: im.name)
    if len(images) <= args.val_images:
        raise ValueError(f"--data holds {len(images)} images: not enough to hold out --val-images {args.val_images}")
    train_images, val_images = images[:-args.val_images], images[-args.val_images:]
    train_images = train_images[:args.max_images] if args.max_images else train_images
    if args.small:  # crops: a script check in a CPU minute or two
        train_images, val_images = _crops(train_images, 160), _crops(val_images, 96)
    model = "edsr-tiny" if args.small else "edsr-baseline"
    small_idc = dict(rlff_channels=32, num_freqs=256, num_groups=8) if args.small else {}
    teachers: dict[int, tuple] = {}

    def eval_sets(scale: int) -> dict[str, list]:
        deg = DegradationConfig("bicubic", scale=scale)
        if args.val:
            return {"val": degraded_pairs(val_images, deg)}
        if args.test:
            return {os.path.basename(os.path.normpath(f)): folder_pairs(f, deg) for f in args.test}
        photos = sample_images(names=["china", "flower"], limit=1 if args.small else None)
        return {"sklearn-photos": degraded_pairs(_crops(photos, 96) if args.small else photos, deg)}

    def base_cfg(scale: int, seed: int, **kw) -> IDCConfig:
        return IDCConfig(**{**dict(scale=scale, ratio=args.ratio, lr_patch=args.lr_patch, lr_stride=args.lr_stride,
                                   iters=args.iters, model=model, seed=seed, batch_instances=args.batch_instances,
                                   progress=False, **small_idc), **kw})

    def teacher(scale: int):
        if scale not in teachers:
            cfg = base_cfg(scale, 0)
            inst = make_instances(train_images, cfg)
            pairs = PairSet(torch.cat([i.lr for i in inst]), torch.cat([i.hr for i in inst]))
            pre = PretrainConfig(model=model, scale=scale, steps=args.teacher_factor * args.train_steps,
                                 batch_size=args.batch_size, seed=0, progress=False)
            t = time.perf_counter()
            net, info = pretrained_network(pre, pairs, os.path.join(work, "cache"))
            teachers[scale] = (net.eval(), info, time.perf_counter() - t)
        return teachers[scale]

    def row_path(scale: int, method: str, seed: int) -> str:
        tag = method if method != "idc" else idc_label
        safe = tag if tag == method else f"idc-{hashlib.sha1(tag.encode()).hexdigest()[:8]}"
        return os.path.join(rows_dir, f"x{scale}-{safe}-seed{seed}.json")

    def make_data(scale: int, method: str, seed: int) -> tuple[PairSet, IDCConfig]:
        hr = args.lr_patch * scale
        kind = "random" if method == "random+teacher" else method
        # "whole" does not depend on the seed (only its student does): one folder for all seeds
        tag = f"x{scale}-{kind if kind != 'idc' else idc_label}" + ("" if kind == "whole" else f"-seed{seed}")
        folder = os.path.join(work, mode, tag)
        nets = None
        if kind in ("idc", "herding", "kcenter"):
            net, info, _ = teacher(scale)
            nets = Networks(net, net, {"feature_extractor": info, "teacher": info})
        cfg = base_cfg(scale, seed, method=kind, **(overrides if kind == "idc" else {}))
        run_idc(cfg, folder, images=train_images, networks=nets, overwrite=True)
        data = folder_patches(folder, scale, hr)
        if method == "random+teacher":
            net, _, _ = teacher(scale)
            hq = quantize(upsample(net, data.lq.float() / 255, device, cfg.teacher_margin))
            data = PairSet(data.lq, hq, data.sources)
        return data, cfg

    plan = [(scale, method, seed) for seed in args.seeds for scale in args.scales
            for method in ("bicubic", "teacher", *args.methods) if seed == args.seeds[0] or method not in
            ("bicubic", "teacher")]
    longest = 0.0
    for scale, method, seed in plan:
        path = row_path(scale, method, seed)
        if os.path.exists(path):
            continue
        elapsed = time.perf_counter() - start
        if args.deadline_s and elapsed + longest > args.deadline_s:
            print(f"deadline: {elapsed:.0f} s gone, the longest row took {longest:.0f} s; stopping (rerun to go on)")
            break
        t0 = time.perf_counter()
        sets = eval_sets(scale)
        rec = {"scale": scale, "method": idc_label if method == "idc" else method, "seed": seed,
               "device": device_name, "make_s": 0.0, "train_s": 0.0}
        if method == "bicubic":
            t = time.perf_counter()
            rec["scores"], rec["score_s"] = score(bicubic_upsampler(scale), sets, scale, device), 0.0
            rec["score_s"] = time.perf_counter() - t
        elif method == "teacher":
            net, info, seconds = teacher(scale)
            t = time.perf_counter()
            rec["scores"] = score(net, sets, scale, device)
            rec.update(train_s=seconds, score_s=time.perf_counter() - t, steps=info["steps"],
                       cache_key=info["cache_key"], pairs=info["pairs"])
        else:
            t = time.perf_counter()
            data, cfg = make_data(scale, method, seed)
            rec["make_s"], rec["pairs"] = time.perf_counter() - t, len(data)
            rec["scores"], rec["train_s"], rec["score_s"] = student_scores(
                data, model, scale, seed, args, sets, os.path.join(work, "train"), device)
            if method == "idc":
                rec["idc_settings"] = cfg.settings()
        atomic_write_json(path, rec)
        longest = max(longest, time.perf_counter() - t0)
        print(f"x{scale} {rec['method']} seed {seed}: " + ", ".join(
            f"{s} PSNR-Y {v['psnr_y']:.2f}" for s, v in rec["scores"].items()), flush=True)

    records = []
    for f in sorted(os.listdir(rows_dir)):
        with open(os.path.join(rows_dir, f)) as fh:
            records.append(json.load(fh))
    set_names = sorted({s for r in records for s in r["scores"]})
    rows = summarise(records, set_names)
    text = table(rows, set_names)
    print(text)
    done = {(r["scale"], r["method"], r["seed"]) for r in records}
    missing = [p for p in plan if (p[0], idc_label if p[1] == "idc" else p[1], p[2]) not in done]
    notes = (f"Mode: {mode} ({'the last ' + str(args.val_images) + ' images of the training folder' if args.val else 'test folders, scored once'}). "
             f"{len(train_images)} training images ({args.data or 'embedded photos'}), r = {args.ratio}, LR patches "
             f"{args.lr_patch} stride {args.lr_stride}, seeds {args.seeds} (mean ± std; std of one seed = 0). "
             f"Student: {model} from the row's seed, {args.train_steps} steps, batch {args.batch_size}, the trainer's "
             f"defaults (AdamW 3e-4 cosine, L1), the same for every row. Teacher = IDC's feature extractor: {model} "
             f"trained {args.teacher_factor * args.train_steps} steps on all training patches (seed 0), HR targets "
             f"up-sampled with a reflected margin. IDC: {args.iters} iterations per image, the config defaults "
             f"otherwise{' and ' + ', '.join(args.idc) if args.idc else ''}. random+teacher: the random row's LR patches, "
             f"HR made by the teacher. PSNR/SSIM: outputs rounded to uint8, border = scale; greyscale images on their "
             f"own channel. device_s: mean seconds per seed on the row's device (making the set + training + "
             f"scoring; the teacher row: its training). Rows still missing: {len(missing)}.\n")
    if args.small:
        notes += ("\nSMALL CPU RUN: a script check at a tiny budget (edsr-tiny, a few steps, 2 images); the numbers "
                  "say nothing about quality.\n")
    print("wrote", *write_results("idc_quality" + ("_val" if args.val else ""), rows, text, notes, small=args.small))


if __name__ == "__main__":
    main()
