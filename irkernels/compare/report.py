"""What a comparison writes from its finished rows: ``compare.json`` (every row and the summary),
``table.md`` (mean ± std over seeds, RGB and Y PSNR/SSIM, bicubic and the teacher as rows),
``curves.png`` (validation PSNR-Y against steps, one line per set with the seeds' band),
the steps each set needs to reach a target PSNR, and ``report.html`` with all of it.

The checks that say whether a comparison can tell sets apart (``summary["checks"]``): every
student beats bicubic on the validation split by ``MIN_GAIN_DB`` PSNR-Y, and ``whole`` beats
``random`` by more than twice the larger of their seed spreads (the data matters at that budget).
"""
from __future__ import annotations

import html
import json
import os
import statistics
from collections.abc import Sequence

from ..evaluate import METRICS
from ..outputs import atomic_write_bytes, atomic_write_json, figure_html, table_html, versions, write_report
from .config import RANDOM_CONTROLS, REFERENCES, CompareConfig, compare_sets, set_names

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


def _order(name: str, sets: Sequence[str] | None = None) -> tuple[int, str]:
    """References first, then the sets in ``sets``' order (the user's ``--sets``; default: every
    set's), variants after their set."""
    every = set_names()
    sets = every if sets is None else sets
    kinds = (*REFERENCES, *sets, *(s for s in every if s not in sets))
    base = name.split("[")[0]
    return (kinds.index(base) if base in kinds else len(kinds), name)


def summarise(rows: list[dict], target_psnr: float | None, sets: Sequence[str] | None = None,
              tests: Sequence[str] = ()) -> dict:
    """Per row name, in ``sets``' order after the references: seeds, pairs, seconds, mean ± std of
    every metric on the validation split and every scored test set (``tests``' order first), mean
    curve; the steps-to-target of each; the validity checks.

    The default target is the best point of ``random``'s mean validation curve (else
    ``random-images``'): what random patches reach at their best, which a set over-fitting its
    few pairs passes before it declines (its final mean, the earlier target, was crossed by every row
    at the first evaluation when random over-fits)."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["row"], []).append(r)
    table = []
    for name in sorted(groups, key=lambda n: _order(n, sets)):
        rs = sorted(groups[name], key=lambda r: (r["seed"] is None, r["seed"]))
        entry = {"row": name, "kind": rs[0]["kind"], "seeds": [r["seed"] for r in rs if r["seed"] is not None],
                 "pairs": rs[0].get("pairs"), "device": rs[0]["device"],
                 "make_s": statistics.fmean(r["make_s"] for r in rs), "train_s": statistics.fmean(r["train_s"] for r in rs),
                 "scores": {}}
        scored = {s for r in rs for s in r.get("test", {})}
        for split in ["val", *(t for t in tests if t in scored), *sorted(scored - set(tests))]:
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
    if target_psnr is None and control is not None:  # the best of random's mean curve, else random-images'
        c = by_name[control]
        target_psnr = max(m for m, _ in c["curve"]["psnr_y"]) if "curve" in c else c["scores"]["val"]["psnr_y"][0]
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
    # a short student whose mean curve peaked well above its end over-fits its few pairs: more steps
    # would not lift it (the 4-patch random rows: 28.9 dB at step 1000, 27.0 at 8000)
    overfit = sorted(name for name in below if "curve" in by_name[name]
                     and max(m for m, _ in by_name[name]["curve"]["psnr_y"])
                     > by_name[name]["scores"]["val"]["psnr_y"][0] + MIN_GAIN_DB)
    out["students_beat_bicubic"] = {"ok": not below, "min_gain_db": MIN_GAIN_DB, "short": below, "baseline": baseline,
                                    "overfit": overfit}
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
        lines.append("so this comparison cannot tell the sets apart: " + "; ".join(_causes(c)))
    return lines


def _causes(c: dict) -> list[str]:
    """What to change, from the checks that failed: one seed has no spread to compare with; students
    that do not beat the floor need a longer budget; whole within random's spread, a smaller set."""
    wholes = [w for k, w in c.items() if k.startswith("whole_beats_") and not w["ok"]]
    causes = []
    if any(w["seeds"] < 2 for w in wholes):
        causes.append("one seed has no spread to compare with: give >= 2 seeds (--seeds 0 1 2)")
    short = c.get("students_beat_bicubic", {"ok": True})
    if not short["ok"]:
        overfit = short.get("overfit", [])
        if overfit:
            causes.append(f"{', '.join(overfit)} peaked early and fell back (over-fitting a small set): fewer "
                          "--steps or a larger budget")
        if set(short["short"]) - set(overfit):
            causes.append(f"students within {MIN_GAIN_DB} dB of the floor: raise --steps")
    if any(w["seeds"] >= 2 for w in wholes):
        causes.append("whole within the seed spread of its random control: the data does not matter at this "
                      "budget; raise --steps or lower --ratio")
    return causes


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
            seeds = len(e["seeds"])
            (line,) = ax.plot(steps, mean, label=f"{e['row']} ({seeds} seed{'s' if seeds != 1 else ''})", lw=1.5)
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


def load_rows(cfg: CompareConfig, rows_dir: str) -> list[dict]:
    """The finished rows in ``rows_dir`` of ``cfg``'s sets and seeds (every ``idc[...]`` variant
    found in the folder included: tuning side by side), the references, and with ``cfg.budgets``
    only the rows of those budgets (rows made without one, as whole, stay)."""
    rows = []
    for f in sorted(os.listdir(rows_dir)) if os.path.isdir(rows_dir) else []:
        if f.endswith(".json"):
            with open(os.path.join(rows_dir, f)) as fh:
                rows.append(json.load(fh))
    return [r for r in rows if (r["kind"] in cfg.sets or r["kind"] in REFERENCES)
            and (r["seed"] is None or r["seed"] in cfg.seeds)
            and ("budget" not in r or r["budget"]["share"] in cfg.budgets)]


def _title(cfg: CompareConfig, budget: str) -> str:
    task = f"×{cfg.scale}" if cfg.task == "sr" else cfg.task
    # the teacher is named where a set learns from it: two sweeps differing only in it (a stronger
    # teacher for the same students) are otherwise told apart by their file names alone
    teacher = f", {cfg.teacher_model} teacher" if cfg.needs_teacher else ""
    return (f"{task}, {budget}, {cfg.lr_patch}-px LR patches (stride {cfg.lr_stride}); "
            f"{cfg.model} students{teacher}, {cfg.steps} steps × batch {cfg.batch_size}")


def _save_png(fig, path: str) -> tuple[str, str]:
    """Write ``fig`` to ``path`` atomically; returns the path and the figure as inline HTML (closed)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(path, buf.getvalue()), figure_html(fig)


def write_outputs(cfg: CompareConfig, out: str, rows_dir: str, tests: list[str]) -> dict:
    """Summarise the finished rows in ``rows_dir`` (:func:`load_rows`) and write compare.json,
    table.md, curves.png and report.html into ``out``; returns their paths, the table, the summary
    and its verdict lines."""
    rows = load_rows(cfg, rows_dir)
    summary = summarise(rows, cfg.target_psnr, cfg.sets, tests)
    table = table_markdown(summary)
    title = _title(cfg, f"ratio {cfg.ratio}")
    curves_path, html_curves = _save_png(curves_figure(summary, title), os.path.join(out, "curves.png"))
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
        ("Every row (device and seconds)", _ROW_DETAILS_NOTE + table_html(_row_details(rows))),
    ])
    return {"compare_json": json_path, "report": report, "curves": curves_path, "table": table, "summary": summary,
            "verdict": verdict_lines(summary)}


_ROW_DETAILS_NOTE = ("<p>One line per row and seed. <i>make s</i>: seconds to make its training set (selection, "
                     "condensation, distillation); <i>train s</i>: seconds training its student with its validation "
                     "passes, every segment of an interrupted row added up (the teacher: its training, 0 when it "
                     "was found in the cache); <i>vs floor</i>: its validation PSNR-Y minus the floor row's, "
                     "BELOW when negative.</p>")


def _row_details(rows: list[dict]) -> list[dict]:
    name, floor = next(((r["row"], r["val"]["psnr_y"]) for r in rows if r["row"] in ("bicubic", "input")),
                       ("bicubic", None))
    out, budgets = [], any("budget" in r for r in rows)
    for r in sorted(rows, key=lambda r: (_order(r["row"]), r.get("budget", {}).get("pairs", 0),
                                         r["seed"] if r["seed"] is not None else -1)):
        gain = None if floor is None else r["val"]["psnr_y"] - floor
        out.append({"row": r["row"], "seed": r["seed"], **({"budget": r.get("budget", {}).get("pairs")} if budgets else {}),
                    "pairs": r.get("pairs"), "device": r["device"],
                    "make s": f"{r['make_s']:.0f}", "train s": f"{r['train_s']:.0f}",
                    "val PSNR-Y": f"{r['val']['psnr_y']:.2f}",
                    f"vs {name} (dB)": "" if gain is None else f"{gain:+.2f}" + (" BELOW" if gain < 0 else "")})
    return out


# ---------------------------------------------------------------------------------------------
# a data-efficiency sweep (CompareConfig.budgets)
# ---------------------------------------------------------------------------------------------
def own_steps() -> list[tuple[str, str, str]]:
    """What each set's own step is measured against at the same budget (``CompareSet.control``):
    (row, its control, the step), a control's own step before the steps measured against it."""
    sets = compare_sets()
    order = list(sets)
    steps = [(name, s.control[0], s.control[1]) for name, s in sets.items() if s.control]
    return sorted(steps, key=lambda step: order.index(step[1]) if step[1] in order else len(order))


# the cheapest controls a condensed set must beat: relabelled random patches, random whole images
CONTROLS = ("random+teacher", "random-images")


def gap(by_name: dict[str, dict], row: str, control: str, split: str = "val") -> dict | None:
    """``row`` − ``control`` in mean PSNR-Y on ``split`` (the validation split, or a scored test
    set), against twice the larger of their seed spreads: ``pays`` when the gap exceeds it (≥ 2
    seeds each), ``loses`` when it is below minus it."""
    a, b = (by_name.get(n, {}).get("scores", {}).get(split) for n in (row, control))
    if a is None or b is None:
        return None
    (ma, sa), (mb, sb) = a["psnr_y"], b["psnr_y"]
    seeds = min(len(by_name[row]["seeds"]), len(by_name[control]["seeds"]))
    twice = 2 * max(sa, sb)
    return {"row": row, "control": control, "split": split, "gap_db": ma - mb, "twice_spread_db": twice,
            "seeds": seeds, "pays": seeds >= 2 and ma - mb > twice, "loses": seeds >= 2 and ma - mb < -twice}


def _splits(summary: dict) -> list[str]:
    """The splits some row of ``summary`` is scored on: the validation split first, then the test
    sets in the order they were scored."""
    return list(dict.fromkeys(s for e in summary["rows"] for s in e["scores"]))


def budget_summary(rows: list[dict], budgets: Sequence, target_psnr: float | None, refused: Sequence[str],
                   sets: Sequence[str] | None = None, tests: Sequence[str] = ()) -> dict:
    """Per budget: :func:`summarise` of its rows with the rows made once (whole, the floor, the
    teacher), each method's own step against its control (:func:`own_steps`), every set against the
    cheapest controls (``CONTROLS``), on the validation split and on every scored test set; per set,
    its curve over the budgets (the actual share of the training split's patches it trained on, mean
    ± std validation PSNR-Y)."""
    once = [r for r in rows if "budget" not in r]
    per, lines = [], {}
    for b in budgets:
        summary = summarise(once + [r for r in rows if r.get("budget", {}).get("pairs") == b.pairs], target_psnr,
                            sets, tests)
        by_name = {e["row"]: e for e in summary["rows"]}
        splits = _splits(summary)
        steps = [g | {"step": what} for split in splits for row, control, what in own_steps()
                 if (g := gap(by_name, row, control, split))]
        versus = [g for split in splits for name, e in by_name.items()
                  if e["kind"] not in (*REFERENCES, "whole", *CONTROLS)
                  for control in CONTROLS if (g := gap(by_name, name, control, split))]
        per.append({"share": b.share, "pairs": b.pairs, "tag": b.tag, "summary": summary, "own_steps": steps,
                    "versus_controls": versus})
        for e in summary["rows"]:
            if e["kind"] in REFERENCES or e["kind"] == "whole" or "val" not in e["scores"]:
                continue
            shares = [r["share"] for r in rows if r["row"] == e["row"] and r.get("budget", {}).get("pairs") == b.pairs]
            lines.setdefault(e["row"], []).append({"budget": b.pairs, "share": statistics.fmean(shares),
                                                   "pairs": e["pairs"], "seeds": len(e["seeds"]),
                                                   "psnr_y": e["scores"]["val"]["psnr_y"]})
    made_once = {r["row"] for r in once}  # the same in every budget's summary: read from the first
    return {"total": budgets[0].total if budgets else None, "budgets": per, "curves": lines, "refused": list(refused),
            "once": {e["row"]: {"seeds": len(e["seeds"]), "psnr_y": e["scores"]["val"]["psnr_y"]}
                     for e in (per[0]["summary"]["rows"] if per else []) if e["row"] in made_once
                     and "val" in e["scores"]}}


def budget_figure(bs: dict, title: str):
    """The data-efficiency curve: validation PSNR-Y against the share of the training split's LR
    pixels a set trained on (log axis), one line per set with a ± std band over seeds; whole, the
    floor and the teacher as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in bs["curves"].items():
        x = [100 * p["share"] for p in points]
        mean = [p["psnr_y"][0] for p in points]
        std = [p["psnr_y"][1] for p in points]
        seeds = sorted({p["seeds"] for p in points})
        (line,) = ax.plot(x, mean, marker="o", ms=3, lw=1.5,
                          label=f"{name} ({'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''})")
        ax.fill_between(x, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                        color=line.get_color(), alpha=0.2)
    styles = {"whole": ("-", "tab:green"), "teacher": ("--", "black")}
    for name, e in bs["once"].items():
        ls, color = styles.get(name, ("--", "grey"))
        ax.axhline(e["psnr_y"][0], ls=ls, lw=1, color=color, label=f"{name} (100 %)" if name == "whole" else name)
    ax.set_xscale("log")
    ax.set_xlabel("LR pixels trained on, % of the training split (log)")
    ax.set_ylabel("validation PSNR-Y (dB)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def _pct(share: float) -> str:
    return f"{100 * share:.3g} %"


def _mean_pm_std(mean_std: Sequence[float]) -> str:
    return f"{mean_std[0]:.2f} ± {mean_std[1]:.2f}"


def budget_markdown(bs: dict) -> str:
    """The curve as tables: validation PSNR-Y per set and budget; each method's step against its
    control; every set against the cheapest controls; what no set could make."""
    heads = [f"{b['pairs']} ({_pct(b['pairs'] / bs['total'])})" for b in bs["budgets"]]
    seeds = max((p["seeds"] for points in bs["curves"].values() for p in points), default=0)
    lines = ["Validation PSNR-Y (dB), mean ± std over seeds, per budget (patches kept, share of the training "
             f"split's LR pixels); a set that trained on another count says it in brackets, a cell of fewer than "
             f"{seeds} seeds (a sweep still running) its seeds:", "",
             "| set | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for name, points in bs["curves"].items():
        at = {p["budget"]: p for p in points}
        cells = []
        for b in bs["budgets"]:
            p = at.get(b["pairs"])
            cells.append("" if p is None else _mean_pm_std(p["psnr_y"])
                         + ("" if p["pairs"] == b["pairs"] else f" ({p['pairs']}: {_pct(p['share'])})")
                         + ("" if p["seeds"] == seeds else f" [{p['seeds']} seed{'s' * (p['seeds'] > 1)}]"))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, e in bs["once"].items():
        lines.append(f"| {name} (once) | " + " | ".join([_mean_pm_std(e["psnr_y"])] * len(heads))
                     + " |")
    by_budget = [{e["row"]: e for e in b["summary"]["rows"]} for b in bs["budgets"]]
    for split in dict.fromkeys(s for b in bs["budgets"] for s in _splits(b["summary"]) if s != "val"):
        lines += ["", f"{split} PSNR-Y (dB), mean ± std over seeds, the same networks (scored once, never used "
                      "for a choice):", "", "| set | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
        for name in [*bs["curves"], *(f"{n} (once)" for n in bs["once"])]:
            scores = [by_name.get(name.removesuffix(" (once)"), {}).get("scores", {}).get(split) for by_name in by_budget]
            lines.append(f"| {name} | " + " | ".join("" if sc is None else _mean_pm_std(sc["psnr_y"]) for sc in scores)
                         + " |")
    lines += ["", "Does each method's own step pay? Gap to its control in dB PSNR-Y against twice the larger seed "
              "spread (pays: above it; loses: below minus it; else within the spread):", "",
              *_gap_table(bs, "own_steps", "step"),
              "", "Every set against the cheapest controls (relabelled random patches, random whole images):", "",
              *_gap_table(bs, "versus_controls")]
    lines += ["", "Checks per budget (can it tell the sets apart?):", ""]
    for b in bs["budgets"]:
        said = [line for line in verdict_lines(b["summary"]) if not line.startswith("warning:")]  # rows below: above
        made = any(p["budget"] == b["pairs"] for points in bs["curves"].values() for p in points)
        lines += [f"- {b['pairs']} patches: " + ("; ".join(said) if made else "no rows yet")]
    lines += [f"- not made: {line}" for line in bs["refused"]]
    return "\n".join(lines) + "\n"


def _gap_table(bs: dict, key: str, label: str | None = None) -> list[str]:
    """The markdown rows of every budget's :func:`gap` records under ``key``, with the column
    ``label`` of each record first when given, and the split each gap is on once a test set is
    scored."""
    with_split = any(g["split"] != "val" for b in bs["budgets"] for g in b[key])
    head = ["budget", *([label] if label else []), "row − control", *(["on"] * with_split), "gap", "2 × spread",
            "verdict"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for b in bs["budgets"]:
        for g in b[key]:
            cells = [str(b["pairs"]), *([g[label]] if label else []), f"{g['row']} − {g['control']}",
                     *([g["split"]] * with_split), f"{g['gap_db']:+.3f}", f"{g['twice_spread_db']:.3f}",
                     _verdict(g)]
            out.append("| " + " | ".join(cells) + " |")
    return out


def _verdict(g: dict) -> str:
    if g["seeds"] < 2:
        return "one seed: no spread"
    return "**pays**" if g["pays"] else "loses" if g["loses"] else "within the spread"


def write_budget_outputs(cfg: CompareConfig, out: str, rows_dir: str, tests: list[str], budgets: Sequence,
                         refused: Sequence[str]) -> dict:
    """The outputs of a sweep over ``budgets``: per budget ``tables/<tag>.md`` and its learning
    curves ``tables/<tag>-curves.png``; ``budgets.json`` (settings, versions, every row, the
    summary), ``budgets.md``, ``budgets.png`` (the data-efficiency curve) and ``report.html``."""
    rows = load_rows(cfg, rows_dir)
    bs = budget_summary(rows, budgets, cfg.target_psnr, refused, cfg.sets, tests)
    title = _title(cfg, f"{len(budgets)} budgets")
    sections = []
    for b in bs["budgets"]:
        head = _title(cfg, f"budget {b['share']:g} = {b['pairs']} of {bs['total']} patches")
        table = table_markdown(b["summary"])
        verdict = verdict_lines(b["summary"])
        atomic_write_bytes(os.path.join(out, "tables", f"{b['tag']}.md"),
                           (head + "\n\n" + table + "\n" + "\n".join(verdict) + "\n").encode())
        _, html_curves = _save_png(curves_figure(b["summary"], head), os.path.join(out, "tables", f"{b['tag']}-curves.png"))
        cols, body = table_cells(b["summary"])
        sections.append((f"Budget {b['pairs']} patches ({_pct(b['pairs'] / bs['total'])})",
                         table_html([dict(zip(cols, cells)) for cells in body], cols)
                         + "".join(f"<p>{line}</p>" for line in verdict) + html_curves))
    text = budget_markdown(bs)
    atomic_write_bytes(os.path.join(out, "budgets.md"), (title + "\n\n" + text).encode())
    curve_path, html_curve = _save_png(budget_figure(bs, title), os.path.join(out, "budgets.png"))
    json_path = atomic_write_json(os.path.join(out, "budgets.json"), {
        "settings": cfg.to_dict(), "versions": versions(), "tests": tests, "summary": bs, "rows": rows})
    report = write_report(os.path.join(out, "report.html"), "irkernels compare: budgets", [
        ("What was compared", f"<p>{title}. Validation: the last {cfg.val_images} images of the training folder "
                              f"(never trained on); test sets: {', '.join(tests) or 'none given'}.</p>"),
        ("The data-efficiency curve", html_curve),
        ("Per set and budget", f"<pre>{html.escape(text)}</pre>"),
        *sections,
        ("Every row (device and seconds)", _ROW_DETAILS_NOTE + table_html(_row_details(rows))),
    ])
    # the checks and the sets not made are lines of the text already
    return {"compare_json": json_path, "report": report, "curves": curve_path, "table": text, "summary": bs,
            "verdict": []}
