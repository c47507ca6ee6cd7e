"""Compile Triton kernels for an H100 (sm_90) ahead of time, without a GPU.

The interpreter (how CPU tests run kernels) never lowers a kernel to PTX, so code that only the
compiler sees (inline PTX, layouts, register pressure) would go untested in CI. Triton can compile
for a target that is not present; this runs that in a subprocess without ``TRITON_INTERPRET``,
with whatever Triton that subprocess imports (``PYTHONPATH`` picks another one: CI runs these
tests again with the GPU machine's Triton 3.6, see ``.ci/run``).

Every Triton version picks its own ``ptxas`` and emits the PTX version that ``ptxas`` accepts
(3.6/3.8: the bundled CUDA 12.8/12.9 ``ptxas``, PTX 8.7/8.8; 3.9: for sm_90 the bundled CUDA 13.x
``ptxas-blackwell``, PTX 9.x; ``TRITON_PTXAS_PATH`` / ``TRITON_PTXAS_BLACKWELL_PATH`` override
either). Running some other ``ptxas`` on the PTX fails when the versions differ, so the register
and spill figures here come from the log of Triton's own ``ptxas`` run, the one that produced the
cubin a launch would load.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

# Set (e.g. "3.6") where a CI step must run under one Triton release: fail instead of testing another.
EXPECT_ENV = "IRKERNELS_SM90_TRITON"

_SCRIPT = textwrap.dedent(
    """
    import contextlib, importlib, io, json, os, re, subprocess, sys, tempfile
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.backends.nvidia.compiler import get_ptxas
    expect = os.environ.get(sys.argv[2])
    if expect and not (triton.__version__ + ".").startswith(expect + "."):
        sys.exit(f"{sys.argv[2]}={expect} but the compile subprocess imports Triton {triton.__version__} "
                 f"from {triton.__file__}")
    ptxas = get_ptxas(90)  # the ptxas Triton itself runs for sm_90, hence the PTX version it emits
    print(f"sm_90 compile: Triton {triton.__version__} ({os.path.dirname(triton.__file__)}), "
          f"ptxas {ptxas.version} ({ptxas.path})", file=sys.stderr)
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
        log = io.StringIO()
        with contextlib.redirect_stdout(log):  # TRITON_DUMP_PTXAS_LOG prints ptxas -v here
            compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                                      options={"num_warps": spec.get("num_warps", 4),
                                               "num_stages": spec.get("num_stages", 3)})
        ptxas_log = log.getvalue()
        used = re.search(r"Used (\\d+) registers", ptxas_log)
        spills = re.search(r"(\\d+) bytes spill stores, (\\d+) bytes spill loads", ptxas_log)
        if used is None or spills is None:
            sys.exit(f"{spec['kernel']}: no register/spill report in the ptxas log:\\n{ptxas_log[-2000:]}")
        # Local-memory and stack use from the cubin itself (Triton ships cuobjdump).
        with tempfile.NamedTemporaryFile(suffix=".cubin") as fh:
            fh.write(compiled.asm["cubin"])
            fh.flush()
            usage = subprocess.run([knobs.nvidia.cuobjdump.path, "--dump-resource-usage", fh.name],
                                   capture_output=True, text=True, check=True).stdout
        found = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\\d+)", usage))
        out.append({"kernel": spec["kernel"], "regs": int(found.get("REG", -1)),
                    "local_bytes": int(found.get("LOCAL", -1)), "stack_bytes": int(found.get("STACK", -1)),
                    "spill_bytes": int(spills.group(1)) + int(spills.group(2)),
                    "shared_bytes": compiled.metadata.shared, "ptxas_log": ptxas_log,
                    "ptx": compiled.asm["ptx"] if spec.get("want_ptx") else "",
                    "triton": triton.__version__, "ptxas": ptxas.version})
    print(json.dumps(out))
    """
)


class CompileResult(dict):
    """One kernel's result; its repr leaves out the PTX and the log so that assertion messages stay short."""

    def __repr__(self) -> str:
        short = {k: (f"<{len(v)} chars>" if k in ("ptx", "ptxas_log") else v) for k, v in self.items()}
        return repr(short)


def compile_sm90(specs: list[dict]) -> list[CompileResult]:
    """Compile each ``{"module", "kernel", "signature", "constexprs", "num_warps"}`` for sm_90.

    Optional ``"num_stages"`` (default 3), ``"want_ptx"``, and ``"divisible_by_16"``: argument
    names the JIT would mark divisible by 16 at run time (pointers, integers that are multiples of
    16), so the code matches what a launch compiles.

    Returns per spec ``{"kernel", "regs", "local_bytes", "stack_bytes", "spill_bytes",
    "shared_bytes", "ptx", "ptxas_log", "triton", "ptxas"}``: registers, local memory and stack
    frame from the cubin, spill stores + loads and the whole ``ptxas -v`` log from Triton's own
    ``ptxas`` run, the Triton and ``ptxas`` versions used (``ptx`` only when ``want_ptx``).
    ``spill_bytes > 0`` means register spills. Raises ``AssertionError`` with the compiler's
    message if anything fails, or if ``$IRKERNELS_SM90_TRITON`` names another Triton release.
    """
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    tests = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(tests), tests, env.get("PYTHONPATH", "")])
    # A cached kernel would skip ptxas and so its log; the temporary cache keeps versions apart.
    env["TRITON_DUMP_PTXAS_LOG"] = env["TRITON_ALWAYS_COMPILE"] = "1"
    keys = [json.dumps(spec, sort_keys=True) for spec in specs]
    unique = list(dict.fromkeys(keys))  # tile tables often repeat a configuration: compile it once
    with tempfile.TemporaryDirectory() as cache:
        env["TRITON_CACHE_DIR"] = cache
        proc = subprocess.run(
            [sys.executable, "-c", _SCRIPT, "[" + ",".join(unique) + "]", EXPECT_ENV],
            capture_output=True, text=True, env=env, timeout=600,
        )
    if proc.returncode != 0:
        raise AssertionError(f"sm_90 compile failed:\n{proc.stderr[-4000:]}")
    # Which Triton and ptxas compiled: shown in pytest's report of passed tests (-rP).
    print(next(line for line in proc.stderr.splitlines() if line.startswith("sm_90 compile:")))
    results = dict(zip(unique, json.loads(proc.stdout.strip().splitlines()[-1])))
    return [CompileResult(results[key]) for key in keys]
