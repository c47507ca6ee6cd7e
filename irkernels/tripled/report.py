"""``report.html`` of a TripleD run: what was selected and why, what the distillation did to each
crop, how close the synthetic features came to the real ones, and — once a network was trained on
the result — its scores next to the baseline's. Paths are shown relative to the report."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import torch

from ..data.images import read_image, to_float, to_tensor
from ..outputs import (RunFolder, checkpoint_shown, figure_html, mosaic_html, pair_rows_html, relative_path,
                       table_html, write_report)
from .items import LazyTensors

SHOWN_IMAGES = 16  # selected / rejected images shown as thumbnails
SHOWN_PAIRS = 8  # before/after rows
EVAL_FILES = (("eval.json", "trained on the distilled set"), ("eval_dynamic.json", "trained with dynamic selection"))


def _thumb(img: torch.Tensor, size: int = 128) -> torch.Tensor:
    """A whole image scaled to ``size`` px on its long side (aspect kept), for the selection mosaics."""
    h, w = img.shape[-2:]
    f = size / max(h, w)
    return torch.nn.functional.interpolate(img[None], size=(max(1, round(h * f)), max(1, round(w * f))),
                                           mode="bilinear", antialias=True, align_corners=False)[0]


def _png(path: str) -> torch.Tensor:
    return to_float(to_tensor(read_image(path)))


def _shown_path(path: str | None, report: str) -> str | None:
    """A recorded path as the report shows it: relative to the report when it is a file path."""
    if not path or not os.path.isabs(path):
        return path
    return relative_path(path, report)


def trained_scores_rows(root: str) -> list[dict]:
    """One row per (training, task type, test set) from ``eval.json`` / ``eval_dynamic.json`` in
    ``root``: the trained network's mean PSNR/SSIM (RGB and Y) and the baseline's on the same images."""
    rows = []
    for name, what in EVAL_FILES:
        path = os.path.join(root, name)
        if not os.path.exists(path):
            continue
        with open(path) as fh:
            scores = json.load(fh)
        for t, res in scores.items():
            for set_name, net in res["network"]["sets"].items():
                base = res["baseline"]["sets"][set_name]["mean"]
                m = net["mean"]
                rows.append({"network": what, "type": t, "set": set_name, "images": len(net["images"]),
                             "PSNR-RGB": m["psnr_rgb"], f"{res['baseline_name']} PSNR-RGB": base["psnr_rgb"],
                             "PSNR-Y": m["psnr_y"], f"{res['baseline_name']} PSNR-Y": base["psnr_y"],
                             "SSIM-Y": m["ssim_y"], f"{res['baseline_name']} SSIM-Y": base["ssim_y"]})
    return rows


def write_tripled_report(folder: RunFolder, records: dict, items: Sequence,
                         syn_inputs: torch.Tensor | None = None) -> str:
    """``report.html``: warnings (untrusted VAE, scorer fallback), selection, score histogram,
    examples, the feature network and statistics, before/after rows (``syn_inputs``: the crops the
    synthetic images started from, when known), losses, Figure-12-style alignment of the real and
    synthetic feature distributions, and the scores of networks trained on the result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec = records["scores"]
    scores = np.asarray(rec["scores"])
    chosen = {i for i, _ in rec["selected"]}
    order = np.argsort(-scores, kind="stable")
    rejected = [i for i in order[::-1] if i not in chosen]
    lazy = LazyTensors(items)
    report = os.path.join(folder.root, "report.html")
    info = rec.get("scorer_info", {})
    syn = records.get("synthetic")
    vae = (syn or {}).get("vae")
    sections = []
    if vae and not vae["trusted"] and not vae.get("chosen"):
        sections.append(("WARNING: VAE not trusted", f'<p style="color:red;font-weight:bold">{vae["warning"]}</p>'))
    if info.get("fallback"):
        sections.append(("WARNING: ViT scorer not used",
                         f'<p style="color:red;font-weight:bold">held-out Spearman {info["spearman_heldout"]:.3f} '
                         f"against exact entropy is below the bar: the images were ranked by exact entropy.</p>"))
    sections.append(("Summary", table_html([{
        "images": len(scores), "selected": len(chosen), "scorer asked": rec["scorer"], "scorer used": info.get("used"),
        "ViT Spearman vs entropy (held-out crops)": info.get("spearman_heldout"),
        "threshold score": float(min(scores[i] for i in chosen)),
        "distillation space": (syn or {}).get("distillation_space"),
        "VAE": _shown_path((vae or {}).get("source"), report),
        "VAE reconstruction PSNR (held-out crops, dB)": (vae or {}).get("reconstruction_psnr"),
        "pairs written": len(os.listdir(folder.hr_dir))}])))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.hist(scores, bins=min(50, max(5, len(scores))), color="#888")
    ax.axvline(min(scores[i] for i in chosen), color="red", label="selection threshold")
    ax.set_xlabel("complexity score"), ax.set_ylabel("images"), ax.legend()
    sections.append(("Score histogram", figure_html(fig)))
    sections.append(("Selected (most complex, best first)",
                     mosaic_html([_thumb(lazy[i]) for i, _ in rec["selected"][:SHOWN_IMAGES]], total=len(chosen),
                                 title="selected images")))
    sections.append(("Rejected (least complex first)",
                     mosaic_html([_thumb(lazy[i]) for i in rejected[:SHOWN_IMAGES]], total=len(rejected),
                                 title="rejected images")))
    if rec.get("scorer_losses"):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot(rec["scorer_losses"]), ax.set_xlabel("step"), ax.set_ylabel("MSE"), ax.set_yscale("log")
        sections.append(("Scorer training", figure_html(fig)))
    if syn:
        net = syn.get("feature_network", {})
        sections.append(("Feature network", table_html([{
            "model": net.get("model"), "checkpoint": checkpoint_shown(net, report),
            "trained here": net.get("trained_here"),
            "reused from cache": net.get("reused"), "steps": net.get("steps"),
            "median |Φ_real(t)|": syn.get("cf_modulus_median"), "frequency std": syn.get("freq_std"),
            "feature positions": syn.get("feature_positions")}])))
        stages = [s for s in ("initial", "after_vae_reconstruction", "after_latent", "after_cnn") if s in syn]
        sections.append(("Feature matching (eq. 4 terms and NCFD against the real target)",
                         table_html([{"stage": s, **syn[s]} for s in stages])))
        sections.append(("PSNR of the synthetic images against the crops they started from (dB)",
                         table_html([syn.get("psnr_vs_input", {})])))
        rows = []
        for k, it in enumerate(syn["items"][:SHOWN_PAIRS]):
            hq = _png(os.path.join(folder.hr_dir, f"{it}.png"))
            lq = _png(os.path.join(folder.lr_dir, f"{it}.png"))
            rows.append((it, ([syn_inputs[k]] if syn_inputs is not None else []) + [hq, lq]))
        columns = (["input crop (selected image)"] if syn_inputs is not None else []) + [
            "synthetic HQ (after all steps)", "its LQ input (degraded)"]
        sections.append(("Before / after: each synthetic pair and the crop it started from",
                         pair_rows_html(rows, columns, total=len(syn["items"]))))
        curves = [(k, v) for k, v in (("VAE loss", (vae or {}).get("losses")),
                                       ("latent NCFD", syn.get("latent_losses")),
                                       ("CNN loss (eq. 4)", (syn.get("cnn_losses") or {}).get("loss"))) if v]
        if curves:
            fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3), squeeze=False)
            for ax, (name, v) in zip(axes[0], curves):
                ax.plot(v), ax.set_title(name), ax.set_xlabel("step")
            sections.append(("Losses", figure_html(fig)))
        sections.append(("Real vs synthetic feature distributions (Figure 12)",
                         _alignment_figure(syn["projection"], plt)))
    trained = trained_scores_rows(folder.root)
    sections.append(("Networks trained on the result", table_html(trained) if trained else
                     "<p>(none yet: <code>tripled --train-steps N --test DIR</code> trains and evaluates one)</p>"))
    return write_report(report, f"irkernels tripled: {os.path.basename(folder.root)}", sections)


def _alignment_figure(proj: dict, plt) -> str:
    """KDE of the projected features (real, before, after the CNN) and a QQ plot against the real."""
    from scipy.stats import gaussian_kde

    colours = {"real": "tab:blue", "before_cnn": "tab:orange", "after_cnn": "tab:green"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    values = {k: np.asarray(v, dtype=np.float64) for k, v in proj.items()}
    lo = min(v.min() for v in values.values())
    hi = max(v.max() for v in values.values())
    grid = np.linspace(lo, hi, 200)
    for k, v in values.items():
        if v.std() > 0:
            ax1.plot(grid, gaussian_kde(v)(grid), label=k, color=colours[k])
    ax1.set_title("KDE of features on the real set's 1st principal axis"), ax1.legend()
    q = np.linspace(0.01, 0.99, 99)
    ref = np.quantile(values["real"], q)
    for k in ("before_cnn", "after_cnn"):
        ax2.plot(ref, np.quantile(values[k], q), "o", ms=3, label=k, color=colours[k])
    ax2.plot([ref[0], ref[-1]], [ref[0], ref[-1]], "k--", lw=1)
    ax2.set_xlabel("real quantiles"), ax2.set_ylabel("synthetic quantiles"), ax2.set_title("QQ plot"), ax2.legend()
    return figure_html(fig)
