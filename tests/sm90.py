"""Compile Triton kernels for an H100 (sm_90) ahead of time, without a GPU.

The interpreter (how CPU tests run kernels) never lowers a kernel to PTX, so code that only the
compiler sees (inline PTX, layouts, register pressure) would go untested in CI. Triton can compile
for a target that is not present; this runs that in a subprocess without ``TRITON_INTERPRET``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys
    import triton
    from triton.backends.compiler import GPUTarget
    specs = json.loads(sys.argv[1])
    out = []
    for spec in specs:
        module = importlib.import_module(spec["module"])
        fn = getattr(module, spec["kernel"])
        while not isinstance(fn, triton.runtime.JITFunction):  # unwrap @triton.autotune / @triton.heuristics
            fn = fn.fn
        src = triton.compiler.ASTSource(fn=fn, signature=spec["signature"], constexprs=spec["constexprs"])
        compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": spec.get("num_warps", 4),
                                           "num_stages": spec.get("num_stages", 3)})
        out.append({"kernel": spec["kernel"], "n_regs": getattr(compiled, "n_regs", 0), "n_spills": getattr(compiled, "n_spills", 0),
                    "ptx": compiled.asm["ptx"] if spec.get("want_ptx") else ""})
    print(json.dumps(out))
    """
)


def compile_sm90(specs: list[dict]) -> list[dict]:
    """Compile each ``{"module", "kernel", "signature", "constexprs", "num_warps"}`` for sm_90.

    Returns ``[{"kernel", "n_regs", "n_spills", "ptx"}]`` (``ptx`` only when ``want_ptx``).
    ``n_regs`` / ``n_spills`` are filled in only when a CUDA driver is present; without one they
    are 0.
    """
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(specs)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(f"sm_90 compile failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
