"""IDC quality (the paper's Table 1 and Table 2 at our scale): a thin caller of
``python -m irkernels.pipeline compare`` that files its table under ``benchmarks/results/``.

Every argument is ``compare``'s (``--preset``, ``--data``, ``--test``, ``--sets``, ``--idc-tune``,
…; see ``python -m irkernels.pipeline compare --help``) plus ``--name``, the stem of the results
files. Without ``--test`` the validation split is the only scored set (tuning); with it, the test
folders are scored once per row with the settings given. Figures measured without CUDA are filed
as ``<name>_cpu.*`` and labelled CPU-scale. On a GPU without ``--preset`` the paper preset runs.

  # CPU scale (2 cores): tune on the validation split, then score the test sets once
  python benchmarks/bench_idc_quality.py --data ../shared/data/train/CBSD432 --out runs/idc-quality-cpu \\
      --sets whole random herding kcenter random+teacher idc --name idc_quality_val
  python benchmarks/bench_idc_quality.py --data ../shared/data/train/CBSD432 --out runs/idc-quality-cpu \\
      --sets whole random herding kcenter random+teacher idc --test ../shared/data/test/Set5 ../shared/data/test/Set14
  # the paper's scale on a GPU
  python benchmarks/bench_idc_quality.py --preset paper --data DIV2K_HR/ --test Set5/ Set14/ --out runs/idc-quality
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import compare_argv, compare_results  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    p.add_argument("--name", default=None, help="results stem (default: idc_quality, idc_quality_val without --test)")
    args, rest = p.parse_known_args(argv)
    rest = compare_argv(rest, __doc__)
    if rest is None:
        return
    name = args.name or ("idc_quality" if "--test" in rest else "idc_quality_val")
    print("wrote", *compare_results(rest, name, "IDC against the coreset baselines and its random+teacher control",
                                    "benchmarks/bench_idc_quality.py"))


if __name__ == "__main__":
    main()
