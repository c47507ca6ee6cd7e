"""``benchmarks/gpu_session.sh`` stops at once, with one line naming what is missing, before any
device time is spent: run in a temporary copy of the repo's benchmarks folder, without a GPU."""
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest
import torch

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_session.sh"
STAGES = ["kernels", "idc", "train", "idc_quality", "tripled"]
WHEELS = ["flash_kmeans-0.1-py3-none-any.whl", "fast_pytorch_kmeans-0.2-py3-none-any.whl",
          "diffusers-0.30.0-py3-none-any.whl", "importlib_metadata-8.0.0-py3-none-any.whl"]
DATA = [".data/train/CBSD432", ".data/test/Set5", ".data/test/Set14"]


@pytest.fixture
def repo(tmp_path: pathlib.Path) -> pathlib.Path:
    """The script and (empty) benchmark scripts it names, nothing else."""
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(SCRIPT, tmp_path / "benchmarks")
    for name in ["ncfd", "rlff", "kmeans", "idc", "compare_speed", "train", "idc_quality", "tripled"]:
        (tmp_path / "benchmarks" / f"bench_{name}.py").touch()
    return tmp_path


def _env(repo: pathlib.Path) -> dict:
    """This interpreter first on PATH (the script calls python3), and no PYTHONPATH into the repo."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    return {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), "OUT": str(repo / "out"), "TMPDIR": str(repo)}


def _run(repo: pathlib.Path, *args: str, limit: float = 5.0) -> subprocess.CompletedProcess:
    start = time.monotonic()
    proc = subprocess.run(["bash", "benchmarks/gpu_session.sh", *args], cwd=repo, capture_output=True, text=True,
                          timeout=120, env=_env(repo))
    assert time.monotonic() - start < limit, f"took {time.monotonic() - start:.1f} s: {proc.stderr}"
    return proc


def _fill(repo: pathlib.Path, data: bool = True, wheels: bool = True) -> None:
    for d in DATA if data else []:
        (repo / d).mkdir(parents=True)
        (repo / d / "img.png").write_bytes(b"\x89PNG")
    (repo / ".whl").mkdir()
    for w in WHEELS if wheels else []:
        (repo / ".whl" / w).touch()


@pytest.mark.parametrize("args", [["bogus"], []])
def test_unknown_stage(repo, args):
    proc = _run(repo, *args)
    assert proc.returncode == 2 and proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"gpu_session {args[0] if args else ''}: unknown stage") and "check" in line


def test_check_lists_every_missing_prerequisite(repo):
    proc = _run(repo, "check")
    assert proc.returncode == 1
    lines = set(proc.stderr.splitlines())
    for stage in ("train", "idc_quality", "tripled"):
        for d in DATA:
            assert f"gpu_session {stage}: missing data folder {d} (cp -r ../shared/data .data)" in lines
    for stage, wheels in (("kernels", WHEELS[:2]), ("tripled", WHEELS[2:])):
        for w in wheels:
            prefix = w.split("-")[0]
            assert f"gpu_session {stage}: missing wheel .whl/{prefix}-*.whl (for import {prefix})" in lines
    assert len(lines) == 3 * 3 + 4 and not any("idc:" in line for line in lines)


def test_check_passes_when_everything_is_there(repo):
    _fill(repo)
    proc = _run(repo, "check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gpu_session check: every stage's data and wheels are in place")


def test_check_names_an_empty_data_folder_and_one_missing_wheel(repo):
    _fill(repo)
    (repo / DATA[1] / "img.png").unlink()
    (repo / ".whl" / WHEELS[2]).unlink()
    lines = _run(repo, "check").stderr.splitlines()
    assert sorted(lines) == sorted([f"gpu_session {s}: missing data folder {DATA[1]} (cp -r ../shared/data .data)"
                                    for s in ("train", "idc_quality", "tripled")]
                                   + ["gpu_session tripled: missing wheel .whl/diffusers-*.whl (for import diffusers)"])


@pytest.mark.parametrize("stage", ["train", "idc_quality", "tripled"])
def test_stage_without_data_stops_before_python(repo, stage):
    _fill(repo, data=False)
    proc = _run(repo, stage, limit=2.0)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"gpu_session {stage}: missing data folder {DATA[0]} (cp -r ../shared/data .data)"]
    assert not (repo / "out").exists() and not (repo / "logs").exists()


def test_stage_with_a_broken_wheel(repo):
    _fill(repo)  # the wheels are empty files: pip refuses them
    proc = _run(repo, "kernels", limit=60.0)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith("gpu_session kernels: pip could not install .whl/*.whl: "), line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_stage_without_gpu(repo):
    proc = _run(repo, "idc", limit=90.0)  # imports torch and Triton: seconds on a quiet machine
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"gpu_session idc: no CUDA GPU usable by torch {torch.__version__}"), line


@pytest.mark.parametrize("script", sorted(p.stem for p in pathlib.Path(__file__).resolve().parents[1].glob(
    "benchmarks/*.py") if p.stem not in ("__init__",)))
def test_every_benchmark_imports(script):
    """A GPU session runs these scripts first: one that no longer imports (a renamed private name of
    an op, as bench_rlff's _RLFFFunction was) would cost a device call, so the CPU catches it."""
    import importlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    try:
        importlib.import_module(f"benchmarks.{script}")
    finally:
        sys.path.pop(0)
