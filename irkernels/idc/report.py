"""``report.html`` of an IDC / baseline run: what was made, how it looks, how the losses went, timing."""
from __future__ import annotations

import os

import numpy as np
import torch

from ..data import read_image, to_float, to_tensor
from ..outputs import RunFolder, figure_html, mosaic_html, table_html, write_report
from .condense import LOSS_NAMES
from .config import IDCConfig
from .instances import Instance

MOSAIC_INSTANCES = 4
MOSAIC_PATCHES = 8


def _png(path: str) -> torch.Tensor:
    return to_float(to_tensor(read_image(path)))


def _mosaics(run: RunFolder, records: list[dict], by_name: dict[str, Instance]) -> str:
    parts = []
    for rec in records[:MOSAIC_INSTANCES]:
        inst = by_name.get(rec["source"])
        if inst is None:
            continue
        real = [p.float() / 255 for p in inst.lr[:MOSAIC_PATCHES]]
        items = rec["items"][:MOSAIC_PATCHES]
        syn = [_png(os.path.join(run.lr_dir, f"{it}.png")) for it in items]
        hr = [_png(os.path.join(run.hr_dir, f"{it}.png")) for it in items]
        parts.append(mosaic_html(real, columns=MOSAIC_PATCHES, title=f"{inst.name}: real LR patches ({len(inst)})"))
        parts.append(mosaic_html(syn, columns=MOSAIC_PATCHES, title=f"{inst.name}: output LR ({rec['num_pairs']})"))
        parts.append(mosaic_html(hr, columns=MOSAIC_PATCHES, title=f"{inst.name}: output HR"))
    return "".join(parts) or "<p>(no finished instance)</p>"


def _loss_figure(records: list[dict], cfg: IDCConfig) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [r["loss_curve"] for r in records if r.get("loss_curve") and r["loss_curve"]["step"]]
    if not curves:
        return "<p>(no loss curves)</p>"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    steps = curves[0]["step"]
    for ax, name in zip(axes, LOSS_NAMES):
        values = np.array([c[name] for c in curves if c["step"] == steps])
        for row in values[:20]:
            ax.plot(steps, row, color="0.8", lw=0.7)
        ax.plot(steps, values.mean(0), color="C0", lw=2, label=f"mean of {len(values)}")
        for edge in (cfg.warmup_iters(), cfg.warmup_iters() + cfg.assigning_iters()):
            ax.axvline(edge, color="C3", ls=":", lw=1)
        ax.set_title(f"L_{name}")
        ax.set_xlabel("iteration")
        ax.legend(fontsize=7)
    fig.suptitle("unweighted losses per instance (dotted: end of warm-up, end of assigning; the loop "
                 "minimises them scaled as in the table below)", y=1.04)
    return figure_html(fig)


def write_idc_report(run: RunFolder, cfg: IDCConfig, instances: list[Instance], path: str,
                     networks: dict | None = None) -> str:
    records = run.records()
    by_name = {i.name: i for i in instances}
    pairs = sum(r["num_pairs"] for r in records)
    real = sum(r["num_real"] for r in records)
    seconds = [r.get("seconds", 0.0) for r in records]
    summary = [{"method": cfg.method, "instances": len(records), "real patches": real, "output pairs": pairs,
                "ratio (asked)": cfg.ratio, "ratio (got)": pairs / max(real, 1), "scale": cfg.scale,
                "LR patch": cfg.lr_patch, "iterations": cfg.iters if cfg.method == "idc" else None,
                "seconds / instance (mean)": float(np.mean(seconds)) if seconds else None}]
    timing = [{"instance": r["source"], "real": r["num_real"], "pairs": r["num_pairs"], "seconds": r.get("seconds"),
               "ms / iteration": r.get("ms_per_iter"),
               **{f"final L_{k}": v for k, v in (r.get("final_losses") or {}).items()},
               **{f"scale L_{k}": v for k, v in (r.get("loss_scales") or {}).items()},
               **{f"group kept ({k})": v for k, v in (r.get("group_keep") or {}).items() if k != "redraws"}}
              for r in records]
    sections = [("Summary", table_html(summary)), ("Patches: real vs output", _mosaics(run, records, by_name))]
    if cfg.method == "idc":
        sections.append(("Losses", _loss_figure(records, cfg)))
    if networks:
        rows = [{"role": role, **{k: v for k, v in info.items() if not isinstance(v, (dict, list))},
                 **{f"val {k}": v for k, v in (info.get("val") or {}).items() if k != "fingerprint"},
                 **({"val images": len(info["val_images"])} if "val_images" in info else {})}
                for role, info in networks.items() if isinstance(info, dict)]
        sections.append(("Networks", table_html(rows, sorted({k for r in rows for k in r}, key=lambda k: k != "role"))))
    sections.append(("Per instance", table_html(timing)))
    return write_report(path, f"irkernels {cfg.method}: {run.root}", sections)
