"""setuptools entry: metadata lives in pyproject.toml.

Optional CUDA extensions (csrc/) are added to ``ext_modules`` here by the ops that need one;
``IRKERNELS_BUILD_EXT=0`` skips them, ``=1`` forces them, unset builds them when nvcc and a CUDA
build of torch are present. Without a built extension, ops compile it lazily or fall back to
Triton / torch.
"""
import os
import shutil

from setuptools import setup


def _cuda_extensions():
    flag = os.environ.get("IRKERNELS_BUILD_EXT")
    if flag == "0":
        return [], {}
    try:
        import torch
        from torch.utils.cpp_extension import BuildExtension, CUDAExtension
    except ImportError:
        return [], {}
    have_cuda_build = torch.version.cuda is not None and shutil.which("nvcc") is not None
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
    return [ext], {"build_ext": BuildExtension}


ext_modules, cmdclass = _cuda_extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
