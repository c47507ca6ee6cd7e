"""The sm_90 compile harness itself (``tests/sm90.py``): it reports what Triton's own ptxas saw,
refuses to run under another Triton than the CI step asks for, and every test that uses it carries
the ``sm90`` marker (CI selects those with ``-m sm90`` to rerun them under the device's Triton)."""
import ast
import pathlib
import re

import pytest
import triton

from sm90 import EXPECT_ENV, compile_sm90

pytestmark = pytest.mark.sm90

def _tiny_spec() -> dict:
    """A small dot + sin kernel defined in ``tests/sm90_probe.py``."""
    return {"module": "sm90_probe", "kernel": "probe_kernel",
            "signature": {"a_ptr": "*fp32", "b_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"},
            "constexprs": {"BLOCK": 32}, "divisible_by_16": ["a_ptr", "b_ptr", "out_ptr"], "want_ptx": True}


def test_reports_triton_ptxas_and_spills(capsys):
    (res,) = compile_sm90([_tiny_spec()])
    assert res["triton"] == triton.__version__  # the subprocess inherits this process's Triton
    assert "probe_kernel" in res["ptxas_log"] and res["regs"] > 0
    assert res["spill_bytes"] == 0 and res["shared_bytes"] > 0
    assert re.search(r"^\.target sm_90a", res["ptx"], re.M)
    # PTX version as Triton derives it from its ptxas release: 12.x -> 8.(x-1) from 12.6 on, 13.x -> 9.x.
    major, minor = map(int, res["ptxas"].split("."))
    expected = f"{major - 4}.{minor - (major == 12)}"
    assert re.search(rf"^\.version {re.escape(expected)}$", res["ptx"], re.M), res["ptx"][:200]
    assert f"Triton {triton.__version__}" in capsys.readouterr().out
    assert res["ptx"][:40] not in repr(res)  # assertion messages stay short


def test_refuses_another_triton(monkeypatch):
    monkeypatch.setenv(EXPECT_ENV, "0.1")
    with pytest.raises(AssertionError, match=f"{EXPECT_ENV}=0.1 but the compile subprocess imports Triton"):
        compile_sm90([_tiny_spec()])


def _marked_sm90(decorators: list[ast.expr]) -> bool:
    return any(isinstance(d, ast.Attribute) and d.attr == "sm90" for d in decorators)


def test_every_compile_test_is_marked():
    """A compile test without the marker would silently miss CI's run under Triton 3.6."""
    unmarked = []
    for path in sorted(pathlib.Path(__file__).parent.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        module_marked = any(isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in node.targets)
                            and "sm90" in ast.unparse(node.value) for node in tree.body)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                calls = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
                if "compile_sm90" in calls and not (module_marked or _marked_sm90(node.decorator_list)):
                    unmarked.append(f"{path.name}::{node.name}")
    assert not unmarked, f"add @pytest.mark.sm90 to {unmarked}"
