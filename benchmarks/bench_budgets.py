"""The data-efficiency curve (validation PSNR-Y against the share of the training split kept, one
line per set): a thin caller of ``python -m irkernels.pipeline compare --budgets ...`` that files
the sweep under ``benchmarks/results/<--name>*`` (``_cpu`` without CUDA, labelled CPU-scale): the
JSON with every row (budget, seed, device) and the summary, the markdown tables, the PNG.

Every other argument is ``compare``'s; without ``--budgets`` the CPU-scale ones below, without
``--sets`` every set the curve is about. Resumable as ``compare`` is: run it again to go on.

  # CPU scale (2 cores, CBSD432, the cpu preset): tune and read on the validation split
  python benchmarks/bench_budgets.py --data ../shared/data/train/CBSD432 --out runs/budgets-cpu
  # then the test sets once, with the settings chosen
  python benchmarks/bench_budgets.py --data ../shared/data/train/CBSD432 --out runs/budgets-cpu \\
      --test ../shared/data/test/Set5 ../shared/data/test/Set14
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import compare_argv, compare_results  # noqa: E402

# from a handful of patches (4 of CBSD432's 7 500 at the cpu preset) to 10 %, on a log axis:
# 4, 15, 50 (one patch per image), 150 (one whole image), 750 patches
BUDGETS = ["0.0005", "0.002", "0.0067", "0.02", "0.1"]
SETS = ["whole", "random", "random+teacher", "idc", "random-images", "tripled-selection", "tripled"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    p.add_argument("--name", default="budgets_quality", help="results stem (default: %(default)s)")
    args, rest = p.parse_known_args(argv)
    rest = compare_argv(rest, __doc__, {"--budgets": BUDGETS, "--sets": SETS})
    if rest is None:
        return
    print("wrote", *compare_results(rest, args.name, "The data-efficiency curve: every set at each budget",
                                    "benchmarks/bench_budgets.py"))


if __name__ == "__main__":
    main()
