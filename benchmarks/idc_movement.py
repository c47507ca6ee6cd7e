"""How far IDC's condensation moves its patches, per budget of a `compare --budgets` folder.

For every IDC set (`sets/idc*-n<pairs>-seed<s>`): the instance loss's relative drop over the run
(its first logged value, at step 10, to its last) and the PSNR between each condensed LR patch and
the real LR patch it started from (cut from the same bicubic-downsampled image as compare's). Reads
PNGs and JSON records only, so it runs beside a sweep. Writes a markdown table to stdout.

    python benchmarks/idc_movement.py runs/budgets-cpu ../shared/data/train/CBSD432
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys
from collections import defaultdict

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from irkernels.data.degrade import bicubic_downsample  # noqa: E402
from irkernels.data.images import modcrop, quantize, read_image, to_float, to_tensor  # noqa: E402
from irkernels.metrics import psnr  # noqa: E402


def lr_image(data: str, name: str, scale: int, cache: dict) -> torch.Tensor:
    """The image's LR version as compare makes it: mod-crop, bicubic ÷scale, quantised, in [0, 1]."""
    if name not in cache:
        path = next(p for p in glob.glob(os.path.join(data, name + ".*")))
        hr = to_tensor(modcrop(read_image(path), scale))
        cache[name] = quantize(bicubic_downsample(to_float(hr), scale)).float() / 255
    return cache[name]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="a compare --budgets folder")
    ap.add_argument("data", help="its training image folder")
    args = ap.parse_args()
    cache: dict = {}
    rows = defaultdict(lambda: {"drop": [], "psnr": []})
    for folder in sorted(glob.glob(os.path.join(args.out, "sets", "idc*-n*-seed*"))):
        m = re.match(r"(idc.*)-n(\d+)-seed(\d+)$", os.path.basename(folder))
        variant, pairs = m.group(1), int(m.group(2))
        settings = json.load(open(os.path.join(folder, "records", "_settings.json")))
        scale = settings["scale"]
        for rec_path in glob.glob(os.path.join(folder, "records", "*.json")):
            rec = json.load(open(rec_path))
            if "loss_curve" not in rec:
                continue
            ins = rec["loss_curve"]["ins"]
            rows[(pairs, variant)]["drop"].append(1 - ins[-1] / ins[0])
            for item, origin in zip(rec["items"], rec["init_patches"]):
                source = origin.get("image", rec["source"])
                lr = lr_image(args.data, source, scale, cache)
                y, x, side = origin["y"] // scale, origin["x"] // scale, origin["size"] // scale
                start = lr[:, y:y + side, x:x + side]
                lr_png = glob.glob(os.path.join(folder, "LR_bicubic", f"X{scale}", f"{item}*.png"))[0]
                condensed = to_float(to_tensor(read_image(lr_png)))
                rows[(pairs, variant)]["psnr"].append(float(psnr(condensed[None], start[None], data_range=1.0)))
    print("| patches | set | instance loss drop, step 10 → last (mean) "
          "| condensed vs initial LR patch, PSNR dB (median, min) | patches |")
    print("|---|---|---|---|---|")
    for (pairs, variant), r in sorted(rows.items()):
        print(f"| {pairs} | {variant} | {100 * statistics.fmean(r['drop']):.0f} % | "
              f"{statistics.median(r['psnr']):.1f}, {min(r['psnr']):.1f} | {len(r['psnr'])} |")


if __name__ == "__main__":
    main()
