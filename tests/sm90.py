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
    import importlib, json, os, re, subprocess, sys, tempfile
    import triton
    from triton.backends.compiler import GPUTarget
    specs = json.loads(sys.argv[1])
    out = []
    for spec in specs:
        module = importlib.import_module(spec["module"])
        fn = getattr(module, spec["kernel"])
        while not isinstance(fn, triton.runtime.JITFunction):
            fn = fn.fn  # unwrap @triton.autotune / @triton.heuristics
        attrs = {(fn.arg_names.index(name),): [["tt.divisibility", 16]] for name in spec.get("divisible_by_16", [])}
        src = triton.compiler.ASTSource(fn=fn, signature=spec["signature"], constexprs=spec["constexprs"],
                                        attrs=attrs)
        compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": spec.get("num_warps", 4),
                                           "num_stages": spec.get("num_stages", 3)})
        # Register and local-memory (spill) use from the cubin: the driver that would report them
        # is absent, but Triton ships cuobjdump.
        cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
        with tempfile.NamedTemporaryFile(suffix=".cubin") as fh:
            fh.write(compiled.asm["cubin"])
            fh.flush()
            usage = subprocess.run([cuobjdump, "--dump-resource-usage", fh.name], capture_output=True, text=True).stdout
        found = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\\d+)", usage))
        out.append({"kernel": spec["kernel"], "regs": int(found.get("REG", -1)),
                    "local_bytes": int(found.get("LOCAL", -1)), "stack_bytes": int(found.get("STACK", -1)),
                    "shared_bytes": compiled.metadata.shared,
                    "ptx": compiled.asm["ptx"] if spec.get("want_ptx") else ""})
    print(json.dumps(out))
    """
)


def compile_sm90(specs: list[dict]) -> list[dict]:
    """Compile each ``{"module", "kernel", "signature", "constexprs", "num_warps"}`` for sm_90.

    Optional ``"divisible_by_16"``: argument names the JIT would mark divisible by 16 at run time
    (pointers, integers that are multiples of 16), so the code matches what a launch compiles.

    Returns ``[{"kernel", "regs", "local_bytes", "stack_bytes", "shared_bytes", "ptx"}]`` per spec
    (``ptx`` only when ``want_ptx``); ``local_bytes > 0`` means register spills.
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
