"""RLFF: filter bank definition, Triton (interpreter on CPU) and torch paths against an independent
float64 oracle (unfold + FFT bank + explicit patch gather), gradients, row sampling, the module,
bad input, and an sm_90 compile of the kernels."""
import math

import pytest
import torch
import torch.nn.functional as F

from irkernels.ops._backend import interpreter_active
from irkernels.ops import rlff as rlff_mod
from irkernels.ops.rlff import RLFF, dft_filter_bank, reference_stats, rlff, rlff_reference, sample_rows, sampled_filters

from sm90 import compile_sm90  # tests/ is on sys.path (pytest rootdir-relative import)
from sm90_launches import rlff_specs

HAS_CUDA = torch.cuda.is_available()


@pytest.fixture(autouse=True)
def poison_kernel_buffers(monkeypatch):
    """Every buffer the kernels write starts as NaN, so an element they fail to write shows up."""
    def empty(shape, dtype, device):
        return torch.full(shape, math.nan, dtype=dtype, device=device)

    def empty_like(t, dtype=None):
        return torch.full_like(t, math.nan, dtype=dtype)

    monkeypatch.setattr(rlff_mod, "_empty", empty)
    monkeypatch.setattr(rlff_mod, "_empty_like", empty_like)


def fft_bank(c: int, k: int) -> torch.Tensor:
    """``[Re(DFT(E)), -Im(DFT(E))]`` straight from the definition (float64, ``(2C', C')``)."""
    c_prime = c * k * k
    spectrum = torch.fft.fft(torch.eye(c_prime, dtype=torch.float64), dim=0)
    return torch.cat([spectrum.real, -spectrum.imag])


def oracle(f: torch.Tensor, rows: torch.Tensor, k: int, p: int, stats=None) -> torch.Tensor:
    """RLFF in float64 by a different route than the package: im2col via ``F.unfold``, the FFT
    bank, a matmul, and an explicit gather of every (patch, dy, dx) position."""
    x = f.double()
    n, c, h, w = x.shape
    if stats is None:
        count = n * h * w
        mean = x.sum(dim=(0, 2, 3)) / count
        var = ((x - mean[:, None, None]) ** 2).sum(dim=(0, 2, 3)) / count
        std = torch.sqrt(var + 1e-5)
    else:
        mean, std = (s.double() for s in stats)
    x = (x - mean[:, None, None]) / std[:, None, None]
    cols = F.unfold(x, k, padding=k // 2)  # (n, c·k·k, h·w), q = (ch, ky, kx) row-major
    feat = (fft_bank(c, k)[rows] @ cols).reshape(n, len(rows), h, w)
    hp, wp = -(-h // p), -(-w // p)
    m = torch.arange(n * hp * wp * p * p)
    patch, pos = m // (p * p), m % (p * p)
    img, py, px = patch // (hp * wp), (patch % (hp * wp)) // wp, patch % wp
    y, xx = py * p + pos // p, px * p + pos % p
    inside = (y < h) & (xx < w)
    gathered = feat[img, :, y.clamp(max=h - 1), xx.clamp(max=w - 1)]  # (M, C_out)
    out = torch.where(inside[:, None], gathered, torch.zeros((), dtype=torch.float64))
    return out.reshape(n * hp * wp, p * p, len(rows))


def random_features(shape, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(shape[1], 1, 1, generator=g, dtype=torch.float64) * 2 + 0.5
    shift = torch.randn(shape[1], 1, 1, generator=g, dtype=torch.float64)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype).to(device)


def tolerance(dtype: torch.dtype, device: torch.device) -> float:
    """Allowed max error relative to the output's largest magnitude."""
    if dtype == torch.float64:
        return 1e-10
    if dtype == torch.float32:
        # GPU: TF32 dots on f itself (normalisation folded into the filters), see the offset test
        return 1e-2 if device.type == "cuda" else 2e-5
    return 2e-2


def assert_close_rel(actual, expected, rel):
    err = (actual.double() - expected).abs().max().item()
    scale = expected.abs().max().item()
    assert err <= rel * scale, f"max error {err:.3g} > {rel:g} × {scale:.3g}"


# (n, c, h, w, k, p, C_out): odd sizes, h/w not multiples of p, k ∈ {1, 3, 5}, a case with several
# channel / C_out blocks at the interpreter's tile sizes (16); w=19 spans two column tiles of the
# per-plane kernels.
CASES = [
    (2, 3, 7, 10, 3, 3, 20),
    (1, 5, 11, 9, 5, 4, 24),
    (3, 2, 5, 19, 1, 2, 4),
    (1, 17, 5, 6, 3, 5, 40),
]


def run_fwd_bwd(case, backend, stats_mode, dtype, device, channels_last=False):
    n, c, h, w, k, p, c_out = case
    f = random_features((n, c, h, w), dtype, device, seed=sum(case))
    if channels_last:
        f = f.to(memory_format=torch.channels_last)
    f.requires_grad_(True)
    rows = sample_rows(c, k, c_out, seed=7, device=device)
    stats = None
    if stats_mode == "reference":
        stats = reference_stats(random_features((3, c, 6, 5), torch.float64, device, seed=99), backend="torch")
    out = rlff(f, kernel_size=k, out_channels=c_out, patch_size=p, rows=rows, stats=stats, backend=backend)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out.backward(grad_out.to(device, dtype))
    f64 = f.detach().double().requires_grad_(True)
    expected = oracle(f64, rows.cpu(), k, p, None if stats is None else tuple(s.cpu() for s in stats))
    expected.backward(grad_out)
    return out, f.grad, expected, f64.grad


@pytest.mark.parametrize("stats_mode", ["batch", "reference"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "n{}c{}h{}w{}k{}p{}o{}".format(*c))
def test_triton_matches_oracle(case, stats_mode, kernel_device):
    out, grad, expected, expected_grad = run_fwd_bwd(case, "triton", stats_mode, torch.float32, kernel_device)
    assert out.shape == expected.shape and out.dtype == torch.float32
    assert_close_rel(out.cpu(), expected, tolerance(torch.float32, kernel_device))
    assert_close_rel(grad.cpu(), expected_grad, tolerance(torch.float32, kernel_device))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.float64, 1e-10)], ids=["fp32", "fp64"])
@pytest.mark.parametrize("stats_mode", ["batch", "reference"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "n{}c{}h{}w{}k{}p{}o{}".format(*c))
def test_torch_path_matches_oracle(case, stats_mode, dtype, tol):
    """The torch path's written-out backward (unfold adjoint, convolution input gradient,
    BatchNorm's backward) against autograd through the float64 oracle, odd sizes included."""
    out, grad, expected, expected_grad = run_fwd_bwd(case, "torch", stats_mode, dtype, torch.device("cpu"))
    assert_close_rel(out, expected, tol)
    assert_close_rel(grad, expected_grad, tol)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
@pytest.mark.parametrize("stats_mode", ["batch", "reference"])
def test_triton_other_dtypes(dtype, stats_mode, kernel_device):
    """fp64 runs exactly; fp16 multiplies in fp16 with fp32 accumulation (and an fp32 dL/dx̂ buffer
    for batch stats). bf16 is checked on the GPU only: the interpreter's tl.dot treats bf16 as
    raw uint16."""
    out, grad, expected, expected_grad = run_fwd_bwd(CASES[0], "triton", stats_mode, dtype, kernel_device)
    assert out.dtype == dtype and grad.dtype == dtype
    assert_close_rel(out.cpu(), expected, tolerance(dtype, kernel_device))
    assert_close_rel(grad.cpu(), expected_grad, tolerance(dtype, kernel_device))


@pytest.mark.parametrize("case", [(1, 2, 1, 3, 5, 1, 7), (2, 1, 2, 2, 3, 2, 3)], ids=["h1-k5-p1", "c1-2x2"])
def test_triton_degenerate_maps(case, kernel_device):
    """Maps smaller than the kernel, p=1, a single channel (fp64: exact comparison)."""
    for stats_mode in ("batch", "reference"):
        out, grad, expected, expected_grad = run_fwd_bwd(case, "triton", stats_mode, torch.float64, kernel_device)
        assert_close_rel(out.cpu(), expected, 1e-10)
        assert_close_rel(grad.cpu(), expected_grad, 1e-10)


def test_triton_channels_last_input(kernel_device):
    """Strided (channels-last) f is read in place, no copy; gradient keeps f's layout."""
    out, grad, expected, expected_grad = run_fwd_bwd(CASES[1], "triton", "batch", torch.float32, kernel_device,
                                                     channels_last=True)
    assert_close_rel(out.cpu(), expected, tolerance(torch.float32, kernel_device))
    assert_close_rel(grad.cpu(), expected_grad, tolerance(torch.float32, kernel_device))


@pytest.mark.parametrize("stats_mode", ["batch", "reference"])
def test_gradcheck_torch_path(stats_mode):
    f = random_features((2, 2, 4, 5), torch.float64, seed=3).requires_grad_(True)
    rows = sample_rows(2, 3, 6, seed=0)
    stats = None if stats_mode == "batch" else reference_stats(random_features((2, 2, 4, 4), torch.float64, seed=4))
    assert torch.autograd.gradcheck(
        lambda x: rlff(x, out_channels=6, patch_size=2, rows=rows, stats=stats, backend="torch"), (f,))


@pytest.mark.parametrize("c,k", [(1, 1), (2, 3), (3, 5)])
def test_filter_bank_is_dft_of_identity(c, k):
    bank = dft_filter_bank(c, k, dtype=torch.float64)
    assert bank.shape == (2 * c * k * k, c, k, k)
    torch.testing.assert_close(bank.reshape(2 * c * k * k, -1), fft_bank(c, k), rtol=0, atol=1e-12)
    rows = torch.tensor([0, 5, c * k * k, 2 * c * k * k - 1]) % (2 * c * k * k)
    torch.testing.assert_close(sampled_filters(rows, c, k, torch.float64), bank[rows], rtol=0, atol=0)
    assert dft_filter_bank(c, k).dtype == torch.float32


def test_sample_rows_deterministic_and_distinct():
    a = sample_rows(4, 3, 50, seed=123)
    assert torch.equal(a, sample_rows(4, 3, 50, seed=123))
    assert not torch.equal(a, sample_rows(4, 3, 50, seed=124))
    assert a.dtype == torch.long and a.shape == (50,)
    assert len(torch.unique(a)) == 50 and int(a.min()) >= 0 and int(a.max()) < 72
    assert torch.equal(a, a.sort().values)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(sample_rows(4, 3, 50, generator=g1), sample_rows(4, 3, 50, generator=g2))
    # the seed path of rlff draws exactly these rows
    f = random_features((1, 4, 6, 6))
    torch.testing.assert_close(rlff(f, out_channels=50, seed=123, backend="torch"),
                               rlff(f, out_channels=50, rows=a, backend="torch"), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_reference_stats(dtype, kernel_device):
    f = random_features((3, 4, 7, 21), dtype, kernel_device, seed=11)  # 2 column tiles in the interpreter
    mean, std = reference_stats(f, backend="triton")
    x = f.double().cpu()
    torch.testing.assert_close(mean.double().cpu(), x.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(std.double().cpu(), torch.sqrt(x.var(dim=(0, 2, 3), unbiased=False) + 1e-5),
                               rtol=1e-5, atol=1e-6)
    assert mean.dtype == std.dtype == torch.float32
    if dtype == torch.float32:  # given batch stats = the batch's own, in value
        rows = sample_rows(4, 3, 10, seed=1, device=kernel_device)
        torch.testing.assert_close(rlff(f, out_channels=10, rows=rows, stats=(mean, std), backend="triton"),
                                   rlff(f, out_channels=10, rows=rows, backend="triton"), rtol=1e-4, atol=1e-5)


def test_module_rows_descriptors_and_state(kernel_device):
    module = RLFF(3, out_channels=12, patch_size=3, seed=42).to(kernel_device)
    twin = RLFF(3, out_channels=12, patch_size=3, seed=42).to(kernel_device)
    assert torch.equal(module.rows, twin.rows)
    first = module.rows.clone()
    assert not torch.equal(module.resample(), first)
    assert torch.equal(twin.resample(), module.rows)

    real = random_features((4, 3, 8, 7), device=kernel_device, seed=1)
    syn = random_features((2, 3, 8, 7), device=kernel_device, seed=2).requires_grad_(True)
    module.set_reference(real)
    samples, descriptors = module(syn)
    assert samples.shape == (2 * 3 * 3, 9, 12) and descriptors.shape == (18, 12)
    torch.testing.assert_close(descriptors, samples.mean(dim=1), rtol=0, atol=0)
    expected = oracle(syn.detach(), module.rows.cpu(), 3, 3, (module.ref_mean.cpu(), module.ref_std.cpu()))
    assert_close_rel(samples.detach().cpu(), expected, tolerance(torch.float32, kernel_device))
    # real and synthetic at one step share the rows: same call on the real batch = oracle with them
    real_samples, _ = module(real)
    assert_close_rel(real_samples.cpu(), oracle(real.cpu(), module.rows.cpu(), 3, 3,
                                                (module.ref_mean.cpu(), module.ref_std.cpu())),
                     tolerance(torch.float32, kernel_device))

    # the descriptors' gradient arrives expanded (stride 0 over p·p): the kernel reads it in place
    weights = torch.randn(descriptors.shape, generator=torch.Generator().manual_seed(3)).to(kernel_device)
    (descriptors * weights).sum().backward()
    syn64 = syn.detach().double().cpu().requires_grad_(True)
    ref = oracle(syn64, module.rows.cpu(), 3, 3, (module.ref_mean.cpu(), module.ref_std.cpu()))
    (ref.mean(dim=1) * weights.double().cpu()).sum().backward()
    assert_close_rel(syn.grad.cpu(), syn64.grad, tolerance(torch.float32, kernel_device))

    restored = RLFF(3, out_channels=12, patch_size=3, seed=0).to(kernel_device)
    restored.load_state_dict(module.state_dict())
    assert torch.equal(restored.rows, module.rows) and torch.equal(restored.ref_std, module.ref_std)
    assert torch.equal(restored.resample(), module.resample())


def test_module_without_reference_uses_batch_stats():
    module = RLFF(2, kernel_size=1, out_channels=3, patch_size=2, seed=0, backend="torch")
    f = random_features((2, 2, 4, 4))
    samples, _ = module(f)
    assert_close_rel(samples, oracle(f, module.rows, 1, 2), 2e-5)
    assert "reference=batch" in repr(module)


F_OK = random_features((2, 3, 6, 6))
BAD_INPUTS = [
    (dict(f=F_OK[0]), ValueError, "f must be 4-D"),
    (dict(f=F_OK.long()), TypeError, "f must be float"),
    (dict(f=[1.0]), TypeError, "f must be a torch.Tensor"),
    (dict(out_channels=55), ValueError, "out_channels must be an int in \\[1, 2·c·k² = 54\\]"),
    (dict(out_channels=0), ValueError, "out_channels"),
    (dict(patch_size=7), ValueError, "patch_size \\(7\\) must not exceed"),
    (dict(patch_size=0), ValueError, "patch_size must be a positive int"),
    (dict(kernel_size=2), ValueError, "kernel_size must be a positive odd int"),
    (dict(kernel_size=0), ValueError, "kernel_size"),
    (dict(f=F_OK.clone().index_put_((torch.tensor([0]),), torch.tensor(math.nan))), ValueError, "f contains NaN"),
    (dict(f=F_OK.clone().index_put_((torch.tensor([1]),), torch.tensor(math.inf))), ValueError, "f contains NaN or Inf"),
    (dict(rows=torch.tensor([0, 54])), ValueError, "rows values must lie in \\[0, 54\\)"),
    (dict(rows=torch.tensor([0.0, 1.0])), TypeError, "rows must be an integer tensor"),
    (dict(rows=torch.tensor([0, 1, 2])), ValueError, "rows must have shape \\(2,\\)"),
    (dict(rows=torch.tensor([0, 1]), seed=1), ValueError, "rows or seed"),
    (dict(stats=(torch.zeros(2), torch.ones(3))), ValueError, "stats\\[0\\] \\(mean\\) must have shape \\(3,\\)"),
    (dict(stats=(torch.zeros(3), torch.tensor([1.0, 0.0, 1.0]))), ValueError, "std\\) must be > 0 in every"),
    (dict(f=F_OK.half(), stats=(torch.zeros(3), torch.full((3,), 1e-5))), ValueError, "float16 f"),
    (dict(stats=(torch.zeros(3), torch.ones(3, dtype=torch.long))), TypeError, "stats\\[1\\] \\(std\\) must be float"),
    (dict(stats=torch.zeros(3)), TypeError, "stats must be a \\(mean, std\\) pair"),
    (dict(backend="cuda"), ValueError, "backend must be one of"),
    (dict(precision="tf32"), ValueError, "precision must be one of"),
]


@pytest.mark.parametrize("kwargs,exc,match", BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_inputs(kwargs, exc, match):
    args = dict(f=F_OK, out_channels=2, patch_size=2, backend="torch") | kwargs
    with pytest.raises(exc, match=match):
        rlff(args.pop("f"), **args)


def test_bad_geometry_elsewhere():
    with pytest.raises(ValueError, match="out_channels"):
        sample_rows(1, 1, 3)
    with pytest.raises(ValueError, match="seed or generator"):
        sample_rows(1, 3, 3, seed=0, generator=torch.Generator())
    with pytest.raises(ValueError, match="kernel_size"):
        dft_filter_bank(2, 4)
    with pytest.raises(ValueError, match="f must have 3 channels"):
        RLFF(3, out_channels=4).set_reference(torch.randn(1, 2, 4, 4))


def test_torch_path_is_the_reference():
    """``rlff(backend="torch")`` is exactly ``rlff_reference``; bf16 input gives a bf16 output."""
    f = random_features((1, 2, 5, 5), torch.bfloat16)
    rows = sample_rows(2, 3, 8, seed=0)
    out = rlff(f, out_channels=8, rows=rows, backend="torch")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, rlff_reference(f, rows, 3, 4), rtol=0, atol=0)


@pytest.mark.sm90
def test_kernels_compile_for_sm90():
    """The CUDA launches of the issue's shape lower to sm_90 code: GEMMs on wgmma tensor cores, no
    register spills and no serialised wgmma pipeline (from the log of Triton's own ptxas run)."""
    specs = rlff_specs()
    results = compile_sm90(specs)
    assert [r["kernel"] for r in results] == [s["kernel"] for s in specs]
    for spec, result in zip(specs, results):
        name = f"{result['kernel']} {spec['signature']['f_ptr'] if 'f_ptr' in spec['signature'] else ''}"
        if result["kernel"] in ("_rlff_fwd_kernel", "_rlff_bwd_kernel"):
            assert "wgmma.mma_async" in result["ptx"], name
        assert result["spill_bytes"] == 0, f"{name}: {result['ptxas_log']}"
        assert "C7515" not in result["ptxas_log"], f"{name}: wgmma serialised: {result['ptxas_log']}"


@pytest.mark.cuda
@pytest.mark.parametrize("stats_mode", ["batch", "reference"])
def test_cuda_bf16_matches_oracle(stats_mode):
    out, grad, expected, expected_grad = run_fwd_bwd(CASES[1], "triton", stats_mode, torch.bfloat16,
                                                     torch.device("cuda"))
    assert out.dtype == torch.bfloat16
    assert_close_rel(out.cpu(), expected, 3e-2)
    assert_close_rel(grad.cpu(), expected_grad, 3e-2)


@pytest.mark.cuda
@pytest.mark.parametrize("offset", [0.0, 4.0])
def test_cuda_fp32_accuracy_with_offset_features(offset):
    """TF32 with the normalisation folded into the filters: the error grows with |mean|/std (A is
    f, not f - mean). Bound used in docs/rlff.md: 3e-3 × (1 + max |mean|/std) of the output's max."""
    n, c, h, w = 4, 64, 32, 32
    f = random_features((n, c, h, w), torch.float32, "cuda", seed=5) + offset
    rows = sample_rows(c, 3, 128, seed=1, device="cuda")
    mean, std = reference_stats(f)
    expected = oracle(f.cpu(), rows.cpu(), 3, 4, (mean.cpu(), std.cpu()))
    out = rlff(f, out_channels=128, rows=rows, stats=(mean, std))
    assert_close_rel(out.cpu(), expected, 3e-3 * (1 + float((mean.abs() / std).max())))


@pytest.mark.cuda
def test_cuda_issue_shape_memory_and_accuracy():
    """The issue's first shape (smaller N): output matches the torch path, and the forward allocates
    nothing beyond the output, the filter rows and O(c) vectors."""
    n, c, h, w, c_out, p = 8, 64, 64, 64, 128, 4
    f = random_features((n, c, h, w), torch.float32, "cuda", seed=0)
    rows = sample_rows(c, 3, c_out, seed=0, device="cuda")
    stats = reference_stats(f)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = rlff(f, out_channels=c_out, rows=rows, stats=stats)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    # filter rows (a few copies of k²·c·C_out), the cached (h·w, 16) tap-validity matrix, O(c)
    # vectors: < 4 MiB; an im2col buffer or the (N, C_out, h, w) intermediate would add ≥ 16 MiB.
    allowed = out.numel() * 4 + 4 * 2**20
    assert extra <= allowed, f"{extra} bytes > {allowed}"
    assert_close_rel(out.cpu(), rlff(f, out_channels=c_out, rows=rows, stats=stats, backend="torch").double().cpu(),
                     3e-3)


def test_auto_backend_on_cpu_is_torch(monkeypatch):
    """CPU tensors under "auto" never reach the Triton kernels (even with the interpreter on): the
    custom op runs its torch path, equal to the reference, gradient included; "triton" does reach
    them."""
    def kernels_must_not_run(*args, **kwargs):
        raise AssertionError("the Triton kernels ran for CPU tensors under backend='auto'")

    f = random_features((1, 2, 4, 4)).requires_grad_(True)
    rows = sample_rows(2, 3, 4, seed=0)
    monkeypatch.delenv("IRKERNELS_BACKEND", raising=False)
    monkeypatch.setattr(rlff_mod, "_rlff_forward_triton", kernels_must_not_run)
    monkeypatch.setattr(rlff_mod, "_rlff_backward_triton", kernels_must_not_run)
    out = rlff(f, out_channels=4, rows=rows)
    torch.testing.assert_close(out, rlff_reference(f, rows, 3, 4), rtol=0, atol=0)
    (grad,) = torch.autograd.grad(out.square().sum(), f)
    x = f.detach().requires_grad_(True)
    (grad_ref,) = torch.autograd.grad(rlff_reference(x, rows, 3, 4).square().sum(), x)
    torch.testing.assert_close(grad, grad_ref)
    if interpreter_active():  # CPU tensors can run the kernels only in the interpreter
        with pytest.raises(AssertionError, match="Triton kernels ran"):
            rlff(f, out_channels=4, rows=rows, backend="triton")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_weight_matrix_matches_bank(dtype, kernel_device):
    """The in-kernel DFT rows (B operand layout (tap, ch) × o) equal the bank's rows."""
    c, k = 3, 5
    rows = sample_rows(c, k, 40, seed=2, device=kernel_device)
    weight = rlff_mod._weight_matrix(rows, c, k, dtype)
    expected = fft_bank(c, k)[rows.cpu()].reshape(40, c, k, k).permute(2, 3, 1, 0).reshape(k * k * c, 40)
    torch.testing.assert_close(weight.cpu().double(), expected, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)


def test_precision_default_follows_torch_conv_setting_and_tiles_override(monkeypatch):
    """``precision=None`` follows cudnn.allow_tf32 (what an eager conv does); the tile hook
    replaces named fields and rejects unknown ones."""
    from irkernels.ops.utils import conv_precision_from_torch

    with torch.backends.cudnn.flags(allow_tf32=False):
        assert conv_precision_from_torch() == "highest"
    with torch.backends.cudnn.flags(allow_tf32=True):
        assert conv_precision_from_torch() == "fast"
    chosen = []
    original = rlff_mod._rlff_forward_triton
    monkeypatch.setattr(rlff_mod, "_rlff_forward_triton", lambda *a: chosen.append(a[-1]) or original(*a))
    f = random_features((1, 2, 5, 5), torch.float64)
    rows = sample_rows(2, 3, 4, seed=0)
    if interpreter_active():
        with torch.backends.cudnn.flags(allow_tf32=False):
            rlff(f, out_channels=4, rows=rows, backend="triton")
        rlff(f, out_channels=4, rows=rows, backend="triton", precision="high")
        assert chosen == ["highest", "high"]
    monkeypatch.setenv("IRKERNELS_RLFF_TILES", '{"fwd_m": 64, "warps": 2}')
    tiles = rlff_mod._tiles(torch.float32, 64, 128, cuda=True)
    assert (tiles.fwd_m, tiles.warps, tiles.bwd_m) == (64, 2, 128)
    monkeypatch.setenv("IRKERNELS_RLFF_TILES", '{"fwd_q": 64}')
    with pytest.raises(ValueError, match="unknown tiles \\['fwd_q'\\]"):
        rlff_mod._tiles(torch.float32, 64, 128, cuda=True)
