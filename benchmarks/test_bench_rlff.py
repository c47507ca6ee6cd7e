"""pytest-benchmark for RLFF: ``python -m pytest benchmarks/test_bench_rlff.py --benchmark-enable``.

CUDA: the issue's first shape (N=151, c=64, 64×64, k=3, C_out=128, p=4), eager vs fused, forward
and forward+backward, reference statistics. CPU: a tiny shape, eager torch path only (the Triton
interpreter is not a performance path). ``--benchmark-disable`` (the default in pyproject) runs
each once as a smoke test.
"""
import pytest
import torch

from irkernels.ops.rlff import _rlff_samples, reference_stats, rlff_conv_reference, sample_rows, sampled_filters

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
N, C, H, W, K, C_OUT, P = (151, 64, 64, 64, 3, 128, 4) if CUDA else (4, 8, 16, 16, 3, 32, 4)
OUT_SHAPE = (N * -(-H // P) * -(-W // P), P * P, C_OUT)


def _sync():
    if CUDA:
        torch.cuda.synchronize()


@pytest.fixture(scope="module")
def problem():
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    f = torch.randn(N, C, H, W, device=DEVICE, generator=gen).requires_grad_(True)
    rows = sample_rows(C, K, C_OUT, seed=0, device=DEVICE)
    stats = reference_stats(torch.randn(N, C, H, W, device=DEVICE, generator=gen))
    grad_out = torch.randn(OUT_SHAPE, device=DEVICE, generator=gen)
    return f, rows, stats, grad_out


def _impl(name, rows, stats):
    if name == "eager":
        weight = sampled_filters(rows, C, K, torch.float32)
        return lambda x: rlff_conv_reference(x, weight, P, stats)
    return lambda x: _rlff_samples(x, rows, *stats, K, P, "fast", "triton")[0]


IMPLS = ["eager", pytest.param("fused", marks=pytest.mark.skipif(not CUDA, reason="fused kernels need CUDA"))]


@pytest.mark.parametrize("impl", IMPLS)
def test_rlff_forward(benchmark, problem, impl):
    f, rows, stats, _ = problem
    op = _impl(impl, rows, stats)

    def run():
        with torch.no_grad():
            out = op(f)
        _sync()
        return out

    out = benchmark(run)
    assert out.shape == OUT_SHAPE


@pytest.mark.parametrize("impl", IMPLS)
def test_rlff_forward_backward(benchmark, problem, impl):
    f, rows, stats, grad_out = problem
    op = _impl(impl, rows, stats)

    def run():
        (grad,) = torch.autograd.grad(op(f), f, grad_out)
        _sync()
        return grad

    grad = benchmark(run)
    assert grad.shape == f.shape and bool(torch.isfinite(grad).all())
