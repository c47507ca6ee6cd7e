"""pytest-benchmark suite for ncfd_loss (forward + backward to y).

    pytest benchmarks/test_bench_ncfd.py --benchmark-enable [--benchmark-json out.json]

CUDA: N=262,144, M=26,214, D=128, T=4096 (the issue's middle size); CPU: a small size. Grouped:
G=32, and IDC's 16 × 33 = 528 groups (compare with ``test_ours``: the target is ≤ 1.3×).
"""
import pytest
import torch

from irkernels.ops.ncfd import cf_stats, ncfd_loss, ncfd_loss_reference

CUDA = torch.cuda.is_available()
N, M, T, D = (262_144, 26_214, 4096, 128) if CUDA else (4_096, 410, 256, 32)
G = 32
IDC_GROUPS = 16 * 33


@pytest.fixture(scope="module")
def data():
    dev = "cuda" if CUDA else "cpu"
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(N, D, device=dev, generator=gen) * 0.1
    y = (torch.randn(M, D, device=dev, generator=gen) * 0.1).requires_grad_()
    t = torch.randn(T, D, device=dev, generator=gen)
    xg = torch.randint(0, G, (N,), device=dev, generator=gen)
    yg = torch.randint(0, G, (M,), device=dev, generator=gen)
    return x, y, t, xg, yg


def run(benchmark, loss_fn, y):
    def step():
        y.grad = None
        loss_fn().backward()
        if CUDA:
            torch.cuda.synchronize()
    benchmark.pedantic(step, rounds=20, warmup_rounds=3)


def test_eager_ncfm(benchmark, data):
    x, y, t, _, _ = data
    run(benchmark, lambda: ncfd_loss_reference(x, y, t), y)


def test_ours(benchmark, data):
    x, y, t, _, _ = data
    run(benchmark, lambda: ncfd_loss(x, y, t), y)


def test_ours_cached_real_side(benchmark, data):
    x, y, t, _, _ = data
    sx = cf_stats(x, t)
    run(benchmark, lambda: ncfd_loss(sx, y, t), y)


def test_grouped_loop_eager(benchmark, data):
    x, y, t, xg, yg = data
    run(benchmark, lambda: ncfd_loss_reference(x, y, t, x_groups=xg, y_groups=yg, num_groups=G, reduction="sum"), y)


def test_grouped_ours(benchmark, data):
    x, y, t, xg, yg = data
    run(benchmark, lambda: ncfd_loss(x, y, t, x_groups=xg, y_groups=yg, num_groups=G, reduction="sum"), y)


def test_grouped_idc_528_ours(benchmark, data):
    x, y, t, _, _ = data
    gen = torch.Generator(device=x.device).manual_seed(1)
    xg = torch.randint(0, IDC_GROUPS, (N,), device=x.device, generator=gen)
    yg = torch.randint(0, IDC_GROUPS, (M,), device=x.device, generator=gen)
    run(benchmark, lambda: ncfd_loss(x, y, t, x_groups=xg, y_groups=yg, num_groups=IDC_GROUPS, reduction="sum"), y)
