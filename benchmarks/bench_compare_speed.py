"""Students trained together against one by one, side by side in one run: what
``compare --students-together`` buys on this device.

Each repeat trains the same K students (``--model``, ``--steps`` steps of ``--batch-size`` LR
patches of ``--lr-patch`` px at ×2, fresh folders, no validation passes) once one by one
(:func:`irkernels.train.train`) and once together (:func:`irkernels.train.train_together`), the
two alternating so that a machine's load falls on both; the table has the median of the repeats,
students per second and the ratio. Beside them, the floor: the FLOPs of one student step (forward,
backward, counted by ``torch.utils.flop_counter``), the FLOP rate each mode reached and the rate of
a large fp32 matmul measured in the same run (what this device's dense math reaches): the most that
stacking students can gain is about that rate over one-by-one's.

``--compare-preset NAME`` also times the student phase of the whole command, ``compare --preset
NAME`` (its default sets and seeds), together (``--students-together --students``) and one by one:
the first run makes the teacher and the sets, then the students alone are trained again in the same
folder, the modes alternating (together, one by one, together); the phase is the sum of the student
rows' ``train_s``. ``benchmarks/results/compare_speed{_cpu}.{json,md}``.

  python benchmarks/bench_compare_speed.py                       # CPU: 4 edsr-tiny students, 100 steps
  python benchmarks/bench_compare_speed.py --compare-preset tiny # ... and compare --preset tiny's students
  python benchmarks/bench_compare_speed.py --students 8 --steps 300   # a GPU (the GPU session's stage)
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import markdown, measure, write_results  # noqa: E402
from irkernels.configs import TrainConfig  # noqa: E402
from irkernels.data import PairSet  # noqa: E402
from irkernels.models import build_model  # noqa: E402
from irkernels.train import train, train_together  # noqa: E402


def students(k: int, model: str, patches: int, lr_patch: int) -> tuple[list, list[PairSet]]:
    """K networks from seeds 0..K-1 and K random uint8 pair sets (each its own stream, as compare's rows)."""
    nets, datas = [], []
    for seed in range(k):
        torch.manual_seed(seed)
        nets.append(build_model(model, 2))
        gen = torch.Generator().manual_seed(seed)
        datas.append(PairSet(torch.randint(0, 256, (patches, 3, lr_patch, lr_patch), dtype=torch.uint8, generator=gen),
                             torch.randint(0, 256, (patches, 3, 2 * lr_patch, 2 * lr_patch), dtype=torch.uint8,
                                           generator=gen)))
    return nets, datas


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def step_flops(model: str, batch_size: int, lr_patch: int) -> int:
    """FLOPs of one student step at ×2: forward and backward of an L1 loss (the optimiser's few
    element-wise FLOPs per parameter are not counted)."""
    net = build_model(model, 2)
    with FlopCounterMode(display=False) as counter:
        out = net(torch.rand(batch_size, 3, lr_patch, lr_patch))
        (out - torch.rand_like(out)).abs().mean().backward()
    return counter.get_total_flops()


MATMUL_N = 2048  # the dense-math rate the floor is read against: an n×n fp32 matmul


def matmul_rate(device: str, n: int = MATMUL_N) -> float:
    """FLOP/s of an n×n fp32 matmul on ``device`` (median of 10 runs after one dropped)."""
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
    return 2 * n**3 / (measure("matmul", lambda: a @ b, warmup=1, runs=10).median_ms / 1e3)


def compare_phase(preset: str, together: int, tmp: str) -> list[dict]:
    """The student phase of ``compare --preset <preset>``: together, one by one, together again, in
    one folder (the first run also makes the teacher and the sets, which are not timed)."""
    out = os.path.join(tmp, "compare")
    runs = []
    for mode, k in (("together", together), ("one by one", 1), ("together", together)):
        for path in glob.glob(os.path.join(out, "train")) + glob.glob(os.path.join(out, "rows", "*-seed*.json")):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)  # the students only: train again
        subprocess.run([sys.executable, "-m", "irkernels.pipeline", "compare", "--preset", preset, "--out", out,
                        "--students-together", str(k), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
        rows = [json.load(open(f)) for f in glob.glob(os.path.join(out, "rows", "*-seed*.json"))]
        runs.append({"mode": mode, "k": k, "students": len(rows), "phase s": sum(r["train_s"] for r in rows),
                     "load": os.getloadavg()[0]})
    return runs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=4)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr-patch", type=int, default=16)
    p.add_argument("--model", default="edsr-tiny")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compare-preset", default=None, help="also time compare --preset NAME's student phase")
    args = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    times: dict[str, list[float]] = {"one by one": [], "together": []}
    load = []
    for _ in range(args.repeats + 1):  # the first repeat warms up (allocator, kernels) and is dropped
        with tempfile.TemporaryDirectory() as tmp:
            def cfg(mode: str, k: int) -> TrainConfig:
                return TrainConfig(out_dir=os.path.join(tmp, f"{mode}{k}"), steps=args.steps, batch_size=args.batch_size,
                                   seed=k, ckpt_every=10**9, log_every=10**9, progress=False, device=device)

            nets, datas = students(args.students, args.model, 256, args.lr_patch)
            alone = timed(lambda: [train(n, d, cfg("alone", k)) for k, (n, d) in enumerate(zip(nets, datas))])
            nets, datas = students(args.students, args.model, 256, args.lr_patch)
            together = timed(lambda: train_together(nets, datas, [cfg("together", k) for k in range(args.students)]))
        times["one by one"].append(alone)
        times["together"].append(together)
        load.append(os.getloadavg()[0])
    rows = []
    for mode, ts in times.items():
        median = statistics.median(ts[1:])
        rows.append({"mode": mode, "students": args.students, "steps": args.steps, "median s": median,
                     "students/s": args.students / median, "runs s": [round(t, 2) for t in ts[1:]]})
    rows[1]["ratio vs one by one"] = rows[0]["median s"] / rows[1]["median s"]
    flops = step_flops(args.model, args.batch_size, args.lr_patch)
    rate = matmul_rate(device)
    for row in rows:
        row["GFLOP/s"] = args.students * args.steps * flops / row["median s"] / 1e9
        row["share of matmul rate"] = row["GFLOP/s"] * 1e9 / rate
    table = markdown(rows, ["mode", "students", "steps", "median s", "students/s", "ratio vs one by one", "GFLOP/s",
                            "share of matmul rate"])
    extra = {"step_flops": flops, "matmul_flop_per_s": rate}
    notes_phase = ""
    if args.compare_preset:
        with tempfile.TemporaryDirectory() as tmp:
            phase = compare_phase(args.compare_preset, args.students, tmp)
        extra["compare_phase"] = {"preset": args.compare_preset, "runs": phase}
        one = next(r["phase s"] for r in phase if r["k"] == 1)
        for r in phase:
            r["ratio vs one by one"] = one / r["phase s"]
        notes_phase = (f"\nThe student phase of `compare --preset {args.compare_preset}` (its default sets and seeds; "
                       f"the sum of the student rows' `train_s`, in run order; the first run also made the teacher "
                       f"and the sets):\n\n" + markdown(phase, ["mode", "k", "students", "phase s",
                                                              "ratio vs one by one", "load"]) + "\n")
    notes = (f"\nOne student step ({args.batch_size} patches, forward and backward): {flops / 1e9:.2f} GFLOP; a "
             f"{MATMUL_N}² fp32 matmul ran at {rate / 1e9:.0f} GFLOP/s in the same run: the most stacking could gain "
             f"is about that over one by one's rate.\n" + notes_phase +
             f"\n{args.students} × {args.model} students, {args.steps} steps of {args.batch_size} LR patches of "
             f"{args.lr_patch} px (×2) each, on {device}; medians of {args.repeats} repeats after one dropped, the two "
             f"modes alternating. Load average (1 min) after each repeat: {', '.join(f'{x:.1f}' for x in load)}.\n\n"
             f"Command: `python benchmarks/bench_compare_speed.py {' '.join(argv or sys.argv[1:])}`\n")
    print(table + notes)
    print("wrote", *write_results("compare_speed", rows, table, notes, extra=extra))


if __name__ == "__main__":
    main()
