"""``import irkernels`` and every op's torch path work where Triton cannot be imported (it is a
Linux-only dependency): a subprocess blocks ``import triton`` before importing the package."""
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent('''
    import importlib.abc
    import sys


    class HideTriton(importlib.abc.MetaPathFinder):
        """The usual finders, except that ``triton`` / ``triton.*`` is not found (``import triton``
        raises ModuleNotFoundError, ``importlib.util.find_spec`` says None), as on a machine without it."""

        def __init__(self, finders):
            self.finders = finders

        def find_spec(self, name, path=None, target=None):
            if name == "triton" or name.startswith("triton."):
                return None
            for finder in self.finders:
                spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
                if spec is not None:
                    return spec
            return None


    sys.meta_path[:] = [HideTriton(list(sys.meta_path))]
    import torch

    import irkernels
    from irkernels.ops import utils
    from irkernels.ops.nearest import nearest_in_group_reference
    from irkernels.ops.quotas import assign_with_quotas_reference
    from irkernels.ops.rlff import rlff_reference

    assert "triton" not in sys.modules and utils.triton is None and utils.tl is None
    report = irkernels.backend_report()
    assert report["triton_available"] is False and report["cpu_tensors"] == "torch", report

    gen = torch.Generator().manual_seed(0)
    f = torch.randn(2, 3, 8, 8, generator=gen, requires_grad=True)
    rows = irkernels.sample_rows(3, 3, 16, seed=0)
    out = irkernels.rlff(f, out_channels=16, rows=rows)
    assert torch.equal(out, rlff_reference(f, rows, 3, 4))
    out.square().sum().backward()
    assert f.grad is not None and bool(torch.isfinite(f.grad).all())
    mean, std = irkernels.reference_stats(f)
    module = irkernels.RLFF(3, out_channels=16, seed=0, reference=(mean, std))
    assert module(f)[0].shape == (8, 16, 16)

    x = torch.randn(300, 5, generator=gen)
    km = irkernels.kmeans(x, 4, seed=0)
    labels, dist = irkernels.kmeans_assign(x, km.centroids)
    assert torch.equal(labels, km.labels) and dist.shape == (300,)
    counts = torch.bincount(km.labels, minlength=4)
    desc = x[:40] + 0.01 * torch.randn(40, 5, generator=gen)
    groups = irkernels.assign_with_quotas(desc, km.centroids, counts, 0.5)
    assert torch.equal(groups, assign_with_quotas_reference(desc, km.centroids, counts, 0.5))
    pairs = irkernels.nearest_in_group(desc, groups, x, km.labels)
    assert torch.equal(pairs, nearest_in_group_reference(desc, groups, x, km.labels))
    assert irkernels.proportional_quotas(counts, 40).sum() == 40

    y = torch.randn(50, 6, generator=gen)
    loss = irkernels.ncfd_loss(torch.randn(40, 6, generator=gen), y, num_freqs=32, backend="torch")
    assert bool(torch.isfinite(loss))

    try:
        irkernels.rlff(f, out_channels=16, rows=rows, backend="triton")
    except RuntimeError as exc:
        assert "triton is not installed" in str(exc), exc
    else:
        raise AssertionError("backend='triton' without Triton must raise")
    print("ok without triton")
''')


def test_torch_paths_work_without_triton():
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("IRKERNELS_BACKEND", None)
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300,
                          cwd=REPO)
    assert proc.returncode == 0 and "ok without triton" in proc.stdout, proc.stderr[-4000:]
