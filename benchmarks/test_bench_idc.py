"""pytest-benchmark: IDC iterations (all three losses) on a batch of instances.

``pytest benchmarks/test_bench_idc.py --benchmark-enable``; CUDA: 4 DIV2K-sized instances with
EDSR-baseline features (the paper's setting, 10 iterations per round); CPU: 2 tiny instances.
"""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_idc import config, div2k_like  # noqa: E402
from irkernels.idc.condense import Condenser  # noqa: E402
from irkernels.patches import make_instances  # noqa: E402
from irkernels.idc.pipeline import num_groups  # noqa: E402
from irkernels.models import build_model  # noqa: E402

CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_bench_idc_iterations(benchmark, backend):
    small = not CUDA
    cfg = config(small, backend=backend, iters=10 if CUDA else 3)
    inst = make_instances(div2k_like(4 if CUDA else 2, small), cfg)
    net = build_model("edsr-tiny" if small else "edsr-baseline", 4)
    cond = Condenser(net, cfg, torch.device("cuda" if CUDA else "cpu"))
    k = num_groups(cfg, inst)
    results = benchmark.pedantic(cond.run, args=(inst, k), rounds=3, iterations=1)
    assert len(results) == len(inst) and torch.isfinite(results[0].history).all()
