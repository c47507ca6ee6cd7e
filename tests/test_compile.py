"""rlff, the k-means assignment step, the quota op and nearest_in_group under ``torch.compile(fullgraph=True)`` (their
fused paths are ``torch.library`` custom ops with fake implementations), and the steady-state host
syncs of rlff, kmeans_assign, assign_with_quotas and nearest_in_group: none with value checks off.

CPU: fullgraph compilation fails on any data-dependent host read outside the custom ops, and a
counter of ``Tensor.item`` / ``tolist`` / ``__bool__`` / ``__int__`` / ``__float__`` sees the reads
inside them. CUDA: ``torch.cuda.set_sync_debug_mode("error")`` turns every synchronising call into
an error.
"""
import contextlib

import pytest
import torch

import irkernels
from irkernels.ops.nearest import nearest_in_group
from irkernels.ops.quotas import assign_with_quotas, assign_with_quotas_reference
from irkernels.ops.kmeans import kmeans, kmeans_assign
from irkernels.ops.rlff import reference_stats, rlff, rlff_reference, sample_rows

pytestmark = pytest.mark.usefixtures("one_thread")

HOST_READS = ("item", "tolist", "__bool__", "__int__", "__float__")


@contextlib.contextmanager
def count_host_reads(monkeypatch):
    """Counts calls of the Tensor methods that read a value to the host (a sync on a GPU)."""
    calls = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    try:
        yield calls
    finally:
        monkeypatch.undo()


def _features(shape, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen, dtype=dtype) * 1.5 + 0.3)


def _rlff_case(device, stats_given: bool):
    f = _features((2, 3, 7, 9), seed=1).to(device).requires_grad_(True)
    rows = sample_rows(3, 3, 12, seed=3, device=device)
    stats = None
    if stats_given:
        mean, std = reference_stats(_features((3, 3, 7, 9), seed=2).to(device))
        stats = (mean, std)
    return f, rows, stats


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("stats_given", [False, True])
def test_rlff_compiles_fullgraph_forward_and_backward(stats_given, backend, kernel_device):
    f, rows, stats = _rlff_case(kernel_device, stats_given)
    weight = torch.randn(12, 16, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64).to(kernel_device)

    def loss(x):
        out = rlff(x, out_channels=12, rows=rows, stats=stats, patch_size=4, backend=backend)
        return (out * weight).sum()

    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    value = compiled(f)
    (grad,) = torch.autograd.grad(value, f)
    x_ref = f.detach().cpu().requires_grad_(True)
    ref = (rlff_reference(x_ref, rows.cpu(), 3, 4, None if stats is None else tuple(s.cpu() for s in stats))
           * weight.cpu()).sum()
    (grad_ref,) = torch.autograd.grad(ref, x_ref)
    torch.testing.assert_close(value.detach().cpu(), ref.detach(), rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(grad.cpu(), grad_ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_rlff_fake_matches_the_op_output(backend):
    """The fake (shape-only) implementation gives the real op's shapes and dtypes on either path,
    border patches included."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    f = _features((2, 3, 6, 9), seed=5, dtype=torch.float32)
    rows = sample_rows(3, 3, 7, seed=0)
    real = torch.ops.irkernels.rlff_samples(f, rows, None, None, 3, 4, "highest", backend)
    with FakeTensorMode(allow_non_fake_inputs=True):
        fake = torch.ops.irkernels.rlff_samples(torch.empty_like(f), rows.clone(), None, None, 3, 4, "highest",
                                                backend)
    assert [(t.shape, t.dtype) for t in fake] == [(t.shape, t.dtype) for t in real]


def test_kmeans_assign_and_quota_op_compile_fullgraph(kernel_device):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(150, 6, generator=gen)
    km = kmeans(x, 5, seed=0, backend="torch")
    counts = torch.bincount(km.labels, minlength=5)
    desc = x[:33] + 0.05 * torch.randn(33, 6, generator=gen)
    xd, cd, kd, dd = (t.to(kernel_device) for t in (x, km.centroids, counts, desc))

    def step(points, centroids, real_counts, syn):
        labels, dist = kmeans_assign(points, centroids, backend="triton")
        groups = assign_with_quotas(syn, centroids, real_counts, 0.6, backend="triton")
        return labels, dist, groups

    labels, dist, groups = torch.compile(step, fullgraph=True, backend="aot_eager")(xd, cd, kd, dd)
    assert torch.equal(labels.cpu(), km.labels)
    ref_dist = ((x - km.centroids[km.labels]) ** 2).sum(1)
    torch.testing.assert_close(dist.cpu(), ref_dist, rtol=1e-4, atol=1e-4)
    assert torch.equal(groups.cpu(), assign_with_quotas_reference(desc, km.centroids, counts, 0.6))


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_nearest_in_group_compiles_fullgraph(kernel_device, backend):
    """nearest_in_group under torch.compile(fullgraph=True): its search is the custom op
    irkernels::nearest_in_group, so neither the Triton launch nor the torch path's per-group loop
    breaks the graph; equal to the brute-force oracle."""
    from irkernels import value_checks
    from irkernels.ops.nearest import nearest_in_group_reference

    gen = torch.Generator().manual_seed(11)
    syn, real = torch.randn(37, 10, generator=gen), torch.randn(90, 10, generator=gen)
    syn_labels = torch.randint(-1, 4, (37,), generator=gen)  # -1: not assigned yet
    real_labels = torch.randint(0, 4, (90,), generator=gen)
    args = [t.to(kernel_device) for t in (syn, syn_labels, real, real_labels)]

    def step(s, sl, r, rl):
        return nearest_in_group(s, sl, r, rl, num_groups=4, precision="highest", backend=backend)

    with value_checks(False):
        got = torch.compile(step, fullgraph=True, backend="aot_eager")(*args)
    assert torch.equal(got.cpu(), nearest_in_group_reference(syn, syn_labels, real, real_labels))


def test_rlff_compiles_with_the_default_backend():
    """Inductor (the default backend) around the custom op, forward and backward: one graph, and a
    second call compiles nothing more (counted by dynamo, not timed: the CI machines are shared)."""
    from torch._dynamo.utils import counters

    f, rows, _ = _rlff_case(torch.device("cpu"), stats_given=False)
    f = f.detach().float().requires_grad_(True)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(lambda x: rlff(x, out_channels=12, rows=rows, backend="torch").square().mean(),
                             fullgraph=True)
    value = compiled(f)
    value.backward()
    assert counters["stats"]["unique_graphs"] == 1
    compiled(f.detach().clone().requires_grad_(True)).backward()  # a fresh leaf: f.grad stays this call's
    assert counters["stats"]["unique_graphs"] == 1
    x_ref = f.detach().requires_grad_(True)
    ref = rlff_reference(x_ref, rows, 3, 4).square().mean()
    ref.backward()
    torch.testing.assert_close(value.detach(), ref.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(f.grad, x_ref.grad, rtol=1e-4, atol=1e-6)


def _grouping_case(device):
    gen = torch.Generator().manual_seed(11)
    sizes_real, sizes_syn, k, d = (120, 80), (30, 21), 4, 8
    real = torch.randn(sum(sizes_real), d, generator=gen)
    syn = torch.randn(sum(sizes_syn), d, generator=gen)
    real_off = torch.tensor([0, sizes_real[0], sum(sizes_real)])
    syn_off = torch.tensor([0, sizes_syn[0], sum(sizes_syn)])
    km = kmeans(real, k, offsets=real_off, seed=0, backend="torch")
    inst = torch.repeat_interleave(torch.arange(2), torch.tensor(sizes_real))
    counts = torch.bincount(inst * k + km.labels, minlength=2 * k).view(2, k)
    return [t.to(device) for t in (real, syn, real_off, syn_off, km.labels, km.centroids, counts)], k


def test_steady_state_calls_read_nothing_to_the_host(monkeypatch, kernel_device):
    """After one warm-up call (offsets sizes remembered, launch plans cached), rlff fwd+bwd,
    kmeans_assign, nearest_in_group (fused path, num_groups given) make no host read with value
    checks off; with value checks on they do read (the counter sees them)."""
    f, rows, stats = _rlff_case(kernel_device, stats_given=True)
    (real, syn, real_off, syn_off, real_labels, centroids, counts), k = _grouping_case(kernel_device)
    syn_labels = assign_with_quotas(syn, centroids, counts, 0.8, offsets=syn_off)

    def steady_state():
        out = rlff(f, out_channels=12, rows=rows, stats=stats, backend="triton")
        (grad,) = torch.autograd.grad(out.square().sum(), f)
        labels, _ = kmeans_assign(real, centroids, offsets=real_off, backend="triton")
        pairs = nearest_in_group(syn, syn_labels, real, real_labels, syn_offsets=syn_off, real_offsets=real_off,
                                 num_groups=k, backend="triton")
        return grad, labels, pairs

    warm = steady_state()
    with count_host_reads(monkeypatch) as reads, irkernels.value_checks(False):
        again = steady_state()
    assert reads == [], reads
    for a, b in zip(warm, again):
        assert torch.equal(a, b)
    with count_host_reads(monkeypatch) as reads:
        steady_state()
    assert reads, "value checks on must read (NaN / range checks)"


@pytest.mark.parametrize("step_kind", ["triton", "torch"])
def test_one_lloyd_step_reads_nothing(monkeypatch, step_kind, kernel_device):
    """kmeans' per-iteration step (assign + accumulate + update) leaves its flags on the device;
    only the loop around it reads them."""
    from irkernels.ops._segments import pack
    from irkernels.ops.kmeans import _TorchStep, _TritonStep

    gen = torch.Generator().manual_seed(3)
    dev = kernel_device if step_kind == "triton" else torch.device("cpu")
    x = torch.randn(90, 5, generator=gen).to(dev)
    offsets = torch.tensor([0, 40, 90], device=dev)
    seg = pack(x, offsets=offsets)
    step = _TritonStep(seg, 3, "highest") if step_kind == "triton" else _TorchStep(seg, 3)
    centroids = torch.stack([x[:3], x[40:43]])
    args = (torch.ones(2, dtype=torch.int8, device=dev), torch.zeros(2, dtype=torch.int64, device=dev),
            torch.zeros(2, dtype=torch.float64, device=dev))
    step.iterate(centroids, *args)
    with count_host_reads(monkeypatch) as reads:
        update = step.iterate(centroids, *args)
    assert reads == [], reads
    assert update.flags.tolist() == [0, 1] and update.counts.sum(1).tolist() == [40, 50]


def test_quota_op_extension_path_reads_nothing_but_torch_rounds_do(monkeypatch):
    """The quota op around the matching: on CPU (torch rounds) each round reads one flag, outside
    the op nothing is read; the CUDA test below runs the extension path under sync debug mode."""
    (real, syn, real_off, syn_off, real_labels, centroids, counts), _ = _grouping_case(torch.device("cpu"))
    assign_with_quotas(syn, centroids, counts, 0.8, offsets=syn_off)
    import irkernels.ops.quotas as quotas

    rounds = []
    original = quotas._match_torch
    with count_host_reads(monkeypatch) as reads, irkernels.value_checks(False):
        monkeypatch.setattr(quotas, "_match_torch", lambda *a: rounds.append(1) or original(*a))
        out = assign_with_quotas(syn, centroids, counts, 0.8, offsets=syn_off)
    assert rounds == [1]  # the matching ran once, inside the op
    # every read is the torch matching's per-round flag (bool of a reduction), none elsewhere
    assert reads and set(reads) <= {"__bool__", "__int__"}, reads
    assert torch.equal(out, assign_with_quotas_reference(syn, centroids, counts, 0.8, offsets=syn_off))


@pytest.mark.cuda
def test_steady_state_makes_no_cuda_sync():
    """CUDA: after a warm-up, rlff fwd+bwd (both kinds of statistics), kmeans_assign,
    assign_with_quotas (the CUDA extension) and nearest_in_group under sync debug mode "error"."""
    from irkernels.ops.quotas import assign_backend

    dev = torch.device("cuda")
    f, rows, stats = _rlff_case(dev, stats_given=True)
    f = f.detach().float().requires_grad_(True)
    stats = tuple(s.float() for s in stats)
    (real, syn, real_off, syn_off, real_labels, centroids, counts), k = _grouping_case(dev)
    assert assign_backend(dev, 30, k) == "cuda", irkernels.backend_report()["cuda_extension"]

    def steady_state():
        outs = []
        for s in (stats, None):
            out = rlff(f, out_channels=12, rows=rows, stats=s)
            outs.append(torch.autograd.grad(out.square().sum(), f)[0])
        outs.append(kmeans_assign(real, centroids, offsets=real_off)[0])
        syn_labels = assign_with_quotas(syn, centroids, counts, 0.8, offsets=syn_off)
        outs.append(syn_labels)
        outs.append(nearest_in_group(syn, syn_labels, real, real_labels, syn_offsets=syn_off, real_offsets=real_off,
                                     num_groups=k))
        return outs

    warm = steady_state()
    torch.cuda.synchronize()
    with irkernels.value_checks(False):
        torch.cuda.set_sync_debug_mode("error")
        try:
            again = steady_state()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for a, b in zip(warm, again):
        assert torch.equal(a, b)
