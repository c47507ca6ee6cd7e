"""setuptools entry: metadata lives in pyproject.toml.

Optional CUDA extensions (csrc/) are added to ``ext_modules`` here by the ops that need one;
``IRKERNELS_BUILD_EXT=0`` skips them, ``=1`` forces them, unset builds them when nvcc and a CUDA
build of torch are present. Without a built extension, ops compile it lazily or fall back to
Triton / torch.
"""
import importlib.util
import os
import shutil

from setuptools import setup


def _find_cuda_home():
    """The package's own CUDA-toolkit lookup (torch's guess breaks on an nvcc wrapper script)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "irkernels", "ops", "_ext.py")
    spec = importlib.util.spec_from_file_location("_irkernels_ext", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.find_cuda_home()


def _cuda_extensions():
    flag = os.environ.get("IRKERNELS_BUILD_EXT")
    if flag == "0":
        return [], {}
    try:
        import torch
    except ImportError:
        return [], {}
    cuda_home = _find_cuda_home()
    if cuda_home:
        os.environ["CUDA_HOME"] = cuda_home  # read by cpp_extension at import
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension

    class OptionalBuildExtension(BuildExtension):
        """A failed compile only warns (the ops JIT-build or fall back) unless IRKERNELS_BUILD_EXT=1."""

        def run(self):
            try:
                super().run()
            except Exception as exc:
                if flag == "1":
                    raise
                self.extensions = []
                print(f"WARNING: irkernels CUDA extension not built ({exc}); ops will JIT-build or fall back")

    have_cuda_build = torch.version.cuda is not None and shutil.which("nvcc") is not None and cuda_home is not None
    if flag != "1" and not have_cuda_build:
        return [], {}
    sources = sorted(
        os.path.join("csrc", name) for name in os.listdir("csrc") if name.endswith((".cu", ".cpp"))
    ) if os.path.isdir("csrc") else []
    if not sources:
        return [], {}
    ext = CUDAExtension(
        name="irkernels._C",
        sources=sources,
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "--use_fast_math"]},
    )
    return [ext], {"build_ext": OptionalBuildExtension}


ext_modules, cmdclass = _cuda_extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
