"""Shared benchmark harness: timing, peak memory, hardware floors, result files.

Timing: CUDA events around each call after warm-up, median of many runs (``time.perf_counter`` on
CPU). Peak extra memory: ``max_memory_allocated`` during the call minus what was allocated before.
Every results file records the device and the library versions it was measured with.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from irkernels.outputs import atomic_write_bytes, atomic_write_json, versions

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# Dense peak throughputs of the SXM parts, used for the floors. Keys match get_device_name().
# Tensor-core (TF32, BF16, without sparsity) and FP32 rates and HBM bandwidth: NVIDIA's H100 and H200
# datasheets. SMs and boost clock: H100 SXM5 (the H200 has the same GPU). SFU: 16 results per clock
# per SM for sin/cos/exp2/rcp on compute capability 9.0 (CUDA C++ Programming Guide, arithmetic
# instruction throughput table).
PEAKS = {
    "H100": {"tf32_flops": 494.7e12, "bf16_flops": 989.4e12, "fp32_flops": 66.9e12, "bytes_per_s": 3.35e12,
             "sfu_ops_per_clk_per_sm": 16, "sms": 132, "boost_clock_hz": 1.98e9},
    "H200": {"tf32_flops": 494.7e12, "bf16_flops": 989.4e12, "fp32_flops": 66.9e12, "bytes_per_s": 4.8e12,
             "sfu_ops_per_clk_per_sm": 16, "sms": 132, "boost_clock_hz": 1.98e9},
}


def _with_sfu(peaks: dict, sms: int, clock_hz: float) -> dict[str, float]:
    """``peaks`` plus ``sfu_ops_per_s``, the special-function unit's limit (one op per sin or cos)."""
    return {**peaks, "sfu_ops_per_s": sms * peaks["sfu_ops_per_clk_per_sm"] * clock_hz}


def published_peaks(name: str) -> dict[str, float]:
    """The datasheet peaks of ``name`` (a key of ``PEAKS``) at its published SM count and boost
    clock: the floors of a device that is not here (``benchmarks/roofline.py``)."""
    peaks = PEAKS[name]
    return _with_sfu(peaks, peaks["sms"], peaks["boost_clock_hz"])


def device_peaks() -> dict[str, float] | None:
    """Peaks of the current CUDA device (``None`` on CPU or an unknown GPU), the SFU's at the
    device's own SM count and clock."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, peaks in PEAKS.items():
        if key in name:
            props = torch.cuda.get_device_properties(0)
            clock_hz = getattr(props, "clock_rate", peaks["boost_clock_hz"] / 1e3) * 1e3  # kHz
            return _with_sfu(peaks, props.multi_processor_count, clock_hz)
    return None


@dataclass
class Measurement:
    name: str
    median_ms: float
    min_ms: float
    runs: int
    peak_extra_mib: float | None = None
    extra: dict = field(default_factory=dict)


def measure(name: str, fn: Callable[[], object], *, warmup: int = 5, runs: int = 30,
            max_seconds: float = 20.0) -> Measurement:
    """Median wall time of ``fn()`` (CUDA events on GPU) and its peak extra memory."""
    cuda = torch.cuda.is_available()
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = None
    times = []
    deadline = time.perf_counter() + max_seconds
    for _ in range(runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() > deadline and len(times) >= 3:
            break
    return Measurement(name, statistics.median(times), min(times), len(times), peak)


def environment() -> dict[str, str]:
    """The package's ``versions()`` plus the machine and, on CUDA, the CUDA version."""
    env = versions()
    env["machine"] = platform.machine()
    if torch.cuda.is_available():
        env["cuda"] = str(torch.version.cuda)
    else:
        env["device"] = f"CPU ({os.cpu_count()} cores)"
    return env


def write_results(name: str, rows: list[dict], markdown_table: str, notes: str = "", *,
                  small: bool = False, extra: dict | None = None, model_of: str | None = None) -> tuple[str, str]:
    """Write ``benchmarks/results/{stem}.json`` (``extra`` merged in) and ``.md`` atomically;
    returns their paths.

    ``stem`` says what the figures are: ``name`` for a full run on CUDA, ``name_small`` for a
    ``--small`` run on CUDA, ``name_cpu`` for any run without CUDA (never GPU figures). ``model_of``
    (a device, e.g. "H100 SXM"): the figures are computed for that device, not measured on this
    machine; ``stem`` is ``name`` wherever it runs and the header says so.
    """
    if model_of:
        stem = name
    elif not torch.cuda.is_available():
        stem = f"{name}_cpu"
    else:
        stem = f"{name}_small" if small else name
    os.makedirs(RESULTS_DIR, exist_ok=True)
    env = environment()
    json_path = os.path.join(RESULTS_DIR, f"{stem}.json")
    md_path = os.path.join(RESULTS_DIR, f"{stem}.md")
    where = f"Model of an {model_of} (computed, nothing measured) on" if model_of else "Device:"
    header = f"# {stem}\n\n{where} {env['device']}; " + ", ".join(
        f"{k} {v}" for k, v in env.items() if k != "device"
    ) + "\n\n"
    atomic_write_json(json_path, {"environment": env, "rows": rows, **(extra or {})})
    atomic_write_bytes(md_path, (header + markdown_table + "\n" + notes).encode())
    return json_path, md_path


def y_scores(evaluation: dict) -> dict[str, float]:
    """``{"<set> PSNR-Y": …, "<set> SSIM-Y": …}`` from ``irkernels.evaluate.evaluate``'s result."""
    out = {}
    for name, r in evaluation["sets"].items():
        label = os.path.basename(name.rstrip("/"))
        out[f"{label} PSNR-Y"] = r["mean"]["psnr_y"]
        out[f"{label} SSIM-Y"] = r["mean"]["ssim_y"]
    return out


def markdown(rows: list[dict], columns: list[str]) -> str:
    """A markdown table of ``rows`` restricted to ``columns`` (floats to 3 significant digits)."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def compare_results(argv: list[str], name: str, title: str, script: str) -> tuple[str, str]:
    """Run ``compare`` with ``argv`` and write its summary to ``benchmarks/results/<name>*``
    (``script``: the caller, named in the notes with the command it ran)."""
    import shlex

    from irkernels.compare.report import verdict_lines
    from irkernels.pipeline.__main__ import build_parser
    from irkernels.pipeline.compare_cmd import config_from_args
    from irkernels.compare.pipeline import run

    parser, _ = build_parser(only="compare")
    args = parser.parse_args(["compare", *argv])
    cfg = config_from_args(args)
    result = run(cfg, args.out, data=args.data, test=args.test, overwrite=args.overwrite, report_only=args.report_only)
    print(result.text())
    # the command that makes the rows: a --report-only filing names it, not itself, and says so
    made_by = [a for a in argv if a != "--report-only"]
    command = (f"Command: `python {script} {shlex.join(made_by)}` (= `python -m irkernels.pipeline "
               f"compare {shlex.join(made_by)}`)"
               + (", reported with `--report-only` from the rows it had made" if args.report_only else "")
               + f"; preset {args.preset}, settings {cfg.settings()}.\n\n")
    if cfg.budgets:  # the sweep: every row (budget, seed, device), the summary, the curve beside them
        import json
        import shutil

        with open(result.compare_json) as fh:
            made = json.load(fh)
        notes = (f"\n{title}. CPU-scale figures when the device column says cpu: a reduced protocol "
                 f"(docs/compare.md) whose rows are compared with each other, not with the papers' numbers; "
                 f"the curve: `{name}{'_cpu' if not torch.cuda.is_available() else ''}.png`.\n\n" + command)
        paths = write_results(name, made["rows"], result.table, notes,
                              extra={"settings": made["settings"], "summary": made["summary"]})
        shutil.copyfile(result.curves, paths[1][:-3] + ".png")
        return paths
    rows = [{"row": e["row"], "seeds": e["seeds"], "pairs": e["pairs"], "device": e["device"],
             "make_s": e["make_s"], "train_s": e["train_s"], "scores": e["scores"],
             "steps_to_target": e.get("steps_to_target")} for e in result.summary["rows"]]
    notes = (f"\n{title}. CPU-scale figures when the device column says cpu: a reduced protocol (docs/compare.md) "
             f"whose rows are compared with each other, not with the paper's numbers.\n\n" + command
             + "\n".join(f"- {line}" for line in verdict_lines(result.summary))
             + (f"\n- target PSNR-Y of the steps column: {result.summary['target_psnr']:.2f} dB on val"
                if result.summary.get("target_psnr") else "") + "\n")
    return write_results(name, rows, result.table, notes)


def compare_argv(rest: list[str], doc: str, defaults: dict[str, list[str]] | None = None) -> list[str] | None:
    """A quality bench's ``compare`` arguments: ``None`` after printing ``doc`` for ``-h``; on a GPU
    without ``--preset``, the paper preset first (the GPU session's stage); ``defaults``: the bench's
    own values of flags not given (``{"--sets": [...]}``)."""
    if "-h" in rest or "--help" in rest:
        print(doc)
        return None
    for flag, values in (defaults or {}).items():
        if flag not in rest:
            rest = [*rest, flag, *values]
    return ["--preset", "paper", *rest] if "--preset" not in rest and torch.cuda.is_available() else rest
