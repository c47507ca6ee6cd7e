"""pytest-benchmark entry points for k-means and the IDC grouping ops (small sizes on CPU, the
issue's sizes on CUDA). Run with ``pytest benchmarks/test_bench_kmeans.py --benchmark-enable``."""
import pytest
import torch

from irkernels.ops.nearest import nearest_in_group
from irkernels.ops.quotas import assign_with_quotas
from irkernels.ops.kmeans import kmeans

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
K, D, ITERS = 32, 128, 20


def _sync(value):
    if CUDA:
        torch.cuda.synchronize()
    return value


@pytest.mark.parametrize("sizes", [[38_656], [38_656] * 16, [618_496]] if CUDA else [[2048], [2048] * 4],
                         ids=lambda s: f"{len(s)}x{s[0]}")
def test_kmeans_lloyd(benchmark, sizes):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(sum(sizes), D, generator=gen).to(DEVICE)
    offsets = torch.tensor([0] + torch.tensor(sizes).cumsum(0).tolist(), device=DEVICE)
    init = kmeans(x, K, offsets=offsets, iters=0, seed=0).centroids.reshape(len(sizes), K, D)
    result = benchmark(lambda: _sync(kmeans(x, K, offsets=offsets, init=init, iters=ITERS, tol=None)))
    assert result.n_iter.min() == ITERS


@pytest.mark.parametrize("sizes", [[38_656], [38_656] * 16] if CUDA else [[2048], [2048] * 4],
                         ids=lambda s: f"{len(s)}x{s[0]}")
def test_kmeans_default_call(benchmark, sizes):
    """What a user calls: init (k-means++ on a sample) + Lloyd with the default tolerance."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(sum(sizes), D, generator=gen).to(DEVICE)
    offsets = torch.tensor([0] + torch.tensor(sizes).cumsum(0).tolist(), device=DEVICE)
    result = benchmark(lambda: _sync(kmeans(x, K, offsets=offsets, seed=0)))
    assert result.centroids.shape == (len(sizes), K, D) and bool(torch.isfinite(result.inertia).all())


def test_assign_and_pair(benchmark):
    b, m, n, f = (16, 3840, 38_656, 2048) if CUDA else (2, 256, 2048, 64)
    gen = torch.Generator().manual_seed(1)
    desc, real_desc = torch.randn(b * m, D, generator=gen).to(DEVICE), torch.randn(b * n, D, generator=gen).to(DEVICE)
    syn, real = torch.randn(b * m, f, generator=gen).to(DEVICE), torch.randn(b * n, f, generator=gen).to(DEVICE)
    so, ro = torch.arange(0, b * m + 1, m, device=DEVICE), torch.arange(0, b * n + 1, n, device=DEVICE)
    groups = kmeans(real_desc, K, offsets=ro, iters=5, seed=0)
    counts = torch.stack([torch.bincount(groups.labels[i * n:(i + 1) * n], minlength=K) for i in range(b)])

    def step():
        labels = assign_with_quotas(desc, groups.centroids, counts, 0.5, offsets=so)
        return _sync(nearest_in_group(syn, labels, real, groups.labels, syn_offsets=so, real_offsets=ro))

    pairs = benchmark(step)
    assert int((pairs >= 0).sum()) == b * m // 2
