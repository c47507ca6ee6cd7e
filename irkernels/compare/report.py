"""What a comparison writes from its finished rows: ``compare.json`` (every row and the summary),
``table.md`` (mean ± std over seeds, RGB and Y PSNR/SSIM, bicubic and the teacher as rows),
``curves.png`` (validation PSNR-Y against steps, one line per set with the seeds' band),
the steps each set needs to reach a target PSNR, and ``report.html`` with all of it.

The checks that say whether a comparison can tell sets apart (``summary["checks"]``): every
student beats bicubic on the validation split by ``MIN_GAIN_DB`` PSNR-Y, and ``whole`` beats
``random`` by more than twice the larger of their seed spreads (the data matters at that budget).
"""
from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence

from ..evaluate import METRICS
from ..outputs import atomic_write_bytes, atomic_write_json, figure_html, table_html, versions, write_report
from .config import RANDOM_CONTROLS, REFERENCES, SETS, CompareConfig

MIN_GAIN_DB = 0.3  # a student must beat bicubic by this much PSNR-Y for its row to count
LABELS = {"psnr_rgb": ("PSNR", 2), "ssim_rgb": ("SSIM", 4), "psnr_y": ("PSNR-Y", 2), "ssim_y": ("SSIM-Y", 4)}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def steps_to(curve: Sequence[dict], target: float, metric: str = "psnr_y") -> float | None:
    """The first step at which ``curve`` reaches ``target`` (linear between its points; from step 0
    at the first point's value), or ``None`` when it never does."""
    prev_step, prev = 0, None
    for p in curve:
        if p[metric] >= target:
            if prev is None or p[metric] == prev:
                return float(p["step"])
            return prev_step + (target - prev) / (p[metric] - prev) * (p["step"] - prev_step)
        prev_step, prev = p["step"], p[metric]
    return None


def _order(name: str) -> tuple[int, str]:
    kinds = (*REFERENCES, *SETS)
    base = name.split("[")[0]
    return (kinds.index(base) if base in kinds else len(kinds), name)


def summarise(rows: list[dict], target_psnr: float | None) -> dict:
    """Per row name: seeds, pairs, seconds, mean ± std of every metric on every scored set, mean
    curve; the steps-to-target of each; the validity checks."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["row"], []).append(r)
    table = []
    for name in sorted(groups, key=_order):
        rs = sorted(groups[name], key=lambda r: (r["seed"] is None, r["seed"]))
        entry = {"row": name, "kind": rs[0]["kind"], "seeds": [r["seed"] for r in rs if r["seed"] is not None],
                 "pairs": rs[0].get("pairs"), "device": rs[0]["device"],
                 "make_s": statistics.fmean(r["make_s"] for r in rs), "train_s": statistics.fmean(r["train_s"] for r in rs),
                 "scores": {}}
        for split in ["val", *sorted({s for r in rs for s in r.get("test", {})})]:
            per = [r["val"] if split == "val" else r["test"][split] for r in rs if split == "val" or split in r.get("test", {})]
            if len(per) == len(rs):
                entry["scores"][split] = {m: _mean_std([p[m] for p in per]) for m in METRICS}
        curves = [r["curve"] for r in rs if r.get("curve")]
        if curves and len({len(c) for c in curves}) == 1:
            entry["curve"] = {"step": [p["step"] for p in curves[0]],
                              "psnr_y": [_mean_std([c[i]["psnr_y"] for c in curves]) for i in range(len(curves[0]))]}
        entry["_curves"] = curves
        table.append(entry)
    by_name = {e["row"]: e for e in table}
    control = next((c for c in RANDOM_CONTROLS if "val" in by_name.get(c, {}).get("scores", {})), None)
    if target_psnr is None and control is not None:  # random's final mean, else random-images'
        target_psnr = by_name[control]["scores"]["val"]["psnr_y"][0]
    for e in table:
        curves = e.pop("_curves")
        if target_psnr is not None and curves:
            reached = [steps_to(c, target_psnr) for c in curves]
            hit = [s for s in reached if s is not None]
            e["steps_to_target"] = {"reached": len(hit), "of": len(curves),
                                    "steps": _mean_std(hit) if hit else None}
    return {"rows": table, "target_psnr": target_psnr, "checks": checks(by_name)}


def checks(by_name: dict[str, dict]) -> dict:
    """Whether the comparison tells: every student beats bicubic by ``MIN_GAIN_DB`` PSNR-Y on the
    validation split; ``whole`` beats ``random`` (and ``random-images``, TripleD's control) by more
    than twice the larger seed spread."""
    out: dict = {}
    baseline = next((name for name in ("bicubic", "input") if name in by_name), None)
    bic = by_name.get(baseline, {}).get("scores", {}).get("val")
    if bic is None:
        return out
    below = {name: round(e["scores"]["val"]["psnr_y"][0] - bic["psnr_y"][0], 3) for name, e in by_name.items()
             if name not in REFERENCES and "val" in e["scores"]
             and e["scores"]["val"]["psnr_y"][0] - bic["psnr_y"][0] < MIN_GAIN_DB}
    out["students_beat_bicubic"] = {"ok": not below, "min_gain_db": MIN_GAIN_DB, "short": below, "baseline": baseline}
    for control in RANDOM_CONTROLS:
        if "whole" in by_name and control in by_name and "val" in by_name["whole"]["scores"] \
                and "val" in by_name[control]["scores"]:
            (w, ws), (r, rs) = by_name["whole"]["scores"]["val"]["psnr_y"], by_name[control]["scores"]["val"]["psnr_y"]
            seeds = min(len(by_name["whole"]["seeds"]), len(by_name[control]["seeds"]))
            # one seed has no spread to beat: the check then fails rather than passing on a zero
            out[f"whole_beats_{control}"] = {"ok": seeds >= 2 and w - r > 2 * max(ws, rs), "gap_db": w - r,
                                             "twice_spread_db": 2 * max(ws, rs), "control": control, "seeds": seeds}
    return out


def verdict_lines(summary: dict) -> list[str]:
    """What the command prints under the table: each check, and each student below bicubic."""
    c = summary["checks"]
    lines = []
    if "students_beat_bicubic" in c:
        b = c["students_beat_bicubic"]
        lines.append(f"every student beats {b['baseline']} by >= {b['min_gain_db']} dB PSNR-Y on val: "
                     + ("yes" if b["ok"] else f"NO ({', '.join(f'{k} {v:+.2f} dB' for k, v in b['short'].items())})"))
        for name, gain in b["short"].items():
            if gain < 0:
                lines.append(f"warning: {name} is BELOW {b['baseline']} on the validation split ({gain:+.2f} dB PSNR-Y)")
    for w in (c[k] for k in c if k.startswith("whole_beats_")):
        lines.append(f"whole beats {w['control']} by more than twice the seed spread: {'yes' if w['ok'] else 'NO'} "
                     f"({w['gap_db']:+.3f} dB vs {w['twice_spread_db']:.3f} dB"
                     + (", one seed: no spread to compare with)" if w["seeds"] < 2 else ")"))
    if c and not all(v["ok"] for v in c.values()):
        lines.append("so this budget cannot tell the sets apart: raise --steps, lower --ratio, or use --preset cpu")
    return lines


def _steps_cell(st: dict | None) -> str:
    """A row's steps to the target: mean ± std over its seeds, or how many seeds reach it."""
    if st is None:
        return ""
    if st["reached"] < st["of"]:
        return f"{st['reached']}/{st['of']} seeds reach it"
    return f"{st['steps'][0]:.0f} ± {st['steps'][1]:.0f}" if st["of"] > 1 else f"{st['steps'][0]:.0f}"


def table_cells(summary: dict) -> tuple[list[str], list[list[str]]]:
    """The table's header and rows as text: mean ± std over seeds per row; columns: pairs,
    seconds, every scored set's four metrics, the steps to the target."""
    splits = list(dict.fromkeys(s for e in summary["rows"] for s in e["scores"]))
    head = ["row", "seeds", "pairs", "make s", "train s"] + [f"{s} {LABELS[m][0]}" for s in splits for m in METRICS]
    if summary.get("target_psnr") is not None:
        head.append(f"steps to {summary['target_psnr']:.2f} dB")
    body = []
    for e in summary["rows"]:
        cells = [e["row"], str(len(e["seeds"]) or "–"), "" if e["pairs"] is None else str(e["pairs"]),
                 f"{e['make_s']:.0f}", f"{e['train_s']:.0f}"]
        for s in splits:
            for m in METRICS:
                if s in e["scores"]:
                    mean, std = e["scores"][s][m]
                    d = LABELS[m][1]
                    cells.append(f"{mean:.{d}f} ± {std:.{d}f}" if len(e["seeds"]) > 1 else f"{mean:.{d}f}")
                else:
                    cells.append("")
        if summary.get("target_psnr") is not None:
            cells.append(_steps_cell(e.get("steps_to_target")))
        body.append(cells)
    return head, body


def table_markdown(summary: dict) -> str:
    head, body = table_cells(summary)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body]) + "\n"


def curves_figure(summary: dict, title: str):
    """Validation PSNR-Y against steps: the seeds' mean per set, a band of ± one std, bicubic and
    the teacher as horizontal lines, the target as a dotted one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for e in summary["rows"]:
        if "curve" in e:
            steps = e["curve"]["step"]
            mean = [m for m, _ in e["curve"]["psnr_y"]]
            std = [s for _, s in e["curve"]["psnr_y"]]
            (line,) = ax.plot(steps, mean, label=f"{e['row']} ({len(e['seeds'])} seeds)", lw=1.5)
            ax.fill_between(steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=line.get_color(), alpha=0.2)
        elif e["row"] in REFERENCES and "val" in e["scores"]:
            ax.axhline(e["scores"]["val"]["psnr_y"][0], ls="--", lw=1, color="black" if e["row"] == "teacher" else "grey",
                       label=e["row"])
    if summary.get("target_psnr") is not None:
        ax.axhline(summary["target_psnr"], ls=":", lw=1, color="red", label="target")
    ax.set_xlabel("student training step")
    ax.set_ylabel("validation PSNR-Y (dB)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_outputs(cfg: CompareConfig, out: str, rows_dir: str, tests: list[str]) -> dict:
    """Summarise the finished rows in ``rows_dir`` of ``cfg``'s sets and seeds (every ``idc[...]``
    variant among them) and write compare.json,
    table.md, curves.png and report.html into ``out``; returns their paths, the table and the summary."""
    import io

    rows = []
    for f in sorted(os.listdir(rows_dir)) if os.path.isdir(rows_dir) else []:
        if f.endswith(".json"):
            with open(os.path.join(rows_dir, f)) as fh:
                rows.append(json.load(fh))
    # the asked sets' rows, every IDC variant found in the folder included (tuning: side by side)
    rows = [r for r in rows if (r["kind"] in cfg.sets or r["kind"] in REFERENCES)
            and (r["seed"] is None or r["seed"] in cfg.seeds)]
    summary = summarise(rows, cfg.target_psnr)
    table = table_markdown(summary)
    task = f"×{cfg.scale}" if cfg.task == "sr" else cfg.task
    title = (f"{task}, ratio {cfg.ratio}, {cfg.lr_patch}-px LR patches (stride {cfg.lr_stride}); "
             f"{cfg.model} students, {cfg.steps} steps × batch {cfg.batch_size}")
    fig = curves_figure(summary, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    curves_path = atomic_write_bytes(os.path.join(out, "curves.png"), buf.getvalue())
    html_curves = figure_html(fig)
    atomic_write_bytes(os.path.join(out, "table.md"),
                       (title + "\n\n" + table + "\n" + "\n".join(verdict_lines(summary)) + "\n").encode())
    json_path = atomic_write_json(os.path.join(out, "compare.json"), {
        "settings": cfg.to_dict(), "versions": versions(), "tests": tests, "summary": summary, "rows": rows})
    steps_rows = [{"row": e["row"], "seeds reaching it": f"{e['steps_to_target']['reached']}/{e['steps_to_target']['of']}",
                   "steps (mean ± std of those)": "" if e["steps_to_target"]["steps"] is None else
                   "{:.0f} ± {:.0f}".format(*e["steps_to_target"]["steps"])}
                  for e in summary["rows"] if "steps_to_target" in e]
    head, body = table_cells(summary)
    report = write_report(os.path.join(out, "report.html"), "irkernels compare", [
        ("What was compared", f"<p>{title}. Validation: the last {cfg.val_images} images of the training folder "
                              f"(never trained on); test sets: {', '.join(tests) or 'none given'}.</p>"),
        ("Scores (mean ± std over seeds)", table_html([dict(zip(head, cells)) for cells in body], head) +
         "".join(f"<p>{line}</p>" for line in verdict_lines(summary))),
        ("Learning curves", html_curves),
        (f"Steps to reach {summary['target_psnr']:.2f} dB PSNR-Y on val" if summary.get("target_psnr") else
         "Steps to target", table_html(steps_rows) if steps_rows else "<p>no curve yet</p>"),
        ("Every row (device and seconds)", table_html(_row_details(rows))),
    ])
    return {"compare_json": json_path, "report": report, "curves": curves_path, "table": table, "summary": summary}


def _row_details(rows: list[dict]) -> list[dict]:
    name, floor = next(((r["row"], r["val"]["psnr_y"]) for r in rows if r["row"] in ("bicubic", "input")),
                       ("bicubic", None))
    out = []
    for r in sorted(rows, key=lambda r: (_order(r["row"]), r["seed"] if r["seed"] is not None else -1)):
        gain = None if floor is None else r["val"]["psnr_y"] - floor
        out.append({"row": r["row"], "seed": r["seed"], "pairs": r.get("pairs"), "device": r["device"],
                    "make s": r["make_s"], "train s": r["train_s"], "score s": r.get("score_s"),
                    "val PSNR-Y": r["val"]["psnr_y"], f"vs {name} (dB)": gain,
                    "note": f"BELOW {name}" if gain is not None and gain < 0 else ""})
    return out
