"""Grouping: proportional quotas, quota-constrained progressive assignment, pairing, and the CUDA
extension (compiled with nvcc here; its kernel is checked against the reference on a GPU)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.cpp_extension import is_ninja_available

from irkernels.ops import _ext
from irkernels.ops.nearest import nearest_in_group, nearest_in_group_reference
from irkernels.ops.quotas import assign_backend, assign_with_quotas, assign_with_quotas_reference, proportional_quotas
from irkernels.ops.kmeans import kmeans

from sm90 import compile_sm90
from sm90_launches import grouping_specs


def _offsets(sizes):
    return torch.tensor([0] + np.cumsum(sizes).tolist())


def _instances(sizes, k, d, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    desc = torch.randn(sum(sizes), d, generator=gen, dtype=dtype)
    centroids = torch.randn(len(sizes), k, d, generator=gen, dtype=dtype)
    real_counts = torch.randint(0, 30, (len(sizes), k), generator=gen)
    real_counts[:, 0] += 1  # every instance has real patches
    return desc, centroids, real_counts, _offsets(sizes)


def _sq_dist(desc, centroids, offsets, labels):
    inst = torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets.diff())
    return ((desc - centroids[inst, labels.clamp_min(0)]) ** 2).sum(-1)


def test_quotas_largest_remainder():
    assert proportional_quotas(torch.tensor([5, 3, 2]), 7).tolist() == [4, 2, 1]  # 3.5, 2.1, 1.4
    assert proportional_quotas(torch.tensor([1, 1, 1, 1]), 2).tolist() == [1, 1, 0, 0]  # ties -> lower index
    assert proportional_quotas(torch.tensor([0, 4, 0, 2]), 5).tolist() == [0, 3, 0, 2]  # 3.33, 1.67
    counts = torch.randint(0, 50, (20, 9), generator=torch.Generator().manual_seed(0))
    counts[:, 3] += 1
    n = torch.randint(0, 400, (20,), generator=torch.Generator().manual_seed(1))
    q = proportional_quotas(counts, n)
    exact = n[:, None] * counts / counts.sum(1, keepdim=True)
    assert torch.equal(q.sum(1), n)
    assert bool(((q - exact).abs() < 1).all())
    assert bool((q[counts == 0] == 0).all())
    with pytest.raises(ValueError, match="positive sum"):
        proportional_quotas(torch.zeros(2, 3, dtype=torch.long), 4)


@pytest.mark.parametrize("fraction", [0.0, 0.13, 0.5, 0.871, 1.0])
def test_assignment_equals_sequential_greedy(fraction):
    desc, centroids, real_counts, offsets = _instances((37, 64, 23, 1), k=6, d=5, seed=3)
    ours = assign_with_quotas(desc, centroids, real_counts, fraction, offsets=offsets, backend="torch")
    ref = assign_with_quotas_reference(desc, centroids, real_counts, fraction, offsets=offsets)
    assert torch.equal(ours, ref)
    sizes = offsets.diff()
    assigned = torch.stack([(ours[o:o + n] >= 0).sum() for o, n in zip(offsets[:-1].tolist(), sizes.tolist())])
    assert torch.equal(assigned, torch.floor(fraction * sizes.double() + 0.5).long())


def test_quotas_respected_exactly_and_assignment_grows():
    desc, centroids, real_counts, offsets = _instances((50, 91), k=7, d=4, seed=5)
    quotas = proportional_quotas(real_counts, offsets.diff())
    full = assign_with_quotas(desc, centroids, real_counts, 1.0, offsets=offsets)
    for b, (o, e) in enumerate(zip(offsets[:-1].tolist(), offsets[1:].tolist())):
        assert torch.equal(torch.bincount(full[o:e], minlength=7), quotas[b])
    previous = torch.full_like(full, -1)
    for fraction in (0.1, 0.3, 0.6, 0.9, 1.0):  # progressive: earlier assignments are kept
        cur = assign_with_quotas(desc, centroids, real_counts, fraction, offsets=offsets)
        kept = previous >= 0
        assert torch.equal(cur[kept], previous[kept])
        previous = cur
    assert torch.equal(previous, full)


def test_fraction_assigns_the_closest():
    desc, centroids, real_counts, offsets = _instances((80,), k=5, d=3, seed=8)
    full = assign_with_quotas(desc, centroids, real_counts, 1.0, offsets=offsets)
    part = assign_with_quotas(desc, centroids, real_counts, 0.4, offsets=offsets)
    dist = _sq_dist(desc, centroids, offsets, full)
    assert (part >= 0).sum() == 32
    assert dist[part >= 0].max() <= dist[part < 0].min()


def test_layouts_ties_and_per_instance_fraction():
    desc, centroids, real_counts, offsets = _instances((12, 20), k=3, d=2, seed=9)
    desc[5:9] = desc[4]  # duplicate descriptors: ties broken by patch index
    fraction = torch.tensor([0.5, 0.75])
    packed = assign_with_quotas(desc, centroids, real_counts, fraction, offsets=offsets)
    assert torch.equal(packed, assign_with_quotas_reference(desc, centroids, real_counts, fraction, offsets=offsets))
    padded = torch.zeros(2, 20, 2, dtype=desc.dtype)
    padded[0, :12], padded[1] = desc[:12], desc[12:]
    out = assign_with_quotas(padded, centroids, real_counts, fraction, lengths=torch.tensor([12, 20]))
    assert torch.equal(out[0, :12], packed[:12]) and torch.equal(out[1], packed[12:])
    assert bool((out[0, 12:] == -1).all())
    single = assign_with_quotas(desc[12:], centroids[1], real_counts[1], 0.75)
    assert torch.equal(single, packed[12:])


def test_assignment_bad_inputs():
    desc, centroids, real_counts, offsets = _instances((10, 6), k=3, d=2, seed=1)
    with pytest.raises(ValueError, match="fraction must lie in"):
        assign_with_quotas(desc, centroids, real_counts, 1.5, offsets=offsets)
    with pytest.raises(ValueError, match="real_counts must have shape"):
        assign_with_quotas(desc, centroids, real_counts[:, :2], 1.0, offsets=offsets)
    with pytest.raises(ValueError, match="centroids must be"):
        assign_with_quotas(desc, centroids[:, :, :1], real_counts, 1.0, offsets=offsets)
    bad = desc.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="desc contains NaN or Inf"):
        assign_with_quotas(bad, centroids, real_counts, 1.0, offsets=offsets)
    with pytest.raises(ValueError, match="backend must be one of"):
        assign_with_quotas(desc, centroids, real_counts, 1.0, offsets=offsets, backend="cuda")


def _pairing_case(seed, feat=37):
    gen = torch.Generator().manual_seed(seed)
    syn_sizes, real_sizes, k = (29, 70), (90, 41), 4
    syn = torch.randn(sum(syn_sizes), feat, generator=gen)
    real = torch.randn(sum(real_sizes), feat, generator=gen)
    real_labels = torch.randint(0, k, (sum(real_sizes),), generator=gen)
    real_labels[90:][real_labels[90:] == 3] = 2  # instance 1 has no real patch in group 3
    syn_labels = torch.randint(-1, k, (sum(syn_sizes),), generator=gen)
    real[5] = real[60]  # an exact tie when both are in one group
    real_labels[5] = real_labels[60]
    return syn, syn_labels, real, real_labels, _offsets(syn_sizes), _offsets(real_sizes)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_pairing_equals_brute_force(backend, kernel_device):
    syn, syn_labels, real, real_labels, so, ro = _pairing_case(0)
    syn[3] = real[60] + 1e-3  # its nearest real rows are the tied pair (5, 60): lowest index wins
    syn_labels[3] = real_labels[60]
    ref = nearest_in_group_reference(syn, syn_labels, real, real_labels, syn_offsets=so, real_offsets=ro)
    dev = kernel_device if backend == "triton" else torch.device("cpu")
    out = nearest_in_group(syn.to(dev), syn_labels.to(dev), real.to(dev), real_labels.to(dev),
                           syn_offsets=so.to(dev), real_offsets=ro.to(dev), precision="highest", backend=backend)
    assert torch.equal(out.cpu(), ref)
    assert out[3] == 5
    assert bool((out.cpu()[syn_labels < 0] == -1).all())
    no_real_group = (torch.arange(len(syn)) >= 29) & (syn_labels == 3)
    assert no_real_group.any() and bool((out.cpu()[no_real_group] == -1).all())


def test_pairing_bad_inputs():
    syn, syn_labels, real, real_labels, so, ro = _pairing_case(1)
    with pytest.raises(ValueError, match="syn has 2 instances but real has 1"):
        nearest_in_group(syn, syn_labels, real, real_labels, syn_offsets=so)
    with pytest.raises(ValueError, match="real_labels must be >= 0"):
        nearest_in_group(syn, syn_labels, real, real_labels - 1, syn_offsets=so, real_offsets=ro)
    with pytest.raises(ValueError, match="same feature size"):
        nearest_in_group(syn, syn_labels, real[:, :5], real_labels, syn_offsets=so, real_offsets=ro)


def test_kmeans_assign_pair_pipeline():
    """The three ops chained as IDC does: group real descriptors, assign synthetic ones, pair."""
    gen = torch.Generator().manual_seed(2)
    real_feat = torch.randn(300, 4, 8, generator=gen)  # (patches, p*p, C)
    syn_feat = real_feat[:40] + 0.05 * torch.randn(40, 4, 8, generator=gen)
    groups = kmeans(real_feat.mean(1), 5, seed=0)
    counts = torch.bincount(groups.labels, minlength=5)
    syn_groups = assign_with_quotas(syn_feat.mean(1), groups.centroids, counts, 0.5)
    pairs = nearest_in_group(syn_feat.flatten(1), syn_groups, real_feat.flatten(1), groups.labels)
    assigned = syn_groups >= 0
    assert int(assigned.sum()) == 20
    assert torch.equal(groups.labels[pairs[assigned]], syn_groups[assigned])


@pytest.mark.sm90
def test_pairing_kernel_compiles_for_sm90():
    out = compile_sm90(grouping_specs())
    assert "mma" in out[0]["ptx"]


def test_extension_status_reports_a_reason():
    status = _ext.extension_status()
    assert set(status) >= {"cuda_extension", "source", "ops", "reason", "quota_assignment"}
    if not torch.cuda.is_available():
        assert status["quota_assignment"] == "torch" and status["reason"]


@pytest.mark.skipif(torch.version.cuda is None, reason="torch is not a CUDA build: nothing to compile against")
@pytest.mark.skipif(_ext.find_cuda_home() is None, reason="nvcc / CUDA toolkit not found")
@pytest.mark.skipif(not is_ninja_available(), reason="ninja (needed by torch.utils.cpp_extension.load) not found")
def test_cuda_extension_compiles_with_nvcc(tmp_path):
    """Build csrc/ for sm_90 with nvcc (no GPU needed) and load its op registrations."""
    script = ("import sys, torch; from irkernels.ops import _ext; _ext.build_extension(sys.argv[1]); "
              "assert hasattr(torch.ops.irkernels, 'quota_match_'); "
              "assert 'bool check_sizes=True' in str(torch.ops.irkernels.quota_match_.default._schema); "
              # the fake implementation: the op traces on meta tensors without running the kernel
              "m = lambda *s, dt=torch.float32: torch.empty(s, dtype=dt, device='meta'); "
              "torch.ops.irkernels.quota_match_(m(8, 3), m(8, 3, dt=torch.int32), m(3, dt=torch.int64), "
              "m(2, 3, dt=torch.int32), m(8, dt=torch.int64), 4); print('built')")
    env = dict(os.environ, TORCH_CUDA_ARCH_LIST="9.0", MAX_JOBS="2")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0 and "built" in proc.stdout, proc.stderr[-4000:]


def _integer_instances(sizes, k, d, seed):
    """Small-integer descriptors: every distance is exact in float32 on any device (so CPU and GPU
    agree bit for bit) and many pairs tie exactly, which exercises the (distance, patch, group)
    tie order."""
    gen = torch.Generator().manual_seed(seed)
    desc = torch.randint(-2, 3, (sum(sizes), d), generator=gen).float()
    centroids = torch.randint(-2, 3, (len(sizes), k, d), generator=gen).float()
    real_counts = torch.randint(0, 40, (len(sizes), k), generator=gen)
    real_counts[:, 0] += 1
    return desc, centroids, real_counts, _offsets(sizes)


@pytest.mark.parametrize("fraction", [0.35, 1.0])
def test_assignment_with_exact_ties_equals_greedy(fraction):
    desc, centroids, real_counts, offsets = _integer_instances((90, 41), k=6, d=3, seed=6)
    ours = assign_with_quotas(desc, centroids, real_counts, fraction, offsets=offsets)
    ref = assign_with_quotas_reference(desc, centroids, real_counts, fraction, offsets=offsets)
    assert torch.equal(ours, ref)


@pytest.mark.cuda
def test_cuda_extension_matches_greedy_at_idc_size():
    sizes = (3840, 1000, 3840, 17, 2500, 3840, 1, 640)
    desc, centroids, real_counts, offsets = _integer_instances(sizes, k=32, d=16, seed=4)
    # "auto" on CUDA tensors must pick the compiled extension here (it raises no error otherwise)
    assert assign_backend(torch.device("cuda"), max(sizes), 32) == "cuda", _ext.extension_status()["reason"]
    for fraction in (0.25, 1.0):
        ref = assign_with_quotas_reference(desc, centroids, real_counts, fraction, offsets=offsets)
        ours = assign_with_quotas(desc.cuda(), centroids.cuda(), real_counts.cuda(), fraction,
                                  offsets=offsets.cuda(), backend="auto")
        assert torch.equal(ours.cpu(), ref)
        torch_path = assign_with_quotas(desc.cuda(), centroids.cuda(), real_counts.cuda(), fraction,
                                        offsets=offsets.cuda(), backend="torch")
        assert torch.equal(torch_path.cpu(), ref)


@pytest.mark.cuda
def test_cuda_extension_rejects_a_too_small_max_rows():
    """max_rows sizes the block's shared memory: too small raises in C++ while value checks are on,
    and the kernel itself refuses the instance (rows -1) instead of overflowing when they are off."""
    assert _ext.has_op("quota_match_"), _ext.extension_status()["reason"]
    sizes = (300, 40)
    offsets = _offsets(sizes)
    seg_dist = torch.rand(sum(sizes), 5, device="cuda")
    pref = torch.argsort(seg_dist, dim=1, stable=True).to(torch.int32)
    quotas = torch.tensor([[60] * 5, [8] * 5], dtype=torch.int32, device="cuda")
    out = torch.empty(sum(sizes), dtype=torch.int64, device="cuda")
    offs = offsets.cuda()
    with pytest.raises(RuntimeError, match=r"max_rows \(64\) must be >= the largest instance \(300 rows\)"):
        torch.ops.irkernels.quota_match_(seg_dist, pref, offs, quotas, out, 64, True)
    out.fill_(7)
    torch.ops.irkernels.quota_match_(seg_dist, pref, offs, quotas, out, 64, False)
    assert bool((out[:300] == -1).all()) and bool((out[300:] >= 0).all())
    torch.ops.irkernels.quota_match_(seg_dist, pref, offs, quotas, out, 300, True)
    assert bool((out >= 0).all())


@pytest.mark.cuda
def test_cuda_pairing_at_idc_size():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(2 * 4000, 2048, generator=gen)
    syn = torch.randn(2 * 400, 2048, generator=gen)
    real_labels = torch.randint(0, 32, (8000,), generator=gen)
    syn_labels = torch.randint(-1, 32, (800,), generator=gen)
    so, ro = torch.tensor([0, 400, 800]), torch.tensor([0, 4000, 8000])
    ref = nearest_in_group_reference(syn, syn_labels, real, real_labels, syn_offsets=so, real_offsets=ro)
    out = nearest_in_group(syn.cuda(), syn_labels.cuda(), real.cuda(), real_labels.cuda(),
                           syn_offsets=so.cuda(), real_offsets=ro.cuda(), precision="highest")
    assert torch.equal(out.cpu(), ref)
