"""ncfd_loss / cf_stats against the float64 eager NCFM formula: forward, gradients w.r.t. x, y, t.

Triton kernels run in the interpreter on CPU (conftest); sizes are odd so that every tile edge is
masked; one group is empty on both sides and one only on the synthetic side.
"""
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import irkernels
from irkernels.ops import ncfd
from irkernels.ops.ncfd import CFStats, cf_stats, ncfd_from_stats, ncfd_loss, ncfd_loss_reference

N, M, T, D, G = 97, 41, 53, 19, 6


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def make_inputs(seed: int, dtype=torch.float32, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    x = (0.4 * torch.randn(N, D, generator=gen) + 0.1).to(device=device, dtype=dtype)
    y = (0.4 * torch.randn(M, D, generator=gen) - 0.05).to(device=device, dtype=dtype)
    t = torch.randn(T, D, generator=gen).to(device=device, dtype=dtype)
    xg = torch.randint(0, G - 1, (N,), generator=gen)  # group G-1 empty on both sides
    yg = torch.randint(0, G - 2, (M,), generator=gen)  # group G-2 empty on the synthetic side
    return x, y, t, xg.to(device), yg.to(device)


def reference_and_grads(x, y, t, **kw):
    xd, yd, td = (v.detach().double().cpu().requires_grad_() for v in (x, y, t))
    kw = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    out = ncfd_loss_reference(xd, yd, td, reduction="none", **kw)
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=torch.float64)  # distinct per-group grads
    (out * weights).sum().backward()
    return out.detach(), xd.grad, yd.grad, td.grad, weights


def ours_and_grads(x, y, t, weights, **kw):
    xf, yf, tf = (v.detach().clone().requires_grad_() for v in (x, y, t))
    out = ncfd_loss(xf, yf, tf, reduction="none", **kw)
    (out * weights.to(out)).sum().backward()
    return out.detach(), xf.grad, yf.grad, tf.grad


CASES = [
    ("torch", "fast", False, "modulus"),
    ("torch", "fast", True, "difference"),
    ("triton", "fast", False, "modulus"),
    ("triton", "fast", True, "modulus"),
    ("triton", "high", True, "difference"),
    ("triton", "highest", True, "modulus"),
    ("triton", "highest", False, "difference"),
]


@pytest.mark.parametrize("backend,precision,grouped,amplitude", CASES)
def test_matches_float64_reference(backend, precision, grouped, amplitude, kernel_device):
    device = kernel_device if backend == "triton" else "cpu"
    x, y, t, xg, yg = make_inputs(seed=100 + CASES.index((backend, precision, grouped, amplitude)), device=device)
    kw = dict(x_groups=xg, y_groups=yg, num_groups=G) if grouped else {}
    ref, gx, gy, gt, w = reference_and_grads(x, y, t, amplitude=amplitude, alpha=0.3, **kw)
    out, ox, oy, ot = ours_and_grads(x, y, t, w, amplitude=amplitude, alpha=0.3, backend=backend,
                                     precision=precision, **kw)
    assert out.shape == ref.shape == ((G,) if grouped else (1,))
    assert rel_err(out.cpu(), ref) <= 1e-4
    for ours, theirs in ((ox, gx), (oy, gy), (ot, gt)):
        assert torch.isfinite(ours).all()
        assert rel_err(ours.cpu(), theirs) <= 1e-4
    if grouped:  # empty on either side → exactly 0 and no gradient from that group
        assert out[G - 1].item() == 0.0 and out[G - 2].item() == 0.0
        assert (ox[xg.cpu() == G - 2] .abs().sum()).item() == 0.0


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_bf16_inputs(backend, kernel_device):
    """bf16 in: fp32 accumulation, so the loss is as accurate as for the bf16-rounded values in
    float64 (≤ 1e-4); gradients come back in bf16, so ≤ 2^-7 relative (documented bound)."""
    device = kernel_device if backend == "triton" else "cpu"
    x, y, t, xg, yg = make_inputs(seed=7, dtype=torch.bfloat16, device=device)
    kw = dict(x_groups=xg, y_groups=yg, num_groups=G)
    ref, gx, gy, gt, w = reference_and_grads(x, y, t, **kw)
    out, ox, oy, ot = ours_and_grads(x, y, t, w, backend=backend, **kw)
    assert out.dtype == torch.float32 and oy.dtype == torch.bfloat16
    assert rel_err(out.cpu(), ref) <= 1e-4
    for ours, theirs in ((ox, gx), (oy, gy), (ot, gt)):
        assert rel_err(ours.cpu(), theirs) <= 2**-7


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    xg = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    yg = torch.tensor([2, 1, 0, 0, 2])
    assert torch.autograd.gradcheck(lambda a, b, c: ncfd_loss(a, b, c, backend="torch"), (x, y, t))
    assert torch.autograd.gradcheck(
        lambda a, b, c: ncfd_loss(a, b, c, x_groups=xg, y_groups=yg, reduction="sum", amplitude="difference"),
        (x, y, t))


def test_precomputed_real_stats_equal_direct(kernel_device):
    x, y, t, xg, yg = make_inputs(seed=11, device=kernel_device)
    sx = cf_stats(x, t, xg, G, backend="triton")
    assert isinstance(sx, CFStats) and sx.re.shape == (G, T) and sx.counts.tolist() == torch.bincount(xg.cpu(), minlength=G).tolist()
    y1, y2 = y.clone().requires_grad_(), y.clone().requires_grad_()
    a = ncfd_loss(sx, y1, t, y_groups=yg, backend="triton")
    b = ncfd_loss(x, y2, t, x_groups=xg, y_groups=yg, num_groups=G, backend="triton")
    a.backward()
    b.backward()
    assert torch.equal(a, b) and torch.equal(y1.grad, y2.grad)


def test_stats_equal_definition(kernel_device):
    x, _, t, xg, _ = make_inputs(seed=5, device=kernel_device)
    s = cf_stats(x, t, xg, G, backend="triton", precision="highest")
    theta = x.double().cpu() @ t.double().cpu().T
    for g in range(G):
        rows = xg.cpu() == g
        want_re = torch.cos(theta[rows]).mean(0) if rows.any() else torch.zeros(T, dtype=torch.float64)
        assert torch.allclose(s.re[g].double().cpu(), want_re, atol=2e-6)
    ungrouped = cf_stats(x, t, backend="triton")
    assert ungrouped.re.shape == (1, T)
    assert torch.allclose(ungrouped.im[0].double().cpu(), torch.sin(theta).mean(0), atol=2e-6)


def test_reductions_and_empty_groups():
    x, y, t, xg, yg = make_inputs(seed=13)
    kw = dict(x_groups=xg, y_groups=yg, num_groups=G, backend="torch")
    per = ncfd_loss(x, y, t, reduction="none", **kw)
    valid = per != 0
    assert valid.sum().item() == G - 2
    assert torch.allclose(ncfd_loss(x, y, t, reduction="sum", **kw), per.sum())
    assert torch.allclose(ncfd_loss(x, y, t, reduction="mean", **kw), per.sum() / (G - 2))
    assert per.min() >= 0


def test_many_groups_and_chunks(monkeypatch, kernel_device):
    """More groups than one program's group block (grid over group blocks) and several sample
    chunks; the torch path forced into many chunks too."""
    monkeypatch.setattr(ncfd, "_MAX_GROUP_BLOCK", 16)
    monkeypatch.setattr(ncfd, "_TORCH_CHUNK_BYTES", 8 * T * 10)
    gen = torch.Generator().manual_seed(17)
    groups = 37
    x = torch.randn(N, D, generator=gen) * 0.3
    y = torch.randn(M, D, generator=gen) * 0.3
    t = torch.randn(T, D, generator=gen)
    xg = torch.randint(0, groups, (N,), generator=gen)
    yg = torch.randint(0, groups, (M,), generator=gen)
    kw = dict(x_groups=xg, y_groups=yg, num_groups=groups)
    ref, gx, gy, gt, w = reference_and_grads(x, y, t, **kw)
    for backend in ("torch", "triton"):
        dev = kernel_device if backend == "triton" else "cpu"
        out, ox, oy, ot = ours_and_grads(x.to(dev), y.to(dev), t.to(dev), w, backend=backend,
                                         **{k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in kw.items()})
        assert rel_err(out.cpu(), ref) <= 1e-4
        assert rel_err(oy.cpu(), gy) <= 1e-4 and rel_err(ox.cpu(), gx) <= 1e-4 and rel_err(ot.cpu(), gt) <= 1e-4


def test_poisoned_buffers(monkeypatch, kernel_device):
    """Every buffer the op allocates starts as NaN: an element a kernel fails to write shows up."""
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def nan_empty(*a, **k):
        out = real_empty(*a, **k)
        return out.fill_(float("nan")) if out.dtype.is_floating_point else out

    def nan_empty_like(*a, **k):
        out = real_empty_like(*a, **k)
        return out.fill_(float("nan")) if out.dtype.is_floating_point else out

    x, y, t, xg, yg = make_inputs(seed=19, device=kernel_device)
    monkeypatch.setattr(torch, "empty", nan_empty)
    monkeypatch.setattr(torch, "empty_like", nan_empty_like)
    for kw in ({}, dict(x_groups=xg, y_groups=yg, num_groups=G)):
        xf, yf, tf = (v.clone().requires_grad_() for v in (x, y, t))
        out = ncfd_loss(xf, yf, tf, reduction="sum", backend="triton", **kw)
        out.backward()
        for v in (out, xf.grad, yf.grad, tf.grad):
            assert torch.isfinite(v).all()


def test_default_frequencies_are_seeded():
    x, y, _, _, _ = make_inputs(seed=23)
    a = ncfd_loss(x, y, num_freqs=64, generator=torch.Generator().manual_seed(1))
    b = ncfd_loss(x, y, num_freqs=64, generator=torch.Generator().manual_seed(1))
    c = ncfd_loss(x, y, num_freqs=64, generator=torch.Generator().manual_seed(2))
    t = irkernels.sample_frequencies(64, D, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, ncfd_loss(x, y, t))


def test_identical_sets_give_floor():
    """Same set on both sides: Chf = 0 up to rounding, so the loss sits at sqrt(eps). In float64;
    in float32 the phase term's cancellation leaves ~1e-5."""
    x, _, t, _, _ = make_inputs(seed=29, dtype=torch.float64)
    loss = ncfd_loss(x, x.clone(), t, eps=1e-12)
    assert loss.item() == pytest.approx(math.sqrt(1e-12), rel=1e-3)


def test_bad_inputs():
    x, y, t, xg, yg = make_inputs(seed=31)
    with pytest.raises(ValueError, match="feature dimension"):
        ncfd_loss(x, y[:, :5], t)
    with pytest.raises(ValueError, match="feature dimension"):
        ncfd_loss(x, y, t[:, :5])
    with pytest.raises(ValueError, match="one device"):
        ncfd_loss(x, y.to("meta"), t)
    with pytest.raises(TypeError, match="x must be float"):
        ncfd_loss(x.long(), y, t)
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        ncfd_loss(x, y.numpy(), t)
    with pytest.raises(ValueError, match="y must be 2-D"):
        ncfd_loss(x, y[None], t)
    bad = y.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN or Inf"):
        ncfd_loss(x, bad, t)
    bad_t = t.clone()
    bad_t[0, 0] = float("inf")
    with pytest.raises(ValueError, match="t contains NaN or Inf"):
        ncfd_loss(x, y, bad_t)
    with pytest.raises(ValueError, match=r"y_groups values must lie in \[0, 3\)"):
        ncfd_loss(x, y, t, x_groups=xg.clamp(max=2), y_groups=yg + 1, num_groups=3)
    with pytest.raises(ValueError, match="x_groups values must lie"):
        ncfd_loss(x, y, t, x_groups=xg - 1, y_groups=yg)
    with pytest.raises(TypeError, match="x_groups must be an integer tensor"):
        ncfd_loss(x, y, t, x_groups=xg.float(), y_groups=yg)
    with pytest.raises(ValueError, match="y_groups must have shape"):
        ncfd_loss(x, y, t, x_groups=xg, y_groups=yg[:-1])
    with pytest.raises(ValueError, match="given together"):
        ncfd_loss(x, y, t, x_groups=xg)
    with pytest.raises(ValueError, match="precision"):
        ncfd_loss(x, y, t, precision="medium")
    with pytest.raises(ValueError, match="backend"):
        ncfd_loss(x, y, t, backend="cuda")
    with pytest.raises(ValueError, match="alpha"):
        ncfd_loss(x, y, t, alpha=1.5)
    with pytest.raises(ValueError, match="reduction"):
        ncfd_loss(x, y, t, reduction="avg")
    with pytest.raises(ValueError, match="at least one row"):
        ncfd_loss(x[:0], y, t)
    sx = cf_stats(x, t)
    with pytest.raises(ValueError, match="t is required"):
        ncfd_loss(sx, y)
    with pytest.raises(ValueError, match="frequencies"):
        ncfd_loss(sx, y, t[:-1])
    with pytest.raises(ValueError, match="y_groups is required"):
        ncfd_loss(cf_stats(x, t, xg, G), y, t)


def test_triton_needs_cuda_or_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, y, t, _, _ = make_inputs(seed=37)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        ncfd_loss(x, y, t, backend="triton")
    monkeypatch.setenv("IRKERNELS_BACKEND", "torch")
    assert irkernels.backend_report()["cuda_tensors"] == "torch"


# ---------------------------------------------------------------- fast mode under TF32 rounding
def _big_cpu_tiles(monkeypatch):
    """Interpreter cost is per tile operation: large tiles keep the D=128 tests to seconds (the
    sizes stay odd, so edges are still masked)."""
    monkeypatch.setattr(ncfd, "_block_sizes", lambda D, precision, device: dict(
        fwd=(64, 64, 128, 4, 1), bwd=(64, 64, 128, 4, 1), bwd_t=(64, 64, 128, 4, 1)))


@pytest.mark.parametrize("rounding", [1, 2], ids=["nearest", "truncate"])
@pytest.mark.parametrize("freq_std", ["unit", "pipeline"])
def test_fast_mode_bound_under_emulated_tf32(rounding, freq_std, monkeypatch, kernel_device):
    """Unit-variance features at D=128 with the default N(0, I) frequencies (|θ| up to ~60) and
    with them scaled by 1/√D as the pipelines do (|θ| ~ 1): the fast mode, its TF32 operand
    rounding emulated in the interpreter, stays within the documented 2e-3 of float64 for the
    loss and all three gradients. A plain TF32 phase dot does not (the reason for 3×TF32 there)."""
    if kernel_device.type == "cuda":
        pytest.skip("emulation is for the interpreter; on CUDA the hardware rounds")
    _big_cpu_tiles(monkeypatch)
    monkeypatch.setattr(ncfd, "_EMULATE_TF32", rounding)
    gen = torch.Generator().manual_seed(41 + rounding)
    n, m, tt, d = 383, 97, 61, 128
    x, y = torch.randn(n, d, generator=gen), torch.randn(m, d, generator=gen)
    t = torch.randn(tt, d, generator=gen) * (1.0 if freq_std == "unit" else d ** -0.5)
    ref, gx, gy, gt, w = reference_and_grads(x, y, t)
    out, ox, oy, ot = ours_and_grads(x, y, t, w, backend="triton", precision="fast")
    errors = [rel_err(a, b) for a, b in ((out, ref), (ox, gx), (oy, gy), (ot, gt))]
    assert max(errors) <= 2e-3, errors
    if freq_std == "unit":
        monkeypatch.setattr(ncfd, "_dot_precisions", lambda precision: ("tf32", "tf32"))
        out, ox, oy, ot = ours_and_grads(x, y, t, w, backend="triton", precision="fast")
        assert rel_err(oy, gy) > 2e-3  # the emulation bites: one TF32 phase dot is not enough


def test_range_reduction_holds_for_large_phases():
    """The fast mode's Cody-Waite reduction (then sin/cos on [-π, π]) is accurate far beyond the
    phases the default frequencies give (|θ| ≲ 100 for unit features at D=128): |θ| up to 1e4."""
    triton, tl = ncfd.triton, ncfd.tl

    @triton.jit
    def sincos_kernel(TH, C, S, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        c, s = ncfd._sincos(tl.load(TH + offs, mask=mask, other=0.0), True, False)
        tl.store(C + offs, c, mask=mask)
        tl.store(S + offs, s, mask=mask)

    gen = torch.Generator().manual_seed(43)
    theta = torch.cat([torch.empty(3000).uniform_(-1e4, 1e4, generator=gen),
                       torch.randn(1000, generator=gen) * 60.0])
    c, s = torch.empty_like(theta), torch.empty_like(theta)
    sincos_kernel[(triton.cdiv(theta.numel(), 512),)](theta, c, s, theta.numel(), BLOCK=512)
    exact = theta.double()
    assert (c.double() - torch.cos(exact)).abs().max() <= 1e-6
    assert (s.double() - torch.sin(exact)).abs().max() <= 1e-6


# ---------------------------------------------------------------- grouped cost
def _count_cos(monkeypatch) -> list[int]:
    """Counts the elements of every ``tl.cos`` the interpreter evaluates (masked lanes included)."""
    from triton.runtime import interpreter

    counter = [0]
    original = interpreter.InterpreterBuilder.create_cos

    def counting(self, arg):
        counter[0] += arg.data.size
        return original(self, arg)

    monkeypatch.setattr(interpreter.InterpreterBuilder, "create_cos", counting)
    return counter


def test_grouped_sincos_work_is_independent_of_group_count(monkeypatch, kernel_device):
    """Forward: every (sample, frequency) pair's sin/cos once, whatever G (the old kernel
    re-evaluated them once per block of groups); backward: the same count for every G."""
    if kernel_device.type == "cuda":
        pytest.skip("counts the interpreter's work")
    counter = _count_cos(monkeypatch)
    # the interpreter's default forward tiles; larger backward row tiles only for speed
    monkeypatch.setattr(ncfd, "_block_sizes", lambda D, precision, device: dict(
        fwd=(32, 32, 16, 4, 1), bwd=(128, 32, 16, 4, 1), bwd_t=(128, 32, 16, 4, 1)))
    gen = torch.Generator().manual_seed(47)
    n, tt, d = 1601, 32, 8
    x = (torch.randn(n, d, generator=gen) * 0.5).requires_grad_()
    t = torch.randn(tt, d, generator=gen)
    fwd, bwd = {}, {}
    for groups in (1, 150):
        gid = torch.randint(0, groups, (n,), generator=gen)
        counter[0] = 0
        s = cf_stats(x, t, gid if groups > 1 else None, groups if groups > 1 else None, backend="triton")
        fwd[groups] = counter[0]
        counter[0] = 0
        (s.re.sum() + s.im.sum()).backward()
        bwd[groups] = counter[0]
    assert fwd[1] >= n * tt  # every pair at least once
    assert fwd[150] <= 1.3 * fwd[1], fwd  # only partial tiles at group-block edges on top
    assert bwd[150] == bwd[1], bwd


# ---------------------------------------------------------------- host syncs, compile, defaults
_SYNCING_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "bincount", "unique", "_unique", "_unique2",
                "unique_consecutive", "unique_dim", "repeat_interleave", "argwhere", "item"}


class _SyncRecorder(TorchDispatchMode):
    """Records aten ops that read data back to the host (or size outputs from data), also inside
    the irkernels custom ops (their Python implementation runs under the recorder)."""

    def __init__(self):
        super().__init__()
        self.syncs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        from torch._library.custom_ops import _maybe_get_opdef

        kwargs = kwargs or {}
        if func.overloadpacket.__name__ in _SYNCING_OPS:
            self.syncs.append(str(func))
        opdef = _maybe_get_opdef(func) if func.namespace == "irkernels" else None
        if opdef is not None:
            with self:
                return opdef._init_fn(*args, **kwargs)
        return func(*args, **kwargs)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_grouped_call_without_value_checks_makes_no_host_sync(backend, monkeypatch, kernel_device):
    device = kernel_device if backend == "triton" else "cpu"
    x, y, t, xg, yg = make_inputs(seed=53, device=device)
    x, t = x.requires_grad_(), t.requires_grad_()
    y = y.requires_grad_()

    def run():
        ncfd_loss(x, y, t, x_groups=xg, y_groups=yg, num_groups=G, backend=backend).backward()

    if backend == "torch":
        with _SyncRecorder() as rec:  # the detector sees the value checks' syncs
            run()
        assert rec.syncs
    python_syncs = []
    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _n=name, _f=original, **k: (
            python_syncs.append(_n), _f(self, *a, **k))[1])
    with irkernels.value_checks(False), _SyncRecorder() as rec:
        run()
    assert rec.syncs == [] and python_syncs == []
    with irkernels.value_checks(False), pytest.raises(ValueError, match="num_groups is required"):
        ncfd_loss(x, y, t, x_groups=xg, y_groups=yg, backend=backend)
    with irkernels.value_checks(False), pytest.raises(ValueError, match="num_groups is required"):
        cf_stats(x, t, xg, backend=backend)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_compile_fullgraph_forward_backward(backend, kernel_device):
    """torch.compile(fullgraph=True) of a user step calling cf_stats and ncfd_loss traces through
    the irkernels custom ops (no graph break) and gives the eager loss and gradients."""
    device = kernel_device if backend == "triton" else "cpu"
    x, y, t, xg, yg = make_inputs(seed=59, device=device)

    def step(x, y, t):
        sx = cf_stats(x, t, xg, G, backend=backend)
        return ncfd_loss(sx, y, t, y_groups=yg, backend=backend, reduction="none").sum()

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    results = []
    for fn in (step, compiled):
        xs, ys, ts = (v.detach().clone().requires_grad_() for v in (x, y, t))
        out = fn(xs, ys, ts)
        out.backward()
        results.append((out.detach(), xs.grad, ys.grad, ts.grad))
    for eager, comp in zip(*results):
        assert torch.allclose(eager, comp, rtol=1e-5, atol=1e-7)


def test_custom_op_registrations():
    """torch.library.opcheck: schema, fake (shapes under FakeTensor), autograd registration and
    AOT dispatch of both custom ops agree with the real implementations (the registrations do not
    depend on the backend; the Triton one is traced in test_compile_fullgraph_forward_backward)."""
    backend, device = "torch", "cpu"
    x, _, t, xg, _ = make_inputs(seed=73, device=device)
    xg = xg.to(torch.int32)
    x, t = x.requires_grad_(), t.requires_grad_()
    for groups, num in ((xg, G), (None, 1)):
        torch.library.opcheck(torch.ops.irkernels.cf_sums.default, (x, t, groups, num, "fast", backend))
    grad = torch.randn(2, G, T, device=device)
    torch.library.opcheck(torch.ops.irkernels.cf_sums_backward.default,
                          (x.detach(), t.detach(), xg, grad, True, False, "fast", backend))


def test_compile_inductor_default_backend():
    x, y, t, xg, yg = make_inputs(seed=61)

    def step(y):
        return ncfd_loss(x, y, t, x_groups=xg, y_groups=yg, num_groups=G, backend="torch", reduction="sum")

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True)
    ye, yc = y.clone().requires_grad_(), y.clone().requires_grad_()
    le, lc = step(ye), compiled(yc)
    le.backward()
    lc.backward()
    assert torch.allclose(le, lc, rtol=1e-5) and torch.allclose(ye.grad, yc.grad, rtol=1e-4, atol=1e-7)


def test_default_frequencies_do_not_use_the_global_rng():
    state = torch.get_rng_state()
    torch.manual_seed(1)
    a = irkernels.sample_frequencies(32, D)
    torch.manual_seed(2)
    b = irkernels.sample_frequencies(32, D)
    assert torch.equal(a, b)
    assert torch.equal(a, torch.randn(32, D, generator=torch.Generator().manual_seed(ncfd.DEFAULT_FREQUENCY_SEED)))
    torch.manual_seed(3)
    before = torch.get_rng_state()
    x, y, _, _, _ = make_inputs(seed=67)
    ncfd_loss(x, y, num_freqs=32)
    assert torch.equal(torch.get_rng_state(), before)
    torch.set_rng_state(state)


# ---------------------------------------------------------------- GPU only (run on the H100)
@pytest.mark.cuda
@pytest.mark.parametrize("precision,bound", [("highest", 1e-4), ("high", 1e-4), ("fast", 2e-3)])
@pytest.mark.parametrize("feature_std", [0.1, 1.0])
def test_cuda_precision_modes(precision, bound, feature_std):
    """Unit-variance features with N(0, I) frequencies give |θ| up to ~60 at D=128: the case where
    a plain TF32 phase dot misses the fast bound (std 0.1 would not show it)."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    n, m, tt, d = 20_000, 2_000, 1024, 128
    x = torch.randn(n, d, device="cuda", generator=gen) * feature_std
    y = torch.randn(m, d, device="cuda", generator=gen) * feature_std + 0.01
    t = torch.randn(tt, d, device="cuda", generator=gen)
    ref, gx, gy, gt, w = reference_and_grads(x, y, t)
    out, ox, oy, ot = ours_and_grads(x, y, t, w, precision=precision)
    assert rel_err(out.cpu(), ref) <= bound
    assert rel_err(ox.cpu(), gx) <= bound
    assert rel_err(oy.cpu(), gy) <= bound
    assert rel_err(ot.cpu(), gt) <= bound


@pytest.mark.cuda
def test_cuda_peak_memory_is_bounded():
    n, m, tt, d = 262_144, 26_214, 4096, 128
    x = torch.randn(n, d, device="cuda") * 0.1
    y = (torch.randn(m, d, device="cuda") * 0.1).requires_grad_()
    t = torch.randn(tt, d, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    ncfd_loss(x, y, t).backward()
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    assert extra <= 64 * 2**20, f"peak extra memory {extra / 2**20:.1f} MiB"


@pytest.mark.cuda
def test_cuda_grouped_call_without_value_checks_makes_no_host_sync():
    x, y, t, xg, yg = make_inputs(seed=71, device="cuda")
    y.requires_grad_()
    ncfd_loss(x, y, t, x_groups=xg, y_groups=yg, num_groups=G).backward()  # warm-up: kernel compiles
    y.grad = None
    torch.cuda.synchronize()
    with irkernels.value_checks(False):
        torch.cuda.set_sync_debug_mode("error")
        try:
            ncfd_loss(x, y, t, x_groups=xg, y_groups=yg, num_groups=G).backward()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(y.grad).all()


def test_small_discrepancy_is_computed_without_cancellation():
    """Two sets 1e-4 apart: Chf ~ 1e-12, against terms ~ 1. ``ncfd_from_stats`` (float32 stats)
    takes the squares of differences first and lands within 1e-3 of float64; the direct form of
    the phase term, 2(|Φx||Φy| − cross) in float32, is off by more than 10× (measured: 2e-4 and
    31×), which is why the rearranged form is the one computed."""
    from irkernels.ops.ncfd import _modulus

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 8, generator=g)
    y = x + 1e-4 * torch.randn(4000, 8, generator=g)
    t = torch.randn(64, 8, generator=g) / 8 ** 0.5
    ref = float(ncfd_loss_reference(x.double(), y.double(), t.double()))
    sx, sy = cf_stats(x, t, backend="torch"), cf_stats(y, t, backend="torch")
    assert sx.re.dtype == torch.float32
    assert abs(float(ncfd_from_stats(sx, sy)) / ref - 1) < 1e-3
    mx, my = _modulus(sx.re, sx.im), _modulus(sy.re, sy.im)
    direct = torch.sqrt((0.5 * (mx - my) ** 2 + (mx * my - sx.re * sy.re - sx.im * sy.im)).clamp(min=1e-12)).mean()
    assert float(direct) / ref > 10


def test_tiles_follow_the_shared_environment_hook(monkeypatch):
    """``IRKERNELS_NCFD_TILES`` replaces a kernel's tiles as ``IRKERNELS_<OP>_TILES`` does for every op."""
    base = ncfd._block_sizes(8, "highest", torch.device("cpu"))
    monkeypatch.setenv("IRKERNELS_NCFD_TILES", '{"fwd": [16, 16, 16, 2, 1]}')
    tiles = ncfd._block_sizes(8, "highest", torch.device("cpu"))
    assert tiles["fwd"] == (16, 16, 16, 2, 1) and tiles["bwd"] == base["bwd"]
    monkeypatch.setenv("IRKERNELS_NCFD_TILES", '{"fwd": [16, 16]}')
    with pytest.raises(ValueError, match="IRKERNELS_NCFD_TILES"):
        ncfd._block_sizes(8, "highest", torch.device("cpu"))
    monkeypatch.setenv("IRKERNELS_NCFD_TILES", '{"fwd_m": 64}')
    with pytest.raises(ValueError, match="unknown tiles"):
        ncfd._block_sizes(8, "highest", torch.device("cpu"))
