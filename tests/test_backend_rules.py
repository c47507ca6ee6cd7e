"""The one fallback rule (``ops._backend.fused_or_torch``), op by op: ``backend="triton"`` with inputs
the kernels do not take runs the torch path and warns once, naming the op and why; ``"auto"`` does
the same silently; Triton asked for where it cannot run at all is an error."""
import warnings

import pytest
import torch

import irkernels.ops._backend as backend_module
from irkernels.ops._backend import fused_or_torch
from irkernels.ops.kmeans import kmeans, kmeans_assign
from irkernels.ops.ncfd import ncfd_loss


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    monkeypatch.setattr(backend_module, "_WARNED", set())


def _gen():
    return torch.Generator().manual_seed(0)


CASES = {  # op: (call with a backend, what the kernels do not take)
    "ncfd": (lambda b: ncfd_loss(torch.randn(20, 4, dtype=torch.float64, generator=_gen()),
                                 torch.randn(6, 4, dtype=torch.float64, generator=_gen()),
                                 torch.randn(8, 4, dtype=torch.float64, generator=_gen()), backend=b),
             "float64 input"),
    "kmeans": (lambda b: kmeans(torch.randn(30, 4100, generator=_gen()), 5, seed=0, iters=2, backend=b).labels,
               "K·D tiles past 16384"),
    "kmeans_assign": (lambda b: kmeans_assign(torch.randn(30, 4100, generator=_gen()),
                                              torch.randn(5, 4100, generator=_gen()), backend=b)[0],
                      "K·D tiles past 16384"),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_triton_asked_for_inputs_its_kernels_do_not_take(op):
    call, reason = CASES[op]
    want = call("torch")
    with pytest.warns(UserWarning, match=f"^{op}: the Triton kernels do not take {reason}"):
        got = call("triton")
    assert torch.equal(got, want)  # the torch path itself
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call("triton")  # said once per process
        call("auto")  # auto falls back silently


def test_the_rule_table(monkeypatch):
    cpu = torch.device("cpu")
    assert fused_or_torch("op", "torch", cpu, "anything") == "torch"
    assert fused_or_torch("op", "triton", cpu, None) == "triton"  # the interpreter runs the kernels here
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fused_or_torch("op", "auto", cpu, "a reason") == "torch"
    monkeypatch.setenv("IRKERNELS_BACKEND", "triton")  # the override counts as asking for Triton
    with pytest.warns(UserWarning, match="op: the Triton kernels do not take a reason"):
        assert fused_or_torch("op", "auto", cpu, "a reason") == "torch"
    monkeypatch.delenv("TRITON_INTERPRET")  # a CPU tensor without the interpreter: Triton cannot run
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        fused_or_torch("op", "triton", cpu, None)
