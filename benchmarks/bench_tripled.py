"""TripleD quality (the paper's sr4 / denoise25 comparison at our scale): a thin caller of
``python -m irkernels.pipeline compare`` that runs, for each ``--tasks`` entry, the sets ``whole
random-images tripled-selection tripled tripled-no-latent tripled-no-cnn`` (TripleD at p =
``--ratio`` against as many random whole images, its selection alone, and its two ablations) into ``<--out>-<task>`` and files the table under
``benchmarks/results/tripled_quality_<task>*`` (``_cpu`` without CUDA, labelled CPU-scale).

Every other argument is ``compare``'s (``--preset``, ``--data``, ``--test``, ``--seeds``,
``--tripled KEY=VALUE``, …; see ``python -m irkernels.pipeline compare --help``); ``sr`` uses the
preset's ``--scale``. On a GPU without ``--preset`` the paper preset runs.

  # CPU scale (2 cores), the validation split and the test sets at once (TripleD is not tuned)
  python benchmarks/bench_tripled.py --data ../shared/data/train/CBSD432 --out runs/tripled-quality \\
      --test ../shared/data/test/Set5 ../shared/data/test/Set14
  # the paper's scale on a GPU (×4, p = 10 %, EDSR-baseline)
  python benchmarks/bench_tripled.py --preset paper --data DIV2K_HR/ --test Set5/ Set14/ --out runs/tripled-quality
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import compare_argv, compare_results  # noqa: E402

SETS = ["whole", "random-images", "tripled-selection", "tripled", "tripled-no-latent", "tripled-no-cnn"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    p.add_argument("--tasks", nargs="+", default=["sr", "denoise25"], help="compare --task values (default: sr denoise25)")
    p.add_argument("--out", default="runs/tripled-quality", help="folder stem: one comparison per task, <out>-<task>")
    args, rest = p.parse_known_args(argv)
    rest = compare_argv(rest, __doc__, {"--sets": SETS})
    if rest is None:
        return
    for task in args.tasks:
        print("wrote", *compare_results([*rest, "--task", task, "--out", f"{args.out}-{task}"],
                                        f"tripled_quality_{task}",
                                        f"TripleD ({task}) against as many random whole images, with its ablations",
                                        "benchmarks/bench_tripled.py"))


if __name__ == "__main__":
    main()
