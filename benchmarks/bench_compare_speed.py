"""Students trained together against one by one, side by side in one run: what
``compare --students-together`` buys on this device.

Each repeat trains the same K students (``--model``, ``--steps`` steps of ``--batch-size`` LR
patches of ``--lr-patch`` px at ×2, fresh folders, no validation passes) once one by one
(:func:`irkernels.train.train`) and once together (:func:`irkernels.train.train_together`), the
two alternating so that a machine's load falls on both; the table has the median of the repeats,
students per second and the ratio. ``benchmarks/results/compare_speed{_cpu}.{json,md}``.

  python benchmarks/bench_compare_speed.py                       # CPU: 4 edsr-tiny students, 100 steps
  python benchmarks/bench_compare_speed.py --students 8 --steps 300   # a GPU (the GPU session's stage)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import markdown, write_results  # noqa: E402
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--students", type=int, default=4)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr-patch", type=int, default=16)
    p.add_argument("--model", default="edsr-tiny")
    p.add_argument("--repeats", type=int, default=3)
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
    table = markdown(rows, ["mode", "students", "steps", "median s", "students/s", "ratio vs one by one"])
    notes = (f"\n{args.students} × {args.model} students, {args.steps} steps of {args.batch_size} LR patches of "
             f"{args.lr_patch} px (×2) each, on {device}; medians of {args.repeats} repeats after one dropped, the two "
             f"modes alternating. Load average (1 min) after each repeat: {', '.join(f'{x:.1f}' for x in load)}.\n\n"
             f"Command: `python benchmarks/bench_compare_speed.py {' '.join(argv or sys.argv[1:])}`\n")
    print(table + notes)
    print("wrote", *write_results("compare_speed", rows, table, notes))


if __name__ == "__main__":
    main()
