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
from irkernels.ops.ncfd import triton_backward_supported
from sm90 import compile_sm90
from sm90_launches import NCFD_CASES, ncfd_specs

pytestmark = pytest.mark.sm90

H100_SHARED_BYTES = 227 * 1024


def test_ncfd_kernels_compile_for_h100():
    per_case = [ncfd_specs(*case) for case in NCFD_CASES]
    results = iter(compile_sm90([spec for specs in per_case for spec in specs]))
    for (precision, D, x_type), specs in zip(NCFD_CASES, per_case):
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
