"""The optional CUDA extension (``csrc/``): where it comes from, and whether it can run.

Order of preference: ``irkernels._C`` built by ``setup.py``; otherwise, when a CUDA device, a CUDA
build of torch and nvcc exist, a just-in-time build with ``torch.utils.cpp_extension.load`` into
the user's cache (``$IRKERNELS_EXT_CACHE`` or ``~/.cache/irkernels/torch_extensions``), once per
source version. ``IRKERNELS_BUILD_EXT=0`` disables the JIT build. Without the extension the ops use
their torch (or Triton) paths; :func:`extension_status` says which and why.
"""
from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import torch

# quota_match_ keeps one 64-bit key + one byte per patch of an instance in shared memory
# (16384 rows -> 144 KiB; H100 allows 227 KiB per block).
MAX_QUOTA_MATCH_ROWS = 16384
EXT_NAME = "irkernels_C"
CSRC_DIR = Path(__file__).resolve().parents[2] / "csrc"

_status: dict[str, object] = {"loaded": False, "source": None, "reason": "not loaded yet"}


def sources() -> list[str]:
    """The extension's C++/CUDA sources in the repository (empty for an installed wheel)."""
    if not CSRC_DIR.is_dir():
        return []
    return sorted(str(p) for p in CSRC_DIR.iterdir() if p.suffix in (".cu", ".cpp"))


def cache_dir() -> str:
    base = os.environ.get("IRKERNELS_EXT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "irkernels", "torch_extensions")
    path = os.path.join(base, f"torch{torch.__version__.split('+')[0]}-cu{torch.version.cuda}")
    os.makedirs(path, exist_ok=True)
    return path


def find_cuda_home() -> str | None:
    """A CUDA toolkit root with ``bin/nvcc`` and ``include/cuda_runtime.h``.

    torch guesses ``dirname(dirname(which nvcc))``, which is wrong when ``nvcc`` on ``PATH`` is a
    wrapper script (e.g. ``/usr/local/bin/nvcc`` -> ``/usr/local``); this checks the candidates."""
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"]
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(os.path.dirname(os.path.dirname(os.path.realpath(nvcc))))
    for root in candidates:
        if root and os.path.isfile(os.path.join(root, "bin", "nvcc")) \
                and os.path.isfile(os.path.join(root, "include", "cuda_runtime.h")):
            return root
    return None


def use_cuda_home() -> str | None:
    """Point ``CUDA_HOME`` (and torch's cached copy of it) at :func:`find_cuda_home`."""
    root = find_cuda_home()
    if root:
        import torch.utils.cpp_extension as cpp_extension

        os.environ["CUDA_HOME"] = root
        cpp_extension.CUDA_HOME = root
    return root


def build_extension(build_dir: str | None = None, verbose: bool = False) -> None:
    """Compile ``csrc/*`` with nvcc and load the ops into ``torch.ops.irkernels`` (no GPU needed
    when ``TORCH_CUDA_ARCH_LIST`` is set). Raises on compiler errors."""
    from torch.utils.cpp_extension import load

    if use_cuda_home() is None:
        raise FileNotFoundError("no CUDA toolkit found (nvcc and include/cuda_runtime.h)")
    srcs = sources()
    if not srcs:
        raise FileNotFoundError(f"no C++/CUDA sources under {CSRC_DIR}")
    load(name=EXT_NAME, sources=srcs, build_directory=build_dir or cache_dir(), is_python_module=False,
         extra_cflags=["-O3"], extra_cuda_cflags=["-O3"], verbose=verbose)
    register_fakes()


def register_fakes() -> None:
    """Shape-only (fake) implementations of the extension's ops, so ``torch.compile`` can trace
    code that calls them; ``quota_match_`` only writes into ``out``, so its fake does nothing."""
    if not hasattr(torch.ops.irkernels, "quota_match_"):
        return
    try:
        torch.library.register_fake("irkernels::quota_match_")(_quota_match_fake)
    except RuntimeError as exc:  # registered already (a second build into the same process)
        if "already" not in str(exc):
            raise


def _quota_match_fake(dist, pref, offsets, quotas, out, max_rows, check_sizes=True) -> None:
    return None


@functools.lru_cache(maxsize=None)
def load_extension() -> bool:
    """Load the extension once (prebuilt, else JIT where possible); True when its ops exist."""
    try:
        import irkernels._C  # noqa: F401  (registers torch.ops.irkernels.*)

        register_fakes()
        _status.update(loaded=True, source="prebuilt irkernels._C", reason="")
        return True
    except ImportError:
        pass
    reason = None
    if os.environ.get("IRKERNELS_BUILD_EXT") == "0":
        reason = "IRKERNELS_BUILD_EXT=0 disables the JIT build"
    elif torch.version.cuda is None:
        reason = "torch is not a CUDA build"
    elif not torch.cuda.is_available():
        reason = "no CUDA device (the extension only serves CUDA tensors)"
    elif find_cuda_home() is None:
        reason = "no CUDA toolkit found (nvcc and include/cuda_runtime.h)"
    elif not sources():
        reason = f"no sources under {CSRC_DIR}"
    else:
        from torch.utils.cpp_extension import is_ninja_available

        if not is_ninja_available():
            reason = "ninja not found (pip install ninja) for the JIT build"
    if reason is None:
        try:
            build_extension()
            _status.update(loaded=True, source=f"JIT build in {cache_dir()}", reason="")
            return True
        except Exception as exc:  # a failed build must not break the torch fallback
            reason = f"JIT build failed: {type(exc).__name__}: {str(exc)[-500:]}"
    _status.update(loaded=False, source=None, reason=reason)
    return False


def has_op(name: str) -> bool:
    """Whether ``torch.ops.irkernels.<name>`` is available (loads the extension on first call)."""
    return load_extension() and hasattr(torch.ops.irkernels, name)


def extension_status() -> dict[str, object]:
    """For ``irkernels.backend_report()``: whether the CUDA extension is loaded, from where, its
    ops, and otherwise why not (which then means torch / Triton paths run instead)."""
    loaded = load_extension()
    ops = [op for op in ("quota_match_",) if loaded and hasattr(torch.ops.irkernels, op)]
    return {"cuda_extension": loaded, "source": _status["source"], "ops": ops, "reason": _status["reason"],
            "quota_assignment": "cuda" if ops else "torch"}
