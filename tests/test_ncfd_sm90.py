"""The NCFD kernels, with the tiles the op launches on CUDA, compile for an H100 (sm_90).

CPU tests run the kernels in the interpreter, which never lowers them; this compiles the real
configurations ahead of time (no GPU needed) and checks what only the compiler sees: the fast
sin/cos inline PTX, tensor-core dots, shared memory within the H100's 227 KB, and no register
spills in the fast mode (the accurate mode keeps libdevice's small local array for sin/cos range
reduction of huge arguments: ≤ 64 bytes of stack).
"""
import pytest
import torch

from irkernels.ops import ncfd
from irkernels.ops.ncfd import _block_sizes, _dot_precisions, triton_backward_supported
from sm90 import compile_sm90

pytestmark = pytest.mark.sm90

H100_SHARED_BYTES = 227 * 1024

_COMMON = {"N": "i32", "D": "i32", "T": "i32"}
_STRIDES = {"stride_xn": "i32", "stride_xd": "i32", "stride_tt": "i32", "stride_td": "i32"}
_FLAGS = {"PHASE_PRECISION": "constexpr", "SUM_PRECISION": "constexpr", "EMULATE_TF32": "constexpr",
          "RANGE_REDUCE": "constexpr", "APPROX": "constexpr"}


def _specs(precision: str, D: int, x_type: str) -> list[dict]:
    fast = precision == "fast"
    phase, total = _dot_precisions(precision)
    flags = dict(PHASE_PRECISION=phase, SUM_PRECISION=total, EMULATE_TF32=0, RANGE_REDUCE=fast, APPROX=fast)
    sizes = _block_sizes(D, precision, torch.device("cuda"))
    fn, ft, fd, fw, fs = sizes["fwd"]
    bn, bt, bd, bw, bs = sizes["bwd"]
    tn, tt, td, tw, ts = sizes["bwd_t"]
    ptrs = {"X": f"*{x_type}", "TF": "*fp32", "GID": "*i32"}
    # What a launch at D=128, T=4096 specialises: 16-byte aligned pointers, ints that are multiples of 16.
    aligned = ["X", "TF", "ROWS", "GID", "OFFS", "PART", "COEF_RE", "COEF_IM", "DX", "DT", "D", "T", "stride_xn",
               "stride_tt", "stride_dn"]
    specs = [
        dict(module="irkernels.ops.ncfd", kernel="_cf_sums_kernel", num_warps=fw, num_stages=fs, want_ptx=True,
             signature={"X": f"*{x_type}", "TF": "*fp32", "ROWS": "*i32", "GID": "*i32", "OFFS": "*i32",
                        "PART": "*fp32", **_COMMON, "G": "i32", "n_splits": "i32", **_STRIDES,
                        "HAS_GROUPS": "constexpr", "G_BLOCK": "constexpr", "BLOCK_N": "constexpr",
                        "BLOCK_T": "constexpr", "BLOCK_D": "constexpr", **_FLAGS},
             constexprs=dict(HAS_GROUPS=True, G_BLOCK=32, BLOCK_N=fn, BLOCK_T=ft, BLOCK_D=fd, **flags)),
        dict(module="irkernels.ops.ncfd", kernel="_cf_grad_samples_kernel", num_warps=bw, num_stages=bs,
             signature={**ptrs, "COEF_RE": "*fp32", "COEF_IM": "*fp32", "DX": f"*{x_type}", **_COMMON, **_STRIDES,
                        "stride_dn": "i32", "stride_dd": "i32", "HAS_GROUPS": "constexpr", "BLOCK_N": "constexpr",
                        "BLOCK_T": "constexpr", "BLOCK_D": "constexpr", **_FLAGS},
             constexprs=dict(HAS_GROUPS=True, BLOCK_N=bn, BLOCK_T=bt, BLOCK_D=bd, **flags)),
        dict(module="irkernels.ops.ncfd", kernel="_cf_grad_freqs_kernel", num_warps=tw, num_stages=ts,
             signature={**ptrs, "COEF_RE": "*fp32", "COEF_IM": "*fp32", "DT": "*fp32", **_COMMON,
                        "rows_per_chunk": "i32", **_STRIDES, "HAS_GROUPS": "constexpr", "BLOCK_N": "constexpr",
                        "BLOCK_T": "constexpr", "BLOCK_D": "constexpr", **_FLAGS},
             constexprs=dict(HAS_GROUPS=False, BLOCK_N=tn, BLOCK_T=tt, BLOCK_D=td, **flags)),
    ]
    if not triton_backward_supported(D, precision, torch.device("cuda")):
        specs = specs[:1]  # this Triton runs the torch backward there: only the forward is launched
    for spec in specs:
        spec["divisible_by_16"] = [name for name in aligned if name in spec["signature"]]
    return specs


def test_ncfd_kernels_compile_for_h100():
    cases = [("fast", 128, "fp32"), ("high", 128, "fp32"), ("highest", 128, "fp32"), ("fast", 128, "bf16"),
             ("fast", 256, "fp32")]
    per_case = [_specs(*case) for case in cases]
    results = iter(compile_sm90([spec for specs in per_case for spec in specs]))
    for (precision, D, x_type), specs in zip(cases, per_case):
        case_results = [next(results) for _ in specs]
        for res in case_results:
            where = f"{res['kernel']} ({precision}, D={D}, {x_type})"
            assert 0 < res["shared_bytes"] <= H100_SHARED_BYTES, where
            assert res["regs"] > 0, where
            if precision == "fast":
                assert res["stack_bytes"] == 0, f"{where} spills: {res}"
            else:
                assert res["stack_bytes"] <= 64, f"{where} spills: {res}"
        ptx = case_results[0]["ptx"]
        assert ("sin.approx.f32" in ptx and "cos.approx.f32" in ptx) == (precision == "fast")
        if precision != "highest":  # "highest" asks for fp32 FMA dots
            assert "wgmma" in ptx or "mma.sync" in ptx, "dots must run on tensor cores"


def test_backward_falls_back_only_where_the_kernels_spill(monkeypatch):
    cuda = torch.device("cuda")
    for version, fused_at_256 in (("3.6.0", False), ("3.8.0", True), ("3.9.1", True), ("4.0.0", True)):
        monkeypatch.setattr(ncfd.triton, "__version__", version)
        assert triton_backward_supported(256, "fast", cuda) is fused_at_256
        assert triton_backward_supported(128, "fast", cuda)  # the pipelines' D
        assert triton_backward_supported(256, "high", cuda)
        assert triton_backward_supported(256, "fast", torch.device("cpu"))  # interpreter tiles
