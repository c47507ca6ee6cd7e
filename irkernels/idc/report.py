"""``report.html`` of an IDC / baseline run: what was made (before/after pairs, real patches with
counts), how the real and synthetic feature distributions compare, how the losses went, the
networks (held-out PSNR next to bicubic's), timing. Every path is relative to the report."""
from __future__ import annotations

import html
import os

import numpy as np
import torch
from torch import nn

from ..data import read_image, to_tensor
from ..outputs import (RunFolder, checkpoint_shown, distribution_figure_html, figure_html, mosaic_html,
                       pair_rows_html, relative_path, table_html, write_report)
from ..patches import Instance, extract_features
from .condense import LOSS_NAMES
from .config import FEATURE_METHODS, IDCConfig

SHOWN_INSTANCES = 4  # instances with before/after rows, real-patch mosaics and in the distribution figure
SHOWN_PAIRS = 8  # before/after rows (and real patches) per shown instance


def _png(path: str) -> torch.Tensor:
    """A stored PNG as uint8 ``(3, h, w)``."""
    return to_tensor(read_image(path))


def _stored(run: RunFolder, items: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The stored (LR, HR) pairs of ``items`` as uint8 ``(n, 3, h, w)`` / ``(n, 3, H, W)``."""
    lr = torch.stack([_png(os.path.join(run.lr_dir, f"{it}.png")) for it in items])
    hr = torch.stack([_png(os.path.join(run.hr_dir, f"{it}.png")) for it in items])
    return lr, hr


def _shown(records: list[dict], by_name: dict[str, Instance]) -> list[tuple[dict, Instance]]:
    return [(r, by_name[r["source"]]) for r in records if r["source"] in by_name][:SHOWN_INSTANCES]


def _pairs_section(run: RunFolder, shown: list[tuple[dict, Instance]]) -> str:
    """Per shown instance: before/after rows (IDC: initial real LR patch → synthetic LR → teacher HR;
    a baseline: the real LR/HR pair it picked) and a mosaic of the instance's real LR patches."""
    parts = []
    for rec, inst in shown:
        items = rec["items"][:SHOWN_PAIRS]
        lr, hr = _stored(run, items)
        init = rec.get("init_index")
        if rec["method"] == "idc" and init is not None:
            columns = ["initial real LR patch", "synthetic LR", "teacher HR"]
            rows = [(it, [inst.lr[i] / 255, a / 255, b / 255]) for it, i, a, b in zip(items, init, lr, hr)]
        elif rec["method"] == "idc":
            columns = ["synthetic LR (from noise)", "teacher HR"]
            rows = [(it, [a / 255, b / 255]) for it, a, b in zip(items, lr, hr)]
        else:
            columns = ["real LR", "real HR"]
            rows = [(it, [a / 255, b / 255]) for it, a, b in zip(items, lr, hr)]
        parts.append(f"<h3>{html.escape(inst.name)}: {rec['num_pairs']} output pairs from {len(inst)} real patches</h3>")
        parts.append(pair_rows_html(rows, columns, total=rec["num_pairs"]))
        parts.append(mosaic_html([p / 255 for p in inst.lr[:SHOWN_PAIRS]], columns=SHOWN_PAIRS,
                                 title=f"{inst.name}: real LR patches", total=len(inst)))
    return "".join(parts) or "<p>(no finished instance)</p>"


def _descriptors(lr: torch.Tensor, fe: nn.Module | None, device: torch.device | str, amp: bool) -> torch.Tensor:
    """Per-patch descriptors of uint8 LR patches ``(N, 3, h, w)`` → float64 ``(N, D)``: the feature
    extractor's ``features()`` averaged over space, or (without one) the mean RGB."""
    if fe is None:
        return lr.double().mean(dim=(2, 3)) / 255
    was_training = fe.training
    feats = extract_features(fe.to(device).eval(), lr, torch.device(device), amp=amp).mean(dim=(2, 3))
    fe.train(was_training)
    return feats.double().cpu()


def _distribution_section(run: RunFolder, shown: list[tuple[dict, Instance]], fe: nn.Module | None,
                          device: torch.device | str, amp: bool) -> str:
    if not shown:
        return "<p>(no finished instance)</p>"
    real = torch.cat([inst.lr for _, inst in shown])
    synthetic = torch.cat([_stored(run, rec["items"])[0] for rec, _ in shown])
    real_d, syn_d = _descriptors(real, fe, device, amp), _descriptors(synthetic, fe, device, amp)
    mean, std = real_d.mean(0), real_d.std(0, unbiased=False).clamp(min=1e-8)  # both sides on the real scale
    what = ("the feature extractor's features() averaged over each patch" if fe is not None
            else "each patch's mean RGB (this method uses no feature extractor)")
    names = ", ".join(inst.name for _, inst in shown)
    return (f"<p>Per-patch descriptors: {what}, {real_d.shape[1]} dimensions, standardised by the real "
            f"patches' mean and std; {len(real)} real vs {len(synthetic)} output LR patches of {names}.</p>"
            + distribution_figure_html((real_d - mean) / std, (syn_d - mean) / std))


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
    # Why L_pair climbs between the dotted lines (measured on the demo: mean 0.94 → 1.72 over the
    # assigning phase, then 1.72 → 1.51 once every patch is assigned): it sums over the assigned
    # synthetic patches, whose share grows linearly there, so it rises as terms are added.
    note = ("<p>L_pair sums over the synthetic patches assigned a real partner, and their share grows "
            "linearly from the first dotted line to the second: it rises there as patches join, and falls "
            f"once all are assigned. Groups and pairs are re-made every {cfg.reassign_every} iterations and "
            f"the frequencies re-drawn every {cfg.resample_every}, which moves the targets of L_group and "
            "L_pair: steps at those iterations are re-targeting, not divergence.</p>")
    return figure_html(fig) + note


def _networks_section(networks: dict, path: str) -> str:
    """One row per network (its roles together when one network plays several): where it came from
    (``outputs.checkpoint_shown``: relative to the report; copied into the folder by ``--portable``,
    or said not to travel with it, with its cache key) and, when it was pre-trained here, its held-out PSNR next to bicubic's on the same
    held-out patches."""
    rows, by_checkpoint = [], {}
    for role, info in networks.items():
        if not isinstance(info, dict):
            rows.append({"role": role, "source": str(info)})
            continue
        if info.get("checkpoint") in by_checkpoint:  # the same network in another role: one row
            by_checkpoint[info["checkpoint"]]["role"] += f" + {role}"
            continue
        val, bicubic = info.get("val") or {}, info.get("val_bicubic") or {}
        checkpoint = info.get("checkpoint")
        rows.append({"role": role, "model": info.get("model"), "checkpoint": checkpoint_shown(info, path),
                     "pre-trained here": "reused" if info.get("reused") else ("yes" if "reused" in info else "no"),
                     "steps": info.get("steps"), "train images": info.get("train_images"),
                     "held-out images": len(info["val_images"]) if "val_images" in info else None,
                     "held-out patches": val.get("pairs"),
                     "PSNR RGB (dB)": val.get("psnr_rgb"), "bicubic PSNR RGB (dB)": bicubic.get("psnr_rgb"),
                     "PSNR Y (dB)": val.get("psnr_y"), "bicubic PSNR Y (dB)": bicubic.get("psnr_y"),
                     "note": "BELOW bicubic" if val and bicubic and val["psnr_y"] < bicubic["psnr_y"] else None})
        if checkpoint:
            by_checkpoint[checkpoint] = rows[-1]
    columns = [c for c in ("role", "source", "model", "checkpoint", "pre-trained here", "steps", "train images",
                           "held-out images", "held-out patches", "PSNR RGB (dB)", "bicubic PSNR RGB (dB)",
                           "PSNR Y (dB)", "bicubic PSNR Y (dB)", "note") if any(r.get(c) is not None for r in rows)]
    return table_html(rows, columns)


def _files_section(run: RunFolder, path: str) -> str:
    rows = [{"what": what, "path": relative_path(p, path) + ("/" if os.path.isdir(p) else "")}
            for what, p in (("HR targets", run.hr_dir), ("LR inputs", run.lr_dir), ("manifest", run.manifest_path),
                            ("per-instance records", run.records_dir))]
    return table_html(rows)


PER_INSTANCE_NOTE = (
    "<p>One row per image. <i>real</i>: its real patches; <i>pairs</i>: the synthetic (or selected) pairs "
    "kept. <i>B</i>: the images condensed together in one batch; <i>batch seconds</i> that batch's wall time, "
    "<i>seconds</i> its share (÷ B), <i>ms / iteration</i> the share per iteration. <i>final L_ins / L_group / "
    "L_pair</i>: the unweighted instance, group and pair losses at the last iteration. <i>scale L_group / "
    "L_pair</i>: the factor <code>loss_scale</code> applied to those terms (1 before a term starts). "
    "<i>group kept (real)</i>: the share of real patches that keep their k-means group from one re-draw of the "
    "groups to the next, groups matched one-to-one; <i>(real_same_id)</i> the same without matching (a mere "
    "renaming of the groups counts as a change); <i>(synthetic)</i> the same for the synthetic patches' "
    "assignments.</p>")


def write_idc_report(run: RunFolder, cfg: IDCConfig, instances: list[Instance], path: str,
                     networks: dict | None = None, feature_extractor: nn.Module | None = None,
                     device: torch.device | str = "cpu") -> str:
    """Write ``report.html`` of the run folder ``run`` to ``path`` and return ``path``.

    ``instances``: the run's instances (their real patches are shown next to the outputs);
    ``networks``: the manifest's networks record; ``feature_extractor``: the frozen network whose
    ``features()`` describe the patches in the distribution figure (``None``: mean RGB) on ``device``."""
    records = run.records()
    by_name = {i.name: i for i in instances}
    pairs = sum(r["num_pairs"] for r in records)
    real = sum(r["num_real"] for r in records)
    seconds = [r.get("seconds", 0.0) for r in records]
    summary = [{"method": cfg.method, "instances": len(records), "real patches": real, "output pairs": pairs,
                "ratio (asked)": cfg.ratio, "ratio (got)": pairs / max(real, 1), "scale": cfg.scale,
                "LR patch": cfg.lr_patch, "iterations": cfg.iters if cfg.method == "idc" else None,
                "seconds / instance (batch time ÷ B, mean)": float(np.mean(seconds)) if seconds else None}]
    timing = [{"instance": r["source"], "real": r["num_real"], "pairs": r["num_pairs"],
               "B (instances in its batch)": r.get("batch_instances"), "batch seconds": r.get("batch_seconds"),
               "seconds (batch of B ÷ B)": r.get("seconds"), "ms / iteration": r.get("ms_per_iter"),
               **{f"final L_{k}": v for k, v in (r.get("final_losses") or {}).items()},
               **{f"scale L_{k}": v for k, v in (r.get("loss_scales") or {}).items()},
               **{f"group kept ({k})": v for k, v in (r.get("group_keep") or {}).items() if k != "redraws"}}
              for r in records]
    shown = _shown(records, by_name)
    sections = [("Summary", table_html(summary)), ("Files", _files_section(run, path)),
                (f"Before / after (showing {len(shown)} of {len(records)} instances)", _pairs_section(run, shown)),
                ("Distributions: real vs synthetic",
                 _distribution_section(run, shown, feature_extractor if cfg.method in FEATURE_METHODS else None,
                                       device, cfg.amp))]
    if cfg.method == "idc":
        sections.append(("Losses", _loss_figure(records, cfg)))
    if networks:
        sections.append(("Networks", _networks_section(networks, path)))
    sections.append(("Per instance", PER_INSTANCE_NOTE + table_html(timing, list(dict.fromkeys(k for r in timing
                                                                                                for k in r)))))
    title = f"irkernels {cfg.method} run: {os.path.basename(run.root)}"
    return write_report(path, title, sections)
