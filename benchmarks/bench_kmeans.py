"""k-means and IDC grouping: ours against flash-kmeans, fast-pytorch-kmeans, faiss, scikit-learn and
a naive torch loop (each library only when it imports), plus the quota assignment and the pairing.

    python benchmarks/bench_kmeans.py            # CUDA: the issue's sizes; CPU: small sizes
    python benchmarks/bench_kmeans.py --small    # force the small sizes

k-means rows: K=32, D=128, 20 Lloyd iterations with early stopping off (fixed work), all
implementations from the same k-means++ centroids where they accept an initialisation (flash-kmeans
also from its own default init); "ours (default call)" is ``kmeans(x, K, offsets=...)`` as a user
calls it: init (k-means++ on a sample) included, default tolerance (it may stop before 20). ``inertia_rel`` is the implementation's inertia over ours (computed
the same way, against its returned centroids). ``floor_ms`` is ``benchmarks/roofline.py``'s floor:
every point read once per iteration (once in all when the points fit the L2) at the device's peak
bandwidth, or the tf32x3 distance GEMM at peak, whichever is longer. Results:
``benchmarks/results/kmeans.{json,md}`` on CUDA, ``kmeans_cpu.{json,md}`` on CPU.
"""
from __future__ import annotations

import argparse
import inspect
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import device_peaks, markdown, measure, write_results  # noqa: E402
from benchmarks.roofline import floor_times, kmeans_work  # noqa: E402
from irkernels.ops import _ext  # noqa: E402
from irkernels.ops.nearest import nearest_in_group  # noqa: E402
from irkernels.ops.quotas import assign_backend, assign_with_quotas  # noqa: E402
from irkernels.ops.kmeans import kmeans  # noqa: E402

K, D, ITERS = 32, 128, 20
COLUMNS = ["case", "impl", "median_ms", "min_ms", "floor_ms", "inertia_rel", "peak_extra_mib", "note"]


def cases(small: bool) -> list[tuple[str, list[int]]]:
    """(name, instance sizes). IDC: 151 real LR patches × 16×16 RLFF patches = 38,656 per image."""
    if small:
        return [("1x4096", [4096]), ("4x4096", [4096] * 4), ("1x16384", [16384]),
                ("ragged 4", [1500, 4096, 2600, 3300])]
    ragged = [int(v) for v in np.linspace(20_000, 60_000, 16).round()]
    return [("1x38656", [38_656]), ("16x38656", [38_656] * 16), ("1x618496", [618_496]),
            (f"ragged 16 ({sum(ragged)})", ragged)]


def naive_torch(x: torch.Tensor, init: torch.Tensor, iters: int) -> torch.Tensor:
    """The textbook loop, one instance at a time: cdist, argmin, index_add_ sums, divide."""
    out = []
    for xi, c in zip(x, init):
        c = c.clone()
        for _ in range(iters):
            labels = torch.cdist(xi, c).argmin(dim=1)
            sums = torch.zeros_like(c).index_add_(0, labels, xi)
            counts = torch.bincount(labels, minlength=c.shape[0]).clamp_min(1)
            c = sums / counts[:, None]
        out.append(c)
    return torch.stack(out)


def inertia_of(parts: list[torch.Tensor], centroids: torch.Tensor) -> float:
    return float(sum(torch.cdist(p.float(), c.float()).min(dim=1).values.pow(2).sum() for p, c in zip(parts, centroids)))


def library_runners(parts, init, device):
    """Whichever of the optional libraries import: name -> (callable returning centroids, note)."""
    runners = {}
    try:
        from flash_kmeans import batch_kmeans_Euclid

        params = inspect.signature(batch_kmeans_Euclid).parameters
        kw = {k: v for k, v in (("max_iters", ITERS), ("tol", -1.0), ("verbose", False)) if k in params}
        if len({p.shape[0] for p in parts}) == 1 and device.type == "cuda":
            batch = torch.stack(parts)
            if "init_centroids" in params:
                runners["flash-kmeans (same init)"] = (
                    lambda: batch_kmeans_Euclid(batch, n_clusters=K, init_centroids=init.clone(), **kw)[1], "")
            runners["flash-kmeans (own init)"] = (lambda: batch_kmeans_Euclid(batch, n_clusters=K, **kw)[1], "")
    except ImportError:
        pass
    try:
        from fast_pytorch_kmeans import KMeans as FastKMeans

        def fast_pytorch():
            cents = []
            for p, c in zip(parts, init):
                km = FastKMeans(n_clusters=K, max_iter=ITERS, tol=-1.0, mode="euclidean", verbose=0)
                km.fit(p, centroids=c.clone()) if "centroids" in inspect.signature(km.fit).parameters else km.fit(p)
                cents.append(km.centroids)
            return torch.stack(cents)

        runners["fast-pytorch-kmeans"] = (fast_pytorch, "per instance")
    except ImportError:
        pass
    try:
        import faiss

        def faiss_run(gpu: bool):
            def run():
                cents = []
                for p, c in zip(parts, init):
                    km = faiss.Kmeans(D, K, niter=ITERS, gpu=gpu, seed=0, max_points_per_centroid=10**9)
                    km.train(p.cpu().numpy(), init_centroids=c.cpu().numpy())
                    cents.append(torch.from_numpy(km.centroids))
                return torch.stack(cents).to(device)
            return run

        runners["faiss (CPU)"] = (faiss_run(False), "per instance, host copies")
        if device.type == "cuda" and getattr(faiss, "get_num_gpus", lambda: 0)() > 0:
            runners["faiss (GPU)"] = (faiss_run(True), "per instance, host copies")
    except ImportError:
        pass
    return runners


def bench_kmeans(small: bool, device: torch.device, peaks: dict | None, with_sklearn: bool) -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(0)
    for name, sizes in cases(small):
        # overlapping blobs (64 per instance): Lloyd keeps moving for all 20 iterations and the
        # clusterings differ in quality
        parts = []
        for n in sizes:
            centers = torch.randn(64, D, generator=gen) * 0.3
            parts.append((centers[torch.randint(0, 64, (n,), generator=gen)] + torch.randn(n, D, generator=gen)).to(device))
        x = torch.cat(parts)
        offsets = torch.tensor([0] + np.cumsum(sizes).tolist(), device=device)
        init = kmeans(x, K, offsets=offsets, iters=0, seed=0).centroids.reshape(len(sizes), K, D)
        floor = floor_times(kmeans_work(sizes, K, D, ITERS), peaks)["floor_ms"] if peaks else None

        def ours_lloyd():
            return kmeans(x, K, offsets=offsets, init=init, iters=ITERS, tol=None).centroids

        def ours_full():
            return kmeans(x, K, offsets=offsets, iters=ITERS, tol=None, seed=0).centroids

        def ours_default():
            return kmeans(x, K, offsets=offsets, seed=0).centroids

        ref = inertia_of(parts, ours_lloyd().reshape(len(sizes), K, D))
        impls = {"ours (Lloyd from init)": (ours_lloyd, "backend auto"),
                 "ours (k-means++ + Lloyd)": (ours_full, "init included, no early stop"),
                 "ours (default call)": (ours_default, "init included, tol=1e-4"),
                 "naive torch": (lambda: naive_torch(parts, init, ITERS), "per instance")}
        impls.update(library_runners(parts, init, device))
        if with_sklearn:
            from sklearn.cluster import KMeans

            def sk():
                return torch.stack([torch.from_numpy(KMeans(K, init=c.cpu().numpy(), n_init=1, max_iter=ITERS, tol=0)
                                                     .fit(p.cpu().numpy()).cluster_centers_) for p, c in zip(parts, init)])

            impls["scikit-learn"] = (sk, f"CPU, {os.cpu_count()} cores; stops early once labels are stable")
        for impl, (fn, note) in impls.items():
            slow = impl.startswith(("scikit", "faiss (CPU)", "naive")) and sum(sizes) > 100_000
            m = measure(impl, fn, warmup=1 if slow else 3, runs=3 if slow else 20)
            cents = fn().reshape(len(sizes), K, D).to(device)
            rows.append({"case": name, "impl": impl, "median_ms": m.median_ms, "min_ms": m.min_ms,
                         "floor_ms": floor, "inertia_rel": inertia_of(parts, cents) / ref,
                         "peak_extra_mib": m.peak_extra_mib, "note": note})
            print(rows[-1], flush=True)
    return rows


def bench_grouping(small: bool, device: torch.device, peaks: dict | None) -> list[dict]:
    """IDC sizes per instance: 15 synthetic LR patches (ratio 0.1 of 151) × 16×16 RLFF patches =
    3,840 synthetic descriptors, 38,656 real ones, K=32 groups, D=128; pairing on the flattened
    patch features F = p·p·C_out = 4·4·128 = 2048. 16 instances per batch."""
    b, m, n, f = (2, 384, 3866, 256) if small else (16, 3840, 38_656, 2048)
    gen = torch.Generator().manual_seed(1)
    desc = torch.randn(b * m, D, generator=gen).to(device)
    centroids = torch.randn(b, K, D, generator=gen).to(device)
    real_labels = torch.randint(0, K, (b * n,), generator=gen).to(device)
    real_counts = torch.stack([torch.bincount(real_labels[i * n:(i + 1) * n], minlength=K) for i in range(b)])
    so = torch.arange(0, b * m + 1, m, device=device)
    ro = torch.arange(0, b * n + 1, n, device=device)
    rows = []
    # "auto" on CUDA tensors runs the compiled extension when it is built (assign_backend says)
    backends = ["torch"] + (["auto"] if assign_backend(device, m, K) == "cuda" else [])
    for backend in backends:
        fn = lambda: assign_with_quotas(desc, centroids, real_counts, 0.5, offsets=so, backend=backend)  # noqa: E731
        mm = measure(f"assign {backend}", fn)
        impl = "ours (cuda extension)" if backend == "auto" else "ours (torch)"
        rows.append({"case": f"assign {b}x{m} syn, K={K}", "impl": impl, "median_ms": mm.median_ms,
                     "min_ms": mm.min_ms, "floor_ms": None, "peak_extra_mib": mm.peak_extra_mib,
                     "note": "fraction 0.5"})
        print(rows[-1], flush=True)
    syn = torch.randn(b * m, f, generator=gen).to(device)
    real = torch.randn(b * n, f, generator=gen).to(device)
    syn_labels = assign_with_quotas(desc, centroids, real_counts, 1.0, offsets=so)
    floor = (b * n * f * 4 + b * m * f * 4) / peaks["bytes_per_s"] * 1e3 if peaks else None
    for backend in ["torch"] + (["triton"] if device.type == "cuda" else []):
        fn = lambda: nearest_in_group(syn, syn_labels, real, real_labels, syn_offsets=so, real_offsets=ro,  # noqa: E731
                                      num_groups=K, backend=backend)
        mm = measure(f"pair {backend}", fn)
        rows.append({"case": f"pair {b}x{m} syn vs {b}x{n} real, F={f}", "impl": f"ours ({backend})",
                     "median_ms": mm.median_ms, "min_ms": mm.min_ms, "floor_ms": floor,
                     "peak_extra_mib": mm.peak_extra_mib, "note": "floor: features read once"})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="small sizes (automatic without CUDA)")
    parser.add_argument("--no-sklearn", action="store_true", help="skip scikit-learn (slow at full size)")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    small = args.small or not cuda
    peaks = device_peaks()
    rows = bench_kmeans(small, device, peaks, with_sklearn=not args.no_sklearn)
    rows += bench_grouping(small, device, peaks)
    table = markdown(rows, COLUMNS)
    print(table)
    notes = (f"\nK={K}, D={D}, {ITERS} iterations, no early stop. Extension: {_ext.extension_status()}.\n"
             "floor_ms: k-means, the roofline model's floor (benchmarks/roofline.py); pairing, the features "
             "read once at peak bandwidth.\n")
    write_results("kmeans", rows, table, notes, small=args.small)


if __name__ == "__main__":
    main()
